"""Log in with Qianbao over HTTP: discovery, JWKS, the token, userinfo, revocation and
introspection endpoints (the shops' backends), and the person's authorized apps (JSON).

The OAuth endpoints speak the protocol's own form bodies and JSON, documented by
discovery, not by the OpenAPI document; the authorized-apps API is in the OpenAPI.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from qianbao import deps
from qianbao.db import Database, Tx
from qianbao.identity.api import SessionDep
from qianbao.openplatform.oidc import claims as verified
from qianbao.openplatform.oidc import schemas, service
from qianbao.openplatform.oidc.server import Answer, Provider
from qianbao.openplatform.oidc.server import Request as OAuthRequest
from qianbao.settings import Settings

router = APIRouter()
protocol = APIRouter(include_in_schema=False)
DbDep = Annotated[Database, Depends(deps.database)]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def discovery_document(settings: Settings) -> dict[str, Any]:
    """OpenID Connect Discovery 1.0, RFC 8414, RFC 9207, and Identity Assurance 1.0's
    metadata."""
    issuer = settings.issuer()
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/oauth2/authorize",
        "token_endpoint": issuer + "/oauth2/token",
        "userinfo_endpoint": issuer + "/oauth2/userinfo",
        "jwks_uri": issuer + "/oauth2/jwks",
        "revocation_endpoint": issuer + "/oauth2/revoke",
        "introspection_endpoint": issuer + "/oauth2/introspect",
        "scopes_supported": list(service.SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256", "PS256", "EdDSA"],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "prompt_values_supported": ["none", "consent", "login"],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "nickname",
            "locale",
            "phone_number",
            "phone_number_verified",
            "email",
            "email_verified",
            "verified_claims",
        ],
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "ui_locales_supported": ["en", "zh-Hans"],
        # OpenID Connect for Identity Assurance 1.0
        "verified_claims_supported": True,
        "trust_frameworks_supported": [verified.TRUST_FRAMEWORK],
        "assurance_levels_supported": {verified.TRUST_FRAMEWORK: ["IAL1", "IAL2"]},
        "evidence_supported": list(verified.EVIDENCE_TYPES),
        "documents_supported": list(verified.DOCUMENT_TYPES),
        "documents_check_methods_supported": list(verified.CHECK_METHODS),
        "electronic_records_supported": list(verified.ELECTRONIC_RECORDS),
        "claims_in_verified_claims_supported": list(verified.VERIFIED_CLAIMS),
        "attachments_supported": [],
    }


@protocol.get("/.well-known/openid-configuration")
def openid_configuration(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    return _json(Answer(200, discovery_document(settings), []))


@protocol.get("/oauth2/jwks")
def jwks(db: DbDep) -> Response:
    keys = db.run(service.published_keys)
    return _json(Answer(200, keys, [("Cache-Control", "public, max-age=300")]))


async def oauth_request(request: Request) -> OAuthRequest:
    """The HTTP request as Authlib reads it (the form read here, in the event loop)."""
    form: list[tuple[str, str]] = []
    if request.method == "POST":
        content = request.headers.get("content-type", "")
        if content.startswith("application/x-www-form-urlencoded"):
            body = await request.form()
            form = [(name, value) for name, value in body.multi_items() if isinstance(value, str)]
    return OAuthRequest(
        request.method,
        str(request.url),
        request.headers,  # case-insensitive, as Authlib reads "Authorization"
        list(request.query_params.multi_items()),
        form,
    )


async def _run(request: Request, work: Any) -> Response:
    db = deps.database(request)
    answer: Answer = await run_in_threadpool(db.run, lambda tx: work(Provider(tx)))
    return _json(answer)


def _json(answer: Answer) -> Response:
    headers = {name: value for name, value in answer.headers if name.lower() != "content-type"}
    media = {n.lower(): v for n, v in answer.headers}.get("content-type", "application/json")
    return Response(answer.json(), status_code=answer.status, headers=headers, media_type=media)


@protocol.post("/oauth2/token")
async def token(request: Request) -> Response:
    """The authorization code and refresh token grants (client authentication required)."""
    found = await oauth_request(request)
    return await _run(request, lambda provider: provider.create_token_response(found))


@protocol.get("/oauth2/userinfo")
@protocol.post("/oauth2/userinfo")
async def userinfo(request: Request) -> Response:
    found = await oauth_request(request)
    return await _run(request, lambda provider: provider.userinfo(found))


@protocol.post("/oauth2/revoke")
async def revoke(request: Request) -> Response:
    """RFC 7009: the shop revokes its own token (a refresh token takes its family)."""
    found = await oauth_request(request)
    return await _run(
        request, lambda provider: provider.create_endpoint_response("revocation", found)
    )


@protocol.post("/oauth2/introspect")
async def introspect(request: Request) -> Response:
    """RFC 7662: active or not; a shop may introspect only its own tokens."""
    found = await oauth_request(request)
    return await _run(
        request, lambda provider: provider.create_endpoint_response("introspection", found)
    )


# --- the person's authorized apps ------------------------------------------------------------


def _apps(tx: Tx, session: Any) -> list[schemas.AuthorizedAppOut]:
    return [schemas.app_out(app) for app in service.authorized_apps(tx, session.account.id)]


@router.get("/api/v1/me/authorized-apps", tags=["openplatform"])
def authorized_apps(session: SessionDep, db: DbDep) -> list[schemas.AuthorizedAppOut]:
    """The shops this person allowed to read more than a silent sign-in, what and since
    when."""
    return db.run(lambda tx: _apps(tx, session))


@router.delete("/api/v1/me/authorized-apps/{client_id}", status_code=204, tags=["openplatform"])
def revoke_authorized_app(client_id: str, session: SessionDep, db: DbDep) -> Response:
    """The shop loses access: its tokens die at once, its next refresh gets invalid_grant."""
    db.run(lambda tx: service.revoke_app(tx, session.account.id, client_id))
    return Response(status_code=204)
