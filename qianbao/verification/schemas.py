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
