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
    09-verify-options.png       identity verification: the three ways
    10-verify-confirm.png       "Verify face" step 1 read: is this you?
    11-verify-challenge.png     step 2: the random liveness challenge
    12-verify-verified.png      step 3: verified
    13-certification-verified.png  the certification center once verified
    14-review-case.png          the reviewers' back office: one case
    15-level.png                the account level: rights, limits used, the next level
    16-cashier.png              the cashier: balance refused before verification, card fee
    18-topup-code.png           a store top-up code redeemed
    19-transfer-confirm.png     send money: the recipient checked before confirming
    20-pay-for-me-link.png      a pay-for-me link with its QR code
    21-tour-pass.png            a topped-up Tour Pass

The passport page and the selfie frames are the synthetic ones of the tests
(tests/verification/passport_pages.py and liveness_clips.py).

Pages 03 to 05 are in ``--language`` (English unless told). The browser tests take the
others (17-wallet, Home, the money codes, the marketplace, the merchant portal; README says
which variable names their folder).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, cast

from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from qianbao.identity.service import Client
from liveserver import (  # noqa: E402 - found through the path added above
    CHROMIUM_ARGS,
    PHONE_VIEWPORT,
    LiveServer,
    chromium_path,
    demo_server,
)
from verify_walk import (  # noqa: E402 - found through the path added above
    ask_for_challenge,
    confirm_document,
    perform_challenge,
    send_photo_page,
    valid_passport,
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
    verify_face(page, server, out)


def verify_face(page: Page, server: LiveServer, out: Path) -> None:
    from tests.verification.flow_helpers import accept_synthetic_clips

    accept_synthetic_clips(server.settings)
    page.goto(server.url + "/me/verify")
    shoot(page, out, "09-verify-options.png")
    page.locator("[data-testid=option-face] button[type=submit]").click()
    with tempfile.TemporaryDirectory() as tmp:
        send_photo_page(page, valid_passport(), Path(tmp))
        shoot(page, out, "10-verify-confirm.png")
        confirm_document(page)
        challenge = ask_for_challenge(page)
        shoot(page, out, "11-verify-challenge.png")
        perform_challenge(page, challenge, Path(tmp))
    shoot(page, out, "12-verify-verified.png")
    page.goto(server.url + "/me/certification")
    shoot(page, out, "13-certification-verified.png")
    review_case(page, server, out, paths_for_review(server))
    page.set_viewport_size(PHONE_VIEWPORT)
    wallet(page, server, out)


def wallet(page: Page, server: LiveServer, out: Path) -> None:
    """A new, unverified person adds a card and pays the demo shop."""
    from qianbao.funding import foreign_cards
    from qianbao.identity import security
    from qianbao.identity.phone import parse_mobile
    from qianbao.money import Money
    from qianbao.wallet.payments import refunds
    from qianbao.wallet.payments import service as payments

    db = server.db
    page.context.clear_cookies()
    phone = parse_mobile("+447400123456", "GB")
    page.goto(server.url + "/")
    page.locator("#country").select_option("GB")
    page.locator("#number").fill("07400 123456")
    page.locator("form[action='/start'] button[type=submit]").click()
    page.wait_for_url(re.compile(r"/signup\?"))
    page.locator("#agree").check()
    page.locator("#signup-form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/code\?"))
    page.locator("#code").fill(server.sms_code(phone.e164))
    page.locator("form[action='/code'] button[type=submit]").click()
    page.wait_for_url(re.compile(r"/home$"))
    user = db.run(lambda tx: security.find_login(tx, phone.e164, phone))
    assert user is not None
    server.settings.sms_resend_cooldown_seconds = 0
    security.send_security_code(db, user.id, _client(), "en")
    security.set_payment_password(db, user.id, "802417", sms_code=server.sms_code(phone.e164))
    foreign_cards.add_foreign_card(db, user.id, "4000 0000 0084 0019", "12/30", "123", "TAN WEI")
    shop = payments.demo_merchant(db)
    paid = db.run(
        lambda tx: payments.create_order(tx, shop, "DEMO1", "Teapot", Money.of("CNY", "288.00"))
    )
    card = db.run(lambda tx: foreign_cards.cards_of(tx, user.id))[0].id
    payments.pay_with_card(db, user.id, paid.id, card, "802417")
    refunds.refund(db, shop, paid.id, "R1", Money.of("CNY", "88.00"))
    waiting = db.run(
        lambda tx: payments.create_order(tx, shop, "DEMO2", "Tea cups", Money.of("CNY", "468.00"))
    )
    page.goto(server.url + "/me/level")
    shoot(page, out, "15-level.png")
    page.goto(server.url + f"/cashier/{waiting.id}")
    shoot(page, out, "16-cashier.png")
    wallet_part_two(page, server, out, user.id)


