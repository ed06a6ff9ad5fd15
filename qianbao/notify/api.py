"""The sandbox SMS outbox over JSON, for demo mode and the benchmarks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from qianbao import deps
from qianbao.db import Database
from qianbao.errors import NotFound
from qianbao.i18n import N_
from qianbao.notify import service

router = APIRouter(prefix="/api/v1/demo", tags=["demo"])


class OutboxMessageOut(BaseModel):
    recipient: str
    body: str
    status: str
    created_at: datetime


@router.get("/outbox", response_model=list[OutboxMessageOut])
def outbox(
    request: Request,
    db: Annotated[Database, Depends(deps.database)],
    phone: str | None = None,
    limit: int = 20,
) -> list[OutboxMessageOut]:
    """Recent sandbox SMS (only when the server runs with ``--demo``)."""
    if not request.app.state.settings.demo:
        raise NotFound("not_found", N_("There is nothing at this address."))
    rows = db.run(lambda tx: service.read_outbox(tx, phone, max(1, min(limit, 100))))
    return [
        OutboxMessageOut(
            recipient=r.recipient, body=r.body, status=r.status, created_at=r.created_at
        )
        for r in rows
    ]
