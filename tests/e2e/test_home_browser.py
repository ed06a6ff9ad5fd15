"""Home at 375 px in a real browser: a verified person with a five-figure balance, a
payment and a transfer sees every amount on one line (no "CNY 93,876.|45"), the actions
with their icons, and recent activity on Beijing's clock; in English and in Chinese.
A newcomer's Home shows the refused actions with their reasons.

With ``HOME_SCREENSHOTS=docs/screenshots`` it also takes the README's pictures, in English
and in Chinese."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path

import pytest
from liveserver import LiveServer
from playwright.sync_api import Page, expect

from qianbao.i18n import language_scope, translate
from qianbao.identity import security
from qianbao.identity.phone import parse_mobile
from qianbao.money import Money
from qianbao.wallet.payments import service as payments
from qianbao.wallet.transfers import service as transfers
from tests.e2e.test_two_people_browser import log_in as enter_number_and_code
from tests.e2e.test_verify_browser import zh
from tests.helpers import HOME, last_code, sign_up
from tests.wallet.test_payments import PIN, fund, verify

pytestmark = pytest.mark.e2e

ADA = "07911 123456"
BOB = "07400 900123"
SCREENSHOTS = os.environ.get("HOME_SCREENSHOTS")
# Every .amount is one box: an inline element broken across lines has several rects.
BROKEN_AMOUNTS = """() => Array.from(document.querySelectorAll('.amount'))
  .filter((element) => element.getClientRects().length !== 1)
  .map((element) => element.textContent)"""
AMOUNT_COUNT = "() => document.querySelectorAll('.amount').length"
PAGE_WIDTH = "() => document.documentElement.scrollWidth"
# The words of a list's values that the browser broke across lines ("N|o", "2,000.0|0"):
# a word on one line has one client rect.
BROKEN_WORDS = """() => Array.from(document.querySelectorAll('.list .value')).flatMap((value) => {
  const broken = [];
  const walker = document.createTreeWalker(value, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const word of node.textContent.matchAll(/\\S+/g)) {
      const range = document.createRange();
      range.setStart(node, word.index);
      range.setEnd(node, word.index + word[0].length);
      if (range.getClientRects().length > 1) broken.push(word[0]);
    }
  }
  return broken;
})"""


def t(message: str, params: Mapping[str, object] | None = None) -> str:
    with language_scope("en"):
        return translate(message, params)


def shoot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)


def person_with_money(server: LiveServer, number: str, amount: str) -> uuid.UUID:
    db = server.db
    account = sign_up(db, parse_mobile(number, "GB")).account
    security.send_security_code(db, account.id, HOME, "en")
    security.set_payment_password(db, account.id, PIN, sms_code=last_code(db, account.phone))
    verify(db, account.id)
    fund(db, account.id, amount)
    return account.id


def log_in(page: Page, server: LiveServer, number: str) -> None:
    """From the first page to Home (signing up the first time)."""
    page.goto(server.url + "/")
    enter_number_and_code(page, server, number)
    page.wait_for_url(re.compile(r"/home$"))


def assert_no_amount_wraps(page: Page) -> None:
    assert page.evaluate(AMOUNT_COUNT) == 3  # the balance and two lines of activity
    assert page.evaluate(BROKEN_AMOUNTS) == []
    assert page.evaluate(PAGE_WIDTH) <= 375  # nothing pushed sideways either


def test_home_at_375_px_keeps_every_amount_on_one_line_in_both_languages(
    page: Page, live_server: LiveServer
) -> None:
    live_server.settings.sms_resend_cooldown_seconds = 0  # sign-up and security codes at once
    db = live_server.db
    ada = person_with_money(live_server, ADA, "98765.43")
    person_with_money(live_server, BOB, "1")
    shop = db.run(lambda tx: payments.create_merchant(tx, "Hangzhou West Lake Tea House"))
    order = db.run(
        lambda tx: payments.create_order(
            tx, shop, "T1", "Longjing tea, 250 g", Money.of("CNY", "4321.09")
        )
    )
    payments.pay_with_balance(db, ada, order.id, PIN)
    transfers.send(db, ada, "+447400900123", "567.89", "Dinner", PIN, uuid.uuid4().hex)

    log_in(page, live_server, ADA)
    expect(page.get_by_test_id("balance")).to_have_text("CNY\u00a093,876.45")
    activity = page.get_by_test_id("activity")
    expect(activity).to_contain_text("(China Standard Time)")
    expect(activity).to_contain_text(t("Paid"))
    expect(activity.locator(".amount")).to_have_text(["−CNY\u00a0567.89", "−CNY\u00a04,321.09"])
    for label in ("Scan", "Pay", "Receive", "Transfer", "Tour Pass", "Top-up code"):
        expect(page.get_by_role("link", name=t(label), exact=True)).to_be_visible()
    icons = page.locator(".actions img")
    expect(icons).to_have_count(6)
    assert all(icons.nth(i).evaluate("(img) => img.naturalWidth > 0") for i in range(6))
    assert_no_amount_wraps(page)
    shoot(page, "home-en.png")
    page.goto(live_server.url + "/wallet")
    expect(page.get_by_test_id("send-money-link")).to_be_visible()
    assert page.evaluate(BROKEN_AMOUNTS) == []
    shoot(page, "17-wallet.png")
    page.goto(live_server.url + "/me/level")  # long labels beside short values
    expect(page.get_by_test_id("rights")).to_contain_text(t("Tour Pass (with a verified passport)"))
    assert page.evaluate(BROKEN_WORDS) == []
    page.goto(live_server.url + "/home")

    page.get_by_role("button", name="简体中文").click()
    page.wait_for_url(re.compile(r"/home$"))
    expect(page.get_by_test_id("activity")).to_contain_text("（中国标准时间）")
    expect(page.get_by_test_id("activity")).to_contain_text("已付款")
    assert_no_amount_wraps(page)
    shoot(page, "home-zh.png")


def test_a_newcomers_home_shows_why_the_actions_wait(page: Page, live_server: LiveServer) -> None:
    log_in(page, live_server, ADA)  # signs up
    expect(page.get_by_test_id("verify-prompt")).to_be_visible()
    expect(page.get_by_role("link", name=t("Scan"), exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=t("Transfer"), exact=True)).to_have_count(0)
    refused = page.locator('[data-action="transfer"]')
    expect(refused).to_contain_text(t("Verify your real name to send money."))
    assert page.evaluate(PAGE_WIDTH) <= 375
    shoot(page, "home-unverified-en.png")

    page.get_by_role("button", name="简体中文").click()
    expect(refused).to_contain_text(zh("Verify your real name to send money."))
    assert page.evaluate(PAGE_WIDTH) <= 375
    shoot(page, "home-unverified-zh.png")
