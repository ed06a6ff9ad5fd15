"""The merchant portal: signing in with its own cookie, the orders of the merchant's apps
(never another merchant's), refunds from the portal moving money once, the notification
log with its resend button, keys, and daily bills."""

from __future__ import annotations

import csv
import io
import re

import pytest
from fastapi.testclient import TestClient

from qianbao import audit
from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.openplatform import signing
from qianbao.openplatform.gateway import notifications
from qianbao.openplatform.gateway.protocol import BEIJING
from qianbao.openplatform.merchants import service as merchants
from qianbao.wallet.ledger import audit as ledger_audit
from qianbao.wallet.payments import service as payments
from tests.openplatform.gateway.shop import new_shop_keys, notify_endpoint
from tests.openplatform.portal.helpers import (
    Shop,
    csrf,
    new_shop,
    new_trade,
    pay,
    paying_person,
    sign_in,
)


@pytest.fixture
def db(client: TestClient) -> Database:
    database: Database = client.app.state.db  # type: ignore[attr-defined]
    return database


@pytest.fixture
def tea(db: Database) -> Shop:
    return new_shop(db, "Teahouse Online", "owner@teahouse.example")


def test_signing_in_needs_the_right_password_and_opens_only_the_portal(
    client: TestClient, tea: Shop
) -> None:
    assert client.get("/merchant/orders", follow_redirects=False).headers["location"] == (
        "/merchant/login"
    )
    token = csrf(client)
    wrong = client.post(
        "/merchant/login", data={"csrf": token, "login": tea.login, "password": "not it"}
    )
    assert wrong.status_code == 401 and 'data-code="merchant_user.login_failed"' in wrong.text
    no_csrf = client.post("/merchant/login", data={"login": tea.login, "password": tea.password})
    assert no_csrf.status_code == 403
    answer = client.post(
        "/merchant/login",
        data={"csrf": token, "login": tea.login.upper(), "password": tea.password},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "qb_merchant=" in cookie and "Path=/merchant" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = client.get("/merchant/orders")
    assert page.status_code == 200 and "Teahouse Online" in page.text
    # The merchant cookie is nobody's wallet session.
    assert client.get("/wallet", follow_redirects=False).status_code == 303
    client.post("/merchant/logout", data={"csrf": token})
    assert client.get("/merchant/orders", follow_redirects=False).status_code == 303


def test_wrong_passwords_slow_the_login_down(client: TestClient, tea: Shop) -> None:
    token = csrf(client)
    codes = []
    for _ in range(7):
        answer = client.post(
            "/merchant/login", data={"csrf": token, "login": tea.login, "password": "guess"}
        )
        codes.append(answer.status_code)
    assert codes[:5] == [401] * 5 and codes[-1] == 429


def test_orders_list_filters_and_detail(
    client: TestClient, db: Database, clock: FrozenClock, tea: Shop
) -> None:
    paid = new_trade(db, tea, "ORDER_PAID", "20")
    waiting = new_trade(db, tea, "ORDER_WAITING", "30")
    pay(db, paying_person(db, clock), paid)
    sign_in(client, tea)
    everything = client.get("/merchant/orders").text
    assert paid.trade_no in everything and waiting.trade_no in everything
    only_paid = client.get("/merchant/orders", params={"status": "TRADE_SUCCESS"}).text
    assert paid.trade_no in only_paid and waiting.trade_no not in only_paid
    only_waiting = client.get("/merchant/orders", params={"status": "WAIT_BUYER_PAY"}).text
    assert waiting.trade_no in only_waiting and paid.trade_no not in only_waiting
    tomorrow = (clock.now().date()).replace(year=clock.now().year + 1).isoformat()
    assert paid.trade_no not in client.get("/merchant/orders", params={"since": tomorrow}).text
    bad = client.get("/merchant/orders", params={"since": "yesterday"})
    assert bad.status_code == 422 and 'data-code="merchant_portal.date"' in bad.text
    unknown = client.get("/merchant/orders", params={"status": "PAID"})
    assert unknown.status_code == 422 and 'data-code="merchant_portal.status"' in unknown.text
    detail = client.get(f"/merchant/orders/{paid.trade_no}")
    assert detail.status_code == 200
    assert "ORDER_PAID" in detail.text and "TRADE_SUCCESS" in detail.text
    assert 'data-testid="refund-form"' in detail.text


def test_another_merchant_s_order_is_the_same_404_as_an_unknown_one(
    client: TestClient, db: Database, clock: FrozenClock, tea: Shop
) -> None:
    books = new_shop(db, "Bookshop", "owner@books.example")
    theirs = new_trade(db, books, "BOOK_1", "40")
    pay(db, paying_person(db, clock), theirs)
    sign_in(client, tea)
    assert theirs.trade_no not in client.get("/merchant/orders").text
    headers = {"Accept": "application/json"}
    answers = [
        client.get(f"/merchant/orders/{number}", headers=headers)
        for number in (theirs.trade_no, "2026120722001400000000000000")
    ]
    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].json()["code"] == answers[1].json()["code"] == "trade.not_found"
    token = csrf(client, "/merchant/orders")
    refund = client.post(
        f"/merchant/orders/{theirs.trade_no}/refunds",
        data={"csrf": token, "amount": "1", "out_request_no": "X1"},
        headers=headers,
    )
    assert refund.status_code == 404
    assert db.run(lambda tx: payments.get_order(tx, theirs.order_id)).refunded.minor == 0
    key = client.post(
        f"/merchant/keys/{books.app_id}",
        data={"csrf": token, "public_key": new_shop_keys().public_pem},
        headers=headers,
    )
    assert key.status_code == 404
    assert db.run(lambda tx: merchants.apps_of(tx, books.merchant_id))[0].public_key is None


