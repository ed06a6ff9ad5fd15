"""Pages of transfers between people: the form (prefilled by a request-money link), the
confirmation with the recipient's masked verified name and the payment password, the
transfer's page for both people, the "Request money" page with a link to share, and the
receive code (收款码): its owner's page with the QR code, and the page a scanner opens to
send money to it."""

from __future__ import annotations

import secrets
import uuid
from typing import Annotated, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from qianbao.db import Database
from qianbao.errors import QianbaoError
from qianbao.i18n import N_
from qianbao.identity import security
from qianbao.identity.service import CurrentSession
from qianbao.standing import standing
from qianbao.wallet.transfers import receive_codes
from qianbao.wallet.transfers import service as transfers
from qianbao.web import after_login
from qianbao.web.drawing import qr_svg
from qianbao.web.pages import CsrfField, DbDep, signed_in, signed_in_or_home
from qianbao.web.render import check_csrf, page, public_url, redirect, this_page

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form()]
NOTICES: Final = {
    "sent": N_("Money sent."),
    "reset": N_("Your receive code is new. Codes shown or printed before no longer work."),
}


@router.get("/wallet/transfer")
def transfer_page(
    request: Request, db: DbDep, to: str = "", amount: str = "", note: str = ""
) -> Response:
    """The transfer form; a request-money link fills it in (``?to=&amount=&note=``).
    Opened signed out, the link is kept through the login and opened again after it."""
    session = signed_in(request, db)
    if session is None:
        return after_login.to_login(request, this_page(request))
    return _form(request, db, session, {"to": to, "amount": amount, "note": note})


def _form(
    request: Request,
    db: Database,
    session: CurrentSession,
    typed: dict[str, str],
    error: QianbaoError | None = None,
) -> Response:
    if receive_codes.is_recipient_code(typed["to"]):  # came from a scanned receive code
        return _receive_code_form(request, db, session, typed, error)
    found = db.run(lambda tx: transfers.allowance(tx, session.account.id))
    return page(
        request,
        "transfer.html",
        status=error.status if error else 200,
        account=session.account,
        tab="wallet",
        allowance=found,
        typed={key: value[:400] for key, value in typed.items()},
        note_limit=db.settings.transfer_note_max_chars,
        error=error,
    )


@router.post("/wallet/transfer/review")
def review(
    request: Request,
    db: DbDep,
    csrf: CsrfField = "",
    to: Text = "",
    amount: Text = "",
    note: Text = "",
) -> Response:
    """Every rule checked; the sender sees who will get the money before confirming."""
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    typed = {"to": to, "amount": amount, "note": note}
    return _confirm(request, db, session, typed, secrets.token_urlsafe(24))


def _confirm(
    request: Request,
    db: Database,
    session: CurrentSession,
    typed: dict[str, str],
    key: str,
    error: QianbaoError | None = None,
) -> Response:
    user_id = session.account.id
    try:
        found = db.run(
            lambda tx: transfers.quote(tx, user_id, typed["to"], typed["amount"], typed["note"])
        )
    except QianbaoError as refusal:
        return _form(request, db, session, typed, refusal)
    has_pin = db.run(lambda tx: security.status(tx, user_id)).has_payment_password
    return page(
        request,
        "transfer_confirm.html",
        status=error.status if error else 200,
        account=session.account,
        tab="wallet",
        quote=found,
        typed=typed,
        key=key,
        has_payment_password=has_pin,
        error=error,
    )


@router.post("/wallet/transfer")
def confirm(
    request: Request,
    db: DbDep,
    csrf: CsrfField = "",
    to: Text = "",
    amount: Text = "",
    note: Text = "",
    key: Text = "",
    recipient: Text = "",
    payment_password: Text = "",
) -> Response:
    """Send, once per confirmation form (its key): a double click or a reload after a
    lost answer shows the same transfer and moves nothing again. The form carries the
    account the sender saw: if the number now names another one, nothing is sent."""
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    try:
        sent = transfers.send(
            db,
            session.account.id,
            to,
            amount,
            note,
            payment_password,
            key,
            expected_recipient=_uuid_or_none(recipient),
        )
    except QianbaoError as error:
        typed = {"to": to, "amount": amount, "note": note}
        return _confirm(request, db, session, typed, key, error)
    return redirect(request, f"/wallet/transfers/{sent.id}?done=sent")


