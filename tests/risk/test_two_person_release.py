"""Releasing a freeze on much money takes two people: above
QIANBAO_FREEZE_TWO_PERSON_RELEASE_ABOVE (what the account holds: balance and held money),
the first risk officer approves and a second, different one releases, by the release
button or by lifting an appeal; both are in the audit log. A smaller freeze, or a
restriction, is lifted by one. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from qianbao import audit
from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.errors import QianbaoError
from qianbao.identity import staff
from qianbao.notify import service as notify
from qianbao.risk import restrictions
from qianbao.risk.models import RestrictionAppeal
from qianbao.settings import Settings
from tests.verification.flow_helpers import new_person
from tests.wallet.test_payments import fund
from tests.web.test_pages import csrf

PASSWORD = "a long staff passphrase"


def refused(attempt: Callable[[], object]) -> QianbaoError:
    with pytest.raises(QianbaoError) as caught:
        attempt()
    return caught.value


def officer(db: Database, name: str) -> uuid.UUID:
    return staff.create_staff(db, name, name.title(), PASSWORD, "risk_officer").id


def frozen_with(db: Database, money: str, kind: str = "frozen") -> tuple[uuid.UUID, uuid.UUID]:
    person = new_person(db).id
    if money != "0":
        fund(db, person, money)
    restriction = db.run(
        lambda tx: restrictions.impose(tx, person, kind, "risk_officer", imposed_by="rule:test")
    )
    return person, restriction


def in_force(db: Database, person: uuid.UUID) -> bool:
    return db.run(lambda tx: restrictions.active(tx, person)) is not None


def actions(db: Database, restriction: uuid.UUID) -> list[tuple[str, str, dict[str, object]]]:
    def read(tx: Tx) -> list[audit.Event]:
        return audit.events(tx, f"restriction:{restriction}")

    return [(e.action, e.actor, e.details) for e in reversed(db.run(read))]


def test_a_freeze_over_the_threshold_takes_two_different_risk_officers(
    db: Database, clock: FrozenClock
) -> None:
    person, restriction = frozen_with(db, "60000")  # the default threshold is 50,000 CNY
    first, second = officer(db, "fay"), officer(db, "gus")
    clock.advance(seconds=1)
    assert db.run(lambda tx: restrictions.release(tx, restriction, first, "docs ok")) is False
    assert in_force(db, person)
    again = refused(
        lambda: db.run(lambda tx: restrictions.release(tx, restriction, first, "still ok"))
    )
    assert (again.code, again.status) == ("freeze.second_approver", 409)
    assert in_force(db, person)
    clock.advance(seconds=1)
    assert db.run(lambda tx: restrictions.release(tx, restriction, second, "agreed")) is True
    assert not in_force(db, person)
    log = actions(db, restriction)
    assert [(action, actor) for action, actor, _ in log] == [
        ("restriction.imposed", "rule:test"),
        ("freeze.release_approved", f"staff:{first}"),
        ("restriction.lifted", f"staff:{second}"),
    ]
    assert log[2][2]["first_approver"] == f"staff:{first}"
    assert log[1][2]["held_fen"] == log[2][2]["held_fen"] == 6_000_000
    sms = db.run(lambda tx: notify.read_outbox(tx, "+447911123456", 1))
    assert "lifted" in sms[0].body
    lifted_twice = refused(
        lambda: db.run(lambda tx: restrictions.release(tx, restriction, first, "x"))
    )
    assert lifted_twice.code == "restriction.lifted"


def test_at_or_under_the_threshold_one_risk_officer_releases(db: Database) -> None:
    person, restriction = frozen_with(db, "50000")
    fay = officer(db, "fay")
    assert db.run(lambda tx: restrictions.release(tx, restriction, fay, "ok"))
    assert not in_force(db, person)


def test_a_restriction_is_lifted_by_one_whatever_the_account_holds(db: Database) -> None:
    person, restriction = frozen_with(db, "90000", kind="restricted")
    fay = officer(db, "fay")
    assert db.run(lambda tx: restrictions.release(tx, restriction, fay, "ok"))
    assert not in_force(db, person)


def test_the_threshold_is_a_setting(settings: Settings, clock: FrozenClock) -> None:
    strict = settings.model_copy(update={"freeze_two_person_release_above": Decimal(100)})
    db = Database(strict, clock)
    try:
        person, restriction = frozen_with(db, "100.01")
        first = officer(db, "fay")
        assert db.run(lambda tx: restrictions.release(tx, restriction, first, "ok")) is False
        assert in_force(db, person)
    finally:
        db.dispose()


def test_a_note_is_required_and_an_unknown_restriction_is_404(db: Database) -> None:
    _, restriction = frozen_with(db, "0")
    fay = officer(db, "fay")
    no_note = refused(lambda: db.run(lambda tx: restrictions.release(tx, restriction, fay, " ")))
    assert no_note.code == "restriction.note_required"
    unknown = refused(lambda: db.run(lambda tx: restrictions.release(tx, uuid.uuid4(), fay, "x")))
    assert (unknown.code, unknown.status) == ("restriction.not_found", 404)


def test_lifting_an_appeal_takes_the_same_two_people(db: Database) -> None:
    person, restriction = frozen_with(db, "60000")
    appeal = db.run(lambda tx: _pending_appeal(tx, restriction, person))
    first, second = officer(db, "fay"), officer(db, "gus")
    view = db.run(lambda tx: restrictions.decide_appeal(tx, appeal, first, True, "docs ok"))
    assert view.status == "pending" and view.release_approved_by == first
    assert in_force(db, person)
    same = refused(
        lambda: db.run(lambda tx: restrictions.decide_appeal(tx, appeal, first, True, "ok"))
    )
    assert same.code == "freeze.second_approver"
    done = db.run(lambda tx: restrictions.decide_appeal(tx, appeal, second, True, "agreed"))
    assert done.status == "lifted" and not in_force(db, person)


def _pending_appeal(tx: Tx, restriction: uuid.UUID, person: uuid.UUID) -> uuid.UUID:
    """An appeal as the person's upload makes it (the documents do not matter here)."""
    row = RestrictionAppeal(
        restriction_id=restriction, user_id=person, message="", status="pending"
    )
    row.created_at = tx.now()
    tx.session.add(row)
    tx.session.flush()
    return row.id


