"""The JSON API of the wallet: balance and held money, foreign cards, the cashier, the
payment history (pages and CSV), restrictions and appeals, and a demo merchant's orders
and refunds (demo mode only)."""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile, status

from qianbao import policy
from qianbao.db import Tx
from qianbao.deps import IdempotencyKey, request_key
from qianbao.errors import InvalidInput
from qianbao.funding import foreign_cards
from qianbao.i18n import N_, translate
from qianbao.identity import schemas as identity_schemas
from qianbao.identity import service as identity
from qianbao.identity.api import DbDep, SessionDep
from qianbao.money import Money
from qianbao.risk import restrictions
from qianbao.standing import Standing, standing
from qianbao.text_guard import check_shown_text
from qianbao.verification.api import read_upload
from qianbao.wallet import history, limits, schemas
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments
from qianbao.wallet.payments.service import OrderView

router = APIRouter(prefix="/api/v1", tags=["wallet"])
Upload = Annotated[UploadFile | None, File()]


def history_filters(
    source: Annotated[
        str | None, Query(description=f"one of {', '.join(history.SOURCES)}; transfers: balance")
    ] = None,
    status: Annotated[str | None, Query(description=", ".join(history.STATUSES))] = None,
    since: Annotated[date | None, Query(description="paid on or after this day (UTC)")] = None,
    until: Annotated[date | None, Query(description="paid on or before this day (UTC)")] = None,
) -> dict[str, Any]:
    """The history page's filters, for the API: an unknown value is a 422 here."""
    return history.api_filters(source, status, since, until)


FiltersDep = Annotated[dict[str, Any], Depends(history_filters)]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the last page")]
Limit = Annotated[int, Query(ge=1, le=history.MAX_PAGE, description="rows per page")]


def order_out(order: OrderView) -> schemas.OrderOut:
    amount = schemas.AmountOut.of
    return schemas.OrderOut(
        id=order.id,
        merchant=order.merchant,
        out_trade_no=order.out_trade_no,
        subject=order.subject,
        amount=amount(order.amount),
        refunded=amount(order.refunded),
        status=order.status,
        created_at=order.created_at,
        expires_at=order.expires_at,
        paid_at=order.paid_at,
        source=order.source,
        fee=amount(order.fee),
        card_amount=amount(order.card_amount) if order.card_amount else None,
    )


def card_out(card: foreign_cards.ForeignCardView) -> schemas.CardOut:
    return schemas.CardOut(**card.__dict__)


# The tier and its rights with what this person has used of them: the wallet's to answer,
# since it keeps the usage (identity, below it, cannot ask). Filed under identity, as
# before, so the document's tag and operationId stay where clients found them.
@router.get(
    "/me/level",
    response_model=identity_schemas.LevelOut,
    tags=["identity"],
    operation_id="identity.get_level",
)
def get_level(session: SessionDep, db: DbDep) -> identity_schemas.LevelOut:
    """The account's tier (from how it is verified), what it may do, and what the next
    tier would add (policy.py decides all of it)."""
    found = db.run(lambda tx: standing(tx, session.account.id))
    used = db.run(lambda tx: limits.limit_usage(tx, session.account.id, found.rights))
    return level_out(found, used)


def level_out(found: Standing, used: Mapping[str, Money | int]) -> identity_schemas.LevelOut:
    def lines(rows: list[policy.Line]) -> list[identity_schemas.RightOut]:
        return [identity_schemas.RightOut(**dataclasses.asdict(row)) for row in rows]

    upper = found.next_tier
    return identity_schemas.LevelOut(
        level=found.level,
        has_bank_card=found.has_bank_card,
        tier=found.tier,
        tier_label=translate(policy.TIER_LABELS[found.tier]),
        rights=lines(policy.describe(found.rights, used)),
        next_tier=upper,
        next_tier_label=translate(policy.TIER_LABELS[upper]) if upper else None,
        next_tier_adds=lines(policy.gains(found.rights, found.next_rights))
        if found.next_rights
        else [],
        how_to_reach_next=policy.how_to_reach(upper) if upper else None,
    )


@router.get("/wallet", response_model=schemas.WalletOut)
def get_wallet(session: SessionDep, db: DbDep) -> schemas.WalletOut:
    view = db.run(lambda tx: payments.wallet(tx, session.account.id))
    return schemas.WalletOut(
        balance=schemas.AmountOut.of(view.balance),
        held=schemas.AmountOut.of(view.held),
        can_use_balance=view.can_use_balance,
        cards=[card_out(card) for card in view.cards],
    )


