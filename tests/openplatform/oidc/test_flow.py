"""The authorization code flow end to end, as a shop drives it with Authlib's client:
silent sign-in, consent, ID token, userinfo, refresh, revocation, introspection."""

from __future__ import annotations

from fastapi.testclient import TestClient

from qianbao.clock import FrozenClock
from tests.openplatform.oidc.helpers import (
    BASE,
    authorize,
    database,
    id_token_claims,
    log_in,
    query,
    register_shop,
    sign_in_person,
    start,
)


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
    client: TestClient, clock: FrozenClock
) -> None:
    shop = register_shop(client)
    sign_in_person(client)
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
    info = client.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert info.status_code == 200 and info.json() == {"sub": claims["sub"]}


def test_two_shops_see_different_subjects_for_one_person(client: TestClient) -> None:
    one, two = register_shop(client, "shop-one"), register_shop(client, "shop-two")
    sign_in_person(client)
    first = log_in(client, one)[1]
    second = log_in(client, two)[1]
    again = log_in(client, one)[1]

    def sub(token: dict[str, str]) -> str:
        answer = client.get(
            "/oauth2/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}
        )
        return str(answer.json()["sub"])

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


def test_the_consent_page_says_what_the_shop_gets_and_is_remembered(client: TestClient) -> None:
    shop = register_shop(client)
    sign_in_person(client)
    started = start(client, shop, "openid profile phone")
    page = client.get(started.url, follow_redirects=False)
    assert page.status_code == 200
    assert "Wholesale One wants to link your Qianbao account" in page.text
    assert 'data-testid="scope-phone"' in page.text and 'data-testid="scope-email"' not in page.text
    location = authorize(client, started)
    token = started.oauth.fetch_token(
        f"{BASE}/oauth2/token", authorization_response=location, code_verifier=started.verifier
    )
    info = client.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert info.json()["phone_number"] == "+447911123456"
    assert info.json()["nickname"].startswith("+44") and "123456" not in info.json()["nickname"]
    # Asked again for the same: no page. For more (email): the page again.
    assert (
        client.get(start(client, shop, "openid phone").url, follow_redirects=False).status_code
        == 302
    )
    more = client.get(start(client, shop, "openid phone email").url, follow_redirects=False)
    assert more.status_code == 200 and 'data-testid="scope-email"' in more.text


def test_the_consent_page_speaks_chinese_with_the_shops_chinese_name(client: TestClient) -> None:
    shop = register_shop(client)
    sign_in_person(client)
    client.cookies.set("qb_lang", "zh_Hans")
    page = client.get(start(client, shop, "openid phone").url, follow_redirects=False)
    assert "批发一号" in page.text and "Wholesale One" not in page.text


def test_denying_sends_access_denied_back_to_the_shop(client: TestClient) -> None:
    shop = register_shop(client)
    sign_in_person(client)
    started = start(client, shop, "openid email")
    params = query(authorize(client, started, decision="deny"))
    assert params["error"] == "access_denied" and params["iss"] == BASE
    assert params["state"] == started.state


def test_refresh_rotates_and_a_fresh_id_token_comes_with_it(
    client: TestClient, clock: FrozenClock
) -> None:
    shop = register_shop(client)
    sign_in_person(client)
    started, token = log_in(client, shop)
    refreshed = started.oauth.refresh_token(
        f"{BASE}/oauth2/token", refresh_token=token["refresh_token"]
    )
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert refreshed["access_token"] != token["access_token"]
    now = int(clock.now().timestamp())
    claims = id_token_claims(client, refreshed["id_token"], now, aud=shop.client_id)
    assert claims["sub"] == id_token_claims(client, token["id_token"], now)["sub"]


def test_access_tokens_expire_after_the_setting(client: TestClient, clock: FrozenClock) -> None:
    shop = register_shop(client)
    sign_in_person(client)
    token = log_in(client, shop)[1]
    assert token["expires_in"] == database(client).settings.oidc_access_token_seconds
    clock.advance(seconds=token["expires_in"] + 1)
    answer = client.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_token"


def test_revocation_kills_the_refresh_token_and_its_access_token(client: TestClient) -> None:
    shop = register_shop(client)
    sign_in_person(client)
    token = log_in(client, shop)[1]
    answer = client.post(
        "/oauth2/revoke",
        data={"token": token["refresh_token"], "token_type_hint": "refresh_token"},
        auth=(shop.client_id, shop.secret or ""),
    )
    assert answer.status_code == 200
    info = client.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert info.status_code == 401
    again = client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        auth=(shop.client_id, shop.secret or ""),
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_introspection_tells_the_shop_about_its_own_token(client: TestClient) -> None:
    shop = register_shop(client)
    sign_in_person(client)
    token = log_in(client, shop)[1]
    answer = client.post(
        "/oauth2/introspect",
        data={"token": token["access_token"]},
        auth=(shop.client_id, shop.secret or ""),
    ).json()
    assert answer["active"] is True and answer["client_id"] == shop.client_id
    assert answer["scope"] == "openid" and answer["iss"] == BASE
