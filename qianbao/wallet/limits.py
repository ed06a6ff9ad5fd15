"""What a person has used of each limit policy.py sets: usage counters per person, measure
and period, kept in the same transaction as the movement that uses them.

A limit check is one indexed read of a handful of rows, however long the person's
history: the counters are the sums the history would give. Periods are calendar days
and calendar years in Beijing time, as the PBOC's yearly limits and Alipay's daily ones
count them. A refund is taken off the periods of the payment it refunds (the day and the
year the money left), so the counters always equal the history's sums, which
``discrepancies`` checks (the ledger audit and the bank test call it).

Measures:

- ``balance``: payments from the balance and transfers to people, refunds taken off
  (PBOC No. 43 caps "consumption and transfer" together);
- ``transfer``: transfers to people, in money and in number;
- ``foreign_card``: payments by foreign card and Tour Pass top-ups, refunds and failed
  top-ups taken off.
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Final, Literal, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Insert,
    Integer,
    String,
    Table,
    bindparam,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from qianbao.db import Base, Tx
from qianbao.money import Money
from qianbao.policy import Rights
from qianbao.wallet.payments.models import PaymentOrder
from qianbao.wallet.tour_pass.models import TourPass, TourPassTopUp
from qianbao.wallet.transfers.models import PersonTransfer

CNY: Final = "CNY"
LIMITS_TIME_ZONE: Final = ZoneInfo("Asia/Shanghai")
Measure = Literal["balance", "transfer", "foreign_card"]
Period = Literal["day", "year"]
# Which payment sources count towards which measure (a mainland bank card or a Tour
# Pass payment counts towards neither: their limits are the bank's and the pass's own).
_SOURCE_MEASURES: Final[dict[str, Measure]] = {"balance": "balance", "foreign_card": "foreign_card"}


class UsageCounter(Base):
    """One person's use of one measure in one calendar period (Beijing time)."""

    __tablename__ = "usage_counters"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    measure: Mapped[str] = mapped_column(String(16), primary_key=True)
    period: Mapped[str] = mapped_column(String(4), primary_key=True)
    starts_on: Mapped[date] = mapped_column(Date, primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger, default=0)  # minor units of CNY
    count: Mapped[int] = mapped_column(Integer, default=0)


def local_day(moment: datetime) -> date:
    return moment.astimezone(LIMITS_TIME_ZONE).date()


def year_start(now: datetime) -> datetime:
    """1 January 00:00 in Beijing of ``now``'s year there: the PBOC's yearly limits
    (Class II and III) count calendar years in China, not in UTC."""
    local = now.astimezone(LIMITS_TIME_ZONE)
    return local.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)


def _periods(moment: datetime) -> tuple[tuple[Period, date], tuple[Period, date]]:
    day = local_day(moment)
    return ("day", day), ("year", day.replace(month=1, day=1))


# --- reading --------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """What a person has used today and this year (Beijing time), in minor units of CNY."""

    balance_today: int = 0
    balance_this_year: int = 0
    sent_today: int = 0
    transfers_today: int = 0
    card_this_year: int = 0


# Read before every payment and transfer: one statement built once.
_USAGE: Final = select(
    UsageCounter.measure, UsageCounter.period, UsageCounter.amount, UsageCounter.count
).where(
    UsageCounter.user_id == bindparam("user_id"),
    ((UsageCounter.period == "day") & (UsageCounter.starts_on == bindparam("day")))
    | ((UsageCounter.period == "year") & (UsageCounter.starts_on == bindparam("year"))),
)


def usage(tx: Tx, user_id: uuid.UUID) -> Usage:
    """The person's counters for the current day and year: one indexed read."""
    (_, day), (_, year) = _periods(tx.now())
    rows = tx.read(_USAGE, {"user_id": user_id, "day": day, "year": year}).mappings()
    found = {(row["measure"], row["period"]): (row["amount"], row["count"]) for row in rows}
    return Usage(
        balance_today=found.get(("balance", "day"), (0, 0))[0],
        balance_this_year=found.get(("balance", "year"), (0, 0))[0],
        sent_today=found.get(("transfer", "day"), (0, 0))[0],
        transfers_today=found.get(("transfer", "day"), (0, 0))[1],
        card_this_year=found.get(("foreign_card", "year"), (0, 0))[0],
    )


def limit_usage(tx: Tx, user_id: uuid.UUID, rights: Rights) -> dict[str, Money | int]:
    """How much of each of policy.py's limits the person has used, in the limit's own
    currency (card payments are converted from CNY at the settings' rate), or as a
    count (transfers a day)."""
    used_now = usage(tx, user_id)
    used: dict[str, Money | int] = {
        "balance_per_day": Money(CNY, used_now.balance_today),
        "balance_per_year": Money(CNY, used_now.balance_this_year),
        "transfer_per_day": Money(CNY, used_now.sent_today),
        "transfers_per_day": used_now.transfers_today,
    }
    card_limit = rights.card_per_year
    rate = tx.settings.fx_rates.get(card_limit.currency)
    if card_limit.currency == CNY:
        used["card_per_year"] = Money(CNY, used_now.card_this_year)
    elif rate:
        converted = (Decimal(used_now.card_this_year) / rate).quantize(Decimal(1), ROUND_HALF_UP)
        used["card_per_year"] = Money(card_limit.currency, int(converted))
    return used


