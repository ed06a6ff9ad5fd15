"""A card payment left half-way by a crash: the card was charged (or approved) on the
network, the ledger never heard of it. The worker gives the attempt up after the grace
time and sends the money back to the card, once; the order can be paid again."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from qianbao import jobs
from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.funding import connectors
from qianbao.funding.sandbox.card_network import SandboxCardNetwork
from qianbao.funding.sandbox.state import SqliteStore
from qianbao.wallet.ledger import audit as ledger_audit
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments
from qianbao.wallet.payments.models import PaymentAttemptReversal
from tests.wallet.test_payments import (
    PIN,
    add_card,
    buyer,
    cny,
    order,
    refused,
)


@pytest.fixture
def shop(db: Database) -> uuid.UUID:
    db.settings.card_attempt_grace_seconds = 60  # orders close after 15 minutes
    return db.run(lambda tx: payments.create_merchant(tx, "Demo Shop"))


class Crash(Exception):
    """The process dies here."""


def crash_in(monkeypatch: pytest.MonkeyPatch, target: object, name: str) -> None:
    def die(*_args: Any, **_kwargs: Any) -> None:
        raise Crash(name)

    monkeypatch.setattr(target, name, die)


def attempt_key(db: Database, order_id: uuid.UUID) -> str | None:
    return db.run(lambda tx: payments._order(tx, order_id).card_attempt_key)


def past_grace(db: Database, clock: FrozenClock) -> None:
    clock.advance(seconds=db.settings.card_attempt_grace_seconds + 1)


def bind_bank_card(db: Database, user: uuid.UUID) -> uuid.UUID:
    """A sandbox mainland card bound by its four elements and the bank's SMS code."""
    import re

    from qianbao.funding import service as funding
    from qianbao.notify import service as notify

    holder = funding.CardHolder(
        "6222 0200 0000 0000 018", "JOHN SMITH", "912345678", "+447911000001"
    )
    started = funding.start_check(db, user, holder, None)
    text = db.run(lambda tx: notify.read_outbox(tx, "+447911000001", 1))[0].body
    code = re.search(r"(?<!\d)(\d{6})(?!\d)", text)
    assert code
    return funding.confirm_check(db, user, started.id, code.group(1)).id


def capture_of(db: Database, order_id: uuid.UUID) -> str:
    found = db.run(lambda tx: payments._order(tx, order_id).card_capture_id)
    assert found is not None
    return found


def reversals_left(db: Database) -> int:
    return len(db.run(lambda tx: list(tx.session.scalars(select(PaymentAttemptReversal)))))


def sound(db: Database) -> None:
    audit = db.run(ledger_audit.audit)
    assert audit.sound, audit


