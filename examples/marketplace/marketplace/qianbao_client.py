"""The shop's side of "Log in with Qianbao": an OpenID Connect relying party.

Everything it knows about Qianbao comes from discovery. requests-oauthlib builds the
authorization request (PKCE S256, state, nonce, the ``claims`` request), exchanges the
code with client_secret_basic and refreshes; PyJWT checks the ID token against the
provider's JWKS (signature, iss, aud, exp, iat) and the shop compares the nonce. The
authorization response's ``iss`` is checked as RFC 9207 asks.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final
from urllib.parse import urlsplit

import jwt
import requests
from oauthlib.oauth2 import InvalidGrantError, OAuth2Error, WebApplicationClient
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from marketplace.settings import Settings

# Only asymmetric signatures: an ID token signed with the client secret (HS256) or not at
# all ("none") is never accepted, whatever discovery says.
ACCEPTED_ALGORITHMS: Final = frozenset({"ES256", "RS256"})
LINK_SCOPE: Final = "openid identity"
SIGN_IN_SCOPE: Final = "openid"
# What the shop asks for when it links: the verified name and nationality, and how they
# were verified (the evidence tells the route), per OpenID Connect for Identity Assurance.
VERIFIED_CLAIMS_REQUEST: Final[dict[str, Any]] = {
    "verified_claims": {
        "verification": {"trust_framework": None, "time": None, "evidence": None},
        "claims": {"given_name": None, "family_name": None, "nationalities": None},
    }
}
CLAIMS_REQUEST: Final[dict[str, Any]] = {
    "userinfo": VERIFIED_CLAIMS_REQUEST,
    "id_token": VERIFIED_CLAIMS_REQUEST,
}
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})

# The route of a verification, from its evidence.
ROUTE_PASSPORT_CHIP: Final = "passport_chip"
ROUTE_PASSPORT_PAGE: Final = "passport_page"
ROUTE_BANK_CARD: Final = "bank_card"
ROUTE_OTHER: Final = "other"


class ProviderUnavailable(Exception):
    """Qianbao could not be reached or answered something that is not the protocol."""


class LoginRefused(Exception):
    """The authorization response or the tokens failed a check; ``code`` says which."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class LinkEnded(Exception):
    """The refresh token is dead (invalid_grant): the person revoked the shop."""


@dataclass(frozen=True)
class Discovery:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str
    algorithms: tuple[str, ...]
    iss_parameter_supported: bool


@dataclass(frozen=True)
class AuthorizationStart:
    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class VerifiedIdentity:
    given_name: str
    family_name: str
    nationalities: tuple[str, ...]
    route: str
    trust_framework: str

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.family_name}".strip()


@dataclass(frozen=True)
class Login:
    subject: str
    refresh_token: str | None
    scopes: frozenset[str]
    identity: VerifiedIdentity | None


@dataclass(frozen=True)
class Refreshed:
    refresh_token: str
    identity: VerifiedIdentity | None


def allow_plain_http_to(issuer: str) -> None:
    """oauthlib refuses http:// endpoints unless told otherwise; the demo's provider is on
    127.0.0.1, where there is no network to protect, so only a loopback issuer is allowed."""
    if urlsplit(issuer).scheme == "http" and urlsplit(issuer).hostname in LOOPBACK_HOSTS:
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    # A person may have granted more scopes earlier; the token response then names them
    # all, which oauthlib would otherwise raise as an error; the shop goes by the claims.
    os.environ["OAUTHLIB_RELAX_TOKEN_SCOPE"] = "1"  # noqa: S105 - a switch, not a secret


