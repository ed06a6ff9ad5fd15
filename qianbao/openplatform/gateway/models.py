"""Tables of the trade API: which orders came through the gateway (and where to tell
the shop), and the notifications to shops with every attempt and answer."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from qianbao.db import Base, UTCDateTime, new_id


class GatewayTrade(Base):
    """An order of ``wallet/payments`` made by an app through the gateway."""

    __tablename__ = "gateway_trades"

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payment_orders.id"), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("merchant_apps.app_id"))
    # Alipay's trade number: the date and 20 digits, unique across all shops.
    trade_no: Mapped[str] = mapped_column(String(64), unique=True)
    product_code: Mapped[str] = mapped_column(String(32))
    notify_url: Mapped[str | None] = mapped_column(String(256), default=None)
    return_url: Mapped[str | None] = mapped_column(String(256), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class GatewayNotification(Base):
    """A ``trade_status_sync`` to a shop: an outbox row written in the transaction that
    paid or refunded, delivered by the worker until the shop answers ``success``."""

    __tablename__ = "gateway_notifications"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
        Index("ix_gateway_notifications_due", "status", "next_attempt_at"),
        Index("ix_gateway_notifications_order", "order_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("gateway_trades.order_id"))
    notify_id: Mapped[str] = mapped_column(String(64), unique=True)
    notify_url: Mapped[str] = mapped_column(String(256))
    # The notification's fields but notify_time, sign_type and sign (JSON): those are
    # added, and the whole signed, at each attempt with the key current then.
    fields: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class GatewayNotificationAttempt(Base):
    """One attempt and the shop's answer (the portal's notification log)."""

    __tablename__ = "gateway_notification_attempts"
    __table_args__ = (Index("ix_gateway_notification_attempts", "notification_id", "attempted_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    # Named by hand: the naming convention's name passes PostgreSQL's 63 characters.
    notification_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("gateway_notifications.id", name="fk_gateway_notification_attempts_notice")
    )
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    http_status: Mapped[int | None] = mapped_column(default=None)
    answer: Mapped[str | None] = mapped_column(String(512), default=None)
    error: Mapped[str | None] = mapped_column(String(256), default=None)
    succeeded: Mapped[bool] = mapped_column(default=False)


class GatewayAppClient(Base):
    """An app's "log in with Qianbao" identity: the OpenID Connect shop (client) whose
    grants ``alipay.system.oauth.token`` and ``alipay.user.info.share`` answer from.
    Linked by an operator (``qianbao admin link-app-client``)."""

    __tablename__ = "gateway_app_clients"

    app_id: Mapped[str] = mapped_column(ForeignKey("merchant_apps.app_id"), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oidc_clients.client_id"), index=True)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime())
