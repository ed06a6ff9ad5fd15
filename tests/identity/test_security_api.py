"""Account and Security through the JSON API and the pages."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from qianbao.clock import FrozenClock
from tests.api_helpers import api_sign_up, bearer, outbox_code
from tests.web.test_pages import csrf, sign_up_by_form

UK = "+447911123456"
GOOD = "tea with plenty of milk"


def security_code(client: TestClient, token: str, clock: FrozenClock) -> str:
    clock.advance(seconds=61)
    sent = client.post("/api/v1/me/security-codes", headers=bearer(token))
    assert sent.status_code == 201, sent.text
    assert sent.json()["purpose"] == "security"
    return outbox_code(client, UK)


def email_code(client: TestClient, address: str) -> str:
    messages = client.get("/api/v1/demo/outbox", params={"phone": address}).json()
    match = re.search(r"\b(\d{4,8})\b", messages[0]["body"])
    assert match, messages
    return match.group(1)


def test_strength_meter_scores_and_labels(client: TestClient) -> None:
    weak = client.post("/api/v1/password-strength", json={"password": "password1"}).json()
    strong = client.post(
        "/api/v1/password-strength", json={"password": "violet harbour kettle ninety"}
    ).json()
    assert weak["score"] < strong["score"] == 4
    chinese = client.post(
        "/api/v1/password-strength",
        json={"password": "password1"},
        headers={"Accept-Language": "zh-CN"},
    ).json()
    assert chinese["label"] != weak["label"]
    empty = client.post("/api/v1/password-strength", json={"password": ""})
    assert empty.status_code == 200 and empty.json()["score"] == 0  # was a 500 (zxcvbn)


def test_set_password_then_log_in_by_number(client: TestClient, clock: FrozenClock) -> None:
    token = api_sign_up(client)["token"]
    code = security_code(client, token, clock)
    saved = client.put(
        "/api/v1/me/login-password",
        headers=bearer(token),
        json={"new_password": GOOD, "sms_code": code},
    )
    assert saved.status_code == 204, saved.text
    assert client.get("/api/v1/me/security", headers=bearer(token)).json()["has_login_password"]
    login = {"login": "07911 123456", "country": "GB", "password": GOOD}
    signed = client.post("/api/v1/auth/password-sessions", json=login)
    assert signed.status_code == 201, signed.text
    wrong = client.post("/api/v1/auth/password-sessions", json={**login, "password": "nope nope"})
    assert (wrong.status_code, wrong.json()["code"]) == (401, "login.failed")


def test_email_add_confirm_and_log_in_with_it(client: TestClient, clock: FrozenClock) -> None:
    token = api_sign_up(client)["token"]
    code = security_code(client, token, clock)
    client.put(
        "/api/v1/me/login-password",
        headers=bearer(token),
        json={"new_password": GOOD, "sms_code": code},
    )
    started = client.post(
        "/api/v1/me/email", headers=bearer(token), json={"email": "Ada@Example.com"}
    )
    assert started.status_code == 202, started.text
    assert started.json()["email_pending"] == "Ada@example.com"
    wrong = client.post("/api/v1/me/email/confirm", headers=bearer(token), json={"code": "000000"})
    assert wrong.json()["code"] == "email.code_mismatch"
    confirmed = client.post(
        "/api/v1/me/email/confirm",
        headers=bearer(token),
        json={"code": email_code(client, "Ada@example.com")},
    )
    assert confirmed.json()["email"] == "Ada@example.com"
    by_email = client.post(
        "/api/v1/auth/password-sessions", json={"login": "ada@EXAMPLE.com", "password": GOOD}
    )
    assert by_email.status_code == 201, by_email.text
    # Replacing a proven address needs an SMS code.
    again = client.post(
        "/api/v1/me/email", headers=bearer(token), json={"email": "ada@example.org"}
    )
    assert again.json()["code"] == "security.code_required"


def test_an_address_belongs_to_one_account(client: TestClient, clock: FrozenClock) -> None:
    first = api_sign_up(client)["token"]
    client.post("/api/v1/me/email", headers=bearer(first), json={"email": "ada@example.com"})
    client.post(
        "/api/v1/me/email/confirm",
        headers=bearer(first),
        json={"code": email_code(client, "ada@example.com")},
    )
    second = api_sign_up(client, "8123 4567", "SG")["token"]
    taken = client.post(
        "/api/v1/me/email", headers=bearer(second), json={"email": "ADA@example.com"}
    )
    assert (taken.status_code, taken.json()["code"]) == (409, "email.taken")
    invalid = client.post("/api/v1/me/email", headers=bearer(second), json={"email": "ada@"})
    assert invalid.json()["code"] == "email.invalid"


def test_payment_password_lock_over_the_api(client: TestClient, clock: FrozenClock) -> None:
    token = api_sign_up(client)["token"]
    code = security_code(client, token, clock)
    weak = client.put(
        "/api/v1/me/payment-password",
        headers=bearer(token),
        json={"new_password": "123456", "sms_code": code},
    )
    assert weak.json()["code"] == "paypw.sequence"
    saved = client.put(
        "/api/v1/me/payment-password",
        headers=bearer(token),
        json={"new_password": "802417", "sms_code": code},
    )
    assert saved.status_code == 204, saved.text
    check = "/api/v1/me/payment-password/check"
    assert client.post(check, headers=bearer(token), json={"password": "802417"}).status_code == 204
    for _ in range(2):
        assert (
            client.post(check, headers=bearer(token), json={"password": "111112"}).status_code
            == 403
        )
    locked = client.post(check, headers=bearer(token), json={"password": "111112"})
    assert (locked.status_code, locked.headers["Retry-After"]) == (429, str(3 * 3600))
    status = client.get("/api/v1/me/security", headers=bearer(token)).json()
    assert status["payment_locked_until"] is not None


def test_log_out_everywhere_else_over_the_api(client: TestClient, clock: FrozenClock) -> None:
    token = api_sign_up(client)["token"]
    code = security_code(client, token, clock)
    client.put(
        "/api/v1/me/login-password",
        headers=bearer(token),
        json={"new_password": GOOD, "sms_code": code},
    )
    others = [
        client.post(
            "/api/v1/auth/password-sessions",
            json={"login": "07911 123456", "country": "GB", "password": GOOD},
        ).json()["token"]
        for _ in range(2)
    ]
    ended = client.delete("/api/v1/me/sessions", headers=bearer(token))
    assert ended.json() == {"ended": 2}
    assert all(client.get("/api/v1/me", headers=bearer(t)).status_code == 401 for t in others)
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200


def test_account_and_security_pages(client: TestClient, clock: FrozenClock) -> None:
    sign_up_by_form(client)
    page = client.get("/me/security")
    assert "Account and Security" in page.text
    assert 'data-testid="login-password-row"' in page.text
    token = csrf(client, "/me/security/login-password")
    clock.advance(seconds=61)
    sent = client.post(
        "/me/security/code", data={"csrf": token, "back": "/me/security/login-password"}
    )
    assert "A new code is on its way." in sent.text
    code = outbox_code(client, UK)
    weak = client.post(
        "/me/security/login-password",
        data={"csrf": token, "new_password": "password", "sms_code": code},
    )
    assert 'data-code="password.common"' in weak.text
    saved = client.post(
        "/me/security/login-password", data={"csrf": token, "new_password": GOOD, "sms_code": code}
    )
    assert "Login password saved." in saved.text
    # Payment password on the keypad page (the keypad types into these fields).
    keypad = client.get("/me/security/payment-password")
    assert 'id="keypad"' in keypad.text
    clock.advance(seconds=61)
    client.post("/me/security/code", data={"csrf": token, "back": "/me/security/payment-password"})
    code = outbox_code(client, UK)
    mismatch = client.post(
        "/me/security/payment-password",
        data={
            "csrf": token,
            "new_password": "802417",
            "confirm_password": "802418",
            "sms_code": code,
        },
    )
    assert 'data-code="paypw.confirm_mismatch"' in mismatch.text
    saved = client.post(
        "/me/security/payment-password",
        data={
            "csrf": token,
            "new_password": "802417",
            "confirm_password": "802417",
            "sms_code": code,
        },
    )
    assert "Payment password saved." in saved.text
    # Log out, then back in by password.
    client.post("/logout", data={"csrf": token})
    login_page = client.get("/login/password")
    assert "Log in with password" in login_page.text
    back_in = client.post(
        "/login/password",
        data={"csrf": token, "country": "GB", "login": "07911 123456", "password": GOOD},
    )
    assert back_in.url.path == "/home"
