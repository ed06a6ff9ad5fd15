"""Request and response shapes of the merchant API."""

from __future__ import annotations

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
