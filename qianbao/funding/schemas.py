"""Request and response shapes of bank cards. A card number goes in once and never
comes back out: responses carry the bank's name and the last four digits."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class BankCheckIn(BaseModel):
    card_number: str = Field(max_length=64)
    holder_name: str = Field(max_length=128)
    passport_number: str = Field(max_length=32)
    reserved_phone: str = Field(max_length=32, description="with its country code; +86 if none")


class BankCheckOut(BaseModel):
    id: uuid.UUID
    masked_phone: str
    bank_name: str
    last4: str
    expires_at: datetime | None


class BankCodeIn(BaseModel):
    code: str = Field(max_length=12)


class BankCardOut(BaseModel):
    id: uuid.UUID
    bank_name: str
    last4: str
    bound_at: datetime
