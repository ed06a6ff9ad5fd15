"""The JSON API of the Tour Pass: open one, see the fee of a top-up before confirming
it, top up by foreign card (3-D Secure included), pay an order from it, close it early;
and, in demo mode only, run the expiry as if days had passed."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from qianbao.deps import IdempotencyKey, request_key
from qianbao.errors import NotFound
from qianbao.i18n import N_, translate
from qianbao.identity.api import DbDep, SessionDep
from qianbao.money import Money
from qianbao.wallet import schemas
from qianbao.wallet.api import order_out
from qianbao.wallet.tour_pass import service as tour_pass

router = APIRouter(prefix="/api/v1", tags=["tour pass"])
Amount = schemas.AmountOut


class LimitsOut(BaseModel):
    min_top_up: Amount
    max_top_up: Amount
    max_balance: Amount
    fee_percent: Decimal
    validity_days: int


class HistoryOut(BaseModel):
    kind: str  # top_up | payment | merchant_refund | refund
    at: datetime
    amount: Amount  # into the pass (positive) or out of it (negative)
    label: str  # the merchant, the card ("VISA ···· 0019"), or balance / held
    detail: str | None  # a top-up's fee; a card refund's amount in the card's currency
    state: str


class PassOut(BaseModel):
    id: uuid.UUID
    state: str  # open | closed | expired
    balance: Amount
    opened_at: datetime
    expires_at: datetime
    closed_at: datetime | None
    settled: bool  # everything left has gone back
    room: Amount  # how much more may be added now
    history: list[HistoryOut]


class TourPassOut(BaseModel):
    may_open: bool
    refusal: str | None  # why not, in the reader's language
    limits: LimitsOut
    current: PassOut | None  # the open pass, else the latest one


class CardQuoteOut(BaseModel):
    card_id: uuid.UUID
    card: str
    card_total: Amount  # in the card's currency, at the wallet's rate of the day


class QuoteOut(BaseModel):
    amount: Amount
    fee: Amount
    total: Amount
    cards: list[CardQuoteOut]


class TopUpIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "card_id": "3f1c2b4a-6d5e-4f70-8a91-b2c3d4e5f607",
                    "amount": "500.00",
                    "payment_password": "802417",
                    "idempotency_key": "topup-2026-12-06-1",
                }
            ]
        }
    )

    card_id: uuid.UUID
    amount: str = Field(max_length=16, description="CNY, e.g. 500.00")
    payment_password: str = Field(max_length=6)
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="the top-up's key, if not sent as the Idempotency-Key header",
    )
    return_url: str | None = Field(
        default=None, max_length=512, description="where the issuer's 3-D Secure check returns"
    )


class TopUpOut(BaseModel):
    id: uuid.UUID
    state: str  # pending (3-D Secure under way) | done | failed
    amount: Amount
    fee: Amount
    total: Amount
    card: str
    card_amount: Amount | None
    challenge_url: str | None  # send the person here, then POST .../finish


class PasswordIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"payment_password": "802417"}]})

    payment_password: str = Field(max_length=6)


class DemoExpiryOut(BaseModel):
    refund_parts: int


def pass_out(view: tour_pass.PassView) -> PassOut:
    return PassOut(
        id=view.id,
        state=view.state,
        balance=Amount.of(view.balance),
        opened_at=view.opened_at,
        expires_at=view.expires_at,
        closed_at=view.closed_at,
        settled=view.settled,
        room=Amount.of(view.room),
        history=[
            HistoryOut(
                kind=line.kind,
                at=line.at,
                amount=Amount.of(line.amount),
                label=line.label,
                detail=line.detail,
                state=line.state,
            )
            for line in view.history
        ],
    )


def top_up_out(view: tour_pass.TopUpView) -> TopUpOut:
    return TopUpOut(
        id=view.id,
        state=view.state,
        amount=Amount.of(view.amount),
        fee=Amount.of(view.fee),
        total=Amount.of(view.total),
        card=view.card_label,
        card_amount=Amount.of(view.card_amount) if view.card_amount else None,
        challenge_url=view.challenge_url,
    )


@router.get("/tour-pass", response_model=TourPassOut)
def get_tour_pass(session: SessionDep, db: DbDep) -> TourPassOut:
    """Whether the person may open a pass, the limits, and their pass with its history."""
    view = db.run(lambda tx: tour_pass.overview(tx, session.account.id))
    found = view.limits
    return TourPassOut(
        may_open=view.refusal is None,
        refusal=translate(view.refusal, view.refusal_params) if view.refusal else None,
        limits=LimitsOut(
            min_top_up=Amount.of(found.min_top_up),
            max_top_up=Amount.of(found.max_top_up),
            max_balance=Amount.of(found.max_balance),
            fee_percent=found.fee_percent,
            validity_days=found.validity_days,
        ),
        current=pass_out(view.current) if view.current else None,
    )


@router.post("/tour-pass", response_model=PassOut, status_code=status.HTTP_201_CREATED)
def open_tour_pass(session: SessionDep, db: DbDep) -> PassOut:
    """Open a pass, valid for the set number of days; opening again returns it."""
    return pass_out(tour_pass.open_pass(db, session.account.id))


@router.get("/tour-pass/top-up-quote", response_model=QuoteOut)
def quote(session: SessionDep, db: DbDep, amount: str = Query(max_length=16)) -> QuoteOut:
    """The fee and the total of a top-up before confirming it, in CNY and per card."""
    money = Money.parse(amount)
    found = db.run(lambda tx: tour_pass.quote(tx, session.account.id, money))
    return QuoteOut(
        amount=Amount.of(found.amount),
        fee=Amount.of(found.fee),
        total=Amount.of(found.total),
        cards=[
            CardQuoteOut(card_id=c.card_id, card=c.card_label, card_total=Amount.of(c.card_total))
            for c in found.cards
        ],
    )


@router.post("/tour-pass/top-ups", response_model=TopUpOut, status_code=status.HTTP_201_CREATED)
def top_up(
    body: TopUpIn, session: SessionDep, db: DbDep, idempotency_key: IdempotencyKey = None
) -> TopUpOut:
    """Charge the card the amount plus the fee and add the amount to the open pass,
    confirmed by the payment password; the same key (the Idempotency-Key header, or
    ``idempotency_key``) never charges twice."""
    key = request_key(idempotency_key, body.idempotency_key, "idempotency_key") or ""
    return_url = body.return_url
    done = tour_pass.top_up(
        db,
        session.account.id,
        body.card_id,
        Money.parse(body.amount),
        body.payment_password,
        key,
        challenge_return_url=(lambda _top_up_id: return_url) if return_url else None,
    )
    return top_up_out(done)


@router.post("/tour-pass/top-ups/{top_up_id}/finish", response_model=TopUpOut)
def finish_top_up(top_up_id: uuid.UUID, session: SessionDep, db: DbDep) -> TopUpOut:
    """After the card issuer's 3-D Secure check."""
    return top_up_out(tour_pass.finish_top_up(db, session.account.id, top_up_id))


