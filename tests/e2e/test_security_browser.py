"""Account and Security in a real browser: payment password on the keypad, login password,
email with its code, then log out and back in by email and password."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pytest
from liveserver import LiveServer
from playwright.sync_api import Page, expect

from qianbao.i18n import language_scope, translate
from qianbao.notify.email import read_email_outbox

pytestmark = pytest.mark.e2e

UK_E164 = "+447911123456"
EMAIL = "ada@example.com"
PASSWORD = "violet harbour kettle ninety"


def t(message: str, params: Mapping[str, object] | None = None) -> str:
    with language_scope("en"):
        return translate(message, params)


def sign_up(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/")
    page.locator("#country").select_option("GB")
    page.locator("#number").fill("07911 123456")
    page.get_by_role("button", name=t("Next"), exact=True).click()
    page.wait_for_url(re.compile(r"/signup\?"))
    page.locator("#agree").check()
    page.get_by_role("button", name=t("Agree and send code"), exact=True).click()
    page.wait_for_url(re.compile(r"/code\?"))
    page.locator("#code").fill(server.sms_code(UK_E164))
    page.get_by_role("button", name=t("Confirm"), exact=True).click()
    page.wait_for_url(re.compile(r"/home$"))


def send_security_code(page: Page, server: LiveServer) -> str:
    page.get_by_role("button", name=t("Send code"), exact=True).click()
    expect(page.get_by_role("status")).to_have_text(t("A new code is on its way."))
    return server.sms_code(UK_E164)


def type_on_keypad(page: Page, digits: str) -> None:
    for digit in digits:
        page.locator(f"#keypad [data-key='{digit}']").click()


def test_payment_password_login_password_email_then_back_in(
    page: Page, live_server: LiveServer
) -> None:
    live_server.settings.sms_resend_cooldown_seconds = 0  # several codes within a minute
    sign_up(page, live_server)
    page.get_by_role("link", name=t("Me"), exact=True).click()
    page.get_by_role("link", name=t("Settings"), exact=True).click()
    page.get_by_role("link", name=t("Account and Security"), exact=True).click()

    # Payment password, typed on the on-screen keypad.
    page.get_by_test_id("payment-password-row").click()
    code = send_security_code(page, live_server)
    page.locator("#sms_code").fill(code)
    expect(page.locator("#keypad")).to_be_visible()
    page.locator("#new_password").focus()
    type_on_keypad(page, "802417")  # fills the field, then moves on to "Enter it again"
    type_on_keypad(page, "802417")
    expect(page.locator("#new_password")).to_have_value("802417")
    expect(page.locator("#confirm_password")).to_have_value("802417")
    page.get_by_role("button", name=t("Save"), exact=True).click()
    expect(page.get_by_role("status")).to_have_text(t("Payment password saved."))

    # Login password, with the strength meter.
    page.get_by_test_id("login-password-row").click()
    code = send_security_code(page, live_server)
    page.locator("#sms_code").fill(code)
    page.locator("#new_password").fill(PASSWORD)
    expect(page.locator("#strength-label")).to_have_text(t("Very strong"))
    page.get_by_role("button", name=t("Save"), exact=True).click()
    expect(page.get_by_role("status")).to_have_text(
        t("Login password saved. Other devices were logged out.")
    )

    # Email, proven by the code mailed to it (the sandbox mailbox is the outbox).
    page.get_by_test_id("email-row").click()
    page.locator("#email").fill(EMAIL)
    page.get_by_role("button", name=t("Send email code"), exact=True).click()
    expect(page.get_by_role("status")).to_have_text(t("We sent a code to your email address."))
    mails = live_server.db.run(lambda tx: read_email_outbox(tx, EMAIL, 1))
    found = re.search(r"(?<!\d)(\d{6})(?!\d)", mails[0].body)
    assert found, mails[0].body
    page.locator("#email_code").fill(found.group(1))
    page.get_by_role("button", name=t("Confirm"), exact=True).click()
    expect(page.get_by_role("status")).to_have_text(
        t("Email address confirmed. You can log in with it.")
    )
    expect(page.get_by_test_id("email-row")).to_contain_text(EMAIL)

    # Log out, then in again with the email address and the login password.
    page.get_by_role("link", name=t("Me"), exact=True).click()
    page.get_by_role("button", name=t("Log out"), exact=True).click()
    page.wait_for_url(re.compile(r"/$"))
    page.get_by_role("link", name=t("Log in with password"), exact=True).click()
    page.locator("#login").fill(EMAIL)
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name=t("Log in"), exact=True).click()
    page.wait_for_url(re.compile(r"/home$"))
