"""Authlib's authorization server, wired to Qianbao's storage (``service.py``).

The protocol is Authlib's: the authorization code grant with OpenID Connect, PKCE,
refresh tokens, client authentication (client_secret_basic, client_secret_post,
private_key_jwt per RFC 7523), revocation (RFC 7009), introspection (RFC 7662), bearer
token checks (RFC 6750) and the ``iss`` authorization response parameter (RFC 9207).
Qianbao tightens it where Authlib leaves a choice: PKCE with S256 for every client,
``state`` and ``nonce`` required, ``openid`` required, no public clients, refresh
tokens rotated on every use.

A ``Provider`` lives for one request and one transaction: Authlib's callbacks read and
write through the request's ``Tx``, which the handler commits once (also when the
answer is an error: a reused code's revocations must stay).
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import AuthorizationServer, OAuth2Error, ResourceProtector
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    InvalidClientError,
    InvalidRequestError,
    JsonRequest,
    OAuth2Payload,
    OAuth2Request,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode, OpenIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, import_key

from qianbao.db import Tx
from qianbao.openplatform.oidc import claims as verified
from qianbao.openplatform.oidc import service
from qianbao.openplatform.oidc.models import OidcAuthorizationCode, OidcClient, OidcToken

CLIENT_AUTH_METHODS: Final = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
JWT_AUTH: Final = ("private_key_jwt", JWTBearerClientAssertion.CLIENT_AUTH_METHOD)
TOKEN_PATH: Final = "/oauth2/token"  # noqa: S105 (an address, not a secret)


# --- the request and response, as Authlib sees them --------------------------------------


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs
        self._data = dict(reversed(pairs))  # the first value of a repeated name

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        values: defaultdict[str, list[str]] = defaultdict(list)
        for name, value in self._pairs:
            values[name].append(value)
        return values


class Request(OAuth2Request):  # type: ignore[misc]
    """An HTTP request already read by the web layer (query and form pairs)."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self.payload = _Payload(query + form)
        self._pairs = query + form
        self._args = dict(reversed(query))
        self._form = dict(reversed(form))

    @property
    def args(self) -> dict[str, str]:
        return self._args

    def pairs(self) -> list[tuple[str, str]]:
        """Every parameter, query then form, in order (repeated names kept)."""
        return list(self._pairs)

    @property
    def form(self) -> dict[str, str]:
        return self._form


