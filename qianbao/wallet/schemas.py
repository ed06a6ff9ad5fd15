"""Request and response shapes of the wallet and payments. Amounts are strings in major
units with their currency ("288.00"), never floats."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qianbao.money import Money


class AmountOut(BaseModel):
    currency: str
    value: str  # major units, exact: "288.00"

    @classmethod
    def of(cls, money: Money) -> AmountOut:
        return cls(currency=money.currency, value=str(money.major))


class CardOut(BaseModel):
    id: uuid.UUID
    brand: str
    last4: str
    expiry: str
    currency: str
    # Set while the card's issuer wants a 3-D Secure check before the card can be used:
    # send the person there, then POST /wallet/cards/{id}/verification.
    challenge_url: str | None = None


class WalletOut(BaseModel):
    balance: AmountOut
    held: AmountOut  # arrived while the level could not use it; released on verification
    can_use_balance: bool
    cards: list[CardOut]


class CardIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "number": "4000 0000 0084 0019",
                    "expiry": "12/30",
                    "cvv": "123",
                    "holder_name": "ADA LOVELACE",
                }
            ]
        }
    )

    number: str = Field(max_length=32)
    expiry: str = Field(max_length=7, description="MM/YY")
    cvv: str = Field(max_length=4, description="used once to link the card, never stored")
    holder_name: str = Field(max_length=128)
    return_url: str | None = Field(
        default=None, max_length=512, description="where the issuer's 3-D Secure check returns"
    )


class OrderOut(BaseModel):
    id: uuid.UUID
    merchant: str
    out_trade_no: str
    subject: str
    amount: AmountOut
    refunded: AmountOut
    status: str
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    source: str | None
    fee: AmountOut
    card_amount: AmountOut | None


class QuoteOut(BaseModel):
    card: CardOut
    fee: AmountOut
    total: AmountOut
    # The total in the card's currency at today's rate, before paying (null when no
    # rate is configured for that currency).
    card_total: AmountOut | None = None


class CashierOut(BaseModel):
    order: OrderOut
    balance: AmountOut
    can_use_balance: bool
    balance_refusal: str | None
    cards: list[QuoteOut]
    bank_cards: list[BankCardOut]  # mainland cards: no fee


class BankCardOut(BaseModel):
    id: uuid.UUID
    bank_name: str
    last4: str


class PayIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"source": "balance", "payment_password": "802417"}]}
    )

    source: Literal["balance", "foreign_card", "bank_card"]
    card_id: uuid.UUID | None = None  # a foreign card, or a mainland bank card
    payment_password: str = Field(min_length=6, max_length=6)
    return_url: str | None = Field(default=None, max_length=512)


class PayOut(BaseModel):
    order: OrderOut | None
    challenge_url: str | None = None  # the card issuer's 3-D Secure check, then /finish


class DemoOrderIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"subject": "Tea", "amount": "288.00"}]}
    )

    subject: str = Field(default="Demo order", max_length=256)
    amount: str = Field(max_length=16, description='CNY, e.g. "288.00"')


class RefundIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"amount": "88.00", "destination": "original"},
                {"out_request_no": "R2026120601", "amount": "88.00", "destination": "original"},
            ]
        }
    )

    # The refund's request number (Alipay's out_request_no): the Idempotency-Key header,
    # or this field.
    out_request_no: str | None = Field(default=None, min_length=1, max_length=64)
    amount: str = Field(max_length=16)
    # "original": the way the money came; "balance": the buyer's Qianbao balance
    destination: Literal["original", "balance"] = "original"


class RefundOut(BaseModel):
    id: uuid.UUID
    out_request_no: str
    amount: AmountOut
    fee_refunded: AmountOut
    destination: str  # balance | held | foreign_card


class PaymentsPageOut(BaseModel):
    """A page of the payment history, newest first (by time paid, then id)."""

    items: list[OrderOut]
    next_cursor: str | None = Field(
        description="Opaque: send it back as ``cursor`` for the next page; null on the last."
    )


class PaymentDetailOut(BaseModel):
    order: OrderOut
    refunds: list[RefundOut]  # oldest first


class RestrictionOut(BaseModel):
    kind: str  # restricted (no paying or sending from the balance) | frozen (nothing)
    reason: str  # stable: card_velocity | shared_card | reviewer
    reason_text: str  # in the request's language
    since: datetime
    appeal_status: str | None  # the latest appeal's: pending | lifted | kept
    what_to_do: str  # in the request's language


class RestrictionStateOut(BaseModel):
    restriction: RestrictionOut | None  # null: the account may pay and send money


class AppealOut(BaseModel):
    id: uuid.UUID
    status: Literal["pending"]  # a reviewer decides; the answer comes by SMS
