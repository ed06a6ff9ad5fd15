"""The trade API spoken with Alipay's official Python SDK as the shop's client, against a
live Qianbao: precreate, query, refund (once per out_request_no, fund_change, discordant
repeats), refund query, close, cancel, page pay to the cashier and back, the answers'
signatures verified by the SDK with the platform key, and the requests Qianbao refuses
(another app's key, an unknown app, a stale timestamp, a tampered amount)."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import urllib.parse
import uuid
from datetime import UTC, datetime
from typing import Any, Final

import httpx
import pytest
from alipay.aop.api.domain.AlipayDataDataserviceBillDownloadurlQueryModel import (
    AlipayDataDataserviceBillDownloadurlQueryModel,
)
from alipay.aop.api.domain.AlipayTradeCancelModel import AlipayTradeCancelModel
from alipay.aop.api.domain.AlipayTradeCloseModel import AlipayTradeCloseModel
from alipay.aop.api.domain.AlipayTradeFastpayRefundQueryModel import (
    AlipayTradeFastpayRefundQueryModel,
)
from alipay.aop.api.domain.AlipayTradePagePayModel import AlipayTradePagePayModel
from alipay.aop.api.domain.AlipayTradePayModel import AlipayTradePayModel
from alipay.aop.api.domain.AlipayTradePrecreateModel import AlipayTradePrecreateModel
from alipay.aop.api.domain.AlipayTradeQueryModel import AlipayTradeQueryModel
from alipay.aop.api.domain.AlipayTradeRefundModel import AlipayTradeRefundModel
from alipay.aop.api.domain.AlipayTradeWapPayModel import AlipayTradeWapPayModel
from alipay.aop.api.exception.Exception import ResponseException
from alipay.aop.api.request.AlipayDataDataserviceBillDownloadurlQueryRequest import (
    AlipayDataDataserviceBillDownloadurlQueryRequest,
)
from alipay.aop.api.request.AlipayTradeCancelRequest import AlipayTradeCancelRequest
from alipay.aop.api.request.AlipayTradeCloseRequest import AlipayTradeCloseRequest
from alipay.aop.api.request.AlipayTradeFastpayRefundQueryRequest import (
    AlipayTradeFastpayRefundQueryRequest,
)
from alipay.aop.api.request.AlipayTradePagePayRequest import AlipayTradePagePayRequest
from alipay.aop.api.request.AlipayTradePayRequest import AlipayTradePayRequest
from alipay.aop.api.request.AlipayTradePrecreateRequest import AlipayTradePrecreateRequest
from alipay.aop.api.request.AlipayTradeQueryRequest import AlipayTradeQueryRequest
from alipay.aop.api.request.AlipayTradeRefundRequest import AlipayTradeRefundRequest
from alipay.aop.api.request.AlipayTradeWapPayRequest import AlipayTradeWapPayRequest

from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.errors import QianbaoError
from qianbao.identity import service as identity
from qianbao.openplatform import signing
from qianbao.openplatform.gateway import notifications, protocol, service
from qianbao.openplatform.merchants import service as merchants
from qianbao.wallet.payment_codes import service as payment_codes
from qianbao.wallet.payments import service as payments
from qianbao.web import after_login
from tests.e2e.liveserver import LiveServer
from tests.helpers import AGREEMENT, HOME, UK, last_code
from tests.openplatform.gateway.shop import (
    SHOP,
    Shop,
    ShopKeys,
    new_shop_keys,
    notify_endpoint,
    paying_person,
    sdk_client,
    signed_request,
    verify_notification,
)
from tests.wallet.test_payments import PIN, cny

PAGE_PAY, WAP_PAY = "FAST_INSTANT_TRADE_PAY", "QUICK_WAP_WAY"
CASHIER_REQUESTS: Final[dict[str, tuple[type[Any], type[Any]]]] = {
    PAGE_PAY: (AlipayTradePagePayRequest, AlipayTradePagePayModel),
    WAP_PAY: (AlipayTradeWapPayRequest, AlipayTradeWapPayModel),
}
pytestmark = pytest.mark.usefixtures("beijing_shop")


@pytest.fixture
def clock() -> FrozenClock:
    """The server's clock at the real time: the SDK stamps requests with its own."""
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