@router.get("/wallet/transfers/{transfer_id}")
def transfer_detail(
    request: Request, db: DbDep, transfer_id: uuid.UUID, done: str | None = None
) -> Response:
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    view = db.run(lambda tx: transfers.user_transfer(tx, session.account.id, transfer_id))
    return page(
        request,
        "transfer_detail.html",
        account=session.account,
        tab="wallet",
        transfer=view,
        notice=NOTICES.get(done or ""),
    )


@router.get("/wallet/request")
def request_money(
    request: Request, db: DbDep, amount: str = "", note: str = "", via: str = "phone"
) -> Response:
    """A link to share: whoever opens it sees the transfer form filled in to pay me."""
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    user_id = session.account.id
    email = db.run(lambda tx: security.status(tx, user_id)).email
    may_receive = db.run(lambda tx: standing(tx, user_id)).rights.receive_transfers
    error: QianbaoError | None = None
    try:
        path = db.run(
            lambda tx: transfers.request_link(
                tx, user_id, amount, note, by_email=via == "email" and email is not None
            )
        )
    except QianbaoError as refusal:
        error = refusal
        path = db.run(lambda tx: transfers.request_link(tx, user_id))
    return page(
        request,
        "transfer_request.html",
        status=error.status if error else 200,
        account=session.account,
        tab="wallet",
        link=public_url(request, path),
        typed={"amount": amount[:32], "note": note[:400], "via": via},
        email=email,
        may_receive=may_receive,
        note_limit=db.settings.transfer_note_max_chars,
        error=error,
    )


def _uuid_or_none(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


@router.get("/wallet/receive-code")
def receive_code(
    request: Request, db: DbDep, amount: str = "", note: str = "", done: str = ""
) -> Response:
    """The person's receive code: a QR others scan to send them money, with the amount
    and note they chose (optional)."""
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    user_id = session.account.id
    may_receive = db.run(lambda tx: standing(tx, user_id)).rights.receive_transfers
    error: QianbaoError | None = None
    try:
        path = db.run(lambda tx: transfers.receive_code_path(tx, user_id, amount, note))
    except QianbaoError as refusal:
        error = refusal
        path = db.run(lambda tx: transfers.receive_code_path(tx, user_id))
    link = public_url(request, path)
    chosen = transfers.parse_amount(amount).format() if amount.strip() and not error else ""
    return page(
        request,
        "receive_code.html",
        status=error.status if error else 200,
        account=session.account,
        tab="wallet",
        link=link,
        qr=qr_svg(link),
        typed={"amount": amount[:32], "note": note[:400]},
        chosen_amount=chosen,
        may_receive=may_receive,
        note_limit=db.settings.transfer_note_max_chars,
        notice=NOTICES.get(done),
        error=error,
    )


@router.post("/wallet/receive-code/reset")
def reset_receive_code(request: Request, db: DbDep, csrf: CsrfField = "") -> Response:
    """A new code: the old one, wherever it was shown or printed, names nobody now."""
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    db.run(lambda tx: receive_codes.reset(tx, session.account.id))
    return redirect(request, "/wallet/receive-code?done=reset")


@router.get(receive_codes.PATH_PREFIX + "{token}")
def pay_receive_code(
    request: Request, db: DbDep, token: str, amount: str = "", note: str = ""
) -> Response:
    """What a scanner sees: "Send money to ** WANG (verified)", the amount and note the
    owner chose filled in; the transfer itself is the usual one (review, password)."""
    session = signed_in(request, db)
    if session is None:
        return after_login.to_login(request, this_page(request))
    typed = {"to": receive_codes.RECIPIENT_PREFIX + token, "amount": amount, "note": note}
    return _receive_code_form(request, db, session, typed)


def _receive_code_form(
    request: Request,
    db: Database,
    session: CurrentSession,
    typed: dict[str, str],
    error: QianbaoError | None = None,
) -> Response:
    """The send page of a receive code: its owner's masked name, the amount and note
    (again with the refusal, when the review refused them)."""
    sender_id = session.account.id
    try:
        owner = db.run(
            lambda tx: transfers.recipient(tx, transfers.recipient_id(tx, sender_id, typed["to"]))
        )
    except QianbaoError as refusal:
        return page(
            request,
            "receive_code_pay.html",
            status=refusal.status,
            account=session.account,
            tab="wallet",
            error=refusal,
        )
    found = db.run(lambda tx: transfers.allowance(tx, sender_id))
    return page(
        request,
        "receive_code_pay.html",
        status=error.status if error else 200,
        account=session.account,
        tab="wallet",
        recipient=owner,
        allowance=found,
        typed={key: value[:400] for key, value in typed.items()},
        note_limit=db.settings.transfer_note_max_chars,
        error=error,
    )
