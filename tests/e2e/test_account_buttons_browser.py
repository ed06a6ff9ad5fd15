"""Every button of the account and security pages, in a real browser, with the account
signed in on four devices: device names on the sessions page, one device logged out by its
own button, one ended by the new-device notice's link (no login), the rest by "Log out
everywhere else"; then every form of Account and Security, refused once and then done."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from liveserver import PHONE_VIEWPORT, LiveServer
from playwright.sync_api import Browser, BrowserContext, Page, expect
from test_security_browser import UK_E164, send_security_code, sign_up, t, type_on_keypad

from qianbao.notify.email import read_email_outbox

pytestmark = pytest.mark.e2e

ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
EMAIL = "grace@example.com"
PASSWORD = "violet harbour kettle ninety"


@pytest.fixture
def devices(browser: Browser) -> Iterator[dict[str, BrowserContext]]:
    """Four browsers of one person, each its own profile (cookies) and user agent."""
    made = {
        name: browser.new_context(viewport=PHONE_VIEWPORT, locale="en-GB", user_agent=agent)
        for name, agent in (
            ("phone", ANDROID),
            ("tablet", IPHONE),
            ("laptop", FIREFOX),
            ("desk", WINDOWS),
        )
    }
    for context in made.values():
        context.set_default_timeout(10_000)
    yield made
    for context in made.values():
        context.close()


def log_in_by_sms(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/")
    page.locator("#country").select_option("GB")
    page.locator("#number").fill("07911 123456")
    page.get_by_role("button", name=t("Next"), exact=True).click()
    page.wait_for_url(re.compile(r"/code\?"))
    page.locator("#code").fill(server.sms_code(UK_E164))
    page.get_by_role("button", name=t("Confirm"), exact=True).click()
    page.wait_for_url(re.compile(r"/home$"))


def is_signed_out(page: Page, server: LiveServer) -> bool:
    page.goto(server.url + "/me")
    return page.url == server.url + "/"


def test_every_button_of_the_account_and_security_pages(
    devices: dict[str, BrowserContext], live_server: LiveServer
) -> None:
    settings = live_server.settings
    settings.sms_resend_cooldown_seconds = 0  # several codes within a minute
    settings.sms_per_number_per_hour = settings.sms_per_number_per_day = 50
    pages = {name: context.new_page() for name, context in devices.items()}
    phone = pages["phone"]
    sign_up(phone, live_server)
    for name in ("tablet", "laptop", "desk"):
        log_in_by_sms(pages[name], live_server)
    links = [
        m.body for m in live_server.outbox(UK_E164) if "/sessions/end/" in m.body
    ]  # newest first: desk, laptop, tablet; none for the phone that signed up
    assert len(links) == 3 and "Firefox on Linux" in links[1]

    # Me -> Devices and sessions: the devices by name, never a raw user agent.
    phone.get_by_role("link", name=t("Me"), exact=True).click()
    phone.get_by_role("link", name=t("Devices and sessions"), exact=True).click()
    names = phone.get_by_test_id("device-name")
    expect(names).to_have_count(4)
    for expected in ("Chrome Mobile on Android", "Mobile Safari on iOS", "Firefox on Linux"):
        expect(phone.get_by_test_id("session").filter(has_text=expected)).to_have_count(1)
    expect(phone.locator("main, body").first).not_to_contain_text("Mozilla/5.0")

    # One device logged out by its own button.
    tablet_row = phone.get_by_test_id("session").filter(has_text="Mobile Safari on iOS")
    tablet_row.get_by_role("button").click()
    expect(phone.get_by_test_id("session")).to_have_count(3)
    assert is_signed_out(pages["tablet"], live_server)

    # One ended through the notice's link, from a browser with no session at all.
    link = re.search(r"https?://\S+/sessions/end/[A-Za-z0-9_-]{43}", links[1])
    assert link
    stranger = pages["tablet"]  # signed out now: the link needs no login
    stranger.goto(link.group(0))
    expect(stranger.get_by_test_id("linked-session")).to_contain_text("Firefox on Linux")
    stranger.get_by_role("button", name=t("End this session"), exact=True).click()
    expect(stranger.get_by_role("status")).to_have_text(
        t("This session has ended: it can no longer use your account.")
    )
    assert is_signed_out(pages["laptop"], live_server)

    # Log out everywhere else: the desk goes, the phone stays.
    phone.reload()
    expect(phone.get_by_test_id("session")).to_have_count(2)
    phone.get_by_role("button", name=t("Log out everywhere else"), exact=True).click()
    phone.wait_for_url(re.compile(r"/me/sessions$"))
    expect(phone.get_by_test_id("session")).to_have_count(1)
    expect(phone.get_by_test_id("session")).to_contain_text(t("This device"))
    expect(phone.get_by_role("button", name=t("Log out everywhere else"))).to_have_count(0)
    assert is_signed_out(pages["desk"], live_server)
    phone.goto(live_server.url + "/me/sessions")
    expect(phone.get_by_test_id("session")).to_have_count(1)  # still signed in here

    # Account and Security: every form, refused once, then done.
    phone.get_by_role("link", name=t("Me"), exact=True).click()
    phone.get_by_role("link", name=t("Settings"), exact=True).click()
    phone.get_by_role("link", name=t("Account and Security"), exact=True).click()

    phone.get_by_test_id("login-password-row").click()
    phone.locator("#new_password").fill(PASSWORD)
    phone.get_by_role("button", name=t("Save"), exact=True).click()  # no code yet
    expect(phone.get_by_role("alert")).to_have_attribute("data-code", "security.code_required")
    code = send_security_code(phone, live_server)
    phone.locator("#sms_code").fill(code)
    phone.locator("#new_password").fill(PASSWORD)
    phone.get_by_role("button", name=t("Save"), exact=True).click()
    expect(phone.get_by_role("status")).to_have_text(
        t("Login password saved. Other devices were logged out.")
    )

    phone.get_by_test_id("payment-password-row").click()
    code = send_security_code(phone, live_server)
    phone.locator("#sms_code").fill(code)
    phone.locator("#new_password").focus()
    type_on_keypad(phone, "8024")
    phone.get_by_role("button", name=t("Delete"), exact=True).click()
    expect(phone.locator("#new_password")).to_have_value("802")
    type_on_keypad(phone, "417")
    type_on_keypad(phone, "802418")  # not the same twice: refused
    phone.get_by_role("button", name=t("Save"), exact=True).click()
    expect(phone.get_by_role("alert")).to_have_attribute("data-code", "paypw.confirm_mismatch")
    phone.locator("#sms_code").fill(send_security_code(phone, live_server))
    phone.locator("#new_password").fill("")
    phone.locator("#confirm_password").fill("")
    phone.locator("#new_password").focus()
    type_on_keypad(phone, "802417")
    type_on_keypad(phone, "802417")
    phone.get_by_role("button", name=t("Save"), exact=True).click()
    expect(phone.get_by_role("status")).to_have_text(t("Payment password saved."))

    phone.get_by_test_id("email-row").click()
    phone.locator("#email").fill(EMAIL)
    phone.get_by_role("button", name=t("Send email code"), exact=True).click()
    expect(phone.get_by_role("status")).to_have_text(t("We sent a code to your email address."))
    phone.locator("#email_code").fill("000000")
    phone.get_by_role("button", name=t("Confirm"), exact=True).click()
    expect(phone.get_by_role("alert")).to_have_attribute("data-code", "email.code_mismatch")
    mails = live_server.db.run(lambda tx: read_email_outbox(tx, EMAIL, 1))
    found = re.search(r"(?<!\d)(\d{6})(?!\d)", mails[0].body)
    assert found, mails[0].body
    phone.locator("#email_code").fill(found.group(1))
    phone.get_by_role("button", name=t("Confirm"), exact=True).click()
    expect(phone.get_by_test_id("email-row")).to_contain_text(EMAIL)

    # And the last button of Me: log out.
    phone.get_by_role("link", name=t("Me"), exact=True).click()
    phone.get_by_role("button", name=t("Log out"), exact=True).click()
    phone.wait_for_url(re.compile(r"/$"))
    assert is_signed_out(phone, live_server)