def wallet_part_two(page: Page, server: LiveServer, out: Path, user_id: object) -> None:
    """The same person, now verified: a store code on the balance, a transfer to a
    verified friend (the masked name before confirming), a pay-for-me link with its QR
    code, a topped-up Tour Pass."""
    import uuid

    from qianbao.funding import foreign_cards
    from qianbao.identity import service as identity
    from qianbao.identity.agreements import CURRENT_VERSION
    from qianbao.identity.phone import parse_mobile
    from qianbao.money import Money
    from qianbao.wallet.payments import service as payments
    from qianbao.wallet.topup_codes import service as topup_codes
    from qianbao.wallet.tour_pass import service as tour_pass

    db = server.db
    assert isinstance(user_id, uuid.UUID)
    db.run(lambda tx: identity.set_verification_level(tx, user_id, "passport_face"))
    friend_phone = parse_mobile("+447400654321", "GB")
    identity.send_code(db, friend_phone, "signup", _client(), "en", CURRENT_VERSION)
    code = server.sms_code(friend_phone.e164)
    friend = identity.sign_in(db, friend_phone, "signup", code, _client()).account
    db.run(lambda tx: identity.set_verification_level(tx, friend.id, "passport_face"))
    batch = topup_codes.create_batch(db, "Demo Shop", "500", 1, paid_by_bank="DEMO-SCREENSHOTS")
    topup_codes.redeem(db, user_id, batch.codes[0], "127.0.0.1")
    page.goto(server.url + "/wallet/topup-code")
    shoot(page, out, "18-topup-code.png")
    page.goto(server.url + "/wallet/transfer")
    page.locator("#to").fill("+44 7400 654321")
    page.locator("#amount").fill("120.00")
    page.locator("#note").fill("Dinner")
    page.locator("form[action='/wallet/transfer/review'] button[type=submit]").click()
    page.wait_for_url(re.compile(r"/wallet/transfer/review$"))
    shoot(page, out, "19-transfer-confirm.png")
    shop = payments.demo_merchant(db)
    order = db.run(
        lambda tx: payments.create_order(tx, shop, "DEMO3", "Lanterns", Money.of("CNY", "66.00"))
    )
    page.goto(server.url + f"/cashier/{order.id}")
    page.locator(f"form[action='/cashier/{order.id}/pay-for-me'] button[type=submit]").click()
    shoot(page, out, "20-pay-for-me-link.png")
    tour_pass.open_pass(db, user_id)
    card = db.run(lambda tx: foreign_cards.cards_of(tx, user_id))[0].id
    tour_pass.top_up(db, user_id, card, Money.of("CNY", "800.00"), "802417", "screenshots")
    page.goto(server.url + "/wallet/tour-pass")
    shoot(page, out, "21-tour-pass.png")


def _client() -> Client:
    from qianbao.identity.service import Client

    return Client(ip="127.0.0.1", user_agent="screenshots")


def paths_for_review(server: LiveServer) -> str:
    """A second person whose face check lands in review (the review band is widened for
    the picture), so a reviewer must look."""
    import io
    import random
    import uuid

    from qianbao.identity import service as identity
    from qianbao.identity import staff
    from qianbao.identity.phone import parse_mobile
    from qianbao.identity.service import Client
    from qianbao.verification import service as verification
    from tests.verification.flow_helpers import reading
    from tests.verification.liveness_clips import performance

    db = server.db
    phone = parse_mobile("+6591234568", "SG")
    client = Client(ip="127.0.0.1", user_agent="screenshots")
    identity.send_code(db, phone, "signup", client, "en", agreement_version="2026-11-01")
    person = identity.sign_in(db, phone, "signup", server.sms_code(phone.e164), client).account
    case = db.run(lambda tx: verification.start_case(tx, person.id))
    db.run(lambda tx: verification.record_page(tx, person.id, case.id, reading()))
    db.run(lambda tx: verification.confirm_document(tx, person.id, case.id))
    asked = db.run(lambda tx: verification.issue_challenge(tx, person.id, case.id))
    challenge = asked.challenge or ()
    frames = performance("astronaut", challenge, random.Random(9))
    uploads = []
    for frame in frames:
        buffer = io.BytesIO()
        frame.save(buffer, "JPEG", quality=90)
        uploads.append(buffer.getvalue())
    server.settings.face_match_threshold, server.settings.face_review_margin = 0.45, 0.44
    verification.submit_face(db, person.id, case.id, uploads)
    staff.create_staff(db, "rita", "Rita Reviewer", "a long reviewer passphrase")
    assert isinstance(case.id, uuid.UUID)
    return str(case.id)


def review_case(page: Page, server: LiveServer, out: Path, case_id: str) -> None:
    page.set_viewport_size({"width": 1100, "height": 900})
    page.goto(server.url + "/admin/login")
    page.locator("#username").fill("rita")
    page.locator("#password").fill("a long reviewer passphrase")
    page.locator("form[action='/admin/login'] button").click()
    page.goto(server.url + f"/admin/reviews/{case_id}")
    shoot(page, out, "14-review-case.png")


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
