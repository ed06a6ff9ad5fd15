"""A shop applies for a merchant account; an administrator approves it in the back office
(the merchant and its first portal user, the password shown once) or rejects it; both in
the audit log. And an operator makes a portal user from the command line."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from qianbao import audit, cli
from qianbao.db import Database
from qianbao.identity import staff
from qianbao.openplatform.merchants import accounts
from qianbao.settings import Settings, get_settings
from qianbao.wallet.payments import service as payments
from tests.openplatform.portal.helpers import csrf

PASSWORD = "a long staff passphrase"


@pytest.fixture
def db(client: TestClient) -> Database:
    database: Database = client.app.state.db  # type: ignore[attr-defined]
    return database


def apply(client: TestClient, **fields: str) -> str:
    token = csrf(client, "/merchant/apply")
    form = {
        "csrf": token,
        "shop_name": "Panda Tea",
        "contact_name": "Li Wei",
        "email": "li@panda-tea.example",
        "website": "https://panda-tea.example",
        **fields,
    }
    text: str = client.post("/merchant/apply", data=form).text
    return text


def admin_cookie(client: TestClient, db: Database, role: str = "admin") -> None:
    staff.create_staff(db, f"op-{role.replace('_', '-')}", "Operator", PASSWORD, role)
    token, _ = staff.sign_in(db, f"op-{role.replace('_', '-')}", PASSWORD)
    client.cookies.set("qb_staff", token)


def test_an_approved_application_makes_the_merchant_and_its_first_user(
    client: TestClient, db: Database
) -> None:
    assert 'data-testid="applied"' in apply(client)
    refused = apply(client, website="javascript:alert(1)")
    assert 'data-code="merchant_application.website"' in refused
    [pending] = db.run(accounts.applications)
    admin_cookie(client, db)
    page = client.get("/admin/merchants")
    assert page.status_code == 200 and "Panda Tea" in page.text
    token = csrf(client, "/admin/merchants")
    approved = client.post(
        f"/admin/merchants/applications/{pending.id}/approve", data={"csrf": token}
    )
    assert approved.status_code == 200
    shown = re.search(r'data-testid="first-password">([^<]+)<', approved.text)
    assert shown is not None
    again = client.post(f"/admin/merchants/applications/{pending.id}/approve", data={"csrf": token})
    assert again.status_code == 409 and "first-password" not in again.text
    assert db.run(lambda tx: payments.merchant_by_name(tx, "Panda Tea")) is not None
    signed = accounts.open_session(db, "li@panda-tea.example", shown.group(1), "page")
    assert signed.user.merchant == "Panda Tea"
    events = db.run(lambda tx: audit.events(tx, subject=f"merchant_application:{pending.id}"))
    assert "merchant_application.approved" in [e.action for e in events]
    assert all(e.actor.startswith("staff:") for e in events if e.action.endswith("approved"))


def test_a_rejected_application_makes_nothing(client: TestClient, db: Database) -> None:
    apply(client, shop_name="Shady Shop", email="x@shady.example")
    [pending] = db.run(accounts.applications)
    admin_cookie(client, db)
    token = csrf(client, "/admin/merchants")
    answer = client.post(
        f"/admin/merchants/applications/{pending.id}/reject",
        data={"csrf": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert db.run(accounts.applications) == []
    assert [a.shop_name for a in db.run(lambda tx: accounts.applications(tx, "rejected"))] == [
        "Shady Shop"
    ]
    assert db.run(lambda tx: payments.merchant_by_name(tx, "Shady Shop")) is None
    events = db.run(lambda tx: audit.events(tx, subject=f"merchant_application:{pending.id}"))
    assert "merchant_application.rejected" in [e.action for e in events]


def test_only_administrators_decide_applications(client: TestClient, db: Database) -> None:
    apply(client)
    admin_cookie(client, db, "reviewer")
    answer = client.get("/admin/merchants", headers={"Accept": "application/json"})
    assert (answer.status_code, answer.json()["code"]) == (403, "staff.role")


def test_an_administrator_adds_a_portal_user(client: TestClient, db: Database) -> None:
    db.run(lambda tx: payments.create_merchant(tx, "Noodle Bar"))
    admin_cookie(client, db)
    token = csrf(client, "/admin/merchants")
    answer = client.post(
        "/admin/merchants/users",
        data={"csrf": token, "merchant": "Noodle Bar", "login": "cashier1"},
    )
    shown = re.search(r'data-testid="first-password">([^<]+)<', answer.text)
    assert shown is not None
    assert accounts.open_session(db, "cashier1", shown.group(1), "api").user.merchant == (
        "Noodle Bar"
    )
    taken = client.post(
        "/admin/merchants/users",
        data={"csrf": token, "merchant": "Noodle Bar", "login": "CASHIER1"},
    )
    assert taken.status_code == 409 and 'data-code="merchant_user.exists"' in taken.text


def test_the_command_line_creates_a_merchant_user(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, database_url: str, db: Database
) -> None:
    db.run(lambda tx: payments.create_merchant(tx, "Dumpling House"))
    monkeypatch.setenv("QIANBAO_DATABASE_URL", database_url)
    monkeypatch.setenv("QIANBAO_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("QIANBAO_SECRET_KEY", settings.secret_key)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            cli.app, ["admin", "create-merchant-user", "Dumpling House", "boss@dumpling.example"]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    password = result.output.rsplit(": ", 1)[1].strip()
    signed = accounts.open_session(db, "boss@dumpling.example", password, "page")
    assert signed.user.merchant == "Dumpling House"
    unknown = CliRunner().invoke(
        cli.app, ["admin", "create-merchant-user", "Nobody", "a@b.example"]
    )
    assert unknown.exit_code != 0


def test_the_staff_api_decides_applications_too(client: TestClient, db: Database) -> None:
    apply(client)
    apply(client, shop_name="Second Shop", email="b@second.example")
    staff.create_staff(db, "api-admin", "Admin", PASSWORD, "admin")
    token = staff.open_session(db, "api-admin", PASSWORD, "api").token
    auth = {"Authorization": f"Bearer {token}"}
    waiting = client.get("/api/v1/staff/merchant-applications", headers=auth).json()
    by_name = {a["shop_name"]: a["id"] for a in waiting}
    assert set(by_name) == {"Panda Tea", "Second Shop"}
    made = client.post(
        f"/api/v1/staff/merchant-applications/{by_name['Panda Tea']}/approve", headers=auth
    )
    assert made.status_code == 201 and made.json()["login"] == "li@panda-tea.example"
    signed = accounts.open_session(db, "li@panda-tea.example", made.json()["first_password"], "api")
    assert signed.user.merchant == "Panda Tea"
    rejected = client.post(
        f"/api/v1/staff/merchant-applications/{by_name['Second Shop']}/reject", headers=auth
    )
    assert rejected.json()["status"] == "rejected"
    assert client.get("/api/v1/staff/merchant-applications", headers=auth).json() == []
    user = client.post(
        "/api/v1/staff/merchant-users",
        json={"merchant": "Panda Tea", "login": "cashier2"},
        headers=auth,
    )
    assert user.status_code == 201 and user.json()["merchant"] == "Panda Tea"
