"""The OAuth checks of OWASP ASVS 5.0 chapter V10 that a provider answers for, one test
(or more) each; README's "Log in with Qianbao" section lists them."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from qianbao.clock import FrozenClock
from qianbao.openplatform.oidc import service
from tests.openplatform.oidc.helpers import (
    BASE,
    REDIRECT,
    Shop,
    authorize,
    code_grant,
    credentials,
    database,
    exchange,
    id_token_claims,
    introspect,
    log_in,
    query,
    refresh_by_hand,
    register_shop,
    sign_in_person,
    start,
    userinfo_answer,
)

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def request_url(shop: Shop, **overrides: str | None) -> str:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": shop.client_id,
        "redirect_uri": shop.redirect_uri,
        "scope": "openid",
        "state": "s-123",
        "nonce": "n-456",
        "code_challenge": challenge("v" * 50),
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return "/oauth2/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


def refused(client: TestClient, url: str) -> dict[str, str]:
    answer = client.get(url, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    params = query(answer.headers["location"])
    assert answer.headers["location"].startswith(REDIRECT)
    assert params["iss"] == BASE and "code" not in params
    return params


def client_assertion(key: ECKey, shop: Shop, jti: str, **times: int) -> str:
    """A private_key_jwt assertion of ``shop`` for the token endpoint, signed with ``key``;
    ``times``: its iat and exp."""
    claims = {
        "iss": shop.client_id,
        "sub": shop.client_id,
        "aud": f"{BASE}/oauth2/token",
        "jti": jti,
        **times,
    }
    return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)


def header_of(id_token: str) -> dict[str, Any]:
    """The ID token's JOSE header: which key signed it, with which algorithm."""
    header: dict[str, Any] = json.loads(base64.urlsafe_b64decode(id_token.split(".")[0] + "=="))
    return header


def test_v10_missing_pkce_is_refused(client: TestClient, shop: Shop) -> None:
    params = refused(client, request_url(shop, code_challenge=None, code_challenge_method=None))
    assert params["error"] == "invalid_request" and params["state"] == "s-123"


def test_v10_plain_pkce_is_refused(client: TestClient, shop: Shop) -> None:
    params = refused(
        client, request_url(shop, code_challenge="v" * 50, code_challenge_method="plain")
    )
    assert params["error"] == "invalid_request"
    no_method = refused(client, request_url(shop, code_challenge_method=None))  # means plain
    assert no_method["error"] == "invalid_request"


def test_v10_a_wrong_verifier_gets_no_token(client: TestClient, shop: Shop) -> None:
    started = start(client, shop)
    location = authorize(client, started)
    started.verifier = secrets.token_urlsafe(48)
    with pytest.raises(Exception, match="invalid_grant"):
        exchange(started, location)


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        REDIRECT + "/more",  # a prefix match would let this through
        REDIRECT + "?next=https://evil.example",
        REDIRECT.upper(),
    ],
)
def test_v10_a_redirect_uri_not_registered_exactly_is_never_used(
    client: TestClient, shop: Shop, redirect_uri: str
) -> None:
    answer = client.get(
        request_url(shop, redirect_uri=redirect_uri),
        headers={"Accept": "application/json"},
        follow_redirects=False,
    )
    assert answer.status_code == 400 and "location" not in answer.headers
    assert answer.json()["code"] == "oidc.invalid_request"


def test_v10_an_unknown_shop_gets_an_error_page_not_a_redirect(
    client: TestClient, shop: Shop
) -> None:
    answer = client.get(request_url(shop, client_id="nobody"), follow_redirects=False)
    assert answer.status_code == 400 and "location" not in answer.headers


def test_v10_missing_state_is_refused(client: TestClient, shop: Shop) -> None:
    params = refused(client, request_url(shop, state=None))
    assert params["error"] == "invalid_request" and "state" not in params


def test_v10_missing_nonce_is_refused(client: TestClient, shop: Shop) -> None:
    params = refused(client, request_url(shop, nonce=None))
    assert params["error"] == "invalid_request"


