"""Log in with Qianbao the Alipay way: ``alipay.system.oauth.token`` and
``alipay.user.info.share`` answered from the OpenID Connect provider's grants.

The person's step is Qianbao's own ``/oauth2/authorize`` (PKCE S256, state, nonce, the
consent page): Alipay's ``auth_base`` is the scope ``openid`` alone (the subject, no
consent), ``auth_user`` is ``openid`` with consented scopes (``profile``, ``phone``,
``email``, ``identity``). The code it gives is exchanged here, by the app's signed
request instead of a client secret, for tokens of the OpenID Connect shop the app is
linked to; they are the same rows as ``/oauth2/token``'s (rotation, reuse detection,
revocation in Authorized apps all apply).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Mapping
from datetime import date
from typing import Any, Final, Protocol

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import select

from qianbao.db import Database, Tx
from qianbao.errors import InvalidInput, NotFound
from qianbao.i18n import N_
from qianbao.openplatform.gateway.models import GatewayAppClient
from qianbao.openplatform.gateway.protocol import (
    INVALID,
    NO_PERMISSION,
    PLATFORM_REFUSED,
    GatewayRefusal,
    beijing_time,
)
from qianbao.openplatform.merchants import service as merchants
from qianbao.openplatform.oidc import service as oidc

GRANT_TYPES: Final = ("authorization_code", "refresh_token")
ALIPAY_USER_PREFIX: Final = "2088"  # Alipay's user ids are 16 digits beginning 2088


# --- the operator's link between an app and an OpenID Connect shop ---------------------


def link_app_client(tx: Tx, app_id: str, client_id: str) -> None:
    """Make ``client_id``'s grants the ones the app's oauth.token and user.info.share
    answer from (replacing an earlier link)."""
    if merchants.find_app(tx, app_id) is None:
        raise NotFound("merchant_app.not_found", N_("There is no such app_id."))
    if oidc.find_shop(tx, client_id) is None:
        raise InvalidInput("oidc.unknown_client", N_("There is no such shop (client_id)."))
    row = tx.session.get(GatewayAppClient, app_id)
    if row is None:
        tx.session.add(GatewayAppClient(app_id=app_id, client_id=client_id, linked_at=tx.now()))
    else:
        row.client_id, row.linked_at = client_id, tx.now()
    tx.session.flush()


def linked_client(tx: Tx, app_id: str) -> str | None:
    return tx.session.scalar(
        select(GatewayAppClient.client_id).where(GatewayAppClient.app_id == app_id)
    )


def _client_of(tx: Tx, app_id: str) -> str:
    client_id = linked_client(tx, app_id)
    if client_id is None:
        raise GatewayRefusal(
            PLATFORM_REFUSED,
            "isv.insufficient-isv-permissions",
            N_("This app is not linked to a Log in with Qianbao shop."),
        )
    return client_id


# --- alipay.system.oauth.token ------------------------------------------------------------


def _refused(sub_code: str, message: str) -> GatewayRefusal:
    return GatewayRefusal(INVALID, sub_code, message)


def token(db: Database, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    """``grant_type`` authorization_code (with ``code`` and the PKCE ``code_verifier``)
    or refresh_token (with ``refresh_token``, rotated)."""
    grant_type = params.get("grant_type", "")
    if grant_type not in GRANT_TYPES:
        raise _refused("isv.grant-type-invalid", N_("grant_type is not supported."))
    if grant_type == "authorization_code":
        done = db.run(lambda tx: _by_code(tx, app_id, params))
    else:
        done = db.run(lambda tx: _by_refresh(tx, app_id, params.get("refresh_token", "")))
    # A refusal is returned, not raised, inside the transaction: a reused code or
    # refresh token revokes what it gave, and that revocation must be committed.
    if isinstance(done, GatewayRefusal):
        raise done
    return done


def _by_code(tx: Tx, app_id: str, params: Mapping[str, str]) -> dict[str, str] | GatewayRefusal:
    client_id = _client_of(tx, app_id)
    row = oidc.take_code(tx, params.get("code", ""), client_id) if params.get("code") else None
    if row is None:
        return _refused("isv.code-invalid", N_("The authorization code is invalid or used."))
    verifier = params.get("code_verifier", "")
    # PKCE binds the code to whoever started the flow: required, as at /oauth2/token.
    if not verifier or not secrets.compare_digest(
        create_s256_code_challenge(verifier), row.code_challenge
    ):
        raise _refused("isv.code-invalid", N_("The code_verifier does not match the code."))
    oidc.use_code(tx, row)
    return _new_pair(tx, client_id, row, family_id=None)


def _by_refresh(tx: Tx, app_id: str, refresh_token: str) -> dict[str, str] | GatewayRefusal:
    client_id = _client_of(tx, app_id)
    row = oidc.take_refresh(tx, refresh_token, client_id) if refresh_token else None
    if row is None:
        return _refused(
            "isv.refresh-token-invalid", N_("The refresh token is invalid, used or revoked.")
        )
    oidc.use_refresh(tx, row)
    return _new_pair(tx, client_id, row, family_id=row.family_id)


class _Grant(Protocol):
    """What a code and a refresh token both carry into the pair they are exchanged for."""

    @property
    def user_id(self) -> uuid.UUID: ...
    @property
    def scope(self) -> str: ...
    @property
    def claims(self) -> str: ...
    @property
    def code_hash(self) -> str | None: ...


def _new_pair(
    tx: Tx, client_id: str, grant: _Grant, *, family_id: uuid.UUID | None
) -> dict[str, str]:
    """A fresh access and refresh token for what ``grant`` (a code, or the refresh token
    it rotates) allowed, stored, as the answer's fields; ``family_id`` None starts one."""
    issued = oidc.IssuedToken(
        client_id=client_id,
        user_id=grant.user_id,
        access_token=secrets.token_urlsafe(32),
        refresh_token=secrets.token_urlsafe(48),
        scope=grant.scope,
        claims=grant.claims,
        code_hash=grant.code_hash,
        family_id=family_id,
    )
    oidc.save_token(tx, issued)
    return _token_answer(tx, issued)


