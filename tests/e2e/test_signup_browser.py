"""Sign-up in a real browser: language switch, picker search, agreement dialog, SMS code.

Expected texts come from the gettext catalogs (``translate`` in ``language_scope``), so the
tests follow the translations instead of repeating them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import pytest
from liveserver import PHONE_VIEWPORT, LiveServer
from playwright.sync_api import Page, expect

from qianbao.i18n import HTML_LANG, LANGUAGE_NAMES, Language, language_scope, translate
from qianbao.identity.phone import calling_codes

pytestmark = pytest.mark.e2e

UK_E164 = "+447911123456"
UK_SHOWN = "+44 7911 123456"
UK_TYPED = "07911 123456"  # as a British person writes it: with the trunk 0


def t(language: Language, message: str, params: Mapping[str, object] | None = None) -> str:
    """``message`` as the catalog of ``language`` has it."""
    with language_scope(language):
        return translate(message, params)


def option_label(region: str, language: Language) -> str:
    """What the picker shows for ``region``: ``United Kingdom +44`` or ``英国 +44``."""
    row = next(row for row in calling_codes() if row.key == region)
    return f"{row.name(language)} +{row.code}"


def visible_options(page: Page) -> list[str]:
    labels: list[str] = page.locator("#country").evaluate(
        "select => [...select.options].filter(o => !o.hidden).map(o => o.textContent.trim())"
    )
    return labels


def path_of(page: Page) -> str:
    return urlsplit(page.url).path


def choose_language(page: Page, language: Language) -> None:
    page.get_by_role("button", name=LANGUAGE_NAMES[language], exact=True).click()
    expect(page.locator("html")).to_have_attribute("lang", HTML_LANG[language])


def start_sign_up(page: Page, server: LiveServer, language: Language) -> str:
    """From the first page to the code page for the UK number; returns the SMS code."""
    page.goto(server.url + "/")
    choose_language(page, language)

    search = page.locator("#country-search")
    expect(search).to_be_visible()
    search.fill("英国")
    assert visible_options(page) == [option_label("GB", language)]
    page.locator("#country").select_option("GB")
    expect(page.locator("#country")).to_have_value("GB")
    page.locator("#number").fill(UK_TYPED)
    page.get_by_role("button", name=t(language, "Next"), exact=True).click()

    page.wait_for_url(re.compile(r"/signup\?"))
    expect(page.get_by_test_id("confirm-number")).to_have_text(UK_SHOWN)
    dialog = page.locator("#agreement-dialog")
    expect(dialog).to_be_hidden()
    # Not ticked yet: sending the form opens the agreement instead.
    page.get_by_role("button", name=t(language, "Agree and send code"), exact=True).click()
    expect(dialog).to_be_visible()
    expect(page.locator("#agreement-dialog-title")).to_be_visible()
    dialog.locator("[data-dialog=accept]").click()

    page.wait_for_url(re.compile(r"/code\?"))
    expected = t(
        language,
        "Enter the {length}-digit code sent to {number}",
        {"length": server.settings.sms_code_length, "number": UK_SHOWN},
    )
    expect(page.get_by_test_id("code-sent-to")).to_have_text(expected)
    return server.sms_code(UK_E164)


def test_sign_up_in_chinese_on_a_phone(page: Page, live_server: LiveServer) -> None:
    language: Language = "zh_Hans"
    page.set_viewport_size(PHONE_VIEWPORT)
    code = start_sign_up(page, live_server, language)
    assert len(code) == live_server.settings.sms_code_length

    page.locator("#code").fill(code)
    page.get_by_role("button", name=t(language, "Confirm"), exact=True).click()
    page.wait_for_url(re.compile(r"/home$"))

    tabbar = page.get_by_role("navigation", name=t(language, "Main"))
    expect(tabbar).to_be_visible()
    tabbar.get_by_role("link", name=t(language, "Me"), exact=True).click()
    page.wait_for_url(re.compile(r"/me$"))

    page.locator("a.me-header[href='/me/profile']").click()
    page.wait_for_url(re.compile(r"/me/profile$"))
    row = page.get_by_test_id("real-name")
    expect(row).to_contain_text(t(language, "Real-name verification"))
    pill = row.locator(".status-pill")
    expect(pill).to_have_text(t(language, "Unverified"))
    expect(pill).to_have_class(re.compile(r"\bstatus-unverified\b"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")


def test_wrong_code_shows_the_localized_error(page: Page, live_server: LiveServer) -> None:
    language: Language = "zh_Hans"
    code = start_sign_up(page, live_server, language)
    wrong = f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"

    page.locator("#code").fill(wrong)
    page.get_by_role("button", name=t(language, "Confirm"), exact=True).click()

    alert = page.locator(".alert[data-code='otp.mismatch']")
    expect(alert).to_be_visible()
    tries_left = live_server.settings.sms_code_max_attempts - 1
    expect(alert).to_have_text(
        t(
            language,
            "The code is not right. Tries left for this code: {left}.",
            {"left": tries_left},
        )
    )
    assert path_of(page) == "/code"
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")

    # The right code still works after a wrong one.
    page.locator("#code").fill(code)
    page.get_by_role("button", name=t(language, "Confirm"), exact=True).click()
    page.wait_for_url(re.compile(r"/home$"))


def test_picker_search_filters_by_english_name(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url + "/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    picker = page.locator("#country")
    expect(picker).to_have_value(live_server.settings.default_region)

    page.locator("#country-search").fill("malay")
    assert visible_options(page) == [option_label("MY", "en")]
    assert option_label("MY", "en") == "Malaysia +60"
    # The preselected region is filtered out, so the first match is chosen.
    expect(picker).to_have_value("MY")

    page.locator("#country-search").fill("")
    assert len(visible_options(page)) == len(calling_codes())
