"""The authorization code flow end to end, as a shop drives it with Authlib's client:
silent sign-in, consent, ID token, userinfo, refresh, revocation, introspection."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient

from qianbao.clock import FrozenClock
from tests.api_helpers import AGREEMENT, outbox_code
from tests.openplatform.oidc.helpers import (
    BASE,
    Shop,
    authorize,
    credentials,
    database,
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
from tests.web.test_pages import csrf


def test_discovery_names_the_endpoints_and_identity_assurance_metadata(client: TestClient) -> None:
    found = client.get("/.well-known/openid-configuration").json()
    assert found["issuer"] == BASE
    assert found["token_endpoint"] == f"{BASE}/oauth2/token"
    assert found["code_challenge_methods_supported"] == ["S256"]
    assert found["authorization_response_iss_parameter_supported"] is True
    assert found["subject_types_supported"] == ["pairwise"]
    assert "private_key_jwt" in found["token_endpoint_auth_methods_supported"]
    assert found["verified_claims_supported"] is True
    assert found["trust_frameworks_supported"] == ["nist_800_63A"]
    assert found["documents_check_methods_supported"] == ["vpip", "vcrypt", "bvr", "pvr", "data"]
    assert found["claims_parameter_supported"] is True
    assert set(found["claims_in_verified_claims_supported"]) >= {"given_name", "age_over_18"}
    assert found["electronic_records_supported"] == ["bank_account"]


def test_openid_alone_signs_in_silently_with_only_a_pairwise_subject(
    client: TestClient, shop: Shop, clock: FrozenClock
) -> None:
    started = start(client, shop)
    location = authorize(client, started)  # no consent page in between
    params = query(location)
    assert location.startswith(shop.redirect_uri)
    assert params["state"] == started.state and params["iss"] == BASE
    token = started.oauth.fetch_token(
        f"{BASE}/oauth2/token", authorization_response=location, code_verifier=started.verifier
    )
    now = int(clock.now().timestamp())
    claims = id_token_claims(
        client, token["id_token"], now, aud=shop.client_id, nonce=started.nonce
    )
    assert set(claims) >= {"sub", "at_hash", "auth_time"} and "verified_claims" not in claims
    info = userinfo_answer(client, token)
    assert info.status_code == 200 and info.json() == {"sub": claims["sub"]}


def test_two_shops_see_different_subjects_for_one_person(client: TestClient) -> None:
    one, two = register_shop(client, "shop-one"), register_shop(client, "shop-two")
    sign_in_person(client)
    first = log_in(client, one)[1]
    second = log_in(client, two)[1]
    again = log_in(client, one)[1]

    def sub(token: dict[str, str]) -> str:
        return str(userinfo_answer(client, token).json()["sub"])

    assert sub(first) == sub(again) != sub(second)


def test_a_signed_out_person_is_sent_to_sign_in_and_back(client: TestClient) -> None:
    shop = register_shop(client)
    started = start(client, shop)
    answer = client.get(started.url, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    back = answer.cookies.get("qianbao_after_login") or client.cookies.get("qianbao_after_login")
    assert back is not None and back.strip('"').startswith("/oauth2/authorize?")


def test_prompt_none_signed_out_answers_login_required_to_the_shop(client: TestClient) -> None:
    shop = register_shop(client)
    started = start(client, shop, prompt="none")
    answer = client.get(started.url, follow_redirects=False)
    params = query(answer.headers["location"])
    assert params["error"] == "login_required" and params["iss"] == BASE
    assert params["state"] == started.state


def test_the_consent_page_says_what_the_shop_gets_and_is_remembered(
    client: TestClient, shop: Shop
) -> None:
    started = start(client, shop, "openid profile phone")
    page = client.get(started.url, follow_redirects=False)
    assert page.status_code == 200
    assert "Wholesale One wants to link your Qianbao account" in page.text
    assert 'data-testid="scope-phone"' in page.text and 'data-testid="scope-email"' not in page.text
    location = authorize(client, started)
    token = started.oauth.fetch_token(
        f"{BASE}/oauth2/token", authorization_response=location, code_verifier=started.verifier
    )
    info = userinfo_answer(client, token)
    assert info.json()["phone_number"] == "+447911123456"
    assert info.json()["nickname"].startswith("+44") and "123456" not in info.json()["nickname"]
    # Asked again for the same: no page. For more (email): the page again.
    assert (
        client.get(start(client, shop, "openid phone").url, follow_redirects=False).status_code
        == 302
    )
    more = client.get(start(client, shop, "openid phone email").url, follow_redirects=False)
    assert more.status_code == 200 and 'data-testid="scope-email"' in more.text


def test_the_consent_page_speaks_chinese_with_the_shops_chinese_name(
    client: TestClient, shop: Shop
) -> None:
    client.cookies.set("qb_lang", "zh_Hans")
    page = client.get(start(client, shop, "openid phone").url, follow_redirects=False)
    assert "批发一号" in page.text and "Wholesale One" not in page.text


def test_denying_sends_access_denied_back_to_the_shop(client: TestClient, shop: Shop) -> None:
    started = start(client, shop, "openid email")
    params = query(authorize(client, started, decision="deny"))
    assert params["error"] == "access_denied" and params["iss"] == BASE
    assert params["state"] == started.state


def test_refresh_rotates_and_a_fresh_id_token_comes_with_it(
    client: TestClient, shop: Shop, clock: FrozenClock
) -> None:
    started, token = log_in(client, shop)
    refreshed = started.oauth.refresh_token(
        f"{BASE}/oauth2/token", refresh_token=token["refresh_token"]
    )
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert refreshed["access_token"] != token["access_token"]
    now = int(clock.now().timestamp())
    claims = id_token_claims(client, refreshed["id_token"], now, aud=shop.client_id)
    assert claims["sub"] == id_token_claims(client, token["id_token"], now)["sub"]


def test_access_tokens_expire_after_the_setting(
    client: TestClient, shop: Shop, clock: FrozenClock
) -> None:
    token = log_in(client, shop)[1]
    assert token["expires_in"] == database(client).settings.oidc_access_token_seconds
    clock.advance(seconds=token["expires_in"] + 1)
    answer = userinfo_answer(client, token)
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_token"


def test_revocation_kills_the_refresh_token_and_its_access_token(
    client: TestClient, shop: Shop
) -> None:
    token = log_in(client, shop)[1]
    answer = client.post(
        "/oauth2/revoke",
        data={"token": token["refresh_token"], "token_type_hint": "refresh_token"},
        auth=credentials(shop),
    )
    assert answer.status_code == 200
    info = userinfo_answer(client, token)
    assert info.status_code == 401
    again = refresh_by_hand(client, shop, token["refresh_token"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_introspection_tells_the_shop_about_its_own_token(client: TestClient, shop: Shop) -> None:
    token = log_in(client, shop)[1]
    answer = introspect(client, shop, token["access_token"]).json()
    assert answer["active"] is True and answer["client_id"] == shop.client_id
    assert answer["scope"] == "openid" and answer["iss"] == BASE


def test_signing_up_on_the_way_comes_back_to_the_shop(client: TestClient) -> None:
    """A new person: the shop's request, Qianbao's sign-up by SMS code, back to the
    request, and on to the shop with a code."""
    shop = register_shop(client)
    started = start(client, shop)
    assert client.get(started.url, follow_redirects=False).headers["location"] == "/"
    token = csrf(client)
    client.post("/start", data={"csrf": token, "country": "GB", "number": "07911 123456"})
    client.post(
        "/signup",
        data={
            "csrf": token,
            "country": "GB",
            "number": "07911 123456",
            "agree": "yes",
            "agreement_version": AGREEMENT,
        },
    )
    code = outbox_code(client, "+447911123456")
    done = client.post(
        "/code",
        data={"csrf": token, "phone": "+447911123456", "purpose": "signup", "code": code},
        follow_redirects=False,
    )
    assert done.headers["location"].startswith("/oauth2/authorize?")
    back = client.get(done.headers["location"], follow_redirects=False)
    params = query(back.headers["location"])
    assert params["state"] == started.state and "code" in params
    assert started.oauth.fetch_token(
        f"{BASE}/oauth2/token",
        authorization_response=back.headers["location"],
        code_verifier=started.verifier,
    )["id_token"]


def test_after_our_own_sign_in_form_the_shop_is_reached_through_a_page(
    client: TestClient, shop: Shop
) -> None:
    """A form's form-action 'self' would block a redirect to the shop that follows it:
    a browser coming from our own pages gets a page that moves on by itself."""
    started = start(client, shop)
    answer = client.get(started.url, headers={"Sec-Fetch-Site": "same-origin"})
    assert answer.status_code == 200 and 'data-testid="continue"' in answer.text
    target = re.search(r'http-equiv="refresh" content="0;url=([^"]+)"', answer.text)
    assert target is not None
    assert query(html.unescape(target.group(1)))["state"] == started.state
    from_shop = client.get(
        started.url, headers={"Sec-Fetch-Site": "cross-site"}, follow_redirects=False
    )
    assert from_shop.status_code == 302


def test_prompt_consent_asks_again_even_when_remembered(client: TestClient, shop: Shop) -> None:
    log_in(client, shop, "openid phone")
    remembered = client.get(start(client, shop, "openid phone").url, follow_redirects=False)
    assert remembered.status_code == 302
    asked = client.get(start(client, shop, "openid phone", prompt="consent").url)
    assert asked.status_code == 200 and 'data-testid="consent"' in asked.text


def test_the_token_endpoint_answers_over_plain_http_inside_a_network(client: TestClient) -> None:
    """The demo's compose network reaches Qianbao as http://app:8000; whether shops use
    https is the deployment's (the public URL), not a 500 here."""
    shop = register_shop(client)
    answer = client.post(
        "http://app:8000/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": "unknown"},
        auth=credentials(shop),
    )
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