def test_a_refund_from_the_portal_moves_money_once(
    client: TestClient, db: Database, clock: FrozenClock, tea: Shop
) -> None:
    trade = new_trade(db, tea, "ORDER_1", "20")
    person = paying_person(db, clock, "100")
    pay(db, person, trade)
    sign_in(client, tea)
    token = csrf(client, f"/merchant/orders/{trade.trade_no}")
    form = {"csrf": token, "amount": "5.50", "reason": "one cup broken", "out_request_no": "R1"}
    for _ in range(2):  # the same request number twice: one refund
        answer = client.post(f"/merchant/orders/{trade.trade_no}/refunds", data=form)
        assert answer.status_code == 200
    assert db.run(lambda tx: payments.get_order(tx, trade.order_id)).refunded.minor == 550
    balance, _held = db.run(lambda tx: payments.money_of(tx, person))
    assert balance.minor == (100 - 20) * 100 + 550
    discordant = client.post(
        f"/merchant/orders/{trade.trade_no}/refunds", data={**form, "amount": "6"}
    )
    assert discordant.status_code == 409
    assert 'data-code="idempotency.mismatch"' in discordant.text
    too_much = client.post(
        f"/merchant/orders/{trade.trade_no}/refunds",
        data={**form, "amount": "15", "out_request_no": "R2"},
    )
    assert too_much.status_code == 422 and 'data-code="refund.too_much"' in too_much.text
    assert db.run(lambda tx: payments.get_order(tx, trade.order_id)).refunded.minor == 550
    assert db.run(ledger_audit.audit).sound
    events = db.run(lambda tx: audit.events(tx, subject=f"order:{trade.order_id}"))
    assert any(e.action == "trade.refund_asked" and e.note == "one cup broken" for e in events)
    listed = client.get("/merchant/refunds").text
    assert "R1" in listed and "5.50" in listed


def test_the_notification_log_and_the_resend_button(
    client: TestClient, db: Database, clock: FrozenClock, tea: Shop
) -> None:
    with notify_endpoint(["fail"]) as endpoint:
        trade = new_trade(db, tea, "ORDER_N", "20", notify_url=endpoint.url)
        pay(db, paying_person(db, clock), trade)
        assert notifications.deliver_due(db) == 0
        sign_in(client, tea)
        page = client.get(f"/merchant/orders/{trade.trade_no}").text
        assert 'data-testid="attempts"' in page and "<code>fail</code>" in page
        [log] = db.run(lambda tx: notifications.notifications_of(tx, trade.order_id))
        assert (log.status, log.attempts[0].http_status) == ("pending", 200)
        clock.advance(minutes=1)  # not due again for 4 minutes; the button sends it now
        endpoint.answers = ["success"]
        token = csrf(client, f"/merchant/orders/{trade.trade_no}")
        answer = client.post(
            f"/merchant/orders/{trade.trade_no}/notifications/{log.id}/resend",
            data={"csrf": token},
        )
        assert answer.status_code == 200
        assert notifications.deliver_due(db) == 1
    [log] = db.run(lambda tx: notifications.notifications_of(tx, trade.order_id))
    assert log.status == "delivered" and [a.answer for a in log.attempts] == ["fail", "success"]
    assert len({form["notify_id"] for form in endpoint.received}) == 1
    assert "<code>success</code>" in client.get(f"/merchant/orders/{trade.trade_no}").text