class QianbaoClient:
    """One registered client of one Qianbao server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        allow_plain_http_to(settings.issuer)

    @cached_property
    def discovery(self) -> Discovery:
        url = f"{self.settings.issuer}/.well-known/openid-configuration"
        try:
            response = requests.get(url, timeout=self.settings.http_timeout_seconds)
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as error:
            raise ProviderUnavailable(f"discovery at {url}: {error}") from error
        # OpenID Connect Discovery 4.3: the issuer in the document is the one asked for.
        if document.get("issuer") != self.settings.issuer:
            raise ProviderUnavailable(f"discovery names issuer {document.get('issuer')!r}")
        algorithms = tuple(
            name
            for name in document.get("id_token_signing_alg_values_supported", [])
            if name in ACCEPTED_ALGORITHMS
        )
        return Discovery(
            issuer=document["issuer"],
            authorization_endpoint=document["authorization_endpoint"],
            token_endpoint=document["token_endpoint"],
            userinfo_endpoint=document["userinfo_endpoint"],
            jwks_uri=document["jwks_uri"],
            algorithms=algorithms or ("ES256", "RS256"),
            iss_parameter_supported=bool(
                document.get("authorization_response_iss_parameter_supported", False)
            ),
        )

    @cached_property
    def jwks(self) -> jwt.PyJWKClient:
        # Keys are cached; a token signed with a key not yet seen (rotation) makes
        # PyJWKClient fetch the set again (at most once per cooldown) before it gives up.
        return jwt.PyJWKClient(
            self.discovery.jwks_uri,
            cache_keys=True,
            timeout=self.settings.http_timeout_seconds,
            cooldown_duration=self.settings.jwks_refetch_cooldown_seconds,
        )

    def start(self, scope: str, with_identity: bool) -> AuthorizationStart:
        """The URL to send the browser to, and the secrets to keep until it comes back."""
        oauth = WebApplicationClient(self.settings.client_id)
        code_verifier = oauth.create_code_verifier(64)
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        extra: dict[str, str] = {"nonce": nonce}
        if with_identity:
            extra["claims"] = json.dumps(CLAIMS_REQUEST, separators=(",", ":"))
        session = OAuth2Session(
            self.settings.client_id, redirect_uri=self.settings.redirect_uri, scope=scope.split()
        )
        url, _ = session.authorization_url(
            self.discovery.authorization_endpoint,
            state=state,
            code_challenge=oauth.create_code_challenge(code_verifier, "S256"),
            code_challenge_method="S256",
            **extra,
        )
        return AuthorizationStart(url=url, state=state, nonce=nonce, code_verifier=code_verifier)

    def finish(self, response: Mapping[str, str], nonce: str, code_verifier: str) -> Login:
        """The authorization response (the callback's query, state already matched):
        check it, exchange the code, verify the ID token, read the verified claims."""
        if "error" in response:
            raise LoginRefused(f"provider.{response['error']}")
        self.check_issuer(response.get("iss"))
        code = response.get("code")
        if not code:
            raise LoginRefused("callback.no_code")
        session = OAuth2Session(self.settings.client_id, redirect_uri=self.settings.redirect_uri)
        try:
            token = session.fetch_token(
                self.discovery.token_endpoint,
                code=code,
                client_secret=self.settings.client_secret,
                code_verifier=code_verifier,
                timeout=self.settings.http_timeout_seconds,
            )
        except OAuth2Error as error:
            raise LoginRefused(f"token.{error.error}") from error
        except (requests.RequestException, ValueError) as error:
            raise ProviderUnavailable(f"token endpoint: {error}") from error
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise LoginRefused("id_token.missing")
        claims = self.verify_id_token(id_token, nonce)
        subject = str(claims["sub"])
        identity = verified_identity(claims.get("verified_claims"))
        if identity is None and "identity" in token.get("scope", []):
            identity = verified_identity(self.userinfo(session, subject).get("verified_claims"))
        return Login(
            subject=subject,
            refresh_token=token.get("refresh_token"),
            scopes=frozenset(token.get("scope") or []),
            identity=identity,
        )

    def check_issuer(self, iss: str | None) -> None:
        """RFC 9207: the response names its issuer, which must be the one asked."""
        if iss is None:
            if self.discovery.iss_parameter_supported:
                raise LoginRefused("callback.iss_missing")
            return
        if iss != self.discovery.issuer:
            raise LoginRefused("callback.iss_mismatch")

    def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            key = self.jwks.get_signing_key_from_jwt(id_token)
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key.key,
                algorithms=list(self.discovery.algorithms),
                audience=self.settings.client_id,
                issuer=self.discovery.issuer,
                leeway=self.settings.id_token_leeway_seconds,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.PyJWKClientConnectionError as error:
            raise ProviderUnavailable(f"jwks: {error}") from error
        except jwt.PyJWTError as error:
            raise LoginRefused(f"id_token.{type(error).__name__}") from error
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        # OpenID Connect Core 3.1.3.7: with several audiences, azp must be this client.
        if len(audiences) > 1 and claims.get("azp") != self.settings.client_id:
            raise LoginRefused("id_token.azp")
        if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise LoginRefused("id_token.nonce")
        return claims

    def userinfo(self, session: OAuth2Session, subject: str) -> dict[str, Any]:
        try:
            response = session.get(
                self.discovery.userinfo_endpoint, timeout=self.settings.http_timeout_seconds
            )
            response.raise_for_status()
            claims: dict[str, Any] = response.json()
        except (requests.RequestException, ValueError) as error:
            raise ProviderUnavailable(f"userinfo: {error}") from error
        # OpenID Connect Core 5.3.2: userinfo about someone else is thrown away.
        if claims.get("sub") != subject:
            raise LoginRefused("userinfo.sub_mismatch")
        return claims

    def refresh(self, refresh_token: str, subject: str) -> Refreshed:
        """Trade the refresh token for new ones (Qianbao rotates it) and read the verified
        claims again: they stop when the verification is revoked or the passport expires."""
        session = OAuth2Session(self.settings.client_id)
        try:
            token = session.refresh_token(
                self.discovery.token_endpoint,
                refresh_token=refresh_token,
                auth=HTTPBasicAuth(self.settings.client_id, self.settings.client_secret),
                timeout=self.settings.http_timeout_seconds,
            )
        except InvalidGrantError as error:
            raise LinkEnded() from error
        except OAuth2Error as error:
            raise ProviderUnavailable(f"refresh: {error.error}") from error
        except (requests.RequestException, ValueError) as error:
            raise ProviderUnavailable(f"refresh: {error}") from error
        claims = self.userinfo(session, subject)
        return Refreshed(
            refresh_token=str(token["refresh_token"]),
            identity=verified_identity(claims.get("verified_claims")),
        )


def verified_identity(verified_claims: object) -> VerifiedIdentity | None:
    """The name, nationalities and route from a ``verified_claims`` element (an object or,
    as the spec also allows, a list of them); None when no verified name is in it."""
    elements = verified_claims if isinstance(verified_claims, list) else [verified_claims]
    for element in elements:
        if not isinstance(element, dict):
            continue
        claims = element.get("claims")
        verification = element.get("verification")
        if not isinstance(claims, dict) or not isinstance(verification, dict):
            continue
        if not claims.get("given_name") and not claims.get("family_name"):
            continue
        nationalities = claims.get("nationalities")
        return VerifiedIdentity(
            given_name=str(claims.get("given_name") or ""),
            family_name=str(claims.get("family_name") or ""),
            nationalities=tuple(str(n) for n in nationalities)
            if isinstance(nationalities, list)
            else (),
            route=route_of(verification.get("evidence")),
            trust_framework=str(verification.get("trust_framework") or ""),
        )
    return None


def route_of(evidence: object) -> str:
    """How the person was verified: a chip read (check_method vcrypt), a photo page
    (vpip), or a mainland bank card (an electronic record)."""
    methods: set[str] = set()
    types: set[str] = set()
    for item in evidence if isinstance(evidence, list) else []:
        if not isinstance(item, dict):
            continue
        types.add(str(item.get("type")))
        for check in item.get("check_details") or []:
            if isinstance(check, dict):
                methods.add(str(check.get("check_method")))
    if "vcrypt" in methods:
        return ROUTE_PASSPORT_CHIP
    if "vpip" in methods:
        return ROUTE_PASSPORT_PAGE
    if "electronic_record" in types:
        return ROUTE_BANK_CARD
    return ROUTE_OTHER
