"""Tables for rate limits, lockouts and shared quotas: a sliding log of events per key,
counters in time buckets, and the distinct things a key has touched."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from qianbao.db import Base, UTCDateTime, new_id


class RateBucket(Base):
    """One row per limited key. Writing it first serializes everyone counting that key."""

    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    touched_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RateEvent(Base):
    __tablename__ = "rate_events"
    __table_args__ = (
        Index("ix_rate_events_key_at", "key", "at"),
        Index("ix_rate_events_at", "at"),  # for pruning old events
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class RateCounter(Base):
    """Events of a shared key (an address, a country) counted in time buckets.

    Shared keys are hot: every code sent to a UK number touches the UK's counter. They
    are counted in a short transaction of their own, so a bucket row is locked for the
    time of one increment, not for the whole use case.
    """

    __tablename__ = "rate_counters"
    __table_args__ = (Index("ix_rate_counters_bucket_start", "bucket_start"),)

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)


class RateMark(Base):
    """The distinct things a key has touched, and when last (countries an address texts)."""

    __tablename__ = "rate_marks"
    __table_args__ = (Index("ix_rate_marks_last_at", "last_at"),)

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    member: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())
