"""Settings -> Account and Security pages, and login by password. Same services as the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from qianbao.db import Database
from qianbao.errors import QianbaoError
from qianbao.i18n import N_, current_language
from qianbao.identity import devices, new_country, security
from qianbao.identity.new_country import SmsCodeRequired
from qianbao.identity.phone import parse_mobile
from qianbao.identity.service import CurrentSession
from qianbao.pages.home import picker, start_web_session
from qianbao.verification import service as verification
from qianbao.web import after_login
from qianbao.web.pages import ClientDep, CsrfField, DbDep, signed_in
from qianbao.web.render import check_csrf, page, redirect

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form()]

# The forms of this section, by address; "Send code" returns to the one it came from.
FORMS = {
    "/me/security": "security.html",
    "/me/security/login-password": "login_password.html",
    "/me/security/payment-password": "payment_password.html",
    "/me/security/email": "email.html",
}


def _security_page(
    request: Request,
    db: Database,
    session: CurrentSession,
    template: str,
    error: QianbaoError | None = None,
    notice: str | None = None,
    **context: Any,
) -> Response:
    found = db.run(lambda tx: security.status(tx, session.account.id))
    return page(
        request,
        template,
        status=error.status if error else 200,
        error=error,
        notice=notice,
        account=session.account,
        tab="me",
        security=found,
        **context,
    )


def _show(request: Request, db: Database, template: str) -> Response:
    session = signed_in(request, db)
    if session is None:
        return redirect(request, "/")
    return _security_page(request, db, session, template)


def _submit(
    request: Request,
    db: Database,
    csrf: str,
    form: str,
    change: Callable[[CurrentSession], object],
    done: str,
    then: str = "security.html",
    **context: Any,
) -> Response:
    """A form's change: done, the page ``then`` says so; refused, the form says why."""
    check_csrf(request, csrf)
    session = signed_in(request, db)
    if session is None:
        return redirect(request, "/")
    try:
        change(session)
    except QianbaoError as error:
        return _security_page(request, db, session, form, error=error, **context)
    return _security_page(request, db, session, then, notice=done)


@router.get("/me/settings")
def settings_page(request: Request, db: DbDep) -> Response:
    session = signed_in(request, db)
    if session is None:
        return redirect(request, "/")
    return page(request, "settings.html", account=session.account, tab="me")


@router.get("/me/security")
def security_page(request: Request, db: DbDep) -> Response:
    return _show(request, db, "security.html")


@router.get("/me/security/login-password")
def login_password_page(request: Request, db: DbDep) -> Response:
    return _show(request, db, "login_password.html")


@router.get("/me/security/payment-password")
def payment_password_page(request: Request, db: DbDep) -> Response:
    return _show(request, db, "payment_password.html")


@router.get("/me/security/email")
def email_page(request: Request, db: DbDep) -> Response:
    return _show(request, db, "email.html")


@router.post("/me/security/code")
def send_code(
    request: Request, db: DbDep, client: ClientDep, csrf: CsrfField = "", back: Text = ""
) -> Response:
    """The "Send code" button of every form: an SMS code to one's own number."""
    form = FORMS.get(back, "security.html")
    return _submit(
        request,
        db,
        csrf,
        form,
        lambda session: security.send_security_code(
            db, session.account.id, client, current_language()
        ),
        done=N_("A new code is on its way."),
        then=form,
    )


@router.post("/me/security/login-password")
def set_login_password(
    request: Request,
    db: DbDep,
    csrf: CsrfField = "",
    new_password: Text = "",
    current_password: Text = "",
    sms_code: Text = "",
) -> Response:
    return _submit(
        request,
        db,
        csrf,
        "login_password.html",
        lambda session: security.set_login_password(
            db,
            session.account.id,
            session.session_id,
            new_password,
            current_password=current_password or None,
            sms_code=sms_code or None,
        ),
        done=N_("Login password saved. Other devices were logged out."),
    )


@router.post("/me/security/payment-password")
def set_payment_password(
    request: Request,
    db: DbDep,
    csrf: CsrfField = "",
    new_password: Text = "",
    confirm_password: Text = "",
    current_password: Text = "",
    sms_code: Text = "",
) -> Response:
    def change(session: CurrentSession) -> None:
        if new_password != confirm_password:
            raise QianbaoError(
                "paypw.confirm_mismatch",
                N_("The two payment passwords are not the same."),
                status=422,
            )
        user_id = session.account.id
        security.set_payment_password(
            db,
            user_id,
            new_password,
            current_pin=current_password or None,
            sms_code=sms_code or None,
            birth_date=db.run(lambda tx: verification.verified_birth_date(tx, user_id)),
        )

    return _submit(
        request, db, csrf, "payment_password.html", change, N_("Payment password saved.")
    )


