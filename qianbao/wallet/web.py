"""Pages of the wallet: home (balance, held money and why, cards), add a foreign card,
the cashier, the sandbox card network's 3-D Secure page, and a demo shop that creates
orders to pay and refunds them (demo mode only)."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Annotated, Final
from urllib.parse import urlsplit

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from qianbao import policy
from qianbao.db import Database
from qianbao.errors import QianbaoError
from qianbao.funding import connectors, foreign_cards
from qianbao.i18n import N_
from qianbao.identity import service as identity
from qianbao.identity.service import CurrentSession
from qianbao.money import Money
from qianbao.risk import restrictions
from qianbao.standing import standing
from qianbao.text_guard import check_shown_text
from qianbao.verification.api import read_upload
from qianbao.wallet import history
from qianbao.wallet.pay_for_me import service as pay_for_me
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments
from qianbao.wallet.tour_pass import service as tour_pass
from qianbao.wallet.transfers import service as transfers
from qianbao.web.pages import CsrfField, DbDep, signed_in, signed_in_or_home
from qianbao.web.render import check_csrf, page, redirect

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form()]
NOTICES: Final = {
    "card": N_("Card added."),
    "paid": N_("Payment made."),
    "appeal": N_("Your documents are sent. A reviewer will answer by SMS."),
}


@dataclass(frozen=True)
class WalletAction:
    key: policy.Action
    label: str  # to translate
    href: str
    testid: str
    refusal: str | None  # why the level does not allow it; None when it does


# The wallet's money actions, each as a row of the same kind.
_ACTIONS: Final[tuple[tuple[policy.Action, str, str, str], ...]] = (
    ("transfer", N_("Send money"), "/wallet/transfer", "send-money-link"),
    ("receive", N_("Request money"), "/wallet/request", "request-money-link"),
    ("topup_code", N_("Redeem a top-up code"), "/wallet/topup-code", "topup-code-link"),
    (
        "tour_pass",
        N_("Tour Pass: a prepaid balance for visitors"),
        "/wallet/tour-pass",
        "tour-pass-link",
    ),
)


def wallet_actions(level: str, rights: policy.Rights) -> list[WalletAction]:
    """The rows; the Tour Pass row stays a link, since its page explains who may open one."""
    return [
        WalletAction(
            key,
            label,
            href,
            testid,
            None if key == "tour_pass" else policy.action_refusal(key, level, rights),
        )
        for key, label, href, testid in _ACTIONS
    ]


@router.get("/wallet")
def wallet_page(request: Request, db: DbDep, done: str | None = None) -> Response:
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    user_id = session.account.id
    view = db.run(lambda tx: payments.wallet(tx, user_id))
    orders = db.run(lambda tx: payments.user_orders(tx, user_id, 20))
    restriction = db.run(lambda tx: restrictions.active(tx, user_id))
    found = db.run(lambda tx: standing(tx, user_id))
    verified = identity.is_verified(session.account.verification_level)
    return page(
        request,
        "wallet.html",
        account=session.account,
        tab="wallet",
        wallet=view,
        actions=wallet_actions(found.level, found.rights),
        held_refunds=db.run(lambda tx: refunds.held_refunds(tx, user_id, view.held)),
        orders=orders,
        restriction=restriction,
        # Only someone not yet verified is told to verify: verifying changes nothing
        # for a verified person (their frozen money waits for the freeze to lift).
        can_verify=not verified,
        what_to_do=restrictions.what_to_do(verified=verified),
        notice=NOTICES.get(done or ""),
    )


@router.get("/wallet/appeal")
def appeal_page(request: Request, db: DbDep) -> Response:
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    restriction = db.run(lambda tx: restrictions.active(tx, session.account.id))
    return page(
        request,
        "wallet_appeal.html",
        account=session.account,
        tab="wallet",
        restriction=restriction,
    )


@router.post("/wallet/appeal")
def send_appeal(
    request: Request,
    db: DbDep,
    passport_page: Annotated[UploadFile | None, File()] = None,
    selfie_with_passport: Annotated[UploadFile | None, File()] = None,
    card_statement: Annotated[UploadFile | None, File()] = None,
    message: Annotated[str, Form()] = "",
    csrf: CsrfField = "",
) -> Response:
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    uploads = {
        "passport_page": passport_page,
        "selfie_with_passport": selfie_with_passport,
        "card_statement": card_statement,
    }
    try:
        documents = {
            kind: read_upload(upload, db.settings)
            for kind, upload in uploads.items()
            if upload is not None and upload.filename
        }
        restrictions.appeal(db, session.account.id, documents, message)
    except QianbaoError as error:
        restriction = db.run(lambda tx: restrictions.active(tx, session.account.id))
        return page(
            request,
            "wallet_appeal.html",
            status=error.status,
            account=session.account,
            tab="wallet",
            restriction=restriction,
            error=error,
        )
    return redirect(request, "/wallet?done=appeal")


@router.get("/wallet/history")
def history_page(
    request: Request,
    db: DbDep,
    source: str = "",
    status: str = "",
    since: str = "",
    until: str = "",
) -> Response:
    """Every payment, filtered by source, status and dates; CSV at /wallet/history.csv."""
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    zone = session.account.time_zone
    filters = history.page_filters(source, status, since, until, zone)
    rows = db.run(lambda tx: payments.user_orders(tx, session.account.id, 500, **filters))
    moves = db.run(lambda tx: transfers.history(tx, session.account.id, 500, filters))
    friends = db.run(lambda tx: pay_for_me.friend_notes(tx, session.account.id, rows))
    return page(
        request,
        "wallet_history.html",
        account=session.account,
        tab="wallet",
        orders=rows,
        friends=friends,
        transfers=moves,
        chosen={"source": source, "status": status, "since": since, "until": until},
        query=request.url.query,
    )


@router.get("/wallet/history.csv")
def history_csv(
    request: Request,
    db: DbDep,
    source: str = "",
    status: str = "",
    since: str = "",
    until: str = "",
) -> Response:
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    zone = session.account.time_zone
    filters = history.page_filters(source, status, since, until, zone)
    text = db.run(lambda tx: history.csv_export(tx, session.account.id, filters))
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="qianbao-payments.csv"'},
    )


@router.get("/wallet/payments/{order_id}")
def payment_detail(request: Request, db: DbDep, order_id: uuid.UUID) -> Response:
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    order = db.run(lambda tx: payments.user_order(tx, session.account.id, order_id))
    given_back = db.run(lambda tx: refunds.order_refunds(tx, order_id))
    friends = db.run(lambda tx: pay_for_me.friend_notes(tx, session.account.id, [order]))
    return page(
        request,
        "wallet_payment.html",
        account=session.account,
        tab="wallet",
        order=order,
        refunds=given_back,
        friend=friends.get(order.id),
    )


@router.get("/wallet/cards/new")
def add_card_page(request: Request, db: DbDep) -> Response:
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    return page(request, "wallet_add_card.html", account=session.account, tab="wallet")


@router.post("/wallet/cards")
def add_card(
    request: Request,
    db: DbDep,
    csrf: CsrfField = "",
    number: Text = "",
    expiry: Text = "",
    cvv: Text = "",
    holder_name: Text = "",
) -> Response:
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    try:
        card = foreign_cards.add_foreign_card(
            db,
            session.account.id,
            number,
            expiry,
            cvv,
            holder_name,
            challenge_return_url=lambda card_id: f"/wallet/cards/{card_id}/verified",
        )
    except QianbaoError as error:
        return _add_card_error(request, session, error, holder_name)
    if card.challenge_url is not None:  # the issuer's 3-D Secure check first
        return redirect(request, card.challenge_url)
    return redirect(request, "/wallet?done=card")


@router.get("/wallet/cards/{card_id}/verified")
def card_verified(request: Request, db: DbDep, card_id: uuid.UUID) -> Response:
    """Where the issuer's 3-D Secure check at linking sends the person back."""
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    try:
        foreign_cards.finish_card_verification(db, session.account.id, card_id)
    except QianbaoError as error:
        return _add_card_error(request, session, error)
    return redirect(request, "/wallet?done=card")