def precreate(
    shop: Shop, number: str, amount: str = "88.00", notify_url: str = ""
) -> dict[str, Any]:
    model = AlipayTradePrecreateModel()
    model.out_trade_no, model.total_amount, model.subject = number, amount, "Longjing tea"
    request = AlipayTradePrecreateRequest(biz_model=model)
    if notify_url:
        request.notify_url = notify_url
    return shop.call(request)


def query_request(number: str) -> AlipayTradeQueryRequest:
    model = AlipayTradeQueryModel()
    model.out_trade_no = number
    return AlipayTradeQueryRequest(biz_model=model)


def query(shop: Shop, number: str) -> dict[str, Any]:
    return shop.call(query_request(number))


def refund(shop: Shop, number: str, amount: str, request_no: str) -> dict[str, Any]:
    model = AlipayTradeRefundModel()
    model.out_trade_no, model.refund_amount, model.out_request_no = number, amount, request_no
    return shop.call(AlipayTradeRefundRequest(biz_model=model))


def order_id_of(db: Database, qr_code: str) -> uuid.UUID:
    return uuid.UUID(qr_code.rstrip("/").rsplit("/", 1)[1])


def cashier_request(
    product_code: str,
    number: str,
    amount: str,
    subject: str = "tea",
    return_url: str | None = None,
) -> Any:
    """A page pay or a wap pay request (by its product code): it sends the person to the
    cashier, and to ``return_url`` once paid."""
    request_type, model_type = CASHIER_REQUESTS[product_code]
    model = model_type()
    model.out_trade_no, model.total_amount, model.subject = number, amount, subject
    model.product_code = product_code
    request = request_type(biz_model=model)
    if return_url is not None:
        request.return_url = return_url
    return request


def query_by(client: Any, number: str) -> dict[str, Any]:
    """alipay.trade.query sent with ``client`` (an SDK client of the test's own making),
    its answer as the SDK returns it."""
    answer: dict[str, Any] = json.loads(client.execute(query_request(number)))
    return answer


def scan(shop: Shop, number: str, amount: str, auth_code: str) -> dict[str, Any]:
    """The shop's scanner reads the person's payment code: alipay.trade.pay, bar_code."""
    model = AlipayTradePayModel()
    model.out_trade_no, model.total_amount, model.subject = number, amount, "tea"
    model.scene, model.auth_code = "bar_code", auth_code
    return shop.call(AlipayTradePayRequest(biz_model=model))


def signed_in_bearer(db: Database, clock: FrozenClock) -> dict[str, str]:
    """The paying person signs in by SMS code; the header their wallet API calls carry."""
    clock.advance(seconds=61)  # past the resend wait of the last SMS code
    identity.send_code(db, UK, "login", HOME, "en", AGREEMENT)
    signed_in = identity.sign_in(db, UK, "login", last_code(db, UK), HOME)
    return {"Authorization": f"Bearer {signed_in.token}"}


