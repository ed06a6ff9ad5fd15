"""A small OpenID Connect provider for the marketplace's own tests, served over real HTTP.

It speaks what the marketplace relies on (discovery, the code flow with PKCE S256 and
client_secret_basic, ES256 ID tokens under a published key, userinfo, rotating refresh
tokens that die on revocation) and can be told to misbehave one way at a time, so the
shop's checks are tested without Qianbao. The browser test (tests/e2e/) runs the shop
against Qianbao's real provider.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, Form, Header, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

CLIENT_ID = "demo-marketplace"
CLIENT_SECRET = "demo-marketplace-secret"
STARTUP_TIMEOUT_S = 10.0


def chip_verified_claims(nationality: str = "GBR") -> dict[str, Any]:
    """verified_claims as Identity Assurance 1.0 writes a passport read from its chip."""
    return {
        "verification": {
            "trust_framework": "nist_800_63A",
            "time": "2026-11-30T10:00:00Z",
            "evidence": [
                {
                    "type": "document",
                    "check_details": [{"check_method": "vcrypt"}, {"check_method": "bvr"}],
                    "document_details": {"type": "passport"},
                }
            ],
        },
        "claims": {"given_name": "ADA", "family_name": "LOVELACE", "nationalities": [nationality]},
    }


@dataclass
class Grant:
    subject: str
    scope: str
    identity: bool
    alive: bool = True


@dataclass
class Stub:
    """What the provider does; tests change these fields to make it misbehave."""

    issuer: str = ""
    subject: str = "pairwise-subject-1"
    verified_claims: dict[str, Any] | None = field(default_factory=chip_verified_claims)
    send_iss: bool = True
    iss_in_response: str | None = None  # another issuer's name in the authorization response
    nonce_in_token: str | None = None  # a nonce other than the one asked for
    audience: str = CLIENT_ID
    expires_in: int = 300
    sign_with_unknown_key: bool = False
    person_declines: bool = False  # "Don't allow" on the consent page
    token_endpoint_down: bool = False  # answers 500 with an HTML page, as a broken proxy does
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    kid: str = "key-1"
    retired: dict[str, ec.EllipticCurvePrivateKey] = field(default_factory=dict)
    other_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    refresh_tokens: dict[str, Grant] = field(default_factory=dict)
    access_tokens: dict[str, Grant] = field(default_factory=dict)
    refreshes: int = 0

    def rotate_key(self) -> None:
        """A new signing key; the old one stays published (retired)."""
        self.retired[self.kid] = self.key
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = f"key-{len(self.retired) + 1}"

    def revoke(self, subject: str) -> None:
        """The person revokes the shop: every token of theirs dies."""
        for grant in [*self.refresh_tokens.values(), *self.access_tokens.values()]:
            if grant.subject == subject:
                grant.alive = False

    def id_token(self, nonce: str, grant: Grant) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": grant.subject,
            "aud": self.audience,
            "iat": now,
            "exp": now + self.expires_in,
            "nonce": self.nonce_in_token or nonce,
        }
        if grant.identity and self.verified_claims is not None:
            claims["verified_claims"] = self.verified_claims
        key = self.other_key if self.sign_with_unknown_key else self.key
        kid = "other" if self.sign_with_unknown_key else self.kid
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})

    def tokens(self, grant: Grant, nonce: str | None) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        self.access_tokens[access] = grant
        self.refresh_tokens[refresh] = grant
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 300,
            "refresh_token": refresh,
            "scope": grant.scope,
        }
        if nonce is not None:
            body["id_token"] = self.id_token(nonce, grant)
        return body


def s256(verifier: str) -> str:
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


def oauth_error(code: str) -> JSONResponse:
    return JSONResponse({"error": code}, status_code=400)


def client_authenticated(authorization: str | None) -> bool:
    expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    return authorization == expected


def build_app(stub: Stub) -> FastAPI:
    app = FastAPI()

    @app.get("/.well-known/openid-configuration")
    def discovery() -> dict[str, Any]:
        return {
            "issuer": stub.issuer,
            "authorization_endpoint": f"{stub.issuer}/oauth/authorize",
            "token_endpoint": f"{stub.issuer}/oauth/token",
            "userinfo_endpoint": f"{stub.issuer}/oauth/userinfo",
            "jwks_uri": f"{stub.issuer}/oauth/jwks",
            "id_token_signing_alg_values_supported": ["ES256"],
            "authorization_response_iss_parameter_supported": True,
            "code_challenge_methods_supported": ["S256"],
        }

    @app.get("/oauth/jwks")
    def jwks() -> dict[str, Any]:
        published = {**stub.retired, stub.kid: stub.key}
        return {
            "keys": [
                {
                    **jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True),
                    "kid": kid,
                    "use": "sig",
                    "alg": "ES256",
                }
                for kid, key in published.items()
            ]
        }

    @app.get("/oauth/authorize")
    def authorize(request: Request) -> Response:
        asked = dict(request.query_params)
        stub.authorize_requests.append(asked)
        ok = (
            asked.get("client_id") == CLIENT_ID
            and asked.get("response_type") == "code"
            and asked.get("code_challenge_method") == "S256"
            and asked.get("code_challenge")
            and asked.get("state")
            and asked.get("nonce")
        )
        if not ok:
            return oauth_error("invalid_request")
        code = secrets.token_urlsafe(16)
        answer = {"code": code, "state": asked["state"]}
        if stub.person_declines:
            answer = {"error": "access_denied", "state": asked["state"]}
        else:
            stub.codes[code] = asked
        if stub.send_iss:
            answer["iss"] = stub.iss_in_response or stub.issuer
        return RedirectResponse(f"{asked['redirect_uri']}?{urlencode(answer)}", status_code=302)

    @app.post("/oauth/token")
    def token(
        grant_type: str = Form(),
        code: str = Form(""),
        code_verifier: str = Form(""),
        redirect_uri: str = Form(""),
        refresh_token: str = Form(""),
        authorization: str | None = Header(None),
    ) -> Response:
        if stub.token_endpoint_down:
            return Response("<html>Internal Server Error</html>", status_code=500)
        if not client_authenticated(authorization):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if grant_type == "authorization_code":
            asked = stub.codes.pop(code, None)
            if asked is None or asked["redirect_uri"] != redirect_uri:
                return oauth_error("invalid_grant")
            if s256(code_verifier) != asked["code_challenge"]:
                return oauth_error("invalid_grant")
            scope = asked.get("scope", "")
            grant = Grant(stub.subject, scope, identity="identity" in scope.split())
            return JSONResponse(stub.tokens(grant, asked["nonce"]))
        if grant_type == "refresh_token":
            stub.refreshes += 1
            grant_or_none = stub.refresh_tokens.pop(refresh_token, None)
            if grant_or_none is None or not grant_or_none.alive:
                return oauth_error("invalid_grant")
            return JSONResponse(stub.tokens(grant_or_none, None))
        return oauth_error("unsupported_grant_type")

    @app.get("/oauth/userinfo")
    def userinfo(authorization: str | None = Header(None)) -> Response:
        grant = stub.access_tokens.get((authorization or "").removeprefix("Bearer "))
        if grant is None or not grant.alive:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        claims: dict[str, Any] = {"sub": grant.subject}
        if grant.identity and stub.verified_claims is not None:
            claims["verified_claims"] = stub.verified_claims
        return JSONResponse(claims)

    return app


@contextmanager
def serve(stub: Stub) -> Iterator[Stub]:
    """The stub on 127.0.0.1 and a free port until the block ends."""
    config = uvicorn.Config(build_app(stub), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the OpenID Connect stub did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    stub.issuer = f"http://127.0.0.1:{port}"
    try:
        yield stub
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT_S)
