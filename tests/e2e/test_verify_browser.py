""" "Verify face" in a real browser, in Chinese: options page, photo page by the upload
fallback, confirm the read name, the random challenge read off the page and performed by
a synthetic clip (uploaded as the frames), and the result: Verified."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pytest
from liveserver import LiveServer
from playwright.sync_api import Page, expect
from verify_walk import SLOW_STEP_MS, perform_challenge, send_photo_page, valid_passport

from qianbao.i18n import language_scope, translate
from qianbao.i18n.formats import country_name
from qianbao.notify.service import signed_sms
from tests.verification.flow_helpers import accept_synthetic_clips

pytestmark = pytest.mark.e2e

UK_E164 = "+447911123456"


def zh(message: str, params: Mapping[str, object] | None = None) -> str:
    with language_scope("zh_Hans"):
        return translate(message, params)


def sign_up_in_chinese(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/")
    page.get_by_role("button", name="简体中文").click()
    page.locator("#country").select_option("GB")
    page.locator("#number").fill("07911 123456")
    page.get_by_role("button", name=zh("Next"), exact=True).click()
    page.wait_for_url(re.compile(r"/signup\?"))
    page.locator("#agree").check()
    page.get_by_role("button", name=zh("Agree and send code"), exact=True).click()
    page.wait_for_url(re.compile(r"/code\?"))
    page.locator("#code").fill(server.sms_code(UK_E164))
    page.get_by_role("button", name=zh("Confirm"), exact=True).click()
    page.wait_for_url(re.compile(r"/home$"))


def test_verify_face_in_chinese_ends_verified(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    accept_synthetic_clips(live_server.settings)
    sign_up_in_chinese(page, live_server)
    page.get_by_role("link", name=zh("Verify your identity")).click()
    page.wait_for_url(re.compile(r"/me/verify$"))
    expect(page.get_by_test_id("option-chip")).to_contain_text(
        zh("Passport chip & face verification")
    )
    page.get_by_role("button", name=zh("Start"), exact=True).click()

    # Step 1: no camera in this browser, so the upload fallback takes the photo page.
    expect(page.locator(".step-current")).to_contain_text(zh("Passport"))
    passport = valid_passport()
    send_photo_page(page, passport, tmp_path)
    expect(page.get_by_test_id("read-surname")).to_have_text(passport.surname.replace("<", " "))
    expect(page.get_by_test_id("read-nationality")).to_have_text(
        country_name(passport.nationality, "zh_Hans")
    )
    page.get_by_role("button", name=zh("Yes, this is me")).click()

    # Step 2: the random challenge, read off the page, performed by a synthetic clip.
    page.get_by_role("button", name=zh("I'm ready")).click()
    actions = page.get_by_test_id("challenge").locator("li")
    challenge = tuple(actions.nth(i).get_attribute("data-action") or "" for i in range(2))
    perform_challenge(page, challenge, tmp_path)

    expect(page.get_by_test_id("result")).to_have_attribute(
        "data-status", "verified", timeout=SLOW_STEP_MS
    )
    page.get_by_role("link", name=zh("Go to the certification center")).click()
    expect(page.get_by_test_id("cert-nationality")).to_have_text(
        country_name(passport.nationality, "zh_Hans")
    )
    expect(page.get_by_test_id("cert-real-name")).to_contain_text(zh("Verified"))
    sms = live_server.outbox(UK_E164)[0].body
    verified = zh("Your real-name verification was successful. Your account is now verified.")
    assert signed_sms(verified, "zh_Hans") == sms
