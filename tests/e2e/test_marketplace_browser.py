"""The article's 1688 story in a real browser: a new person signs up at Qianbao and is
verified by the passport chip route; at the demo marketplace (examples/marketplace, its own
server and database) their shop account is restricted until they link their Qianbao; they
link it, see "verified via Qianbao (passport chip)" (and its Chinese), sign in with
Qianbao, remove the shop in Qianbao's Authorized apps, and the marketplace shows the link
ended. The shop talks to Qianbao's real provider over HTTP only."""

from __future__ import annotations

import os
import random
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from liveserver import LiveServer
from marketplace import store as shop_store
from marketplace.app import create_app as create_marketplace
from marketplace.settings import Settings as MarketplaceSettings
from playwright.sync_api import Page, expect

from qianbao.identity import security
from qianbao.identity import service as identity
from qianbao.identity.phone import parse_mobile
from qianbao.openplatform.gateway import demo as gateway_demo
from qianbao.openplatform.gateway import notifications as shop_notifications
from qianbao.verification import face, liveness, service, trust_store
from tests.e2e.test_two_people_browser import log_in
from tests.e2e.verify_walk import valid_today_seed
from tests.helpers import HOME, last_code, sign_up
from tests.verification.chip_vectors import genuine_chip, sign_aa
from tests.verification.flow_helpers import (
    CHALLENGE,
    accept_synthetic_clips,
    clip,
    page_image,
)
from tests.verification.passport_pages import PassportData, random_passport
from tests.wallet.test_payments import PIN, VISA_USD, add_card, fund, verify

oidc = pytest.importorskip(
    "qianbao.openplatform.oidc.service",
    reason="Qianbao's OpenID Connect provider (qianbao.openplatform.oidc) is not in this tree",
)

pytestmark = pytest.mark.e2e

NUMBER = "07911 123456"
SHOP_EMAIL = "buyer@example.com"
SHOP_PASSWORD = "wholesale-2026"
BADGE_EN = "verified via Qianbao (passport chip)"
BADGE_ZH = "已通过钱包验证（护照芯片）"
STARTUP_TIMEOUT_S = 15.0
# Set to a folder, the test also saves the README's screenshots of the story there.
SCREENSHOTS = os.environ.get("MARKETPLACE_SCREENSHOTS")


def shoot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / f"marketplace-{name}.png"), full_page=True)


def verify_by_chip(server: LiveServer, account_id: object) -> PassportData:
    """The passport chip route, as the phone app drives it: the chip's files with its
    active-authentication answer, confirm, then a live face (a synthetic clip)."""
    db = server.db
    accept_synthetic_clips(db.settings)
    seed = valid_today_seed()
    passport = random_passport(random.Random(seed))
    files, cscas, key = genuine_chip(passport, face.cut_portrait(page_image(seed)))
    today = db.clock.now().date()
    for der in cscas:
        db.run(lambda tx, der=der: trust_store.import_file(tx, der, "test CSCA", today=today))
    case = db.run(lambda tx: service.start_case(tx, account_id, "passport_chip"))  # type: ignore[arg-type]
    assert case.aa_challenge is not None
    proofs = service.ChipProofs(aa_signature=sign_aa(key, bytes.fromhex(case.aa_challenge)))
    assert service.submit_chip(db, account_id, case.id, files, proofs).status == "confirm"  # type: ignore[arg-type]
    db.run(lambda tx: service.confirm_document(tx, account_id, case.id))  # type: ignore[arg-type]
    db.run(lambda tx: service.issue_challenge(tx, account_id, case.id))  # type: ignore[arg-type]
    assert service.submit_face(db, account_id, case.id, clip("astronaut")).status == "verified"  # type: ignore[arg-type]
    return passport


@pytest.fixture
def fixed_challenge(monkeypatch: pytest.MonkeyPatch) -> None:
    """The synthetic clip performs one challenge; the service would draw a random one."""
    monkeypatch.setattr(liveness, "new_challenge", lambda rng=None: CHALLENGE)


