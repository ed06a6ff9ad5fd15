"""Use cases of Log in with Qianbao: shops, signing keys, consents, codes and tokens,
and the claims a shop receives.

The protocol itself (request checks, PKCE, client authentication, grant flows) is
Authlib's, wired in ``server.py``; this module is the storage behind it and the rules
that are Qianbao's: codes and refresh tokens used once (a second use revokes what they
issued), pairwise subjects, consent per shop, claims that stop when the verification
does.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import or_, select, update

from qianbao import audit
from qianbao.db import Tx
from qianbao.errors import Conflict, InvalidInput, NotFound
from qianbao.funding import service as funding
from qianbao.i18n import N_, current_language
from qianbao.identity import security as identity_security
from qianbao.identity import service as identity
from qianbao.identity.codes import keyed_hash, same_hash
from qianbao.openplatform.oidc import claims as verified
from qianbao.openplatform.oidc.models import (
    OidcAuthorizationCode,
    OidcClient,
    OidcConsent,
    OidcSeenAssertion,
    OidcSigningKey,
    OidcToken,
)
from qianbao.sealing import Sealed, keyring
from qianbao.text_guard import check_shown_text
from qianbao.verification import service as verification

OPENID: Final = "openid"
# openid alone is the silent sign-in (Alipay's auth_base): the subject only, no consent.
CONSENTED_SCOPES: Final = ("profile", "phone", "email", "identity")
SCOPES: Final = (OPENID, *CONSENTED_SCOPES)
SECRET_METHODS: Final = ("client_secret_basic", "client_secret_post")
DEMO_CLIENT_ID: Final = "demo-marketplace"
NAME_LENGTH: Final = 128  # the columns' sizes
URL_LENGTH: Final = 512
_CLIENT_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{2,63}")


# --- shops (clients) -----------------------------------------------------------------------


@dataclass(frozen=True)
class ShopView:
    client_id: str
    name_en: str
    name_zh: str
    logo_url: str
    redirect_uris: tuple[str, ...]
    auth_method: str
    created_at: datetime
    disabled: bool

    @property
    def name(self) -> str:
        """The name in the current language."""
        return self.name_zh if current_language() == "zh_Hans" else self.name_en


def shop_view(row: OidcClient) -> ShopView:
    return ShopView(
        row.client_id,
        row.name_en,
        row.name_zh,
        row.logo_url,
        tuple(json.loads(row.redirect_uris)),
        row.auth_method,
        row.created_at,
        row.disabled_at is not None,
    )


def register_shop(
    tx: Tx,
    *,
    name_en: str,
    name_zh: str,
    redirect_uris: list[str],
    auth_method: str = "client_secret_basic",
    logo_url: str = "",
    jwks: str | None = None,
    client_id: str | None = None,
    secret: str | None = None,
    registered_by: uuid.UUID | None = None,
) -> tuple[ShopView, str | None]:
    """A new shop; for a secret client, the secret (shown once: only its hash is kept)."""
    client_id = client_id or f"shop-{secrets.token_hex(8)}"
    _check_shop(client_id, name_en, name_zh, redirect_uris, auth_method, logo_url)
    if tx.session.get(OidcClient, client_id) is not None:
        raise Conflict("shop.exists", N_("A shop with this client id exists already."))
    row = OidcClient(
        client_id=client_id,
        name_en=name_en.strip(),
        name_zh=name_zh.strip(),
        logo_url=logo_url.strip(),
        redirect_uris=json.dumps(redirect_uris),
        auth_method=auth_method,
        created_at=tx.now(),
    )
    if auth_method == "private_key_jwt":
        row.jwks = _checked_jwks(jwks)
        secret = None
    else:
        secret = secret or secrets.token_urlsafe(32)
        row.secret_hash = _secret_hash(tx, client_id, secret)
    tx.session.add(row)
    tx.session.flush()
    actor = audit.staff_actor(registered_by) if registered_by else "operator:cli"
    audit.record(tx, actor, "shop.registered", f"shop:{client_id}", details={"auth": auth_method})
    return shop_view(row), secret


def _check_shop(
    client_id: str,
    name_en: str,
    name_zh: str,
    redirect_uris: list[str],
    auth_method: str,
    logo_url: str,
) -> None:
    if not _CLIENT_ID.fullmatch(client_id):
        raise InvalidInput(
            "shop.client_id", N_("A client id is 3 to 64 letters, digits, dots or dashes.")
        )
    if not name_en.strip() or not name_zh.strip():
        raise InvalidInput("shop.name", N_("Give the shop's name in English and in Chinese."))
    if max(len(name_en), len(name_zh)) > NAME_LENGTH:
        raise InvalidInput(
            "shop.name_length",
            N_("A shop's name has at most {limit} characters."),
            {"limit": NAME_LENGTH},
        )
    for name, text in (("name_en", name_en), ("name_zh", name_zh), ("logo_url", logo_url)):
        check_shown_text(name, text)  # the consent page shows them to people
    if auth_method not in ("client_secret_basic", "private_key_jwt"):
        raise InvalidInput(
            "shop.auth_method", N_("The shop authenticates by client secret or private_key_jwt.")
        )
    if not redirect_uris or not all(
        _absolute_url(uri) and len(uri) <= URL_LENGTH for uri in redirect_uris
    ):
        raise InvalidInput(
            "shop.redirect_uri",
            N_("Give at least one redirect URI, each a full http or https address."),
        )
    if logo_url.strip() and not (_absolute_url(logo_url.strip()) and len(logo_url) <= URL_LENGTH):
        raise InvalidInput("shop.logo_url", N_("The logo must be a full http or https address."))


def _absolute_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:  # "http://[" and the like
        return False
    if any(ord(character) < 0x21 for character in text):
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.fragment


def _checked_jwks(text: str | None) -> str:
    try:
        keys = KeySet.import_key_set(json.loads(text or ""))
    except (ValueError, TypeError, KeyError) as error:
        raise InvalidInput(
            "shop.jwks", N_("A private_key_jwt shop needs its public keys as a JWKS.")
        ) from error
    if not keys.keys or any(key.is_private for key in keys.keys):
        raise InvalidInput(
            "shop.jwks", N_("A private_key_jwt shop needs its public keys as a JWKS.")
        )
    return json.dumps(keys.as_dict(private=False))


def _secret_hash(tx: Tx, client_id: str, secret: str) -> str:
    return keyed_hash(tx.settings.hmac_key(), "oidc-client-secret", client_id, secret)


def check_secret(tx: Tx, row: OidcClient, secret: str) -> bool:
    if row.secret_hash is None:
        return False
    return same_hash(row.secret_hash, _secret_hash(tx, row.client_id, secret))


def find_shop(tx: Tx, client_id: str) -> OidcClient | None:
    """The shop's row (for the protocol layer), None when unknown or disabled."""
    row = tx.session.get(OidcClient, client_id)
    return None if row is None or row.disabled_at is not None else row


