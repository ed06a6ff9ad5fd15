"""The people of a merchant who sign in to the merchant portal, and shops' applications.

A merchant user belongs to one merchant and signs in with an email or a username and a
password (argon2id, the login-password rules; wrong passwords slow further tries for
that login down, doubling each time, as for staff). An operator creates one
(``qianbao admin create-merchant-user``, or by approving a shop's application in the
back office); either way the first password is made here and shown once.

Sessions are of two doors, as staff's: the portal's cookie and the merchant API's bearer
token, kept under keyed hashes of different labels, apart from persons' and staff's. The
sign-in and session rules are staff's too, kept once in identity/password_sessions.py.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import urlsplit

from sqlalchemy import select

from qianbao import audit
from qianbao.db import Database, Tx
from qianbao.errors import Conflict, InvalidInput, NotFound
from qianbao.i18n import N_
from qianbao.identity import password_sessions, passwords
from qianbao.openplatform.merchants.models import (
    MerchantApplication,
    MerchantSession,
    MerchantUser,
)
from qianbao.settings import Settings
from qianbao.text_guard import check_shown_text
from qianbao.wallet.payments import service as payments

LOGIN_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9._+@-]{2,253}$")
# Which door a session token opens: the portal's cookie or the merchant API's bearer.
Door = password_sessions.Door


@dataclass(frozen=True)
class MerchantUserView:
    id: uuid.UUID
    merchant_id: uuid.UUID
    merchant: str
    login: str


@dataclass(frozen=True)
class SignedIn:
    token: str
    expires_at: datetime
    user: MerchantUserView


@dataclass(frozen=True)
class NewUser:
    """A merchant user just made, with the first password, shown this once."""

    user: MerchantUserView
    password: str


@dataclass(frozen=True)
class ApplicationView:
    id: uuid.UUID
    shop_name: str
    contact_name: str
    email: str
    website: str
    status: str
    created_at: datetime
    decided_at: datetime | None


# --- merchant users ------------------------------------------------------------------


def check_login(text: str) -> str:
    login = text.strip().lower()
    if not LOGIN_PATTERN.match(login):
        raise InvalidInput(
            "merchant_user.login",
            N_("Use an email address or a username of 3 to 254 letters, digits or . _ + @ -."),
        )
    return login


def initial_password() -> str:
    """A first password nobody could guess (the user may keep it in a password manager)."""
    return secrets.token_urlsafe(15)


def create_user(
    db: Database, merchant_name: str, login: str, *, created_by: uuid.UUID | None = None
) -> NewUser:
    """A new portal user of the merchant named ``merchant_name`` (the command line's, or an
    administrator's in the back office, which is in the audit log)."""
    login = check_login(login)
    password = initial_password()
    password_hash = passwords.hash_secret(db.settings, password)

    def insert(tx: Tx) -> NewUser:
        merchant_id = payments.merchant_by_name(tx, merchant_name.strip())
        if merchant_id is None:
            raise NotFound("merchant.not_found", N_("There is no merchant of that name."))
        user = _insert_user(tx, merchant_id, login, password_hash)
        actor = audit.staff_actor(created_by) if created_by else "cli"
        audit.record(tx, actor, "merchant_user.created", f"merchant_user:{user.id}")
        return NewUser(user, password)

    return db.run(insert)


def _insert_user(
    tx: Tx, merchant_id: uuid.UUID, login: str, password_hash: str
) -> MerchantUserView:
    if tx.session.scalar(select(MerchantUser.id).where(MerchantUser.login == login)):
        raise Conflict("merchant_user.exists", N_("This email or username is taken."))
    row = MerchantUser(
        merchant_id=merchant_id, login=login, password_hash=password_hash, created_at=tx.now()
    )
    tx.session.add(row)
    tx.session.flush()
    return _user_view(tx, row)


def users_of(tx: Tx, merchant_id: uuid.UUID) -> list[MerchantUserView]:
    rows = tx.session.scalars(
        select(MerchantUser)
        .where(MerchantUser.merchant_id == merchant_id)
        .order_by(MerchantUser.login)
    )
    return [_user_view(tx, row) for row in rows]


def open_session(db: Database, login: str, password: str, door: Door) -> SignedIn:
    """A new session for a right login and password; both doors share one throttle per
    login, and a wrong guess is counted before the password is checked."""
    opened = _SESSIONS.open(db, login, password, door, _user_view)
    return SignedIn(opened.token, opened.expires_at, opened.who)


def authenticate(tx: Tx, token: str, door: Door = "page") -> MerchantUserView | None:
    """The merchant user a session token of that door belongs to, while it lives."""
    user = _SESSIONS.authenticate(tx, token, door)
    return None if user is None else _user_view(tx, user)


def sign_out(tx: Tx, token: str, door: Door = "page") -> None:
    _SESSIONS.sign_out(tx, token, door)


def _login_or_none(text: str) -> str | None:
    try:
        return check_login(text)
    except InvalidInput:
        return None


def _throttle_key(login: str) -> str:
    return "pw:merchant:" + hashlib.sha256(login.encode()).hexdigest()[:40]


def _lifetimes(settings: Settings, door: Door) -> tuple[timedelta, timedelta]:
    """(idle, absolute) for a session of that door."""
    if door == "page":
        return (
            timedelta(seconds=settings.merchant_session_idle_seconds),
            timedelta(seconds=settings.merchant_session_seconds),
        )
    life = timedelta(seconds=settings.merchant_api_token_seconds)
    return life, life


_SESSIONS: Final = password_sessions.PasswordSessions(
    account=MerchantUser,
    login=MerchantUser.login,
    session=MerchantSession,
    owner=MerchantSession.merchant_user_id,
    labels={"page": "merchant-session", "api": "merchant-api-token"},
    lifetimes=_lifetimes,
    normalize=_login_or_none,
    throttle_key=_throttle_key,
    login_failed_code="merchant_user.login_failed",
    login_failed=N_("Wrong email, username or password."),
    throttled_code="merchant_user.throttled",
)


def _user_view(tx: Tx, row: MerchantUser) -> MerchantUserView:
    merchant = payments.merchant_of(tx, row.merchant_id)
    return MerchantUserView(row.id, row.merchant_id, merchant.name, row.login)


# --- shops' applications ------------------------------------------------------------------


def _field(name: str, text: str, longest: int) -> str:
    value = check_shown_text(name, text.strip())
    if not 1 <= len(value) <= longest:
        raise InvalidInput(
            f"merchant_application.{name}",
            N_("Fill in {field} (at most {longest} characters)."),
            {"field": name, "longest": longest},
            details={"field": name},
        )
    return value


def _website(text: str) -> str:
    value = text.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(value) > 256:
        raise InvalidInput(
            "merchant_application.website",
            N_("The website must be an http or https address."),
            details={"field": "website"},
        )
    return value


def apply(tx: Tx, shop_name: str, contact_name: str, email: str, website: str) -> ApplicationView:
    """A shop asks for a merchant account; staff decide in the back office."""
    row = MerchantApplication(
        shop_name=_field("shop_name", shop_name, 128),
        contact_name=_field("contact_name", contact_name, 128),
        email=check_login(email),
        website=_website(website),
        status="pending",
        created_at=tx.now(),
    )
    if "@" not in row.email:
        raise InvalidInput(
            "merchant_application.email",
            N_("Give an email address we can write to."),
            details={"field": "email"},
        )
    tx.session.add(row)
    tx.session.flush()
    audit.record(tx, "shop", "merchant_application.received", f"merchant_application:{row.id}")
    return _application_view(row)


def applications(tx: Tx, status: str = "pending", limit: int = 100) -> list[ApplicationView]:
    rows = tx.session.scalars(
        select(MerchantApplication)
        .where(MerchantApplication.status == status)
        .order_by(MerchantApplication.created_at.desc())
        .limit(limit)
    )
    return [_application_view(row) for row in rows]


def approve(db: Database, staff_id: uuid.UUID, application_id: uuid.UUID) -> NewUser:
    """The merchant and its first user (the applicant's email), in one transaction; the
    first password is returned to be shown once to the operator who hands it over."""
    password = initial_password()
    password_hash = passwords.hash_secret(db.settings, password)

    def run(tx: Tx) -> NewUser:
        row = _pending(tx, application_id)
        merchant_id = payments.create_merchant(tx, row.shop_name)
        user = _insert_user(tx, merchant_id, row.email, password_hash)
        row.status, row.decided_at, row.decided_by = "approved", tx.now(), staff_id
        row.merchant_id = merchant_id
        actor = audit.staff_actor(staff_id)
        subject = f"merchant_application:{row.id}"
        audit.record(tx, actor, "merchant_application.approved", subject)
        audit.record(tx, actor, "merchant_user.created", f"merchant_user:{user.id}")
        return NewUser(user, password)

    return db.run(run)


def reject(tx: Tx, staff_id: uuid.UUID, application_id: uuid.UUID) -> ApplicationView:
    row = _pending(tx, application_id)
    row.status, row.decided_at, row.decided_by = "rejected", tx.now(), staff_id
    audit.record(
        tx,
        audit.staff_actor(staff_id),
        "merchant_application.rejected",
        f"merchant_application:{row.id}",
    )
    return _application_view(row)


def _pending(tx: Tx, application_id: uuid.UUID) -> MerchantApplication:
    row = tx.session.get(MerchantApplication, application_id, with_for_update=True)
    if row is None:
        raise NotFound("merchant_application.not_found", N_("There is no such application."))
    if row.status != "pending":
        raise Conflict(
            "merchant_application.decided", N_("This application has already been decided.")
        )
    return row


def _application_view(row: MerchantApplication) -> ApplicationView:
    return ApplicationView(
        row.id,
        row.shop_name,
        row.contact_name,
        row.email,
        row.website,
        row.status,
        row.created_at,
        row.decided_at,
    )
