"""Money codes and Scan: Code 128 as the standard encodes it, the receive code (a random
token, reset by its owner) paid through the transfer use case once, the payment code
page and the person's own limit used by a shop through the gateway, the scan resolver,
the JSON API and the pages in English and Chinese."""

from __future__ import annotations

import hashlib
import re
import urllib.parse
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.errors import QianbaoError
from qianbao.identity.phone import parse_mobile
from qianbao.wallet.payment_codes import service as payment_codes
from qianbao.wallet.scan import service as scan
from qianbao.wallet.transfers import receive_codes
from qianbao.wallet.transfers import service as transfers
from qianbao.web.drawing import QUIET_MODULES, code128_modules, code128_svg
from tests.helpers import last_code
from tests.openplatform.gateway.test_rules import App
from tests.wallet.test_payments import PIN, cny, fund
from tests.wallet.test_transfers import (
    ALICE,
    BOB,
    _csrf,
    _web_sign_in,
    balance,
    person,
    plain,
    refused,
    sign_in,
)

# Code 128's symbol patterns from the standard (ISO/IEC 15417, table 1): widths of bar,
# space, bar, space, bar, space in modules.
STANDARD_WIDTHS = {
    0: "212222",
    1: "222122",
    2: "222221",
    6: "122213",
    10: "221312",
    105: "211232",  # Start C
}
STOP = "2331112"


def modules(widths: str) -> str:
    """Widths to modules: bars dark ("1"), spaces light ("0"), alternating."""
    return "".join(
        ("1" if index % 2 == 0 else "0") * int(width) for index, width in enumerate(widths)
    )


def symbol(values: list[int]) -> str:
    """Start C, the values, the check symbol ((105 + sum of position x value) mod 103),
    and the stop pattern, as the standard builds a symbol."""
    check = (105 + sum(position * value for position, value in enumerate(values, 1))) % 103
    patterns = [STANDARD_WIDTHS[105], *(STANDARD_WIDTHS[v] for v in values)]
    return "".join(modules(p) for p in [*patterns, STANDARD_WIDTHS[check], STOP])


@pytest.mark.parametrize(("text", "values"), [("000102", [0, 1, 2]), ("0201", [2, 1])])
def test_code_128_encodes_digits_as_the_standard_does(text: str, values: list[int]) -> None:
    assert code128_modules(text) == symbol(values)


def test_a_payment_code_is_one_code_set_c_symbol_with_its_quiet_zones() -> None:
    code = "281234567890123456"
    drawn = code128_modules(code)
    # Start C, nine pairs of digits, the check symbol (11 modules each), the stop (13).
    assert len(drawn) == 11 * 11 + 13
    assert drawn.startswith(modules(STANDARD_WIDTHS[105])) and drawn.endswith(modules(STOP))
    svg = str(code128_svg(code))
    assert f'viewBox="0 0 {len(drawn) + 2 * QUIET_MODULES} 60"' in svg
    assert svg.count("<rect x=") == len(re.findall("1+", drawn))
    assert f'<rect x="{QUIET_MODULES}" y="0" width="2"' in svg  # Start C opens with 2 modules
    assert "style=" not in svg  # the pages' CSP refuses inline styles


# --- receive codes --------------------------------------------------------------------


@pytest.fixture
def pair(db: Database, clock: FrozenClock) -> tuple[uuid.UUID, uuid.UUID]:
    alice, bob = person(db, clock, ALICE), person(db, clock, BOB)
    fund(db, alice, "300")
    return alice, bob


