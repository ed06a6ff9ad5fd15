"""Tables of the merchants' apps and of the platform's signing keys.

A merchant (``wallet/payments``' Merchant) has apps; each app has an ``app_id`` and the
RSA public key its requests are signed with. The platform answers and notifies with a
key pair of its own whose private half is sealed at rest (``sealing.py``).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from qianbao.db import Base, UTCDateTime, new_id

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
    key_uploaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


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


class MerchantUser(Base):
    """A person of a merchant who signs in to the merchant portal (not a wallet
    customer, not staff): an email or a username and an argon2id password."""

    __tablename__ = "merchant_users"
    __table_args__ = (Index("ix_merchant_users_merchant", "merchant_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    # Lower-cased; unique across all merchants (it is what one signs in with).
    login: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class MerchantSession(Base):
    """A signed-in portal browser or a merchant API token, kept only as a keyed hash
    (of a label per door, so a cookie never opens the API nor a token the pages)."""

    __tablename__ = "merchant_sessions"
    __table_args__ = (
        UniqueConstraint("token_hash"),
        Index("ix_merchant_sessions_user", "merchant_user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    merchant_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchant_users.id"))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


APPLICATION_STATES = ("pending", "approved", "rejected")


class MerchantApplication(Base):
    """A shop's application for a merchant account, decided in the back office."""

    __tablename__ = "merchant_applications"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="status"),
        Index("ix_merchant_applications_status", "status", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    shop_name: Mapped[str] = mapped_column(String(128))
    contact_name: Mapped[str] = mapped_column(String(128))
    email: Mapped[str] = mapped_column(String(254))
    website: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(12), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    decided_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
    merchant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("merchants.id"), default=None)
