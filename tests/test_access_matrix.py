"""The authorization matrix: every route of the app (read from the app's own route
table), against anonymous, another person, the owner, each staff role and two merchant
users (of two merchants), answers as its line in qianbao/access.py says: let through, or
refused with the gate's code. (That one merchant never sees another's trade is the
portal's tests' to show: the gate admits any merchant user; the handler answers 404.)

Every actor sends what it holds on every request: a person their token as the bearer and
the cookie; a staff member the back office's cookie and a staff API token as the bearer;
a merchant user the portal's cookie and a merchant API token as the bearer.
So the staff API (/api/v1/staff/...) is exercised with staff bearer tokens, a person's
token is tried on every staff operation and a staff token on every person's operation
(the gate answers ``session.invalid``: it is no person's token), and likewise a merchant's.

One app and one set of signed-in actors per database for the whole module (building an
app per route would take minutes); its own database, on SQLite and PostgreSQL, so that
no other module's tests run in between."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from qianbao import access, gate
from qianbao.access import Role
from qianbao.app import create_app
from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.identity import service as identity
from qianbao.identity import staff
from qianbao.identity.phone import PhoneNumber, parse_mobile
from qianbao.openplatform.merchants import accounts
from qianbao.settings import Settings
from qianbao.wallet.payments import service as payments
from tests.conftest import BACKENDS, truncate_pg
from tests.helpers import HOME, last_code, sign_up

PASSWORD = "a long staff passphrase"
METRICS = "scrape-token"  # so that GET /metrics is a route too
PEOPLE = {"owner": parse_mobile("07911 123456", "GB"), "other": parse_mobile("07912 345678", "GB")}
MERCHANTS = {"merchant:tea": "Matrix Teahouse", "merchant:other": "Matrix Bookshop"}
ACTORS = ("anonymous", *PEOPLE, *(f"staff:{role}" for role in Role), *MERCHANTS)
# What the gate answers when it refuses; nothing else answers these.
SIGN_IN_CODES = {
    "session.missing",
    "session.invalid",
    "session.expired",
    "staff.not_signed_in",
    "merchant_user.not_signed_in",
}
# The requests in the matrix that end the caller's own session (a person's; a staff token).
ENDS_THE_SESSION = ("DELETE", "/api/v1/auth/session")
ENDS_THE_STAFF_TOKEN = ("DELETE", "/api/v1/staff/session")
ENDS_THE_MERCHANT_TOKEN = ("DELETE", "/api/v1/merchant/session")


def _routes() -> list[tuple[str, str]]:
    """The app's own route table (built once, at collection, with a throwaway database).
    Static files are a mount the gate does not see: test_access checks its line."""
    settings = Settings(
        database_url="sqlite://", secret_key="collect-only", demo=True, metrics_token=METRICS
    )
    app = create_app(settings)
    return sorted({route for route in gate.app_routes(app) if route[1] != "/static"})


ROUTES = _routes()


@dataclass
class World:
    client: TestClient
    db: Database
    clock: FrozenClock
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    merchant_passwords: dict[str, str] = field(default_factory=dict)

    def sign_in_people(self) -> None:
        self.clock.advance(seconds=61)  # past the last code's resend cooldown
        for name, phone in PEOPLE.items():
            self.headers[name] = _person_headers(_login(self.db, phone))

    def sign_in_staff(self) -> None:
        """Each role's cookie (the pages) and bearer token (the staff API)."""
        for role in Role:
            name = _staff_name(role)
            page, _ = staff.sign_in(self.db, name, PASSWORD)
            api = staff.open_session(self.db, name, PASSWORD, "api").token
            self.headers[f"staff:{role}"] = {
                "Cookie": f"qb_staff={page}",
                "Authorization": f"Bearer {api}",
            }

    def sign_in_merchants(self) -> None:
        """Each merchant user's portal cookie and merchant API token."""
        for actor, password in self.merchant_passwords.items():
            login = _merchant_login(actor)
            page = accounts.open_session(self.db, login, password, "page").token
            api = accounts.open_session(self.db, login, password, "api").token
            self.headers[actor] = {
                "Cookie": f"qb_merchant={page}",
                "Authorization": f"Bearer {api}",
            }


def _new_merchant(tx: Tx, *, name: str) -> uuid.UUID:
    return payments.create_merchant(tx, name)


def _merchant_login(actor: str) -> str:
    return actor.replace(":", "-") + "@example.com"


def _staff_name(role: Role) -> str:
    return f"s-{role.value.replace('_', '-')}"


def _login(db: Database, phone: PhoneNumber) -> str:
    identity.send_code(db, phone, "login", HOME, "en", None)
    return identity.sign_in(db, phone, "login", last_code(db, phone), HOME).token


