"""Server-rendered pages of the consumer app. They call the same services as the API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from qianbao import deps, policy
from qianbao.db import Database
from qianbao.errors import NotFound, QianbaoError
from qianbao.funding import service as funding
from qianbao.i18n import (
    N_,
    Language,
    current_language,
    formats,
    parse_language,
    translate,
    words,
)
from qianbao.identity import agreements, service
from qianbao.identity.phone import PhoneNumber, calling_codes, from_e164, parse_mobile
from qianbao.identity.service import Purpose, SignedIn
from qianbao.money import Money
from qianbao.notify import service as notify
from qianbao.profile import service as personal_info
from qianbao.standing import standing
from qianbao.verification import service as verification
from qianbao.wallet import limits
from qianbao.wallet.payments import service as payments
from qianbao.wallet.transfers import service as transfers
from qianbao.web import after_login
from qianbao.web.pages import ClientDep, CsrfField, DbDep, Page, signed_in
from qianbao.web.render import check_csrf, page, redirect, secure_cookies

router = APIRouter(include_in_schema=False)
DEVICE_COOKIE_SECONDS = 400 * 86400  # the longest a browser keeps a cookie (RFC 6265bis)


def picker(selected: str) -> dict[str, Any]:
    language = current_language()
    rows = sorted(calling_codes(), key=lambda row: row.name(language))
    return {"calling_codes": rows, "selected_country": selected}


def _code_url(phone: PhoneNumber, purpose: Purpose) -> str:
    return "/code?" + urlencode({"phone": phone.e164, "purpose": purpose})


def _phone_from_query(value: str | None) -> PhoneNumber | None:
    if not value or not value.startswith("+"):
        return None
    try:
        return parse_mobile(value, "GB")  # the country is ignored for +numbers
    except QianbaoError:
        return None


def start_web_session(request: Request, response: Response, signed: SignedIn) -> Response:
    """Hand the new session to the browser (and the account's language, if none chosen)."""
    settings = request.app.state.settings
    response.set_cookie(
        deps.SESSION_COOKIE,
        signed.token,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
        path="/",
        max_age=settings.session_absolute_seconds,
    )
    if signed.device_id:
        # The device id outlives sessions: that is what makes a device known.
        response.set_cookie(
            deps.DEVICE_COOKIE,
            signed.device_id,
            httponly=True,
            samesite="lax",
            secure=secure_cookies(request),
            path="/",
            max_age=DEVICE_COOKIE_SECONDS,
        )
    if not deps.language_from_cookie(request):
        response.set_cookie(
            deps.LANGUAGE_COOKIE,
            signed.account.language,
            samesite="lax",
            secure=secure_cookies(request),
            max_age=365 * 86400,
        )
    return response


# --- first page, sign-up and code --------------------------------------------------------


@router.get("/")
def first_page(request: Request, db: DbDep, existing: str | None = None) -> Page:
    if signed_in(request, db):
        return redirect(request, "/home")
    known = _phone_from_query(existing)
    if known is not None:  # sent back from sign-up: the number already has an account
        return page(
            request,
            "index.html",
            number=known.national,
            **picker(known.region),
            notice=N_("This number already has an account. Log in instead."),
        )
    return page(
        request, "index.html", number="", **picker(request.app.state.settings.default_region)
    )


@router.post("/start")
def start(
    request: Request,
    db: DbDep,
    client: ClientDep,
    csrf: CsrfField = "",
    country: Annotated[str, Form()] = "",
    number: Annotated[str, Form()] = "",
) -> Page:
    check_csrf(request, csrf)
    language = current_language()
    try:
        phone = parse_mobile(number, country, language)
        found = service.check_number(db, phone, client)
        if not found.has_account:
            return redirect(request, "/signup?" + urlencode({"phone": phone.e164}))
        try:
            service.send_code(db, phone, "login", client, language)
        except QianbaoError as error:
            # A code sent a moment ago is still good: go and enter it.
            if error.code != "otp.resend_too_soon":
                raise
        return redirect(request, _code_url(phone, "login"))
    except QianbaoError as error:
        return page(
            request,
            "index.html",
            status=error.status,
            error=error,
            number=number,
            **picker(country),
        )


@router.get("/signup")
def signup_page(request: Request, phone: str | None = None) -> Page:
    parsed = _phone_from_query(phone)
    if parsed is None:
        return redirect(request, "/")
    return _signup_form(request, parsed.region, parsed.national, parsed)


def _signup_form(
    request: Request,
    country: str,
    number: str,
    phone: PhoneNumber | None,
    error: QianbaoError | None = None,
) -> HTMLResponse:
    return page(
        request,
        "signup.html",
        status=error.status if error else 200,
        error=error,
        number=number,
        phone=phone,
        agreement_version=agreements.CURRENT_VERSION,
        agreement_title=agreements.TITLE,
        agreement_paragraphs=agreements.PARAGRAPHS,
        **picker(country),
    )


@router.post("/signup")
def signup(
    request: Request,
    db: DbDep,
    client: ClientDep,
    csrf: CsrfField = "",
    country: Annotated[str, Form()] = "",
    number: Annotated[str, Form()] = "",
    agree: Annotated[str, Form()] = "",
    agreement_version: Annotated[str, Form()] = "",
) -> Page:
    check_csrf(request, csrf)
    language = current_language()
    phone: PhoneNumber | None = None
    try:
        phone = parse_mobile(number, country, language)
        version = agreement_version if agree == "yes" else None
        service.send_code(db, phone, "signup", client, language, version)
    except QianbaoError as error:
        if error.code == "account.exists" and phone is not None:
            return redirect(request, "/?" + urlencode({"existing": phone.e164}))
        return _signup_form(request, country, number, phone, error)
    return redirect(request, _code_url(phone, "signup"))


def _purpose(value: str) -> Purpose:
    return "signup" if value == "signup" else "login"


@router.get("/code")
def code_page(
    request: Request, db: DbDep, phone: str | None = None, purpose: str = "login"
) -> Page:
    parsed = _phone_from_query(phone)
    if parsed is None:
        return redirect(request, "/")
    return _code_form(request, db, parsed, _purpose(purpose))


def _code_form(
    request: Request,
    db: Database,
    phone: PhoneNumber,
    purpose: Purpose,
    error: QianbaoError | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    status = db.run(lambda tx: service.code_status(tx, phone, purpose))
    now = db.clock.now()
    resend_in = max(0, int((status.resend_at - now).total_seconds() + 0.999)) if status else 0
    return page(
        request,
        "code.html",
        status=error.status if error else 200,
        error=error,
        notice=notice,
        phone=phone,
        purpose=purpose,
        code_length=request.app.state.settings.sms_code_length,
        has_code=status is not None,
        resend_in=resend_in,
        agreement_version=agreements.CURRENT_VERSION,
    )


@router.post("/code")
def submit_code(
    request: Request,
    db: DbDep,
    client: ClientDep,
    csrf: CsrfField = "",
    phone: Annotated[str, Form()] = "",
    purpose: Annotated[str, Form()] = "login",
    code: Annotated[str, Form()] = "",
) -> Page:
    check_csrf(request, csrf)
    parsed = _phone_from_query(phone)
    if parsed is None:
        return redirect(request, "/")
    chosen = _purpose(purpose)
    try:
        signed = service.sign_in(db, parsed, chosen, code, client, "web")
    except QianbaoError as error:
        return _code_form(request, db, parsed, chosen, error)
    return start_web_session(request, after_login.back(request, "/home"), signed)


@router.post("/code/resend")
def resend_code(
    request: Request,
    db: DbDep,
    client: ClientDep,
    csrf: CsrfField = "",
    phone: Annotated[str, Form()] = "",
    purpose: Annotated[str, Form()] = "login",
    agreement_version: Annotated[str, Form()] = "",
) -> Page:
    check_csrf(request, csrf)
    parsed = _phone_from_query(phone)
    if parsed is None:
        return redirect(request, "/")
    chosen, language = _purpose(purpose), current_language()
    try:
        service.send_code(db, parsed, chosen, client, language, agreement_version or None)
    except QianbaoError as error:
        return _code_form(request, db, parsed, chosen, error)
    return _code_form(request, db, parsed, chosen, notice=N_("A new code is on its way."))


# --- language --------------------------------------------------------------------------


@router.post("/language")
def choose_language(
    request: Request,
    db: DbDep,
    csrf: CsrfField = "",
    language: Annotated[str, Form()] = "en",
    next: Annotated[str, Form()] = "/",
) -> Page:
    check_csrf(request, csrf)
    chosen: Language = parse_language(language) or "en"
    session = signed_in(request, db)
    if session is not None:
        db.run(lambda tx: service.set_language(tx, session.account.id, chosen))
    # Only same-site paths: the form must not become an open redirect.
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    response = redirect(request, target)
    response.set_cookie(
        deps.LANGUAGE_COOKIE,
        chosen,
        samesite="lax",
        secure=secure_cookies(request),
        max_age=365 * 86400,
    )
    return response


# --- signed-in pages -------------------------------------------------------------------


def _signed_in_page(request: Request, db: Database, template: str, tab: str) -> Page:
    session = signed_in(request, db)
    if session is None:
        return redirect(request, "/")
    return page(
        request,
        template,
        account=session.account,
        tab=tab,
        verification_label=service.verification_label(session.account.verification_level),
    )


@dataclass(frozen=True)
class HomeAction:
    key: policy.Action
    label: str  # to translate
    href: str
    icon: str  # a file under /static/icons/
    refusal: str | None  # why the person's level does not allow it (policy.py says)


# Home's row, as a payment app has it; the money codes' pages are wallet/payment_codes'.
_ACTIONS: Final[tuple[tuple[policy.Action, str, str, str], ...]] = (
    ("scan", N_("Scan"), "/wallet/scan", "scan.svg"),
    ("pay", N_("Pay"), "/wallet/payment-code", "pay.svg"),
    ("receive", N_("Receive"), "/wallet/receive-code", "receive.svg"),
    ("transfer", N_("Transfer"), "/wallet/transfer", "transfer.svg"),
    ("tour_pass", N_("Tour Pass"), "/wallet/tour-pass", "tour-pass.svg"),
    ("topup_code", N_("Top-up code"), "/wallet/topup-code", "topup-code.svg"),
)


@dataclass(frozen=True)
class Activity:
    """One line of Home's recent activity: a payment or a transfer."""

    at: datetime
    title: str
    detail: str
    amount: Money
    sign: str  # "−" money out, "+" money in
    href: str


def home_actions(level: str, rights: policy.Rights) -> list[HomeAction]:
    return [
        HomeAction(key, label, href, icon, policy.action_refusal(key, level, rights))
        for key, label, href, icon in _ACTIONS
    ]


def recent_activity(
    orders: list[payments.OrderView], moves: list[transfers.TransferView], count: int
) -> list[Activity]:
    """The last ``count`` payments and transfers, newest first."""
    lines = [
        Activity(
            order.paid_at or order.created_at,
            order.merchant,
            words.trade_status(order.status),
            order.amount,
            "−",
            f"/wallet/payments/{order.id}",
        )
        for order in orders
    ] + [
        Activity(
            move.created_at,
            move.counterparty(),
            words.transfer_state(move.direction),
            move.amount,
            "−" if move.direction == "sent" else "+",
            f"/wallet/transfers/{move.id}",
        )
        for move in moves
    ]
    return sorted(lines, key=lambda line: line.at, reverse=True)[:count]


@router.get("/home")
def home(request: Request, db: DbDep) -> Page:
    """A payment app's first screen: the balance, the actions, what happened lately."""
    session = signed_in(request, db)
    if session is None:
        return redirect(request, "/")
    user_id, count = session.account.id, request.app.state.settings.home_recent_count
    found = db.run(lambda tx: standing(tx, user_id))
    view = db.run(lambda tx: payments.wallet(tx, user_id))
    orders = db.run(lambda tx: payments.user_orders(tx, user_id, count))
    moves = db.run(lambda tx: transfers.user_transfers(tx, user_id, count))
    return page(
        request,
        "home.html",
        account=session.account,
        tab="home",
        wallet=view,
        actions=home_actions(found.level, found.rights),
        activity=recent_activity(orders, moves, count),
        verified=service.is_verified(session.account.verification_level),
    )


@router.get("/me")
def me(request: Request, db: DbDep) -> Page:
    return _signed_in_page(request, db, "me.html", "me")


@router.get("/me/profile")
def profile(request: Request, db: DbDep, saved: str | None = None) -> Page:
    notice = N_("Time zone saved.") if saved == "time_zone" else None
    return _status_page(request, db, "profile.html", notice=notice)


@router.get("/me/certification")
def certification_center(request: Request, db: DbDep) -> Page:
    """The certification center: real-name verification and personal information."""
    return _status_page(request, db, "certification.html")


def _status_page(
    request: Request,
    db: Database,
    template: str,
    notice: str | None = None,
    error: QianbaoError | None = None,
) -> Page:
    session = signed_in(request, db)
    if session is None:
        return redirect(request, "/")
    user_id = session.account.id
    found = db.run(lambda tx: personal_info.completeness(tx, user_id))
    verified = db.run(lambda tx: verification.verified_identity(tx, user_id))
    case = db.run(lambda tx: verification.current_case(tx, user_id))
    level = session.account.verification_level
    tier = db.run(lambda tx: standing(tx, user_id)).tier
    cards = db.run(lambda tx: funding.bank_cards(tx, user_id))
    return page(
        request,
        template,
        status=error.status if error else 200,
        account=session.account,
        tab="me",
        verification_label=service.verification_label(level),
        verification_status="verified" if service.is_verified(level) else "unverified",
        method_label=service.verification_method_label(level),
        verified=verified,
        tier_label=translate(policy.TIER_LABELS[tier]),
        bank_cards=cards,
        case_status=case.status if case is not None else None,
        personal_info_complete=found.complete,
        personal_info_status=personal_info.status_label(found.complete),
        time_zones=formats.time_zone_choices(
            session.account.time_zone, session.account.phone.time_zone()
        ),
        notice=notice,
        error=error,
    )


@router.post("/me/profile/time-zone")
def choose_time_zone(
    request: Request,
    db: DbDep,
    csrf: CsrfField = "",
    time_zone: Annotated[str, Form()] = "",
) -> Page:
    check_csrf(request, csrf)
    session = signed_in(request, db)
    if session is None:
        return redirect(request, "/")
    try:
        db.run(lambda tx: service.set_time_zone(tx, session.account.id, time_zone))
    except QianbaoError as error:
        return _status_page(request, db, "profile.html", error=error)
    return redirect(request, "/me/profile?saved=time_zone")


@router.get("/me/level")
def level_page(request: Request, db: DbDep) -> Page:
    """The account's tier, what it may do, and what the next tier would add."""
    session = signed_in(request, db)
    if session is None:
        return redirect(request, "/")
    found = db.run(lambda tx: standing(tx, session.account.id))
    used = db.run(lambda tx: limits.limit_usage(tx, session.account.id, found.rights))
    upper = found.next_tier
    return page(
        request,
        "level.html",
        account=session.account,
        tab="me",
        standing=found,
        tier_label=translate(policy.TIER_LABELS[found.tier]),
        rights=policy.describe(found.rights, used),
        next_label=translate(policy.TIER_LABELS[upper]) if upper else None,
        next_adds=policy.gains(found.rights, found.next_rights) if found.next_rights else [],
        how_to_reach=policy.how_to_reach(upper) if upper else None,
    )


@router.get("/me/sessions")
def sessions_page(request: Request, db: DbDep) -> Page:
    session = signed_in(request, db)
    if session is None:
        return redirect(request, "/")
    rows = db.run(lambda tx: service.list_sessions(tx, session.account.id, session.session_id))
    return page(
        request,
        "sessions.html",
        account=session.account,
        tab="me",
        sessions=rows,
    )


# ":uuid": "/me/sessions/others/revoke" (log out everywhere else, pages/account.py) is not
# a session id; matched here first, it answered 422.
@router.post("/me/sessions/{session_id:uuid}/revoke")
def revoke_session(
    request: Request, db: DbDep, session_id: uuid.UUID, csrf: CsrfField = ""
) -> Page:
    check_csrf(request, csrf)
    session = signed_in(request, db)
    if session is None:
        return redirect(request, "/")
    db.run(lambda tx: service.revoke_session(tx, session.account.id, session_id))
    return redirect(request, "/" if session_id == session.session_id else "/me/sessions")


@router.post("/logout")
def log_out(request: Request, db: DbDep, csrf: CsrfField = "") -> Page:
    check_csrf(request, csrf)
    session = signed_in(request, db)
    if session is not None:
        db.run(lambda tx: service.revoke_session(tx, session.account.id, session.session_id))
    response = redirect(request, "/")
    response.delete_cookie(deps.SESSION_COOKIE, path="/")
    return response


# --- demo ------------------------------------------------------------------------------


@router.get("/demo/outbox")
def demo_outbox(request: Request, db: DbDep, phone: str | None = None) -> Response:
    """The sandbox's SMS and email, shown only in demo mode."""
    if not request.app.state.settings.demo:
        raise NotFound("not_found", N_("There is nothing at this address."))
    parsed = _phone_from_query(phone)
    messages = db.run(lambda tx: notify.read_outbox(tx, parsed.e164 if parsed else None, 30))
    return page(
        request,
        "outbox.html",
        messages=messages,
        phone=parsed,
        shown=[
            from_e164(m.recipient).international() if m.channel == "sms" else m.recipient
            for m in messages
        ],
        status_labels=OUTBOX_STATUS,
    )


OUTBOX_STATUS = {"pending": N_("waiting"), "sent": N_("delivered"), "failed": N_("failed")}
