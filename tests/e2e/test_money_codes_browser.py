"""Money codes and Scan in a real browser: a shop makes a QR code with the trade API
(``alipay.trade.precreate``); the person opens Scan, the camera reads the code (Chromium's
fake camera plays a video of it, decoded in the page) or the person pastes it, pays at the
cashier and finds the payment in their history; a second person scans the first one's
receive code and sends money to it; then Scan, a shop's cashier and both codes in Chinese.
Set ``MONEY_CODES_SCREENSHOTS`` to a folder to save the README's screenshots of the receive
code, the payment code, Scan and a shop's cashier there, in English and in Chinese."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import qrcode
from liveserver import CHROMIUM_ARGS, PHONE_VIEWPORT, LiveServer
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect

from qianbao.identity import security
from qianbao.identity.phone import parse_mobile
from tests.e2e.conftest import CHROMIUM, TIMEOUT_MS
from tests.e2e.test_two_people_browser import log_in, second_person, t
from tests.e2e.test_verify_browser import zh
from tests.helpers import HOME, last_code, sign_up
from tests.openplatform.gateway.test_rules import App
from tests.wallet.test_payments import PIN, fund, verify

pytestmark = pytest.mark.e2e

BUYER = "07911 123456"
FRIEND = "07912 345678"
SCREENSHOTS = os.environ.get("MONEY_CODES_SCREENSHOTS")


def shoot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def person_with_money(server: LiveServer, number: str, money: str) -> None:
    """Signed up earlier, verified, money on the balance, a payment password."""
    db = server.db
    account = sign_up(db, parse_mobile(number, "GB")).account
    security.send_security_code(db, account.id, HOME, "en")
    security.set_payment_password(db, account.id, PIN, sms_code=last_code(db, account.phone))
    verify(db, account.id)
    fund(db, account.id, money)


def precreate(server: LiveServer, amount: str, *numbers: str) -> list[str]:
    """One shop's QR codes, an order each: what ``alipay.trade.precreate`` answers as
    ``qr_code``."""
    shop = App(server.db)
    codes = []
    for number in numbers:
        made = shop.ask(
            "alipay.trade.precreate",
            {"out_trade_no": number, "total_amount": amount, "subject": "Oolong tea"},
        )
        assert made["code"] == "10000", made
        codes.append(str(made["qr_code"]))
    return codes


def pay_at_the_cashier(page: Page) -> None:
    page.wait_for_url(re.compile(r"/cashier/"))
    page.get_by_label(t("Balance"), exact=False).check()
    page.locator("#payment_password").fill(PIN)
    page.get_by_role("button", name=t("Pay"), exact=True).click()
    expect(page.get_by_test_id("order")).to_have_attribute("data-status", "TRADE_SUCCESS")


def test_scan_a_shop_s_code_pay_it_and_pay_a_person_s_receive_code(
    browser: Browser, page: Page, live_server: LiveServer
) -> None:
    live_server.settings.sms_resend_cooldown_seconds = 0
    person_with_money(live_server, BUYER, "200")
    person_with_money(live_server, FRIEND, "100")
    qr_code, chinese_code = precreate(live_server, "36.50", "SCAN1", "SCAN2")

    page.goto(live_server.url + "/")
    log_in(page, live_server, BUYER)
    page.wait_for_url(re.compile(r"/home$"))
    # Home -> Scan, as a person does: the action row's Scan.
    page.locator('[data-action="scan"] a').click()
    page.wait_for_url(re.compile(r"/wallet/scan$"))
    expect(page.get_by_role("heading", name=t("Scan"))).to_be_visible()
    shoot(page, "24-scan")
    page.get_by_label(t("Or paste a code or its link")).fill(qr_code)
    page.get_by_role("button", name=t("Open"), exact=True).click()
    page.wait_for_url(re.compile(r"/cashier/"))
    shoot(page, "25-merchant-qr-cashier")
    pay_at_the_cashier(page)
    page.goto(live_server.url + "/wallet/history")
    history = page.get_by_test_id("history")
    expect(history).to_contain_text("Oolong tea")
    expect(history).to_contain_text("36.50")
    # In the person's own time zone (Beijing's by default), named, and in words: "Paid",
    # not TRADE_SUCCESS.
    expect(history).to_contain_text("China Standard Time")
    expect(history).to_contain_text(t("Paid"))
    expect(history).not_to_contain_text("TRADE_SUCCESS")

    # The buyer's receive code, for CNY 12.00; the payment code for the README.
    page.goto(live_server.url + "/wallet/payment-code")
    expect(page.get_by_test_id("payment-code-digits")).to_have_text(
        re.compile(r"^28\d\d( \d{4}){3}\d{2}$")
    )
    shoot(page, "23-payment-code")
    page.goto(live_server.url + "/wallet/receive-code")
    page.locator("#amount").fill("12")
    page.locator("#note").fill("Tea money")
    page.get_by_role("button", name=t("Show the code"), exact=True).click()
    link = page.get_by_test_id("receive-link").input_value()
    assert "amount=12.00" in link and "7911" not in link
    shoot(page, "22-receive-code")

    friend_context = second_person(browser)
    try:
        friend = friend_context.new_page()
        friend.goto(live_server.url + "/")
        log_in(friend, live_server, FRIEND)
        friend.wait_for_url(re.compile(r"/home$"))
        friend.goto(live_server.url + "/wallet/scan")
        friend.get_by_label(t("Or paste a code or its link")).fill(link)
        friend.get_by_role("button", name=t("Open"), exact=True).click()
        expect(friend.get_by_role("heading")).to_have_text(
            t("Send money to {name}", {"name": "+44 ******3456 (verified)"})
        )
        expect(friend.locator("#amount")).to_have_value("12.00")
        friend.get_by_role("button", name=t("Next"), exact=True).click()
        expect(friend.get_by_test_id("recipient-name")).to_contain_text("+44 ******3456")
        friend.locator("#payment_password").fill(PIN)
        friend.get_by_role("button", name=t("Send {amount}", {"amount": "CNY 12.00"})).click()
        expect(friend.get_by_test_id("transfer")).to_have_attribute("data-direction", "sent")
    finally:
        friend_context.close()
    page.goto(live_server.url + "/wallet/history")
    expect(page.get_by_test_id("transfers")).to_contain_text("Tea money")
    the_same_pages_in_chinese(page, live_server, chinese_code)


def the_same_pages_in_chinese(page: Page, server: LiveServer, qr_code: str) -> None:
    """Scan, the cashier of another of the shop's codes, the payment code and the receive
    code, after the language button's Chinese."""
    page.get_by_role("button", name="简体中文").click()
    page.goto(server.url + "/wallet/scan")
    expect(page.get_by_role("heading", name=zh("Scan"))).to_be_visible()
    shoot(page, "24-scan-zh")
    page.get_by_label(zh("Or paste a code or its link")).fill(qr_code)
    page.get_by_role("button", name=zh("Open"), exact=True).click()
    page.wait_for_url(re.compile(r"/cashier/"))
    expect(page.get_by_role("button", name=zh("Pay"), exact=True)).to_be_visible()
    shoot(page, "25-merchant-qr-cashier-zh")
    page.goto(server.url + "/wallet/payment-code")
    expect(page.get_by_role("heading", name=zh("Payment code"))).to_be_visible()
    expect(page.get_by_test_id("payment-code-digits")).to_have_text(re.compile(r"^28\d\d"))
    shoot(page, "23-payment-code-zh")
    page.goto(server.url + "/wallet/receive-code")
    page.locator("#amount").fill("12")
    page.locator("#note").fill("茶钱")
    page.get_by_role("button", name=zh("Show the code"), exact=True).click()
    expect(page.get_by_test_id("receive-link")).to_have_value(re.compile(r"amount=12\.00"))
    shoot(page, "22-receive-code-zh")


