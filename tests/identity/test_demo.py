"""Demo mode: the seeded accounts log in with the documented number and code."""

from __future__ import annotations

from fastapi.testclient import TestClient

from qianbao.db import Database
from qianbao.identity import service
from qianbao.identity.phone import parse_mobile


def test_demo_accounts_log_in_with_the_readme_code(db: Database, client: TestClient) -> None:
    accounts = db.run(service.seed_demo_accounts)
    assert [a.phone.international() for a in accounts] == [
        "+44 7911 000001",
        "+65 9123 4567",
        "+86 138 0013 8000",
    ]
    assert db.run(service.seed_demo_accounts) == accounts  # seeding twice changes nothing
    for account in accounts:
        typed = account.phone.international()
        assert parse_mobile(typed, "GB") == account.phone
        phone = {"country": account.phone.region, "number": typed}
        sent = client.post("/api/v1/auth/sms-codes", json={**phone, "purpose": "login"})
        assert sent.status_code == 201, sent.text
        signed = client.post(
            "/api/v1/auth/sessions", json={**phone, "purpose": "login", "code": "246810"}
        )
        assert signed.status_code == 201, signed.text


def test_the_fixed_code_works_only_in_demo_mode(db: Database, client: TestClient) -> None:
    db.run(service.seed_demo_accounts)
    client.app.state.settings.demo = False  # type: ignore[attr-defined]
    phone = {"country": "SG", "number": "9123 4567"}
    client.post("/api/v1/auth/sms-codes", json={**phone, "purpose": "login"})
    refused = client.post(
        "/api/v1/auth/sessions", json={**phone, "purpose": "login", "code": "246810"}
    )
    assert refused.json()["code"] == "otp.mismatch"
