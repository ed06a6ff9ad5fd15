"""A merchant with an app, a portal user and gateway trades, for the portal's tests."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from fastapi.testclient import TestClient

from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.money import Money
from qianbao.openplatform.gateway import service
from qianbao.openplatform.gateway.models import GatewayTrade
from qianbao.openplatform.merchants import accounts
from qianbao.openplatform.merchants import service as merchants
from qianbao.wallet.payments import service as payments
from tests.wallet.test_payments import PIN, buyer, fund, verify


@dataclass(frozen=True)
class Shop:
    name: str
    merchant_id: uuid.UUID
    app_id: str
    login: str
    password: str


@dataclass(frozen=True)
class Trade:
    order_id: uuid.UUID
    trade_no: str


def new_shop(db: Database, name: str, login: str) -> Shop:
    def make(tx: Tx) -> tuple[uuid.UUID, str]:
        merchant_id = payments.create_merchant(tx, name)
        return merchant_id, merchants.create_app(tx, name, "web").app_id

    merchant_id, app_id = db.run(make)
    made = accounts.create_user(db, name, login)
    return Shop(name, merchant_id, app_id, made.user.login, made.password)


def new_trade(
    db: Database, shop: Shop, number: str, amount: str = "20", notify_url: str | None = None
) -> Trade:
    """An order made by the shop's app through the gateway, as precreate makes it."""

    def make(tx: Tx) -> Trade:
        order = payments.create_order(tx, shop.merchant_id, number, "tea", Money.of("CNY", amount))
        trade_no = service.new_trade_no(tx)
        tx.session.add(
            GatewayTrade(
                order_id=order.id,
                app_id=shop.app_id,
                trade_no=trade_no,
                product_code="FACE_TO_FACE_PAYMENT",
                notify_url=notify_url,
                created_at=tx.now(),
            )
        )
        return Trade(order.id, trade_no)

    return db.run(make)


def paying_person(db: Database, clock: FrozenClock, money: str = "100") -> uuid.UUID:
    person = buyer(db, clock)
    verify(db, person)
    fund(db, person, money)
    return person


def pay(db: Database, person: uuid.UUID, trade: Trade) -> None:
    payments.pay_with_balance(db, person, trade.order_id, PIN)


def csrf(client: TestClient, page: str = "/merchant/login") -> str:
    """The double-submit token: open a page (which sets the cookie) and read it."""
    answer = client.get(page)
    found = re.search(r'name="csrf" value="([^"]+)"', answer.text)
    assert found is not None, answer.text[:500]
    return found.group(1)


def sign_in(client: TestClient, shop: Shop) -> None:
    token = csrf(client)
    answer = client.post(
        "/merchant/login",
        data={"csrf": token, "login": shop.login, "password": shop.password},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text[:500]
    assert answer.headers["location"] == "/merchant/orders"
