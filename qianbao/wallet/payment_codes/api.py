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


@router.get("/wallet/payment-codes/limit", response_model=schemas.PaymentCodeLimitOut)
def get_limit(session: SessionDep, db: DbDep) -> schemas.PaymentCodeLimitOut:
    """The most a shop may take with one of this person's codes."""
    limit = db.run(lambda tx: service.password_free_limit(tx, session.account.id))
    return schemas.PaymentCodeLimitOut(
        limit=limit, cap=db.settings.payment_code_password_free_limit
    )


@router.put("/wallet/payment-codes/limit", response_model=schemas.PaymentCodeLimitOut)
def set_limit(
    body: schemas.PaymentCodeLimitIn, session: SessionDep, db: DbDep
) -> schemas.PaymentCodeLimitOut:
    """The person's own password-free limit, 0 (codes refused) to the global one."""
    limit = db.run(lambda tx: service.set_password_free_limit(tx, session.account.id, body.limit))
    return schemas.PaymentCodeLimitOut(
        limit=limit, cap=db.settings.payment_code_password_free_limit
    )
