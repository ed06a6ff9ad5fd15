"""The payment code page (付款码): the short-lived code as a Code 128 barcode and a QR
code for a shop's scanner, renewed before it runs out, and the person's own
password-free limit for it."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from qianbao.errors import QianbaoError
from qianbao.i18n import N_
from qianbao.wallet.payment_codes import service as payment_codes
from qianbao.web.drawing import code128_svg, qr_svg
from qianbao.web.pages import CsrfField, DbDep, signed_in_or_home
from qianbao.web.render import check_csrf, page, redirect

router = APIRouter(include_in_schema=False)
NOTICES: Final = {"limit": N_("Your limit for the payment code is saved.")}
# The page asks for a new code this long before the one shown runs out, so a shop never
# scans one that dies on its way to the gateway.
RENEW_EARLY_SECONDS: Final = 10
QR_PIXELS: Final = 200


@router.get("/wallet/payment-code")
def payment_code(request: Request, db: DbDep, done: str = "") -> Response:
    """A new code each time the page is drawn: a code works once, so showing it again
    would only show a used one."""
    return _page(request, db, NOTICES.get(done))


def _page(
    request: Request, db: DbDep, notice: str | None, error: QianbaoError | None = None
) -> Response:
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    user_id = session.account.id
    issued = db.run(lambda tx: payment_codes.issue(tx, user_id))
    limit = db.run(lambda tx: payment_codes.password_free_limit(tx, user_id))
    lifetime = db.settings.payment_code_seconds
    return page(
        request,
        "payment_code.html",
        status=error.status if error else 200,
        account=session.account,
        tab="wallet",
        code=issued.code,
        barcode=code128_svg(issued.code),
        qr=qr_svg(issued.code, QR_PIXELS),
        renew_after=max(lifetime - RENEW_EARLY_SECONDS, lifetime // 2),
        lifetime=lifetime,
        limit=limit,
        cap=db.settings.payment_code_password_free_limit,
        notice=notice,
        error=error,
    )


@router.post("/wallet/payment-code/limit")
def set_limit(
    request: Request, db: DbDep, csrf: CsrfField = "", limit: Annotated[str, Form()] = ""
) -> Response:
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    try:
        db.run(lambda tx: payment_codes.set_password_free_limit(tx, session.account.id, limit))
    except QianbaoError as error:
        return _page(request, db, None, error)
    return redirect(request, "/wallet/payment-code?done=limit")
