"""Queue messages in the caller's transaction; deliver them after it commits."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import func, select

from qianbao.db import Database, Tx
from qianbao.i18n import N_, Language, language_scope, parse_language, translate
from qianbao.notify.gateways import GatewayError, SmsGateway, gateway_for
from qianbao.notify.models import OutboxMessage
from qianbao.observability import metrics

log = logging.getLogger(__name__)
# Waits between delivery attempts: 10 s, 30 s, 1 min, 5 min, 15 min, 1 h, ...
RETRY_DELAYS = (10, 30, 60, 300, 900, 3600)


@dataclass(frozen=True)
class OutboxEntry:
    id: uuid.UUID
    channel: str
    recipient: str
    body: str
    status: str
    created_at: datetime
    sent_at: datetime | None
    gateway: str | None


# The one signature every Qianbao SMS carries, per language, put on here and nowhere else:
# a Chinese SMS signature is 【签名】 at the very start (what carriers there expect); the
# English text opens with the name in square brackets, the usual form abroad.
SMS_SIGNED: Final = N_("[Qianbao] {message}")


def signed_sms(body: str, language: str) -> str:
    """``body`` with Qianbao's SMS signature for ``language`` in front."""
    chosen: Language = parse_language(language) or "en"
    with language_scope(chosen):
        return translate(SMS_SIGNED, {"message": body})


def queue_sms(tx: Tx, to_e164: str, body: str, language: str, *, signed: bool = True) -> uuid.UUID:
    """Write the SMS to the outbox now; it is sent once this transaction commits.

    ``body`` is the bare text: the signature is added here (``signed=False`` only for a
    text an outside party words and signs itself, such as a bank's code)."""
    gateway = gateway_for(tx.settings)
    return queue_message(
        tx,
        "sms",
        to_e164,
        signed_sms(body, language) if signed else body,
        language,
        lambda db, ids: deliver_due(db, only=ids),
        sandbox=gateway.send if gateway.name == "outbox" else None,
    )


Deliver = Callable[["Database", list[uuid.UUID]], int]


def queue_message(
    tx: Tx,
    channel: str,
    recipient: str,
    body: str,
    language: str,
    deliver: Deliver,
    *,
    sandbox: Send | None = None,
) -> uuid.UUID:
    """Write a message to the outbox in the caller's transaction; once that commits,
    ``deliver`` sends it at once (the worker picks up whatever that misses).

    With the sandbox gateway the outbox row is itself the delivery, so it is delivered
    in the same transaction: no second and third transaction per message.
    """
    now = tx.now()
    message = OutboxMessage(
        channel=channel,
        recipient=recipient,
        body=body,
        language=language,
        created_at=now,
        next_attempt_at=now,
    )
    tx.session.add(message)
    tx.session.flush()
    if sandbox is not None:
        message.attempts = 1
        try:
            reference = sandbox(recipient, body)
        except GatewayError as error:
            _record_failure(tx, message.id, error, "outbox")
        else:
            _record_sent(tx, message.id, reference, "outbox")
        return message.id
    db, message_id = tx.db, message.id
    tx.after_commit(lambda: _deliver_quietly(deliver, db, message_id))
    return message_id


def _deliver_quietly(deliver: Deliver, db: Database, message_id: uuid.UUID) -> None:
    deliver(db, [message_id])


def deliver_due(
    db: Database,
    *,
    only: list[uuid.UUID] | None = None,
    batch: int = 50,
    gateway: SmsGateway | None = None,
) -> int:
    """Send SMS messages that are due; returns how many were sent."""
    sender = gateway or gateway_for(db.settings)
    return deliver_channel(db, "sms", sender.name, sender.send, only=only, batch=batch)


Send = Callable[[str, str], str]  # (recipient, stored text) -> the provider's reference


def deliver_channel(
    db: Database,
    channel: str,
    gateway_name: str,
    send: Send,
    *,
    only: list[uuid.UUID] | None = None,
    batch: int = 50,
) -> int:
    """Send one channel's messages that are due; returns how many were sent.

    Sending is a side effect that no rollback can take back, so it happens between
    transactions, never inside one that might be retried: first a short transaction
    claims a batch (``FOR UPDATE SKIP LOCKED``, so workers take disjoint rows) by
    pushing its next attempt one lease ahead; then the messages are sent; then each
    outcome is written. A worker that dies after sending leaves the claim to expire
    and the message is sent again: delivery is at least once, as with every SMS API.
    """
    claimed = db.run(lambda tx: _claim(tx, channel, only, batch), isolation="read committed")
    sent = 0
    for message_id, recipient, body in claimed:
        sent += _send_one(db, gateway_name, send, message_id, recipient, body)
    return sent


