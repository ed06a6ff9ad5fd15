"""The identity JSON API: sign-up, login, sessions, language, and its error bodies."""

from __future__ import annotations

from fastapi.testclient import TestClient

from qianbao.clock import FrozenClock
from tests.api_helpers import AGREEMENT, api_sign_up, bearer, outbox_code

UK = {"country": "GB", "number": "07911 123456"}


def test_a_new_number_goes_to_sign_up_and_then_to_login(client: TestClient) -> None:
    first = client.post("/api/v1/auth/number-check", json=UK).json()
    assert first == {
        "e164": "+447911123456",
        "international": "+44 7911 123456",
        "has_account": False,
        "next": "signup",
    }
    signed = api_sign_up(client)
    assert signed["is_new_account"] is True
    assert signed["account"]["verification"] == {"level": "unverified", "label": "Unverified"}
    again = client.post("/api/v1/auth/number-check", json=UK).json()
    assert again["next"] == "login"


def test_login_by_code_for_an_existing_account(client: TestClient, clock: FrozenClock) -> None:
    api_sign_up(client)
    clock.advance(seconds=61)
    sent = client.post("/api/v1/auth/sms-codes", json={**UK, "purpose": "login"})
    assert sent.status_code == 201
    assert sent.json()["code_length"] == 6
    code = outbox_code(client, "+447911123456")
    signed = client.post("/api/v1/auth/sessions", json={**UK, "purpose": "login", "code": code})
    assert signed.status_code == 201
    assert signed.json()["is_new_account"] is False
    me = client.get("/api/v1/me", headers=bearer(signed.json()["token"]))
    assert me.json()["phone"] == "+44 7911 123456"


def test_unknown_number_at_login(client: TestClient) -> None:
    response = client.post("/api/v1/auth/sms-codes", json={**UK, "purpose": "login"})
    assert response.status_code == 404
    assert response.json()["code"] == "account.not_found"


def test_agreement_is_required_and_versioned(client: TestClient) -> None:
    response = client.post("/api/v1/auth/sms-codes", json={**UK, "purpose": "signup"})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "agreement.required"
    assert body["details"]["current_version"] == AGREEMENT
    agreement = client.get("/api/v1/agreement", headers={"Accept-Language": "zh-CN"}).json()
    assert agreement["version"] == AGREEMENT
    assert (
        agreement["paragraphs"]
        and agreement["title"] != "Qianbao user agreement and privacy policy"
    )


def test_errors_are_problem_bodies_in_the_requests_language(client: TestClient) -> None:
    bad = {"country": "GB", "number": "07911"}
    english = client.post("/api/v1/auth/number-check", json=bad)
    chinese = client.post(
        "/api/v1/auth/number-check", json=bad, headers={"Accept-Language": "zh-CN,zh;q=0.9"}
    )
    assert english.status_code == chinese.status_code == 422
    assert english.json()["code"] == chinese.json()["code"] == "phone.too_short"
    assert set(english.json()) == {"code", "message", "details"}
    assert english.json()["message"] != chinese.json()["message"]
    assert "英国" in chinese.json()["message"]


def test_rate_limits_say_when_to_come_back(client: TestClient) -> None:
    body = {**UK, "purpose": "signup", "agreement_version": AGREEMENT}
    assert client.post("/api/v1/auth/sms-codes", json=body).status_code == 201
    again = client.post("/api/v1/auth/sms-codes", json=body)
    assert again.status_code == 429
    assert again.headers["Retry-After"] == "60"
    assert again.json()["details"]["retry_after"] == 60