def test_a_shop_on_the_sdk_sells_is_told_and_refunds(
    server: LiveServer, db: Database, clock: FrozenClock
) -> None:
    shop = Shop(server)
    with notify_endpoint(["success"]) as endpoint:
        made = precreate(shop, "T1001", "88.00", endpoint.url)
        answer = made
        assert answer["code"] == "10000" and answer["out_trade_no"] == "T1001"
        assert answer["qr_code"].startswith(f"{server.url}/cashier/")
        waiting = query(shop, "T1001")
        assert waiting["trade_status"] == "WAIT_BUYER_PAY" and waiting["total_amount"] == "88.00"

        person = paying_person(db, clock)
        order_id = order_id_of(db, answer["qr_code"])
        payments.pay_with_balance(db, person, order_id, PIN)
        assert notifications.deliver_due(db) == 1

    [form] = endpoint.received
    assert verify_notification(form, shop.platform_key)
    assert form["notify_type"] == "trade_status_sync" and form["trade_status"] == "TRADE_SUCCESS"
    assert (form["app_id"], form["out_trade_no"], form["total_amount"]) == (
        shop.app_id,
        "T1001",
        "88.00",
    )
    assert form["trade_no"] == waiting["trade_no"] and form["sign_type"] == "RSA2"
    assert notifications.deliver_due(db) == 0  # answered "success": never again

    paid = query(shop, "T1001")
    assert paid["trade_status"] == "TRADE_SUCCESS" and paid["send_pay_date"]

    first = refund(shop, "T1001", "30.00", "R1")
    assert first["code"] == "10000" and first["fund_change"] == "Y"
    assert first["refund_fee"] == "30.00"
    again = refund(shop, "T1001", "30.00", "R1")
    assert again["code"] == "10000" and again["fund_change"] == "N"
    assert again["refund_fee"] == "30.00"  # nothing moved twice
    discordant = refund(shop, "T1001", "31.00", "R1")
    assert (discordant["code"], discordant["sub_code"]) == (
        "40004",
        "ACQ.DISCORDANT_REPEAT_REQUEST",
    )
    too_much = refund(shop, "T1001", "58.01", "R2")
    assert too_much["sub_code"] == "ACQ.REASON_TRADE_REFUND_FEE_ERR"
    assert db.run(lambda tx: payments.wallet(tx, person)).balance == cny("442.00")

    model = AlipayTradeFastpayRefundQueryModel()
    model.out_trade_no, model.out_request_no = "T1001", "R1"
    found = shop.call(AlipayTradeFastpayRefundQueryRequest(biz_model=model))
    refunded = found
    assert refunded["refund_amount"] == "30.00" and refunded["refund_status"] == "REFUND_SUCCESS"
    model.out_request_no = "R9"
    unknown = shop.call(AlipayTradeFastpayRefundQueryRequest(biz_model=model))
    assert "refund_amount" not in unknown


def test_close_and_cancel(server: LiveServer, db: Database, clock: FrozenClock) -> None:
    shop = Shop(server)
    precreate(shop, "C1")
    model = AlipayTradeCloseModel()
    model.out_trade_no = "C1"
    closed = shop.call(AlipayTradeCloseRequest(biz_model=model))
    assert closed["code"] == "10000"
    assert query(shop, "C1")["trade_status"] == "TRADE_CLOSED"
    again = precreate(shop, "C1")
    assert again["sub_code"] == "ACQ.TRADE_HAS_CLOSE"
    on_closed = refund(shop, "C1", "1.00", "R1")
    assert on_closed["sub_code"] == "ACQ.TRADE_HAS_CLOSE"

    person = paying_person(db, clock)
    qr = precreate(shop, "C2", "40.00")["qr_code"]
    payments.pay_with_balance(db, person, order_id_of(db, qr), PIN)
    cancel = AlipayTradeCancelModel()
    cancel.out_trade_no = "C2"
    undone = shop.call(AlipayTradeCancelRequest(biz_model=cancel))
    assert undone["code"] == "10000" and undone["action"] == "refund"
    assert query(shop, "C2")["trade_status"] == "TRADE_CLOSED"
    assert db.run(lambda tx: payments.wallet(tx, person)).balance == cny("500.00")


