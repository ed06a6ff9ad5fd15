"""Request and response shapes of the merchant API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from qianbao.wallet.schemas import AmountOut, OrderOut, RefundOut


class MerchantSignInIn(BaseModel):
    login: str = Field(max_length=254, description="The email or username.")
    password: str = Field(max_length=1024)


class MerchantSignedInOut(BaseModel):
    token: str
    expires_at: datetime
    merchant: str
    login: str


class TradeOut(BaseModel):
    trade_no: str = Field(description="Alipay's trade number, as the gateway answers it.")
    app_id: str
    trade_status: str = Field(
        description="WAIT_BUYER_PAY, TRADE_SUCCESS, TRADE_CLOSED or TRADE_FINISHED"
    )
    order: OrderOut


class TradeDetailOut(TradeOut):
    refunds: list[RefundOut]


class TradeRefundIn(BaseModel):
    out_request_no: str = Field(
        min_length=1,
        max_length=64,
        description="Names this refund: the same number again moves nothing; with "
        "another amount it is refused (409 idempotency.mismatch).",
    )
    amount: str = Field(max_length=32, description="CNY, like 10.00")
    reason: str = Field(default="", max_length=256)


class TradeRefundOut(RefundOut):
    status: str
    refunded: AmountOut = Field(description="All refunded of the trade so far.")


class AttemptOut(BaseModel):
    attempted_at: datetime
    http_status: int | None
    answer: str | None = Field(description="The start of the shop's answer.")
    error: str | None = Field(description="Why no answer came (a timeout, a refused address).")
    succeeded: bool


class NotificationOut(BaseModel):
    id: uuid.UUID
    notify_id: str
    notify_url: str
    status: str = Field(description="pending, delivered or failed (given up)")
    trade_status: str
    attempts: list[AttemptOut]


class AppKeyOut(BaseModel):
    app_id: str
    name: str
    public_key: str | None = Field(description="PEM, as uploaded; null until one is.")
    fingerprint: str | None = Field(description="SHA-256 of the key's DER, as hex pairs.")
    uploaded_at: datetime | None
    previous_key_until: datetime | None = Field(
        description="Until when the key it replaced is still accepted."
    )


class AppKeyIn(BaseModel):
    public_key: str = Field(max_length=8192, description="RSA, 2048 bits or more; PEM or Base64")


class ApplicationOut(BaseModel):
    id: uuid.UUID
    shop_name: str
    contact_name: str
    email: str
    website: str
    status: str = Field(description="pending, approved or rejected")
    created_at: datetime
    decided_at: datetime | None


class MerchantUserMadeOut(BaseModel):
    merchant: str
    login: str
    first_password: str = Field(description="Shown this once: hand it over safely.")


class MerchantUserIn(BaseModel):
    merchant: str = Field(max_length=128, description="The merchant's name.")
    login: str = Field(max_length=254, description="An email or a username.")
