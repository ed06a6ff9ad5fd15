"""The demo marketplace (examples/marketplace) against an OpenID Connect stub over HTTP:
the restriction until verified, the link and its badge, signing in with Qianbao, the
link's end on revocation, and every check the shop makes of Qianbao's answers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from babel.messages.extract import extract_from_dir
from fastapi.testclient import TestClient
from marketplace import qianbao_client
from marketplace.app import create_app
from marketplace.i18n import translations
from marketplace.settings import Settings

from tests.examples.oidc_stub import Stub, chip_verified_claims, serve

EMAIL = "buyer@example.com"
PASSWORD = "wholesale-2026"
BADGE_EN = "verified via Qianbao (passport chip)"
BADGE_ZH = "已通过钱包验证（护照芯片）"
MARKETPLACE = Path(__file__).parents[2] / "examples" / "marketplace"


@pytest.fixture
def stub() -> Iterator[Stub]:
    with serve(Stub()) as running:
        yield running


def shop_settings(stub: Stub, tmp_path: Path, interval: int = 3600) -> Settings:
    return Settings(
        issuer=stub.issuer,
        database=tmp_path / "shop.db",
        link_check_interval_seconds=interval,
    )


@pytest.fixture
def shop(stub: Stub, tmp_path: Path) -> TestClient:
    return TestClient(create_app(shop_settings(stub, tmp_path)), follow_redirects=False)


def csrf(shop: TestClient, path: str = "/") -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', shop.get(path).text)
    assert found is not None
    return found.group(1)


def sign_up(shop: TestClient, email: str = EMAIL) -> None:
    answer = shop.post(
        "/signup", data={"email": email, "password": PASSWORD, "csrf_token": csrf(shop, "/signup")}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/account"


def through_qianbao(shop: TestClient, action: str, page: str) -> httpx.Response:
    """Starts ``action`` at the shop, lets the stub answer, and brings the answer back."""
    started = shop.post(action, data={"csrf_token": csrf(shop, page)})
    assert started.status_code == 303, started.text
    at_qianbao = httpx.get(started.headers["location"], follow_redirects=False)
    assert at_qianbao.status_code == 302, at_qianbao.text
    callback = urlsplit(at_qianbao.headers["location"])
    assert callback.path == "/auth/qianbao/callback"
    return shop.get(f"{callback.path}?{callback.query}")


def link(shop: TestClient) -> httpx.Response:
    return through_qianbao(shop, "/auth/qianbao/link", "/account")


def status_of(page: str) -> tuple[str, str]:
    account = re.search(r'data-testid="account-status" data-state="(\w+)"', page)
    linked = re.search(r'data-testid="qianbao-link" data-state="(\w+)"', page)
    assert account is not None and linked is not None
    return account.group(1), linked.group(1)


def order(shop: TestClient, quantity: str = "50") -> httpx.Response:
    return shop.post(
        "/orders",
        data={"product_id": "flask-500", "quantity": quantity, "csrf_token": csrf(shop)},
    )


def test_a_new_account_is_restricted_and_cannot_order(shop: TestClient) -> None:
    sign_up(shop)
    page = shop.get("/account").text
    assert status_of(page) == ("restricted", "none")
    assert "Restricted until verified" in page and "Link your Qianbao" in page
    refused = order(shop)
    assert refused.status_code == 400
    assert 'data-code="order.restricted"' in refused.text


def test_linking_a_verified_qianbao_lifts_the_restriction_with_the_chip_badge(
    shop: TestClient, stub: Stub
) -> None:
    sign_up(shop)
    assert link(shop).headers["location"] == "/account"

    asked = stub.authorize_requests[-1]
    assert asked["scope"] == "openid identity"
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert asked["redirect_uri"] == "http://127.0.0.1:8001/auth/qianbao/callback"
    claims = json.loads(asked["claims"])
    for target in ("userinfo", "id_token"):
        wanted = claims[target]["verified_claims"]
        assert set(wanted["claims"]) == {"given_name", "family_name", "nationalities"}
        assert "evidence" in wanted["verification"]

    page = shop.get("/account").text
    assert status_of(page) == ("verified", "active")
    assert f'data-testid="badge">{BADGE_EN}<' in page
    assert "ADA LOVELACE" in page and "GBR" in page
    assert order(shop, "60").status_code == 303
    assert "¥750.00" in shop.get("/account").text  # 60 x ¥12.50

    shop.cookies.set("shop_lang", "zh_Hans")
    assert f'data-testid="badge">{BADGE_ZH}<' in shop.get("/account").text


def test_the_route_shown_is_the_evidence_s(shop: TestClient, stub: Stub) -> None:
    stub.verified_claims = chip_verified_claims()
    stub.verified_claims["verification"]["evidence"] = [
        {"type": "document", "check_details": [{"check_method": "vpip"}]}
    ]
    sign_up(shop)
    link(shop)
    assert "verified via Qianbao (passport photo page)" in shop.get("/account").text


@pytest.mark.parametrize(
    ("evidence", "route"),
    [
        ([{"type": "document", "check_details": [{"check_method": "vcrypt"}]}], "passport_chip"),
        ([{"type": "document", "check_details": [{"check_method": "vpip"}]}], "passport_page"),
        ([{"type": "electronic_record", "record": {"type": "bank_account"}}], "bank_card"),
        ([], "other"),
        (None, "other"),
    ],
)
def test_route_of_reads_the_check_method_or_the_record(evidence: object, route: str) -> None:
    assert qianbao_client.route_of(evidence) == route


def test_without_verified_claims_the_link_is_refused_and_nothing_is_stored(
    shop: TestClient, stub: Stub
) -> None:
    stub.verified_claims = None
    sign_up(shop)
    refused = link(shop)
    assert refused.status_code == 400 and 'data-code="link.not_verified"' in refused.text
    assert status_of(shop.get("/account").text) == ("restricted", "none")


def test_sign_in_with_qianbao_finds_the_linked_account(shop: TestClient, stub: Stub) -> None:
    sign_up(shop)
    link(shop)
    shop.post("/signout", data={"csrf_token": csrf(shop)})
    assert shop.get("/account").headers["location"] == "/signin"

    signed_in = through_qianbao(shop, "/auth/qianbao/signin", "/signin")
    assert signed_in.headers["location"] == "/account"
    assert stub.authorize_requests[-1]["scope"] == "openid"
    assert "claims" not in stub.authorize_requests[-1]
    page = shop.get("/account").text
    assert EMAIL in page and BADGE_EN in page


def test_a_token_under_a_rotated_key_is_accepted(stub: Stub, tmp_path: Path) -> None:
    """The shop has the first key cached from the link; the sign-in's ID token is signed
    under a key published since, which the shop fetches (no cooldown in this test)."""
    settings = shop_settings(stub, tmp_path)
    settings.jwks_refetch_cooldown_seconds = 0
    shop = TestClient(create_app(settings), follow_redirects=False)
    sign_up(shop)
    link(shop)
    stub.rotate_key()
    shop.post("/signout", data={"csrf_token": csrf(shop)})
    signed_in = through_qianbao(shop, "/auth/qianbao/signin", "/signin")
    assert signed_in.headers["location"] == "/account"


def test_sign_in_with_qianbao_after_the_link_ended_is_refused(shop: TestClient, stub: Stub) -> None:
    sign_up(shop)
    link(shop)
    stub.revoke(stub.subject)
    shop.post("/account/check-link", data={"csrf_token": csrf(shop, "/account")})
    shop.post("/signout", data={"csrf_token": csrf(shop)})
    refused = through_qianbao(shop, "/auth/qianbao/signin", "/signin")
    assert refused.status_code == 400 and 'data-code="login.not_linked"' in refused.text


def test_verified_claims_given_as_a_list_are_read_too() -> None:
    element = chip_verified_claims("CHN")
    identity = qianbao_client.verified_identity([{"claims": {}}, element])
    assert identity is not None
    assert (identity.name, identity.nationalities, identity.route) == (
        "ADA LOVELACE",
        ("CHN",),
        "passport_chip",
    )
    assert identity.trust_framework == "nist_800_63A"
    assert qianbao_client.verified_identity({"verification": {}, "claims": {}}) is None


def test_declining_at_qianbao_links_nothing(shop: TestClient, stub: Stub) -> None:
    stub.person_declines = True
    sign_up(shop)
    declined = link(shop)
    assert declined.status_code == 400 and 'data-code="login.cancelled"' in declined.text
    assert status_of(shop.get("/account").text) == ("restricted", "none")


def test_sign_in_with_an_unlinked_qianbao_is_refused(shop: TestClient, stub: Stub) -> None:
    refused = through_qianbao(shop, "/auth/qianbao/signin", "/signin")
    assert refused.status_code == 400 and 'data-code="login.not_linked"' in refused.text
    assert shop.get("/account").headers["location"] == "/signin"


def test_revoking_the_shop_ends_the_link_on_the_next_check(shop: TestClient, stub: Stub) -> None:
    sign_up(shop)
    link(shop)
    first = next(iter(stub.refresh_tokens))
    assert (
        shop.post("/account/check-link", data={"csrf_token": csrf(shop, "/account")}).status_code
        == 303
    )
    assert first not in stub.refresh_tokens and stub.refreshes == 1  # rotated, the old one spent
    assert status_of(shop.get("/account").text) == ("verified", "active")

    stub.revoke(stub.subject)
    shop.post("/account/check-link", data={"csrf_token": csrf(shop, "/account")})
    page = shop.get("/account").text
    assert status_of(page) == ("restricted", "ended")
    assert "Link ended" in page and BADGE_EN not in page
    assert order(shop).status_code == 400
    shop.cookies.set("shop_lang", "zh_Hans")
    assert "关联已结束" in shop.get("/account").text

    # Linking again (the person allows the shop anew) opens the account again.
    link(shop)
    assert status_of(shop.get("/account").text) == ("verified", "active")


def test_one_qianbao_links_one_shop_account(shop: TestClient, stub: Stub) -> None:
    sign_up(shop)
    link(shop)
    other = TestClient(shop.app, follow_redirects=False)
    sign_up(other, "second@example.com")
    refused = link(other)
    assert refused.status_code == 409 and 'data-code="link.other_account"' in refused.text
    assert status_of(other.get("/account").text) == ("restricted", "none")
    assert status_of(shop.get("/account").text) == ("verified", "active")


def test_the_account_page_checks_the_link_when_the_interval_has_passed(
    stub: Stub, tmp_path: Path
) -> None:
    shop = TestClient(create_app(shop_settings(stub, tmp_path, interval=0)), follow_redirects=False)
    sign_up(shop)
    link(shop)
    stub.revoke(stub.subject)
    assert status_of(shop.get("/account").text) == ("restricted", "ended")
    assert stub.refreshes == 1


def test_within_the_interval_the_account_page_does_not_call_qianbao(
    shop: TestClient, stub: Stub
) -> None:
    sign_up(shop)
    link(shop)
    for _ in range(3):
        shop.get("/account")
    assert stub.refreshes == 0


def test_a_check_while_qianbao_is_down_keeps_the_link_and_says_so(
    shop: TestClient, stub: Stub
) -> None:
    sign_up(shop)
    link(shop)
    token_before = set(stub.refresh_tokens)
    stub.token_endpoint_down = True
    answer = shop.post("/account/check-link", data={"csrf_token": csrf(shop, "/account")})
    assert answer.status_code == 503
    assert "Qianbao cannot be reached now" in answer.text
    assert status_of(answer.text) == ("verified", "active")
    stub.token_endpoint_down = False
    assert (
        shop.post("/account/check-link", data={"csrf_token": csrf(shop, "/account")}).status_code
        == 303
    )
    assert set(stub.refresh_tokens).isdisjoint(token_before)  # the kept token still worked


def test_claims_that_stop_put_the_restriction_back(shop: TestClient, stub: Stub) -> None:
    sign_up(shop)
    link(shop)
    stub.verified_claims = None  # the verification was revoked at Qianbao
    shop.post("/account/check-link", data={"csrf_token": csrf(shop, "/account")})
    page = shop.get("/account").text
    assert status_of(page) == ("restricted", "active")
    assert 'data-testid="no-identity"' in page


@pytest.mark.parametrize(
    ("misbehave", "code"),
    [
        (lambda s: setattr(s, "nonce_in_token", "another-nonce"), "id_token.nonce"),
        (lambda s: setattr(s, "iss_in_response", "http://evil.example"), "callback.iss_mismatch"),
        (lambda s: setattr(s, "send_iss", False), "callback.iss_missing"),
        (lambda s: setattr(s, "sign_with_unknown_key", True), "id_token.PyJWKClientError"),
        (lambda s: setattr(s, "audience", "another-shop"), "id_token.InvalidAudienceError"),
        (lambda s: setattr(s, "expires_in", -3600), "id_token.ExpiredSignatureError"),
    ],
    ids=["nonce", "iss", "no-iss", "unknown-key", "audience", "expired"],
)
def test_an_answer_that_fails_a_check_links_nothing(
    shop: TestClient, stub: Stub, misbehave: object, code: str
) -> None:
    sign_up(shop)
    misbehave(stub)  # type: ignore[operator]
    refused = link(shop)
    assert refused.status_code == 400
    assert 'data-code="login.refused"' in refused.text and code in refused.text
    assert status_of(shop.get("/account").text) == ("restricted", "none")


def test_a_callback_is_good_once_and_only_in_the_browser_that_started_it(
    shop: TestClient, stub: Stub
) -> None:
    sign_up(shop)
    started = shop.post("/auth/qianbao/link", data={"csrf_token": csrf(shop, "/account")})
    callback = urlsplit(httpx.get(started.headers["location"]).headers["location"])
    target = f"{callback.path}?{callback.query}"

    stranger = TestClient(shop.app, follow_redirects=False)
    refused = stranger.get(target)
    assert refused.status_code == 400 and 'data-code="login.unknown_state"' in refused.text

    # The stranger's try spent nothing: the right browser links; then the state is spent.
    assert parse_qs(callback.query)["state"]
    assert shop.get(target).headers["location"] == "/account"
    assert 'data-code="login.unknown_state"' in shop.get(target).text


def test_forms_without_the_session_s_token_are_refused(shop: TestClient) -> None:
    sign_up(shop)
    refused = shop.post("/auth/qianbao/link", data={"csrf_token": "forged"})
    assert refused.status_code == 400 and 'data-code="csrf.mismatch"' in refused.text


def test_qianbao_unreachable_is_said_and_changes_nothing(tmp_path: Path) -> None:
    settings = Settings(issuer="http://127.0.0.1:9", database=tmp_path / "shop.db")
    shop = TestClient(create_app(settings), follow_redirects=False)
    sign_up(shop)
    answer = shop.post("/auth/qianbao/link", data={"csrf_token": csrf(shop, "/account")})
    assert answer.status_code == 503 and 'data-code="qianbao.unavailable"' in answer.text


def test_accounts_refuse_bad_input_and_wrong_passwords(shop: TestClient) -> None:
    token = csrf(shop, "/signup")
    short = shop.post("/signup", data={"email": EMAIL, "password": "short", "csrf_token": token})
    assert 'data-code="account.short_password"' in short.text
    sign_up(shop)
    shop.post("/signout", data={"csrf_token": csrf(shop)})
    wrong = shop.post(
        "/signin", data={"email": EMAIL, "password": "not-it-at-all", "csrf_token": csrf(shop)}
    )
    assert wrong.status_code == 400 and 'data-code="account.wrong_password"' in wrong.text
    again = shop.post(
        "/signup", data={"email": EMAIL, "password": PASSWORD, "csrf_token": csrf(shop)}
    )
    assert again.status_code == 409


def test_the_catalogue_is_in_english_and_in_chinese(shop: TestClient) -> None:
    english = shop.get("/", headers={"accept-language": "en-GB"}).text
    assert "Stainless steel vacuum flask, 500 ml" in english and "¥12.50" in english
    chinese = TestClient(shop.app).get("/", headers={"accept-language": "zh-CN,zh;q=0.9"}).text
    assert "不锈钢保温杯 500 毫升" in chinese and "起批量：50" in chinese


def test_every_message_of_the_shop_has_its_chinese() -> None:
    found = {
        message
        for _, _, message, *_ in extract_from_dir(
            str(MARKETPLACE),
            method_map=[
                ("marketplace/**.py", "python"),
                ("marketplace/templates/**.html", "jinja2"),
            ],
            keywords={"_": None, "N_": None},
        )
    }
    assert len(found) > 40
    chinese = translations("zh_Hans")
    untranslated = sorted(str(m) for m in found if chinese.gettext(str(m)) == m)
    assert untranslated == []
