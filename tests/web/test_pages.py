"""The server-rendered pages, driven like a browser without JavaScript."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from qianbao.app import create_app
from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.errors import NotAuthenticated
from qianbao.i18n import language_scope, translate
from qianbao.identity import service
from qianbao.identity.models import User
from qianbao.settings import Settings
from tests.api_helpers import AGREEMENT, outbox_code
from tests.helpers import HOME, UK


def csrf(client: TestClient, path: str = "/") -> str:
    page = client.get(path)
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, page.text[:500]
    return match.group(1)


def zh(message: str) -> str:
    with language_scope("zh_Hans"):
        return translate(message)


def sign_up_by_form(client: TestClient, number: str = "07911 123456") -> None:
    token = csrf(client)
    start = client.post("/start", data={"csrf": token, "country": "GB", "number": number})
    assert start.status_code == 200
    assert start.url.path == "/signup"
    assert "+44 7911 123456" in start.text
    sent = client.post(
        "/signup",
        data={
            "csrf": token,
            "country": "GB",
            "number": number,
            "agree": "yes",
            "agreement_version": AGREEMENT,
        },
    )
    assert sent.url.path == "/code"
    code = outbox_code(client, "+447911123456")
    done = client.post(
        "/code", data={"csrf": token, "phone": "+447911123456", "purpose": "signup", "code": code}
    )
    assert done.url.path == "/home"


def test_first_page_offers_every_calling_code_with_plus_86_first_choice(
    client: TestClient,
) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.text.count("<option") == 254
    assert re.search(r'<option value="CN"[^>]* selected>', page.text)
    assert "English" in page.text and "简体中文" in page.text


def test_sign_up_with_a_leading_zero_then_the_profile_says_unverified(client: TestClient) -> None:
    sign_up_by_form(client)
    me = client.get("/me")
    assert "/me/profile" in me.text
    profile = client.get("/me/profile")
    assert "Real-name verification" in profile.text
    assert 'class="status-pill status-unverified">Unverified<' in profile.text


def test_code_page_names_the_number_and_counts_down(client: TestClient) -> None:
    token = csrf(client)
    client.post("/start", data={"csrf": token, "country": "GB", "number": "07911 123456"})
    page = client.post(
        "/signup",
        data={
            "csrf": token,
            "country": "GB",
            "number": "07911123456",
            "agree": "yes",
            "agreement_version": AGREEMENT,
        },
    )
    assert "Enter the 6-digit code sent to +44 7911 123456" in page.text
    assert 'data-wait="60"' in page.text
    resend = client.post(
        "/code/resend",
        data={
            "csrf": token,
            "phone": "+447911123456",
            "purpose": "signup",
            "agreement_version": AGREEMENT,
        },
    )
    assert resend.status_code == 429
    assert 'data-code="otp.resend_too_soon"' in resend.text


def test_sign_up_needs_the_agreement_even_without_javascript(client: TestClient) -> None:
    token = csrf(client)
    refused = client.post(
        "/signup",
        data={
            "csrf": token,
            "country": "GB",
            "number": "07911 123456",
            "agreement_version": AGREEMENT,
        },
    )
    assert refused.status_code == 422
    assert 'data-code="agreement.required"' in refused.text


def test_forms_without_the_csrf_token_are_refused(client: TestClient) -> None:
    client.get("/")
    refused = client.post(
        "/start", data={"country": "GB", "number": "07911 123456"}, headers={"Accept": "text/html"}
    )
    assert refused.status_code == 403
    assert "csrf.failed" in refused.text
    forged = client.post(
        "/start", data={"csrf": "forged", "country": "GB", "number": "07911 123456"}
    )
    assert forged.status_code == 403
    assert forged.json()["code"] == "csrf.failed"


def test_bad_number_is_explained_on_the_page(client: TestClient) -> None:
    token = csrf(client)
    page = client.post("/start", data={"csrf": token, "country": "MY", "number": "012"})
    assert page.status_code == 422
    assert 'data-code="phone.too_short"' in page.text
    assert 'value="012"' in page.text  # what they typed is kept


def test_language_choice_sticks_in_a_cookie_then_in_the_account(client: TestClient) -> None:
    token = csrf(client)
    switched = client.post("/language", data={"csrf": token, "language": "zh_Hans", "next": "/"})
    assert switched.url.path == "/"
    assert '<html lang="zh-Hans">' in switched.text
    assert zh("Mobile number") in switched.text
    sign_up_by_form(client)
    profile = client.get("/me/profile")
    assert zh("Unverified") in profile.text
    # The account keeps the choice: a new device without the cookie gets Chinese.
    client.cookies.delete("qb_lang")
    assert '<html lang="zh-Hans">' in client.get("/me/profile").text


def test_language_switch_returns_to_the_same_page_and_not_elsewhere(client: TestClient) -> None:
    token = csrf(client)
    back = client.post(
        "/language", data={"csrf": token, "language": "en", "next": "//evil.example/"}
    )
    assert back.url.path == "/"
    assert back.url.host == "127.0.0.1"


@pytest.mark.parametrize("language", ["en", "zh_Hans"])
def test_every_page_renders_in_both_languages(client: TestClient, language: str) -> None:
    client.cookies.set("qb_lang", language)
    sign_up_by_form(client)
    for path in (
        "/home",
        "/wallet",
        "/me",
        "/me/profile",
        "/me/sessions",
        "/demo/outbox",
        "/signup?phone=%2B6581234567",
        "/code?phone=%2B447911123456&purpose=login",
        "/me/settings",
        "/me/certification",
        "/me/security",
        "/me/security/login-password",
        "/me/security/payment-password",
        "/me/security/email",
        "/me/personal-info",
        "/me/personal-info/occupation",
        "/me/personal-info/address",
        "/login/password",
    ):
        page = client.get(path)
        assert page.status_code == 200, path
        expected = "zh-Hans" if language == "zh_Hans" else "en"
        assert f'<html lang="{expected}">' in page.text, path
        if language == "zh_Hans":  # the page's own heading is translated too
            heading = re.search(r"<h1>(.*?)</h1>", page.text, re.S)
            assert heading is None or not re.fullmatch(r"[A-Za-z ]+", heading.group(1).strip())


def test_log_out_and_revoke_from_the_sessions_page(client: TestClient) -> None:
    sign_up_by_form(client)
    sessions = client.get("/me/sessions")
    assert "This device" in sessions.text
    token = csrf(client, "/me")
    out = client.post("/logout", data={"csrf": token})
    assert out.url.path == "/"
    assert client.get("/me/profile").url.path == "/"


def test_log_out_everywhere_else_ends_the_other_sessions_and_keeps_this_one(
    client: TestClient,
) -> None:
    sign_up_by_form(client)
    db: Database = client.app.state.db  # type: ignore[attr-defined]

    def another_session(tx: Tx) -> str:
        user = tx.session.scalars(select(User).where(User.phone_e164 == UK.e164)).one()
        return service.open_session(tx, user, HOME, "api").token

    other = db.run(another_session)
    token = csrf(client, "/me/sessions")
    done = client.post("/me/sessions/others/revoke", data={"csrf": token})
    assert done.status_code == 200 and done.url.path == "/me/sessions"  # it was a 422
    with pytest.raises(NotAuthenticated):
        db.run(lambda tx: service.authenticate(tx, other))
    assert client.get("/me/profile").url.path == "/me/profile"  # this one stays


def test_signed_out_visitors_are_sent_to_the_first_page(client: TestClient) -> None:
    for path in ("/home", "/wallet", "/me", "/me/profile", "/me/sessions"):
        assert client.get(path).url.path == "/"


def test_the_demo_outbox_exists_only_in_demo_mode(settings: Settings, clock: FrozenClock) -> None:
    settings.demo = False
    with TestClient(create_app(settings, clock), base_url="http://127.0.0.1") as plain:
        assert plain.get("/demo/outbox").status_code == 404
        assert plain.get("/api/v1/demo/outbox").status_code == 404


def test_pages_forbid_framing_and_foreign_scripts(client: TestClient) -> None:
    headers = client.get("/").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "script-src 'self'" in headers["content-security-policy"]
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_signing_up_an_existing_number_goes_back_to_login(
    client: TestClient, clock: FrozenClock
) -> None:
    sign_up_by_form(client)
    token = csrf(client, "/me")
    client.post("/logout", data={"csrf": token})
    clock.advance(seconds=61)
    again = client.post(
        "/signup",
        data={
            "csrf": token,
            "country": "GB",
            "number": "07911 123456",
            "agree": "yes",
            "agreement_version": AGREEMENT,
        },
    )
    assert again.url.path == "/"
    assert "This number already has an account. Log in instead." in again.text
    assert 'value="7911123456"' in again.text


def test_pressing_next_twice_still_reaches_the_code_page(
    client: TestClient, clock: FrozenClock
) -> None:
    sign_up_by_form(client)
    client.post("/logout", data={"csrf": csrf(client, "/me")})
    clock.advance(seconds=61)
    token = csrf(client)
    form = {"csrf": token, "country": "GB", "number": "07911 123456"}
    first = client.post("/start", data=form)
    second = client.post("/start", data=form)  # within the resend cooldown
    assert first.url.path == second.url.path == "/code"
    assert "Resend in" in second.text


def test_the_demo_outbox_shows_sms_and_email(client: TestClient) -> None:
    from tests.api_helpers import api_sign_up, bearer

    token = api_sign_up(client)["token"]
    client.post("/api/v1/me/email", headers=bearer(token), json={"email": "ada@example.com"})
    page = client.get("/demo/outbox")
    assert page.status_code == 200
    assert "+44 7911 123456" in page.text
    assert "ada@example.com" in page.text
    assert "delivered" in page.text


def test_certification_center_turns_complete_with_personal_information(
    client: TestClient,
) -> None:
    sign_up_by_form(client)
    center = client.get("/me/certification")
    assert "Certification center" in center.text
    row = re.search(r'data-testid="cert-personal-info".*?</li>', center.text, re.S)
    assert row and ">Incomplete<" in row.group(0)
    token = csrf(client, "/me/personal-info/occupation")
    client.post("/me/personal-info/occupation", data={"csrf": token, "occupation": "student"})
    client.post(
        "/me/personal-info/address",
        data={
            "csrf": token,
            "state": "OVERSEAS",
            "city": "OVERSEAS",
            "street": "10 Downing Street, London",
        },
    )
    center = client.get("/me/certification")
    row = re.search(r'data-testid="cert-personal-info".*?</li>', center.text, re.S)
    assert row and ">Complete<" in row.group(0)
