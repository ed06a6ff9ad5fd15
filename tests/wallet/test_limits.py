"""The limits' usage counters: kept with each movement, equal to the history's sums, read
in one statement whatever the history's length, counted in Beijing's calendar days and
years, and a counter that drifts from the history is found by the audit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from alembic import command
from sqlalchemy import event, select, update

from qianbao import migrate
from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.wallet import limits
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments
from tests.wallet.test_payments import PIN, buyer, cny, fund, order, shop, verify
from tests.wallet.test_transfers import ALICE, BOB, person, send

__all__ = ["shop"]  # the fixture, used by name


def usage(db: Database, user_id: uuid.UUID) -> limits.Usage:
    return db.run(lambda tx: limits.usage(tx, user_id))


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def test_payments_transfers_and_refunds_move_the_counters_with_the_history(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    alice = person(db, clock, ALICE)
    person(db, clock, BOB)
    fund(db, alice, "1000")
    verify(db, alice)
    paid = order(db, shop, "120.00")
    payments.pay_with_balance(db, alice, paid, PIN)
    send(db, alice, BOB, "30")
    send(db, alice, BOB, "20")
    refunds.refund(db, shop, paid, "R1", cny("45.00"))
    used = usage(db, alice)
    assert used.balance_today == 120_00 + 30_00 + 20_00 - 45_00
    assert (used.sent_today, used.transfers_today) == (50_00, 2)
    assert used.card_this_year == 0
    assert db.run(limits.discrepancies) == []


def test_a_limit_check_is_one_read_however_long_the_history(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    alice = person(db, clock, ALICE)
    person(db, clock, BOB)
    fund(db, alice, "1000")
    for _ in range(12):
        send(db, alice, BOB, "1")
    with statements(db) as seen:
        used = usage(db, alice)
    assert used.transfers_today == 12 and used.sent_today == 12_00
    queries = [text for text in seen if text.lstrip().upper().startswith("SELECT")]
    assert len(queries) == 1 and "usage_counters" in queries[0]


def test_days_and_years_are_beijing_s_and_a_refund_leaves_today_alone(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    user = buyer(db, clock)
    verify(db, user)
    fund(db, user, "500")
    # 2026-01-01 08:00 UTC is 16:00 in Beijing; 15:59 later it is 07:59 the next day there.
    yesterday = order(db, shop, "100.00", "D1")
    payments.pay_with_balance(db, user, yesterday, PIN)
    clock.advance(hours=8, minutes=1)  # 00:01 on 2 January in Beijing (still 1 January UTC)
    assert usage(db, user).balance_today == 0
    assert usage(db, user).balance_this_year == 100_00
    today = order(db, shop, "10.00", "D2")
    payments.pay_with_balance(db, user, today, PIN)
    refunds.refund(db, shop, yesterday, "R1", cny("40.00"))  # off yesterday, not today
    used = usage(db, user)
    assert (used.balance_today, used.balance_this_year) == (10_00, 70_00)
    assert db.run(limits.discrepancies) == []


def test_the_day_limit_refuses_from_the_counters(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    user = buyer(db, clock)
    verify(db, user)
    fund(db, user, "6000")
    payments.pay_with_balance(db, user, order(db, shop, "4990.00", "B1"), PIN)
    refused = order(db, shop, "20.00", "B2")
    try:
        payments.pay_with_balance(db, user, refused, PIN)
    except Exception as error:
        assert getattr(error, "code", None) == "policy.balance_day_limit"
    else:
        raise AssertionError("a payment over the day limit went through")
    clock.advance(days=1)  # the next day in Beijing: the counter starts again
    again = order(db, shop, "20.00", "B3")
    assert payments.pay_with_balance(db, user, again, PIN).status == "TRADE_SUCCESS"


def test_a_counter_that_drifts_from_the_history_is_found(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    alice = person(db, clock, ALICE)
    person(db, clock, BOB)
    fund(db, alice, "100")
    send(db, alice, BOB, "5")

    def tamper(tx: Tx) -> None:
        tx.session.execute(
            update(limits.UsageCounter)
            .where(limits.UsageCounter.measure == "transfer")
            .values(count=limits.UsageCounter.count - 1)
        )

    db.run(tamper)
    found = db.run(limits.discrepancies)
    assert len(found) == 2 and all("transfer" in line for line in found)  # day and year


def test_the_migration_fills_the_counters_from_the_history_it_finds(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    if db.dialect != "sqlite":
        pytest.skip("downgrading the shared PostgreSQL schema would disturb other tests")
    alice = person(db, clock, ALICE)
    person(db, clock, BOB)
    fund(db, alice, "1000")
    paid = order(db, shop, "120.00")
    payments.pay_with_balance(db, alice, paid, PIN)
    refunds.refund(db, shop, paid, "R1", cny("20.00"))
    clock.advance(days=3)
    send(db, alice, BOB, "30")
    before = db.run(lambda tx: sorted(map(_row, tx.session.scalars(select(limits.UsageCounter)))))
    db.dispose()
    command.downgrade(migrate.alembic_config(db.settings), "0022")
    migrate.upgrade(db.settings)
    after = db.run(lambda tx: sorted(map(_row, tx.session.scalars(select(limits.UsageCounter)))))
    assert after == before and len(after) == 5  # balance: 2 days and the year; transfer: 1 + 1
    assert db.run(limits.discrepancies) == []


def _row(counter: limits.UsageCounter) -> tuple[str, str, str, str, int, int]:
    return (
        str(counter.user_id),
        counter.measure,
        counter.period,
        counter.starts_on.isoformat(),
        counter.amount,
        counter.count,
    )
