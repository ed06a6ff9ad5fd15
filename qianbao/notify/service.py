"""Queue messages in the caller's transaction; deliver them after it commits."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from qianbao.db import Database, Tx
from qianbao.notify.gateways import GatewayError, SmsGateway, gateway_for
from qianbao.notify.models import OutboxMessage

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


def queue_sms(tx: Tx, to_e164: str, body: str, language: str) -> uuid.UUID:
    """Write the SMS to the outbox now; it is sent once this transaction commits."""
    now = tx.now()
    message = OutboxMessage(
        channel="sms",
        recipient=to_e164,
        body=body,
        language=language,
        created_at=now,
        next_attempt_at=now,
    )
    tx.session.add(message)
    tx.session.flush()
    db, message_id = tx.db, message.id
    tx.after_commit(lambda: _deliver_now(db, message_id))
    return message.id


def _deliver_now(db: Database, message_id: uuid.UUID) -> None:
    deliver_due(db, only=[message_id])


def deliver_due(
    db: Database,
    *,
    only: list[uuid.UUID] | None = None,
    batch: int = 50,
    gateway: SmsGateway | None = None,
) -> int:
    """Send messages that are due; returns how many were sent.

    Rows are claimed with ``FOR UPDATE SKIP LOCKED``, so several workers (and the request
    that queued a message) never send the same row at once.
    """
    sender = gateway or gateway_for(db.settings)
    return db.run(lambda tx: _deliver_batch(tx, sender, only, batch))


def _deliver_batch(tx: Tx, gateway: SmsGateway, only: list[uuid.UUID] | None, batch: int) -> int:
    now = tx.now()
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.next_attempt_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    if only is not None:
        query = query.where(OutboxMessage.id.in_(only))
    sent = 0
    for message in tx.session.scalars(query):
        message.attempts += 1
        message.gateway = gateway.name
        try:
            message.provider_ref = gateway.send(message.recipient, message.body)
        except GatewayError as error:
            message.last_error = str(error)[:500]
            out_of_tries = message.attempts >= tx.settings.outbox_max_attempts
            if error.permanent or out_of_tries:
                message.status = "failed"
            else:
                delay = RETRY_DELAYS[min(message.attempts, len(RETRY_DELAYS)) - 1]
                message.next_attempt_at = now + timedelta(seconds=delay)
            log.warning("SMS %s not sent: %s", message.id, error)
            continue
        message.status = "sent"
        message.sent_at = now
        if gateway.name != "outbox":
            # Once a real provider has it, the code in the text has no business here.
            message.body = "[delivered; text erased]"
        sent += 1
    tx.session.flush()
    return sent


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