def _add_card_error(
    request: Request, session: CurrentSession, error: QianbaoError, holder_name: str = ""
) -> Response:
    return page(
        request,
        "wallet_add_card.html",
        status=error.status,
        account=session.account,
        tab="wallet",
        error=error,
        holder_name=holder_name,
    )


@router.get("/cashier/{order_id}")
def cashier_page(request: Request, db: DbDep, order_id: uuid.UUID) -> Response:
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    return _cashier(request, db, session, order_id)


def _cashier(
    request: Request,
    db: Database,
    session: CurrentSession,
    order_id: uuid.UUID,
    error: QianbaoError | None = None,
) -> Response:
    view = db.run(lambda tx: payments.cashier(tx, session.account.id, order_id))
    return page(
        request,
        "cashier.html",
        status=error.status if error else 200,
        account=session.account,
        tab="wallet",
        cashier=view,
        error=error,
    )


@router.post("/cashier/{order_id}")
def pay(
    request: Request,
    db: DbDep,
    order_id: uuid.UUID,
    csrf: CsrfField = "",
    source: Text = "",
    payment_password: Text = "",
) -> Response:
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    user_id = session.account.id
    try:
        if source == "balance":
            payments.pay_with_balance(db, user_id, order_id, payment_password)
        elif source == "tour_pass":
            tour_pass.pay(db, user_id, order_id, payment_password)
        elif source.startswith("bank:"):
            bank_card = uuid.UUID(source.removeprefix("bank:"))
            payments.pay_with_bank_card(db, user_id, order_id, bank_card, payment_password)
        else:
            card_id = uuid.UUID(source.removeprefix("card:"))
            back = f"{request.url.path}/finish"
            outcome = payments.pay_with_card(
                db, user_id, order_id, card_id, payment_password, challenge_return_url=back
            )
            if isinstance(outcome, str):
                return redirect(request, outcome)
    except ValueError:
        return _cashier(request, db, session, order_id, _choose_source())
    except QianbaoError as error:
        return _cashier(request, db, session, order_id, error)
    return _after_payment(request, db, order_id)


