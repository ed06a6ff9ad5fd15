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
    # The IANA zone whose clock the pages show (Beijing time until the person picks one).
    time_zone: Mapped[str] = mapped_column(
        String(64), default="Asia/Shanghai", server_default="Asia/Shanghai"
    )
    # Until the verification issue brings its own records, every account starts here.
    verification_level: Mapped[str] = mapped_column(String(32), default="unverified")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # A proven address only: it becomes a login name once its emailed code was entered.
    email: Mapped[str | None] = mapped_column(String(254), unique=True, default=None)
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


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
        # security: a step-up code for changing passwords and email.
        CheckConstraint("purpose IN ('signup', 'login', 'security')", name="purpose"),
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
    # Where and on what it signed in: ISO 3166 country (None: unknown) and the device.
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    device_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("known_devices.id"), default=None
    )


class KnownDevice(Base):
    """A browser or app the account has signed in from. The device id (a long-lived
    random cookie, or the API's ``device_id``) is kept only as a keyed hash under the
    keyring, salted with the account, so one device is not linkable across accounts."""

    __tablename__ = "known_devices"
    __table_args__ = (UniqueConstraint("user_id", "device_hash"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    device_hash: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(128))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SignInCountry(Base):
    """A country the account has signed in from (a password sign-in from any other asks
    for an SMS code too)."""

    __tablename__ = "sign_in_countries"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PaymentPassword(Base):
    """The six-digit payment password, its wrong-entry count and its lock."""

    __tablename__ = "payment_passwords"
    __table_args__ = (CheckConstraint("failures >= 0", name="failures"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    failures: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EmailChallenge(Base):
    """A code mailed to prove an address. Kept only as an HMAC, like SMS codes."""

    __tablename__ = "email_challenges"
    __table_args__ = (
        Index("ix_email_challenges_user_created", "user_id", "created_at"),
        CheckConstraint("attempts >= 0", name="attempts"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    email: Mapped[str] = mapped_column(String(254))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(default=0)
    closed_reason: Mapped[str | None] = mapped_column(String(16), default=None)


class StaffMember(Base):
    """A back-office person (a reviewer, risk officer, support agent or administrator:
    qianbao/access.py says what each may do), not a wallet customer.

    Staff sign in with a username and password on /admin, never with a phone number, and
    their sessions live apart from customers' (``staff_sessions``).
    """

    __tablename__ = "staff_members"
    __table_args__ = (
        CheckConstraint(
            "role IN ('reviewer', 'risk_officer', 'support', 'admin')", name="role"
        ),  # qianbao/access.py's Role
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class StaffSession(Base):
    """A signed-in back-office browser; the cookie is kept only as an HMAC."""

    __tablename__ = "staff_sessions"
    __table_args__ = (UniqueConstraint("token_hash"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    staff_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_members.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class FaceCheckPass(Base):
    """A fresh face check passed (liveness plus the verified portrait): it lets a verified
    person reset a forgotten payment password once, within minutes."""

    __tablename__ = "face_check_passes"
    __table_args__ = (Index("ix_face_check_passes_user_passed", "user_id", "passed_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    passed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
