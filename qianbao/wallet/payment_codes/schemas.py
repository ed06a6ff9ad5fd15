"""Response shape of a payment code."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class PaymentCodeOut(BaseModel):
    code: str = Field(description="18 digits to show as a barcode or QR code; works once")
    expires_at: datetime
