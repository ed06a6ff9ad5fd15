"""Tables of restrictions and freezes, and the appeals against them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from qianbao.db import Base, UTCDateTime, new_id


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
    # A freeze holding more than QIANBAO_FREEZE_TWO_PERSON_RELEASE_ABOVE is released by two
    # different risk officers: the first one's approval waits here for the second.
    release_approved_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("staff_members.id"), default=None
    )
    release_approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


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
