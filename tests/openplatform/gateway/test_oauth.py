"""Log in with Qianbao the Alipay way: Alipay's official SDK exchanges the code of
Qianbao's /oauth2/authorize with ``alipay.system.oauth.token`` and reads the person with
``alipay.user.info.share``, against a live server; the refusals as Alipay's codes."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from alipay.aop.api.request.AlipaySystemOauthTokenRequest import AlipaySystemOauthTokenRequest
from alipay.aop.api.request.AlipayUserInfoShareRequest import AlipayUserInfoShareRequest
from fastapi.testclient import TestClient

from qianbao.clock import FrozenClock
from qianbao.errors import QianbaoError
from qianbao.identity import security
from qianbao.identity.phone import parse_mobile
from qianbao.openplatform.gateway import oauth
from qianbao.openplatform.oidc import service as oidc
from tests.api_helpers import api_sign_up
from tests.e2e.liveserver import LiveServer
from tests.openplatform.gateway.shop import Shop
from tests.openplatform.oidc.helpers import consent_form, verify_by_passport

REDIRECT = "https://teahouse.example/alipay/callback"
CLAIMS = {
    "userinfo": {
        "verified_claims": {
            "verification": {"trust_framework": None},
            "claims": {
                "given_name": None,
                "family_name": None,
                "nationalities": None,
                "birthdate": None,
                "identity_verified": None,
            },
        }
    }
}


pytestmark = pytest.mark.usefixtures("beijing_shop")


@pytest.fixture
def clock() -> FrozenClock:
    """The server's clock at the real time: the SDK stamps requests with its own."""
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