# --- counting (in the movement's own transaction) -------------------------------------


def _add(
    tx: Tx, user_id: uuid.UUID, changes: Sequence[tuple[Measure, int, int]], at: datetime
) -> None:
    """Add (amount, count) to each measure's day and year of ``at``: one upsert run for
    every row at once (psycopg sends them in one pipeline)."""
    periods = _periods(at)
    rows = [
        {
            "user_id": user_id,
            "measure": measure,
            "period": period,
            "starts_on": starts_on,
            "amount": amount,
            "count": count,
        }
        for measure, amount, count in changes
        for period, starts_on in periods
    ]
    if rows:
        tx.session.connection().execute(_upsert(tx.db.dialect), rows)


@functools.cache
def _upsert(dialect: str) -> Insert:
    """The upsert of one counter row, built once per dialect. One row with bound
    parameters, run with a list of rows: SQLAlchemy caches its compiled form, where a
    multi-row VALUES statement is compiled again on every call (that compile was a sixth
    of a payment's CPU)."""
    table = cast(Table, UsageCounter.__table__)
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(table).values(
        user_id=bindparam("user_id"),
        measure=bindparam("measure"),
        period=bindparam("period"),
        starts_on=bindparam("starts_on"),
        amount=bindparam("amount"),
        count=bindparam("count"),
    )
    return statement.on_conflict_do_update(
        index_elements=[table.c.user_id, table.c.measure, table.c.period, table.c.starts_on],
        set_={
            "amount": table.c.amount + statement.excluded.amount,
            "count": table.c.count + statement.excluded.count,
        },
    )


def count_payment(
    tx: Tx, payer_id: uuid.UUID, source: str, amount_minor: int, paid_at: datetime
) -> None:
    """A merchant payment from ``source`` (a refund: a negative amount, the payment's own
    ``paid_at``, so that it comes off the periods the payment was counted in)."""
    measure = _SOURCE_MEASURES.get(source)
    if measure is not None:
        _add(tx, payer_id, [(measure, amount_minor, 1 if amount_minor > 0 else 0)], paid_at)


def count_transfer(tx: Tx, sender_id: uuid.UUID, amount_minor: int, at: datetime) -> None:
    """A transfer to another person: from the balance, and one more transfer today."""
    _add(tx, sender_id, [("transfer", amount_minor, 1), ("balance", amount_minor, 1)], at)


def count_card_top_up(tx: Tx, user_id: uuid.UUID, amount_minor: int, created_at: datetime) -> None:
    """A Tour Pass top-up by foreign card (negative when it fails or is refunded)."""
    _add(tx, user_id, [("foreign_card", amount_minor, 1 if amount_minor > 0 else 0)], created_at)


# --- the audit: counters against the history they stand for --------------------------


def discrepancies(tx: Tx) -> list[str]:
    """Every counter that differs from the sum of the history it stands for (amounts;
    the transfer count too). Empty when the books agree."""
    expected: dict[tuple[uuid.UUID, str, str, date], list[int]] = defaultdict(lambda: [0, 0])
    for user_id, measure, amount, count, at in _history(tx):
        for period, starts_on in _periods(at):
            cell = expected[(user_id, measure, period, starts_on)]
            cell[0] += amount
            cell[1] += count
    counted = {
        (row.user_id, row.measure, row.period, row.starts_on): [row.amount, row.count]
        for row in tx.session.scalars(select(UsageCounter))
    }
    findings = []
    for key in sorted(set(expected) | set(counted), key=str):
        want, have = expected.get(key, [0, 0]), counted.get(key, [0, 0])
        compared = (0, 1) if key[1] == "transfer" else (0,)
        if any(want[i] != have[i] for i in compared):
            findings.append(
                f"usage counter {key[1]}/{key[2]} {key[3]} of {key[0]}: "
                f"counted {have[0]} ({have[1]}), history {want[0]} ({want[1]})"
            )
    return findings


def _history(tx: Tx) -> Iterator[tuple[uuid.UUID, Measure, int, int, datetime]]:
    payments = select(
        PaymentOrder.payer_id,
        PaymentOrder.source,
        PaymentOrder.amount - PaymentOrder.refunded,
        PaymentOrder.paid_at,
    ).where(PaymentOrder.paid_at.is_not(None), PaymentOrder.source.in_(_SOURCE_MEASURES))
    for payer_id, source, amount, paid_at in tx.session.execute(payments):
        if payer_id is not None and source is not None and paid_at is not None:
            yield payer_id, _SOURCE_MEASURES[source], amount, 1, paid_at
    transfers = select(PersonTransfer.sender_id, PersonTransfer.amount, PersonTransfer.created_at)
    for sender_id, amount, at in tx.session.execute(transfers):
        yield sender_id, "transfer", amount, 1, at
        yield sender_id, "balance", amount, 1, at
    top_ups = (
        select(
            TourPass.user_id,
            TourPassTopUp.amount - TourPassTopUp.refunded,
            TourPassTopUp.created_at,
        )
        .join(TourPass, TourPass.id == TourPassTopUp.pass_id)
        .where(TourPassTopUp.state.in_(("pending", "done")))
    )
    for user_id, amount, at in tx.session.execute(top_ups):
        yield user_id, "foreign_card", amount, 1, at
