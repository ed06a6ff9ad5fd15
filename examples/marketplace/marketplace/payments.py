"""The shop's payments through Qianbao's trade API: paying an order at Qianbao's cashier
(page pay, or a QR code), learning that it was paid (the signed return and the signed
notification, each checked with the SDK's helper, and the trade queried), and refunding
part or all of it from the order page.

Qianbao's word is the gateway's: a return or a notification only makes the shop ask
(``alipay.trade.query``) or record what was signed; nothing unsigned changes an order.
HTTP calls are made between the database transactions, never inside one.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from marketplace import store
from marketplace.catalog import product
from marketplace.i18n import N_
from marketplace.service import ShopError
from marketplace.settings import Settings
from marketplace.trade_client import (
    GatewayRefused,
    GatewayUnavailable,
    TradeClient,
    fen,
    yuan,
)

PAID_STATES: Final = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
# Alipay's states only move forward: a late retry of an older notification (TRADE_SUCCESS
# after the refund that closed the trade) must not move the order back.
STATE_ORDER: Final = {
    "WAIT_BUYER_PAY": 0,
    "TRADE_SUCCESS": 1,
    "TRADE_CLOSED": 2,
    "TRADE_FINISHED": 2,
}
AMOUNT: Final = re.compile(r"^\d{1,9}(\.\d{1,2})?$")
# Answers to Qianbao's notification: exactly "success" stops its retries.
NOTIFY_ACCEPTED: Final = "success"
NOTIFY_REFUSED: Final = "failure"


def unavailable() -> ShopError:
    return ShopError(
        "payment.unavailable", N_("Qianbao's payment service cannot be reached now. Try again.")
    )


def refused(error: GatewayRefused) -> ShopError:
    return ShopError(
        "payment.refused",
        N_("Qianbao refused: {reason} ({code})"),
        {"reason": error.sub_msg, "code": error.sub_code or error.code},
    )


def own_order(database: Path, account_id: int, order_id: int) -> store.Order:
    with store.transaction(database) as db:
        order = store.order_by_id(db, order_id)
    if order is None or order.account_id != account_id:
        raise ShopError("order.not_found", N_("There is no such order."))
    return order


def subject_of(order: store.Order) -> str:
    item = product(order.product_id)
    return f"{item.name if item else order.product_id} x {order.quantity}"


def _numbered(database: Path, order: store.Order) -> str:
    """The order's out_trade_no, given on the first payment attempt and kept: a retry
    (page pay after a QR, a second click) is the same trade at Qianbao."""
    if order.out_trade_no:
        return order.out_trade_no
    number = f"WM{order.id:08d}{secrets.token_hex(4).upper()}"
    with store.transaction(database) as db:
        store.start_payment(db, order.id, number)
        saved = store.order_by_id(db, order.id)
    assert saved is not None
    assert saved.out_trade_no is not None
    return saved.out_trade_no


def _payable(order: store.Order) -> None:
    if order.paid or order.trade_status == "TRADE_CLOSED":
        raise ShopError("order.not_payable", N_("This order is paid or closed."))


def page_pay(settings: Settings, client: TradeClient, order: store.Order) -> str:
    """Where to send the person's browser: the signed page pay link to the cashier."""
    _payable(order)
    number = _numbered(settings.database, order)
    try:
        return client.page_pay_url(number, order.total_fen, subject_of(order))
    except GatewayUnavailable:
        raise unavailable() from None


def qr_pay(settings: Settings, client: TradeClient, order: store.Order) -> str:
    """``alipay.trade.precreate``: the code to scan (the cashier's URL), kept on the order."""
    _payable(order)
    number = _numbered(settings.database, order)
    try:
        qr_code = client.precreate(number, order.total_fen, subject_of(order))
    except GatewayUnavailable:
        raise unavailable() from None
    except GatewayRefused as error:
        raise refused(error) from None
    with store.transaction(settings.database) as db:
        store.save_qr_code(db, order.id, qr_code)
    return qr_code


