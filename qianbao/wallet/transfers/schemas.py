"""Request and response shapes of transfers between people. Amounts are strings in major
units ("288.00"), never floats; names are masked, as the sender sees them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qianbao.wallet.schemas import AmountOut


class TransferQuoteIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"to": "+447400900123", "amount": "12.30", "note": "Coffee"}]
        }
    )

    to: str = Field(max_length=254, description="mobile number with country code, or email")
    amount: str = Field(max_length=32, description='CNY, e.g. "288.00"')
    note: str = Field(default="", max_length=400, description="optional, shown to both")


class TransferIn(TransferQuoteIn):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "to": "+447400900123",
                    "amount": "12.30",
                    "note": "Coffee",
                    "payment_password": "802417",
                    "recipient_id": "0b6f8a52-5d1e-4d0e-9a37-1f2c3d4e5f60",
                }
            ]
        }
    )

    payment_password: str = Field(min_length=6, max_length=6)
    # The account the quote showed (its ``recipient.id``): if ``to`` now names another
    # one (a recycled number, a moved email), nothing is sent.
    recipient_id: uuid.UUID | None = None


class RecipientOut(BaseModel):
    name: str  # masked verified name, "" when none is on record
    phone: str  # masked mobile number
    shown: str  # "** JOHN (verified)", in the request's language
    id: uuid.UUID | None = None  # in a quote: send it back as ``recipient_id``


class RemainingOut(BaseModel):
    key: str  # the policy.py limit: transfers_per_day, transfer_per_day, balance_per_day...
    label: str
    limit: str  # money ("CNY 5,000.00") or a number of transfers ("100")
    left: str


class AllowanceOut(BaseModel):
    balance: AmountOut
    may_send: bool
    per_transfer: AmountOut | None
    most_now: AmountOut  # the largest transfer possible now
    remaining: list[RemainingOut]


class TransferQuoteOut(BaseModel):
    recipient: RecipientOut
    amount: AmountOut
    note: str
    allowance: AllowanceOut


class TransferOut(BaseModel):
    id: uuid.UUID
    direction: Literal["sent", "received"]
    counterparty: RecipientOut
    amount: AmountOut
    note: str
    created_at: datetime
    replayed: bool  # true: a retry's answer; the money moved once, on the first try


class RequestLinkOut(BaseModel):
    path: str  # "/wallet/transfer?to=...": the transfer form, prefilled to pay this person


class TransfersPageOut(BaseModel):
    """A page of the transfer history, newest first (by time, then id)."""

    items: list[TransferOut]
    next_cursor: str | None = Field(
        description="Opaque: send it back as ``cursor`` for the next page; null on the last."
    )


class ReceiveCodeOut(BaseModel):
    url: str = Field(description="what the QR code says: the page to send this person money")
    path: str
