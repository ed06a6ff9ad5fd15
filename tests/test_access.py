"""Who may call what: every route of the app has a line in qianbao/access.py, and the
authorization matrix (every route, against anonymous, another person, the owner and each
staff role) answers as that line says. Then the cells that matter most, by hand: a
reviewer cannot freeze, a risk officer cannot decide a verification case, support
changes nothing, an administrator manages staff; and objects (a paid order, pay-for-me,
a transfer, a session) answer their owner and the same 404 to anyone else as to an id
that does not exist. Merchants have no sessions of their own yet (the demo shop is
anyone's), so no merchant actor. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from httpx import Response

from qianbao import access, audit, gate
from qianbao.access import ROUTES, Role
from qianbao.app import create_app
from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.errors import NotAuthenticated
from qianbao.identity import service as identity
from qianbao.identity import staff
from qianbao.identity.phone import parse_mobile
from qianbao.risk import restrictions
from qianbao.settings import Settings
from qianbao.wallet.pay_for_me import service as pay_for_me
from qianbao.wallet.pay_for_me.service import Source
from qianbao.wallet.payments import service as payments
from qianbao.wallet.transfers import service as transfers
from tests.helpers import HOME, last_code, sign_up
from tests.wallet.test_pay_for_me import new_order, person, verified_friend
from tests.wallet.test_payments import PIN
from tests.web.test_pages import csrf

PASSWORD = "a long staff passphrase"


# --- the declarations ------------------------------------------------------------------


def test_every_route_of_the_app_declares_who_may_call_it(settings: Settings) -> None:
    # Demo mode and a metrics token: every route the app can have.
    app = create_app(settings.model_copy(update={"metrics_token": "scrape"}))
    missing = access.undeclared(gate.app_routes(app))
    assert missing == [], access.missing_message(missing)
    assert access.stale(gate.app_routes(app)) == [], "lines in ROUTES that name no route"


def test_a_route_without_a_declaration_stops_the_app_and_says_how_to_declare_it() -> None:
    app = FastAPI()

    @app.get("/api/v1/new-thing/{thing_id}")
    def new_thing(thing_id: str) -> dict[str, str]:
        return {}

    with pytest.raises(RuntimeError) as stopped:
        gate.check_declarations(app)
    message = str(stopped.value)
    assert '"GET /api/v1/new-thing/{thing_id}": PERSON,' in message
    assert "ROUTES in qianbao/access.py" in message


def test_routes_the_gate_cannot_guard_are_declared_for_anyone(settings: Settings) -> None:
    """Docs and static files are not FastAPI operations, so no dependency runs on them:
    their line must say ANYONE, or the table would promise what nothing enforces."""
    app = create_app(settings)
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute):
            path = context.path or getattr(context.original_route, "path", "")
            assert access.declared("GET", path) == access.ANYONE, path


# Ending one's own staff token changes nothing but that token (the pages' logout is
# ANYONE's: it ends whatever the cookie names).
OWN_SIGN_OUT = "DELETE /api/v1/staff/session"
ADMIN_ONLY = ("/admin/staff", "/api/v1/staff/members", "/api/v1/staff/audit-events")


def test_support_may_change_nothing_and_only_admins_manage_staff() -> None:
    for key, who in ROUTES.items():
        method, path = key.split(" ", 1)
        if method != "GET" and key != OWN_SIGN_OUT:
            assert not who.admits_role(Role.SUPPORT), key
        if path.startswith(ADMIN_ONLY):
            assert who == access.ADMIN, key


# --- the matrix is tests/test_access_matrix.py; here, how a browser is refused ----------


def test_a_browser_is_sent_to_the_right_sign_in_page(client: TestClient) -> None:
    """Pages asked for by a browser redirect rather than answer a problem body."""
    assert client.get("/wallet", follow_redirects=False).headers["location"] == "/"
    assert client.get("/admin/people", follow_redirects=False).headers["location"] == (
        "/admin/login"
    )
    assert client.get("/api/v1/wallet").json()["code"] == "session.missing"


# --- the cells that matter, by hand ----------------------------------------------------


def staff_client(client: TestClient, role: Role, username: str) -> tuple[TestClient, str]:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    staff.create_staff(db, username, username.title(), PASSWORD, role)
    browser = TestClient(client.app, base_url="http://127.0.0.1")
    token = csrf(browser, "/admin/login")
    signed = browser.post(
        "/admin/login", data={"csrf": token, "username": username, "password": PASSWORD}
    )
    assert signed.url.path == access.STAFF_HOME[role], signed.url.path
    return browser, token


def test_a_reviewer_cannot_freeze(client: TestClient) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    target = sign_up(db, parse_mobile("07911 123456", "GB")).account
    reviewer, token = staff_client(client, Role.REVIEWER, "rita")
    tried = reviewer.post(
        "/admin/restrictions",
        data={"csrf": token, "phone": "+44 7911 123456", "kind": "frozen", "note": "why not"},
    )
    assert tried.status_code == 403
    assert db.run(lambda tx: restrictions.active(tx, target.id)) is None
    assert reviewer.get("/admin/restrictions").status_code == 403


def test_a_risk_officer_freezes_but_cannot_decide_a_verification_case(
    client: TestClient,
) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    target = sign_up(db, parse_mobile("07911 123456", "GB")).account
    officer, token = staff_client(client, Role.RISK_OFFICER, "rob")
    decided = officer.post(
        f"/admin/reviews/{uuid.uuid4()}/decision",
        data={"csrf": token, "decision": "approve", "reason": "document_ok", "note": ""},
    )
    assert decided.status_code == 403
    assert officer.get("/admin/reviews").status_code == 403
    frozen = officer.post(
        "/admin/restrictions",
        data={"csrf": token, "phone": "+44 7911 123456", "kind": "frozen", "note": "fraud"},
    )
    assert frozen.url.path == "/admin/restrictions" and 'data-testid="done"' in frozen.text
    found = db.run(lambda tx: restrictions.active(tx, target.id))
    assert found is not None and found.kind == "frozen"


def test_support_looks_a_person_up_and_changes_nothing(client: TestClient) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    sign_up(db, parse_mobile("07911 123456", "GB"))
    support, token = staff_client(client, Role.SUPPORT, "sam")
    seen = support.get("/admin/people", params={"phone": "+44 7911 123456"})
    assert seen.status_code == 200 and 'data-testid="person-level"' in seen.text
    assert "Unverified" in seen.text and "CNY" in seen.text
    for method, path in [
        ("POST", "/admin/restrictions"),
        ("POST", f"/admin/restrictions/{uuid.uuid4()}/release"),
        ("POST", f"/admin/appeals/{uuid.uuid4()}/decision"),
        ("POST", f"/admin/reviews/{uuid.uuid4()}/decision"),
        ("POST", "/admin/staff"),
    ]:
        answer = support.request(method, path, data={"csrf": token, "note": "x", "phone": "x"})
        assert answer.status_code == 403, (method, path)
    assert support.get("/admin/staff").status_code == 403


def test_an_administrator_manages_staff_and_nothing_else(client: TestClient) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    admin, token = staff_client(client, Role.ADMIN, "ada")
    made = admin.post(
        "/admin/staff",
        data={
            "csrf": token,
            "username": "nia",
            "display_name": "Nia",
            "password": PASSWORD,
            "role": "support",
        },
    )
    assert made.url.path == "/admin/staff" and 'data-testid="staff-nia"' in made.text
    nia = next(m for m in db.run(staff.all_staff) if m.username == "nia")
    assert nia.role == "support"
    admin.post(f"/admin/staff/{nia.id}/role", data={"csrf": token, "role": "risk_officer"})
    _, member = staff.sign_in(db, "nia", PASSWORD)
    assert member.role == "risk_officer"
    admin.post(f"/admin/staff/{nia.id}/disable", data={"csrf": token})
    with pytest.raises(NotAuthenticated):  # a disabled account cannot sign in
        staff.sign_in(db, "nia", PASSWORD)
    actions = [event.action for event in db.run(lambda tx: _audit(tx, nia.id))]
    assert sorted(actions) == ["staff.created", "staff.disabled", "staff.role_changed"]
    own = next(m for m in db.run(staff.all_staff) if m.username == "ada")
    self_change = admin.post(f"/admin/staff/{own.id}/role", data={"csrf": token, "role": "admin"})
    assert self_change.status_code == 409
    assert admin.get("/admin/reviews").status_code == 403
    assert admin.get("/admin/restrictions").status_code == 403
    assert admin.get("/admin/people", params={"phone": "+44 7911 123456"}).status_code == 403


def _audit(tx: Tx, staff_id: uuid.UUID) -> list[audit.Event]:
    return audit.events(tx, f"staff:{staff_id}")


# --- objects: their owner, and the same 404 for anyone else as for nothing ---------------


def test_objects_answer_their_owner_and_the_same_404_to_others_as_to_nothing(
    client: TestClient, clock: FrozenClock
) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    shop = db.run(lambda tx: payments.create_merchant(tx, "Tea House"))
    owner = verified_friend(db, clock, "07911 123456", "500")
    friend = verified_friend(db, clock, "07912 345678", "500")
    person(db, clock, "07911 222333")  # a stranger to all of it
    paid = new_order(db, shop, "60.00")
    payments.pay_with_balance(db, owner, paid, PIN)
    asked = new_order(db, shop, "20.00")
    link = db.run(lambda tx: pay_for_me.ask_a_friend(tx, owner, asked))
    pay_for_me.pay(db, friend, link.token, Source("balance"), PIN)
    sent = transfers.send(db, owner, "+44 7912 345678", "5", "tea", PIN, "key-1")
    clock.advance(seconds=61)  # past the codes' resend cooldown
    tokens = {who: _token(db, number) for who, number in _NUMBERS.items()}
    cases = [
        # (path, the people whose object it is)
        (f"/api/v1/orders/{paid}/cashier", ("owner",)),
        (f"/api/v1/orders/{asked}/cashier", ("owner", "friend")),
        (f"/api/v1/wallet/payments/{paid}", ("owner",)),
        (f"/api/v1/wallet/transfers/{sent.id}", ("owner", "friend")),
        (f"/cashier/{paid}", ("owner",)),
        (f"/wallet/payments/{paid}", ("owner",)),
        (f"/wallet/transfers/{sent.id}", ("owner", "friend")),
    ]
    for path, owners in cases:
        unknown_path = path.replace(str(paid), str(uuid.uuid4())).replace(
            str(asked), str(uuid.uuid4())
        )
        unknown_path = unknown_path.replace(str(sent.id), str(uuid.uuid4()))
        for who, token in tokens.items():
            answer = _get(client, path, token)
            if who in owners:
                assert answer.status_code == 200, (path, who, answer.text[:200])
            else:
                nothing = _get(client, unknown_path, token)
                assert answer.status_code == nothing.status_code == 404, (path, who)
                assert answer.text == nothing.text, (path, who)


_NUMBERS = {"owner": "07911 123456", "friend": "07912 345678", "stranger": "07911 222333"}


def _token(db: Database, number: str) -> str:
    phone = parse_mobile(number, "GB")
    identity.send_code(db, phone, "login", HOME, "en", None)
    return identity.sign_in(db, phone, "login", last_code(db, phone), HOME).token


def _get(client: TestClient, path: str, token: str) -> Response:
    return client.get(
        path,
        headers={"Authorization": f"Bearer {token}", "Cookie": f"qb_session={token}"},
        follow_redirects=False,
    )


def test_another_person_cannot_end_my_session_and_learns_nothing_trying(
    client: TestClient, db: Database
) -> None:
    mine = sign_up(db, parse_mobile("07911 123456", "GB"))
    theirs = sign_up(db, parse_mobile("07912 345678", "GB"))
    headers = {"Authorization": f"Bearer {theirs.token}"}
    tried = client.delete(f"/api/v1/me/sessions/{mine.session_id}", headers=headers)
    nothing = client.delete(f"/api/v1/me/sessions/{uuid.uuid4()}", headers=headers)
    assert (tried.status_code, tried.text) == (nothing.status_code, nothing.text)
    still = client.get("/api/v1/me", headers={"Authorization": f"Bearer {mine.token}"})
    assert still.status_code == 200