def test_a_capture_never_recorded_goes_back_to_the_card_once(
    db: Database, clock: FrozenClock, shop: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = buyer(db, clock)
    card = add_card(db, user)
    first = order(db, shop, "300.00")  # above CNY 200: a 3% fee, CNY 9.00
    with monkeypatch.context() as patched:
        crash_in(patched, payments, "mark_paid")  # dies after the capture, before commit
        with pytest.raises(Crash):
            payments.pay_with_card(db, user, first, card, PIN)
    key = attempt_key(db, first)
    assert key is not None
    network = connectors.network_for(db)
    taken = network.find_authorization(key)
    assert taken is not None and taken.status == "captured"
    capture = network.capture(taken.id)
    assert db.run(lambda tx: payments.get_order(tx, first)).status == "WAIT_BUYER_PAY"

    assert jobs.reverse_stranded_card_payments(db) == 0  # within the grace time: alone
    past_grace(db, clock)
    assert jobs.reverse_stranded_card_payments(db) == 2  # given up, then sent back
    assert network.refunded(capture.id) == cny("309.00")  # amount and fee
    assert jobs.reverse_stranded_card_payments(db) == 0
    assert network.refunded(capture.id) == cny("309.00")  # once
    sound(db)

    paid = payments.pay_with_card(db, user, first, card, PIN)  # a new attempt, a new key
    assert paid.status == "TRADE_SUCCESS" and paid.card_amount is not None
    assert attempt_key(db, first) != key


def test_an_approval_never_captured_is_voided(
    db: Database, clock: FrozenClock, shop: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = buyer(db, clock)
    card = add_card(db, user)
    first = order(db, shop, "50.00")
    network = connectors.network_for(db)
    with monkeypatch.context() as patched:
        crash_in(patched, network, "capture")  # dies between approval and capture
        with pytest.raises(Crash):
            payments.pay_with_card(db, user, first, card, PIN)
    key = attempt_key(db, first)
    assert key is not None
    past_grace(db, clock)
    assert jobs.reverse_stranded_card_payments(db) == 2
    voided = network.find_authorization(key)
    assert voided is not None and voided.status == "voided"


def test_an_attempt_given_up_cannot_be_recorded_late_and_is_refunded_once(
    db: Database, clock: FrozenClock, shop: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker gives the attempt up just as the slow request captures: the request
    must not record the payment, and the card gets its money back exactly once."""
    user = buyer(db, clock)
    card = add_card(db, user)
    first = order(db, shop, "80.00")
    network = connectors.network_for(db)
    real_capture: Callable[..., Any] = network.capture

    def slow_capture(authorization_id: str, amount: Any = None) -> Any:
        captured = real_capture(authorization_id, amount)
        past_grace(db, clock)
        db.run(payments.abandon_stranded_card_attempts)
        return captured

    with monkeypatch.context() as patched:
        patched.setattr(network, "capture", slow_capture)
        late = refused(lambda: payments.pay_with_card(db, user, first, card, PIN))
    assert late.code == "card.attempt_abandoned"
    assert payments.reverse_card_attempts(db) == 1
    assert reversals_left(db) == 0
    authorizations = [
        found
        for found in [network.find_authorization(k) for k in _keys_tried(db, first)]
        if found is not None
    ]
    capture = network.capture(authorizations[0].id)
    assert network.refunded(capture.id) == cny("80.00")  # by the request and the worker: once
    assert db.run(lambda tx: payments.get_order(tx, first)).status == "WAIT_BUYER_PAY"
    sound(db)


def _keys_tried(db: Database, order_id: uuid.UUID) -> list[str]:
    """The attempt key is random; the sandbox's file records it, so read it there."""
    import sqlite3
    from pathlib import Path

    path = Path(db.settings.var_dir) / connectors.SANDBOX_NETWORK_FILE
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT key FROM records WHERE kind = 'request' AND key LIKE ?",
            (f"order:{order_id}:card:%",),
        ).fetchall()
    return [str(row[0]) for row in rows]


def test_another_process_sees_the_same_payments(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    """The sandbox keeps its records in a file of its own: a worker process (another
    network client on the same file) finds what a web process did."""
    user = buyer(db, clock)
    card = add_card(db, user)
    first = order(db, shop, "20.00")
    payments.pay_with_card(db, user, first, card, PIN)
    assert attempt_key(db, first) is None  # recorded: the attempt is the payment
    (key,) = _keys_tried(db, first)
    elsewhere = SandboxCardNetwork(
        clock,
        db.settings.fx_rates,
        store=SqliteStore(db.settings.var_dir / connectors.SANDBOX_NETWORK_FILE),
    )
    seen = elsewhere.find_authorization(key)
    assert seen is not None and seen.status == "captured"


def test_a_capture_stranded_then_another_card_used_is_still_sent_back(
    db: Database, clock: FrozenClock, shop: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The person does not wait: after the crash they pay with another card at once. The
    first card's capture must not be forgotten."""
    user = buyer(db, clock)
    first_card = add_card(db, user)
    other_card = add_card(db, user, "5555 5500 0027 6016")
    first = order(db, shop, "40.00")
    with monkeypatch.context() as patched:
        crash_in(patched, payments, "mark_paid")
        with pytest.raises(Crash):
            payments.pay_with_card(db, user, first, first_card, PIN)
    stranded_key = attempt_key(db, first)
    assert stranded_key is not None
    paid = payments.pay_with_card(db, user, first, other_card, PIN)
    assert paid.status == "TRADE_SUCCESS"
    assert reversals_left(db) == 1  # the first attempt, given up when the second began
    assert payments.reverse_card_attempts(db) == 1
    network = connectors.network_for(db)
    stranded = network.find_authorization(stranded_key)
    assert stranded is not None
    assert network.refunded(network.capture(stranded.id).id) == cny("40.00")
    assert reversals_left(db) == 0
    sound(db)


def test_a_bank_debit_never_recorded_is_credited_back(
    db: Database, clock: FrozenClock, shop: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qianbao.funding import service as funding

    user = buyer(db, clock)
    bank_card = bind_bank_card(db, user)
    first = order(db, shop, "120.00")
    with monkeypatch.context() as patched:
        crash_in(patched, payments, "mark_paid")
        with pytest.raises(Crash):
            payments.pay_with_bank_card(db, user, first, bank_card, PIN)
    key = attempt_key(db, first)
    assert key is not None and ":bank:" in key
    bank = funding.connector(db)
    debit = bank.find_debit(key)
    assert debit is not None and debit.amount == cny("120.00")
    past_grace(db, clock)
    assert jobs.reverse_stranded_card_payments(db) == 2
    credit = bank.find_debit(f"order:{first}:undo:{debit.id}")  # the credit's own key
    assert credit is not None and credit.amount == cny("120.00")
    paid = payments.pay_with_bank_card(db, user, first, bank_card, PIN)  # pays again
    assert paid.status == "TRADE_SUCCESS"
    sound(db)


def test_paying_by_balance_while_a_card_attempt_is_stranded_sends_the_card_money_back(
    db: Database, clock: FrozenClock, shop: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.wallet.test_payments import fund, verify

    user = buyer(db, clock)
    verify(db, user)
    fund(db, user, "100.00")
    card = add_card(db, user)
    first = order(db, shop, "30.00")
    with monkeypatch.context() as patched:
        crash_in(patched, payments, "mark_paid")
        with pytest.raises(Crash):
            payments.pay_with_card(db, user, first, card, PIN)
    key = attempt_key(db, first)
    assert key is not None
    assert payments.pay_with_balance(db, user, first, PIN).status == "TRADE_SUCCESS"
    assert attempt_key(db, first) is None and reversals_left(db) == 1
    payments.reverse_card_attempts(db)
    network = connectors.network_for(db)
    found = network.find_authorization(key)
    assert found is not None
    assert network.refunded(network.capture(found.id).id) == cny("30.00")
    sound(db)


def test_a_merchant_refund_retried_after_a_crash_goes_to_the_card_once(
    db: Database, clock: FrozenClock, shop: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = buyer(db, clock)
    card = add_card(db, user)
    first = order(db, shop, "300.00")  # fee 9.00
    payments.pay_with_card(db, user, first, card, PIN)
    capture_id = capture_of(db, first)
    with monkeypatch.context() as patched:
        crash_in(patched, refunds, "_settle_refund")
        with pytest.raises(Crash):
            refunds.refund(db, shop, first, "R1", cny("100.00"))
    network = connectors.network_for(db)
    assert network.refunded(capture_id) == cny("103.00")  # the card got it
    # The same request number asking for the balance is another request: refused, and
    # the card refund under way is what stands.
    other = refused(lambda: refunds.refund(db, shop, first, "R1", cny("100.00"), to_balance=True))
    assert (other.code, other.status) == ("idempotency.mismatch", 409)
    retried = refunds.refund(db, shop, first, "R1", cny("100.00"))
    assert retried.destination == "foreign_card" and retried.status == "succeeded"
    assert network.refunded(capture_id) == cny("103.00")  # not twice
    assert refunds.refund(db, shop, first, "R1", cny("100.00")).id == retried.id
    sound(db)


def test_a_refund_submitted_twice_at_once_is_made_once(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    user = buyer(db, clock)
    card = add_card(db, user)
    first = order(db, shop, "50.00")
    payments.pay_with_card(db, user, first, card, PIN)
    capture_id = capture_of(db, first)
    with ThreadPoolExecutor(max_workers=4) as pool:
        views = list(
            pool.map(lambda _: refunds.refund(db, shop, first, "R9", cny("20.00")), range(4))
        )
    assert len({view.id for view in views}) == 1
    assert connectors.network_for(db).refunded(capture_id) == cny("20.00")
    sound(db)


def test_an_attempt_replaced_while_it_captures_is_told_so_and_sent_back(
    db: Database, clock: FrozenClock, shop: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another attempt starts on the order while this one captures (a second friend
    paying the same pay-for-me link, the person switching cards): this one may not be
    recorded, says why, and what it took goes back."""
    user = buyer(db, clock)
    card = add_card(db, user)
    other_card = add_card(db, user, "5555 5500 0027 6016")
    first = order(db, shop, "80.00")
    network = connectors.network_for(db)
    real_capture: Callable[..., Any] = network.capture

    def capture_while_another_starts(authorization_id: str, amount: Any = None) -> Any:
        captured = real_capture(authorization_id, amount)
        db.run(lambda tx: payments._card_charge(tx, user, first, other_card))
        return captured

    with monkeypatch.context() as patched:
        patched.setattr(network, "capture", capture_while_another_starts)
        replaced = refused(lambda: payments.pay_with_card(db, user, first, card, PIN))
    assert (replaced.code, replaced.status) == ("card.attempt_replaced", 409)
    assert payments.reverse_card_attempts(db) == 1  # the replaced capture goes back
    assert reversals_left(db) == 0
    sound(db)


def test_a_card_payment_retried_after_its_answer_was_lost_gets_the_same_answer(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    """The bank test's finding: the server died after the payment was recorded and before
    it answered; the client's retry was told 409 order.paid, as if refused, while its
    money had moved. A retry by the one who paid gets the paid order back, charged once."""
    user = buyer(db, clock)
    card = add_card(db, user)
    first = order(db, shop, "80.00")
    paid = payments.pay_with_card(db, user, first, card, PIN)
    again = payments.pay_with_card(db, user, first, card, PIN)
    assert not isinstance(paid, str) and not isinstance(again, str)
    assert (again.id, again.status) == (paid.id, "TRADE_SUCCESS")
    network = connectors.network_for(db)
    assert network.refunded(capture_of(db, first)) == cny("0")
    assert reversals_left(db) == 0
    sound(db)
