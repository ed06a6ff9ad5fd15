"""Driving Log in with Qianbao as a shop would, with Authlib's httpx client (the client
side of the protocol, written by nobody here) and joserfc to check ID tokens."""

from __future__ import annotations

import json
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import date
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet

from qianbao.db import Database
from qianbao.identity import security
from qianbao.identity.phone import parse_mobile
from qianbao.openplatform.oidc import service
from qianbao.verification import service as verification
from qianbao.verification.analysis import FaceAssessment, PageReading
from qianbao.verification.mrz import parse_td3
from tests.api_helpers import api_sign_up, bearer
from tests.verification.passport_pages import PassportData

BASE = "http://127.0.0.1"
REDIRECT = "https://shop.example/callback"
PASSPORT = PassportData(
    surname="LOVELACE",
    given_names="ADA<MARY",
    nationality="GBR",
    document_number="P1234567",
    birth_date=date(1990, 5, 1),
    sex="F",
    expiry_date=date(2031, 1, 1),
)
IDENTITY_CLAIMS = {
    "userinfo": {
        "verified_claims": {
            "verification": {"trust_framework": None, "evidence": None},
            "claims": {"given_name": None, "family_name": None, "nationalities": None},
        }
    },
    "id_token": {
        "verified_claims": {
            "verification": {"trust_framework": None},
            "claims": {"identity_verified": None},
        }
    },
}


@dataclass(frozen=True)
class Shop:
    client_id: str
    secret: str | None
    redirect_uri: str = REDIRECT


def database(client: TestClient) -> Database:
    found: Database = client.app.state.db  # type: ignore[attr-defined]
    return found


def credentials(shop: Shop) -> tuple[str, str]:
    """The shop's HTTP Basic credentials at the token, introspection and revocation
    endpoints."""
    return shop.client_id, shop.secret or ""


def register_shop(client: TestClient, client_id: str = "shop-one", **extra: Any) -> Shop:
    db = database(client)
    shop, secret = db.run(
        lambda tx: service.register_shop(
            tx,
            client_id=client_id,
            name_en=extra.pop("name_en", "Wholesale One"),
            name_zh=extra.pop("name_zh", "批发一号"),
            redirect_uris=extra.pop("redirect_uris", [REDIRECT]),
            **extra,
        )
    )
    return Shop(shop.client_id, secret)


def sign_in_person(client: TestClient, number: str = "07911 123456") -> uuid.UUID:
    """A new person signed up, the client holding their session cookie."""
    token = api_sign_up(client, number)["token"]
    client.cookies.set("qb_session", token)
    phone = parse_mobile(number, "GB")
    found = database(client).run(lambda tx: security.find_login(tx, phone.e164, phone))
    assert found is not None
    return found.id


def verify_by_passport(
    db: Database,
    user_id: uuid.UUID,
    method: str = "passport_chip",
    passport: PassportData = PASSPORT,
) -> None:
    """Through the verification service's own steps, with the heavy analysis (OCR, face,
    liveness) replaced by its outcome."""
    line1, line2 = passport.lines()
    reading = PageReading(
        mrz=parse_td3(line1, line2, today=date(2026, 1, 1)),
        page_jpeg=None if method == "passport_chip" else b"page",
        portrait_jpeg=b"portrait",
        portrait_embedding=b"\x00" * 512,
    )
    case = db.run(lambda tx: verification.start_case(tx, user_id, method))
    db.run(lambda tx: verification.record_page(tx, user_id, case.id, reading))
    db.run(lambda tx: verification.confirm_document(tx, user_id, case.id))
    db.run(lambda tx: verification.issue_challenge(tx, user_id, case.id))
    match = FaceAssessment("match", None, None, {}, 0.3, "{}", (b"frame",))
    view = db.run(lambda tx: verification.record_face(tx, user_id, case.id, match))
    assert view.status == "verified"


