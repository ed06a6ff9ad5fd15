"""Request and response shapes of real-name verification. Passport numbers leave the
server masked; images never leave it through the customer API."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel


class DocumentOut(BaseModel):
    surname: str
    given_names: str
    nationality: str
    issuing_state: str
    document_number: str  # masked: "******2C3"
    birth_date: date
    expiry_date: date


class CaseOut(BaseModel):
    id: uuid.UUID
    method: str  # passport_face | passport_chip
    status: str  # passport | confirm | face | review | verified | rejected
    step: int  # 1 passport, 2 face, 3 result
    document: DocumentOut | None
    challenge: list[str] | None  # the liveness actions, in order
    challenge_expires_at: datetime | None
    reason: str | None
    tries_left: int
    next_try_at: datetime | None
    aa_challenge: str | None = None  # hex: what the chip must sign (passport_chip)


class ChipAuthenticationOut(BaseModel):
    """Run chip authentication with this key, then send ``command`` to the chip first."""

    protocol: str  # the OID for MSE:Set AT (or MSE:Set KAT for 3DES)
    key_id: int | None  # the chip's key to use (DG14), when it names one
    ephemeral_public_key: str  # hex, uncompressed point: GENERAL AUTHENTICATE tag 80
    command: str  # hex: the wrapped READ BINARY of DG1; upload the chip's answer
    expires_at: datetime


class VerifiedIdentityOut(BaseModel):
    name: str
    nationality: str
    document_number: str  # masked
    method: str
    method_label: str
    verified_at: datetime


class FaceCheckOut(BaseModel):
    id: uuid.UUID
    challenge: list[str]
    expires_at: datetime
