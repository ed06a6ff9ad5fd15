"""The JSON API of pay-for-me (代付): the asker makes a link for an unpaid order; the
friend reads it (with their own cashier options) and pays it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from qianbao.i18n import translate
from qianbao.identity.api import DbDep, SessionDep
from qianbao.wallet import api as wallet_api
from qianbao.wallet import schemas
from qianbao.wallet.pay_for_me import service as pay_for_me
from qianbao.wallet.pay_for_me.service import LinkView, Source
from qianbao.wallet.payments.service import Cashier
from qianbao.web.render import public_url

router = APIRouter(prefix="/api/v1", tags=["pay-for-me"])


class NewLinkOut(BaseModel):
    id: uuid.UUID
    url: str  # shown once: only its hash is kept
    expires_at: datetime
    order: schemas.OrderOut


class LinkOut(BaseModel):
    id: uuid.UUID
    order: schemas.OrderOut
    asker: str  # masked name and number
    state: Literal["open", "paid", "already_paid", "order_closed", "expired"]
    refusal: str | None  # why it cannot be paid now, in the reader's language
    expires_at: datetime
    paid_by: str | None  # masked
    paid_at: datetime | None
    viewer_is_asker: bool


class FriendLinkOut(BaseModel):
    link: LinkOut
    cashier: schemas.CashierOut | None  # the reader's own ways to pay, while it is open


class PayLinkOut(BaseModel):
    link: LinkOut | None
    challenge_url: str | None = None  # the card issuer's 3-D Secure check, then /finish


@router.post("/orders/{order_id}/pay-for-me", response_model=NewLinkOut, status_code=201)
def ask_a_friend(
    order_id: uuid.UUID, request: Request, session: SessionDep, db: DbDep
) -> NewLinkOut:
    """A pay-for-me link for an unpaid order, good for ``pay_for_me_link_hours`` and never
    past the order's close time. The URL is returned only here."""
    link = db.run(lambda tx: pay_for_me.ask_a_friend(tx, session.account.id, order_id))
    return NewLinkOut(
        id=link.id,
        url=public_url(request, link.path),
        expires_at=link.expires_at,
        order=wallet_api.order_out(link.order),
    )


@router.get("/orders/{order_id}/pay-for-me", response_model=list[LinkOut])
def my_links(order_id: uuid.UUID, session: SessionDep, db: DbDep) -> list[LinkOut]:
    """The asker's links for the order and their states (without their URLs)."""
    views = db.run(lambda tx: pay_for_me.links_of_order(tx, session.account.id, order_id))
    return [link_out(view) for view in views]


@router.get("/pay-for-me/{token}", response_model=FriendLinkOut)
def read_link(token: str, session: SessionDep, db: DbDep) -> FriendLinkOut:
    """What the friend sees: the order, the merchant, the amount, who asked (masked), the
    link's state, and how the friend may pay it (as at the cashier)."""
    view, cashier = db.run(lambda tx: pay_for_me.friend_cashier(tx, session.account.id, token))
    return FriendLinkOut(link=link_out(view), cashier=cashier_out(cashier) if cashier else None)


@router.post("/pay-for-me/{token}/pay", response_model=PayLinkOut)
def pay(token: str, body: schemas.PayIn, session: SessionDep, db: DbDep) -> PayLinkOut:
    """The friend pays with their own balance or card and their payment password. A
    retry of a done payment returns it; two friends at once: one pays, the other is told
    it is already paid."""
    outcome = pay_for_me.pay(
        db,
        session.account.id,
        token,
        Source(body.source, body.card_id),
        body.payment_password,
        challenge_return_url=body.return_url,
    )
    if isinstance(outcome, str):
        return PayLinkOut(link=None, challenge_url=outcome)
    return PayLinkOut(link=link_out(outcome))


@router.post("/pay-for-me/{token}/pay/finish", response_model=PayLinkOut)
def finish(token: str, session: SessionDep, db: DbDep) -> PayLinkOut:
    """After the card issuer's 3-D Secure check."""
    return PayLinkOut(link=link_out(pay_for_me.finish_card(db, session.account.id, token)))


def link_out(view: LinkView) -> LinkOut:
    refusal = view.refusal
    return LinkOut(
        id=view.id,
        order=wallet_api.order_out(view.order),
        asker=view.asker,
        state=view.state,
        refusal=translate(refusal[1]) if refusal else None,
        expires_at=view.expires_at,
        paid_by=view.paid_by,
        paid_at=view.paid_at,
        viewer_is_asker=view.viewer_is_asker,
    )


def cashier_out(view: Cashier) -> schemas.CashierOut:
    amount = schemas.AmountOut.of
    return schemas.CashierOut(
        order=wallet_api.order_out(view.order),
        balance=amount(view.balance),
        can_use_balance=view.can_use_balance,
        balance_refusal=translate(view.balance_refusal) if view.balance_refusal else None,
        cards=[
            schemas.QuoteOut(
                card=wallet_api.card_out(quote.card),
                fee=amount(quote.fee),
                total=amount(quote.total),
            )
            for quote in view.quotes
        ],
        bank_cards=[
            schemas.BankCardOut(id=card.id, bank_name=card.bank_name, last4=card.last4)
            for card in view.bank_cards
        ],
    )
