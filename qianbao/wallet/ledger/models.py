"""Ledger tables: accounts, operations (idempotency keys) and append-only transfers.

The rules that must never break live in the database (see ``migrations/versions/0007``):
CHECK constraints here, and triggers that keep each account's balance equal to its
history, refuse currency mixing, refuse UPDATE and DELETE of history, and refuse balance
changes that do not come from a transfer. ``qianbao.wallet.ledger.service`` explains the design.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from qianbao.db import Base, UTCDateTime, new_id

ACCOUNT_KINDS = (
    "user_balance",
    "user_held",
    "merchant_settlement",
    "card_clearing",
    "bank_clearing",
    "fee_income",
    "fx",
    "issuance",
    "tour_pass",  # a visitor's prepaid Tour Pass (qianbao/wallet/tour_pass/service.py)
)
TRANSFER_KINDS = ("posted", "pending", "post_pending", "void_pending")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class LedgerAccount(Base):
    """One account row. ``balance`` is posted credits minus posted debits; the pending
    columns are what two-phase transfers reserve. All three are written only by the
    transfer triggers. ``floor`` is the lowest ``balance - pending_debits`` allowed
    (NULL: no floor, for clearing and issuance accounts that stand for outside money).

    A hot account (a merchant's settlement) is split into shards: the head row and rows
    with ``shard_of`` pointing at it. Its balance is the sum over head and shards.
    """

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint(_one_of("kind", ACCOUNT_KINDS), name="kind"),
        CheckConstraint("floor IS NULL OR balance - pending_debits >= floor", name="floor"),
        CheckConstraint("pending_debits >= 0 AND pending_credits >= 0", name="pending"),
        Index("ix_ledger_accounts_owner", "owner_id"),
        Index("ix_ledger_accounts_shard_of", "shard_of"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32))
    owner_id: Mapped[uuid.UUID | None]
    currency: Mapped[str] = mapped_column(String(3))
    floor: Mapped[int | None] = mapped_column(BigInteger)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    pending_debits: Mapped[int] = mapped_column(BigInteger, default=0)
    pending_credits: Mapped[int] = mapped_column(BigInteger, default=0)
    # The newest transfer that moved this row: the SQLite trigger that refuses hand-made
    # balance changes checks that a change is the effect of a transfer not yet applied.
    last_transfer_id: Mapped[uuid.UUID | None]
    shard_of: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LedgerOperation(Base):
    """One business operation (a payment with its fee): its idempotency key, the hash of
    the request it was made with, and the result returned to the caller. Immutable."""

    __tablename__ = "ledger_operations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(Text)  # JSON
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LedgerTransfer(Base):
    """One movement of ``amount`` from the debit account to the credit account. Append-only.

    ``pending`` reserves; ``post_pending`` (amount up to the pending amount, the rest is
    released) or ``void_pending`` (the whole amount) resolves a pending transfer, once:
    ``pending_id`` is unique.
    """

    __tablename__ = "ledger_transfers"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint(_one_of("kind", TRANSFER_KINDS), name="kind"),
        CheckConstraint("debit_account_id <> credit_account_id", name="two_accounts"),
        CheckConstraint(
            "(kind IN ('post_pending', 'void_pending')) = (pending_id IS NOT NULL)",
            name="pending_id",
        ),
        CheckConstraint("kind = 'pending' OR expires_at IS NULL", name="expires_at"),
        Index("ix_ledger_transfers_operation", "operation_id", "position", unique=True),
        Index("ix_ledger_transfers_debit", "debit_account_id"),
        Index("ix_ledger_transfers_credit", "credit_account_id"),
        Index("ix_ledger_transfers_expires_at", "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    operation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_operations.id"))
    position: Mapped[int]  # order within the operation
    debit_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_accounts.id"))
    credit_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    kind: Mapped[str] = mapped_column(String(16))
    pending_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("ledger_transfers.id"), unique=True
    )
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