def shops(tx: Tx) -> list[ShopView]:
    rows = tx.session.scalars(select(OidcClient).order_by(OidcClient.created_at))
    return [shop_view(row) for row in rows]


def seed_demo_shop(tx: Tx) -> ShopView:
    """The demo marketplace (examples/marketplace), its secret from the settings."""
    row = tx.session.get(OidcClient, DEMO_CLIENT_ID)
    settings = tx.settings
    if row is not None:  # keep it in step with the settings on every demo start
        row.secret_hash = _secret_hash(tx, DEMO_CLIENT_ID, settings.demo_marketplace_client_secret)
        row.redirect_uris = json.dumps([settings.demo_marketplace_redirect_uri])
        return shop_view(row)
    shop, _ = register_shop(
        tx,
        client_id=DEMO_CLIENT_ID,
        name_en="Wholesale Market (demo)",
        name_zh="批发市场（演示）",
        redirect_uris=[settings.demo_marketplace_redirect_uri],
        secret=settings.demo_marketplace_client_secret,
    )
    return shop


def public_keys(row: OidcClient) -> KeySet:
    """A private_key_jwt shop's registered public keys."""
    return KeySet.import_key_set(json.loads(row.jwks or '{"keys": []}'))


def remember_assertion(tx: Tx, client_id: str, jti: str, expires_at: datetime) -> bool:
    """A client assertion's jti, kept until it expires: False when seen before (a replay)."""
    digest = keyed_hash(tx.settings.hmac_key(), "oidc-assertion", client_id, jti)
    if tx.session.get(OidcSeenAssertion, digest) is not None:
        return False
    tx.session.add(OidcSeenAssertion(jti_hash=digest, expires_at=expires_at))
    tx.session.flush()
    return True


