"""Quotas on shared keys (an address, a country, a range of numbers), cheap under load.

A quota is counted in time buckets (a twelfth of its window each): taking one
increments the current bucket with an upsert, which holds that row's lock, then sums
the buckets still inside the window. Over the quota, the transaction rolls back and
nothing was counted. Concurrent takers of one key queue on the bucket row for the
length of this small transaction only (run it at READ COMMITTED, see
``Database.run(isolation=...)``): exact, and no serialization failures on a hot row.

The window slides by whole buckets, so it is up to one bucket shorter than nominal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from qianbao.db import Tx
from qianbao.throttling.models import RateCounter, RateMark
from qianbao.throttling.ratelimit import refusal

BUCKETS_PER_WINDOW = 12
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Quota:
    key: str
    max_events: int
    window: timedelta
    code: str
    message: str  # gettext msgid; may use {wait}

    @property
    def counter_key(self) -> str:
        return f"{self.key}/{int(self.window.total_seconds())}"

    @property
    def bucket(self) -> timedelta:
        return self.window / BUCKETS_PER_WINDOW


def _insert(tx: Tx) -> Callable[..., Any]:
    return pg_insert if tx.session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _bucket_start(now: datetime, width: timedelta) -> datetime:
    return now - (now - EPOCH) % width


def take(tx: Tx, quotas: Sequence[Quota]) -> None:
    """Count one event against every quota, or raise (counting none) if one is full."""
    now = tx.now()
    for quota in sorted(quotas, key=lambda q: q.counter_key):  # one lock order for all
        start = _bucket_start(now, quota.bucket)
        statement = _insert(tx)(RateCounter).values(
            key=quota.counter_key, bucket_start=start, count=1
        )
        statement = statement.on_conflict_do_update(
            index_elements=[RateCounter.key, RateCounter.bucket_start],
            set_={"count": RateCounter.count + 1},
        )
        tx.session.execute(statement)
        buckets = tx.session.execute(
            select(RateCounter.bucket_start, RateCounter.count)
            .where(
                RateCounter.key == quota.counter_key, RateCounter.bucket_start > now - quota.window
            )
            .order_by(RateCounter.bucket_start)
        ).all()
        used = sum(count for _, count in buckets)
        if used > quota.max_events:
            wait = _wait(now, quota, buckets, used)
            raise refusal(
                quota.code, quota.message, wait, quota=quota.max_events, window=quota.window
            )


def _wait(now: datetime, quota: Quota, buckets: Sequence[tuple[datetime, int]], used: int) -> float:
    """Seconds until enough old buckets leave the window for one more event to fit."""
    excess = used - quota.max_events
    for start, count in buckets:
        excess -= count
        if excess <= 0:
            return (start + quota.window - now).total_seconds()
    return quota.window.total_seconds()


def touch_mark(tx: Tx, key: str, member: str) -> None:
    now = tx.now()
    statement = _insert(tx)(RateMark).values(key=key, member=member, last_at=now)
    statement = statement.on_conflict_do_update(
        index_elements=[RateMark.key, RateMark.member], set_={"last_at": now}
    )
    tx.session.execute(statement)


def marks_since(tx: Tx, key: str, since: datetime) -> dict[str, datetime]:
    rows = tx.session.execute(
        select(RateMark.member, RateMark.last_at).where(
            RateMark.key == key, RateMark.last_at > since
        )
    ).all()
    return dict(rows)