def _after_payment(request: Request, db: Database, order_id: uuid.UUID) -> Response:
    """Back to the shop's page when the order came with one (the trade API's
    return_url), else the cashier's own paid page."""
    back = db.run(lambda tx: payments.return_page(tx, order_id))
    if back and _origin(back) != _origin(str(request.url)):
        # Browsers check the cashier form's ``form-action 'self'`` on every redirect
        # that follows it: the shop (another origin) is reached through a page that
        # moves on by itself, as Log in with Qianbao's answer is.
        return page(request, "oidc_continue.html", target=back)
    return redirect(request, back or f"/cashier/{order_id}")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@router.get("/cashier/{order_id}/finish")
def finish(request: Request, db: DbDep, order_id: uuid.UUID) -> Response:
    """Back from the card issuer's 3-D Secure page."""
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    try:
        payments.finish_card_payment(db, session.account.id, order_id)
    except QianbaoError as error:
        return _cashier(request, db, session, order_id, error)
    return _after_payment(request, db, order_id)


def _choose_source() -> QianbaoError:
    return QianbaoError("cashier.source", N_("Choose how to pay."), status=422)


# --- the sandbox card network's 3-D Secure page ------------------------------------------


@router.get("/sandbox/3ds/{authorization_id}")
def three_ds_page(request: Request, authorization_id: str, return_to: str = "/wallet") -> Response:
    return page(
        request,
        "sandbox_3ds.html",
        authorization_id=authorization_id,
        return_to=_same_site(return_to),
    )


@router.post("/sandbox/3ds/{authorization_id}")
def three_ds_answer(
    request: Request,
    db: DbDep,
    authorization_id: str,
    csrf: CsrfField = "",
    answer: Text = "",
    return_to: Text = "/wallet",
) -> Response:
    check_csrf(request, csrf)
    # A wrong answer fails the authorization; the cashier then says so.
    with contextlib.suppress(QianbaoError):
        connectors.network_for(db).complete_challenge(authorization_id, answer.strip())
    return redirect(request, _same_site(return_to))


def _same_site(path: str) -> str:
    return path if path.startswith("/") and not path.startswith("//") else "/wallet"


# --- the demo shop ------------------------------------------------------------------------


@router.get("/demo/shop")
def demo_shop(request: Request, db: DbDep) -> Response:
    shop = payments.demo_merchant(db)
    orders = db.run(lambda tx: payments.merchant_orders(tx, shop))
    session = signed_in(request, db)
    return page(
        request,
        "demo_shop.html",
        account=session.account if session else None,
        tab="wallet",
        orders=orders,
    )


@router.post("/demo/shop/orders")
def demo_order(
    request: Request, db: DbDep, csrf: CsrfField = "", amount: Text = "", subject: Text = ""
) -> Response:
    check_csrf(request, csrf)
    shop = payments.demo_merchant(db)
    number = f"DEMO{secrets.token_hex(6).upper()}"
    try:
        money = Money.parse(amount)
        check_shown_text("subject", subject)
        order = db.run(
            lambda tx: payments.create_order(tx, shop, number, subject or "Demo order", money)
        )
    except QianbaoError as error:
        orders = db.run(lambda tx: payments.merchant_orders(tx, shop))
        return page(request, "demo_shop.html", status=error.status, orders=orders, error=error)
    return redirect(request, f"/cashier/{order.id}")


@router.post("/demo/shop/orders/{order_id}/refunds")
def demo_refund(
    request: Request,
    db: DbDep,
    order_id: uuid.UUID,
    csrf: CsrfField = "",
    amount: Text = "",
    destination: Text = "original",
) -> Response:
    check_csrf(request, csrf)
    shop = payments.demo_merchant(db)
    try:
        number = f"R{secrets.token_hex(6).upper()}"
        refunds.refund(
            db, shop, order_id, number, Money.parse(amount), to_balance=destination == "balance"
        )
    except QianbaoError as error:
        orders = db.run(lambda tx: payments.merchant_orders(tx, shop))
        return page(request, "demo_shop.html", status=error.status, orders=orders, error=error)
    return redirect(request, "/demo/shop")


# The CSV export lives in history.py (the API serves it too); the name stays for callers.
_spreadsheet_safe = history.spreadsheet_safe