def test_refused_requests(server: LiveServer, db: Database, clock: FrozenClock) -> None:
    shop = Shop(server)
    other = Shop(server, "Another Shop")
    precreate(shop, "X1", "10.00")

    missing = query(shop, "NOPE")
    assert (missing["code"], missing["sub_code"]) == ("40004", "ACQ.TRADE_NOT_EXIST")
    # Another merchant's trade is no business of this one.
    assert query(other, "X1")["sub_code"] == "ACQ.TRADE_NOT_EXIST"

    forged = sdk_client(shop.gateway, shop.app_id, other.keys, shop.platform_key)
    answer = query_by(forged, "X1")
    assert answer["code"] == "40002"
    assert answer["sub_code"] == "isv.invalid-signature"

    stranger = sdk_client(shop.gateway, "2026999999999999", shop.keys, shop.platform_key)
    answer = query_by(stranger, "X1")
    assert answer["sub_code"] == "isv.invalid-app-id"

    # A request the shop signed and someone changed on the way: the amount raised.
    page = cashier_request(PAGE_PAY, "X2", "10.00")
    url = shop.client.page_execute(page, http_method="GET")
    tampered = url.replace(urllib.parse.quote_plus('"10.00"'), urllib.parse.quote_plus('"1.00"'))
    assert tampered != url
    refused = httpx.get(tampered, follow_redirects=False)
    assert refused.status_code == 400 and "isv.invalid-signature" in refused.text
    assert query(shop, "X2")["sub_code"] == "ACQ.TRADE_NOT_EXIST"

    clock.advance(minutes=11)  # the shop's clock is now 11 minutes behind Qianbao's
    stale = query(shop, "X1")
    assert (stale["code"], stale["sub_code"]) == ("40002", "isv.invalid-timestamp")


def test_page_pay_goes_to_the_cashier_and_back_to_the_shop(
    server: LiveServer, db: Database, clock: FrozenClock
) -> None:
    shop = Shop(server)
    back_to = "http://127.0.0.1:9/shop/return"
    request = cashier_request(PAGE_PAY, "P1", "25.50", "A teapot", return_url=back_to)
    url = shop.client.page_execute(request, http_method="GET")
    sent = httpx.get(url, follow_redirects=False)
    assert sent.status_code == 302
    cashier = sent.headers["location"]
    assert cashier.startswith(f"{server.url}/cashier/")
    order_id = order_id_of(db, cashier)
    assert db.run(lambda tx: payments.return_page(tx, order_id)) is None  # not paid yet

    person = paying_person(db, clock)
    payments.pay_with_balance(db, person, order_id, PIN)
    back = db.run(lambda tx: payments.return_page(tx, order_id))
    assert back is not None and back.startswith("http://127.0.0.1:9/shop/return?")
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back).query))
    assert params["method"] == "alipay.trade.page.pay.return"
    assert (params["out_trade_no"], params["total_amount"]) == ("P1", "25.50")
    assert verify_notification(params, shop.platform_key)
    params["total_amount"] = "2.55"
    assert not verify_notification(params, shop.platform_key)


def test_keys_rotate_without_downtime(server: LiveServer, db: Database, clock: FrozenClock) -> None:
    shop = Shop(server)
    precreate(shop, "K1")
    old_client = shop.client
    new_keys = new_shop_keys()
    db.run(lambda tx: merchants.set_app_key(tx, shop.app_id, new_keys.public_pem))
    new_client = sdk_client(shop.gateway, shop.app_id, new_keys, shop.platform_key)
    for client in (old_client, new_client):  # both during the overlap
        assert query_by(client, "K1")["code"] == "10000"

    # The platform publishes its next key; answers are signed with the current one
    # until it is activated, then with the next one only.
    published = db.run(merchants.publish_next_platform_key)
    assert query_by(new_client, "K1")["code"] == "10000"
    db.run(merchants.activate_next_platform_key)
    with pytest.raises(ResponseException):
        query_by(new_client, "K1")
    rotated = sdk_client(
        shop.gateway, shop.app_id, new_keys, signing.bare_base64(published.public_key)
    )
    assert query_by(rotated, "K1")["code"] == "10000"

    # Past the overlap, the old key is refused (signed here by hand, with the server's
    # own time, so that only the key can be the reason).
    clock.advance(seconds=db.settings.gateway_app_key_overlap_seconds + 1)
    for keys, code in ((new_keys, "10000"), (shop.keys, "40002")):
        answer = gateway_answer(db, shop.app_id, keys, "alipay.trade.query", {"out_trade_no": "K1"})
        assert answer["code"] == code
    assert answer["sub_code"] == "isv.invalid-signature"


