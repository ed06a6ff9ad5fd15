"""The page where a person redeems a store top-up code."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from qianbao.errors import QianbaoError
from qianbao.identity.service import CurrentSession
from qianbao.wallet.topup_codes import service as topup_codes
from qianbao.web.pages import ClientDep, CsrfField, DbDep, signed_in_or_home
from qianbao.web.render import check_csrf, page, redirect

router = APIRouter(include_in_schema=False)


@router.get("/wallet/topup-code")
def redeem_page(request: Request, db: DbDep, added: int = 0) -> Response:
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    return _page(request, db, session, show_latest=bool(added))


@router.post("/wallet/topup-code")
def redeem(
    request: Request,
    db: DbDep,
    client: ClientDep,
    csrf: CsrfField = "",
    code: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    try:
        topup_codes.redeem(db, session.account.id, code, client.ip)
    except QianbaoError as error:
        refused = _page(request, db, session, error=error, code=code[:32])
        if error.retry_after:
            refused.headers["Retry-After"] = str(error.retry_after)
        return refused
    return redirect(request, "/wallet/topup-code?added=1")


def _page(
    request: Request,
    db: DbDep,
    session: CurrentSession,
    *,
    show_latest: bool = False,
    error: QianbaoError | None = None,
    code: str = "",
) -> Response:
    user_id = session.account.id
    allowed = db.run(lambda tx: topup_codes.may_redeem(tx, user_id))
    redeemed = db.run(lambda tx: topup_codes.redemptions(tx, user_id))
    return page(
        request,
        "topup_redeem.html",
        status=error.status if error else 200,
        account=session.account,
        tab="wallet",
        allowed=allowed,
        identification_required=topup_codes.IDENTIFICATION_REQUIRED,
        redeemed=redeemed,
        added=redeemed[0] if show_latest and redeemed else None,
        error=error,
        code=code,
    )