def alipay_user_id(open_id: str) -> str:
    """A 16-digit ``user_id`` in Alipay's form, derived from the pairwise subject (so it
    is pairwise too: two apps never see the same number for one person)."""
    digits = int.from_bytes(hashlib.sha256(open_id.encode()).digest()[:8], "big") % 10**12
    return f"{ALIPAY_USER_PREFIX}{digits:012d}"


def _token_answer(tx: Tx, issued: oidc.IssuedToken) -> dict[str, str]:
    open_id = oidc.subject(tx, issued.client_id, issued.user_id)
    settings = tx.settings
    return {
        "user_id": alipay_user_id(open_id),
        "open_id": open_id,
        "access_token": issued.access_token,
        "expires_in": str(settings.oidc_access_token_seconds),
        "refresh_token": issued.refresh_token or "",
        "re_expires_in": str(settings.oidc_refresh_token_seconds),
        "auth_start": beijing_time(tx.now()),
    }


# --- alipay.user.info.share ---------------------------------------------------------------


def user_info(db: Database, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    """The fields the grant's consented scopes allow, from the same claims userinfo
    gives (verified claims only as requested and consented)."""
    return db.run(lambda tx: _user_info(tx, app_id, params.get("auth_token", "")))


def _user_info(tx: Tx, app_id: str, auth_token: str) -> dict[str, str]:
    client_id = _client_of(tx, app_id)
    row = oidc.live_access(tx, auth_token) if auth_token else None
    if row is None or row.client_id != client_id:
        raise GatewayRefusal(
            NO_PERMISSION, "aop.invalid-auth-token", N_("The auth_token is invalid or expired.")
        )
    claims = oidc.claims_for(
        tx, row.user_id, client_id, row.scope, _claims_request(row.claims), "userinfo"
    )
    return alipay_fields(claims)


def _claims_request(text: str) -> dict[str, Any]:
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def alipay_fields(claims: Mapping[str, Any]) -> dict[str, str]:
    """OpenID Connect claims in Alipay's field names (README: "Log in the Alipay way")."""
    open_id = str(claims["sub"])
    fields = {"user_id": alipay_user_id(open_id), "open_id": open_id}
    simple = {"nickname": "nick_name", "phone_number": "mobile", "email": "email"}
    fields.update({alipay: str(claims[name]) for name, alipay in simple.items() if name in claims})
    verified = claims.get("verified_claims")
    if isinstance(verified, list):
        verified = verified[0] if verified else None
    if isinstance(verified, dict):
        fields.update(_verified_fields(verified.get("claims", {})))
    return fields


def _verified_fields(claims: Mapping[str, Any]) -> dict[str, str]:
    fields: dict[str, str] = {}
    names = [claims.get("given_name"), claims.get("family_name")]
    if any(names):
        fields["user_name"] = " ".join(str(name) for name in names if name)
    nationalities = claims.get("nationalities")
    if isinstance(nationalities, list) and nationalities:
        fields["country_code"] = str(nationalities[0])
    birthdate = claims.get("birthdate")
    if isinstance(birthdate, str):
        fields["person_birthday"] = date.fromisoformat(birthdate).strftime("%Y%m%d")
    if "identity_verified" in claims:
        fields["is_certified"] = "T" if claims["identity_verified"] else "F"
    if "age_over_18" in claims:
        fields["is_adult"] = "T" if claims["age_over_18"] else "F"
    return fields
