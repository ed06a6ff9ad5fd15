"""Sliding-window limits on one person's things (a number), exact under concurrency.

Each limited thing has a key (``sms:number:+447911123456``). A use case first *claims*
all its keys: an upsert of the key's bucket row, which on PostgreSQL holds that row's
lock until commit (and on SQLite the whole database is written by one transaction at a
time). Only then does it count the key's events and add its own, so parallel requests
cannot all see "4 of 5" and all go through.
"""

from __future__ import annotations

import functools
import ipaddress
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.expression import Executable

from qianbao.db import Tx
from qianbao.errors import RateLimit, TooManyRequests
from qianbao.observability import metrics
from qianbao.throttling.models import RateBucket, RateCounter, RateEvent, RateMark


@dataclass(frozen=True)
class Limit:
    key: str
    max_events: int
    window: timedelta
    code: str
    message: str  # gettext msgid; may use {wait}, a human duration


def address(ip: str) -> str:
    """The address that per-address limits count: an IPv4 address as it is, an IPv6 one
    by its /64 (one subscriber or one network gets a whole /64, so counting single IPv6
    addresses would let one guesser take a fresh address for every try)."""
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return ip  # not an address (a test client): counted as given
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is that IPv4 address
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def claim(tx: Tx, keys: Iterable[str]) -> None:
    """Serialize on every key, in one fixed order so that two claims cannot deadlock."""
    ordered = sorted(set(keys))
    if not ordered:
        return
    now = tx.now()
    # Straight on the connection, one upsert a key in the order given (psycopg pipelines
    # them): the ORM's execution path cost more than the statement itself.
    tx.session.connection().execute(
        _claim_statement(tx.db.dialect), [{"key": key, "at": now} for key in ordered]
    )


@functools.cache
def _claim_statement(dialect: str) -> Executable:
    """The upsert of one key's bucket (its row lock held until commit), built once per
    dialect with bound parameters, so SQLAlchemy's compiled form is reused: a multi-row
    VALUES statement is compiled again on every call, and money operations claim on
    every call."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(RateBucket).values(key=bindparam("key"), touched_at=bindparam("at"))
    return statement.on_conflict_do_update(
        index_elements=[RateBucket.key], set_={"touched_at": statement.excluded.touched_at}
    )


def count(tx: Tx, key: str, since: datetime) -> int:
    query = (
        select(func.count())
        .select_from(RateEvent)
        .where(RateEvent.key == key, RateEvent.at > since)
    )
    return int(tx.session.scalar(query) or 0)


def latest(tx: Tx, key: str) -> datetime | None:
    query = select(func.max(RateEvent.at)).where(RateEvent.key == key)
    return tx.session.scalar(query)


def record(tx: Tx, key: str) -> uuid.UUID:
    event = RateEvent(key=key, at=tx.now())
    tx.session.add(event)
    tx.session.flush()
    return event.id


def forget(tx: Tx, event_ids: Iterable[uuid.UUID]) -> None:
    """Take back events counted ahead of an outcome that did not warrant them."""
    tx.session.execute(delete(RateEvent).where(RateEvent.id.in_(list(event_ids))))


def enforce(tx: Tx, *limits: Limit) -> None:
    """Refuse, saying when to come back, if any limit is full; limits share one key.

    One query reads the key's events over the longest window; each limit is then
    worked out from those timestamps.
    """
    if not limits:
        return
    key = limits[0].key
    assert all(limit.key == key for limit in limits), "limits of one key at a time"
    now = tx.now()
    longest = max(limit.window for limit in limits)
    recent = list(
        tx.session.scalars(
            select(RateEvent.at)
            .where(RateEvent.key == key, RateEvent.at > now - longest)
            .order_by(RateEvent.at.desc())
        )
    )
    for limit in limits:
        inside = [at for at in recent if at > now - limit.window]
        if len(inside) >= limit.max_events:
            # The window frees a slot when the oldest event that keeps it full falls out.
            oldest_blocking = inside[limit.max_events - 1]
            wait = (oldest_blocking + limit.window - now).total_seconds()
            raise refusal(
                limit.code, limit.message, wait, quota=limit.max_events, window=limit.window
            )


def refusal(
    code: str,
    message: str,
    wait: float,
    *,
    quota: int | None = None,
    window: timedelta | None = None,
) -> TooManyRequests:
    """A 429 whose message says, in words and in ``Retry-After``, when to come back; with
    the quota and its window when the refusal comes from one (``RateLimit-Policy``)."""
    seconds = int(window.total_seconds()) if window else None
    metrics.rate_limit_refused(code)
    return TooManyRequests(
        code,
        message,
        {"wait": human_wait(wait)},
        retry_after=wait,
        rate_limit=RateLimit(code, quota, seconds, remaining=0),
    )


def human_wait(seconds: float) -> str:
    """A short, language-neutral duration: ``45 s``, ``12 min``, ``3 h 20 min``."""
    seconds = max(1, int(seconds + 0.999))
    if seconds < 60:
        return f"{seconds} s"
    minutes = (seconds + 59) // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def prune(tx: Tx, keep: timedelta) -> int:
    """Forget events, counters and marks older than every window that could count them."""
    cutoff = tx.now() - keep
    result = tx.session.execute(delete(RateEvent).where(RateEvent.at < cutoff))
    tx.session.execute(delete(RateBucket).where(RateBucket.touched_at < cutoff))
    tx.session.execute(delete(RateCounter).where(RateCounter.bucket_start < cutoff))
    tx.session.execute(delete(RateMark).where(RateMark.last_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
