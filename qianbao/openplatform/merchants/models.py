"""Tables of the merchants' apps and of the platform's signing keys.

A merchant (``wallet/payments``' Merchant) has apps; each app has an ``app_id`` and the
RSA public key its requests are signed with. The platform answers and notifies with a
key pair of its own whose private half is sealed at rest (``sealing.py``).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from qianbao.db import Base, UTCDateTime

PLATFORM_KEY_STATES = ("next", "current", "retired")


class MerchantApp(Base):
    __tablename__ = "merchant_apps"
    __table_args__ = (Index("ix_merchant_apps_merchant", "merchant_id"),)

    app_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    name: Mapped[str] = mapped_column(String(128))
    # The app's RSA public key (PEM, SubjectPublicKeyInfo), None until uploaded.
    public_key: Mapped[str | None] = mapped_column(Text, default=None)
    # The key it replaced, still accepted until ``previous_key_until`` (a rotation
    # without downtime: the shop's servers switch one by one).
    previous_public_key: Mapped[str | None] = mapped_column(Text, default=None)
    previous_key_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PlatformKey(Base):
    """One of the platform's RSA key pairs. *current* signs; *next* is published for
    shops to install before it signs; *retired* is kept for the record."""

    __tablename__ = "platform_keys"
    __table_args__ = (
        CheckConstraint("state IN ('next', 'current', 'retired')", name="state"),
        Index("ix_platform_keys_state", "state"),
    )

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(8))
    public_key: Mapped[str] = mapped_column(Text)
    sealed_private_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    current_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
