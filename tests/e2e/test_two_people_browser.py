"""Two people in a real browser: B sends A money from the transfer page, then A orders at
the demo shop and asks a friend to pay; B opens the link, logs in, pays it from their
balance; A sees both in their history."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pytest
from liveserver import PHONE_VIEWPORT, LiveServer
from playwright.sync_api import Browser, BrowserContext, Page, expect

from qianbao.i18n import language_scope, translate
from qianbao.identity import security
from qianbao.identity import service as identity
from qianbao.identity.phone import parse_mobile
from tests.helpers import HOME, last_code, sign_up
from tests.wallet.test_payments import PIN, cny, fund, verify

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 10_000  # as conftest.py's contexts
ASKER = "07911 123456"
FRIEND = "07912 345678"


def t(message: str, params: Mapping[str, object] | None = None) -> str:
    with language_scope("en"):
        return translate(message, params)


def verified_friend_with_money(server: LiveServer) -> None:
    """B: signed up earlier, verified, CNY 100 on the balance, a payment password."""
    db = server.db
    account = sign_up(db, parse_mobile(FRIEND, "GB")).account
    security.send_security_code(db, account.id, HOME, "en")
    security.set_payment_password(db, account.id, PIN, sms_code=last_code(db, account.phone))
    verify(db, account.id)
    fund(db, account.id, "100")


def log_in(page: Page, server: LiveServer, number: str) -> None:
    page.locator("#country").select_option("GB")
    page.locator("#number").fill(number)
    page.get_by_role("button", name=t("Next"), exact=True).click()
    page.wait_for_url(re.compile(r"/(code|signup)\?"))
    if "/signup" in page.url:
        page.locator("#agree").check()
        page.get_by_role("button", name=t("Agree and send code"), exact=True).click()
        page.wait_for_url(re.compile(r"/code\?"))
    page.locator("#code").fill(server.sms_code(parse_mobile(number, "GB").e164))
    page.get_by_role("button", name=t("Confirm"), exact=True).click()


def second_person(browser: Browser) -> BrowserContext:
    """Another profile (own cookies), like the ``context`` fixture's."""
    second = browser.new_context(viewport=PHONE_VIEWPORT, locale="en-GB")
    second.set_default_timeout(TIMEOUT_MS)
    return second


def send_money(friend: Page, server: LiveServer, to: str, amount: str, note: str) -> None:
    """B sends money from the transfer page: the recipient checked by masked name, then
    the payment password."""
    friend.goto(server.url + "/wallet/transfer")
    friend.locator("#to").fill(to)
    friend.locator("#amount").fill(amount)
    friend.locator("#note").fill(note)
    friend.get_by_role("button", name=t("Next"), exact=True).click()
    expect(friend.get_by_test_id("recipient-name")).to_contain_text("(verified)")
    friend.locator("#payment_password").fill(PIN)
    with language_scope("en"):
        shown = cny(amount).format()
    friend.get_by_role("button", name=t("Send {amount}", {"amount": shown})).click()
    expect(friend.get_by_test_id("transfer")).to_have_attribute("data-direction", "sent")


def test_a_friend_sends_money_then_pays_an_order_through_a_pay_for_me_link(
    browser: Browser, page: Page, live_server: LiveServer
) -> None:
    live_server.settings.sms_resend_cooldown_seconds = 0  # several codes within a minute
    verified_friend_with_money(live_server)

    # A signs up (and, off screen, is verified so that they may receive transfers).
    page.goto(live_server.url + "/")
    log_in(page, live_server, ASKER)
    page.wait_for_url(re.compile(r"/home$"))
    asker = live_server.db.run(lambda tx: identity.account_by_phone(tx, parse_mobile(ASKER, "GB")))
    verify(live_server.db, asker.id)

    # B logs in and sends A money.
    friend_context = second_person(browser)
    friend = friend_context.new_page()
    friend.goto(live_server.url + "/")
    log_in(friend, live_server, FRIEND)
    friend.wait_for_url(re.compile(r"/home$"))
    send_money(friend, live_server, "+44 7911 123456", "20.00", "Lunch")
    page.goto(live_server.url + "/wallet/history")
    expect(page.get_by_test_id("transfers")).to_contain_text("Lunch")

    # A orders at the demo shop and asks a friend to pay at the cashier.
    page.goto(live_server.url + "/demo/shop")
    page.locator("#amount").fill("42.00")
    page.get_by_role("button", name=t("Create order and pay"), exact=True).click()
    page.wait_for_url(re.compile(r"/cashier/"))
    page.get_by_role("button", name=t("Ask a friend to pay"), exact=True).click()
    expect(page.get_by_test_id("pay-for-me-qr").locator("svg")).to_be_visible()
    link = page.get_by_test_id("pay-for-me-url").input_value()
    assert "/pay-for-me/" in link

    # B opens the link (signed in already) and pays from the balance.
    try:
        friend.goto(link)
        expect(friend.get_by_test_id("pay-for-me")).to_have_attribute("data-state", "open")
        expect(friend.get_by_test_id("asker")).to_contain_text("+44 ******3456")
        expect(friend.get_by_test_id("amount")).to_contain_text("42.00")
        friend.get_by_label(t("Balance"), exact=False).check()
        friend.locator("#payment_password").fill(PIN)
        friend.get_by_role("button", name=t("Pay for my friend"), exact=True).click()
        expect(friend.get_by_test_id("pay-for-me")).to_have_attribute("data-state", "paid")
        expect(friend.get_by_test_id("paid-by")).to_contain_text("+44 ******3456")
    finally:
        friend_context.close()

    # A sees it paid by the friend: on the link and in the payment history.
    page.goto(link)
    expect(page.get_by_test_id("paid-by")).to_have_text(
        t("Paid by a friend: {friend}", {"friend": "+44 ******5678"})
    )
    page.goto(live_server.url + "/wallet/history")
    expect(page.get_by_test_id("friend-note")).to_contain_text("+44 ******5678")
