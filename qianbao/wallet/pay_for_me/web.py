"""Pages of pay-for-me (代付): the asker makes a link (with its QR code) at the cashier;
the friend opens it, logs in if need be, and pays with their own sources."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from qianbao.errors import QianbaoError
from qianbao.i18n import N_
from qianbao.identity.service import CurrentSession
from qianbao.wallet.pay_for_me import service as pay_for_me
from qianbao.wallet.pay_for_me.service import Source
from qianbao.web import after_login
from qianbao.web.drawing import qr_svg
from qianbao.web.pages import CsrfField, DbDep, signed_in, signed_in_or_home
from qianbao.web.render import check_csrf, page, public_url, redirect

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form()]
PATH = pay_for_me.PATH_PREFIX


def full_url(request: Request, path: str) -> str:
    """The link as the asker's own browser reaches this site."""
    return public_url(request, path)


@router.post("/cashier/{order_id}/pay-for-me")
def ask_a_friend(
    request: Request, db: DbDep, order_id: uuid.UUID, csrf: CsrfField = ""
) -> Response:
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    try:
        link = db.run(lambda tx: pay_for_me.ask_a_friend(tx, session.account.id, order_id))
    except QianbaoError as error:
        return page(
            request,
            "pay_for_me_share.html",
            status=error.status,
            account=session.account,
            tab="wallet",
            error=error,
            order_id=order_id,
        )
    url = full_url(request, link.path)
    # Shown once: only the token's hash is kept, so a reload offers a new link instead.
    response = page(
        request,
        "pay_for_me_share.html",
        account=session.account,
        tab="wallet",
        link=link,
        url=url,
        qr=qr_svg(url),
        order_id=order_id,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/pay-for-me/{token}")
def open_link(request: Request, db: DbDep, token: str, done: str = "") -> Response:
    session = signed_in(request, db)
    if session is None:
        return after_login.to_login(request, request.url.path)
    return _link_page(request, db, session, token, notice=N_("Paid. Thank you!") if done else None)


@router.post("/pay-for-me/{token}")
def pay(
    request: Request,
    db: DbDep,
    token: str,
    csrf: CsrfField = "",
    source: Text = "",
    payment_password: Text = "",
) -> Response:
    check_csrf(request, csrf)
    session = signed_in(request, db)
    if session is None:
        return after_login.to_login(request, request.url.path)
    try:
        chosen = _source(source)
        outcome = pay_for_me.pay(
            db,
            session.account.id,
            token,
            chosen,
            payment_password,
            challenge_return_url=f"{request.url.path}/finish",
        )
    except ValueError:
        error = QianbaoError("cashier.source", N_("Choose how to pay."), status=422)
        return _link_page(request, db, session, token, error=error)
    except QianbaoError as error:
        return _link_page(request, db, session, token, error=error)
    if isinstance(outcome, str):
        return redirect(request, outcome)
    return redirect(request, f"{request.url.path}?done=1")


@router.get("/pay-for-me/{token}/finish")
def finish(request: Request, db: DbDep, token: str) -> Response:
    """Back from the card issuer's 3-D Secure check."""
    session = signed_in(request, db)
    if session is None:
        return after_login.to_login(request, request.url.path)
    try:
        pay_for_me.finish_card(db, session.account.id, token)
    except QianbaoError as error:
        return _link_page(request, db, session, token, error=error)
    return redirect(request, f"{PATH}{token}?done=1")


def _source(value: str) -> Source:
    """The form's choice: "balance", "card:<id>" or "bank:<id>" (ValueError otherwise)."""
    if value == "balance":
        return Source("balance")
    kind, _, card = value.partition(":")
    if kind == "card":
        return Source("foreign_card", uuid.UUID(card))
    if kind == "bank":
        return Source("bank_card", uuid.UUID(card))
    raise ValueError(value)


def _link_page(
    request: Request,
    db: DbDep,
    session: CurrentSession,
    token: str,
    *,
    error: QianbaoError | None = None,
    notice: str | None = None,
) -> Response:
    try:
        view, cashier = db.run(lambda tx: pay_for_me.friend_cashier(tx, session.account.id, token))
    except QianbaoError as unknown:  # no such link
        return page(
            request,
            "pay_for_me.html",
            status=unknown.status,
            account=session.account,
            tab="wallet",
            error=unknown,
            view=None,
        )
    return page(
        request,
        "pay_for_me.html",
        status=error.status if error else 200,
        account=session.account,
        tab="wallet",
        view=view,
        cashier=cashier,
        error=error,
        notice=notice,
        action=f"{PATH}{token}",
        own_link=pay_for_me.OWN_LINK,
    )