def gateway_answer(
    db: Database, app_id: str, keys: ShopKeys, method: str, biz: dict[str, str]
) -> dict[str, Any]:
    """A request signed by Alipay's documented rule with ``cryptography`` (not the SDK),
    answered by the gateway's service."""
    params = signed_request(db, app_id, keys, method, json.dumps(biz))
    text = service.answer(db, params).text
    body: dict[str, Any] = json.loads(text)[protocol.response_key(method)]
    return body


def test_an_app_key_under_2048_bits_is_refused(db: Database) -> None:
    db.run(lambda tx: payments.create_merchant(tx, SHOP))
    app_id = db.run(lambda tx: merchants.create_app(tx, SHOP, "web")).app_id
    weak = new_shop_keys(1024)
    with pytest.raises(QianbaoError) as caught:
        db.run(lambda tx: merchants.set_app_key(tx, app_id, weak.public_pem))
    assert caught.value.code == "merchant_app.key"

    def installed(tx: Tx) -> bool:
        return merchants.app(tx, app_id).has_key

    assert not db.run(installed)


def test_a_daily_bill_lists_the_day_s_payments_and_refunds(
    server: LiveServer, db: Database, clock: FrozenClock
) -> None:
    shop = Shop(server)
    clock.advance(days=-1)  # yesterday, in the server's time
    made = gateway_answer(
        db,
        shop.app_id,
        shop.keys,
        "alipay.trade.precreate",
        {"out_trade_no": "B1", "total_amount": "12.00", "subject": "green tea"},
    )
    person = paying_person(db, clock)
    payments.pay_with_balance(db, person, order_id_of(db, made["qr_code"]), PIN)
    refunded = gateway_answer(
        db,
        shop.app_id,
        shop.keys,
        "alipay.trade.refund",
        {"out_trade_no": "B1", "refund_amount": "2.00", "out_request_no": "BR1"},
    )
    assert refunded["fund_change"] == "Y"
    yesterday = protocol.beijing_time(clock.now())[:10]
    clock.advance(days=1)

    model = AlipayDataDataserviceBillDownloadurlQueryModel()
    model.bill_type, model.bill_date = "trade", yesterday
    answer = shop.call(AlipayDataDataserviceBillDownloadurlQueryRequest(biz_model=model))
    link = answer["bill_download_url"]
    assert link.startswith(f"{server.url}/gateway/bills/")
    bill = httpx.get(link)
    assert bill.status_code == 200 and bill.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(bill.text)))
    assert rows[0][0] == "支付宝交易号" and len(rows) == 3
    assert (rows[1][1], rows[1][2], rows[1][7]) == ("B1", "交易", "12.00")
    assert (rows[2][2], rows[2][7], rows[2][8]) == ("退款", "-2.00", "BR1")

    model.bill_date = protocol.beijing_time(clock.now())[:10]  # today is not closed yet
    today = shop.call(AlipayDataDataserviceBillDownloadurlQueryRequest(biz_model=model))
    assert today["sub_code"] == "ACQ.INVALID_PARAMETER"
    assert httpx.get(link[:-3] + "AAA").status_code == 404  # a changed link
    clock.advance(seconds=db.settings.gateway_bill_link_seconds + 1)
    assert httpx.get(link).status_code == 404  # an expired one


