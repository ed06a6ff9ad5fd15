"""limits are read from usage counters per person, measure and Beijing calendar period,
kept in the movement's own transaction; filled here from the history they stand for

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

_BEIJING = ZoneInfo("Asia/Shanghai")
# The history as the counters count it (frozen here: later code may count otherwise).
_HISTORY = {
    "payments": """
        SELECT payer_id, CASE source WHEN 'balance' THEN 'balance' ELSE 'foreign_card' END,
               amount - refunded, 1, paid_at
        FROM payment_orders
        WHERE paid_at IS NOT NULL AND source IN ('balance', 'foreign_card')""",
    "transfers": "SELECT sender_id, 'transfer', amount, 1, created_at FROM person_transfers",
    "transfers from the balance": """
        SELECT sender_id, 'balance', amount, 1, created_at FROM person_transfers""",
    "top-ups": """
        SELECT p.user_id, 'foreign_card', t.amount - t.refunded, 1, t.created_at
        FROM tour_pass_top_ups t JOIN tour_passes p ON p.id = t.pass_id
        WHERE t.state IN ('pending', 'done')""",
}


def upgrade() -> None:
    counters = op.create_table(
        "usage_counters",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("measure", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=4), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_usage_counters_user_id_users")
        ),
        sa.PrimaryKeyConstraint(
            "user_id", "measure", "period", "starts_on", name=op.f("pk_usage_counters")
        ),
    )
    rows = _counted(op.get_bind())
    if rows:
        op.bulk_insert(counters, rows)


def _counted(connection: sa.Connection) -> list[dict[str, object]]:
    sums: dict[tuple[object, str, str, date], list[int]] = defaultdict(lambda: [0, 0])
    for query in _HISTORY.values():
        for user_id, measure, amount, count, at in connection.execute(sa.text(query)):
            day = _moment(at).astimezone(_BEIJING).date()
            for period, starts_on in (("day", day), ("year", day.replace(month=1, day=1))):
                cell = sums[(user_id, measure, period, starts_on)]
                cell[0] += int(amount)
                cell[1] += int(count)
    return [
        {
            "user_id": user_id if not isinstance(user_id, str) else _uuid(user_id),
            "measure": measure,
            "period": period,
            "starts_on": starts_on,
            "amount": amount,
            "count": count,
        }
        for (user_id, measure, period, starts_on), (amount, count) in sums.items()
    ]


def _moment(value: datetime | str) -> datetime:
    # SQLite hands back text; the project stores UTC throughout.
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _uuid(text: str) -> uuid.UUID:
    return uuid.UUID(text)  # SQLite hands back text keys


def downgrade() -> None:
    op.drop_table("usage_counters")
