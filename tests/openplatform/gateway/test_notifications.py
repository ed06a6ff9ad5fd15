"""Notifications to shops: written with the payment, signed with the platform key and
verified with the SDK's helper, the same notify_id on every attempt, retried on Alipay's
schedule until the shop answers ``success``, every attempt and answer logged."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from qianbao import jobs
from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.money import Money
from qianbao.openplatform.gateway import callbacks, notifications, service
from qianbao.openplatform.gateway.models import GatewayTrade
from qianbao.openplatform.gateway.protocol import GatewayRefusal
from qianbao.openplatform.merchants import service as merchants
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments
from tests.openplatform.gateway.shop import (
    NotifyEndpoint,
    notify_endpoint,
    paying_person,
    platform_key,
    verify_notification,
)
from tests.wallet.test_payments import PIN


@pytest.fixture
def shop_url() -> Iterator[NotifyEndpoint]:
    with notify_endpoint(["fail", "", "success"]) as endpoint:
        yield endpoint


def gateway_trade(db: Database, notify_url: str, number: str = "N1") -> uuid.UUID:
    """An order made by an app through the gateway, as precreate makes it."""

    def make(tx: Tx) -> uuid.UUID:
        merchant = payments.create_merchant(tx, "Teahouse")
        app = merchants.create_app(tx, "Teahouse", "web")
        order = payments.create_order(tx, merchant, number, "tea", Money.of("CNY", "20"))
        tx.session.add(
            GatewayTrade(
                order_id=order.id,
                app_id=app.app_id,
                trade_no=service.new_trade_no(tx),
                product_code="FACE_TO_FACE_PAYMENT",
                notify_url=notify_url,
                created_at=tx.now(),
            )
        )
        return order.id

    return db.run(make)


def test_retried_on_alipay_s_schedule_until_success(
    db: Database, clock: FrozenClock, shop_url: NotifyEndpoint
) -> None:
    order_id = gateway_trade(db, shop_url.url)
    assert notifications.deliver_due(db) == 0 and shop_url.received == []  # unpaid: nothing
    payments.pay_with_balance(db, paying_person(db, clock, "50"), order_id, PIN)

    assert notifications.deliver_due(db) == 0  # "fail"
    clock.advance(minutes=3, seconds=59)
    assert notifications.deliver_due(db) == 0 and len(shop_url.received) == 1  # not due yet
    clock.advance(seconds=1)  # 4 minutes: Alipay's first wait
    assert notifications.deliver_due(db) == 0  # an empty answer is no "success"
    clock.advance(minutes=10)
    assert notifications.deliver_due(db) == 1
    clock.advance(hours=30)
    assert notifications.deliver_due(db) == 0 and len(shop_url.received) == 3

    platform = platform_key(db)
    assert all(verify_notification(form, platform) for form in shop_url.received)
    assert len({form["notify_id"] for form in shop_url.received}) == 1
    forged = {**shop_url.received[0], "total_amount": "2000.00"}
    assert not verify_notification(forged, platform)

    [log] = db.run(lambda tx: notifications.notifications_of(tx, order_id))
    assert log.status == "delivered"
    assert [(a.answer, a.succeeded) for a in log.attempts] == [
        ("fail", False),
        ("", False),
        ("success", True),
    ]


def test_a_shop_that_never_answers_success_is_given_up_after_the_schedule(
    db: Database, clock: FrozenClock
) -> None:
    with notify_endpoint(["busy"]) as endpoint:
        order_id = gateway_trade(db, endpoint.url)
        payments.pay_with_balance(db, paying_person(db, clock, "50"), order_id, PIN)
        schedule = db.settings.gateway_notify_retry_seconds
        for wait in [0, *schedule, 86400]:
            clock.advance(seconds=wait)
            notifications.deliver_due(db)
        assert len(endpoint.received) == 1 + len(schedule)  # 8 tries, as Alipay's
        [log] = db.run(lambda tx: notifications.notifications_of(tx, order_id))
        assert log.status == "failed"
        endpoint.answers = ["success"]  # the shop is fixed; the merchant resends
        db.run(lambda tx: notifications.resend(tx, log.id))
        assert notifications.deliver_due(db) == 1
    assert endpoint.received[-1]["notify_id"] == endpoint.received[0]["notify_id"]
    assert db.run(lambda tx: notifications.notifications_of(tx, order_id))[0].status == (
        "delivered"
    )
    waits = [
        (later.attempted_at - earlier.attempted_at)
        for earlier, later in zip(log.attempts, log.attempts[1:], strict=False)
    ]
    assert waits == [timedelta(seconds=s) for s in schedule]


def test_a_refund_tells_the_shop_too(db: Database, clock: FrozenClock) -> None:
    with notify_endpoint(["success"]) as endpoint:
        order_id = gateway_trade(db, endpoint.url)
        payments.pay_with_balance(db, paying_person(db, clock, "50"), order_id, PIN)
        merchant = db.run(lambda tx: payments.merchant_by_name(tx, "Teahouse"))
        assert merchant is not None
        refunds.refund(db, merchant, order_id, "R1", Money.of("CNY", "20"))
        assert notifications.deliver_due(db) == 2
    paid, refunded = endpoint.received
    assert paid["trade_status"] == "TRADE_SUCCESS"
    assert refunded["trade_status"] == "TRADE_CLOSED" and refunded["refund_fee"] == "20.00"
    assert paid["notify_id"] != refunded["notify_id"]


@pytest.mark.parametrize(
    "url",
    ["ftp://shop.example/notify", "http://10.0.0.5/notify", "http://127.0.0.1/x", "not a url"],
)
def test_private_and_odd_notify_urls_are_refused_outside_demo(url: str) -> None:
    with pytest.raises(GatewayRefusal) as caught:
        callbacks.check_url(url, "notify_url", demo=False)
    assert caught.value.sub_code == "isv.invalid-parameter"
    assert callbacks.check_url("https://shop.example/notify", "notify_url", demo=False)


def test_the_worker_delivers_them(db: Database, clock: FrozenClock) -> None:
    [job] = [job for job in jobs.default_jobs() if job.name == "notify shops"]
    assert job.every_seconds == 0  # continuous, as the SMS outbox
    with notify_endpoint(["success"]) as endpoint:
        order_id = gateway_trade(db, endpoint.url)
        payments.pay_with_balance(db, paying_person(db, clock, "50"), order_id, PIN)
        done = jobs.run_due(db, [job])
    assert done == {"notify shops": 1} and len(endpoint.received) == 1