def oauth_client(client: TestClient, shop: Shop, scope: str = "openid") -> OAuth2Client:
    return OAuth2Client(
        client_id=shop.client_id,
        client_secret=shop.secret,
        scope=scope,
        redirect_uri=shop.redirect_uri,
        code_challenge_method="S256",
        transport=client._transport,
        base_url=BASE,
    )


@dataclass
class Started:
    oauth: OAuth2Client
    url: str
    state: str
    nonce: str
    verifier: str


def start(
    client: TestClient,
    shop: Shop,
    scope: str = "openid",
    claims: dict[str, Any] | None = None,
    **params: str,
) -> Started:
    oauth = oauth_client(client, shop, scope)
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    extra: dict[str, str] = {"nonce": nonce, **params}
    if claims is not None:
        extra["claims"] = json.dumps(claims)
    url, state = oauth.create_authorization_url(
        f"{BASE}/oauth2/authorize", code_verifier=verifier, **extra
    )
    return Started(oauth, url, state, nonce, verifier)


def consent_form(html: str) -> dict[str, str]:
    """The hidden fields of the consent page's form."""
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html)
    return {name: unescape(value) for name, value in fields if name not in ("next",)}


def authorize(client: TestClient, started: Started, decision: str = "allow") -> str:
    """Open the authorization URL as the signed-in browser; allow (or deny) if asked.
    Returns the redirect back to the shop."""
    answer = client.get(started.url, follow_redirects=False)
    if answer.status_code == 200 and 'data-testid="consent"' in answer.text:
        form = consent_form(answer.text)
        form.pop("language", None)
        answer = client.post(
            "/oauth2/authorize", data={**form, "decision": decision}, follow_redirects=False
        )
    assert answer.status_code in (302, 303), answer.text
    return str(answer.headers["location"])


def query(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def exchange(started: Started, location: str) -> dict[str, Any]:
    token: dict[str, Any] = started.oauth.fetch_token(
        f"{BASE}/oauth2/token",
        authorization_response=location,
        code_verifier=started.verifier,
    )
    return token


def log_in(
    client: TestClient, shop: Shop, scope: str = "openid", claims: dict[str, Any] | None = None
) -> tuple[Started, dict[str, Any]]:
    started = start(client, shop, scope, claims)
    return started, exchange(started, authorize(client, started))


def id_token_claims(client: TestClient, token: str, now: int, **expect: Any) -> dict[str, Any]:
    """The ID token checked as a shop would: signature by a key of the JWKS, issuer,
    audience, expiry (at the server's clock) and the claims expected."""
    keys = KeySet.import_key_set(client.get("/oauth2/jwks").json())
    decoded = jwt.decode(token, keys, algorithms=["ES256", "RS256"])
    options: dict[str, Any] = {
        "iss": {"essential": True, "value": BASE},
        "exp": {"essential": True},
    }
    options.update({name: {"essential": True, "value": value} for name, value in expect.items()})
    jwt.JWTClaimsRegistry(now=now, **options).validate(decoded.claims)
    claims: dict[str, Any] = decoded.claims
    return claims


def userinfo_answer(client: TestClient, token: dict[str, Any]) -> httpx.Response:
    """The userinfo endpoint asked with ``token``'s access token."""
    return client.get("/oauth2/userinfo", headers=bearer(token["access_token"]))


def code_grant(shop: Shop, started: Started, code: str) -> dict[str, str]:
    """The token request's form for ``code``, as the shop that started the log-in sends it."""
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": shop.redirect_uri,
        "code_verifier": started.verifier,
    }


def refresh_by_hand(client: TestClient, shop: Shop, refresh_token: str) -> httpx.Response:
    """The refresh grant posted as ``shop`` (not through Authlib), so that a refusal can
    be read."""
    return client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=credentials(shop),
    )


def introspect(client: TestClient, shop: Shop, token: str) -> httpx.Response:
    """What the introspection endpoint tells ``shop`` about ``token``."""
    return client.post("/oauth2/introspect", data={"token": token}, auth=credentials(shop))