def test_a_receive_code_moves_money_once_and_a_reset_code_names_nobody(
    db: Database, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, bob = pair
    token = db.run(lambda tx: receive_codes.token_of(tx, bob))
    assert db.run(lambda tx: receive_codes.token_of(tx, bob)) == token  # kept, not renewed
    assert len(token) >= 32 and "7400" not in token
    to = receive_codes.RECIPIENT_PREFIX + token
    quote = db.run(lambda tx: transfers.quote(tx, alice, to, "25", "Lunch"))
    assert quote.recipient.id == bob and quote.recipient.phone == "+44 ******0123"
    first = transfers.send(db, alice, to, "25", "Lunch", PIN, "lunch-1")
    again = transfers.send(db, alice, to, "25", "Lunch", PIN, "lunch-1")
    assert again.replayed and again.id == first.id
    assert balance(db, bob) == cny("25") and balance(db, alice) == cny("275")
    own = refused(lambda: transfers.send(db, bob, to, "1", "", PIN, "self"))
    assert own.code == "transfer.to_self"
    fresh = db.run(lambda tx: receive_codes.reset(tx, bob))
    assert fresh != token
    old = refused(lambda: transfers.send(db, alice, to, "5", "", PIN, "lunch-2"))
    assert old.code == "receive_code.unknown" and old.status == 404
    assert balance(db, bob) == cny("25")


def test_the_receive_code_api_hides_the_number_and_checks_the_amount(
    client: TestClient, db: Database, clock: FrozenClock, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    bob_auth = sign_in(client, db, clock, BOB)
    made = client.get(
        "/api/v1/wallet/transfers/receive-code",
        headers=bob_auth,
        params={"amount": "12.5", "note": "Tea"},
    )
    assert made.status_code == 200, made.text
    body = made.json()
    assert re.fullmatch(r"/wallet/receive/[\w-]{32}\?amount=12.50&note=Tea", body["path"])
    assert body["url"] == "http://127.0.0.1:8000" + body["path"]
    assert "7400900123" not in body["url"]
    bad = client.get(
        "/api/v1/wallet/transfers/receive-code",
        headers={**bob_auth, "Accept-Language": "zh-CN"},
        params={"amount": "-3"},
    )
    assert bad.status_code == 422 and bad.json()["code"] == "transfer.amount_negative"
    reset = client.post("/api/v1/wallet/transfers/receive-code/reset", headers=bob_auth)
    assert reset.status_code == 200 and reset.json()["path"] != body["path"].split("?")[0]


def test_a_second_person_pays_the_receive_code_on_the_pages(
    client: TestClient, db: Database, clock: FrozenClock, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, bob = pair
    _web_sign_in(client, db, clock, BOB)
    own = client.get("/wallet/receive-code", params={"amount": "18", "note": "Dumplings"})
    assert own.status_code == 200 and 'class="qr"' in own.text
    link = re.search(r'id="receive-link" value="([^"]+)"', own.text)
    assert link and "7400" not in link.group(1)
    url = urllib.parse.urlsplit(link.group(1).replace("&amp;", "&"))
    assert url.query == "amount=18.00&note=Dumplings"
    assert "Receive code for CNY 18.00" in plain(own.text)
    bad = client.get("/wallet/receive-code", params={"amount": "abc"})
    assert bad.status_code == 422 and 'data-code="transfer.amount_format"' in bad.text
    client.cookies.clear()

    _web_sign_in(client, db, clock, ALICE)
    opened = client.get(f"{url.path}?{url.query}")
    assert opened.status_code == 200
    assert "Send money to +44 ******0123 (verified)" in opened.text
    assert 'value="18.00"' in opened.text and 'value="Dumplings"' in opened.text
    token = _csrf(opened.text)
    to = receive_codes.RECIPIENT_PREFIX + url.path.rsplit("/", 1)[1]
    typed = {"csrf": token, "to": to, "amount": "18.00", "note": "Dumplings"}
    too_small = client.post("/wallet/transfer/review", data={**typed, "amount": "0"})
    assert too_small.status_code == 422 and 'data-testid="receive-code-form"' in too_small.text
    assert "Send money to +44 ******0123 (verified)" in too_small.text
    review = client.post("/wallet/transfer/review", data=typed)
    assert review.status_code == 200 and "+44 ******0123 (verified)" in review.text
    key = re.search(r'name="key" value="([^"]+)"', review.text)
    assert key
    confirmed = {**typed, "key": key.group(1), "payment_password": PIN}
    done = client.post("/wallet/transfer", data=confirmed)
    assert done.status_code == 200 and "Money sent." in done.text
    client.post("/wallet/transfer", data=confirmed)  # a double submit moves nothing more
    assert balance(db, bob) == cny("18") and balance(db, alice) == cny("282")

    client.post("/language", data={"csrf": token, "language": "zh_Hans", "next": "/"})
    chinese = client.get(url.path)
    assert "<h1>向 +44 ******0123（已认证）转账</h1>" in chinese.text
    unknown = client.get("/wallet/receive/no-such-code")
    assert unknown.status_code == 404 and "收款码已失效" in unknown.text


def test_a_receive_code_opened_signed_out_comes_back_after_login(
    client: TestClient, db: Database, clock: FrozenClock, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    token = db.run(lambda tx: receive_codes.token_of(tx, pair[1]))
    first = client.get(f"/wallet/receive/{token}?amount=3")
    assert first.url.path == "/"  # sent to log in, the code remembered
    clock.advance(seconds=61)  # past the last code's resend cooldown
    csrf = _csrf(first.text)
    sent = client.post("/start", data={"csrf": csrf, "country": "GB", "number": ALICE})
    assert sent.url.path == "/code"
    code = last_code(db, parse_mobile(ALICE, "GB"))
    done = client.post(
        "/code", data={"csrf": csrf, "phone": "+447911123456", "purpose": "login", "code": code}
    )
    assert done.url.path == f"/wallet/receive/{token}" and "Send money to" in done.text


# --- payment codes --------------------------------------------------------------------


def test_the_person_s_own_limit_caps_what_a_shop_takes_with_the_code(
    db: Database, clock: FrozenClock, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = pair
    shop = App(db)
    assert db.run(lambda tx: payment_codes.password_free_limit(tx, alice)) == 1000
    assert db.run(lambda tx: payment_codes.set_password_free_limit(tx, alice, " 50 ")) == 50
    for wrong in ("1001", "-1", "12.5", "abc", "５"):
        with pytest.raises(QianbaoError) as caught:
            db.run(lambda tx, wrong=wrong: payment_codes.set_password_free_limit(tx, alice, wrong))
        assert caught.value.code == "payment_code.limit_invalid"

    def charge(number: str, amount: str, code: str) -> dict[str, str]:
        biz = {"out_trade_no": number, "total_amount": amount, "subject": "tea"}
        return shop.ask("alipay.trade.pay", {**biz, "scene": "bar_code", "auth_code": code})

    code = db.run(lambda tx: payment_codes.issue(tx, alice)).code
    over = charge("P1", "50.01", code)
    assert (over["code"], over["sub_code"]) == ("40004", "ACQ.PAYMENT_FAIL")
    paid = charge("P2", "50.00", code)  # the refusal did not use the code up
    assert paid["code"] == "10000" and paid["total_amount"] == "50.00"
    assert balance(db, alice) == cny("250")
    db.settings.payment_code_password_free_limit = 20  # lowered since she chose 50
    assert db.run(lambda tx: payment_codes.password_free_limit(tx, alice)) == 20
    db.run(lambda tx: payment_codes.set_password_free_limit(tx, alice, "0"))
    off = charge("P3", "0.01", db.run(lambda tx: payment_codes.issue(tx, alice)).code)
    assert off["sub_code"] == "ACQ.PAYMENT_FAIL"


def test_the_payment_code_page_shows_a_code_a_shop_can_charge_and_sets_the_limit(
    client: TestClient, db: Database, clock: FrozenClock, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = pair
    shop = App(db)
    _web_sign_in(client, db, clock, ALICE)
    shown = client.get("/wallet/payment-code")
    assert shown.status_code == 200
    code = re.search(r'class="barcode"[^>]*data-code="(28\d{16})"', shown.text)
    assert code and 'class="qr"' in shown.text
    renew = re.search(r'data-renew-after="(\d+)"', shown.text)
    assert renew and 0 < int(renew.group(1)) < db.settings.payment_code_seconds
    biz = {"out_trade_no": "W1", "total_amount": "12.00", "subject": "tea", "scene": "bar_code"}
    paid = shop.ask("alipay.trade.pay", {**biz, "auth_code": code.group(1)})
    assert paid["code"] == "10000" and balance(db, alice) == cny("288")
    token = _csrf(shown.text)
    saved = client.post("/wallet/payment-code/limit", data={"csrf": token, "limit": "200"})
    assert "Your limit for the payment code is saved." in saved.text and 'value="200"' in saved.text
    wrong = client.post("/wallet/payment-code/limit", data={"csrf": token, "limit": "5000"})
    assert wrong.status_code == 422 and "from 0 to 1000" in wrong.text
    client.post("/language", data={"csrf": token, "language": "zh_Hans", "next": "/"})
    chinese = client.post("/wallet/payment-code/limit", data={"csrf": token, "limit": "x"})
    assert "<h1>付款码</h1>" in chinese.text and "0 到 1000" in chinese.text


def test_the_payment_code_limit_api(
    client: TestClient, db: Database, clock: FrozenClock, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    auth = sign_in(client, db, clock, ALICE)
    assert client.get("/api/v1/wallet/payment-codes/limit", headers=auth).json() == {
        "limit": 1000,
        "cap": 1000,
    }
    put = client.put("/api/v1/wallet/payment-codes/limit", headers=auth, json={"limit": "30"})
    assert put.status_code == 200 and put.json()["limit"] == 30
    bad = client.put("/api/v1/wallet/payment-codes/limit", headers=auth, json={"limit": "1e3"})
    assert bad.status_code == 422 and bad.json()["code"] == "payment_code.limit_invalid"


# --- scan -----------------------------------------------------------------------------


def test_the_scan_resolver_follows_only_qianbao_s_own_codes(
    db: Database, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    _, bob = pair
    shop = App(db)
    made = shop.ask(
        "alipay.trade.precreate", {"out_trade_no": "Q1", "total_amount": "9.90", "subject": "tea"}
    )
    found = db.run(lambda tx: scan.resolve(tx, f"  {made['qr_code']} "))
    assert found.kind == "cashier" and found.path == "/cashier/" + made["qr_code"].rsplit("/")[-1]
    token = db.run(lambda tx: receive_codes.token_of(tx, bob))
    code_url = f"http://127.0.0.1:8000/wallet/receive/{token}?amount=5.00&note=Tea%20time"
    found = db.run(lambda tx: scan.resolve(tx, code_url))
    assert found.kind == "receive_code"
    assert found.path == f"/wallet/receive/{token}?amount=5.00&note=Tea%20time"
    assert db.run(lambda tx: scan.resolve(tx, "/pay-for-me/abc_DEF-1")).kind == "pay_for_me"

    def refusal(text: str) -> str:
        with pytest.raises(QianbaoError) as caught:
            db.run(lambda tx: scan.resolve(tx, text))
        assert caught.value.status in (404, 422)
        return caught.value.code

    assert refusal(made["qr_code"].replace("127.0.0.1:8000", "evil.example")) == "scan.other_site"
    assert refusal("https://127.0.0.1:8000/wallet/scan") == "scan.other_site"  # another scheme
    assert refusal("281234567890123456") == "scan.payment_code"
    assert refusal("http://127.0.0.1:8000/wallet/receive/unknown") == "receive_code.unknown"
    for other in ("hello", "javascript:alert(1)", "//evil.example/cashier/x", "/wallet", ""):
        assert refusal(other) in ("scan.unknown", "scan.empty"), other
    db.run(lambda tx: receive_codes.reset(tx, bob))
    assert refusal(code_url) == "receive_code.unknown"


def test_the_scan_page_opens_what_was_pasted_or_says_what_it_is(
    client: TestClient, db: Database, clock: FrozenClock, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    shop = App(db)
    made = shop.ask(
        "alipay.trade.precreate", {"out_trade_no": "Q2", "total_amount": "3.00", "subject": "tea"}
    )
    _web_sign_in(client, db, clock, ALICE)
    page = client.get("/wallet/scan")
    assert page.status_code == 200
    assert '<script src="/static/vendor/jsqr/jsQR.js" defer></script>' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["permissions-policy"] == "camera=(self)"
    assert client.get("/static/vendor/jsqr/jsQR.js").status_code == 200
    token = _csrf(page.text)
    opened = client.post("/wallet/scan", data={"csrf": token, "text": made["qr_code"]})
    assert opened.url.path == "/cashier/" + made["qr_code"].rsplit("/")[-1]
    assert "CNY 3.00" in plain(opened.text)
    other = client.post("/wallet/scan", data={"csrf": token, "text": "https://evil.example/x"})
    assert other.status_code == 422 and "another website (evil.example)" in other.text
    auth = sign_in(client, db, clock, ALICE)
    api = client.post("/api/v1/wallet/scan", headers=auth, json={"text": made["qr_code"]})
    assert api.json() == {"kind": "cashier", "path": opened.url.path}
    client.post("/language", data={"csrf": token, "language": "zh_Hans", "next": "/"})
    chinese = client.post("/wallet/scan", data={"csrf": token, "text": "hello"})
    assert chinese.status_code == 422 and "<h1>扫一扫</h1>" in chinese.text
    assert "钱包不认识这个码" in chinese.text


def test_the_vendored_qr_decoder_is_the_pinned_release() -> None:
    folder = Path(__file__).parents[2] / "qianbao" / "web" / "static" / "vendor" / "jsqr"
    digest = hashlib.sha256((folder / "jsQR.js").read_bytes()).hexdigest()
    assert f"`{digest}`" in (folder / "README.md").read_text()
    assert "Apache License" in (folder / "LICENSE").read_text()


@pytest.mark.parametrize("language", ["en", "zh_Hans"])
def test_the_money_code_pages_render_in_both_languages(
    client: TestClient, db: Database, clock: FrozenClock, language: str
) -> None:
    person(db, clock, ALICE)
    _web_sign_in(client, db, clock, ALICE)
    client.cookies.set("qb_lang", language)
    expected = {
        "/wallet/receive-code": ("Receive code", "收款码"),
        "/wallet/payment-code": ("Payment code", "付款码"),
        "/wallet/scan": ("Scan", "扫一扫"),
    }
    for path, (english, chinese) in expected.items():
        shown = client.get(path)
        assert shown.status_code == 200, path
        heading = english if language == "en" else chinese
        assert f"<h1>{heading}</h1>" in shown.text, path
        assert shown.headers["permissions-policy"] == "camera=(self)"
