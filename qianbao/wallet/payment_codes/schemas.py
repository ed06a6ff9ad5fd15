"""Response shape of a payment code."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class PaymentCodeOut(BaseModel):
    code: str = Field(description="18 digits to show as a barcode or QR code; works once")
    expires_at: datetime


class PaymentCodeLimitIn(BaseModel):
    limit: str = Field(max_length=16, description="whole CNY, 0 to the global limit")


class PaymentCodeLimitOut(BaseModel):
    limit: int = Field(description="the most a shop may take with a code (whole CNY)")
    cap: int = Field(description="the highest limit a person may choose")