def test_malformed_requests_never_cause_a_server_error(client: TestClient) -> None:
    cases = [
        ("/api/v1/auth/number-check", b"{not json"),
        ("/api/v1/auth/number-check", b"[]"),
        ("/api/v1/auth/number-check", b'{"number": 12}'),
        ("/api/v1/auth/sms-codes", b'{"number": "07911 123456", "purpose": "steal"}'),
        ("/api/v1/auth/sessions", b'{"number": "07911 123456", "purpose": "login"}'),
        ("/api/v1/auth/sessions", ('{"country":"GB","number":"' + "9" * 5000 + '"}').encode()),
    ]
    for path, payload in cases:
        response = client.post(path, content=payload, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (path, payload, response.text)
        assert response.json()["code"] == "request.invalid"
    assert client.get("/api/v1/nowhere").json()["code"] == "not_found"


def test_sessions_idle_out_after_thirty_minutes(client: TestClient, clock: FrozenClock) -> None:
    token = api_sign_up(client)["token"]
    clock.advance(minutes=29)
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    clock.advance(minutes=29)  # active 29 minutes ago: still alive
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    clock.advance(minutes=30)
    expired = client.get("/api/v1/me", headers=bearer(token))
    assert expired.status_code == 401
    assert expired.json()["code"] == "session.expired"


def test_sessions_end_after_twelve_hours_however_active(
    client: TestClient, clock: FrozenClock
) -> None:
    token = api_sign_up(client)["token"]
    for _ in range(47):
        clock.advance(minutes=15)
        assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    clock.advance(minutes=15)
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401


def test_list_revoke_and_log_out(client: TestClient, clock: FrozenClock) -> None:
    phone_token = api_sign_up(client, headers={"User-Agent": "Qianbao-iOS/1.0"})["token"]
    clock.advance(seconds=61)
    client.post("/api/v1/auth/sms-codes", json={**UK, "purpose": "login"})
    code = outbox_code(client, "+447911123456")
    laptop = client.post(
        "/api/v1/auth/sessions",
        json={**UK, "purpose": "login", "code": code},
        headers={"User-Agent": "Firefox"},
    ).json()["token"]
    listed = client.get("/api/v1/me/sessions", headers=bearer(laptop)).json()
    assert [(s["user_agent"], s["current"]) for s in listed] == [
        ("Firefox", True),
        ("Qianbao-iOS/1.0", False),
    ]
    other = listed[1]["id"]
    assert client.delete(f"/api/v1/me/sessions/{other}", headers=bearer(laptop)).status_code == 204
    assert client.get("/api/v1/me", headers=bearer(phone_token)).status_code == 401
    assert client.delete("/api/v1/auth/session", headers=bearer(laptop)).status_code == 204
    assert client.get("/api/v1/me", headers=bearer(laptop)).status_code == 401


def test_someone_elses_session_cannot_be_revoked(client: TestClient, clock: FrozenClock) -> None:
    mine = api_sign_up(client)["token"]
    theirs = api_sign_up(client, "8123 4567", "SG")["token"]
    their_session = client.get("/api/v1/me/sessions", headers=bearer(theirs)).json()[0]["id"]
    refused = client.delete(f"/api/v1/me/sessions/{their_session}", headers=bearer(mine))
    assert refused.status_code == 404
    assert client.get("/api/v1/me", headers=bearer(theirs)).status_code == 200


def test_the_account_language_is_used_when_the_request_names_none(client: TestClient) -> None:
    token = api_sign_up(client)["token"]
    changed = client.put("/api/v1/me/language", json={"language": "zh_Hans"}, headers=bearer(token))
    assert changed.json()["language"] == "zh_Hans"
    me = client.get("/api/v1/me", headers={**bearer(token), "Accept-Language": ""})
    assert me.json()["verification"]["label"] != "Unverified"
    english = client.get("/api/v1/me", headers={**bearer(token), "Accept-Language": "en"})
    assert english.json()["verification"]["label"] == "Unverified"


def test_missing_or_forged_tokens(client: TestClient) -> None:
    assert client.get("/api/v1/me").json()["code"] == "session.missing"
    forged = client.get("/api/v1/me", headers=bearer("x" * 43))
    assert (forged.status_code, forged.json()["code"]) == (401, "session.invalid")


def test_calling_codes_in_both_languages(client: TestClient) -> None:
    rows = client.get("/api/v1/calling-codes", headers={"Accept-Language": "zh-Hans"}).json()
    malaysia = next(r for r in rows if r["region"] == "MY")
    assert (malaysia["code"], malaysia["name_en"], malaysia["name_zh"]) == (
        60,
        "Malaysia",
        "马来西亚",
    )
    assert malaysia["name"] == "马来西亚"


def test_openapi_documents_every_step(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/auth/number-check",
        "/api/v1/auth/sms-codes",
        "/api/v1/auth/sessions",
        "/api/v1/me",
        "/api/v1/me/sessions",
        "/api/v1/me/language",
    ):
        assert path in paths
    assert client.get("/docs").status_code == 200
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ok"
