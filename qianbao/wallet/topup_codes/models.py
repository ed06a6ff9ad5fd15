"""Tables of store top-up codes: a merchant's batch and its codes (kept only as keyed
hashes).

A batch's face value is prepaid into a ledger account of its own when it is created, so
every redeemed code moves money that already exists; ``topup_codes.py`` explains why.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from qianbao.db import Base, UTCDateTime, new_id

CODE_STATES = ("active", "redeemed", "void")
FUNDING_SOURCES = ("settlement", "bank")


class TopupCodeBatch(Base):
    """Codes a merchant sells over the counter, all of one value."""

    __tablename__ = "topup_code_batches"
    __table_args__ = (
        CheckConstraint("value > 0", name="value"),
        CheckConstraint("count > 0", name="count"),
        CheckConstraint("funded_by IN ('settlement', 'bank')", name="funded_by"),
        Index("ix_topup_code_batches_merchant", "merchant_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    currency: Mapped[str] = mapped_column(String(3))
    value: Mapped[int] = mapped_column(BigInteger)  # minor units, per code
    count: Mapped[int]
    # The batch's prepaid money: value x codes not yet redeemed or voided.
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_accounts.id"))
    funded_by: Mapped[str] = mapped_column(String(16))
    funding_reference: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class TopupCode(Base):
    """One code. Only its keyed hash is stored: the printed list is the only copy."""

    __tablename__ = "topup_codes"
    __table_args__ = (
        CheckConstraint("state IN ('active', 'redeemed', 'void')", name="state"),
        # A redeemed code says who and when; no other state does.
        CheckConstraint(
            "(state = 'redeemed') = (redeemed_by IS NOT NULL AND redeemed_at IS NOT NULL)",
            name="redeemed",
        ),
        Index("ix_topup_codes_batch", "batch_id", "state"),
        Index("ix_topup_codes_redeemed_by", "redeemed_by", "redeemed_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("topup_code_batches.id"))
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16), default="active")
    redeemed_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), default=None)
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    ledger_operation_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
