"""Tables of the identity domain: people, their agreements, SMS challenges, sessions."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from qianbao.db import Base, UTCDateTime, new_id


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("language IN ('en', 'zh_Hans')", name="language"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    phone_e164: Mapped[str] = mapped_column(String(16), unique=True)
    language: Mapped[str] = mapped_column(String(8))
    # Until the verification issue brings its own records, every account starts here.
    verification_level: Mapped[str] = mapped_column(String(32), default="unverified")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AgreementAcceptance(Base):
    """Which version of the user agreement a person accepted, when, and in which language."""

    __tablename__ = "agreement_acceptances"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    version: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ip: Mapped[str] = mapped_column(String(64))


class SmsChallenge(Base):
    """One SMS code sent to one number for one purpose. The code is kept only as an HMAC."""

    __tablename__ = "sms_challenges"
    __table_args__ = (
        Index("ix_sms_challenges_phone_purpose_created", "phone_e164", "purpose", "created_at"),
        CheckConstraint("purpose IN ('signup', 'login')", name="purpose"),
        CheckConstraint("attempts >= 0", name="attempts"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    phone_e164: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(default=0)
    # used | superseded | exhausted; empty while the code may still be tried.
    closed_reason: Mapped[str | None] = mapped_column(String(16), default=None)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    language: Mapped[str] = mapped_column(String(8))
    ip: Mapped[str] = mapped_column(String(64))
    # For sign-up: the agreement the person accepted before the code was sent.
    agreement_version: Mapped[str | None] = mapped_column(String(32), default=None)
    agreement_accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class AuthSession(Base):
    """A signed-in device. The bearer token or cookie is kept only as an HMAC."""

    __tablename__ = "auth_sessions"
    __table_args__ = (UniqueConstraint("token_hash"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))  # web | api
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    ip: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(512))