def _send_one(
    db: Database,
    gateway_name: str,
    send: Send,
    message_id: uuid.UUID,
    recipient: str,
    body: str,
) -> int:
    try:
        reference = send(recipient, body)
    except GatewayError as error:
        failure = error
        db.run(
            lambda tx: _record_failure(tx, message_id, failure, gateway_name),
            isolation="read committed",  # one row, by its key: nothing to serialize
        )
        return 0
    db.run(
        lambda tx: _record_sent(tx, message_id, reference, gateway_name),
        isolation="read committed",
    )
    return 1


LEASE = timedelta(minutes=2)
ERASED = "[delivered; text erased]"


def _claim(
    tx: Tx, channel: str, only: list[uuid.UUID] | None, batch: int
) -> list[tuple[uuid.UUID, str, str]]:
    now = tx.now()
    query = (
        select(OutboxMessage)
        .where(
            OutboxMessage.channel == channel,
            OutboxMessage.status == "pending",
            OutboxMessage.next_attempt_at <= now,
        )
        .order_by(OutboxMessage.next_attempt_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    if only is not None:
        query = query.where(OutboxMessage.id.in_(only))
    claimed = []
    for message in tx.session.scalars(query):
        message.attempts += 1
        message.next_attempt_at = now + LEASE
        claimed.append((message.id, message.recipient, message.body))
    tx.session.flush()
    return claimed


def _record_sent(tx: Tx, message_id: uuid.UUID, reference: str, gateway: str) -> None:
    message = tx.session.get_one(OutboxMessage, message_id)
    message.status, message.sent_at = "sent", tx.now()
    message.gateway, message.provider_ref = gateway[:16], reference[:128]
    if message.channel == "sms":
        metrics.sms_sent(message.recipient)  # counted by calling code, never the number
    if gateway != "outbox":
        # Once a real provider has it, the codes in the text have no business here.
        message.body = ERASED


def _record_failure(tx: Tx, message_id: uuid.UUID, error: GatewayError, gateway: str) -> None:
    message = tx.session.get_one(OutboxMessage, message_id)
    message.gateway, message.last_error = gateway[:16], str(error)[:500]
    if error.permanent or message.attempts >= tx.settings.outbox_max_attempts:
        message.status = "failed"
    else:
        delay = RETRY_DELAYS[min(message.attempts, len(RETRY_DELAYS)) - 1]
        message.next_attempt_at = tx.now() + timedelta(seconds=delay)
    # The provider's answer may quote the number or the text: the log gets the message's
    # id and whether it gives up; the reason stays on the row (last_error).
    log.warning(
        "%s message %s not sent (%s)",
        message.channel,
        message_id,
        message.status,
        extra={"attempts": message.attempts, "permanent": error.permanent},
    )


def read_outbox(tx: Tx, recipient: str | None = None, limit: int = 20) -> list[OutboxEntry]:
    query = select(OutboxMessage).order_by(OutboxMessage.created_at.desc()).limit(limit)
    if recipient:
        query = query.where(OutboxMessage.recipient == recipient)
    return [
        OutboxEntry(
            m.id, m.channel, m.recipient, m.body, m.status, m.created_at, m.sent_at, m.gateway
        )
        for m in tx.session.scalars(query)
    ]


CHANNELS = ("sms", "email")


def backlog(tx: Tx) -> dict[str, metrics.Backlog]:
    """Per channel: messages waiting to be sent, and the age of the oldest (metrics)."""
    rows = tx.session.execute(
        select(OutboxMessage.channel, func.count(), func.min(OutboxMessage.created_at))
        .where(OutboxMessage.status == "pending")
        .group_by(OutboxMessage.channel)
    ).all()
    found = {channel: (count, oldest) for channel, count, oldest in rows}
    now = tx.now()
    waiting: dict[str, metrics.Backlog] = {}
    for channel in CHANNELS:
        count, oldest = found.get(channel, (0, None))
        age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        waiting[channel] = metrics.Backlog(int(count), age)
    return waiting
