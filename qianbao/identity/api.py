"""The JSON API of sign-up, login and sessions. Thin: parse, call the service, shape."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response, status
from starlette.concurrency import run_in_threadpool

from qianbao import deps
from qianbao.db import Database, Tx
from qianbao.errors import NotAuthenticated
from qianbao.i18n import N_, Language, set_language, translate
from qianbao.identity import agreements, schemas, service
from qianbao.identity.phone import PhoneNumber, calling_codes, parse_mobile
from qianbao.identity.service import Client, CurrentSession

router = APIRouter(prefix="/api/v1", tags=["identity"])
DbDep = Annotated[Database, Depends(deps.database)]
ClientDep = Annotated[Client, Depends(deps.client)]
LanguageDep = Annotated[Language, Depends(deps.language)]


async def current_session(
    request: Request,
    db: DbDep,
    authorization: Annotated[str | None, Header()] = None,
) -> CurrentSession:
    """The bearer token's session. Async so that the language it sets reaches the handler:
    a context variable set in a worker thread would stay in that thread."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated("session.missing", N_("Please log in."))
    session = await run_in_threadpool(db.run, lambda tx: service.authenticate(tx, token.strip()))
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
    signed = service.sign_in(db, phone, body.purpose, body.code, client)
    return schemas.SignedInOut(
        token=signed.token,
        expires_at=signed.expires_at,
        is_new_account=signed.is_new_account,
        account=account_out(signed.account),
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
            current=r.is_current,
        )
        for r in rows
    ]


@router.delete("/me/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke(session_id: uuid.UUID, session: SessionDep, db: DbDep) -> Response:
    db.run(lambda tx: service.revoke_session(tx, session.account.id, session_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