@router.post("/wallet/cards", response_model=schemas.CardOut, status_code=201)
def add_card(body: schemas.CardIn, session: SessionDep, db: DbDep) -> schemas.CardOut:
    """Link a foreign card (sandbox test cards: docs/sandbox_card_network.md). When the
    issuer wants a 3-D Secure check the answer carries ``challenge_url`` and the card is
    not usable until ``/wallet/cards/{id}/verification`` after the check."""
    return_url = body.return_url
    card = foreign_cards.add_foreign_card(
        db,
        session.account.id,
        body.number,
        body.expiry,
        body.cvv,
        body.holder_name,
        challenge_return_url=(lambda _card_id: return_url) if return_url else None,
    )
    return card_out(card)


@router.post("/wallet/cards/{card_id}/verification", response_model=schemas.CardOut)
def finish_card_verification(card_id: uuid.UUID, session: SessionDep, db: DbDep) -> schemas.CardOut:
    """After the issuer's 3-D Secure check at linking: the card, now usable, or
    ``card.verification_failed`` (the card is dropped; add it again)."""
    return card_out(foreign_cards.finish_card_verification(db, session.account.id, card_id))


@router.get("/orders/{order_id}/cashier", response_model=schemas.CashierOut)
def get_cashier(order_id: uuid.UUID, session: SessionDep, db: DbDep) -> schemas.CashierOut:
    """The order and how this person may pay it: balance (when their level allows),
    each card with its fee and total."""
    view = db.run(lambda tx: payments.cashier(tx, session.account.id, order_id))
    return schemas.CashierOut(
        order=order_out(view.order),
        balance=schemas.AmountOut.of(view.balance),
        can_use_balance=view.can_use_balance,
        balance_refusal=translate(view.balance_refusal) if view.balance_refusal else None,
        cards=[
            schemas.QuoteOut(
                card=card_out(quote.card),
                fee=schemas.AmountOut.of(quote.fee),
                total=schemas.AmountOut.of(quote.total),
                card_total=schemas.AmountOut.of(quote.card_total) if quote.card_total else None,
            )
            for quote in view.quotes
        ],
        bank_cards=[
            schemas.BankCardOut(id=card.id, bank_name=card.bank_name, last4=card.last4)
            for card in view.bank_cards
        ],
    )


@router.post("/orders/{order_id}/pay", response_model=schemas.PayOut)
def pay(order_id: uuid.UUID, body: schemas.PayIn, session: SessionDep, db: DbDep) -> schemas.PayOut:
    """Pay with the balance or a card, confirmed by the payment password. A retry of a
    paid order returns it; nothing is charged twice."""
    user_id = session.account.id
    if body.source == "balance":
        return schemas.PayOut(
            order=order_out(payments.pay_with_balance(db, user_id, order_id, body.payment_password))
        )
    if body.card_id is None:
        raise InvalidInput("cashier.card", N_("Choose a card to pay with."))
    if body.source == "bank_card":
        paid = payments.pay_with_bank_card(
            db, user_id, order_id, body.card_id, body.payment_password
        )
        return schemas.PayOut(order=order_out(paid))
    outcome = payments.pay_with_card(
        db,
        user_id,
        order_id,
        body.card_id,
        body.payment_password,
        challenge_return_url=body.return_url,
    )
    if isinstance(outcome, str):
        return schemas.PayOut(order=None, challenge_url=outcome)
    return schemas.PayOut(order=order_out(outcome))


@router.post("/orders/{order_id}/pay/finish", response_model=schemas.PayOut)
def finish(order_id: uuid.UUID, session: SessionDep, db: DbDep) -> schemas.PayOut:
    """After the card issuer's 3-D Secure check."""
    return schemas.PayOut(
        order=order_out(payments.finish_card_payment(db, session.account.id, order_id))
    )


@router.get("/wallet/payments", response_model=schemas.PaymentsPageOut)
def payment_history(
    session: SessionDep, db: DbDep, filters: FiltersDep, cursor: Cursor = None, limit: Limit = 20
) -> schemas.PaymentsPageOut:
    """The payment history, newest first, a page at a time, with the history page's
    filters; transfers are at ``/wallet/transfers/history``."""
    found = db.run(lambda tx: history.payments_page(tx, session.account.id, filters, cursor, limit))
    return schemas.PaymentsPageOut(
        items=[order_out(order) for order in found.items], next_cursor=found.next_cursor
    )


