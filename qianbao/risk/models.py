"""Tables for rate limits and lockouts: a sliding log of events per key."""

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
    # A value to count distinct occurrences of (the countries an IP sends codes to).
    detail: Mapped[str | None] = mapped_column(String(64), default=None)
