"""Schemathesis over every operation of the OpenAPI document, once anonymous and once as
a signed-in, verified person with money, and the staff operations once more, each with
the bearer token of a staff role it admits: no answer is a server error, and every answer
is one the document describes (status, content type, headers, body schema).

Each operation gets a bounded number of generated requests: valid ones (positive mode,
which reach the handlers), invalid ones (negative mode, which the edge must refuse) and,
signed in, valid ones and the document's own examples aimed at things that exist (the
person's order, card, transfer, a friend's pay-for-me link) rather than random ids, so
the deeper paths run. Hypothesis is derandomized, so a CI run repeats itself;
``QIANBAO_FUZZ_EXAMPLES`` raises the count for a longer hunt, ``QIANBAO_FUZZ_SEED`` makes
it another one. Every failure is collected
and the test lists them all, each with the curl command that reproduces it.
"""

from __future__ import annotations

import io
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from PIL import Image
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.case import Case
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from qianbao import access
from qianbao.access import Role
from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.errors import QianbaoError
from qianbao.identity import security, staff
from qianbao.identity import service as identity
from qianbao.identity.models import User
from qianbao.identity.phone import parse_mobile
from qianbao.money import Money
from qianbao.profile.regions import states
from qianbao.risk import restrictions
from qianbao.wallet.pay_for_me import service as pay_for_me
from qianbao.wallet.payments import service as payments
from qianbao.wallet.transfers import service as transfers
from tests.helpers import HOME, last_code
from tests.verification.flow_helpers import new_person
from tests.wallet.test_payments import PIN, add_card, fund

pytestmark = pytest.mark.schemathesis

EXAMPLES = int(os.environ.get("QIANBAO_FUZZ_EXAMPLES", "10"))
# Unset (CI): derandomized, the same requests every run. Set: a hunt with other requests.
SEED = os.environ.get("QIANBAO_FUZZ_SEED")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
FRIEND = "07400 900123"  # +44 7400 900123


@dataclass
class Person:
    """The signed-in person: a fresh session whenever a fuzzed request ended the last
    one (log out, end every other session, a new login password)."""

    db: Database
    user_id: uuid.UUID
    token: str = ""

    def bearer(self) -> str:
        if not self.token or not self._alive():
            self.token = self.db.run(self._open)
        return f"Bearer {self.token}"

    def _alive(self) -> bool:
        try:
            self.db.run(lambda tx: identity.authenticate(tx, self.token))
        except QianbaoError:
            return False
        return True

    def _open(self, tx: Tx) -> str:
        user = tx.session.get(User, self.user_id)
        assert user is not None
        return identity.open_session(tx, user, HOME, "sms").token


@dataclass
class Run:
    """Who calls, the real ids the paths may name, and every status seen per operation."""

    authorization: Callable[[], str] | None
    known: dict[str, str]
    statuses: dict[str, Counter[int]] = field(default_factory=dict)


def person_with_a_payment_password(db: Database, clock: FrozenClock, number: str) -> uuid.UUID:
    account = new_person(db, number)
    clock.advance(seconds=61)  # past the sign-up code's resend cooldown
    security.send_security_code(db, account.id, HOME, "en")
    code = last_code(db, parse_mobile(number, "GB"))
    security.set_payment_password(db, account.id, PIN, sms_code=code)
    return account.id


def verified_person_with_money(db: Database, clock: FrozenClock) -> tuple[Person, dict[str, str]]:
    """Verified by passport and face (so the Tour Pass opens too), a payment password,
    CNY 30,000, a foreign card, an order to pay, a transfer sent to a friend and that
    friend's pay-for-me link; with the ids the paths may name."""
    friend = person_with_a_payment_password(db, clock, FRIEND)
    user_id = person_with_a_payment_password(db, clock, "07911 123456")
    for who, level in ((user_id, "passport_face"), (friend, "bank_card")):
        db.run(lambda tx, who=who, level=level: identity.set_verification_level(tx, who, level))
    fund(db, user_id, "30000")
    card = add_card(db, user_id)
    shop = db.run(lambda tx: payments.create_merchant(tx, "Fuzz Shop"))
    ten = Money.parse("10.00")
    mine, theirs = (
        db.run(lambda tx, number=number: payments.create_order(tx, shop, number, "Tea", ten)).id
        for number in ("F1", "F2")
    )
    link = db.run(lambda tx: pay_for_me.ask_a_friend(tx, friend, theirs))
    sent = transfers.send(db, user_id, "+447400900123", "5.00", "tea", PIN, "fuzz-1")
    known = {
        "order_id": str(mine),
        "card_id": str(card),
        "transfer_id": str(sent.id),
        "token": link.token,
        "state": states()[1].code,
    }
    return Person(db, user_id), known


def operations(client: TestClient) -> Iterator[APIOperation]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    for result in schema.get_all_operations():
        yield result.ok()


def strategies(operation: APIOperation, run: Run) -> Iterator[tuple[str, st.SearchStrategy[Case]]]:
    yield "positive", operation.as_strategy(schemathesis.GenerationMode.POSITIVE)
    yield "negative", operation.as_strategy(schemathesis.GenerationMode.NEGATIVE)
    if run.authorization is None:
        return
    names = {parameter.name for parameter in operation.path_parameters}
    if names and names <= run.known.keys():
        ids = {name: run.known[name] for name in names}
        yield "known ids", operation.as_strategy(path_parameters=ids)
        examples = operation.schema.get_strategies_from_examples(operation, fill_missing=True)
        if examples:
            yield "examples", st.one_of(examples).map(lambda case: aimed(case, ids))
    elif not names:
        examples = operation.schema.get_strategies_from_examples(operation, fill_missing=True)
        if examples:
            yield "examples", st.one_of(examples)