@router.get("/wallet/payments/{order_id}", response_model=schemas.PaymentDetailOut)
def payment_detail(order_id: uuid.UUID, session: SessionDep, db: DbDep) -> schemas.PaymentDetailOut:
    """One of the person's payments with its refunds, as its page shows it."""

    def read(tx: Tx) -> tuple[OrderView, list[refunds.RefundView]]:
        order = payments.user_order(tx, session.account.id, order_id)  # theirs, or 404
        return order, refunds.order_refunds(tx, order_id)

    order, given_back = db.run(read)
    return schemas.PaymentDetailOut(
        order=order_out(order),
        refunds=[
            schemas.RefundOut(
                id=refund.id,
                out_request_no=refund.out_request_no,
                amount=schemas.AmountOut.of(refund.amount),
                fee_refunded=schemas.AmountOut.of(refund.fee_refunded),
                destination=refund.destination,
            )
            for refund in given_back
        ],
    )


@router.get(
    "/wallet/history.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "payments, then transfers"}},
)
def history_csv(session: SessionDep, db: DbDep, filters: FiltersDep) -> Response:
    """The history page's CSV export: payments, then transfers, with the same filters."""
    text = db.run(lambda tx: history.csv_export(tx, session.account.id, filters))
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="qianbao-payments.csv"'},
    )


@router.get("/wallet/restriction", response_model=schemas.RestrictionStateOut)
def get_restriction(session: SessionDep, db: DbDep) -> schemas.RestrictionStateOut:
    """Whether the account is restricted or frozen, why, and the state of its appeal."""
    found = db.run(lambda tx: restrictions.active(tx, session.account.id))
    if found is None:
        return schemas.RestrictionStateOut(restriction=None)
    restriction = schemas.RestrictionOut(
        kind=found.kind,
        reason=found.reason,
        reason_text=translate(found.reason_text),
        since=found.created_at,
        appeal_status=found.appeal_status,
        what_to_do=translate(
            restrictions.what_to_do(
                verified=identity.is_verified(session.account.verification_level)
            )
        ),
    )
    return schemas.RestrictionStateOut(restriction=restriction)


@router.post("/wallet/appeals", response_model=schemas.AppealOut, status_code=201)
def appeal(
    session: SessionDep,
    db: DbDep,
    passport_page: Upload = None,
    selfie_with_passport: Upload = None,
    card_statement: Upload = None,
    message: Annotated[str, Form(max_length=2000)] = "",
) -> schemas.AppealOut:
    """Documents against the account's restriction (JPEG or PNG; at least one), to a
    reviewer, who answers by SMS. One appeal at a time (``appeal.pending``)."""
    uploads = {
        "passport_page": passport_page,
        "selfie_with_passport": selfie_with_passport,
        "card_statement": card_statement,
    }
    documents = {
        kind: read_upload(upload, db.settings)
        for kind, upload in uploads.items()
        if upload is not None and upload.filename
    }
    appeal_id = restrictions.appeal(db, session.account.id, documents, message)
    return schemas.AppealOut(id=appeal_id, status="pending")


# --- the demo merchant --------------------------------------------------------------------


@router.post(
    "/demo/shop/orders", response_model=schemas.OrderOut, status_code=status.HTTP_201_CREATED
)
def demo_order(body: schemas.DemoOrderIn, request: Request, db: DbDep) -> schemas.OrderOut:
    """An order of the demo shop (demo mode only), to pay at the cashier."""
    shop = payments.demo_merchant(db)
    number = f"DEMO{secrets.token_hex(6).upper()}"
    amount = Money.parse(body.amount)
    subject = check_shown_text("subject", body.subject)  # the payer reads it at the cashier
    return order_out(db.run(lambda tx: payments.create_order(tx, shop, number, subject, amount)))


@router.post("/demo/shop/orders/{order_id}/refunds", response_model=schemas.RefundOut)
def demo_refund(
    order_id: uuid.UUID,
    body: schemas.RefundIn,
    request: Request,
    db: DbDep,
    idempotency_key: IdempotencyKey = None,
) -> schemas.RefundOut:
    """A full or partial refund by the demo shop, named by its request number (the
    Idempotency-Key header, or ``out_request_no``): the same number is done once, and
    used with another amount or destination it is 409 ``idempotency.mismatch``."""
    request_no = refunds.check_request_no(
        request_key(idempotency_key, body.out_request_no, "out_request_no")
    )
    shop = payments.demo_merchant(db)
    done = refunds.refund(
        db,
        shop,
        order_id,
        request_no,
        Money.parse(body.amount),
        to_balance=body.destination == "balance",
    )
    return schemas.RefundOut(
        id=done.id,
        out_request_no=done.out_request_no,
        amount=schemas.AmountOut.of(done.amount),
        fee_refunded=schemas.AmountOut.of(done.fee_refunded),
        destination=done.destination,
    )
