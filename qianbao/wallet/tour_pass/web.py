"""Pages of the Tour Pass: the pass (balance, expiry, history), opening it, a top-up
in two steps (the fee and the totals are shown before the payment password), the card
issuer's 3-D Secure return, closing it early, and in demo mode a button that runs the
expiry as if the pass's days had passed."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Annotated, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from qianbao.db import Database
from qianbao.errors import NotFound, QianbaoError
from qianbao.i18n import N_
from qianbao.identity.service import CurrentSession
from qianbao.money import Money
from qianbao.wallet.tour_pass import service as tour_pass
from qianbao.web.pages import CsrfField, DbDep, signed_in_or_home
from qianbao.web.render import check_csrf, page, redirect

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form()]
HOME: Final = "/wallet/tour-pass"
NOTICES: Final = {
    "opened": N_("Your Tour Pass is open."),
    "topped_up": N_("Money added to your Tour Pass."),
    "closed": N_("Your Tour Pass is closed. What was left is on its way back to your cards."),
    "expired": N_("Demo: the expiry ran. See the refunds below."),
}


@router.get(HOME)
def tour_pass_page(request: Request, db: DbDep, done: str | None = None) -> Response:
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    return _page(request, db, session, notice=NOTICES.get(done or ""))


def _page(
    request: Request,
    db: Database,
    session: CurrentSession,
    *,
    error: QianbaoError | None = None,
    notice: str | None = None,
    amount: str = "",
) -> Response:
    view = db.run(lambda tx: tour_pass.overview(tx, session.account.id))
    return page(
        request,
        "tour_pass.html",
        status=error.status if error else 200,
        account=session.account,
        tab="wallet",
        view=view,
        error=error,
        notice=notice,
        amount=amount,
    )


@router.post(f"{HOME}/open")
def open_pass(request: Request, db: DbDep, csrf: CsrfField = "") -> Response:
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    try:
        tour_pass.open_pass(db, session.account.id)
    except QianbaoError as error:
        return _page(request, db, session, error=error)
    return redirect(request, f"{HOME}?done=opened")


@router.post(f"{HOME}/quote")
def review_top_up(
    request: Request, db: DbDep, csrf: CsrfField = "", amount: Text = "", card: Text = ""
) -> Response:
    """Step one: the fee, the total and each card's charge, before confirming."""
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    try:
        money = Money.parse(amount)
        found = db.run(lambda tx: tour_pass.quote(tx, session.account.id, money))
    except QianbaoError as error:
        return _page(request, db, session, error=error, amount=amount)
    return page(
        request,
        "tour_pass_top_up.html",
        account=session.account,
        tab="wallet",
        quote=found,
        chosen=card,
        # The form's idempotency key: submitting it twice tops up once.
        request_key=secrets.token_urlsafe(24),
    )


@router.post(f"{HOME}/top-ups")
def confirm_top_up(
    request: Request,
    db: DbDep,
    csrf: CsrfField = "",
    amount: Text = "",
    card: Text = "",
    request_key: Text = "",
    payment_password: Text = "",
) -> Response:
    """Step two: charge the card (or go to its issuer's 3-D Secure check first)."""
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    try:
        done = tour_pass.top_up(
            db,
            session.account.id,
            _card_id(card),
            Money.parse(amount),
            payment_password,
            request_key,
            challenge_return_url=lambda top_up_id: f"{HOME}/top-ups/{top_up_id}/finish",
        )
    except QianbaoError as error:
        return _page(request, db, session, error=error, amount=amount)
    if done.challenge_url is not None:
        return redirect(request, done.challenge_url)
    return redirect(request, f"{HOME}?done=topped_up")


@router.get(f"{HOME}/top-ups/{{top_up_id}}/finish")
def finish_top_up(request: Request, db: DbDep, top_up_id: uuid.UUID) -> Response:
    """Back from the card issuer's 3-D Secure page."""
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    try:
        tour_pass.finish_top_up(db, session.account.id, top_up_id)
    except QianbaoError as error:
        return _page(request, db, session, error=error)
    return redirect(request, f"{HOME}?done=topped_up")


@router.post(f"{HOME}/close")
def close_pass(
    request: Request, db: DbDep, csrf: CsrfField = "", payment_password: Text = ""
) -> Response:
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    try:
        tour_pass.close(db, session.account.id, payment_password)
    except QianbaoError as error:
        return _page(request, db, session, error=error)
    return redirect(request, f"{HOME}?done=closed")


@router.post(f"{HOME}/demo-expire")
def demo_expire(request: Request, db: DbDep, csrf: CsrfField = "") -> Response:
    """Demo mode only: run the expiry job as if the pass's days had passed."""
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    if not db.settings.demo:
        raise NotFound("demo.off", N_("This runs only in demo mode."))
    days = db.settings.tour_pass_validity_days + 1
    tour_pass.expire_due(db, as_of=db.clock.now() + timedelta(days=days))
    return redirect(request, f"{HOME}?done=expired")


def _card_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise QianbaoError(
            "tour_pass.card", N_("Choose the card to top up with."), status=422
        ) from None