@pytest.fixture
def marketplace(live_server: LiveServer, tmp_path: Path) -> Iterator[str]:
    """The demo marketplace on its own port and SQLite file, registered at Qianbao as the
    demo client with its own redirect URI; a visit to its account page checks the link."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = MarketplaceSettings(
        issuer=live_server.url,
        base_url=url,
        database=tmp_path / "marketplace.db",
        link_check_interval_seconds=0,
    )
    live_server.settings.demo_marketplace_redirect_uri = settings.redirect_uri
    live_server.db.run(oidc.seed_demo_shop)
    server = uvicorn.Server(
        uvicorn.Config(create_marketplace(settings), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the marketplace did not start"
        time.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT_S)
        sock.close()


def shop_status(page: Page) -> tuple[str | None, str | None]:
    return (
        page.get_by_test_id("account-status").get_attribute("data-state"),
        page.get_by_test_id("qianbao-link").get_attribute("data-state"),
    )


@pytest.mark.usefixtures("fixed_challenge")
def test_the_1688_story_link_badge_sign_in_and_revoke(
    page: Page, live_server: LiveServer, marketplace: str
) -> None:
    # A new person signs up at Qianbao and is verified by the chip route.
    page.goto(live_server.url + "/")
    log_in(page, live_server, NUMBER)
    page.wait_for_url(re.compile(r"/home$"))
    account = live_server.db.run(
        lambda tx: identity.account_by_phone(tx, parse_mobile(NUMBER, "GB"))
    )
    passport = verify_by_chip(live_server, account.id)

    # At the marketplace, a new shop account is restricted until verified.
    page.goto(marketplace + "/signup")
    page.locator("#email").fill(SHOP_EMAIL)
    page.locator("#password").fill(SHOP_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(re.compile(r"/account$"))
    expect(page.get_by_test_id("restricted")).to_have_text("Restricted until verified")
    assert shop_status(page) == ("restricted", "none")
    shoot(page, "1-restricted")

    # "Link your Qianbao": Qianbao asks the person, who allows; the shop shows the badge.
    page.get_by_role("button", name="Link your Qianbao").click()
    expect(page.get_by_test_id("consent")).to_be_visible()
    shoot(page, "2-consent")
    page.get_by_test_id("allow").click()
    page.wait_for_url(marketplace + "/account")
    expect(page.get_by_test_id("badge")).to_have_text(BADGE_EN)
    expect(page.get_by_test_id("verified-name")).to_contain_text(passport.surname.split("<")[0])
    expect(page.get_by_test_id("nationality")).to_contain_text(passport.nationality)
    assert shop_status(page) == ("verified", "active")

    # The same badge in Chinese, then back to English.
    page.get_by_role("button", name="简体中文").click()
    expect(page.get_by_test_id("badge")).to_have_text(BADGE_ZH)
    page.get_by_role("button", name="English").click()
    expect(page.get_by_test_id("badge")).to_have_text(BADGE_EN)
    shoot(page, "3-badge")

    # Later: signed out of the shop, "Sign in with Qianbao" finds the linked account.
    page.get_by_role("button", name="Sign out").click()
    page.goto(marketplace + "/signin")
    page.get_by_role("button", name="Sign in with Qianbao").click()
    page.wait_for_url(marketplace + "/account")
    expect(page.get_by_test_id("badge")).to_have_text(BADGE_EN)

    # The person removes the shop in Qianbao; the shop's next check finds the link ended.
    page.goto(live_server.url + "/me/authorized-apps")
    page.get_by_test_id("revoke-demo-marketplace").click()
    expect(page.get_by_test_id("app-demo-marketplace")).to_have_count(0)
    page.goto(marketplace + "/account")
    expect(page.get_by_test_id("link-ended")).to_have_text("Link ended")
    expect(page.get_by_test_id("restricted")).to_have_text("Restricted until verified")
    assert shop_status(page) == ("restricted", "ended")
    shoot(page, "4-link-ended")
    page.get_by_role("button", name="简体中文").click()
    expect(page.get_by_test_id("link-ended")).to_have_text("关联已结束")


# --- paying through Qianbao's trade API ---------------------------------------------------

BUYER = "07911 123457"


def qianbao_buyer(server: LiveServer) -> None:
    """At Qianbao: verified, CNY 2,000 on the balance, a USD Visa card, a payment PIN."""
    db = server.db
    account = sign_up(db, parse_mobile(BUYER, "GB")).account
    server.settings.sms_resend_cooldown_seconds = 0  # the PIN's code right after sign-up
    security.send_security_code(db, account.id, HOME, "en")
    security.set_payment_password(db, account.id, PIN, sms_code=last_code(db, account.phone))
    verify(db, account.id)
    fund(db, account.id, "2000")
    add_card(db, account.id, VISA_USD)


def linked_shop_account(page: Page, marketplace: str, database: Path) -> None:
    """A shop account whose verified Qianbao link the shop holds already (the link itself
    is the story above)."""
    page.goto(marketplace + "/signup")
    page.locator("#email").fill(SHOP_EMAIL)
    page.locator("#password").fill(SHOP_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(re.compile(r"/account$"))
    with shop_store.transaction(database) as db:
        link = shop_store.Link(
            1, "sub", None, "ADA LOVELACE", "GBR", "passport_chip", None, 0, 0, None, None
        )
        shop_store.save_link(db, link)


def buy(page: Page, marketplace: str, product_id: str) -> str:
    page.goto(marketplace + "/")
    page.locator(f'form:has(input[name="product_id"][value="{product_id}"])').get_by_role(
        "button", name="Order wholesale"
    ).click()
    page.wait_for_url(re.compile(r"/orders/\d+$"))
    return page.url


def order_state(page: Page) -> tuple[str | None, str | None]:
    found = page.get_by_test_id("order-page")
    return found.get_attribute("data-state"), found.get_attribute("data-paid")


@pytest.fixture
def beijing_shop(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The marketplace (in this process) runs in Beijing time, as ``python -m
    marketplace`` sets it: Alipay's SDK stamps its requests with the local clock."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("beijing_shop")
def test_the_marketplace_takes_payments_is_notified_and_refunds(
    page: Page, live_server: LiveServer, marketplace: str, tmp_path: Path
) -> None:
    live_server.db.run(gateway_demo.seed_demo_app)
    qianbao_buyer(live_server)
    page.goto(live_server.url + "/")
    log_in(page, live_server, BUYER)
    page.wait_for_url(re.compile(r"/home$"))
    linked_shop_account(page, marketplace, tmp_path / "marketplace.db")

    # Buy, pay at Qianbao's cashier from the balance, land back at the shop paid.
    order_url = buy(page, marketplace, "tea-gift")  # 10 boxes, CNY 880.00
    assert order_state(page) == ("new", "no")
    page.get_by_role("button", name="Pay at Qianbao's cashier").click()
    page.wait_for_url(re.compile(r"/cashier/"))
    cashier_url = page.url
    expect(page.get_by_test_id("order")).to_contain_text("880.00")
    page.get_by_label("Balance", exact=False).check()
    page.locator("#payment_password").fill(PIN)
    page.get_by_role("button", name="Pay", exact=True).click()
    page.wait_for_url(order_url)
    assert order_state(page) == ("TRADE_SUCCESS", "yes")
    expect(page.get_by_test_id("trade-state")).to_have_text("Paid")
    expect(page.get_by_test_id("trade-no")).to_have_text(re.compile(r"^\d{28}$"))

    # Qianbao's worker delivers the notification; the shop verifies it and says success.
    assert shop_notifications.deliver_due(live_server.db) == 1
    page.reload()
    expect(page.get_by_test_id("notification")).to_contain_text("TRADE_SUCCESS")

    # Part of it refunded from the shop's order page.
    page.locator("#amount").fill("100.50")
    page.get_by_role("button", name="Refund", exact=True).click()
    page.wait_for_url(order_url)
    expect(page.get_by_test_id("refunded")).to_have_text("¥100.50")
    expect(page.get_by_test_id("refund-entry")).to_contain_text("¥100.50")
    assert shop_notifications.deliver_due(live_server.db) == 1  # the refund's, verified too
    page.reload()
    expect(page.get_by_test_id("notification")).to_have_count(2)

    # The same page in Chinese.
    page.get_by_role("button", name="简体中文").click()
    expect(page.get_by_test_id("trade-state")).to_have_text("已付款")
    page.get_by_role("button", name="English").click()

    # The person sees the payment and the refund in their Qianbao history.
    page.goto(live_server.url + "/wallet/history")
    expect(page.get_by_test_id("history")).to_contain_text("Wholesale Market (demo)")
    order_id = cashier_url.rstrip("/").rsplit("/", 1)[1]
    page.goto(f"{live_server.url}/wallet/payments/{order_id}")
    expect(page.get_by_test_id("refunds")).to_contain_text("100.50")

    # A second order paid by the foreign card, at the same cashier.
    second_url = buy(page, marketplace, "flask-500")  # 50 flasks, CNY 625.00
    page.get_by_role("button", name="Pay at Qianbao's cashier").click()
    page.wait_for_url(re.compile(r"/cashier/"))
    page.get_by_label(re.compile(r"VISA ···· 0019")).check()
    page.locator("#payment_password").fill(PIN)
    page.get_by_role("button", name="Pay", exact=True).click()
    page.wait_for_url(second_url)
    assert order_state(page) == ("TRADE_SUCCESS", "yes")
    assert shop_notifications.deliver_due(live_server.db) == 1
    page.reload()
    expect(page.get_by_test_id("notification")).to_contain_text("TRADE_SUCCESS")

    # A third order by QR code: the shop shows the code and its link; paid at the cashier
    # (by the balance), the order page finds it paid on the next visit.
    third_url = buy(page, marketplace, "phone-case")  # 200 cases, CNY 460.00
    page.get_by_role("button", name="Pay by QR code").click()
    page.wait_for_url(third_url)
    expect(page.get_by_test_id("qr").locator("svg")).to_be_visible()
    qr_link = page.get_by_test_id("qr-link").get_attribute("href")
    assert qr_link is not None and qr_link.startswith(f"{live_server.url}/cashier/")
    page.goto(qr_link)
    page.get_by_label("Balance", exact=False).check()
    page.locator("#payment_password").fill(PIN)
    page.get_by_role("button", name="Pay", exact=True).click()
    expect(page.get_by_test_id("order")).to_have_attribute("data-status", "TRADE_SUCCESS")
    page.goto(third_url)
    assert order_state(page) == ("TRADE_SUCCESS", "yes")