@router.post("/tour-pass/close", response_model=PassOut)
def close(body: PasswordIn, session: SessionDep, db: DbDep) -> PassOut:
    """Close the open pass now; what is left goes back to the cards, newest top-up first."""
    return pass_out(tour_pass.close(db, session.account.id, body.payment_password))


@router.post("/orders/{order_id}/pay/tour-pass", response_model=schemas.PayOut)
def pay(order_id: uuid.UUID, body: PasswordIn, session: SessionDep, db: DbDep) -> schemas.PayOut:
    """Pay an order from the open Tour Pass; a retry of a paid order returns it."""
    paid = tour_pass.pay(db, session.account.id, order_id, body.payment_password)
    return schemas.PayOut(order=order_out(paid))


@router.post("/demo/tour-pass/expire", response_model=DemoExpiryOut)
def demo_expire(db: DbDep, after_days: int = Query(default=91, ge=0, le=3650)) -> DemoExpiryOut:
    """Demo mode only: run the expiry job as if ``after_days`` days had passed (in this
    process, whose sandbox card network took the top-ups)."""
    if not db.settings.demo:
        raise NotFound("demo.off", N_("This runs only in demo mode."))
    as_of = db.clock.now() + timedelta(days=after_days)
    return DemoExpiryOut(refund_parts=tour_pass.expire_due(db, as_of=as_of))