def test_the_sdk_s_auto_submitting_form_and_wap_pay_reach_the_cashier(
    server: LiveServer, db: Database, clock: FrozenClock
) -> None:
    shop = Shop(server)
    request = cashier_request(WAP_PAY, "W1", "9.90", return_url="https://shop.example/back")
    form = shop.client.page_execute(request)  # POST: the HTML form a shop's page shows
    action = html.unescape(re.search(r'action="([^"]+)"', form).group(1))  # type: ignore[union-attr]
    fields = {
        name: html.unescape(value)
        for name, value in re.findall(r'name="([^"]+)" value="([^"]*)"', form)
    }
    assert action.startswith(shop.gateway) and "biz_content" in fields
    sent = httpx.post(action, data=fields, follow_redirects=False)
    assert sent.status_code == 302 and "/cashier/" in sent.headers["location"]

    # A person who is not signed in is asked to, then comes back to this cashier.
    cashier = urllib.parse.urlsplit(sent.headers["location"]).path
    signed_out = httpx.get(f"{server.url}{cashier}", follow_redirects=False)
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/"
    remembered = (signed_out.cookies.get(after_login.COOKIE) or "").strip('"')
    assert remembered == cashier  # where the login returns

    order_id = order_id_of(db, cashier)
    payments.pay_with_balance(db, paying_person(db, clock), order_id, PIN)
    back = db.run(lambda tx: payments.return_page(tx, order_id))
    assert back is not None and back.startswith("https://shop.example/back?")
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back).query))
    assert params["method"] == "alipay.trade.wap.pay.return"
    assert verify_notification(params, shop.platform_key)


def test_a_shop_scans_the_person_s_payment_code(
    server: LiveServer, db: Database, clock: FrozenClock
) -> None:
    shop = Shop(server)
    person = paying_person(db, clock)
    issued = httpx.post(
        f"{server.url}/api/v1/wallet/payment-codes", headers=signed_in_bearer(db, clock)
    )
    assert issued.status_code == 201, issued.text
    code = issued.json()["code"]
    assert len(code) == 18 and code.startswith("28")

    paid = scan(shop, "S1", "35.00", code)
    assert paid["code"] == "10000" and paid["total_amount"] == "35.00" and paid["gmt_payment"]
    assert query(shop, "S1")["trade_status"] == "TRADE_SUCCESS"
    assert db.run(lambda tx: payments.wallet(tx, person)).balance == cny("465.00")
    again = scan(shop, "S2", "1.00", code)  # a code works once
    assert again["sub_code"] == "ACQ.PAYMENT_AUTH_CODE_INVALID"
    fresh = db.run(lambda tx: payment_codes.issue(tx, person)).code
    too_much = scan(shop, "S3", "1000.01", fresh)
    assert too_much["sub_code"] == "ACQ.PAYMENT_FAIL"
    broke = scan(shop, "S4", "900.00", fresh)  # 465.00 left
    assert broke["sub_code"] == "ACQ.BUYER_BALANCE_NOT_ENOUGH"
    clock.advance(seconds=db.settings.payment_code_seconds)
    late = scan(shop, "S5", "1.00", fresh)  # unused, but past its minute
    assert late["sub_code"] == "ACQ.PAYMENT_AUTH_CODE_INVALID"


def test_the_sdk_s_barcode_payment_keeps_to_the_person_s_own_limit(
    server: LiveServer, db: Database, clock: FrozenClock
) -> None:
    shop = Shop(server)
    person = paying_person(db, clock)
    bearer = signed_in_bearer(db, clock)
    limit = httpx.put(
        f"{server.url}/api/v1/wallet/payment-codes/limit", headers=bearer, json={"limit": "30"}
    )
    assert limit.status_code == 200 and limit.json() == {"limit": 30, "cap": 1000}
    code = httpx.post(f"{server.url}/api/v1/wallet/payment-codes", headers=bearer).json()["code"]

    over = scan(shop, "L1", "30.01", code)
    assert (over["code"], over["sub_code"]) == ("40004", "ACQ.PAYMENT_FAIL")
    assert "own limit" in over["sub_msg"]
    paid = scan(shop, "L2", "30.00", code)  # the same code: the refusal did not use it up
    assert paid["code"] == "10000" and paid["total_amount"] == "30.00"
    assert db.run(lambda tx: payments.wallet(tx, person)).balance == cny("470.00")