def test_keys_upload_with_overlap_and_the_platform_key(
    client: TestClient, db: Database, tea: Shop
) -> None:
    sign_in(client, tea)
    token = csrf(client, "/merchant/keys")
    first, second = new_shop_keys(), new_shop_keys()
    url = f"/merchant/keys/{tea.app_id}"
    assert client.post(url, data={"csrf": token, "public_key": first.public_pem}).status_code == 200
    page = client.get("/merchant/keys").text
    assert signing.fingerprint(first.public_pem) in page
    client.post(url, data={"csrf": token, "public_key": second.public_pem})
    [app] = db.run(lambda tx: merchants.apps_of(tx, tea.merchant_id))
    assert app.fingerprint == signing.fingerprint(second.public_pem)
    assert app.previous_key_until is not None and app.uploaded_at is not None
    keys = db.run(lambda tx: merchants.app_verification_keys(tx, tea.app_id))
    assert len(keys) == 2  # the old key still verifies during the overlap
    weak = signing.public_pem(new_shop_keys(1024).private.public_key())
    refused = client.post(url, data={"csrf": token, "public_key": weak})
    assert refused.status_code == 422 and 'data-code="merchant_app.key"' in refused.text
    download = client.get("/merchant/keys/platform.pem")
    current = next(k for k in db.run(merchants.platform_keys) if k.state == "current")
    assert download.status_code == 200 and download.text == current.public_key
    assert "attachment" in download.headers["content-disposition"]


def test_the_daily_bill_is_the_gateway_s_csv(
    client: TestClient, db: Database, clock: FrozenClock, tea: Shop
) -> None:
    trade = new_trade(db, tea, "ORDER_B", "20")
    pay(db, paying_person(db, clock), trade)
    paid_day = db.run(lambda tx: payments.get_order(tx, trade.order_id)).paid_at
    assert paid_day is not None
    sign_in(client, tea)
    from_beijing = paid_day.astimezone(BEIJING).date()
    not_yet = client.get("/merchant/bills/download", params={"day": from_beijing.isoformat()})
    assert not_yet.status_code == 409  # the day is not over
    clock.advance(days=1)
    sign_in(client, tea)  # the session idled out over the day
    assert client.get("/merchant/bills").status_code == 200
    bill = client.get("/merchant/bills/download", params={"day": from_beijing.isoformat()})
    assert bill.status_code == 200 and bill.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(bill.text)))
    assert rows[0][0] == "支付宝交易号"
    assert [row[0] for row in rows[1:]] == [trade.trade_no]
    assert re.search(r"_trade\.csv", bill.headers["content-disposition"])


def test_the_portal_speaks_chinese(client: TestClient, db: Database, tea: Shop) -> None:
    chinese = {"Accept-Language": "zh-CN,zh;q=0.9"}
    assert "商家后台" in client.get("/merchant/login", headers=chinese).text
    sign_in(client, tea)
    page = client.get("/merchant/keys", headers=chinese).text
    assert "钱包公钥" in page and "每日账单" in page


def test_an_idle_portal_session_ends(client: TestClient, clock: FrozenClock, tea: Shop) -> None:
    sign_in(client, tea)
    clock.advance(minutes=29)
    assert client.get("/merchant/orders").status_code == 200  # used: the idle time restarts
    clock.advance(minutes=29)
    assert client.get("/merchant/orders").status_code == 200
    clock.advance(minutes=31)
    ended = client.get("/merchant/orders", headers={"Accept": "application/json"})
    assert (ended.status_code, ended.json()["code"]) == (401, "merchant_user.not_signed_in")