class Browser:
    """The person's browser at Qianbao, signed in."""

    def __init__(self, server: LiveServer, number: str = "07911 123456") -> None:
        self.http = httpx.Client(base_url=server.url)
        token = api_sign_up(cast(TestClient, self.http), number)["token"]
        self.http.cookies.set("qb_session", token)
        phone = parse_mobile(number, "GB")
        found = server.db.run(lambda tx: security.find_login(tx, phone.e164, phone))
        assert found is not None
        self.user_id: uuid.UUID = found.id

    def authorize(self, client_id: str, scope: str, claims: dict[str, Any] | None = None) -> Any:
        """Qianbao's /oauth2/authorize, consenting if asked: the code and its verifier."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": scope,
            "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
        if claims is not None:
            params["claims"] = json.dumps(claims)
        answer = self.http.get("/oauth2/authorize?" + urlencode(params))
        if answer.status_code == 200 and 'data-testid="consent"' in answer.text:
            form = consent_form(answer.text)
            form.pop("language", None)
            answer = self.http.post("/oauth2/authorize", data={**form, "decision": "allow"})
        assert answer.status_code in (302, 303), answer.text
        location = str(answer.headers["location"])
        assert location.startswith(REDIRECT)
        code = parse_qs(urlsplit(location).query)["code"][0]
        return code, verifier


@pytest.fixture
def person(server: LiveServer) -> Browser:
    return Browser(server)


@pytest.fixture
def linked(server: LiveServer) -> Shop:
    shop = Shop(server)
    server.db.run(
        lambda tx: oidc.register_shop(
            tx,
            client_id="teahouse",
            name_en="Teahouse Online",
            name_zh="茶馆",
            redirect_uris=[REDIRECT],
        )
    )
    server.db.run(lambda tx: oauth.link_app_client(tx, shop.app_id, "teahouse"))
    return shop


def token_by_code(shop: Shop, code: str, verifier: str | None) -> dict[str, Any]:
    request = AlipaySystemOauthTokenRequest()
    request.grant_type, request.code = "authorization_code", code
    if verifier is not None:
        request.add_other_text_param("code_verifier", verifier)
    return shop.call(request)


def token_by_refresh(shop: Shop, refresh_token: str) -> dict[str, Any]:
    request = AlipaySystemOauthTokenRequest()
    request.grant_type, request.refresh_token = "refresh_token", refresh_token
    return shop.call(request)


def user_info(shop: Shop, auth_token: str) -> dict[str, Any]:
    request = AlipayUserInfoShareRequest()
    request.add_other_text_param("auth_token", auth_token)
    return shop.call(request)


def tokens_for(person: Browser, shop: Shop, scope: str) -> dict[str, Any]:
    """The person logs in to the teahouse with ``scope``; its app exchanges the code."""
    code, verifier = person.authorize("teahouse", scope)
    return token_by_code(shop, code, verifier)


def test_auth_user_gives_tokens_and_the_consented_verified_fields(
    server: LiveServer, linked: Shop, person: Browser
) -> None:
    verify_by_passport(server.db, person.user_id)
    code, verifier = person.authorize("teahouse", "openid profile identity", CLAIMS)

    tokens = token_by_code(linked, code, verifier)
    assert tokens["code"] == "10000", tokens
    open_id = server.db.run(lambda tx: oidc.subject(tx, "teahouse", person.user_id))
    assert tokens["open_id"] == open_id
    assert tokens["user_id"].startswith("2088") and len(tokens["user_id"]) == 16
    assert tokens["expires_in"] == str(server.settings.oidc_access_token_seconds)
    assert tokens["re_expires_in"] == str(server.settings.oidc_refresh_token_seconds)
    assert tokens["auth_start"] and tokens["access_token"] and tokens["refresh_token"]

    info = user_info(linked, tokens["access_token"])
    assert info["code"] == "10000", info
    assert info["open_id"] == open_id and info["user_id"] == tokens["user_id"]
    assert info["nick_name"].endswith("456") and "*" in info["nick_name"]
    assert info["user_name"] == "ADA MARY LOVELACE"
    assert info["country_code"] == "GBR"
    assert info["person_birthday"] == "19900501"
    assert info["is_certified"] == "T"
    assert "mobile" not in info and "email" not in info  # scopes not asked

    # The code works once: shown again it is refused (and revokes what it gave).
    again = token_by_code(linked, code, verifier)
    assert (again["code"], again["sub_code"]) == ("40002", "isv.code-invalid")
    revoked = user_info(linked, tokens["access_token"])
    assert (revoked["code"], revoked["sub_code"]) == ("20001", "aop.invalid-auth-token")


def test_refresh_rotates_and_a_reused_refresh_token_is_refused(
    linked: Shop, person: Browser
) -> None:
    first = tokens_for(person, linked, "openid profile")
    second = token_by_refresh(linked, first["refresh_token"])
    assert second["code"] == "10000" and second["open_id"] == first["open_id"]
    assert second["refresh_token"] != first["refresh_token"]
    assert user_info(linked, second["access_token"])["nick_name"]

    reused = token_by_refresh(linked, first["refresh_token"])
    assert (reused["code"], reused["sub_code"]) == ("40002", "isv.refresh-token-invalid")
    # Reuse revoked the whole family: the newest token too.
    killed = token_by_refresh(linked, second["refresh_token"])
    assert killed["sub_code"] == "isv.refresh-token-invalid"


def test_auth_base_is_the_subject_only_without_consent(
    server: LiveServer, linked: Shop, person: Browser
) -> None:
    verify_by_passport(server.db, person.user_id)
    tokens = tokens_for(person, linked, "openid")
    info = user_info(linked, tokens["access_token"])
    assert info["code"] == "10000"
    assert set(info) - {"code", "msg"} == {"user_id", "open_id"}


def test_refusals_as_alipays_codes(server: LiveServer, linked: Shop, person: Browser) -> None:
    code, verifier = person.authorize("teahouse", "openid profile")

    no_verifier = token_by_code(linked, code, None)
    assert (no_verifier["code"], no_verifier["sub_code"]) == ("40002", "isv.code-invalid")
    wrong = token_by_code(linked, code, secrets.token_urlsafe(48))
    assert wrong["sub_code"] == "isv.code-invalid"
    unknown = token_by_code(linked, "no-such-code", verifier)
    assert unknown["sub_code"] == "isv.code-invalid"

    bad_grant = AlipaySystemOauthTokenRequest()
    bad_grant.grant_type, bad_grant.code = "password", code
    refused = linked.call(bad_grant)
    assert (refused["code"], refused["sub_code"]) == ("40002", "isv.grant-type-invalid")
    assert user_info(linked, "made-up")["sub_code"] == "aop.invalid-auth-token"

    # An app not linked to a Log in with Qianbao shop cannot exchange codes at all.
    other = Shop(server)
    lonely = token_by_code(other, code, verifier)
    assert (lonely["code"], lonely["sub_code"]) == ("40006", "isv.insufficient-isv-permissions")

    # A token of another shop (linked to another app) is not this app's.
    server.db.run(
        lambda tx: oidc.register_shop(
            tx, client_id="other-shop", name_en="Other", name_zh="别家", redirect_uris=[REDIRECT]
        )
    )
    server.db.run(lambda tx: oauth.link_app_client(tx, other.app_id, "other-shop"))
    tokens = token_by_code(linked, code, verifier)  # the code still unused: the right app
    assert tokens["code"] == "10000"
    foreign = user_info(other, tokens["access_token"])
    assert foreign["sub_code"] == "aop.invalid-auth-token"


def test_removing_the_shop_in_authorized_apps_ends_the_tokens(
    server: LiveServer, linked: Shop, person: Browser
) -> None:
    tokens = tokens_for(person, linked, "openid profile")
    server.db.run(lambda tx: oidc.revoke_app(tx, person.user_id, "teahouse"))
    assert user_info(linked, tokens["access_token"])["sub_code"] == "aop.invalid-auth-token"
    refreshed = token_by_refresh(linked, tokens["refresh_token"])
    assert refreshed["sub_code"] == "isv.refresh-token-invalid"


def test_linking_checks_the_app_and_the_shop(server: LiveServer) -> None:
    shop = Shop(server)
    with pytest.raises(QianbaoError) as refused:
        server.db.run(lambda tx: oauth.link_app_client(tx, shop.app_id, "nobody"))
    assert refused.value.code == "oidc.unknown_client"
    assert server.db.run(lambda tx: oauth.linked_client(tx, shop.app_id)) is None
