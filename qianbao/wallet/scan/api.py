"""The scan resolver in the JSON API: what a code read by an app stands for."""

from __future__ import annotations

from fastapi import APIRouter

from qianbao.identity.api import DbDep, SessionDep
from qianbao.wallet.scan import schemas, service

router = APIRouter(prefix="/api/v1", tags=["scan"])


@router.post("/wallet/scan", response_model=schemas.ScanOut)
def resolve(body: schemas.ScanIn, session: SessionDep, db: DbDep) -> schemas.ScanOut:
    """A shop's QR code (its cashier), a person's receive code (the page to send them
    money) or a pay-for-me link; anything else is refused with a code saying what."""
    found = db.run(lambda tx: service.resolve(tx, body.text))
    return schemas.ScanOut(kind=found.kind, path=found.path)
