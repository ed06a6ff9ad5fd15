"""``trade_status_sync`` notifications to shops, through an outbox of their own.

A notification is written in the transaction that paid or refunded (the payments'
listeners), so a payment never commits without it and a rollback takes it away. The
worker delivers it (``deliver_due``): it claims due rows with ``FOR UPDATE SKIP LOCKED``
and a lease, signs the form with the platform key current then, POSTs it to the shop's
``notify_url`` (no redirects followed, a timeout, a limit on the answer), logs the attempt
and the answer, and until the shop answers ``success`` tries again on Alipay's schedule
(``gateway_notify_retry_seconds``). The ``notify_id`` stays the same across attempts,
so a shop can drop a repeat. No notification for WAIT_BUYER_PAY.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Final

import httpx
from sqlalchemy import bindparam, select

from qianbao.db import Database, Tx
from qianbao.errors import NotFound
from qianbao.i18n import N_
from qianbao.openplatform import signing
from qianbao.openplatform.gateway import callbacks
from qianbao.openplatform.gateway.models import (
    GatewayNotification,
    GatewayNotificationAttempt,
    GatewayTrade,
)
from qianbao.openplatform.gateway.protocol import beijing_time, yuan
from qianbao.openplatform.gateway.service import trade_status
from qianbao.openplatform.merchants import service as merchants
from qianbao.wallet.payments import service as payments

log = logging.getLogger(__name__)
LEASE: Final = timedelta(minutes=2)
SUCCESS_ANSWER: Final = "success"


@dataclass(frozen=True)
class Delivery:
    """What one attempt got: the HTTP status and the answer's text, or why none."""

    status: int | None
    answer: str
    error: str = ""

    @property
    def accepted(self) -> bool:
        # Alipay's rule: the shop answers the seven characters "success" (a trailing
        # newline, as print() writes, is forgiven).
        return self.status == 200 and self.answer.strip() == SUCCESS_ANSWER


Send = Callable[[str, Mapping[str, str]], Delivery]


@dataclass(frozen=True)
class AttemptView:
    attempted_at: datetime
    http_status: int | None
    answer: str | None
    error: str | None
    succeeded: bool


@dataclass(frozen=True)
class NotificationView:
    id: uuid.UUID
    notify_id: str
    notify_url: str
    status: str
    attempts: list[AttemptView]
    fields: Mapping[str, str]


# Asked in every paying transaction, of orders most of which no trade API call made:
# built once, and only the columns a notification needs (an ORM load of the whole row
# cost a tenth of a payment's CPU).
_TRADE_TO_NOTIFY = select(
    GatewayTrade.app_id, GatewayTrade.trade_no, GatewayTrade.notify_url
).where(GatewayTrade.order_id == bindparam("order_id"), GatewayTrade.notify_url.is_not(None))


def _queue(tx: Tx, order_id: uuid.UUID) -> None:
    """The payments' listener: a paid or refunded gateway trade with a notify_url gets a
    notification, in this very transaction."""
    trade = tx.read(_TRADE_TO_NOTIFY, {"order_id": order_id}).first()
    if trade is None or not trade.notify_url:
        return
    order = payments.get_order(tx, order_id)
    status = trade_status(tx, order)
    if status == "WAIT_BUYER_PAY":
        return
    notify_id = uuid.uuid4().hex
    fields = {
        "notify_type": "trade_status_sync",
        "notify_id": notify_id,
        "app_id": trade.app_id,
        "auth_app_id": trade.app_id,
        "charset": "utf-8",
        "version": "1.0",
        "trade_no": trade.trade_no,
        "out_trade_no": order.out_trade_no,
        "trade_status": status,
        "total_amount": yuan(order.amount),
        "receipt_amount": yuan(order.amount - order.refunded),
        "invoice_amount": yuan(order.amount - order.refunded),
        "buyer_pay_amount": yuan(order.amount),
        "point_amount": "0.00",
        "subject": order.subject,
        "gmt_create": beijing_time(order.created_at),
        "gmt_payment": beijing_time(order.paid_at),
    }
    if order.refunded.minor:
        fields["refund_fee"] = yuan(order.refunded)
        fields["gmt_refund"] = beijing_time(tx.now())
    if status == "TRADE_CLOSED":
        fields["gmt_close"] = beijing_time(tx.now())
    tx.session.add(
        GatewayNotification(
            order_id=order_id,
            notify_id=notify_id,
            notify_url=trade.notify_url,
            fields=json.dumps(fields, ensure_ascii=False),
            created_at=tx.now(),
            next_attempt_at=tx.now(),
        )
    )
    tx.session.flush()


payments.on_paid(_queue)
payments.on_refunded(_queue)


