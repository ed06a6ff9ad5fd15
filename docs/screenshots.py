"""Take the screenshots in docs/screenshots/ with Debian's chromium at a 375 x 812 phone size.

    .venv/bin/python docs/screenshots.py [--language en|zh_Hans] [--out docs/screenshots]

Starts a demo-mode Qianbao on a temporary SQLite database (the same live server as the
browser tests, tests/e2e/liveserver.py), signs up a UK number and saves:

    01-first-page-en.png        the first page in English
    02-first-page-zh.png        the first page in Simplified Chinese
    03-signup-agreement.png     sign-up, with the agreement dialog open
    04-code.png                 the SMS code page
    05-profile-unverified.png   the profile, real-name verification not done yet
    06-personal-info-address.png  the address: state, city and street
    07-account-and-security.png   Settings -> Account and Security
    08-payment-password-keypad.png  the payment password on its keypad

Pages 03 to 05 are in ``--language`` (English unless told).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path
from typing import cast

from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from liveserver import (  # noqa: E402 - found through the path added above
    CHROMIUM_ARGS,
    PHONE_VIEWPORT,
    LiveServer,
    chromium_path,
    demo_server,
)

from qianbao.i18n import HTML_LANG, LANGUAGE_NAMES, LANGUAGES, Language  # noqa: E402

UK_E164 = "+447911123456"
UK_TYPED = "07911 123456"
TIMEOUT_MS = 15_000


def choose_language(page: Page, language: Language) -> None:
    page.get_by_role("button", name=LANGUAGE_NAMES[language], exact=True).click()
    expect(page.locator("html")).to_have_attribute("lang", HTML_LANG[language])


def shoot(page: Page, out: Path, name: str) -> Path:
    path = out / name
    page.screenshot(path=str(path), animations="disabled", caret="hide")
    print(f"  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


def take_screenshots(page: Page, server: LiveServer, out: Path, language: Language) -> None:
    page.goto(server.url + "/")
    choose_language(page, "en")
    shoot(page, out, "01-first-page-en.png")
    choose_language(page, "zh_Hans")
    shoot(page, out, "02-first-page-zh.png")
    if language != "zh_Hans":
        choose_language(page, language)

    page.locator("#country").select_option("GB")
    page.locator("#number").fill(UK_TYPED)
    page.locator("form[action='/start'] button[type=submit]").click()
    page.wait_for_url(re.compile(r"/signup\?"))
    page.locator("#signup-form button[type=submit]").click()
    dialog = page.locator("#agreement-dialog")
    expect(dialog).to_be_visible()
    shoot(page, out, "03-signup-agreement.png")

    dialog.locator("[data-dialog=accept]").click()
    page.wait_for_url(re.compile(r"/code\?"))
    code = server.sms_code(UK_E164)
    page.locator("#code").fill(code)
    shoot(page, out, "04-code.png")

    page.locator("form[action='/code'] button[type=submit]").click()
    page.wait_for_url(re.compile(r"/home$"))
    page.goto(server.url + "/me")
    page.locator("a.me-header").click()
    page.wait_for_url(re.compile(r"/me/profile$"))
    expect(page.get_by_test_id("real-name")).to_be_visible()
    shoot(page, out, "05-profile-unverified.png")

    page.goto(server.url + "/me/personal-info/address")
    page.locator("select[name=state]").select_option("440000")
    page.locator("select[name=city]").select_option("440100")
    page.locator("textarea[name=street]").fill("天河路 385 号")
    shoot(page, out, "06-personal-info-address.png")

    page.goto(server.url + "/me/security")
    shoot(page, out, "07-account-and-security.png")

    page.goto(server.url + "/me/security/payment-password")
    page.locator("#new_password").focus()
    for digit in "802":
        page.locator(f"#keypad [data-key='{digit}']").click()
    shoot(page, out, "08-payment-password-keypad.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--language", choices=LANGUAGES, default="en")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--scale", type=float, default=2.0, help="device pixel ratio (2)")
    args = parser.parse_args(argv)

    chromium = chromium_path()
    if chromium is None:
        print("chromium not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    language = cast(Language, args.language)

    with (
        tempfile.TemporaryDirectory(prefix="qianbao-screenshots-") as tmp,
        demo_server(Path(tmp)) as server,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=list(CHROMIUM_ARGS)
        )
        context = browser.new_context(
            viewport=PHONE_VIEWPORT, device_scale_factor=args.scale, locale="en-GB"
        )
        context.set_default_timeout(TIMEOUT_MS)
        print(f"Qianbao at {server.url}; screenshots:")
        try:
            take_screenshots(context.new_page(), server, out, language)
        finally:
            context.close()
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
