"""The person's authorized apps (page and API) and the back office's shops page."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.testclient import TestClient

from qianbao.access import Role
from qianbao.clock import FrozenClock
from qianbao.identity import staff
from qianbao.openplatform.oidc import service
from tests.openplatform.oidc.helpers import (
    BASE,
    IDENTITY_CLAIMS,
    Shop,
    database,
    introspect,
    log_in,
    refresh_by_hand,
    sign_in_person,
    start,
    userinfo_answer,
    verify_by_passport,
)

PASSWORD = "a long staff passphrase"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_authorized_apps_lists_and_revoking_kills_the_shops_tokens_at_once(
    client: TestClient, shop: Shop, person: uuid.UUID
) -> None:
    verify_by_passport(database(client), person)
    _started, token = log_in(client, shop, "openid identity phone", IDENTITY_CLAIMS)
    security = client.get("/me/security")
    assert 'href="/me/authorized-apps"' in security.text
    listed = client.get(
        "/api/v1/me/authorized-apps",
        headers={"Authorization": f"Bearer {client.cookies['qb_session']}"},
    ).json()
    assert [app["client_id"] for app in listed] == [shop.client_id]
    assert listed[0]["scopes"] == ["identity", "phone"]
    assert listed[0]["verified_claims"] == [
        "family_name",
        "given_name",
        "identity_verified",
        "nationalities",
    ]
    page = client.get("/me/authorized-apps")
    assert 'data-testid="app-shop-one"' in page.text and "Wholesale One" in page.text
    revoked = client.post(
        f"/me/authorized-apps/{shop.client_id}/revoke",
        data={"csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert revoked.status_code == 303
    assert userinfo_answer(client, token).status_code == 401
    refresh = refresh_by_hand(client, shop, token["refresh_token"])
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    assert 'data-testid="no-apps"' in client.get("/me/authorized-apps").text
    again = start(client, shop, "openid phone")
    assert client.get(again.url, follow_redirects=False).status_code == 200  # asked again


def test_the_api_revokes_too_and_an_unknown_shop_is_404(client: TestClient, shop: Shop) -> None:
    token = log_in(client, shop, "openid email")[1]
    auth = {"Authorization": f"Bearer {client.cookies['qb_session']}"}
    missing = client.delete("/api/v1/me/authorized-apps/nobody", headers=auth)
    assert missing.status_code == 404 and missing.json()["code"] == "app.not_found"
    page = client.get("/me/authorized-apps")
    odd = client.post(
        "/me/authorized-apps/a%00b/revoke",
        data={"csrf": csrf_of(page.text)},
        headers={"Accept": "application/json"},
    )
    assert odd.status_code in (404, 422)
    assert (
        client.delete(f"/api/v1/me/authorized-apps/{shop.client_id}", headers=auth).status_code
        == 204
    )
    introspected = introspect(client, shop, token["access_token"])
    assert introspected.json() == {"active": False}


def test_the_silent_sign_in_leaves_no_authorized_app(client: TestClient, shop: Shop) -> None:
    log_in(client, shop)
    assert (
        client.get(
            "/api/v1/me/authorized-apps",
            headers={"Authorization": f"Bearer {client.cookies['qb_session']}"},
        ).json()
        == []
    )


@pytest.fixture
def admin(client: TestClient) -> None:
    db = database(client)
    staff.create_staff(db, "ops", "Ops", PASSWORD, Role.ADMIN)
    token, _ = staff.sign_in(db, "ops", PASSWORD)
    client.cookies.set("qb_staff", token)


@pytest.mark.usefixtures("admin")
def test_an_administrator_adds_a_shop_and_sees_its_secret_once(client: TestClient) -> None:
    page = client.get("/admin/shops")
    assert page.status_code == 200 and 'data-testid="new-shop"' in page.text
    added = client.post(
        "/admin/shops",
        data={
            "csrf": csrf_of(page.text),
            "name_en": "Tea House",
            "name_zh": "茶馆",
            "redirect_uris": "https://tea.example/cb\nhttps://tea.example/cb2",
            "auth_method": "client_secret_basic",
        },
    )
    secret = re.search(r'data-testid="shop-secret">([^<]+)<', added.text)
    assert added.status_code == 200 and secret is not None
    shops = database(client).run(service.shops)
    tea = next(shop for shop in shops if shop.name_en == "Tea House")
    assert tea.redirect_uris == ("https://tea.example/cb", "https://tea.example/cb2")
    row = database(client).run(lambda tx: service.find_shop(tx, tea.client_id))
    assert row is not None
    assert database(client).run(lambda tx: service.check_secret(tx, row, secret.group(1)))
    assert secret.group(1) not in client.get("/admin/shops").text  # shown once


@pytest.mark.usefixtures("admin")
def test_a_bad_shop_is_refused_with_a_reason(client: TestClient) -> None:
    page = client.get("/admin/shops")
    answer = client.post(
        "/admin/shops",
        data={
            "csrf": csrf_of(page.text),
            "name_en": "X" * 500,
            "name_zh": "Y",
            "redirect_uris": "https://x.example/cb",
        },
    )
    assert answer.status_code == 422 and 'data-code="shop.name_length"' in answer.text
    bad_uri = client.post(
        "/admin/shops",
        data={"csrf": csrf_of(page.text), "name_en": "X", "name_zh": "Y", "redirect_uris": "x"},
    )
    assert 'data-code="shop.redirect_uri"' in bad_uri.text


def test_a_person_cannot_open_the_shops_page(client: TestClient) -> None:
    sign_in_person(client)
    answer = client.get("/admin/shops", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/login"


def test_the_demo_marketplace_is_registered_from_the_settings(client: TestClient) -> None:
    db = database(client)
    shop = db.run(service.seed_demo_shop)
    assert shop.client_id == "demo-marketplace"
    assert shop.redirect_uris == ("http://127.0.0.1:8001/auth/qianbao/callback",)
    assert (shop.name_en, shop.name_zh) == ("Wholesale Market (demo)", "批发市场（演示）")
    row = db.run(lambda tx: service.find_shop(tx, "demo-marketplace"))
    assert row is not None
    assert db.run(lambda tx: service.check_secret(tx, row, "demo-marketplace-secret"))
    assert db.run(service.seed_demo_shop).client_id == "demo-marketplace"  # seeding twice is fine
    assert db.settings.issuer() == BASE


def test_the_worker_prunes_what_can_no_longer_be_used(
    client: TestClient, shop: Shop, clock: FrozenClock
) -> None:
    token = log_in(client, shop)[1]
    db = database(client)
    assert db.run(service.prune) == 0  # everything still lives
    clock.advance(seconds=db.settings.oidc_refresh_token_seconds + 86400 + 1)
    assert db.run(service.prune) == 2  # the code and the token
    answer = introspect(client, shop, token["refresh_token"])
    assert answer.json() == {"active": False}
