"""The person's payment code in the JSON API (the app shows it for a shop to scan)."""

from __future__ import annotations

from fastapi import APIRouter

from qianbao.identity.api import DbDep, SessionDep
from qianbao.wallet.payment_codes import schemas, service

router = APIRouter(prefix="/api/v1", tags=["payment_codes"])


@router.post("/wallet/payment-codes", response_model=schemas.PaymentCodeOut, status_code=201)
def new_code(session: SessionDep, db: DbDep) -> schemas.PaymentCodeOut:
    """A fresh code for a shop to scan (``alipay.trade.pay``); it works once, for
    ``QIANBAO_PAYMENT_CODE_SECONDS``."""
    issued = db.run(lambda tx: service.issue(tx, session.account.id))
    return schemas.PaymentCodeOut(code=issued.code, expires_at=issued.expires_at)
