"""The steps of "Verify face" as a person takes them in the browser, shared by the browser
tests (tests/e2e/test_verify_browser.py, the accessibility test) and docs/screenshots.py:
the photo page sent by the upload fallback (no camera in headless Chromium), then the
random challenge read off the page and performed by a synthetic clip sent as the frames.

The controls are found by their forms and ids, not their words, so a walk works in
either language.
"""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.verification import liveness_clips
from tests.verification.passport_pages import (
    PassportData,
    encode,
    random_passport,
    render_page,
)

# Reading the page (OCR) and matching the face take seconds on a busy machine.
SLOW_STEP_MS = 60_000


def valid_today_seed() -> int:
    """The seed of a generated passport that has not expired on the real date the
    server uses (a year to spare)."""
    a_year_on = date.today().replace(year=date.today().year + 1)
    return next(
        seed for seed in range(100) if random_passport(random.Random(seed)).expiry_date > a_year_on
    )


def valid_passport() -> PassportData:
    return random_passport(random.Random(valid_today_seed()))


def send_photo_page(page: Page, passport: PassportData, folder: Path) -> None:
    """On step 1: the photo page as a JPEG file; waits for the confirm step's reading."""
    page_file = folder / "passport.jpg"
    page_file.write_bytes(encode(render_page(passport), "JPEG", 92))
    page.locator("#page-file").set_input_files(str(page_file))
    page.locator("#page-send").click()
    expect(page.get_by_test_id("read-document")).to_be_visible(timeout=SLOW_STEP_MS)


def confirm_document(page: Page) -> None:
    """Press "Yes, this is me": on to step 2."""
    page.locator("form[action$='/passport-face/confirm'] button").click()
    expect(page.locator("form[action$='/passport-face/challenge']")).to_be_visible()


def ask_for_challenge(page: Page) -> tuple[str, ...]:
    """Press "I'm ready": the two actions the page asks for."""
    page.locator("form[action$='/passport-face/challenge'] button").click()
    actions = page.get_by_test_id("challenge").locator("li")
    expect(actions).to_have_count(2)
    return tuple(actions.nth(i).get_attribute("data-action") or "" for i in range(2))


def perform_challenge(page: Page, challenge: tuple[str, ...], folder: Path) -> None:
    """The astronaut performing ``challenge``, sent as the frames; waits for step 3."""
    frames = liveness_clips.performance("astronaut", challenge, random.Random(5))
    paths = []
    for index, frame in enumerate(frames):
        path = folder / f"frame-{index:02d}.jpg"
        frame.save(path, "JPEG", quality=90)
        paths.append(str(path))
    page.locator("#face-files").set_input_files(paths)
    page.locator("#face-send").click()
    expect(page.get_by_test_id("result")).to_be_visible(timeout=SLOW_STEP_MS)
