"""The shop's use cases: accounts, the Qianbao link, and the restriction it lifts.

A shop account is "restricted until verified": it may look, not order wholesale. Linking
a verified Qianbao lifts the restriction; the link is checked by a refresh at Qianbao, and
a refresh refused with invalid_grant (the person revoked the shop) ends it.
HTTP calls to Qianbao are made between the database transactions, never inside one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from marketplace import store
from marketplace.catalog import product
from marketplace.i18n import N_
from marketplace.qianbao_client import (
    LINK_SCOPE,
    SIGN_IN_SCOPE,
    LinkEnded,
    Login,
    LoginRefused,
    ProviderUnavailable,
    QianbaoClient,
)
from marketplace.settings import Settings

EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# scrypt's cost: 16 MiB of memory and about 50 ms per hash.
SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1

END_REVOKED: Final = "revoked"
PURPOSE_LINK: Final = "link"
PURPOSE_SIGN_IN: Final = "signin"


class ShopError(Exception):
    """A refusal shown to the person: a stable code and an English message to translate."""

    def __init__(self, code: str, message: str, params: Mapping[str, object] | None = None):
        super().__init__(code)
        self.code = code
        self.message = message
        self.params = dict(params or {})


# --- passwords and accounts ---


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    derived = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${derived.hex()}"


def password_matches(password: str, stored: str) -> bool:
    _, n, r, p, salt, expected = stored.split("$")
    derived = hashlib.scrypt(
        password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p)
    )
    return hmac.compare_digest(derived.hex(), expected)


def sign_up(db: sqlite3.Connection, settings: Settings, email: str, password: str, now: int) -> int:
    email = email.strip().lower()
    if not EMAIL.match(email) or len(email) > 254:
        raise ShopError("account.bad_email", N_("Enter a valid email address."))
    if len(password) < settings.min_password_length:
        raise ShopError(
            "account.short_password",
            N_("Choose a password of at least {length} characters."),
            {"length": settings.min_password_length},
        )
    if store.account_by_email(db, email) is not None:
        raise ShopError("account.exists", N_("An account with this email exists. Sign in."))
    return store.insert_account(db, email, hash_password(password), now)


def sign_in(db: sqlite3.Connection, email: str, password: str) -> int:
    account = store.account_by_email(db, email.strip().lower())
    if account is None or not password_matches(password, account.password_hash):
        raise ShopError("account.wrong_password", N_("Wrong email or password."))
    return account.id


def open_session(
    db: sqlite3.Connection, settings: Settings, account_id: int | None, now: int
) -> str:
    """A new session (its cookie value returned); signing in always starts a new one."""
    token = secrets.token_urlsafe(32)
    store.forget_sessions_before(db, now)
    store.insert_session(
        db, token, account_id, secrets.token_urlsafe(24), now + settings.session_ttl_seconds
    )
    return token


# --- the restriction ---


def may_order(link: store.Link | None) -> bool:
    """Wholesale orders need a verified identity: an active Qianbao link that carries one."""
    return link is not None and link.verified


def parse_quantity(text: str) -> int:
    if not text.strip().isdigit() or not 0 < int(text) <= 1_000_000:
        raise ShopError("order.bad_quantity", N_("Enter a quantity in whole pieces."))
    return int(text)


def place_order(
    db: sqlite3.Connection, account_id: int, product_id: str, quantity: int, now: int
) -> int:
    item = product(product_id)
    if item is None:
        raise ShopError("order.no_product", N_("This product is not sold here."))
    if not may_order(store.link_of(db, account_id)):
        raise ShopError(
            "order.restricted",
            N_("Your account is restricted until verified. Link your Qianbao to order."),
        )
    if quantity < item.minimum_quantity:
        raise ShopError(
            "order.below_minimum",
            N_("The minimum order is {quantity}."),
            {"quantity": item.minimum_quantity},
        )
    return store.insert_order(db, account_id, item.id, quantity, item.price_fen * quantity, now)


# --- linking and signing in with Qianbao ---


def start_login(
    db: sqlite3.Connection,
    client: QianbaoClient,
    session_token: str,
    purpose: str,
    account_id: int | None,
    now: int,
) -> str:
    """Where to send the browser; the state, nonce and PKCE verifier wait in the database,
    tied to this browser's session."""
    try:
        if purpose == PURPOSE_LINK:
            start = client.start(LINK_SCOPE, with_identity=True)
        else:
            start = client.start(SIGN_IN_SCOPE, with_identity=False)
    except ProviderUnavailable as error:
        raise unavailable() from error
    store.insert_pending(
        db,
        store.PendingLogin(
            state=start.state,
            session_hash=store.digest(session_token),
            purpose=purpose,
            nonce=start.nonce,
            code_verifier=start.code_verifier,
            account_id=account_id,
            created_at=now,
        ),
    )
    return start.url