@router.post("/me/security/email")
def start_email(
    request: Request, db: DbDep, csrf: CsrfField = "", email: Text = "", sms_code: Text = ""
) -> Response:
    return _submit(
        request,
        db,
        csrf,
        "email.html",
        lambda session: security.start_email_change(
            db, session.account.id, email, current_language(), sms_code or None
        ),
        done=N_("We sent a code to your email address."),
        then="email.html",
        email=email,
    )


@router.post("/me/security/email/confirm")
def confirm_email(request: Request, db: DbDep, csrf: CsrfField = "", code: Text = "") -> Response:
    return _submit(
        request,
        db,
        csrf,
        "email.html",
        lambda session: db.run(lambda tx: security.confirm_email(tx, session.account.id, code)),
        done=N_("Email address confirmed. You can log in with it."),
    )


@router.post("/me/sessions/others/revoke")
def end_other_sessions(request: Request, db: DbDep, csrf: CsrfField = "") -> Response:
    check_csrf(request, csrf)
    session = signed_in(request, db)
    if session is None:
        return redirect(request, "/")
    db.run(lambda tx: security.end_other_sessions(tx, session.account.id, session.session_id))
    return redirect(request, "/me/sessions")


# --- login by password ----------------------------------------------------------------


@router.get("/login/password")
def password_login_page(request: Request) -> Response:
    return page(
        request,
        "password_login.html",
        login="",
        **picker(request.app.state.settings.default_region),
    )


@router.post("/login/password")
def password_login(
    request: Request,
    db: DbDep,
    client: ClientDep,
    csrf: CsrfField = "",
    login: Text = "",
    country: Text = "",
    password: Text = "",
) -> Response:
    check_csrf(request, csrf)
    try:
        phone = None if "@" in login else parse_mobile(login, country, current_language())
        outcome = security.sign_in_with_password(db, login, phone, password, client, "web")
    except QianbaoError as error:
        refused = page(
            request,
            "password_login.html",
            status=error.status,
            error=error,
            login=login,
            **picker(country),
        )
        if error.retry_after:
            refused.headers["Retry-After"] = str(error.retry_after)
        return refused
    if isinstance(outcome, SmsCodeRequired):
        return _new_country_form(request, outcome.challenge, outcome.sent.phone.masked())
    return start_web_session(request, after_login.back(request, "/home"), outcome)


# --- a password sign-in from a new country: the SMS code too ---------------------------


def _new_country_form(
    request: Request,
    challenge: str,
    phone: str,
    error: QianbaoError | None = None,
    notice: str | None = None,
) -> Response:
    return page(
        request,
        "password_login_code.html",
        status=error.status if error else 200,
        error=error,
        notice=notice,
        challenge=challenge,
        phone=phone,
    )


@router.post("/login/password/code")
def confirm_password_login(
    request: Request,
    db: DbDep,
    client: ClientDep,
    csrf: CsrfField = "",
    challenge: Text = "",
    code: Text = "",
) -> Response:
    check_csrf(request, csrf)
    try:
        signed = new_country.confirm(db, challenge, code, client, "web")
    except QianbaoError as error:
        if error.code.startswith("login.challenge"):
            return _password_form_again(request, error)
        masked = db.run(lambda tx: new_country.masked_phone(tx, challenge))
        return _new_country_form(request, challenge, masked, error)
    return start_web_session(request, after_login.back(request, "/home"), signed)


@router.post("/login/password/code/resend")
def resend_password_login_code(
    request: Request, db: DbDep, client: ClientDep, csrf: CsrfField = "", challenge: Text = ""
) -> Response:
    check_csrf(request, csrf)
    try:
        required = new_country.resend(db, challenge, client)
    except QianbaoError as error:
        if error.code.startswith("login.challenge"):
            return _password_form_again(request, error)
        masked = db.run(lambda tx: new_country.masked_phone(tx, challenge))
        return _new_country_form(request, challenge, masked, error)
    masked = required.sent.phone.masked()
    return _new_country_form(request, challenge, masked, notice=N_("A new code is on its way."))


def _password_form_again(request: Request, error: QianbaoError) -> Response:
    settings = request.app.state.settings
    return page(
        request,
        "password_login.html",
        status=error.status,
        error=error,
        login="",
        **picker(settings.default_region),
    )


# --- the new-device notice's link: end that one session, no login needed --------------


@router.get(devices.END_LINK_PATH + "{token}")
def end_session_page(request: Request, db: DbDep, token: str) -> Response:
    """What the link names, and a button: a GET changes nothing, since mail scanners and
    link previews follow links."""
    linked = db.run(lambda tx: devices.linked_session(tx, token, current_language()))
    return page(
        request,
        "end_session.html",
        status=200 if linked else 404,
        linked=linked,
        action=devices.END_LINK_PATH + token,
    )


@router.post(devices.END_LINK_PATH + "{token}")
def end_session_by_link(request: Request, db: DbDep, token: str, csrf: CsrfField = "") -> Response:
    check_csrf(request, csrf)
    db.run(lambda tx: devices.end_by_link(tx, token))
    return end_session_page(request, db, token)
