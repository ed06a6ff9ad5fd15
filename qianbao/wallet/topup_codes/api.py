"""The JSON API of top-up codes: redeem one, list what this person redeemed."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from qianbao.identity.api import ClientDep, DbDep, SessionDep
from qianbao.wallet.schemas import AmountOut
from qianbao.wallet.topup_codes import service as topup_codes

router = APIRouter(prefix="/api/v1", tags=["wallet"])


class RedeemIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"code": "QB7K-2M9X-4HTR-8WPC"}]})

    code: str = Field(max_length=64, description="As printed; spaces, dashes and case ignored.")


class RedeemedOut(BaseModel):
    amount: AmountOut
    balance: AmountOut  # the balance after the code's value arrived
    merchant: str  # the store that sold the code
    redeemed_at: datetime
    replayed: bool  # this person had redeemed this code before: nothing moved now


class RedemptionOut(BaseModel):
    amount: AmountOut
    merchant: str
    redeemed_at: datetime


@router.post("/wallet/topup-codes/redemptions", response_model=RedeemedOut)
def redeem(body: RedeemIn, session: SessionDep, db: DbDep, client: ClientDep) -> RedeemedOut:
    """Add a store top-up code's value to the balance (the level must allow using a
    balance). A code works once; asking again with the same code returns the same
    answer. Codes that do not work slow further tries down (429 with Retry-After)."""
    done = topup_codes.redeem(db, session.account.id, body.code, client.ip)
    return RedeemedOut(
        amount=AmountOut.of(done.amount),
        balance=AmountOut.of(done.balance),
        merchant=done.merchant,
        redeemed_at=done.redeemed_at,
        replayed=done.replayed,
    )


@router.get("/wallet/topup-codes/redemptions", response_model=list[RedemptionOut])
def redemptions(session: SessionDep, db: DbDep) -> list[RedemptionOut]:
    """The codes this person redeemed, newest first."""
    rows = db.run(lambda tx: topup_codes.redemptions(tx, session.account.id, 100))
    return [
        RedemptionOut(
            amount=AmountOut.of(row.amount), merchant=row.merchant, redeemed_at=row.redeemed_at
        )
        for row in rows
    ]
