"""The table of pay-for-me (代付) links: an order's asker shares a link, a friend pays it.

The link's token is shown once, to the asker; only its keyed hash is kept, like session
tokens, so a copy of the database cannot be used to pay anybody's orders.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from qianbao.db import Base, UTCDateTime, new_id

LINK_STATES = ("open", "paid", "expired")


class PayForMeLink(Base):
    """One request to a friend to pay an order, good until ``expires_at``."""

    __tablename__ = "pay_for_me_links"
    __table_args__ = (
        CheckConstraint("state IN ('open', 'paid', 'expired')", name="state"),
        CheckConstraint("(state = 'paid') = (paid_by IS NOT NULL)", name="paid_by"),
        Index("ix_pay_for_me_links_order", "order_id"),
        Index("ix_pay_for_me_links_state_expires", "state", "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payment_orders.id"))
    asker_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(8), default="open")
    paid_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), default=None)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
