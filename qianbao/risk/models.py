"""Tables for rate limits and lockouts: a sliding log of events per key."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, LargeBinary, String, Text
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


class AccountRestriction(Base):
    """A restriction (no money out) or a freeze (no money movement) on an account, by a
    risk rule or a reviewer, until a reviewer lifts it. Never deleted: lifting records
    who and why."""

    __tablename__ = "account_restrictions"
    __table_args__ = (
        CheckConstraint("kind IN ('restricted', 'frozen')", name="kind"),
        Index("ix_account_restrictions_user", "user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64))  # a code: card_velocity, shared_card...
    imposed_by: Mapped[str] = mapped_column(String(64))  # "rule:<name>" or "staff:<id>"
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    lifted_by: Mapped[str | None] = mapped_column(String(64), default=None)
    lift_note: Mapped[str | None] = mapped_column(Text, default=None)


class RestrictionAppeal(Base):
    """The person's documents against a restriction, waiting for a reviewer."""

    __tablename__ = "restriction_appeals"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'lifted', 'kept')", name="status"),
        Index("ix_restriction_appeals_status", "status", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    restriction_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("account_restrictions.id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    message: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    decided_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("staff_members.id"), default=None
    )
    decision_note: Mapped[str | None] = mapped_column(Text, default=None)


class AppealDocument(Base):
    """A sealed image sent with an appeal: the passport page, a selfie holding the
    passport, a card statement."""

    __tablename__ = "appeal_documents"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('passport_page', 'selfie_with_passport', 'card_statement')", name="kind"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    appeal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("restriction_appeals.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str] = mapped_column(String(32))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