def aimed(case: Case, ids: dict[str, str]) -> Case:
    case.path_parameters = {**(case.path_parameters or {}), **ids}
    return case


def fuzz(operation: APIOperation, run: Run) -> list[str]:
    """The failures of one operation: the first one each way of generating finds."""
    found: list[str] = []
    seen = run.statuses.setdefault(operation.label, Counter())
    for how, strategy in strategies(operation, run):

        @settings(
            max_examples=EXAMPLES,
            derandomize=SEED is None,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def call(case: Case) -> None:
            headers = {"Authorization": run.authorization()} if run.authorization else None
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            seen[response.status_code] += 1

        if SEED is not None:
            call = seed(int(SEED))(call)
        try:
            call()
        except Unsatisfiable:  # nothing to get wrong: no parameters, no body
            continue
        except (FailureGroup, Exception) as failure:  # failed checks, an error in the app
            notes = "\n".join(getattr(failure, "__notes__", []))
            found.append(f"{operation.label} [{how}]: {failure}\n{notes}".strip())
    return found


STAFF_PASSWORD = "a long fuzzing passphrase"


@dataclass
class FuzzStaff:
    """A staff member of one role with a live API token (a fresh one whenever a fuzzed
    ``DELETE /api/v1/staff/session`` ended the last)."""

    db: Database
    username: str
    token: str = ""

    def bearer(self) -> str:
        alive = self.token and self.db.run(
            lambda tx: staff.authenticate(tx, self.token, "api") is not None
        )
        if not alive:
            self.token = staff.open_session(self.db, self.username, STAFF_PASSWORD, "api").token
        return f"Bearer {self.token}"


def staff_world(db: Database) -> tuple[dict[Role, FuzzStaff], dict[str, str]]:
    """One staff member per role, and things for their paths to name: a person's freeze
    and the appeal against it, and a spare staff member for the administrator."""
    person = new_person(db, "07911 123456")
    fund(db, person.id, "100")
    restriction = db.run(
        lambda tx: restrictions.impose(tx, person.id, "frozen", "risk_officer", imposed_by="t")
    )
    appeal = restrictions.appeal(db, person.id, {"passport_page": jpeg_photo()}, "mine")
    members = {}
    for role in Role:
        name = f"fuzz-{role.value.replace('_', '-')}"
        staff.create_staff(db, name, name, STAFF_PASSWORD, role.value)
        members[role] = FuzzStaff(db, name)
    spare = staff.create_staff(db, "fuzz-spare", "Spare", STAFF_PASSWORD, "support")
    known = {
        "restriction_id": str(restriction),
        "appeal_id": str(appeal),
        "staff_id": str(spare.id),
    }
    return members, known


def jpeg_photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 180, 160)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_no_staff_operation_answers_with_a_server_error(
    client: TestClient, db: Database, clock: FrozenClock
) -> None:
    """Each staff operation fuzzed with the token of a role it admits (so the handlers
    run), the sign-in anonymously."""
    members, known = staff_world(db)
    runs = {role: Run(members[role].bearer, known) for role in Role}
    anonymous = Run(None, {})
    failures: list[str] = []
    for operation in operations(client):
        if not operation.path.startswith("/api/v1/staff/"):
            continue
        who = access.declared(operation.method.upper(), operation.path)
        assert who is not None, operation.label
        role = next((role for role in Role if role in who.roles), None)
        failures += fuzz(operation, runs[role] if role else anonymous)
    assert not failures, "\n\n".join(failures)
    # The handlers ran: each role was signed in and read what it may.
    assert runs[Role.REVIEWER].statuses["GET /api/v1/staff/reviews"][200] > 0
    assert runs[Role.RISK_OFFICER].statuses["GET /api/v1/staff/restrictions"][200] > 0
    assert runs[Role.RISK_OFFICER].statuses["GET /api/v1/staff/appeals/{appeal_id}"][200] > 0
    assert runs[Role.ADMIN].statuses["GET /api/v1/staff/members"][200] > 0


@pytest.mark.parametrize("who", ["anonymous", "signed_in"])
def test_no_operation_answers_with_a_server_error(
    client: TestClient, db: Database, clock: FrozenClock, who: str
) -> None:
    if who == "signed_in":
        person, known = verified_person_with_money(db, clock)
        run = Run(person.bearer, known)
    else:
        run = Run(None, {"state": states()[1].code})
    failures = [failure for operation in operations(client) for failure in fuzz(operation, run)]
    assert not failures, "\n\n".join(failures)
    # The run reached the handlers: the person was signed in, and money moved.
    assert run.statuses["GET /api/v1/me"][200 if who == "signed_in" else 401] > 0
    if who == "signed_in":
        assert run.statuses["GET /api/v1/wallet/transfers/{transfer_id}"][200] > 0
        assert run.statuses["GET /api/v1/orders/{order_id}/cashier"][200] > 0