# --- signing keys ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private_jwk: dict[str, Any]


def _key_context(kid: str) -> bytes:
    return b"oidc:signing-key:" + kid.encode()


def _new_key(tx: Tx) -> OidcSigningKey:
    alg = tx.settings.oidc_signing_alg
    key: ECKey | RSAKey = (
        ECKey.generate_key("P-256", auto_kid=True)
        if alg == "ES256"
        else RSAKey.generate_key(2048, auto_kid=True)
    )
    assert key.kid is not None
    sealed = keyring(tx.settings).seal(
        json.dumps(key.as_dict(private=True)).encode(), _key_context(key.kid)
    )
    public = {**key.as_dict(private=False), "use": "sig", "alg": alg}
    row = OidcSigningKey(
        kid=key.kid,
        alg=alg,
        private_sealed=sealed.encode(),
        public_jwk=json.dumps(public),
        created_at=tx.now(),
    )
    tx.session.add(row)
    tx.session.flush()
    return row


def signing_key(tx: Tx) -> SigningKey:
    """The key new ID tokens are signed with (made on first use)."""
    row = tx.session.scalar(
        select(OidcSigningKey)
        .where(OidcSigningKey.retired_at.is_(None))
        .order_by(OidcSigningKey.created_at.desc())
        .limit(1)
    )
    row = row or _new_key(tx)
    opened = keyring(tx.settings).open(Sealed.decode(row.private_sealed), _key_context(row.kid))
    return SigningKey(row.kid, row.alg, json.loads(opened))


def rotate_signing_key(tx: Tx) -> tuple[str, list[str]]:
    """A new current key; the old ones retire but stay published until every ID token
    they signed has expired. Returns the new kid and the retired ones."""
    now = tx.now()
    keep = timedelta(seconds=tx.settings.oidc_id_token_seconds)
    retired = list(
        tx.session.scalars(
            select(OidcSigningKey).where(OidcSigningKey.retired_at.is_(None)).with_for_update()
        )
    )
    for row in retired:
        row.retired_at, row.publish_until = now, now + keep
    return _new_key(tx).kid, [row.kid for row in retired]


def published_keys(tx: Tx) -> dict[str, Any]:
    """The JWKS: the current key and every retired key a live token may still name."""
    rows = tx.session.scalars(
        select(OidcSigningKey)
        .where(or_(OidcSigningKey.retired_at.is_(None), OidcSigningKey.publish_until > tx.now()))
        .order_by(OidcSigningKey.created_at.desc())
    )
    keys = [json.loads(row.public_jwk) for row in rows]
    if not keys:
        signing_key(tx)  # the first visitor makes the first key
        return published_keys(tx)
    return {"keys": keys}


# --- subjects and claims -------------------------------------------------------------------


def subject(tx: Tx, client_id: str, user_id: uuid.UUID) -> str:
    """The pairwise subject: stable for one shop, unrelated between two shops."""
    return keyed_hash(tx.settings.hmac_key(), "oidc-pairwise-sub", client_id, str(user_id))


