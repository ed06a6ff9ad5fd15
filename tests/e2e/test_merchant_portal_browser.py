"""The merchant portal in a real browser: a merchant user signs in, finds an order a
person paid through the trade API, refunds part of it with a reason, and sees the refund
on the order; the portal in Chinese too."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from liveserver import LiveServer, demo_settings, live_server
from playwright.sync_api import Page, expect

from qianbao.clock import FrozenClock
from qianbao.wallet.payments import service as payments
from tests.openplatform.portal.helpers import Shop, Trade, new_shop, new_trade, pay, paying_person

pytestmark = pytest.mark.e2e

# Set to a folder, the test also saves the README's screenshot of the portal there.
SCREENSHOTS = os.environ.get("MERCHANT_PORTAL_SCREENSHOTS")


@pytest.fixture
def frozen_server(tmp_path: Path, e2e_template: Path) -> Iterator[tuple[LiveServer, FrozenClock]]:
    """A demo server on a clock the test moves (the buyer's codes wait out cooldowns)."""
    database = tmp_path / "qianbao.db"
    shutil.copy(e2e_template, database)
    clock = FrozenClock()
    with live_server(demo_settings(database, tmp_path / "var"), clock) as server:
        yield server, clock


def test_a_merchant_signs_in_and_refunds_part_of_a_paid_order(
    frozen_server: tuple[LiveServer, FrozenClock], page: Page
) -> None:
    server, clock = frozen_server
    shop: Shop = new_shop(server.db, "Teahouse Online", "owner@teahouse.example")
    trade: Trade = new_trade(server.db, shop, "TEA_1001", "88")
    pay(server.db, paying_person(server.db, clock, "200"), trade)

    page.goto(f"{server.url}/merchant/login")
    page.get_by_label("Email or username").fill(shop.login)
    page.get_by_label("Password").fill(shop.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{server.url}/merchant/orders")
    row = page.get_by_test_id(f"order-{trade.trade_no}")
    expect(row.get_by_test_id("state")).to_have_text("TRADE_SUCCESS")
    row.get_by_role("link").click()

    expect(page.get_by_test_id("trade-status")).to_have_text("TRADE_SUCCESS")
    page.get_by_label("Amount (CNY)").fill("30.00")
    page.get_by_label("Reason").fill("one tin was dented")
    page.get_by_role("button", name="Refund").click()
    expect(page.get_by_test_id("refunded")).to_contain_text("30.00")
    expect(page.get_by_test_id("refunds")).to_contain_text("R1-TEA_1001")
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "merchant-portal-order.png"), full_page=True)
    refunded = server.db.run(lambda tx: payments.get_order(tx, trade.order_id)).refunded
    assert refunded.minor == 3000

    page.get_by_role("button", name="中文").click()
    expect(page.get_by_test_id("trade-status")).to_have_text("TRADE_SUCCESS")
    expect(page.get_by_role("heading", name="异步通知")).to_be_visible()
