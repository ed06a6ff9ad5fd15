"""Tables of payments: merchants, their orders, foreign cards, payments and refunds.

Money itself lives in the ledger (``models.py``, ``ledger.py``); these rows say what the
money was for and point at the ledger operation that moved it. Card numbers are never
stored: the network's token, the brand and the last four digits.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from qianbao.db import Base, UTCDateTime, new_id

ORDER_STATUSES = ("WAIT_BUYER_PAY", "TRADE_SUCCESS", "TRADE_CLOSED", "TRADE_FINISHED")
SOURCES = ("balance", "foreign_card", "bank_card", "tour_pass")


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    settlement_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WalletAccount(Base):
    """Which ledger account is whose: a person's balance and held money, and the
    wallet's own clearing and income accounts (``user_id`` NULL)."""

    __tablename__ = "wallet_accounts"
    __table_args__ = (UniqueConstraint("owner_key", "kind", "currency", name="uq_wallet_account"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    # The user's id as text, or "system" for the wallet's own accounts.
    owner_key: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_accounts.id"))


class PaymentOrder(Base):
    """An order a merchant asks to be paid: Alipay's trade states."""

    __tablename__ = "payment_orders"
    __table_args__ = (
        CheckConstraint(
            "status IN ('WAIT_BUYER_PAY', 'TRADE_SUCCESS', 'TRADE_CLOSED', 'TRADE_FINISHED')",
            name="status",
        ),
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint("refunded >= 0 AND refunded <= amount", name="refunded"),
        CheckConstraint(
            "refund_pending >= 0 AND refunded + refund_pending <= amount", name="refund_pending"
        ),
        UniqueConstraint("merchant_id", "out_trade_no", name="uq_payment_orders_trade_no"),
        Index("ix_payment_orders_status_expires", "status", "expires_at"),
        Index("ix_payment_orders_payer", "payer_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    out_trade_no: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(256))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    # Refunds reserved in the ledger and not yet confirmed by the card network or the bank
    # (OrderRefund rows in "pending"): what is left to refund is amount - refunded - this.
    refund_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    buyer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), default=None)
    # Who paid: the buyer, or a friend through a pay-for-me link. Their limits count
    # the payment and refunds go back to them.
    payer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), default=None)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    source: Mapped[str | None] = mapped_column(String(16), default=None)
    fee: Mapped[int] = mapped_column(BigInteger, default=0)
    card_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("foreign_cards.id"), default=None)
    card_currency: Mapped[str | None] = mapped_column(String(3), default=None)
    card_amount: Mapped[int | None] = mapped_column(BigInteger, default=None)
    card_rate: Mapped[Decimal | None] = mapped_column(Numeric(18, 8), default=None)
    card_capture_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # A card or bank card payment under way: the network key of the attempt and when it
    # began. Only this attempt may be recorded as the payment; one replaced by another
    # (the person changed cards) or left unrecorded too long (a crash between the network
    # and the ledger) goes to PaymentAttemptReversal.
    card_attempt_key: Mapped[str | None] = mapped_column(String(96), default=None)
    card_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # A mainland bank card's quick payment: the card and the bank's debit.
    bank_card_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("bank_cards.id"), default=None
    )
    bank_debit_id: Mapped[str | None] = mapped_column(String(128), default=None)
    ledger_operation_id: Mapped[uuid.UUID | None] = mapped_column(default=None)


class PaymentAttemptReversal(Base):
    """A payment attempt given up: whatever the card network or the bank took under its
    key is sent back by the worker (a capture or a debit refunded, an approval voided),
    then the row goes."""

    __tablename__ = "payment_attempt_reversals"

    key: Mapped[str] = mapped_column(String(96), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payment_orders.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


REFUND_STATUSES = ("pending", "succeeded", "failed")


class OrderRefund(Base):
    """A full or partial refund, once per request number.

    A refund that goes back to a card or a bank card is *pending* from the moment its
    money is reserved in the ledger (``hold_id``, ``fee_hold_id``) until the card network
    or the bank has given it back under ``outside_key``; then *succeeded* (the holds
    posted) or *failed* (the outside party refused it: the holds voided, and the request
    number may be asked again). One that stays in the wallet is succeeded at once.
    """

    __tablename__ = "order_refunds"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
        UniqueConstraint("order_id", "out_request_no", name="uq_order_refunds_request_no"),
        Index("ix_order_refunds_status_created", "status", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payment_orders.id"))
    out_request_no: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    fee_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    destination: Mapped[str] = mapped_column(String(16))  # balance | held | foreign_card
    card_amount: Mapped[int | None] = mapped_column(BigInteger, default=None)
    card_rate: Mapped[Decimal | None] = mapped_column(Numeric(18, 8), default=None)
    ledger_operation_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(12), default="succeeded")
    # The digest of what the request asked (amount, currency, where to): the same request
    # number with another digest is refused (idempotency.mismatch).
    request_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    to_balance: Mapped[bool] = mapped_column(default=False)
    # The key the card network or the bank knows this refund by; a request number asked
    # again after a failure gets a new attempt number, hence a new key.
    attempt: Mapped[int] = mapped_column(default=0)
    outside_key: Mapped[str | None] = mapped_column(String(128), default=None)
    hold_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    fee_hold_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    failure_code: Mapped[str | None] = mapped_column(String(64), default=None)
