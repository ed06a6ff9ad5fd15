"""Use cases of merchants' apps and keys: create an app, set its public key (the old one
accepted for an overlap), and the platform's key pair (made on first use, rotated by
publishing the next key before it signs)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from qianbao.db import Tx
from qianbao.errors import Conflict, InvalidInput, NotFound
from qianbao.i18n import N_
from qianbao.openplatform import signing
from qianbao.openplatform.merchants.models import MerchantApp, PlatformKey
from qianbao.sealing import Sealed, keyring
from qianbao.wallet.payments import service as payments

APP_ID_PREFIX: Final = "2026"  # Alipay's app ids are 16 digits, the year's first
PLATFORM_KEY_BITS: Final = 2048


@dataclass(frozen=True)
class AppView:
    app_id: str
    merchant_id: uuid.UUID
    merchant: str
    name: str
    has_key: bool
    previous_key_until: datetime | None


@dataclass(frozen=True)
class PlatformKeyView:
    key_id: str
    state: str
    public_key: str  # PEM
    created_at: datetime


def create_app(tx: Tx, merchant_name: str, app_name: str) -> AppView:
    """A new app of the merchant named ``merchant_name`` (made by ``admin
    create-merchant``)."""
    merchant_id = payments.merchant_by_name(tx, merchant_name.strip())
    if merchant_id is None:
        raise NotFound("merchant.not_found", N_("There is no merchant of that name."))
    name = app_name.strip()
    if not 1 <= len(name) <= 128:
        raise InvalidInput("merchant_app.name", N_("An app's name has 1 to 128 characters."))
    app_id = APP_ID_PREFIX + "".join(secrets.choice("0123456789") for _ in range(12))
    row = MerchantApp(app_id=app_id, merchant_id=merchant_id, name=name, created_at=tx.now())
    tx.session.add(row)
    tx.session.flush()
    return _app_view(tx, row)


def set_app_key(tx: Tx, app_id: str, public_key: str) -> AppView:
    """Install the app's new public key; requests signed with the one it replaces are
    accepted for ``gateway_app_key_overlap_seconds`` more."""
    row = _app(tx, app_id, lock=True)
    try:
        key = signing.load_public_key(public_key, tx.settings.gateway_min_key_bits)
    except signing.KeyRefused:
        raise InvalidInput(
            "merchant_app.key",
            N_("The key must be an RSA public key of {bits} bits or more (PEM or Base64)."),
            {"bits": tx.settings.gateway_min_key_bits},
        ) from None
    pem = signing.public_pem(key)
    if row.public_key is not None and row.public_key != pem:
        row.previous_public_key = row.public_key
        overlap = timedelta(seconds=tx.settings.gateway_app_key_overlap_seconds)
        row.previous_key_until = tx.now() + overlap
    row.public_key = pem
    row.key_uploaded_at = tx.now()
    return _app_view(tx, row)


@dataclass(frozen=True)
class AppKeyView:
    """An app's uploaded key as the portal shows it."""

    app_id: str
    name: str
    public_key: str | None  # PEM
    fingerprint: str | None  # SHA-256 of the key's DER, as pairs of hex digits
    uploaded_at: datetime | None
    previous_key_until: datetime | None


def apps_of(tx: Tx, merchant_id: uuid.UUID) -> list[AppKeyView]:
    """The merchant's apps with their keys, oldest first."""
    rows = tx.session.scalars(
        select(MerchantApp)
        .where(MerchantApp.merchant_id == merchant_id)
        .order_by(MerchantApp.created_at, MerchantApp.app_id)
    )
    return [
        AppKeyView(
            row.app_id,
            row.name,
            row.public_key,
            signing.fingerprint(row.public_key) if row.public_key else None,
            row.key_uploaded_at,
            row.previous_key_until,
        )
        for row in rows
    ]


def set_merchant_app_key(tx: Tx, merchant_id: uuid.UUID, app_id: str, public_key: str) -> AppView:
    """The portal's key upload: only an app of the signed-in merchant (another's is the
    same 404 as an unknown one)."""
    row = tx.session.get(MerchantApp, app_id[:32])
    if row is None or row.merchant_id != merchant_id:
        raise NotFound("merchant_app.not_found", N_("There is no app with this app_id."))
    return set_app_key(tx, app_id, public_key)


def app(tx: Tx, app_id: str) -> AppView:
    return _app_view(tx, _app(tx, app_id))


def find_app(tx: Tx, app_id: str) -> AppView | None:
    row = tx.session.get(MerchantApp, app_id) if app_id else None
    return None if row is None else _app_view(tx, row)


