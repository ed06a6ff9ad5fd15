"""The table of transfers between people.

The money itself moves in the ledger (``ledger.py``), from the sender's balance account
to the recipient's; a row here says who sent what to whom, with which note, under which
of the sender's idempotency keys, and points at the ledger operation that moved it. The
names are kept masked, as the sender saw them when confirming: the history never needs
to open a sealed passport record.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from qianbao.db import Base, UTCDateTime, new_id

NOTE_COLUMN_CHARS = 200  # the setting ``transfer_note_max_chars`` may not exceed this


class PersonTransfer(Base):
    __tablename__ = "person_transfers"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint("sender_id <> recipient_id", name="not_to_self"),
        # One transfer per key of the sender's: a retry finds it and gets it back.
        UniqueConstraint("sender_id", "idempotency_key", name="uq_person_transfers_key"),
        Index("ix_person_transfers_sender_created", "sender_id", "created_at"),
        Index("ix_person_transfers_recipient_created", "recipient_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    sender_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    recipient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(String(NOTE_COLUMN_CHARS), default="")
    # Masked, as shown at confirmation: "** JOHN", "+44 ******3456" ("" when no name).
    sender_name: Mapped[str] = mapped_column(String(128), default="")
    sender_phone: Mapped[str] = mapped_column(String(32))
    recipient_name: Mapped[str] = mapped_column(String(128), default="")
    recipient_phone: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(80))
    request_hash: Mapped[str] = mapped_column(String(64))
    ledger_operation_id: Mapped[uuid.UUID] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReceiveCode(Base):
    """A person's receive code (收款码): the token in the QR others scan to send them
    money. A random token, not the phone number, so a printed code says nothing about
    its owner; resetting it gives a new token and the old one names nobody."""

    __tablename__ = "receive_codes"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    token: Mapped[str] = mapped_column(String(43), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
