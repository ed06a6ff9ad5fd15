"""Tables of real-name verification: cases, their images, attempts, verified documents and
reviewers' decisions.

Nothing here holds a passport fact in clear but the masked number and the country codes:
names, the document number, dates of birth and expiry, face images and the portrait's
face embedding are sealed (AES-256-GCM, ``qianbao/sealing.py``) with the id of the key
beside them, so keys can rotate (``qianbao kyc rotate-key``).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from qianbao.db import Base, UTCDateTime, new_id

# A case moves: passport (waiting for the photo page) -> confirm (read; the person checks
# name and nationality) -> face (waiting for the liveness video) -> verified | review |
# rejected. A reviewer turns review into verified or rejected. A person may cancel an
# unfinished case (passport, confirm, face), which is then "cancelled".
CASE_STATUSES = ("passport", "confirm", "face", "review", "verified", "rejected", "cancelled")
OPEN_STATUSES = ("passport", "confirm", "face")
IMAGE_KINDS = ("page", "portrait", "selfie")


class VerificationCase(Base):
    __tablename__ = "verification_cases"
    __table_args__ = (
        CheckConstraint(
            "status IN ('passport', 'confirm', 'face', 'review', 'verified', 'rejected',"
            " 'cancelled')",
            name="status",
        ),
        Index("ix_verification_cases_status_updated", "status", "updated_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    method: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The document as read (sealed JSON) and what may be shown of it in clear.
    document_key_id: Mapped[str | None] = mapped_column(String(32), default=None)
    document_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    # Keyed hash of (issuing state, document number): finds a passport used twice.
    document_hash: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    document_masked: Mapped[str | None] = mapped_column(String(16), default=None)
    nationality: Mapped[str | None] = mapped_column(String(3), default=None)
    issuing_state: Mapped[str | None] = mapped_column(String(3), default=None)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # The portrait's face embedding, sealed like the document.
    portrait_key_id: Mapped[str | None] = mapped_column(String(32), default=None)
    portrait_embedding_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    # Passport chip: the fresh challenge the chip must sign (active authentication).
    aa_challenge: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    # Passport chip: the session keys of a chip-authentication challenge (sealed), and
    # when it was made; used up by the answer.
    chip_auth_sealed: Mapped[str | None] = mapped_column(Text, default=None)
    chip_auth_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # The liveness challenge now asked ("blink,turn_left") and when.
    challenge: Mapped[str | None] = mapped_column(String(64), default=None)
    challenge_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # The last face check: distance to the portrait, and the liveness measurements (JSON).
    face_distance: Mapped[float | None] = mapped_column(Float, default=None)
    liveness_report: Mapped[str | None] = mapped_column(Text, default=None)
    # Why the case is in review, or was rejected (an error code).
    reason: Mapped[str | None] = mapped_column(String(64), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    images_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class VerificationImage(Base):
    """A sealed image of a case: the photo page, the portrait cut from it, selfie frames."""

    __tablename__ = "verification_images"
    __table_args__ = (
        CheckConstraint("kind IN ('page', 'portrait', 'selfie')", name="kind"),
        UniqueConstraint("case_id", "kind", "position", name="uq_verification_images_slot"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("verification_cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(Integer, default=0)
    key_id: Mapped[str] = mapped_column(String(32))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class VerificationAttempt(Base):
    """One try at a step (a photo page read, a face check): the daily cap counts these."""

    __tablename__ = "verification_attempts"
    __table_args__ = (Index("ix_verification_attempts_user_at", "user_id", "attempted_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("verification_cases.id"))
    step: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(64))
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())


class VerifiedDocument(Base):
    """One passport, one verified account: the database itself refuses a second."""

    __tablename__ = "verified_documents"

    document_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), unique=True)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("verification_cases.id"))
    verified_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReviewDecision(Base):
    """A reviewer's decision on a case: who, when, what and why. Never changed."""

    __tablename__ = "review_decisions"
    __table_args__ = (CheckConstraint("decision IN ('approve', 'reject')", name="decision"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("verification_cases.id"), index=True)
    reviewer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_members.id"))
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FaceCheck(Base):
    """A fresh face check of a verified person (before a payment-password reset): the
    liveness challenge asked, and the outcome against the verified portrait. No images
    are kept."""

    __tablename__ = "face_checks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    challenge: Mapped[str | None] = mapped_column(String(64), default=None)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    outcome: Mapped[str | None] = mapped_column(String(64), default=None)
    face_distance: Mapped[float | None] = mapped_column(Float, default=None)


class TrustAnchor(Base):
    """A CSCA certificate or a CRL that passport chips are checked against, imported by
    an operator (``qianbao trust import``) from an ICAO master list or a state's files."""

    __tablename__ = "trust_anchors"
    __table_args__ = (CheckConstraint("kind IN ('csca', 'crl')", name="kind"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(8))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    subject: Mapped[str] = mapped_column(String(512))
    country: Mapped[str | None] = mapped_column(String(3), default=None)
    not_after: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    source: Mapped[str] = mapped_column(String(256))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime())