def _sign_in(client: TestClient, db: Database, name: str) -> tuple[TestClient, str]:
    officer(db, name)
    browser = TestClient(client.app, base_url="http://127.0.0.1")
    token = csrf(browser, "/admin/login")
    browser.post("/admin/login", data={"csrf": token, "username": name, "password": PASSWORD})
    return browser, token


def test_the_pages_take_two_risk_officers_for_a_large_freeze(client: TestClient) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    person, restriction = frozen_with(db, "60000")
    fay, fay_csrf = _sign_in(client, db, "fay")
    listed = fay.get("/admin/restrictions")
    assert f'data-testid="restriction-{restriction}"' in listed.text
    assert "60,000.00" in listed.text
    release = f"/admin/restrictions/{restriction}/release"
    first = fay.post(release, data={"csrf": fay_csrf, "note": "documents match"})
    assert first.url.path == "/admin/restrictions" and "done=approved" in str(first.url)
    assert "waiting for a second risk officer" in first.text
    again = fay.post(release, data={"csrf": fay_csrf, "note": "documents match"})
    assert again.status_code == 409
    assert re.search(r'data-code="freeze.second_approver"', again.text)
    gus, gus_csrf = _sign_in(client, db, "gus")
    second = gus.post(release, data={"csrf": gus_csrf, "note": "agreed"})
    assert "done=released" in str(second.url)
    assert not in_force(db, person)