def app_verification_keys(tx: Tx, app_id: str) -> list[rsa.RSAPublicKey]:
    """The keys a request of this app may be signed with now: its key, and the one it
    replaced while the overlap lasts."""
    row = tx.session.get(MerchantApp, app_id)
    if row is None:
        return []
    pems = [row.public_key] if row.public_key else []
    until = row.previous_key_until
    if row.previous_public_key and until is not None and until > tx.now():
        pems.append(row.previous_public_key)
    return [_public_key(pem) for pem in pems]


_PUBLIC_KEYS: dict[str, rsa.RSAPublicKey] = {}  # parsed once per process, by their PEM


def _public_key(pem: str) -> rsa.RSAPublicKey:
    found = _PUBLIC_KEYS.get(pem)
    if found is None:
        if len(_PUBLIC_KEYS) > 10_000:  # apps' keys change rarely; never grow unbounded
            _PUBLIC_KEYS.clear()
        found = _PUBLIC_KEYS[pem] = signing.load_public_key(pem, 0)
    return found


def _app(tx: Tx, app_id: str, *, lock: bool = False) -> MerchantApp:
    row = tx.session.get(MerchantApp, app_id, with_for_update=lock)
    if row is None:
        raise NotFound("merchant_app.not_found", N_("There is no app with this app_id."))
    return row


def _app_view(tx: Tx, row: MerchantApp) -> AppView:
    merchant = payments.merchant_of(tx, row.merchant_id)
    return AppView(
        app_id=row.app_id,
        merchant_id=row.merchant_id,
        merchant=merchant.name,
        name=row.name,
        has_key=row.public_key is not None,
        previous_key_until=row.previous_key_until,
    )


# --- the platform's key pair ------------------------------------------------------------


def _sealing_context(key_id: str) -> bytes:
    return f"platform-key:{key_id}".encode()


def _new_key(tx: Tx, state: str) -> PlatformKey:
    private = signing.new_private_key(max(PLATFORM_KEY_BITS, tx.settings.gateway_min_key_bits))
    key_id = "pk" + secrets.token_hex(8)
    sealed = keyring(tx.settings).seal(signing.private_pem(private), _sealing_context(key_id))
    row = PlatformKey(
        key_id=key_id,
        state=state,
        public_key=signing.public_pem(private.public_key()),
        sealed_private_key=sealed.encode(),
        created_at=tx.now(),
        current_since=tx.now() if state == "current" else None,
    )
    tx.session.add(row)
    tx.session.flush()
    return row


def _current_row(tx: Tx) -> PlatformKey:
    row = tx.session.scalar(select(PlatformKey).where(PlatformKey.state == "current"))
    return row if row is not None else _new_key(tx, "current")


_PRIVATE_KEYS: dict[str, rsa.RSAPrivateKey] = {}  # unsealed once per process


def platform_signer(tx: Tx) -> rsa.RSAPrivateKey:
    """The private key answers and notifications are signed with (made on first use)."""
    row = _current_row(tx)
    found = _PRIVATE_KEYS.get(row.key_id)
    if found is None:
        sealed = keyring(tx.settings).open(
            Sealed.decode(row.sealed_private_key), _sealing_context(row.key_id)
        )
        found = _PRIVATE_KEYS[row.key_id] = signing.load_private_key(sealed)
    return found


def platform_keys(tx: Tx) -> list[PlatformKeyView]:
    """The public keys shops install: the current one, and the next one once published."""
    _current_row(tx)
    rows = tx.session.scalars(
        select(PlatformKey)
        .where(PlatformKey.state.in_(("current", "next")))
        .order_by(PlatformKey.state)
    )
    return [PlatformKeyView(r.key_id, r.state, r.public_key, r.created_at) for r in rows]


def publish_next_platform_key(tx: Tx) -> PlatformKeyView:
    """Step one of a rotation: a new key pair, published for shops to install; answers
    are still signed with the current one until ``activate_next_platform_key``."""
    _current_row(tx)
    if tx.session.scalar(select(PlatformKey).where(PlatformKey.state == "next")) is not None:
        raise Conflict("platform_key.next_exists", N_("A next key is already published."))
    row = _new_key(tx, "next")
    return PlatformKeyView(row.key_id, row.state, row.public_key, row.created_at)


def activate_next_platform_key(tx: Tx) -> PlatformKeyView:
    """Step two: the published key signs from now on; the old one is retired."""
    following = tx.session.scalar(
        select(PlatformKey).where(PlatformKey.state == "next").with_for_update()
    )
    if following is None:
        raise Conflict("platform_key.no_next", N_("Publish the next key first."))
    for row in tx.session.scalars(
        select(PlatformKey).where(PlatformKey.state == "current").with_for_update()
    ):
        row.state, row.retired_at = "retired", tx.now()
    tx.session.flush()
    following.state, following.current_since = "current", tx.now()
    return PlatformKeyView(
        following.key_id, following.state, following.public_key, following.created_at
    )
