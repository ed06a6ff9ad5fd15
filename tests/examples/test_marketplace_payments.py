"""The demo marketplace pays through Qianbao's trade API: against a live Qianbao (its real
gateway and cashier), the shop takes a payment by page pay and by QR code, verifies the
signed return and each notification with Alipay's SDK, refunds part of an order from its
order page, and refuses a spoofed notification."""

from __future__ import annotations

import re
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from marketplace import store
from marketplace.app import create_app
from marketplace.settings import Settings as ShopSettings

from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.openplatform.gateway import demo, notifications, service
from qianbao.settings import Settings
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments
from tests.e2e.liveserver import LiveServer, live_server
from tests.examples.test_marketplace import csrf, sign_up
from tests.helpers import beijing_local_time
from tests.wallet.test_payments import PIN, buyer, fund, verify

SHOP_URL = "http://127.0.0.1:8001"


@pytest.fixture
def clock() -> FrozenClock:
    """The server's clock at the real time: the SDK stamps requests with its own."""
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture(autouse=True)
def beijing_shop(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The shop runs in Beijing time, as ``python -m marketplace`` sets it."""
    with beijing_local_time(monkeypatch):
        yield


@pytest.fixture
def server(settings: Settings, clock: FrozenClock) -> Iterator[LiveServer]:
    with live_server(settings, clock) as running:
        running.db.run(demo.seed_demo_app)
        yield running


@pytest.fixture
def shop(server: LiveServer, tmp_path: Path) -> TestClient:
    settings = ShopSettings(issuer=server.url, base_url=SHOP_URL, database=tmp_path / "shop.db")
    client = TestClient(create_app(settings), follow_redirects=False)
    sign_up(client)
    with store.transaction(settings.database) as db:  # linked and verified already
        store.save_link(
            db,
            store.Link(
                1, "sub-1", None, "ADA LOVELACE", "GBR", "passport_chip", None, 0, 0, None, None
            ),
        )
    return client


def order(shop: TestClient, product_id: str = "tea-gift", quantity: str = "10") -> str:
    answer = shop.post(
        "/orders",
        data={"product_id": product_id, "quantity": quantity, "csrf_token": csrf(shop)},
    )
    assert answer.status_code == 303, answer.text
    location = str(answer.headers["location"])
    assert re.fullmatch(r"/orders/\d+", location)
    return location


def state(page: str) -> tuple[str, str]:
    found = re.search(r'data-testid="order-page" data-state="(\w+)" data-paid="(\w+)"', page)
    assert found is not None
    return found.group(1), found.group(2)


def to_the_shop(shop: TestClient) -> notifications.Send:
    """Qianbao's worker POSTing to the shop's notify_url, into the shop's app."""

    def send(url: str, form: Mapping[str, str]) -> notifications.Delivery:
        path = urllib.parse.urlsplit(url).path
        answer = shop.post(path, data=dict(form))
        return notifications.Delivery(answer.status_code, answer.text)

    return send


def order_id_at_qianbao(location: str) -> uuid.UUID:
    return uuid.UUID(location.rstrip("/").rsplit("/", 1)[1])


def test_page_pay_return_notification_and_a_partial_refund(
    server: LiveServer, shop: TestClient, clock: FrozenClock
) -> None:
    db: Database = server.db
    page = order(shop)
    assert state(shop.get(page).text) == ("new", "no")

    # Page pay: the shop's signed link brings the browser to the gateway, then the cashier.
    started = shop.post(f"{page}/pay", data={"csrf_token": csrf(shop, page)})
    assert started.status_code == 303
    link = str(started.headers["location"])
    assert link.startswith(f"{server.url}/gateway.do?") and "alipay.trade.page.pay" in link
    at_gateway = httpx.get(link, follow_redirects=False)
    assert at_gateway.status_code == 302, at_gateway.text
    cashier = str(at_gateway.headers["location"])
    assert cashier.startswith(f"{server.url}/cashier/")

    person = buyer(db, clock)
    verify(db, person)
    fund(db, person, "2000")
    qianbao_order = order_id_at_qianbao(cashier)
    payments.pay_with_balance(db, person, qianbao_order, PIN)

    # Back to the shop with Alipay's signed return: the shop checks it and asks Qianbao.
    back = db.run(lambda tx: service.return_to_shop(tx, qianbao_order))
    assert back is not None and back.startswith(f"{SHOP_URL}/payments/return?")
    returned = shop.get(back.removeprefix(SHOP_URL))
    assert returned.status_code == 303 and returned.headers["location"] == page
    paid = shop.get(page).text
    assert state(paid) == ("TRADE_SUCCESS", "yes")
    trade_no = re.search(r'data-testid="trade-no">(\d{28})<', paid)
    assert trade_no is not None

    # The notification arrives, its signature verifies with the SDK, the shop says success.
    assert notifications.deliver_due(db, send=to_the_shop(shop)) == 1
    assert 'data-testid="notification">TRADE_SUCCESS' in shop.get(page).text

    # A refund of part of it from the order page, by Qianbao's refunds.
    refunded = shop.post(
        f"{page}/refund", data={"amount": "100.50", "csrf_token": csrf(shop, page)}
    )
    assert refunded.status_code == 303, refunded.text
    after = shop.get(page).text
    assert 'data-testid="refunded">¥100.50<' in after
    assert state(after) == ("TRADE_SUCCESS", "yes")
    [made] = db.run(lambda tx: refunds.order_refunds(tx, qianbao_order))
    assert (made.amount.minor, made.status) == (10050, "succeeded")
    assert made.out_request_no.endswith("R01")

    too_much = shop.post(
        f"{page}/refund", data={"amount": "780.00", "csrf_token": csrf(shop, page)}
    )
    assert too_much.status_code == 400 and 'data-code="refund.too_much"' in too_much.text
    bad = shop.post(f"{page}/refund", data={"amount": "1,0", "csrf_token": csrf(shop, page)})
    assert bad.status_code == 400 and 'data-code="refund.bad_amount"' in bad.text
    # The refund's own notification (TRADE_SUCCESS with refund_fee) is verified too.
    assert notifications.deliver_due(db, send=to_the_shop(shop)) == 1


def test_qr_code_paid_elsewhere_shows_paid_on_the_next_visit(
    server: LiveServer, shop: TestClient, clock: FrozenClock
) -> None:
    db = server.db
    page = order(shop, "flask-500", "50")
    shown = shop.post(f"{page}/qr", data={"csrf_token": csrf(shop, page)})
    assert shown.status_code == 303
    waiting = shop.get(page).text
    assert "<svg" in waiting and state(waiting) == ("WAIT_BUYER_PAY", "no")
    qr = re.search(r'data-testid="qr-link">([^<]+)<', waiting)
    assert qr is not None and qr.group(1).startswith(f"{server.url}/cashier/")

    person = buyer(db, clock)
    verify(db, person)
    fund(db, person, "1000")
    payments.pay_with_balance(db, person, order_id_at_qianbao(qr.group(1)), PIN)
    assert state(shop.get(page).text) == ("TRADE_SUCCESS", "yes")  # queried on the visit


def test_a_spoofed_or_altered_notification_is_refused(
    server: LiveServer, shop: TestClient, clock: FrozenClock
) -> None:
    db = server.db
    page = order(shop)
    shop.post(f"{page}/qr", data={"csrf_token": csrf(shop, page)})
    qr = re.search(r'data-testid="qr-link">([^<]+)<', shop.get(page).text)
    assert qr is not None
    person = buyer(db, clock)
    verify(db, person)
    fund(db, person, "2000")
    payments.pay_with_balance(db, person, order_id_at_qianbao(qr.group(1)), PIN)

    captured: list[dict[str, str]] = []

    def capture(url: str, form: Mapping[str, str]) -> notifications.Delivery:
        captured.append(dict(form))
        return notifications.Delivery(200, "not yet")

    notifications.deliver_due(db, send=capture)
    [form] = captured
    tampered = {**form, "total_amount": "0.01"}
    assert shop.post("/payments/notify", data=tampered).text == "failure"
    forged = {**form, "sign": form["sign"][:-8] + "AAAAAAA="}
    assert shop.post("/payments/notify", data=forged).text == "failure"
    other_app = {**form, "app_id": "2026999999999999"}
    assert shop.post("/payments/notify", data=other_app).text == "failure"
    assert 'data-testid="notification"' not in shop.get(page).text
    assert shop.post("/payments/notify", data=form).text == "success"

    # Refunded in full, the trade is closed; a late retry of the first notification is
    # recorded but does not move the order back.
    whole = shop.post(f"{page}/refund", data={"amount": "880.00", "csrf_token": csrf(shop, page)})
    assert whole.status_code == 303
    assert state(shop.get(page).text) == ("TRADE_CLOSED", "yes")
    assert shop.post("/payments/notify", data=form).text == "success"
    after = shop.get(page).text
    assert (
        state(after) == ("TRADE_CLOSED", "yes") and after.count('data-testid="notification"') == 2
    )


def test_a_forged_return_changes_nothing(server: LiveServer, shop: TestClient) -> None:
    page = order(shop)
    shop.post(f"{page}/qr", data={"csrf_token": csrf(shop, page)})
    forged = shop.get("/payments/return?out_trade_no=x&app_id=2026000000000001&sign=AAAA")
    assert forged.status_code == 400 and 'data-code="payment.bad_signature"' in forged.text