def identity_facts(tx: Tx, user_id: uuid.UUID) -> verified.IdentityFacts | None:
    """What the person's current verification established; None when unverified (or
    the verification was revoked)."""
    level = identity.verification_level(tx, user_id)
    if level in ("passport_face", "passport_chip"):
        evidence = verification.verified_evidence(tx, user_id)
        if evidence is None:
            return None
        document = evidence.document
        return verified.IdentityFacts(
            route=evidence.method,
            verified_at=evidence.verified_at,
            given_name=document.given_names,
            family_name=document.surname,
            birthdate=document.birth_date,
            nationality=document.nationality,
            issuing_state=document.issuing_state,
            expiry=document.expiry_date,
            reviewed=evidence.reviewed,
        )
    if level == "bank_card":
        cards = funding.bank_cards(tx, user_id)
        if not cards:
            return None
        return verified.IdentityFacts("bank_card", cards[0].bound_at, bank_name=cards[0].bank_name)
    return None


def claims_for(
    tx: Tx,
    user_id: uuid.UUID,
    client_id: str,
    scope: str,
    claims_request: dict[str, Any],
    target: str,
) -> dict[str, Any]:
    """The claims of the userinfo response or the ID token: the subject, the scopes'
    claims (userinfo only), and verified_claims as requested and consented."""
    scopes = set(scope.split())
    result: dict[str, Any] = {"sub": subject(tx, client_id, user_id)}
    if target == "userinfo":
        result.update(_scope_claims(tx, user_id, scopes))
    if "identity" in scopes:
        consent = _consent(tx, user_id, client_id)
        consented = frozenset(consent.verified_claims.split()) if consent else frozenset()
        facts = identity_facts(tx, user_id)
        record = None if facts is None else verified.available_record(facts, tx.now().date())
        chosen = verified.select(record, claims_request, target, consented, tx.now())
        if chosen is not None:
            result["verified_claims"] = chosen
    return result


def _scope_claims(tx: Tx, user_id: uuid.UUID, scopes: set[str]) -> dict[str, Any]:
    account = identity.get_account(tx, user_id)
    found: dict[str, Any] = {}
    if "profile" in scopes:
        found["nickname"] = account.phone.masked()
        found["locale"] = "zh-Hans" if account.language == "zh_Hans" else "en"
    if "phone" in scopes:
        found["phone_number"] = account.phone.e164
        found["phone_number_verified"] = True  # every account signed up by SMS code
    if "email" in scopes:
        email = identity_security.status(tx, user_id).email  # only a proven address is kept
        if email is not None:
            found["email"], found["email_verified"] = email, True
    return found


# --- consent ---------------------------------------------------------------------------------


def _consent(tx: Tx, user_id: uuid.UUID, client_id: str) -> OidcConsent | None:
    row = tx.session.scalar(
        select(OidcConsent).where(
            OidcConsent.user_id == user_id, OidcConsent.client_id == client_id
        )
    )
    return None if row is None or row.revoked_at is not None else row


def needs_consent(
    tx: Tx, user_id: uuid.UUID, client_id: str, scope: str, claim_names: frozenset[str]
) -> bool:
    """Whether the person must be asked: openid alone never; otherwise unless an earlier
    consent covers every scope and every verified claim asked now."""
    wanted = set(scope.split()) & set(CONSENTED_SCOPES)
    if "identity" not in wanted:
        claim_names = frozenset()
    if not wanted:
        return False
    consent = _consent(tx, user_id, client_id)
    if consent is None:
        return True
    return not (
        wanted <= set(consent.scopes.split())
        and claim_names <= set(consent.verified_claims.split())
    )


