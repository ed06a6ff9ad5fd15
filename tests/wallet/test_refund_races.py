"""Refunds that move money outside the ledger (to a foreign card, to a mainland bank card)
under races, crashes and reused request numbers: the card network's and the bank's books
always agree with the ledger, and every refused request gets an answer a client can act
on (422 ``refund.too_much``, 409 ``idempotency.mismatch``), never 503."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from sqlalchemy import select

from qianbao import jobs
from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.errors import QianbaoError
from qianbao.funding import card_network, connectors
from qianbao.money import Money
from qianbao.wallet.ledger import audit as ledger_audit
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments
from qianbao.wallet.payments.models import OrderRefund, PaymentOrder
from tests.wallet.test_card_recovery import Crash, bind_bank_card, capture_of, crash_in
from tests.wallet.test_payments import PIN, add_card, buyer, cny, order, refused


@pytest.fixture
def shop(db: Database) -> uuid.UUID:
    return db.run(lambda tx: payments.create_merchant(tx, "Demo Shop"))


def sound(db: Database) -> None:
    audit = db.run(ledger_audit.audit)
    assert audit.sound, audit


def paid_by_card(db: Database, clock: FrozenClock, shop: uuid.UUID, amount: str) -> uuid.UUID:
    user = buyer(db, clock)
    card = add_card(db, user)
    paid = order(db, shop, amount)
    payments.pay_with_card(db, user, paid, card, PIN)
    return paid


def the_order(db: Database, order_id: uuid.UUID) -> PaymentOrder:
    return db.run(lambda tx: tx.session.get_one(PaymentOrder, order_id))


def refund_rows(db: Database, order_id: uuid.UUID) -> list[OrderRefund]:
    return list(
        db.run(
            lambda tx: list(
                tx.session.scalars(select(OrderRefund).where(OrderRefund.order_id == order_id))
            )
        )
    )


def settled_on_card(db: Database, order_id: uuid.UUID) -> Money:
    """What the ledger says went back to the card: the succeeded refunds and their fees."""
    rows = [row for row in refund_rows(db, order_id) if row.status == "succeeded"]
    return Money("CNY", sum(row.amount + row.fee_refunded for row in rows))


def at_once(calls: list[Callable[[], refunds.RefundView]]) -> list[object]:
    """Run the calls together, released by one barrier; each gives a view or its error."""
    barrier = Barrier(len(calls))

    def run(call: Callable[[], refunds.RefundView]) -> object:
        barrier.wait()
        try:
            return call()
        except QianbaoError as error:
            return error

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_racing_partial_refunds_never_give_the_card_more_than_the_ledger_records(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    # The finding: three partial refunds at once, together 0.01 over the order.
    paid = paid_by_card(db, clock, shop, "1000.00")  # fee 30.00
    capture_id = capture_of(db, paid)
    amounts = ["333.33", "333.33", "333.35"]
    outcomes = at_once(
        [
            lambda number=number, amount=amount: refunds.refund(
                db, shop, paid, f"R{number}", cny(amount)
            )
            for number, amount in enumerate(amounts)
        ]
    )
    done = [o for o in outcomes if isinstance(o, refunds.RefundView)]
    errors = [o for o in outcomes if isinstance(o, QianbaoError)]
    assert len(done) == 2 and len(errors) == 1
    assert (errors[0].code, errors[0].status) == ("refund.too_much", 422)
    network = connectors.network_for(db)
    assert network.refunded(capture_id) == settled_on_card(db, paid)
    placed = the_order(db, paid)
    assert placed.refunded == sum(view.amount.minor for view in done)
    assert placed.refund_pending == 0
    sound(db)


def test_the_whole_order_refunded_in_racing_parts_brings_back_the_whole_fee(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    paid = paid_by_card(db, clock, shop, "1000.00")  # fee 30.00
    capture_id = capture_of(db, paid)
    outcomes = at_once(
        [
            lambda number=number: refunds.refund(db, shop, paid, f"P{number}", cny("250.00"))
            for number in range(4)
        ]
    )
    assert all(isinstance(o, refunds.RefundView) for o in outcomes), outcomes
    assert connectors.network_for(db).refunded(capture_id) == cny("1030.00")
    placed = the_order(db, paid)
    assert (placed.refunded, placed.status) == (100000, "TRADE_CLOSED")
    sound(db)


def test_one_request_number_with_two_amounts_at_once_refunds_one_and_refuses_the_other(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    # The finding: the same number with 20.00 and 30.00 at once was answered 200 twice.
    paid = paid_by_card(db, clock, shop, "100.00")
    capture_id = capture_of(db, paid)
    outcomes = at_once(
        [
            lambda: refunds.refund(db, shop, paid, "SAME", cny("20.00")),
            lambda: refunds.refund(db, shop, paid, "SAME", cny("30.00")),
        ]
    )
    done = [o for o in outcomes if isinstance(o, refunds.RefundView)]
    errors = [o for o in outcomes if isinstance(o, QianbaoError)]
    assert len(done) == 1 and len(errors) == 1, outcomes
    assert (errors[0].code, errors[0].status) == ("idempotency.mismatch", 409)
    assert connectors.network_for(db).refunded(capture_id) == done[0].amount
    # The winner's retry is answered with the winner; the loser's still refused.
    assert refunds.refund(db, shop, paid, "SAME", done[0].amount).id == done[0].id
    other = cny("30.00") if done[0].amount == cny("20.00") else cny("20.00")
    assert refused(lambda: refunds.refund(db, shop, paid, "SAME", other)).status == 409
    sound(db)


def test_a_reservation_counts_against_what_is_left_until_it_settles(
    db: Database, clock: FrozenClock, shop: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    paid = paid_by_card(db, clock, shop, "100.00")
    capture_id = capture_of(db, paid)
    with monkeypatch.context() as patched:
        crash_in(patched, refunds, "_give_back_outside")  # dies before asking the card
        with pytest.raises(Crash):
            refunds.refund(db, shop, paid, "R1", cny("70.00"))
    network = connectors.network_for(db)
    assert network.refunded(capture_id) == cny("0")
    assert the_order(db, paid).refund_pending == 7000
    too_much = refused(lambda: refunds.refund(db, shop, paid, "R2", cny("30.01")))
    assert (too_much.code, too_much.status) == ("refund.too_much", 422)
    assert too_much.details == {"left": "30.00"}  # what is left, the reservation counted
    sound(db)  # the hold balances like any transfer

    # Within the grace time the worker leaves a live request alone; past it, it asks the
    # card for the refund under the same key and settles it.
    assert jobs.finish_pending_refunds(db) == 0
    clock.advance(seconds=db.settings.refund_grace_seconds + 1)
    assert jobs.finish_pending_refunds(db) == 1
    assert network.refunded(capture_id) == cny("70.00")
    (row,) = refund_rows(db, paid)
    assert (row.status, row.amount) == ("succeeded", 7000)
    assert (the_order(db, paid).refunded, the_order(db, paid).refund_pending) == (7000, 0)
    assert jobs.finish_pending_refunds(db) == 0
    assert network.refunded(capture_id) == cny("70.00")  # once
    sound(db)


def test_a_refund_given_back_but_never_recorded_is_settled_once_by_the_worker(
    db: Database, clock: FrozenClock, shop: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    paid = paid_by_card(db, clock, shop, "300.00")  # fee 9.00
    capture_id = capture_of(db, paid)
    with monkeypatch.context() as patched:
        crash_in(patched, refunds, "_settle_refund")
        with pytest.raises(Crash):
            refunds.refund(db, shop, paid, "R1", cny("100.00"))
    network = connectors.network_for(db)
    assert network.refunded(capture_id) == cny("103.00")
    clock.advance(seconds=db.settings.refund_grace_seconds + 1)
    assert jobs.finish_pending_refunds(db) == 1
    assert network.refunded(capture_id) == cny("103.00")  # the same refund, asked again
    assert settled_on_card(db, paid) == cny("103.00")
    retried = refunds.refund(db, shop, paid, "R1", cny("100.00"))  # the merchant's retry
    assert retried.status == "succeeded" and retried.fee_refunded == cny("3.00")
    sound(db)


def test_a_refund_the_card_refuses_releases_its_reservation_and_may_go_to_the_balance(
    db: Database, clock: FrozenClock, shop: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    paid = paid_by_card(db, clock, shop, "100.00")
    capture_id = capture_of(db, paid)
    network = connectors.network_for(db)

    def closed_card(*_args: object, **_kwargs: object) -> card_network.Refund:
        raise card_network.CardDeclined()

    with monkeypatch.context() as patched:
        patched.setattr(network, "refund", closed_card)
        declined = refused(lambda: refunds.refund(db, shop, paid, "R1", cny("40.00")))
    assert declined.code == "card.declined"
    (row,) = refund_rows(db, paid)
    assert (row.status, row.failure_code) == ("failed", "card.declined")
    assert the_order(db, paid).refund_pending == 0
    sound(db)
    # The number may be asked again, here to the balance (held: the buyer is unverified).
    again = refunds.refund(db, shop, paid, "R1", cny("40.00"), to_balance=True)
    assert again.status == "succeeded" and again.destination == "held"
    assert network.refunded(capture_id) == cny("0")
    assert the_order(db, paid).refunded == 4000
    sound(db)


def test_racing_refunds_of_a_bank_card_payment_agree_with_the_bank(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    user = buyer(db, clock)
    card = bind_bank_card(db, user)
    paid = order(db, shop, "100.00")
    payments.pay_with_bank_card(db, user, paid, card, PIN)
    outcomes = at_once(
        [
            lambda number=number: refunds.refund(db, shop, paid, f"B{number}", cny("40.00"))
            for number in range(3)
        ]
    )
    done = [o for o in outcomes if isinstance(o, refunds.RefundView)]
    errors = [o for o in outcomes if isinstance(o, QianbaoError)]
    assert len(done) == 2 and [e.code for e in errors] == ["refund.too_much"]
    assert {view.destination for view in done} == {"bank_card"}
    assert the_order(db, paid).refunded == 8000
    sound(db)