def sync(settings: Settings, client: TradeClient, order: store.Order, now: int) -> store.Order:
    """Asks Qianbao for the trade's state and records it (a trade not made yet at
    Qianbao, ACQ.TRADE_NOT_EXIST, leaves the order as it is)."""
    if not order.out_trade_no:
        return order
    try:
        trade = client.query(order.out_trade_no)
    except GatewayUnavailable:
        raise unavailable() from None
    except GatewayRefused as error:
        if error.sub_code == "ACQ.TRADE_NOT_EXIST":
            return order
        raise refused(error) from None
    if fen(trade.total_amount) != order.total_fen:
        raise ShopError("payment.amount_mismatch", N_("Qianbao reports another amount."))
    with store.transaction(settings.database) as db:
        store.save_trade(db, order.id, trade.trade_no, trade.trade_status, now)
        synced = store.order_by_id(db, order.id)
    assert synced is not None
    return synced


def returned(
    settings: Settings, client: TradeClient, params: Mapping[str, str], now: int
) -> store.Order:
    """The person back from the cashier with Alipay's signed return parameters: checked,
    then the trade is queried (the return itself moves nothing)."""
    if not client.verify(params) or params.get("app_id") != settings.app_id:
        raise ShopError("payment.bad_signature", N_("The answer from Qianbao is not signed."))
    with store.transaction(settings.database) as db:
        order = store.order_by_trade(db, params.get("out_trade_no", ""))
    if order is None:
        raise ShopError("order.not_found", N_("There is no such order."))
    return sync(settings, client, order, now)


def notified(settings: Settings, client: TradeClient, form: Mapping[str, str], now: int) -> str:
    """Qianbao's ``trade_status_sync``: recorded only when its signature verifies with
    the platform key, it is for this app, names one of the shop's orders and the right
    amount. Answers ``success`` (recorded, or already recorded) or ``failure``."""
    try:
        genuine = client.verify(form)
    except GatewayUnavailable:
        return NOTIFY_REFUSED  # the key could not be fetched: Qianbao tries again later
    if not genuine or form.get("app_id") != settings.app_id:
        return NOTIFY_REFUSED
    with store.transaction(settings.database) as db:
        order = store.order_by_trade(db, form.get("out_trade_no", ""))
        if order is None or form.get("total_amount") != yuan(order.total_fen):
            return NOTIFY_REFUSED
        status = form.get("trade_status", "")
        store.save_notification(
            db, order.id, store.PaymentNotification(form.get("notify_id", ""), status, now)
        )
        known = STATE_ORDER.get(order.trade_status or "", -1)
        if STATE_ORDER.get(status, -1) >= known:
            store.save_trade(db, order.id, form.get("trade_no", ""), status, now)
        if form.get("refund_fee"):
            store.raise_refunded(db, order.id, fen(form["refund_fee"]))
    return NOTIFY_ACCEPTED


def parse_amount(text: str) -> int:
    if not AMOUNT.match(text.strip()):
        raise ShopError("refund.bad_amount", N_("Enter an amount in yuan, like 12.50."))
    amount = fen(text.strip())
    if amount <= 0:
        raise ShopError("refund.bad_amount", N_("Enter an amount in yuan, like 12.50."))
    return amount


def refund(
    settings: Settings, client: TradeClient, order: store.Order, amount_text: str, now: int
) -> store.OrderRefund:
    """``alipay.trade.refund`` of part or all of a paid order, under a new
    out_request_no (order number, R, the refund's count)."""
    amount = parse_amount(amount_text)
    if not order.paid or not order.out_trade_no:
        raise ShopError("refund.not_paid", N_("Only a paid order can be refunded."))
    if amount > order.refundable_fen:
        raise ShopError(
            "refund.too_much",
            N_("At most {amount} can still be refunded."),
            {"amount": yuan(order.refundable_fen)},
        )
    with store.transaction(settings.database) as db:
        count = len(store.refunds_of(db, order.id))
    if count >= settings.max_refunds_per_order:
        raise ShopError("refund.too_many", N_("This order has had all the refunds it may."))
    request_no = f"{order.out_trade_no}R{count + 1:02d}"
    try:
        done = client.refund(order.out_trade_no, amount, request_no)
    except GatewayUnavailable:
        raise unavailable() from None
    except GatewayRefused as error:
        raise refused(error) from None
    made = store.OrderRefund(request_no, amount, done.fund_change, now)
    with store.transaction(settings.database) as db:
        store.save_refund(db, order.id, made, fen(done.refund_fee))
    sync(settings, client, own_order(settings.database, order.account_id, order.id), now)
    return made
