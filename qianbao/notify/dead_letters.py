"""Dead letters: outbox messages the worker gave up on, listed and queued again.

A message is dead (status ``failed``) when its gateway refused it for good or after
``outbox_max_attempts`` tries. The worker never touches it again; an operator who has
fixed the cause (a gateway's credentials, an address) puts it back in the queue, and the
next sweep of ``qianbao worker`` sends it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from qianbao.db import Tx
from qianbao.notify.models import OutboxMessage


@dataclass(frozen=True)
class DeadMessage:
    """What an operator needs to judge a dead message: never its text (it may hold a
    code), and the recipient masked (the listing may land in a cron mail or a log)."""

    id: uuid.UUID
    channel: str
    recipient: str
    attempts: int
    created_at: datetime
    gateway: str | None
    last_error: str | None


def mask_recipient(recipient: str) -> str:
    """``+447911123456`` -> ``+44******3456``; ``mei@example.com`` -> ``m***@example.com``."""
    if "@" in recipient:
        local, _, domain = recipient.rpartition("@")
        return f"{local[:1]}***@{domain}"
    if len(recipient) <= 7:
        return "*" * len(recipient)
    return recipient[:3] + "*" * (len(recipient) - 7) + recipient[-4:]


def dead_messages(tx: Tx, limit: int = 50) -> list[DeadMessage]:
    """The newest dead messages first."""
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.status == "failed")
        .order_by(OutboxMessage.created_at.desc())
        .limit(limit)
    )
    return [
        DeadMessage(
            m.id,
            m.channel,
            mask_recipient(m.recipient),
            m.attempts,
            m.created_at,
            m.gateway,
            m.last_error,
        )
        for m in tx.session.scalars(query)
    ]


def retry(tx: Tx, ids: Sequence[uuid.UUID] | None = None) -> list[uuid.UUID]:
    """Queue dead messages again, with a fresh set of tries, due now; ``None``: all of
    them. Returns the ids queued (an id that is not a dead message is left out). The
    last error is kept until a try replaces it."""
    query = select(OutboxMessage).where(OutboxMessage.status == "failed").with_for_update()
    if ids is not None:
        query = query.where(OutboxMessage.id.in_(list(ids)))
    now = tx.now()
    queued = []
    for message in tx.session.scalars(query):
        message.status, message.attempts, message.next_attempt_at = "pending", 0, now
        queued.append(message.id)
    tx.session.flush()
    return queued
