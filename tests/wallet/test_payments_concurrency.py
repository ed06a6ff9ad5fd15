"""Proof that payments and refunds make or lose no money, whatever the retries and the
concurrency: threads pay random orders by balance and by card, retry the same requests,
refund in parts with repeated request numbers, and crash half-way through some use cases;
afterwards the ledger audits sound, every order's money matches its refunds, and each
acknowledged payment and refund exists exactly once. On SQLite and PostgreSQL."""

from __future__ import annotations

import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from threading import Lock

import pytest
from sqlalchemy import func, select

from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.errors import QianbaoError
from qianbao.money import Money
from qianbao.wallet.ledger import audit as ledger_audit
from qianbao.wallet.ledger import service as ledger
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments
from qianbao.wallet.payments.models import OrderRefund, PaymentOrder
from tests.wallet.test_payments import PIN, add_card, buyer, cny, fund, verify

THREADS = 6
STEPS_PER_THREAD = 12


class Crash(Exception):
    """Injected between the writes of a use case: its transaction must roll back whole."""


@dataclass
class Acknowledged:
    paid: set[uuid.UUID] = field(default_factory=set)
    refunds: dict[tuple[uuid.UUID, str], int] = field(default_factory=dict)
    lock: Lock = field(default_factory=Lock)


def test_no_money_is_made_or_lost_under_concurrent_payments_and_refunds(
    db: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = db.run(lambda tx: payments.create_merchant(tx, "Busy Shop"))
    user = buyer(db, clock)
    verify(db, user)
    fund(db, user, "100000")
    card = add_card(db, user)
    orders = [
        db.run(
            lambda tx, n=n: payments.create_order(
                tx, shop, f"O{n}", "Load", cny(f"{random.Random(n).randint(1, 400)}.00")
            )
        ).id
        for n in range(40)
    ]
    done = Acknowledged()
    real_mark_paid = payments.mark_paid

    def flaky_mark_paid(tx: Tx, *args: object, **kwargs: object) -> None:
        real_mark_paid(tx, *args, **kwargs)  # type: ignore[arg-type]
        if random.random() < 0.15:
            raise Crash("after the ledger wrote the payment, before commit")

    monkeypatch.setattr(payments, "mark_paid", flaky_mark_paid)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(STEPS_PER_THREAD):
            order_id = rng.choice(orders)
            try:
                if rng.random() < 0.6:
                    if rng.random() < 0.5:
                        paid = payments.pay_with_balance(db, user, order_id, PIN)
                    else:
                        outcome = payments.pay_with_card(db, user, order_id, card, PIN)
                        assert not isinstance(outcome, str)
                        paid = outcome
                    with done.lock:
                        done.paid.add(paid.id)
                else:
                    number = f"R{rng.randint(1, 3)}"
                    result = refunds.refund(db, shop, order_id, number, cny("1.00"))
                    with done.lock:
                        done.refunds[(order_id, number)] = result.amount.minor
            except (QianbaoError, Crash):
                continue  # refused or crashed: retried by a later step, or not at all

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(worker, range(THREADS)))

    assert len(done.paid) >= 10 and len(done.refunds) >= 5  # the load really happened
    audit = db.run(ledger_audit.audit)
    assert audit.sound, audit

    def facts(tx: Tx) -> tuple[list[PaymentOrder], int]:
        rows = list(
            tx.session.scalars(select(PaymentOrder).where(PaymentOrder.merchant_id == shop))
        )
        refunds = int(tx.session.scalar(select(func.count()).select_from(OrderRefund)) or 0)
        return rows, refunds

    rows, refund_count = db.run(facts)
    paid_rows = {row.id for row in rows if row.status != "WAIT_BUYER_PAY"}
    assert done.paid <= paid_rows  # every acknowledged payment exists
    assert refund_count == len(done.refunds)  # each acknowledged refund exactly once
    for row in rows:
        refunded = sum(
            amount for (order_id, _), amount in done.refunds.items() if order_id == row.id
        )
        assert row.refunded == refunded
        if row.status == "WAIT_BUYER_PAY":
            assert row.ledger_operation_id is None and row.refunded == 0

    # What the merchant holds is what was paid, less what was refunded, to the cent.
    merchant = db.run(lambda tx: payments.account_of_merchant(tx, shop))
    expected = sum(row.amount - row.refunded for row in rows if row.status != "WAIT_BUYER_PAY")
    assert db.run(lambda tx: ledger.balance(tx, merchant)).posted == expected
    spent = sum(
        row.amount - row.refunded
        for row in rows
        if row.status != "WAIT_BUYER_PAY" and row.source == "balance"
    )
    wallet = db.run(lambda tx: payments.wallet(tx, user))
    assert wallet.balance == Money("CNY", 100_000_00 - spent)