@dataclass
class Answer:
    """What Authlib answers: status, body (a dict for JSON), headers."""

    status: int
    body: Any
    headers: list[tuple[str, str]]

    @property
    def location(self) -> str | None:
        return next((value for name, value in self.headers if name == "Location"), None)

    @location.setter
    def location(self, value: str) -> None:  # RFC 9207's extension rewrites it
        self.headers = [(n, v) for n, v in self.headers if n != "Location"] + [("Location", value)]

    def json(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()


# --- Qianbao's rows as Authlib's models ------------------------------------------------------


@dataclass(frozen=True)
class Person:
    id: uuid.UUID
    auth_time: datetime

    def get_user_id(self) -> str:
        return str(self.id)


class Shop(ClientMixin):  # type: ignore[misc]
    def __init__(self, tx: Tx, row: OidcClient) -> None:
        self.tx, self.row = tx, row
        self.client_id = row.client_id
        self.client_metadata: dict[str, Any] = {}

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # OpenID Connect: the request always names it

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(name for name in (scope or "").split() if name in service.SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in json.loads(self.row.redirect_uris)  # exactly, never a prefix

    def check_client_secret(self, client_secret: str) -> bool:
        return service.check_secret(self.tx, self.row, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.row.auth_method == "private_key_jwt":
            return method in JWT_AUTH
        return method in service.SECRET_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


class Code(AuthorizationCodeMixin):  # type: ignore[misc]
    def __init__(self, row: OidcAuthorizationCode) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    def get_nonce(self) -> str:
        return self.row.nonce

    def get_auth_time(self) -> int:
        return int(self.row.auth_time.timestamp())

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


class Token(TokenMixin):  # type: ignore[misc]
    def __init__(self, tx: Tx, row: OidcToken, kind: str) -> None:
        self.tx, self.row, self.kind = tx, row, kind
        self.scope = row.scope

    def check_client(self, client: Shop) -> bool:
        return client.client_id == self.row.client_id

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        return self.tx.settings.oidc_access_token_seconds

    def expires_at(self) -> datetime | None:
        return self.row.access_expires_at if self.kind == "access" else self.row.refresh_expires_at

    def is_expired(self) -> bool:
        ends = self.expires_at()
        used = self.kind == "refresh" and self.row.refresh_used_at is not None
        return used or ends is None or ends <= self.tx.now()

    def is_revoked(self) -> bool:
        return self.row.revoked_at is not None

    def get_user(self) -> Person:
        return Person(self.row.user_id, self.row.issued_at)

    def get_client(self) -> Shop | None:
        row = service.find_shop(self.tx, self.row.client_id)
        return None if row is None else Shop(self.tx, row)


# --- the grants and their extensions -------------------------------------------------------


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    server: Provider

    def save_authorization_code(self, code: str, request: Request) -> None:
        data = request.payload.data
        person: Person = request.user
        service.save_code(
            self.server.tx,
            code,
            service.CodeRequest(
                client_id=request.client.client_id,
                user_id=person.id,
                redirect_uri=data["redirect_uri"],
                scope=request.scope,
                nonce=data["nonce"],
                claims=json.dumps(verified.parse_claims_request(data.get("claims"))),
                code_challenge=data["code_challenge"],
                code_challenge_method=data["code_challenge_method"],
                auth_time=person.auth_time,
            ),
        )

    def query_authorization_code(self, code: str, client: Shop) -> Code | None:
        row = service.take_code(self.server.tx, code, client.client_id)
        return None if row is None else Code(row)

    def delete_authorization_code(self, authorization_code: Code) -> None:
        service.use_code(self.server.tx, authorization_code.row)

    def authenticate_user(self, authorization_code: Code) -> Person:
        return Person(authorization_code.row.user_id, authorization_code.row.auth_time)


class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotated on every use
    server: Provider

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        client = self.request.client
        row = service.take_refresh(self.server.tx, refresh_token, client.client_id)
        return None if row is None else Token(self.server.tx, row, "refresh")

    def authenticate_user(self, refresh_token: Token) -> Person:
        return Person(refresh_token.row.user_id, refresh_token.row.issued_at)

    def revoke_old_credential(self, refresh_token: Token) -> None:
        service.use_refresh(self.server.tx, refresh_token.row)


class StrictPkce(CodeChallenge):  # type: ignore[misc]
    """PKCE for every client, S256 only (RFC 9700 2.1.1; "plain" is refused)."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: CodeGrant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge (S256).")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256.")
        super().validate_code_challenge(grant, redirect_uri)


def _require_state_and_openid(grant: CodeGrant, redirect_uri: str) -> None:
    data = grant.request.payload.data
    if not data.get("state"):
        raise InvalidRequestError("state is required.")
    if service.OPENID not in (grant.request.scope or "").split():
        raise InvalidRequestError("The openid scope is required.")
    try:
        verified.parse_claims_request(data.get("claims"))
    except verified.ClaimsRequestError as error:
        raise InvalidRequestError(f"Invalid claims parameter: {error}") from error


def require_state_and_openid(grant: CodeGrant) -> None:
    grant.register_hook("after_validate_authorization_request_payload", _require_state_and_openid)


class _IdTokenClaims:
    """The ID token's signing key, times and claims, from the request's transaction."""

    server: Provider

    def __init__(self, server: Provider) -> None:
        self.server = server

    def resolve_client_private_key(self, client: Shop) -> Any:
        return import_key(self.server.signing_key().private_jwk)

    def get_client_algorithm(self, client: Shop) -> str:
        return self.server.signing_key().alg

    def get_encode_header(self, client: Shop) -> dict[str, str]:
        key = self.server.signing_key()
        return {"alg": key.alg, "kid": key.kid, "typ": "JWT"}

    def get_compatible_claims(self, request: Request) -> dict[str, Any]:
        tx = self.server.tx
        now = int(tx.now().timestamp())
        self.server.current = request
        return {
            "iss": tx.settings.issuer(),
            "aud": [request.client.client_id],
            "iat": now,
            "exp": now + tx.settings.oidc_id_token_seconds,
            "auth_time": int(request.user.auth_time.timestamp()),
        }

    def generate_user_info(self, user: Person, scope: str) -> UserInfo:
        request = self.server.current
        assert request is not None
        if request.authorization_code is not None:
            claims_request = json.loads(request.authorization_code.row.claims)
        else:
            claims_request = json.loads(request.refresh_token.row.claims)
        found = service.claims_for(
            self.server.tx, user.id, request.client.client_id, scope, claims_request, "id_token"
        )
        return UserInfo(found)


class IdTokenForCode(_IdTokenClaims, OpenIDCode):  # type: ignore[misc]
    def __init__(self, server: Provider) -> None:
        _IdTokenClaims.__init__(self, server)
        OpenIDCode.__init__(self, require_nonce=True)

    def exists_nonce(self, nonce: str, request: Request) -> bool:
        return False  # a nonce is the shop's to check against its session (Core 3.1.3.7)


class IdTokenForRefresh(_IdTokenClaims, OpenIDToken):  # type: ignore[misc]
    """A fresh ID token on refresh: verified_claims as they stand now, so a revoked
    verification shows on the shop's next refresh."""


class PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    """private_key_jwt (OpenID Connect Core 9, RFC 7523): an assertion signed with a key
    of the shop's registered JWKS, its jti seen once."""

    def __init__(self, server: Provider) -> None:
        super().__init__(validate_jti=True)
        self.server = server

    def get_audiences(self) -> list[str]:
        issuer = self.server.tx.settings.issuer()
        return [
            issuer,
            issuer + TOKEN_PATH,
            issuer + "/oauth2/introspect",
            issuer + "/oauth2/revoke",
        ]

    def resolve_client_public_key(self, client: Shop) -> KeySet:
        return service.public_keys(client.row)

    def verify_claims(self, claims: dict[str, Any]) -> None:
        """RFC 7523 3's checks, at the server's clock (Authlib's own reads the system's)."""
        registry = jwt.JWTClaimsRegistry(
            now=int(self.server.tx.now().timestamp()),
            leeway=self.leeway,
            iss={"essential": True},
            sub={"essential": True},
            aud={"essential": True, "values": self.get_audiences()},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as error:
            raise InvalidClientError(description=error.description) from error
        if claims["sub"] != claims["iss"]:
            raise InvalidClientError(description="Issuer and Subject MUST match.")
        if "jti" not in claims or not self.validate_jti(claims, claims["jti"]):
            raise InvalidClientError(description="The assertion has no jti, or was used before.")

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        expires = datetime.fromtimestamp(int(claims["exp"]), tz=self.server.tx.now().tzinfo)
        return service.remember_assertion(self.server.tx, str(claims["sub"]), str(jti), expires)


def _query_token(tx: Tx, token: str, hint: str | None) -> Token | None:
    if hint != "refresh_token":
        row = service.token_by_access(tx, token)
        if row is not None:
            return Token(tx, row, "access")
    row = service.token_by_refresh(tx, token)
    if row is not None:
        return Token(tx, row, "refresh")
    if hint == "refresh_token":
        row = service.token_by_access(tx, token)
        return None if row is None else Token(tx, row, "access")
    return None


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS
    server: Provider

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return _query_token(self.server.tx, token_string, token_type_hint)

    def revoke_token(self, token: Token, request: Request) -> None:
        service.revoke_token(self.server.tx, token.row, token.kind == "refresh")


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS
    server: Provider

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return _query_token(self.server.tx, token_string, token_type_hint)

    def check_permission(self, token: Token, client: Shop, request: Request) -> bool:
        return token.check_client(client)  # a shop learns nothing of another's tokens

    def introspect_token(self, token: Token) -> dict[str, Any]:
        tx = self.server.tx
        ends = token.expires_at()
        return {
            "active": True,
            "client_id": token.row.client_id,
            "scope": token.row.scope,
            "sub": service.subject(tx, token.row.client_id, token.row.user_id),
            "token_type": "Bearer" if token.kind == "access" else "refresh_token",
            "iat": int(token.row.issued_at.timestamp()),
            "exp": int(ends.timestamp()) if ends else None,
            "iss": tx.settings.issuer(),
        }


class _Bearer(BearerTokenValidator):  # type: ignore[misc]
    def __init__(self, tx: Tx) -> None:
        super().__init__()
        self.tx = tx

    def authenticate_token(self, token_string: str) -> Token | None:
        row = service.token_by_access(self.tx, token_string)
        return None if row is None else Token(self.tx, row, "access")


class _Issuer(IssuerParameter):  # type: ignore[misc]
    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def get_issuer(self) -> str:
        return self.issuer


# --- the server ------------------------------------------------------------------------------


class Provider(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, tx: Tx) -> None:
        super().__init__(scopes_supported=list(service.SCOPES))
        self.tx = tx
        self.current: Request | None = None
        self._signing_key: service.SigningKey | None = None
        self.register_token_generator("default", self._generate_token)
        self.register_client_auth_method("private_key_jwt", PrivateKeyJwt(self))
        self.register_grant(
            CodeGrant, [StrictPkce(required=True), require_state_and_openid, IdTokenForCode(self)]
        )
        self.register_grant(RefreshGrant, [IdTokenForRefresh(self)])
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)
        self.register_extension(_Issuer(tx.settings.issuer()))
        self.protector = ResourceProtector()
        self.protector.register_token_validator(_Bearer(tx))

    def signing_key(self) -> service.SigningKey:
        if self._signing_key is None:
            self._signing_key = service.signing_key(self.tx)
        return self._signing_key

    def query_client(self, client_id: str) -> Shop | None:
        row = service.find_shop(self.tx, client_id) if isinstance(client_id, str) else None
        return None if row is None else Shop(self.tx, row)

    def _generate_token(
        self,
        grant_type: str,
        client: Shop,
        user: Person | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": secrets.token_urlsafe(32),
            "expires_in": self.tx.settings.oidc_access_token_seconds,
            "scope": scope or "",
        }
        if include_refresh_token:
            token["refresh_token"] = secrets.token_urlsafe(48)
        return token

    def save_token(self, token: dict[str, Any], request: Request) -> None:
        code: Code | None = request.authorization_code
        previous: Token | None = request.refresh_token
        person: Person = request.user
        service.save_token(
            self.tx,
            service.IssuedToken(
                client_id=request.client.client_id,
                user_id=person.id,
                access_token=token["access_token"],
                refresh_token=token.get("refresh_token"),
                scope=token["scope"],
                claims=code.row.claims if code else previous.row.claims if previous else "{}",
                code_hash=code.row.code_hash
                if code
                else previous.row.code_hash
                if previous
                else None,
                family_id=previous.row.family_id if previous else None,
            ),
        )

    def create_oauth2_request(self, request: Request) -> Request:
        return request

    def create_json_request(self, request: Any) -> JsonRequest:
        raise NotImplementedError  # no JSON-bodied endpoint here

    def handle_response(self, status: int, body: Any, headers: Any) -> Answer:
        return Answer(status, body, list(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None  # nothing listens

    def error_redirect(self, error: OAuth2Error) -> str | None:
        """Where an authorization request's error goes (with ``iss``, RFC 9207): the
        shop's redirect URI once it was matched; None when it must never be used."""
        if not error.redirect_uri:
            return None
        status, _, headers = error()
        location = dict(headers).get("Location")
        if status != 302 or not location:
            return None
        return str(add_params_to_uri(location, {"iss": self.tx.settings.issuer()}))

    def userinfo(self, request: Request) -> Answer:
        """The claims of the bearer token's person (OpenID Connect Core 5.3)."""
        try:
            token: Token = self.protector.validate_request(["openid"], request)
        except OAuth2Error as error:
            return self.handle_response(*error())
        row = token.row
        body = service.claims_for(
            self.tx, row.user_id, row.client_id, row.scope, json.loads(row.claims), "userinfo"
        )
        return Answer(
            200, body, [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
        )
