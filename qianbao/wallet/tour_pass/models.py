"""Tables of the Tour Pass: the pass, its top-ups by foreign card, what it paid for, and
the parts of its leftover money given back to the cards at expiry or closing.

The money itself is a ledger account of kind ``tour_pass`` (floor 0) opened with the
pass; these rows say where it came from and where it went. ``tour_pass.py`` explains the
rules.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Numeric,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from qianbao.db import Base, UTCDateTime, new_id

PASS_STATES = ("open", "closed", "expired")
TOP_UP_STATES = ("pending", "done", "failed")
REFUND_STATES = ("sending", "done", "refused")
REFUND_DESTINATIONS = ("card", "balance", "held")


class TourPass(Base):
    """One pass: open for ``tour_pass_validity_days`` from ``opened_at``, then expired;
    or closed early by its owner. ``settled_at`` is set once its account is empty after
    closing (NULL again if money arrives later: a merchant's refund, a late top-up)."""

    __tablename__ = "tour_passes"
    __table_args__ = (
        CheckConstraint("state IN ('open', 'closed', 'expired')", name="state"),
        # One open pass per person, whatever the races.
        Index(
            "uq_tour_passes_open_owner",
            "user_id",
            unique=True,
            sqlite_where=text("state = 'open'"),
            postgresql_where=text("state = 'open'"),
        ),
        Index("ix_tour_passes_state_expires", "state", "expires_at"),
        Index("ix_tour_passes_unsettled", "settled_at", "state"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_accounts.id"))
    state: Mapped[str] = mapped_column(String(8))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class TourPassTopUp(Base):
    """Money added from a foreign card: ``amount`` reaches the pass, ``fee`` goes to fee
    income, the card is charged both (``card_amount`` in its currency at ``card_rate``).
    ``refunded`` is how much of ``amount`` went back to the card."""

    __tablename__ = "tour_pass_top_ups"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'done', 'failed')", name="state"),
        CheckConstraint("amount > 0 AND fee >= 0", name="amount"),
        CheckConstraint("refunded >= 0 AND refunded <= amount", name="refunded"),
        UniqueConstraint("pass_id", "request_key", name="uq_tour_pass_top_ups_request"),
        Index("ix_tour_pass_top_ups_pass", "pass_id", "state"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    pass_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tour_passes.id"))
    request_key: Mapped[str] = mapped_column(String(64))  # the client's idempotency key
    card_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("foreign_cards.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    fee: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(8))
    card_currency: Mapped[str | None] = mapped_column(String(3), default=None)
    card_amount: Mapped[int | None] = mapped_column(BigInteger, default=None)
    card_rate: Mapped[Decimal | None] = mapped_column(Numeric(18, 8), default=None)
    capture_id: Mapped[str | None] = mapped_column(String(64), default=None)
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    # The card network refused a refund to this card (closed card): skipped afterwards.
    refund_refused_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    failure_code: Mapped[str | None] = mapped_column(String(64), default=None)
    ledger_operation_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class TourPassRefund(Base):
    """One part of a closed pass's money going back: to a top-up's card (``sending``
    until the network confirms it, ``refused`` if it will not take it back), or, when no
    card takes it, to the person's balance (or held money)."""

    __tablename__ = "tour_pass_refunds"
    __table_args__ = (
        CheckConstraint("state IN ('sending', 'done', 'refused')", name="state"),
        CheckConstraint("destination IN ('card', 'balance', 'held')", name="destination"),
        CheckConstraint("amount > 0", name="amount"),
        Index("ix_tour_pass_refunds_pass", "pass_id", "state"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    pass_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tour_passes.id"))
    top_up_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tour_pass_top_ups.id"), default=None
    )
    destination: Mapped[str] = mapped_column(String(8))
    amount: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(8))
    card_currency: Mapped[str | None] = mapped_column(String(3), default=None)
    card_amount: Mapped[int | None] = mapped_column(BigInteger, default=None)
    card_rate: Mapped[Decimal | None] = mapped_column(Numeric(18, 8), default=None)
    network_refund_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class TourPassSpend(Base):
    """An order paid from a pass (its refunds come back to that pass)."""

    __tablename__ = "tour_pass_spends"

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payment_orders.id"), primary_key=True)
    pass_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tour_passes.id"), index=True)
