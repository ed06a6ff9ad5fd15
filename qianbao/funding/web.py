"""Pages of the mainland bank card: the four elements, then the code the bank texted."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from qianbao.errors import QianbaoError
from qianbao.funding import service
from qianbao.identity.service import CurrentSession
from qianbao.verification import service as verification
from qianbao.web.pages import CsrfField, DbDep, signed_in
from qianbao.web.render import check_csrf, page, redirect

router = APIRouter(include_in_schema=False)
BANK = "/me/verify/bank-card"
Text = Annotated[str, Form()]


def _form(
    request: Request,
    session: CurrentSession,
    typed: dict[str, str] | None = None,
    error: QianbaoError | None = None,
) -> Response:
    return page(
        request,
        "bank_card.html",
        status=error.status if error else 200,
        account=session.account,
        tab="me",
        typed=typed or {},
        error=error,
        check=None,
    )


@router.get(BANK)
def bank_card_page(request: Request, db: DbDep) -> Response:
    session = signed_in(request, db)
    if session is None:
        return redirect(request, "/")
    return _form(request, session)


@router.post(BANK)
def start_check(
    request: Request,
    db: DbDep,
    csrf: CsrfField = "",
    card_number: Text = "",
    holder_name: Text = "",
    passport_number: Text = "",
    reserved_phone: Text = "",
) -> Response:
    check_csrf(request, csrf)
    session = signed_in(request, db)
    if session is None:
        return redirect(request, "/")
    user_id = session.account.id
    typed = {
        "holder_name": holder_name,
        "passport_number": passport_number,
        "reserved_phone": reserved_phone,
    }
    try:
        verified = db.run(lambda tx: verification.verified_holder(tx, user_id))
        holder = service.CardHolder(card_number, holder_name, passport_number, reserved_phone)
        started = service.start_check(db, user_id, holder, verified)
    except QianbaoError as error:
        return _form(request, session, typed, error)
    return page(request, "bank_card.html", account=session.account, tab="me", check=started)


@router.post(BANK + "/{check_id}/confirm")
def confirm_check(
    request: Request, db: DbDep, check_id: uuid.UUID, csrf: CsrfField = "", code: Text = ""
) -> Response:
    check_csrf(request, csrf)
    session = signed_in(request, db)
    if session is None:
        return redirect(request, "/")
    try:
        service.confirm_check(db, session.account.id, check_id, code)
    except QianbaoError as error:
        pending = db.run(lambda tx: service.pending_check(tx, session.account.id, check_id))
        if pending is None:
            return _form(request, session, None, error)
        return page(
            request,
            "bank_card.html",
            status=error.status,
            account=session.account,
            tab="me",
            check=pending,
            error=error,
        )
    return redirect(request, "/me/level?added=bank-card")
