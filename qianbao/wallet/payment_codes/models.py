"""Payment codes: only a keyed hash of each is kept (the code is money for a minute)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from qianbao.db import Base, UTCDateTime, new_id


class PaymentCode(Base):
    __tablename__ = "payment_codes"
    __table_args__ = (Index("ix_payment_codes_user", "user_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    # "<key id>$<hex HMAC-SHA-256>" of the code under a key derived for this purpose.
    code_hash: Mapped[str] = mapped_column(String(96), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class PaymentCodeLimit(Base):
    """The most a shop may take with this person's payment code (whole CNY), set by the
    person; never above the global ``payment_code_password_free_limit``."""

    __tablename__ = "payment_code_limits"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    password_free_limit: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
