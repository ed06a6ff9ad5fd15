"""Tables of payment instruments: mainland bank cards bound after the bank checked them.

A card number is never stored: its keyed hash (to find the same card again), the bank's
name and the last four digits.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from qianbao.db import Base, UTCDateTime, new_id


class BankCard(Base):
    __tablename__ = "bank_cards"
    __table_args__ = (Index("ix_bank_cards_user", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    card_hash: Mapped[str] = mapped_column(String(64))
    bank_name_en: Mapped[str] = mapped_column(String(128))
    bank_name_zh: Mapped[str] = mapped_column(String(128))
    last4: Mapped[str] = mapped_column(String(4))
    # The bank's agreement for quick payments from this card (not the card number).
    bank_token: Mapped[str | None] = mapped_column(String(128), default=None)
    bound_at: Mapped[datetime] = mapped_column(UTCDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class BankCardCheck(Base):
    """A four-element check in progress: the bank sent a code to the reserved phone."""

    __tablename__ = "bank_card_checks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    card_hash: Mapped[str] = mapped_column(String(64))
    bank_name_en: Mapped[str] = mapped_column(String(128))
    bank_name_zh: Mapped[str] = mapped_column(String(128))
    last4: Mapped[str] = mapped_column(String(4))
    bank_reference: Mapped[str] = mapped_column(String(128))
    masked_phone: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    outcome: Mapped[str | None] = mapped_column(String(64), default=None)


class ForeignCard(Base):
    """A Visa, Mastercard... card: the network's token, never the number or the CVV."""

    __tablename__ = "foreign_cards"
    __table_args__ = (Index("ix_foreign_cards_user", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    token: Mapped[str] = mapped_column(String(128))
    brand: Mapped[str] = mapped_column(String(16))
    last4: Mapped[str] = mapped_column(String(4))
    expiry: Mapped[str] = mapped_column(String(7))  # MM/YY
    currency: Mapped[str] = mapped_column(String(3))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # When the issuer confirmed the card is the person's (3-D Secure at linking, when the
    # issuer asks for it); a card is usable only from then on.
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
