"""Browser tests: a live uvicorn server per test and Debian's chromium driven by Playwright.

Every test in this folder is skipped, with the reason shown, when chromium is not installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from axe import with_axe
from liveserver import (
    CHROMIUM_ARGS,
    PHONE_VIEWPORT,
    LiveServer,
    chromium_path,
    demo_server,
    migrated_sqlite,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

HERE = Path(__file__).parent
CHROMIUM = chromium_path()
SKIP_REASON = "chromium not installed: browser tests skipped (apt-get install chromium)"
# Playwright waits this long for an element or a navigation before failing a test.
TIMEOUT_MS = 10_000


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM is not None:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def e2e_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; each live server gets a copy."""
    return migrated_sqlite(tmp_path_factory.mktemp("e2e-template") / "qianbao.db")


@pytest.fixture
def live_server(tmp_path: Path, e2e_template: Path) -> Iterator[LiveServer]:
    """A demo-mode Qianbao on 127.0.0.1 and a free port, with its own empty database."""
    with demo_server(tmp_path, e2e_template) as server:
        yield server


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert CHROMIUM is not None, SKIP_REASON
    launched = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS)
    )
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh profile (no cookies) with a phone-sized screen and an English browser; axe-core
    is in each of its pages (``axe.blocking_violations(page)``) when it is installed."""
    fresh = with_axe(browser.new_context(viewport=PHONE_VIEWPORT, locale="en-GB"))
    fresh.set_default_timeout(TIMEOUT_MS)
    yield fresh
    fresh.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()