def record_consent(
    tx: Tx, user_id: uuid.UUID, client_id: str, scope: str, claim_names: frozenset[str]
) -> None:
    """The person allowed it: kept, added to what they allowed before."""
    scopes = set(scope.split()) & set(CONSENTED_SCOPES)
    names = claim_names if "identity" in scopes else frozenset()
    row = tx.session.scalar(
        select(OidcConsent)
        .where(OidcConsent.user_id == user_id, OidcConsent.client_id == client_id)
        .with_for_update()
    )
    now = tx.now()
    if row is None:
        row = OidcConsent(user_id=user_id, client_id=client_id, scopes="", granted_at=now)
        tx.session.add(row)
    elif row.revoked_at is not None:  # a fresh start after a revocation
        row.scopes, row.verified_claims, row.granted_at, row.revoked_at = "", "", now, None
    row.scopes = " ".join(sorted(scopes | set(row.scopes.split())))
    row.verified_claims = " ".join(sorted(names | set((row.verified_claims or "").split())))
    row.updated_at = now
    tx.session.flush()


@dataclass(frozen=True)
class AuthorizedApp:
    shop: ShopView
    scopes: tuple[str, ...]
    verified_claims: tuple[str, ...]
    since: datetime
    updated_at: datetime


def authorized_apps(tx: Tx, user_id: uuid.UUID) -> list[AuthorizedApp]:
    """The shops the person allowed more than a silent sign-in, and what."""
    rows = tx.session.execute(
        select(OidcConsent, OidcClient)
        .join(OidcClient, OidcClient.client_id == OidcConsent.client_id)
        .where(OidcConsent.user_id == user_id, OidcConsent.revoked_at.is_(None))
        .order_by(OidcConsent.granted_at)
    )
    return [
        AuthorizedApp(
            shop_view(client),
            tuple(consent.scopes.split()),
            tuple(consent.verified_claims.split()),
            consent.granted_at,
            consent.updated_at,
        )
        for consent, client in rows
    ]


def revoke_app(tx: Tx, user_id: uuid.UUID, client_id: str) -> None:
    """The shop loses what the person allowed, and every token it holds dies now."""
    consent = _consent(tx, user_id, client_id)
    if consent is None:
        raise NotFound("app.not_found", N_("This shop has no access to your account."))
    consent.revoked_at = tx.now()
    tx.session.execute(
        update(OidcToken)
        .where(
            OidcToken.user_id == user_id,
            OidcToken.client_id == client_id,
            OidcToken.revoked_at.is_(None),
        )
        .values(revoked_at=tx.now())
    )


# --- codes ----------------------------------------------------------------------------------


def _digest(tx: Tx, purpose: str, value: str) -> str:
    return keyed_hash(tx.settings.hmac_key(), purpose, value)


@dataclass(frozen=True)
class CodeRequest:
    client_id: str
    user_id: uuid.UUID
    redirect_uri: str
    scope: str
    nonce: str
    claims: str
    code_challenge: str
    code_challenge_method: str
    auth_time: datetime


def save_code(tx: Tx, code: str, request: CodeRequest) -> None:
    now = tx.now()
    tx.session.add(
        OidcAuthorizationCode(
            code_hash=_digest(tx, "oidc-code", code),
            client_id=request.client_id,
            user_id=request.user_id,
            redirect_uri=request.redirect_uri,
            scope=request.scope,
            nonce=request.nonce,
            claims=request.claims,
            code_challenge=request.code_challenge,
            code_challenge_method=request.code_challenge_method,
            auth_time=request.auth_time,
            created_at=now,
            expires_at=now + timedelta(seconds=tx.settings.oidc_code_seconds),
        )
    )
    tx.session.flush()


def take_code(tx: Tx, code: str, client_id: str) -> OidcAuthorizationCode | None:
    """The code, if it is this shop's, unused and unexpired. A code shown a second time
    revokes every token issued from it (RFC 6749 4.1.2) and is refused."""
    row = tx.session.get(
        OidcAuthorizationCode, _digest(tx, "oidc-code", code), with_for_update=True
    )
    if row is None or row.client_id != client_id:
        return None
    if row.used_at is not None:
        tx.session.execute(
            update(OidcToken)
            .where(OidcToken.code_hash == row.code_hash, OidcToken.revoked_at.is_(None))
            .values(revoked_at=tx.now())
        )
        return None
    if row.expires_at <= tx.now():
        return None
    return row