# --- the camera -----------------------------------------------------------------------


def qr_video(text: str, path: Path) -> Path:
    """A short Y4M video (what Chromium's fake camera plays) of ``text`` as a QR code on a
    white 640 x 480 frame: the luma plane is the image, the chroma planes grey."""
    image = qrcode.make(text, border=4, box_size=8).get_image().convert("L")
    side = min(440, image.size[0])
    luma = np.full((480, 640), 255, dtype=np.uint8)
    pixels = np.asarray(image.resize((side, side)), dtype=np.uint8)
    top, left = (480 - side) // 2, (640 - side) // 2
    luma[top : top + side, left : left + side] = pixels
    chroma = np.full((240, 320), 128, dtype=np.uint8).tobytes()
    frame = b"FRAME\n" + luma.tobytes() + chroma + chroma
    path.write_bytes(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n" + frame * 10)
    return path


@pytest.fixture
def camera_playing(
    playwright: Playwright, live_server: LiveServer, tmp_path: Path
) -> Iterator[tuple[BrowserContext, str]]:
    """A Chromium whose camera shows a shop's QR code (permission already given)."""
    assert CHROMIUM is not None
    [qr_code] = precreate(live_server, "8.80", "CAM1")
    video = qr_video(qr_code, tmp_path / "qr.y4m")
    launched = playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ],
    )
    context = launched.new_context(viewport=PHONE_VIEWPORT, locale="en-GB")
    context.set_default_timeout(TIMEOUT_MS)
    context.grant_permissions(["camera"], origin=live_server.url)
    try:
        yield context, qr_code
    finally:
        context.close()
        launched.close()


def test_the_camera_reads_a_shop_s_code_in_the_page(
    camera_playing: tuple[BrowserContext, str], live_server: LiveServer
) -> None:
    """Debian's headless Chromium has no ``BarcodeDetector``: the vendored jsQR reads it."""
    context, qr_code = camera_playing
    live_server.settings.sms_resend_cooldown_seconds = 0
    person_with_money(live_server, BUYER, "50")
    page = context.new_page()
    page.goto(live_server.url + "/")
    log_in(page, live_server, BUYER)
    page.wait_for_url(re.compile(r"/home$"))
    page.goto(live_server.url + "/wallet/scan")
    page.get_by_role("button", name=t("Open the camera"), exact=True).click()
    pay_at_the_cashier(page)
    assert page.url == qr_code
