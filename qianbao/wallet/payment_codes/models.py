"""Payment codes: only a keyed hash of each is kept (the code is money for a minute)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
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