def test_v10_the_openid_scope_is_required(client: TestClient, shop: Shop) -> None:
    assert refused(client, request_url(shop, scope="profile"))["error"] == "invalid_request"


def test_v10_code_reuse_is_refused_and_revokes_the_tokens_it_gave(
    client: TestClient, shop: Shop
) -> None:
    started = start(client, shop)
    location = authorize(client, started)
    first = exchange(started, location)
    code = query(location)["code"]
    again = client.post(
        "/oauth2/token", data=code_grant(shop, started, code), auth=credentials(shop)
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert userinfo_answer(client, first).status_code == 401
    refresh = refresh_by_hand(client, shop, first["refresh_token"])
    assert refresh.json()["error"] == "invalid_grant"


def test_v10_a_code_expires(client: TestClient, shop: Shop, clock: FrozenClock) -> None:
    started = start(client, shop)
    location = authorize(client, started)
    clock.advance(seconds=database(client).settings.oidc_code_seconds + 1)
    with pytest.raises(Exception, match="invalid_grant"):
        exchange(started, location)


def test_v10_another_shops_code_is_refused(client: TestClient, shop: Shop) -> None:
    other = register_shop(client, "shop-two")
    started = start(client, shop)
    code = query(authorize(client, started))["code"]
    answer = client.post(
        "/oauth2/token", data=code_grant(shop, started, code), auth=credentials(other)
    )
    assert answer.json()["error"] == "invalid_grant"


def test_v10_refresh_token_reuse_revokes_the_whole_family(client: TestClient, shop: Shop) -> None:
    started, token = log_in(client, shop)
    rotated = started.oauth.refresh_token(
        f"{BASE}/oauth2/token", refresh_token=token["refresh_token"]
    )
    replay = refresh_by_hand(client, shop, token["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert userinfo_answer(client, rotated).status_code == 401
    newest = refresh_by_hand(client, shop, rotated["refresh_token"])
    assert newest.json()["error"] == "invalid_grant"


def test_v10_one_shops_token_at_another_shops_introspection_is_inactive(
    client: TestClient, shop: Shop
) -> None:
    other = register_shop(client, "shop-two")
    token = log_in(client, shop)[1]
    for value in (token["access_token"], token["refresh_token"]):
        answer = introspect(client, other, value)
        assert answer.status_code == 200 and answer.json() == {"active": False}
    # Nor can it revoke it.
    client.post("/oauth2/revoke", data={"token": token["access_token"]}, auth=credentials(other))
    own = introspect(client, shop, token["access_token"])
    assert own.json()["active"] is True


def test_v10_introspection_needs_the_shops_credentials(client: TestClient, shop: Shop) -> None:
    token = log_in(client, shop)[1]
    anonymous = client.post("/oauth2/introspect", data={"token": token["access_token"]})
    assert anonymous.status_code in (400, 401) and anonymous.json()["error"] == "invalid_client"
    wrong = client.post(
        "/oauth2/introspect", data={"token": token["access_token"]}, auth=(shop.client_id, "wrong")
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"


def test_v10_no_client_authentication_no_token(client: TestClient, shop: Shop) -> None:
    started = start(client, shop)
    code = query(authorize(client, started))["code"]
    answer = client.post(
        "/oauth2/token", data={**code_grant(shop, started, code), "client_id": shop.client_id}
    )
    assert answer.json()["error"] == "invalid_client"


def test_v10_an_id_token_signed_by_an_unknown_key_fails(
    client: TestClient, shop: Shop, clock: FrozenClock
) -> None:
    token = log_in(client, shop)[1]
    now = int(clock.now().timestamp())
    genuine = id_token_claims(client, token["id_token"], now)
    forger = ECKey.generate_key("P-256", auto_kid=True)
    forged = jwt.encode({"alg": "ES256", "kid": forger.kid}, genuine, forger)
    with pytest.raises((JoseError, ValueError)):
        id_token_claims(client, forged, now)


def test_key_rotation_keeps_the_old_key_published_until_its_tokens_expired(
    client: TestClient, shop: Shop, clock: FrozenClock
) -> None:
    token = log_in(client, shop)[1]
    old_kid = header_of(token["id_token"])["kid"]
    db = database(client)
    new_kid, retired = db.run(service.rotate_signing_key)
    assert retired == [old_kid] and new_kid != old_kid
    kids = {key["kid"] for key in client.get("/oauth2/jwks").json()["keys"]}
    assert kids == {old_kid, new_kid}
    now = int(clock.now().timestamp())
    assert id_token_claims(client, token["id_token"], now)["aud"] == [shop.client_id]
    fresh = log_in(client, shop)[1]
    assert header_of(fresh["id_token"])["kid"] == new_kid
    clock.advance(seconds=db.settings.oidc_id_token_seconds + 1)
    kids = {key["kid"] for key in client.get("/oauth2/jwks").json()["keys"]}
    assert kids == {new_kid}
    keys = KeySet.import_key_set(client.get("/oauth2/jwks").json())
    with pytest.raises((JoseError, ValueError)):  # the key is unknown now
        jwt.decode(token["id_token"], keys, algorithms=["ES256"])


def test_private_key_jwt_authenticates_and_a_replayed_assertion_does_not(
    client: TestClient, clock: FrozenClock
) -> None:
    key = ECKey.generate_key("P-256", auto_kid=True)
    public = json.dumps(KeySet([key]).as_dict(private=False))
    shop = register_shop(client, "jwt-shop", auth_method="private_key_jwt", jwks=public)
    assert shop.secret is None
    sign_in_person(client)
    started = start(client, shop)
    location = authorize(client, started)
    now = int(clock.now().timestamp())
    form = {
        **code_grant(shop, started, query(location)["code"]),
        "client_assertion_type": JWT_BEARER,
        "client_assertion": client_assertion(key, shop, "once", iat=now, exp=now + 60),
    }
    first = client.post("/oauth2/token", data=form)
    assert first.status_code == 200, first.text
    replay = client.post(
        "/oauth2/token",
        data={
            **form,
            "grant_type": "refresh_token",
            "refresh_token": first.json()["refresh_token"],
        },
    )
    assert replay.json()["error"] == "invalid_client"
    stranger = ECKey.generate_key("P-256", auto_kid=True)
    forged = client_assertion(stranger, shop, "two", exp=now + 60)
    refused = client.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first.json()["refresh_token"],
            "client_assertion_type": JWT_BEARER,
            "client_assertion": forged,
        },
    )
    assert refused.json()["error"] == "invalid_client"


@pytest.mark.parametrize("nonce", ["n" * 257, "a\x00b"])
def test_a_nonce_that_cannot_be_kept_is_refused_not_a_server_error(
    client: TestClient, shop: Shop, nonce: str
) -> None:
    assert refused(client, request_url(shop, nonce=nonce))["error"] == "invalid_request"


@pytest.mark.parametrize("client_id", ["a\x00b", "x" * 300])
def test_an_odd_client_id_is_an_unknown_client_not_a_server_error(
    client: TestClient, shop: Shop, client_id: str
) -> None:
    page = client.get(request_url(shop, client_id=client_id), follow_redirects=False)
    assert page.status_code in (400, 422)
    token = client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        auth=(client_id, "secret"),
    )
    assert token.status_code in (400, 401) and token.json()["error"] == "invalid_client"


def test_rs256_keys_when_the_setting_asks(
    client: TestClient, shop: Shop, clock: FrozenClock
) -> None:
    db = database(client)
    db.settings.oidc_signing_alg = "RS256"
    db.run(service.rotate_signing_key)
    token = log_in(client, shop)[1]
    assert header_of(token["id_token"])["alg"] == "RS256"
    claims = id_token_claims(client, token["id_token"], int(clock.now().timestamp()))
    assert claims["aud"] == [shop.client_id]
    published = {key["kty"] for key in client.get("/oauth2/jwks").json()["keys"]}
    assert published == {"RSA"}  # no ES256 token was signed before: none to keep