@dataclass(frozen=True)
class Finished:
    purpose: str
    account_id: int


def take_pending_login(
    db: sqlite3.Connection, settings: Settings, state: str, session_token: str, now: int
) -> store.PendingLogin:
    """The login the callback's state names: once, from the browser that started it,
    within its time."""
    store.forget_pending_before(db, now - settings.pending_login_ttl_seconds)
    pending = store.take_pending(db, state) if state else None
    if pending is None or not hmac.compare_digest(
        pending.session_hash, store.digest(session_token)
    ):
        raise ShopError(
            "login.unknown_state",
            N_("This sign-in was not started here or has expired. Start again."),
        )
    return pending


def exchange(
    client: QianbaoClient, pending: store.PendingLogin, response: Mapping[str, str]
) -> Login:
    """The callback, its state matched: checked and exchanged at Qianbao over HTTP."""
    try:
        return client.finish(response, pending.nonce, pending.code_verifier)
    except ProviderUnavailable as error:
        raise unavailable() from error
    except LoginRefused as error:
        if error.code == "provider.access_denied":
            raise ShopError("login.cancelled", N_("You cancelled at Qianbao.")) from error
        raise ShopError(
            "login.refused",
            N_("Qianbao's answer failed a security check ({code}). Start again."),
            {"code": error.code},
        ) from error


def complete_login(
    db: sqlite3.Connection, pending: store.PendingLogin, login: Login, now: int
) -> Finished:
    """Store the link, or find the account that a Qianbao sign-in belongs to."""
    if pending.purpose == PURPOSE_LINK:
        assert pending.account_id is not None
        link_account(db, pending.account_id, login, now)
        return Finished(PURPOSE_LINK, pending.account_id)
    link = store.link_by_subject(db, login.subject)
    if link is None or not link.active:
        raise ShopError(
            "login.not_linked",
            N_(
                "No shop account is linked to this Qianbao. Sign in with your password and"
                " link it from your account page."
            ),
        )
    return Finished(PURPOSE_SIGN_IN, link.account_id)


def link_account(db: sqlite3.Connection, account_id: int, login: Login, now: int) -> None:
    if login.identity is None:
        raise ShopError(
            "link.not_verified",
            N_("Qianbao shared no verified identity. Verify your Qianbao account, then link."),
        )
    if login.refresh_token is None:
        raise ShopError("link.no_refresh_token", N_("Qianbao gave no lasting link. Try again."))
    other = store.link_by_subject(db, login.subject)
    if other is not None and other.active and other.account_id != account_id:
        raise ShopError(
            "link.other_account", N_("This Qianbao is already linked to another shop account.")
        )
    identity = login.identity
    store.save_link(
        db,
        store.Link(
            account_id=account_id,
            subject=login.subject,
            refresh_token=login.refresh_token,
            verified_name=identity.name,
            nationality=",".join(identity.nationalities),
            route=identity.route,
            trust_framework=identity.trust_framework,
            linked_at=now,
            checked_at=now,
            ended_at=None,
            end_reason=None,
        ),
    )


def link_due(link: store.Link | None, settings: Settings, now: int) -> bool:
    """A visit to the account page checks an active link at most every N seconds."""
    return (
        link is not None
        and link.active
        and now - link.checked_at >= settings.link_check_interval_seconds
    )


# Qianbao rotates refresh tokens and treats a reused one as theft (the whole link dies):
# two checks of one link must never run at once. The demo shop is one process, so a lock
# in it is enough; a shop with several processes would take a row lock instead.
REFRESH_LOCK: Final = threading.Lock()


def check_link(client: QianbaoClient, link: store.Link, now: int) -> store.Link:
    """The link after a refresh at Qianbao: rotated token and fresh claims, or ended.
    Unreachable Qianbao leaves it as it was (the caller shows that). The caller holds
    REFRESH_LOCK from reading the link to saving what this returns."""
    assert link.refresh_token is not None
    try:
        refreshed = client.refresh(link.refresh_token, link.subject)
    except LinkEnded:
        return replace(link, refresh_token=None, ended_at=now, end_reason=END_REVOKED)
    except (ProviderUnavailable, LoginRefused) as error:
        raise unavailable() from error
    identity = refreshed.identity
    return replace(
        link,
        refresh_token=refreshed.refresh_token,
        checked_at=now,
        verified_name=None if identity is None else identity.name,
        nationality=None if identity is None else ",".join(identity.nationalities),
        route=None if identity is None else identity.route,
        trust_framework=None if identity is None else identity.trust_framework,
    )


def unavailable() -> ShopError:
    return ShopError("qianbao.unavailable", N_("Qianbao cannot be reached now. Try again later."))