def signed_form(tx: Tx, fields: Mapping[str, str]) -> dict[str, str]:
    """The form as sent: the fields, notify_time and sign_type, signed over the sorted
    pairs without sign and sign_type (what a shop verifies)."""
    form = {**fields, "notify_time": beijing_time(tx.now()), "sign_type": "RSA2"}
    text = signing.sign_content(form, exclude=("sign", "sign_type"))
    form["sign"] = signing.sign(merchants.platform_signer(tx), text)
    return form


def deliver_due(db: Database, *, send: Send | None = None, batch: int = 20) -> int:
    """Send the notifications that are due; returns how many the shops accepted."""
    claimed = db.run(lambda tx: _claim(tx, batch), isolation="read committed")
    if not claimed:
        return 0
    # One client for the batch: making one (its TLS context) costs more than a POST.
    with httpx.Client(
        timeout=db.settings.gateway_notify_timeout_seconds, follow_redirects=False
    ) as client:
        sender = send or http_sender(client, db.settings.gateway_notify_max_answer_bytes)
        accepted = 0
        for notification_id, url, form in claimed:
            delivery = _attempt(db, sender, url, form)
            db.run(
                partial(_record, notification_id=notification_id, delivery=delivery),
                isolation="read committed",
            )
            accepted += delivery.accepted
    return accepted


def _attempt(db: Database, sender: Send, url: str, form: Mapping[str, str]) -> Delivery:
    if not callbacks.resolves_outside(url, demo=db.settings.demo):
        return Delivery(None, "", "the notify_url resolves to a private address")
    try:
        return sender(url, form)
    except (httpx.HTTPError, OSError) as error:  # a shop's failure stops nobody else
        return Delivery(None, "", type(error).__name__)


def _claim(tx: Tx, batch: int) -> list[tuple[uuid.UUID, str, dict[str, str]]]:
    now = tx.now()
    rows = tx.session.scalars(
        select(GatewayNotification)
        .where(GatewayNotification.status == "pending", GatewayNotification.next_attempt_at <= now)
        .order_by(GatewayNotification.next_attempt_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    claimed = []
    for row in rows:
        row.attempts += 1
        row.next_attempt_at = now + LEASE  # a worker that dies leaves it to the lease
        claimed.append((row.id, row.notify_url, signed_form(tx, json.loads(row.fields))))
    tx.session.flush()
    return claimed


def _record(tx: Tx, *, notification_id: uuid.UUID, delivery: Delivery) -> None:
    row = tx.session.get_one(GatewayNotification, notification_id, with_for_update=True)
    tx.session.add(
        GatewayNotificationAttempt(
            notification_id=notification_id,
            attempted_at=tx.now(),
            http_status=delivery.status,
            answer=delivery.answer[:512] if delivery.status is not None else None,
            error=delivery.error[:256] or None,
            succeeded=delivery.accepted,
        )
    )
    schedule = tx.settings.gateway_notify_retry_seconds
    if delivery.accepted:
        row.status, row.delivered_at = "delivered", tx.now()
    elif row.attempts > len(schedule):
        row.status = "failed"
    else:
        row.next_attempt_at = tx.now() + timedelta(seconds=schedule[row.attempts - 1])


def resend(tx: Tx, notification_id: uuid.UUID) -> None:
    """Send a notification again now, with the same notify_id, on a fresh schedule (the
    portal's resend button, for a shop that was down longer than Alipay's 25 hours)."""
    row = tx.session.get(GatewayNotification, notification_id, with_for_update=True)
    if row is None:
        raise NotFound("notification.not_found", N_("There is no such notification."))
    row.status, row.attempts, row.next_attempt_at = "pending", 0, tx.now()


def http_sender(client: httpx.Client, limit: int) -> Send:
    """POST the form with ``client`` (no redirects followed), reading at most ``limit``
    bytes of the answer."""

    def send(url: str, form: Mapping[str, str]) -> Delivery:
        with client.stream("POST", url, data=dict(form)) as response:
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) >= limit:
                    break
        return Delivery(response.status_code, body[:limit].decode("utf-8", "replace"))

    return send


def notifications_of(tx: Tx, order_id: uuid.UUID) -> list[NotificationView]:
    """An order's notifications with every attempt and answer (the notification log)."""
    rows = tx.session.scalars(
        select(GatewayNotification)
        .where(GatewayNotification.order_id == order_id)
        .order_by(GatewayNotification.created_at)
    )
    views = []
    for row in rows:
        attempts = tx.session.scalars(
            select(GatewayNotificationAttempt)
            .where(GatewayNotificationAttempt.notification_id == row.id)
            .order_by(GatewayNotificationAttempt.attempted_at)
        )
        views.append(
            NotificationView(
                row.id,
                row.notify_id,
                row.notify_url,
                row.status,
                [
                    AttemptView(a.attempted_at, a.http_status, a.answer, a.error, a.succeeded)
                    for a in attempts
                ],
                json.loads(row.fields),
            )
        )
    return views