def _person_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Cookie": f"qb_session={token}"}


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("matrix")
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_migrated")
        truncate_pg(url)
    else:
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copy(template, tmp / "qianbao.db")
        url = f"sqlite:///{tmp / 'qianbao.db'}"
    settings = Settings(
        database_url=url,
        var_dir=tmp / "var",
        secret_key="test-secret-key-not-for-production",
        demo=True,
        metrics_token=METRICS,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
    )
    clock = FrozenClock()
    app = create_app(settings, clock)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        db: Database = app.state.db
        made = World(client, db, clock, {"anonymous": {}})
        for phone in PEOPLE.values():
            sign_up(db, phone)
        made.sign_in_people()
        for role in Role:
            staff.create_staff(db, _staff_name(role), role.value, PASSWORD, role)
        made.sign_in_staff()
        for actor, name in MERCHANTS.items():
            db.run(partial(_new_merchant, name=name))
            made.merchant_passwords[actor] = accounts.create_user(
                db, name, _merchant_login(actor)
            ).password
        made.sign_in_merchants()
        yield made


def expected(who: access.Who, actor: str, path: str) -> str:
    """The table's answer for one cell: 'pass', or the code of the refusal."""
    if who.kind in ("anyone", "own_token"):  # the gate lets them by; a handler may not
        return "pass"
    if who.kind == "merchant":
        return "pass" if actor in MERCHANTS else "merchant_user.not_signed_in"
    if who.kind == "person":
        if actor in PEOPLE:
            return "pass"
        # A staff member's or a merchant's bearer token is no person's: an unknown token.
        api = path.startswith("/api/")
        return "session.invalid" if api and actor not in ("anonymous",) else "session.missing"
    if not actor.startswith("staff:"):
        return "staff.not_signed_in"
    return "pass" if who.admits_role(actor.removeprefix("staff:")) else "staff.role"


def outcome(response: Response) -> str:
    """'pass' unless the gate refused (its refusals carry codes nothing else sends)."""
    if response.status_code not in (401, 403):
        return "pass"
    code = response.json().get("code") if "json" in response.headers["content-type"] else None
    refused = code in SIGN_IN_CODES if response.status_code == 401 else code == "staff.role"
    return str(code) if refused else "pass"


def concrete(path: str) -> str:
    """The path with a made-up value in each parameter."""
    return re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), path)


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_the_authorization_matrix(world: World, method: str, path: str) -> None:
    who = access.declared(method, path)
    assert who is not None, access.missing_message([access.route_key(method, path)])
    url = concrete(path)
    seen = {}
    for actor in ACTORS:
        response = world.client.request(
            method,
            url,
            headers={"Accept": "application/json", **world.headers[actor]},
            follow_redirects=False,
        )
        seen[actor] = outcome(response)
    if (method, path) == ENDS_THE_SESSION:
        world.sign_in_people()
    if (method, path) == ENDS_THE_STAFF_TOKEN:
        world.sign_in_staff()
    if (method, path) == ENDS_THE_MERCHANT_TOKEN:
        world.sign_in_merchants()
    assert seen == {actor: expected(who, actor, path) for actor in ACTORS}


def test_an_ended_session_is_refused_like_none(world: World) -> None:
    """Signed out, the same token is the gate's 401 on the API and on the pages."""
    world.clock.advance(seconds=61)
    token = _login(world.db, PEOPLE["owner"])
    headers = {"Accept": "application/json", **_person_headers(token)}
    assert world.client.delete("/api/v1/auth/session", headers=headers).is_success
    for url in ("/api/v1/wallet", "/wallet"):
        answer = world.client.get(url, headers=headers, follow_redirects=False)
        assert (answer.status_code, answer.json()["code"]) == (401, "session.invalid"), url


def test_the_matrix_reaches_every_staff_api_operation_with_a_bearer_token() -> None:
    """The staff API is in the route table the matrix walks, and each of its operations
    admits staff only (the sign-in excepted), so the staff columns above test tokens."""
    staff_api = [(m, p) for m, p in ROUTES if p.startswith("/api/v1/staff/")]
    assert len(staff_api) >= 20
    for method, path in staff_api:
        who = access.declared(method, path)
        assert who is not None
        assert who.kind == ("anyone" if path == "/api/v1/staff/sessions" else "staff"), path


def test_the_matrix_reaches_every_merchant_operation() -> None:
    """The portal's pages and the merchant API are in the route table the matrix walks,
    each admitting merchant users only (sign-in, sign-out and applying excepted)."""
    open_doors = {"/merchant/login", "/merchant/logout", "/merchant/apply"}
    open_doors.add("/api/v1/merchant/sessions")
    merchant = [(m, p) for m, p in ROUTES if p.startswith(("/merchant", "/api/v1/merchant/"))]
    assert len(merchant) >= 20
    for method, path in merchant:
        who = access.declared(method, path)
        assert who is not None
        assert who.kind == ("anyone" if path in open_doors else "merchant"), (method, path)
