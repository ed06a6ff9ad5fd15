"""The JSON API of sign-up, login and sessions. Thin: parse, call the service, shape."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, Security, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from qianbao import deps
from qianbao.db import Database, Tx
from qianbao.errors import NotAuthenticated, NotFound
from qianbao.i18n import N_, Language, set_language, translate
from qianbao.identity import (
    agreements,
    devices,
    new_country,
    passwords,
    schemas,
    security,
    service,
)
from qianbao.identity.new_country import SmsCodeRequired
from qianbao.identity.phone import PhoneNumber, calling_codes, parse_mobile
from qianbao.identity.service import Client, CurrentSession

router = APIRouter(prefix="/api/v1", tags=["identity"])
DbDep = Annotated[Database, Depends(deps.database)]
ClientDep = Annotated[Client, Depends(deps.client)]
LanguageDep = Annotated[Language, Depends(deps.language)]
# The OpenAPI document's security scheme (the Authorize button at /docs) comes from this:
# every operation that depends on current_session lists it. Not auto_error: a missing
# token is our own 401 problem body, not FastAPI's.
BEARER = HTTPBearer(
    scheme_name="bearer",
    bearerFormat="opaque session token",
    description="The `token` from POST /api/v1/auth/sessions (or password-sessions).",
    auto_error=False,
)


async def current_session(
    request: Request,
    db: DbDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> CurrentSession:
    """The bearer token's session. Async so that the language it sets reaches the handler:
    a context variable set in a worker thread would stay in that thread."""
    session = deps.remembered_session(request)  # the gate (qianbao.gate) found it
    if session is None:
        token = credentials.credentials.strip() if credentials else ""
        if not token:
            raise NotAuthenticated("session.missing", N_("Please log in."))
        session = await run_in_threadpool(db.run, lambda tx: service.authenticate(tx, token))
    if not deps.language_is_explicit(request):
        set_language(session.account.language)
    return session


SessionDep = Annotated[CurrentSession, Depends(current_session)]


def _phone(body: schemas.PhoneIn, language: Language) -> PhoneNumber:
    return parse_mobile(body.number, body.country, language)


def account_out(account: service.Account) -> schemas.AccountOut:
    return schemas.AccountOut(
        id=account.id,
        phone=account.phone.international(),
        language=account.language,
        time_zone=account.time_zone,
        verification=schemas.VerificationOut(
            level=account.verification_level,
            label=service.verification_label(account.verification_level),
        ),
        created_at=account.created_at,
    )


@router.get("/calling-codes", response_model=list[schemas.CallingCodeOut])
def list_calling_codes(language: LanguageDep) -> list[schemas.CallingCodeOut]:
    """Every ITU calling code, with country names in English and Chinese."""
    rows = sorted(calling_codes(), key=lambda row: row.name(language))
    return [
        schemas.CallingCodeOut(
            key=row.key,
            region=row.region,
            code=row.code,
            name=row.name(language),
            name_en=row.name_en,
            name_zh=row.name_zh,
        )
        for row in rows
    ]


@router.get("/agreement", response_model=schemas.AgreementOut)
def current_agreement() -> schemas.AgreementOut:
    return schemas.AgreementOut(
        version=agreements.CURRENT_VERSION,
        title=translate(agreements.TITLE),
        paragraphs=[translate(p) for p in agreements.PARAGRAPHS],
    )


@router.post("/auth/number-check", response_model=schemas.NumberCheckOut)
def check_number(
    body: schemas.PhoneIn, db: DbDep, client: ClientDep, language: LanguageDep
) -> schemas.NumberCheckOut:
    """Whether the number goes to sign-up or to login."""
    phone = _phone(body, language)
    found = service.check_number(db, phone, client)
    return schemas.NumberCheckOut(
        e164=phone.e164,
        international=phone.international(),
        has_account=found.has_account,
        next="login" if found.has_account else "signup",
    )


@router.post(
    "/auth/sms-codes", response_model=schemas.CodeSentOut, status_code=status.HTTP_201_CREATED
)
def send_code(
    body: schemas.CodeRequestIn, db: DbDep, client: ClientDep, language: LanguageDep
) -> schemas.CodeSentOut:
    """Send an SMS code (sign-up needs the accepted agreement's version)."""
    phone = _phone(body, language)
    sent = service.send_code(db, phone, body.purpose, client, language, body.agreement_version)
    return schemas.CodeSentOut(
        international=phone.international(),
        purpose=sent.purpose,
        code_length=sent.code_length,
        expires_at=sent.expires_at,
        resend_at=sent.resend_at,
    )


@router.post(
    "/auth/sessions", response_model=schemas.SignedInOut, status_code=status.HTTP_201_CREATED
)
def sign_in(
    body: schemas.CodeVerifyIn, db: DbDep, client: ClientDep, language: LanguageDep
) -> schemas.SignedInOut:
    """Exchange a correct SMS code for a bearer token (creating the account on sign-up)."""
    phone = _phone(body, language)
    signed = service.sign_in(db, phone, body.purpose, body.code, _on_device(client, body))
    return signed_in_out(signed)


def _on_device(client: Client, body: schemas.CodeVerifyIn | schemas.PasswordLoginIn) -> Client:
    return replace(client, device_id=body.device_id or client.device_id)


def signed_in_out(signed: service.SignedIn) -> schemas.SignedInOut:
    return schemas.SignedInOut(
        token=signed.token,
        expires_at=signed.expires_at,
        is_new_account=signed.is_new_account,
        account=account_out(signed.account),
        device_id=signed.device_id,
    )


@router.delete("/auth/session", status_code=status.HTTP_204_NO_CONTENT)
def log_out(session: SessionDep, db: DbDep) -> Response:
    db.run(lambda tx: service.revoke_session(tx, session.account.id, session.session_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=schemas.AccountOut)
def me(session: SessionDep) -> schemas.AccountOut:
    return account_out(session.account)


@router.put("/me/language", response_model=schemas.AccountOut)
def change_language(body: schemas.LanguageIn, session: SessionDep, db: DbDep) -> schemas.AccountOut:
    def change(tx: Tx) -> service.Account:
        service.set_language(tx, session.account.id, body.language)
        return service.get_account(tx, session.account.id)

    account = db.run(change)
    set_language(body.language)
    return account_out(account)


@router.put("/me/time-zone", response_model=schemas.AccountOut)
def change_time_zone(
    body: schemas.TimeZoneIn, session: SessionDep, db: DbDep
) -> schemas.AccountOut:
    """The zone whose clock the pages show times in; the API itself answers in UTC."""

    def change(tx: Tx) -> service.Account:
        service.set_time_zone(tx, session.account.id, body.time_zone)
        return service.get_account(tx, session.account.id)

    return account_out(db.run(change))


@router.get("/me/sessions", response_model=list[schemas.SessionOut])
def my_sessions(session: SessionDep, db: DbDep) -> list[schemas.SessionOut]:
    rows = db.run(lambda tx: service.list_sessions(tx, session.account.id, session.session_id))
    return [
        schemas.SessionOut(
            id=r.id,
            kind=r.kind,
            created_at=r.created_at,
            last_seen_at=r.last_seen_at,
            ip=r.ip,
            user_agent=r.user_agent,
            device_name=r.device_name,
            country=r.country,
            place=r.place,
            current=r.is_current,
        )
        for r in rows
    ]


@router.delete("/me/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke(session_id: uuid.UUID, session: SessionDep, db: DbDep) -> Response:
    db.run(lambda tx: service.revoke_session(tx, session.account.id, session_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- account and security ------------------------------------------------------------

STRENGTH_LABELS = (N_("Very weak"), N_("Weak"), N_("Fair"), N_("Strong"), N_("Very strong"))


def _login_phone(login: str, country: str, language: Language) -> PhoneNumber | None:
    """A login name is an email when it has an @, else a mobile number."""
    if "@" in login:
        return None
    return parse_mobile(login, country, language)


@router.get("/me/security", response_model=schemas.SecurityStatusOut)
def security_status(session: SessionDep, db: DbDep) -> schemas.SecurityStatusOut:
    found = db.run(lambda tx: security.status(tx, session.account.id))
    return schemas.SecurityStatusOut(
        phone=found.phone.international(),
        email=found.email,
        email_pending=found.email_pending,
        has_login_password=found.has_login_password,
        login_password_changed_at=found.login_password_changed_at,
        has_payment_password=found.has_payment_password,
        payment_locked_until=found.payment_locked_until,
    )


@router.post(
    "/me/security-codes", response_model=schemas.CodeSentOut, status_code=status.HTTP_201_CREATED
)
def send_security_code(
    session: SessionDep, db: DbDep, client: ClientDep, language: LanguageDep
) -> schemas.CodeSentOut:
    """An SMS code to your own number, to confirm a password or email change."""
    sent = security.send_security_code(db, session.account.id, client, language)
    return schemas.CodeSentOut(
        international=sent.phone.international(),
        purpose=sent.purpose,
        code_length=sent.code_length,
        expires_at=sent.expires_at,
        resend_at=sent.resend_at,
    )


@router.put("/me/login-password", status_code=status.HTTP_204_NO_CONTENT)
def set_login_password(body: schemas.LoginPasswordIn, session: SessionDep, db: DbDep) -> Response:
    """Set or change the login password (proof: the current password or an SMS code).
    Every other session ends."""
    security.set_login_password(
        db,
        session.account.id,
        session.session_id,
        body.new_password,
        current_password=body.current_password,
        sms_code=body.sms_code,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/password-strength", response_model=schemas.StrengthOut)
def password_strength(body: schemas.StrengthIn) -> schemas.StrengthOut:
    """zxcvbn's estimate, for the strength meter (nothing is stored or logged)."""
    score = passwords.strength(body.password, [])
    return schemas.StrengthOut(score=score, label=translate(STRENGTH_LABELS[score]))


@router.post(
    "/auth/password-sessions",
    response_model=schemas.SignedInOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        202: {
            "model": schemas.SmsCodeRequiredOut,
            "description": "The password was right, but the sign-in comes from a new "
            "country: an SMS code was sent; POST it to /api/v1/auth/password-sessions/sms.",
        }
    },
)
def sign_in_with_password(
    body: schemas.PasswordLoginIn, db: DbDep, client: ClientDep, language: LanguageDep
) -> schemas.SignedInOut | JSONResponse:
    """Log in by mobile number or email plus the login password. From a country none of
    the account's earlier sign-ins came from, the answer is 202 `sms_code_required`."""
    phone = _login_phone(body.login, body.country, language)
    outcome = security.sign_in_with_password(
        db, body.login, phone, body.password, _on_device(client, body)
    )
    if isinstance(outcome, SmsCodeRequired):
        shape = _sms_required_out(outcome)
        return JSONResponse(shape.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)
    return signed_in_out(outcome)


_NEW_COUNTRY = N_(
    "You are signing in from a country you have not signed in from before. Enter the code "
    "we sent to {phone}."
)


def _sms_required_out(required: SmsCodeRequired) -> schemas.SmsCodeRequiredOut:
    masked = required.sent.phone.masked()
    return schemas.SmsCodeRequiredOut(
        message=translate(_NEW_COUNTRY, {"phone": masked}),
        challenge=required.challenge,
        phone=masked,
        code_length=required.sent.code_length,
        code_expires_at=required.sent.expires_at,
        resend_at=required.sent.resend_at,
        expires_at=required.expires_at,
    )


_CHALLENGE_ENDED = (
    "The sign-in's challenge ran out, was forged or died with a password change "
    "(`login.challenge_invalid`): sign in with the password again."
)


@router.post(
    "/auth/password-sessions/sms",
    response_model=schemas.SignedInOut,
    responses={401: {"description": _CHALLENGE_ENDED}},
    status_code=status.HTTP_201_CREATED,
)
def confirm_password_sign_in(
    body: schemas.ChallengeCodeIn, db: DbDep, client: ClientDep
) -> schemas.SignedInOut:
    """The second step of a password sign-in from a new country: the challenge of the
    202 answer and the SMS code. A wrong code counts as every login code does."""
    device = replace(client, device_id=body.device_id or client.device_id)
    return signed_in_out(new_country.confirm(db, body.challenge, body.code, device))


@router.post(
    "/auth/password-sessions/sms-codes",
    response_model=schemas.SmsCodeRequiredOut,
    responses={401: {"description": _CHALLENGE_ENDED}},
    status_code=status.HTTP_201_CREATED,
)
def resend_password_sign_in_code(
    body: schemas.ChallengeIn, db: DbDep, client: ClientDep
) -> schemas.SmsCodeRequiredOut:
    """A new SMS code for a password sign-in from a new country (resend limits apply)."""
    return _sms_required_out(new_country.resend(db, body.challenge, client))


@router.post(
    "/auth/session-ends",
    response_model=schemas.EndLinkOut,
    responses={404: {"description": "No session has this link (`session_link.invalid`)."}},
)
def end_session_by_link(body: schemas.EndLinkIn, db: DbDep) -> schemas.EndLinkOut:
    """End the one session a new-device notice's link names. Needs no login: the link's
    signature is the proof, and it can end nothing but that session."""
    ended = db.run(lambda tx: devices.end_by_link(tx, body.token))
    if ended is None:
        raise NotFound("session_link.invalid", devices.INVALID_LINK)
    return schemas.EndLinkOut(ended=ended)


@router.put("/me/payment-password", status_code=status.HTTP_204_NO_CONTENT)
def set_payment_password(
    body: schemas.PaymentPasswordIn, session: SessionDep, db: DbDep
) -> Response:
    """Set (with an SMS code), change (with the current one) or reset a forgotten payment
    password (with an SMS code)."""
    security.set_payment_password(
        db,
        session.account.id,
        body.new_password,
        current_pin=body.current_password,
        sms_code=body.sms_code,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/me/payment-password/check", status_code=status.HTTP_204_NO_CONTENT)
def check_payment_password(
    body: schemas.PaymentPasswordCheckIn, session: SessionDep, db: DbDep
) -> Response:
    """Check the payment password as a payment would (wrong entries count toward the lock)."""
    security.verify_payment_password(db, session.account.id, body.password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/me/email", response_model=schemas.SecurityStatusOut, status_code=status.HTTP_202_ACCEPTED
)
def start_email_change(
    body: schemas.EmailIn, session: SessionDep, db: DbDep, language: LanguageDep
) -> schemas.SecurityStatusOut:
    """Mail a code to the address (replacing a proven address needs an SMS code too)."""
    security.start_email_change(db, session.account.id, body.email, language, body.sms_code)
    return security_status(session, db)


@router.post("/me/email/confirm", response_model=schemas.SecurityStatusOut)
def confirm_email(
    body: schemas.EmailCodeIn, session: SessionDep, db: DbDep
) -> schemas.SecurityStatusOut:
    db.run(lambda tx: security.confirm_email(tx, session.account.id, body.code))
    return security_status(session, db)


@router.delete("/me/sessions", response_model=schemas.EndedOut)
def end_other_sessions(session: SessionDep, db: DbDep) -> schemas.EndedOut:
    """Log out everywhere else."""
    ended = db.run(
        lambda tx: security.end_other_sessions(tx, session.account.id, session.session_id)
    )
    return schemas.EndedOut(ended=ended)
