"""The address form in a real browser: the city list follows the chosen state.

Skipped without Debian's chromium, and until ``app.py`` includes the profile routers
(the live server builds its own app).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.liveserver import (
    CHROMIUM_ARGS,
    PHONE_VIEWPORT,
    LiveServer,
    chromium_path,
    demo_server,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e

CHROMIUM = chromium_path()
UK_TYPED, UK_E164 = "07911 123456", "+447911123456"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    if CHROMIUM is None:
        pytest.skip("chromium not installed: browser tests skipped (apt-get install chromium)")
    with demo_server(tmp_path) as live:
        yield live


def _in_browser(scenario: Callable[[Page], None]) -> None:
    """Run ``scenario`` on a fresh phone-sized page. In a thread of its own: Playwright's
    sync API refuses to start where another instance (tests/e2e's) holds the loop."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

    def run() -> None:
        with sync_api.sync_playwright() as driver:
            browser = driver.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS)
            )
            try:
                context = browser.new_context(viewport=PHONE_VIEWPORT, locale="en-GB")
                context.set_default_timeout(10_000)
                scenario(context.new_page())
            finally:
                browser.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(run).result(timeout=120)


def _sign_up(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/")
    page.locator("#country").select_option("GB")
    page.locator("#number").fill(UK_TYPED)
    page.locator("form[action='/start'] button[type=submit]").click()
    page.wait_for_url(re.compile(r"/signup\?"))
    page.locator("#agree").check()
    page.locator("#signup-form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/code\?"))
    page.locator("#code").fill(server.sms_code(UK_E164))
    page.locator("form[action='/code'] button[type=submit]").click()
    page.wait_for_url(re.compile(r"/home$"))


def _city_options(page: Page) -> list[str]:
    values: list[str] = page.locator("#city").evaluate(
        "select => [...select.options].map(o => o.value)"
    )
    return values


def test_the_city_list_follows_the_state(server: LiveServer) -> None:
    _in_browser(lambda page: _city_list_follows_the_state(page, server))


def _city_list_follows_the_state(page: Page, server: LiveServer) -> None:
    from playwright.sync_api import expect

    _sign_up(page, server)
    page.goto(server.url + "/me/personal-info/address")
    expect(page.locator("#city-hint")).to_be_hidden()
    assert _city_options(page) == [""]

    page.locator("#state").select_option("440000")
    cities = _city_options(page)
    assert cities[0] == "" and "440100" in cities and "320100" not in cities
    assert all(code.startswith("44") for code in cities[1:])
    page.locator("#city").select_option("440100")

    # Overseas, a municipality or Hong Kong: the one city is chosen by itself.
    page.locator("#state").select_option("OVERSEAS")
    assert _city_options(page) == ["", "OVERSEAS"]
    expect(page.locator("#city")).to_have_value("OVERSEAS")

    page.locator("#street").fill("  1 Main Street, Springfield  ")
    page.locator("#address-form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/me/personal-info\?saved=address$"))
    expect(page.get_by_test_id("location")).to_have_text("Overseas")
    expect(page.get_by_test_id("street")).to_have_text("1 Main Street, Springfield")

    # Back on the form, the saved choice is shown and the list still follows the state.
    page.goto(server.url + "/me/personal-info/address")
    expect(page.locator("#state")).to_have_value("OVERSEAS")
    expect(page.locator("#city")).to_have_value("OVERSEAS")
    page.locator("#state").select_option("110000")
    expect(page.locator("#city")).to_have_value("110000")
