"""The merchant API: a merchant token (not a person's, not staff's) lists and reads the
merchant's trades and refunds one, once per request number."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.openplatform import signing
from qianbao.openplatform.gateway import notifications
from qianbao.openplatform.gateway.protocol import BEIJING
from qianbao.wallet.ledger import audit as ledger_audit
from qianbao.wallet.payments import service as payments
from tests.openplatform.gateway.shop import new_shop_keys, notify_endpoint
from tests.openplatform.portal.helpers import Shop, new_shop, new_trade, pay, paying_person


@pytest.fixture
def db(client: TestClient) -> Database:
    database: Database = client.app.state.db  # type: ignore[attr-defined]
    return database


def token_of(client: TestClient, shop: Shop) -> dict[str, str]:
    answer = client.post(
        "/api/v1/merchant/sessions", json={"login": shop.login, "password": shop.password}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["merchant"] == shop.name
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def test_orders_and_a_refund_through_the_api(
    client: TestClient, db: Database, clock: FrozenClock
) -> None:
    tea = new_shop(db, "Teahouse Online", "owner@teahouse.example")
    books = new_shop(db, "Bookshop", "owner@books.example")
    mine, theirs = new_trade(db, tea, "T_1", "20"), new_trade(db, books, "B_1", "20")
    person = paying_person(db, clock)
    pay(db, person, mine)
    pay(db, person, theirs)
    auth = token_of(client, tea)

    listed = client.get("/api/v1/merchant/orders", headers=auth).json()
    assert [t["trade_no"] for t in listed] == [mine.trade_no]
    assert listed[0]["trade_status"] == "TRADE_SUCCESS"
    assert client.get(f"/api/v1/merchant/orders/{theirs.trade_no}", headers=auth).status_code == (
        404
    )
    body = {"out_request_no": "API_R1", "amount": "7.00", "reason": "late"}
    url = f"/api/v1/merchant/orders/{mine.trade_no}/refunds"
    first = client.post(url, json=body, headers=auth)
    again = client.post(url, json=body, headers=auth)
    assert first.status_code == again.status_code == 201
    assert first.json()["refunded"] == {"currency": "CNY", "value": "7.00"}
    assert again.json()["refunded"] == {"currency": "CNY", "value": "7.00"}
    other = client.post(url, json={**body, "amount": "8.00"}, headers=auth)
    assert (other.status_code, other.json()["code"]) == (409, "idempotency.mismatch")
    detail = client.get(f"/api/v1/merchant/orders/{mine.trade_no}", headers=auth).json()
    assert [r["out_request_no"] for r in detail["refunds"]] == ["API_R1"]
    assert db.run(lambda tx: payments.get_order(tx, theirs.order_id)).refunded.minor == 0
    assert db.run(ledger_audit.audit).sound

    assert client.delete("/api/v1/merchant/session", headers=auth).status_code == 204
    ended = client.get("/api/v1/merchant/orders", headers=auth)
    assert (ended.status_code, ended.json()["code"]) == (401, "merchant_user.not_signed_in")


def test_a_wrong_password_gets_no_token(client: TestClient, db: Database) -> None:
    tea = new_shop(db, "Teahouse Online", "owner@teahouse.example")
    answer = client.post("/api/v1/merchant/sessions", json={"login": tea.login, "password": "nope"})
    assert (answer.status_code, answer.json()["code"]) == (401, "merchant_user.login_failed")


def test_notifications_keys_and_bills_through_the_api(
    client: TestClient, db: Database, clock: FrozenClock
) -> None:
    tea = new_shop(db, "Teahouse Online", "owner@teahouse.example")
    books = new_shop(db, "Bookshop", "owner@books.example")
    with notify_endpoint(["fail", "success"]) as endpoint:
        trade = new_trade(db, tea, "T_2", "20", notify_url=endpoint.url)
        pay(db, paying_person(db, clock), trade)
        notifications.deliver_due(db)
        auth = token_of(client, tea)
        url = f"/api/v1/merchant/orders/{trade.trade_no}/notifications"
        [log] = client.get(url, headers=auth).json()
        assert log["trade_status"] == "TRADE_SUCCESS" and log["status"] == "pending"
        assert [(a["http_status"], a["answer"]) for a in log["attempts"]] == [(200, "fail")]
        resend = client.post(f"{url}/{log['id']}/resend", headers=auth)
        assert resend.status_code == 204
        assert notifications.deliver_due(db) == 1
    assert client.get(url, headers=auth).json()[0]["status"] == "delivered"
    unknown = client.post(f"{url}/{uuid.uuid4()}/resend", headers=auth)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "notification.not_found")

    key = new_shop_keys().public_pem
    put = client.put(
        f"/api/v1/merchant/apps/{tea.app_id}/key", json={"public_key": key}, headers=auth
    )
    assert put.status_code == 200 and put.json()["fingerprint"] == signing.fingerprint(key)
    assert [a["app_id"] for a in client.get("/api/v1/merchant/apps", headers=auth).json()] == [
        tea.app_id
    ]
    theirs = client.put(
        f"/api/v1/merchant/apps/{books.app_id}/key", json={"public_key": key}, headers=auth
    )
    assert theirs.status_code == 404

    paid_at = db.run(lambda tx: payments.get_order(tx, trade.order_id)).paid_at
    assert paid_at is not None
    day = paid_at.astimezone(BEIJING).date().isoformat()
    assert client.get(f"/api/v1/merchant/bills/{day}", headers=auth).status_code == 409
    clock.advance(days=1)
    auth = token_of(client, tea)
    bill = client.get(f"/api/v1/merchant/bills/{day}", headers=auth)
    assert bill.status_code == 200 and trade.trade_no in bill.text
    bad = client.get("/api/v1/merchant/bills/someday", headers=auth)
    assert (bad.status_code, bad.json()["code"]) == (422, "merchant_portal.date")