def use_code(tx: Tx, row: OidcAuthorizationCode) -> None:
    row.used_at = tx.now()


# --- tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    client_id: str
    user_id: uuid.UUID
    access_token: str
    refresh_token: str | None
    scope: str
    claims: str
    code_hash: str | None
    family_id: uuid.UUID | None


def save_token(tx: Tx, issued: IssuedToken) -> OidcToken:
    now = tx.now()
    settings = tx.settings
    row = OidcToken(
        client_id=issued.client_id,
        user_id=issued.user_id,
        family_id=issued.family_id or uuid.uuid4(),
        code_hash=issued.code_hash,
        access_hash=_digest(tx, "oidc-access", issued.access_token),
        refresh_hash=(
            _digest(tx, "oidc-refresh", issued.refresh_token) if issued.refresh_token else None
        ),
        scope=issued.scope,
        claims=issued.claims,
        issued_at=now,
        access_expires_at=now + timedelta(seconds=settings.oidc_access_token_seconds),
        refresh_expires_at=(
            now + timedelta(seconds=settings.oidc_refresh_token_seconds)
            if issued.refresh_token
            else None
        ),
    )
    tx.session.add(row)
    tx.session.flush()
    return row


def token_by_access(tx: Tx, access_token: str) -> OidcToken | None:
    return tx.session.scalar(
        select(OidcToken).where(OidcToken.access_hash == _digest(tx, "oidc-access", access_token))
    )


def token_by_refresh(tx: Tx, refresh_token: str) -> OidcToken | None:
    return tx.session.scalar(
        select(OidcToken).where(
            OidcToken.refresh_hash == _digest(tx, "oidc-refresh", refresh_token)
        )
    )


def live_access(tx: Tx, access_token: str) -> OidcToken | None:
    """The token behind a bearer access token, while it lives."""
    row = token_by_access(tx, access_token)
    if row is None or row.revoked_at is not None or row.access_expires_at <= tx.now():
        return None
    return row


def take_refresh(tx: Tx, refresh_token: str, client_id: str) -> OidcToken | None:
    """A refresh token to rotate. One shown after it was rotated (a thief's or the
    shop's copy: either way one of them is not the shop) revokes its whole family."""
    row = token_by_refresh(tx, refresh_token)
    if row is None or row.client_id != client_id:
        return None
    if row.refresh_used_at is not None:
        revoke_family(tx, row.family_id)
        return None
    if row.revoked_at is not None:
        return None
    if row.refresh_expires_at is None or row.refresh_expires_at <= tx.now():
        return None
    if _consent_lapsed(tx, row):
        return None
    return row


def _consent_lapsed(tx: Tx, row: OidcToken) -> bool:
    wanted = set(row.scope.split()) & set(CONSENTED_SCOPES)
    return bool(wanted) and _consent(tx, row.user_id, row.client_id) is None


def use_refresh(tx: Tx, row: OidcToken) -> None:
    row.refresh_used_at = tx.now()


def revoke_family(tx: Tx, family_id: uuid.UUID) -> None:
    tx.session.execute(
        update(OidcToken)
        .where(OidcToken.family_id == family_id, OidcToken.revoked_at.is_(None))
        .values(revoked_at=tx.now())
    )


def revoke_token(tx: Tx, row: OidcToken, was_refresh: bool) -> None:
    """RFC 7009: a refresh token takes its family with it; an access token goes alone."""
    if was_refresh:
        revoke_family(tx, row.family_id)
    elif row.revoked_at is None:
        row.revoked_at = tx.now()
