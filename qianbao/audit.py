"""The staff audit log: who did what to whom, when and why, append-only.

Kernel-level (identity's staff management and risk's freezes both write it, and risk
builds on identity), one row per action; nothing updates or deletes a row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from qianbao.db import Base, Tx, UTCDateTime, new_id


class AuditEvent(Base):
    """One staff action: ``actor`` is ``staff:<id>`` (or ``rule:<name>``), ``action`` a
    stable code (``freeze.release_approved``), ``subject`` what it acted on."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_subject", "subject", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(80))  # "restriction:<id>", "staff:<id>"
    note: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


@dataclass(frozen=True)
class Event:
    at: datetime
    actor: str
    action: str
    subject: str
    note: str
    details: dict[str, Any]


def record(
    tx: Tx,
    actor: str,
    action: str,
    subject: str,
    note: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Append one event, in the transaction of the action it records."""
    tx.session.add(
        AuditEvent(
            at=tx.now(),
            actor=actor,
            action=action,
            subject=subject,
            note=note[:2000],
            details=details or {},
        )
    )


def events(tx: Tx, subject: str | None = None, limit: int = 200) -> list[Event]:
    """The newest events first, of one subject or of all."""
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    if subject is not None:
        query = query.where(AuditEvent.subject == subject)
    return [
        Event(row.at, row.actor, row.action, row.subject, row.note, dict(row.details))
        for row in tx.session.scalars(query)
    ]


def staff_actor(staff_id: uuid.UUID) -> str:
    return f"staff:{staff_id}"
