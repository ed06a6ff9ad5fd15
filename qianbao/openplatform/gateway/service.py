"""The gateway's use cases: a request's common parameters and signature checked against
the app's key, then one of Alipay's trade methods, answered signed with the platform key.

A gateway trade *is* an order of ``wallet/payments`` (its cashier takes the payment,
its refunds give money back, through the ledger); this module adds the app that made
it, Alipay's trade number, and where to tell the shop.
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final
from urllib.parse import urlencode

from sqlalchemy import select

from qianbao.db import Database, Tx
from qianbao.errors import QianbaoError
from qianbao.i18n import N_
from qianbao.money import Money
from qianbao.openplatform import signing
from qianbao.openplatform.gateway import bills, callbacks, oauth
from qianbao.openplatform.gateway.models import GatewayTrade
from qianbao.openplatform.gateway.protocol import (
    BEIJING,
    BUSINESS,
    INVALID,
    MISSING,
    SUCCESS,
    UNAVAILABLE,
    Answer,
    GatewayRefusal,
    beijing_time,
    check_timestamp,
    invalid_parameter,
    parse_timeout,
    parse_yuan,
    response_key,
    signed_answer,
    yuan,
)
from qianbao.openplatform.merchants import service as merchants
from qianbao.wallet.payment_codes import service as payment_codes
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments
from qianbao.wallet.payments.service import OrderView

log = logging.getLogger(__name__)
REQUIRED: Final = ("app_id", "method", "charset", "sign_type", "sign", "timestamp", "version")
PAGE_METHODS: Final = ("alipay.trade.page.pay", "alipay.trade.wap.pay")


@dataclass(frozen=True)
class Call:
    """A request that passed the checks: the app, its merchant and its parameters."""

    app: merchants.AppView
    method: str
    params: Mapping[str, str]
    biz: Mapping[str, Any]


def answer(db: Database, params: Mapping[str, str]) -> Answer:
    """Everything ``/gateway.do`` does with one request."""
    method = params.get("method", "")
    key = response_key(method) if method in METHODS else "error_response"
    try:
        call = db.run(lambda tx: authenticate(tx, params))
        if method in PAGE_METHODS:
            return Answer(redirect=page_pay(db, call))
        body = {**dict(zip(("code", "msg"), SUCCESS, strict=True)), **METHODS[method](db, call)}
    except QianbaoError as error:
        # A race the use case lost (two requests for one new trade at once, a database
        # constraint): Alipay's "try again" answer, never a 500.
        log.warning("gateway request not done: %s", error.code)
        body = GatewayRefusal(
            UNAVAILABLE, "ACQ.SYSTEM_ERROR", N_("The request could not be done now; try again.")
        ).body()
    except GatewayRefusal as refusal:
        body = refusal.body()
        if method in PAGE_METHODS:
            return Answer(text=f"{body['sub_code']}: {body['sub_msg']}", status=400)
    return Answer(text=db.run(lambda tx: signed_answer(key, body, merchants.platform_signer(tx))))


def authenticate(tx: Tx, params: Mapping[str, str]) -> Call:
    for name in REQUIRED:
        if not params.get(name):
            raise GatewayRefusal(
                MISSING,
                f"isv.missing-{name.replace('_', '-')}",
                N_("{name} is missing."),
                {"name": name},
            )
    if params["method"] not in METHODS and params["method"] not in PAGE_METHODS:
        raise GatewayRefusal(INVALID, "isv.invalid-method", N_("There is no such method."))
    if params["charset"].lower() != "utf-8":
        raise GatewayRefusal(INVALID, "isv.invalid-charset", N_("Only utf-8 is spoken."))
    if params.get("format", "JSON").upper() != "JSON":
        raise GatewayRefusal(INVALID, "isv.invalid-format", N_("Only JSON is answered."))
    if params["sign_type"] != "RSA2":
        raise GatewayRefusal(
            INVALID, "isv.invalid-signature-type", N_("Requests are signed with RSA2.")
        )
    app = merchants.find_app(tx, params["app_id"])
    if app is None:
        raise GatewayRefusal(INVALID, "isv.invalid-app-id", N_("There is no such app_id."))
    check_timestamp(params["timestamp"], tx.now(), tx.settings.gateway_timestamp_tolerance_seconds)
    # The SDKs sign every parameter but sign itself (sign_type included).
    text = signing.sign_content(params, exclude=("sign",))
    keys = merchants.app_verification_keys(tx, app.app_id)
    if not any(signing.verify(key, text, params["sign"]) for key in keys):
        raise GatewayRefusal(
            INVALID,
            "isv.invalid-signature",
            N_("The signature does not verify with the app's key."),
        )
    return Call(app, params["method"], params, _biz(params.get("biz_content", "")))


def _biz(text: str) -> Mapping[str, Any]:
    if not text:
        return {}
    try:
        biz = json.loads(text)
    except ValueError:
        raise invalid_parameter("biz_content") from None
    if not isinstance(biz, dict):
        raise invalid_parameter("biz_content")
    return biz


def _text(call: Call, name: str, *, required: bool = True, longest: int = 64) -> str:
    value = call.biz.get(name, "")
    if not isinstance(value, str) or len(value) > longest or (required and not value):
        raise invalid_parameter(name)
    return value


# --- trades ------------------------------------------------------------------------------


def new_trade_no(tx: Tx) -> str:
    """28 digits like Alipay's: the Beijing date, a channel, then random digits."""
    date = beijing_time(tx.now())[:10].replace("-", "")
    return date + "2200" + "".join(secrets.choice("0123456789") for _ in range(16))


def _callback(tx: Tx, call: Call, name: str) -> str | None:
    url = call.params.get(name, "")
    return callbacks.check_url(url, name, demo=tx.settings.demo) if url else None


def _create_trade(tx: Tx, call: Call, product_code: str) -> tuple[OrderView, GatewayTrade]:
    out_trade_no = _text(call, "out_trade_no")
    amount = parse_yuan(call.biz.get("total_amount"), "total_amount")
    subject = _text(call, "subject", longest=256)
    default = timedelta(minutes=tx.settings.gateway_default_timeout_minutes)
    timeout = parse_timeout(call.biz.get("timeout_express"), default)
    notify_url, return_url = _callback(tx, call, "notify_url"), _callback(tx, call, "return_url")
    try:
        order = payments.create_order(
            tx, call.app.merchant_id, out_trade_no, subject, amount, timeout
        )
    except QianbaoError as error:
        if error.code == "order.trade_no_used":
            raise GatewayRefusal(
                BUSINESS,
                "ACQ.CONTEXT_INCONSISTENT",
                N_("This out_trade_no was used for another trade."),
            ) from None
        raise invalid_parameter("out_trade_no") from None
    _refuse_finished_state(order)
    trade = tx.session.get(GatewayTrade, order.id)
    if trade is None:
        trade = GatewayTrade(
            order_id=order.id,
            app_id=call.app.app_id,
            trade_no=new_trade_no(tx),
            product_code=product_code,
            notify_url=notify_url,
            return_url=return_url,
            created_at=tx.now(),
        )
        tx.session.add(trade)
        tx.session.flush()
    return order, trade


def _refuse_finished_state(order: OrderView) -> None:
    if order.status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
        raise GatewayRefusal(BUSINESS, "ACQ.TRADE_HAS_SUCCESS", N_("The trade has been paid."))
    if order.status == "TRADE_CLOSED":
        raise GatewayRefusal(BUSINESS, "ACQ.TRADE_HAS_CLOSE", N_("The trade is closed."))


def _found(tx: Tx, call: Call) -> tuple[OrderView, GatewayTrade]:
    """The trade named by trade_no (it wins) or out_trade_no, if it is this merchant's."""
    trade_no = _text(call, "trade_no", required=False)
    out_trade_no = _text(call, "out_trade_no", required=False)
    if not trade_no and not out_trade_no:
        raise invalid_parameter("out_trade_no")
    order: OrderView | None = None
    trade: GatewayTrade | None = None
    if trade_no:
        trade = tx.session.scalar(select(GatewayTrade).where(GatewayTrade.trade_no == trade_no))
        if trade is not None:
            order = payments.merchant_order(tx, call.app.merchant_id, order_id=trade.order_id)
    else:
        order = payments.merchant_order(tx, call.app.merchant_id, out_trade_no=out_trade_no)
        trade = tx.session.get(GatewayTrade, order.id) if order is not None else None
    if order is None or trade is None:
        raise GatewayRefusal(BUSINESS, "ACQ.TRADE_NOT_EXIST", N_("There is no such trade."))
    return order, trade


def trade_status(tx: Tx, order: OrderView) -> str:
    """Alipay's state: a paid trade past the refund window is TRADE_FINISHED."""
    window = timedelta(days=tx.settings.gateway_refund_window_days)
    if order.status == "TRADE_SUCCESS" and order.paid_at and order.paid_at + window <= tx.now():
        return "TRADE_FINISHED"
    return order.status


def cashier_url(tx: Tx, order: OrderView) -> str:
    return f"{tx.settings.public_base_url.rstrip('/')}/cashier/{order.id}"


def precreate(db: Database, call: Call) -> dict[str, str]:
    def run(tx: Tx) -> dict[str, str]:
        order, _trade = _create_trade(tx, call, "FACE_TO_FACE_PAYMENT")
        return {"out_trade_no": order.out_trade_no, "qr_code": cashier_url(tx, order)}

    return db.run(run)


def page_pay(db: Database, call: Call) -> str:
    """The person's browser brought the shop's signed request: the trade is made and
    the person goes to the cashier (and back to return_url once paid)."""
    product = "FAST_INSTANT_TRADE_PAY" if call.method == PAGE_METHODS[0] else "QUICK_WAP_WAY"

    def run(tx: Tx) -> str:
        order, _trade = _create_trade(tx, call, product)
        return cashier_url(tx, order)

    return db.run(run)


PAY_REFUSALS: Final[Mapping[str, tuple[str, str]]] = {
    "payment_code.invalid": (
        "ACQ.PAYMENT_AUTH_CODE_INVALID",
        N_("The payment code is not valid; ask the buyer to show a new one."),
    ),
    "payment_code.over_limit": (
        "ACQ.PAYMENT_FAIL",
        N_("Above the buyer's own limit for the payment code; ask them to scan the shop's code."),
    ),
    "ledger.insufficient_funds": (
        "ACQ.BUYER_BALANCE_NOT_ENOUGH",
        N_("The buyer's balance is not enough."),
    ),
}


def barcode_pay(db: Database, call: Call) -> dict[str, str]:
    """``alipay.trade.pay``: the shop scanned the person's payment code; they pay from
    their balance at once, up to the password-free limit."""
    if call.biz.get("scene", "bar_code") != "bar_code":
        raise invalid_parameter("scene")
    auth_code = _text(call, "auth_code", longest=32)
    amount = parse_yuan(call.biz.get("total_amount"), "total_amount")
    if amount.major > db.settings.payment_code_password_free_limit:
        raise GatewayRefusal(
            BUSINESS,
            "ACQ.PAYMENT_FAIL",
            N_("Above {limit} yuan, ask the buyer to scan the shop's code instead."),
            {"limit": db.settings.payment_code_password_free_limit},
        )
    order, trade = db.run(lambda tx: _create_trade(tx, call, "FACE_TO_FACE_PAYMENT"))
    try:
        paid = payments.pay_with_balance_by_code(
            db, order.id, lambda tx: payment_codes.redeem(tx, auth_code, amount.major)
        )
    except QianbaoError as error:
        code, message = PAY_REFUSALS.get(
            error.code, ("ACQ.PAYMENT_FAIL", N_("The buyer cannot pay this now."))
        )
        raise GatewayRefusal(BUSINESS, code, message) from None
    return {
        "trade_no": trade.trade_no,
        "out_trade_no": paid.out_trade_no,
        "total_amount": yuan(paid.amount),
        "receipt_amount": yuan(paid.amount),
        "buyer_pay_amount": yuan(paid.amount),
        "point_amount": "0.00",
        "invoice_amount": yuan(paid.amount),
        "gmt_payment": beijing_time(paid.paid_at),
    }


def query(db: Database, call: Call) -> dict[str, str]:
    def run(tx: Tx) -> dict[str, str]:
        order, trade = _found(tx, call)
        paid = order.paid_at is not None
        received = order.amount - order.refunded if paid else Money("CNY", 0)
        body = {
            "trade_no": trade.trade_no,
            "out_trade_no": order.out_trade_no,
            "trade_status": trade_status(tx, order),
            "total_amount": yuan(order.amount),
            "receipt_amount": yuan(received),
            "buyer_pay_amount": yuan(order.amount if paid else Money("CNY", 0)),
            "point_amount": "0.00",
            "invoice_amount": yuan(received),
        }
        if order.paid_at is not None:
            body["send_pay_date"] = beijing_time(order.paid_at)
        return body

    return db.run(run)


def close(db: Database, call: Call) -> dict[str, str]:
    def run(tx: Tx) -> dict[str, str]:
        order, trade = _found(tx, call)
        try:
            payments.close_order(tx, call.app.merchant_id, order.id)
        except QianbaoError:
            raise GatewayRefusal(
                BUSINESS, "ACQ.TRADE_STATUS_ERROR", N_("A paid trade cannot be closed.")
            ) from None
        return {"trade_no": trade.trade_no, "out_trade_no": order.out_trade_no}

    return db.run(run)


def cancel(db: Database, call: Call) -> dict[str, str]:
    """Alipay's cancel: an unpaid trade is closed; a paid one refunded in full."""
    order, trade = db.run(lambda tx: _found(tx, call))
    body = {"trade_no": trade.trade_no, "out_trade_no": order.out_trade_no, "retry_flag": "N"}
    if order.status == "WAIT_BUYER_PAY":
        db.run(lambda tx: payments.close_order(tx, call.app.merchant_id, order.id))
        return {**body, "action": "close"}
    if order.status == "TRADE_CLOSED":
        return {**body, "action": "close" if order.paid_at is None else "refund"}
    left = order.amount - order.refunded
    if left.minor > 0:
        _refund_money(db, call, order, f"cancel-{trade.trade_no}", left)
    return {**body, "action": "refund"}


# --- refunds -----------------------------------------------------------------------------


def refund(db: Database, call: Call) -> dict[str, str]:
    """One refund per out_request_no (out_trade_no when absent, Alipay's full refund);
    the same number again answers the same refund with fund_change N; with another
    amount, ACQ.DISCORDANT_REPEAT_REQUEST."""
    amount = parse_yuan(call.biz.get("refund_amount"), "refund_amount")
    order, trade = db.run(lambda tx: _found(tx, call))
    request_no = _text(call, "out_request_no", required=False) or order.out_trade_no
    if db.run(lambda tx: trade_status(tx, order)) == "TRADE_FINISHED":
        raise GatewayRefusal(
            BUSINESS, "ACQ.TRADE_HAS_FINISHED", N_("The refund period of this trade is over.")
        )
    before = db.run(lambda tx: _refund_named(tx, order.id, request_no))
    done = _refund_money(db, call, order, request_no, amount)
    after = db.run(lambda tx: payments.get_order(tx, order.id))
    repeated = before is not None and before.status == "succeeded"
    return {
        "trade_no": trade.trade_no,
        "out_trade_no": order.out_trade_no,
        "fund_change": "N" if repeated or done.status == "failed" else "Y",
        "refund_fee": yuan(after.refunded),
        "send_back_fee": yuan(done.amount),
        "gmt_refund_pay": beijing_time(db.run(lambda tx: tx.now())),
    }


REFUND_REFUSALS: Final[Mapping[str, tuple[str, str]]] = {
    "idempotency.mismatch": (
        "ACQ.DISCORDANT_REPEAT_REQUEST",
        N_("This out_request_no was used for a refund of another amount."),
    ),
    "refund.too_much": (
        "ACQ.REASON_TRADE_REFUND_FEE_ERR",
        N_("The refund amount is more than what is left to refund."),
    ),
    "refund.amount": ("ACQ.INVALID_PARAMETER", N_("The refund amount is invalid.")),
    "refund.request_no": ("ACQ.INVALID_PARAMETER", N_("The out_request_no is invalid.")),
}


def _refund_money(
    db: Database, call: Call, order: OrderView, request_no: str, amount: Money
) -> refunds.RefundView:
    if order.status == "TRADE_CLOSED" and order.paid_at is None:
        raise GatewayRefusal(BUSINESS, "ACQ.TRADE_HAS_CLOSE", N_("The trade is closed."))
    if order.status == "WAIT_BUYER_PAY":
        raise GatewayRefusal(BUSINESS, "ACQ.TRADE_STATUS_ERROR", N_("The trade has not been paid."))
    try:
        return refunds.refund(db, call.app.merchant_id, order.id, request_no, amount)
    except QianbaoError as error:
        sub = REFUND_REFUSALS.get(error.code)
        if sub is not None:
            raise GatewayRefusal(BUSINESS, *sub) from None
        if error.code == "refund.not_refundable":
            raise GatewayRefusal(
                BUSINESS, "ACQ.TRADE_HAS_CLOSE", N_("The trade is closed or fully refunded.")
            ) from None
        log.warning("gateway refund refused: %s", error.code)
        raise GatewayRefusal(
            UNAVAILABLE, "ACQ.SYSTEM_ERROR", N_("The refund could not be made; try again.")
        ) from None


def _refund_named(tx: Tx, order_id: uuid.UUID, request_no: str) -> refunds.RefundView | None:
    for row in refunds.order_refunds(tx, order_id):
        if row.out_request_no == request_no and row.status != "failed":
            return row
    return None


def refund_query(db: Database, call: Call) -> dict[str, str]:
    """Alipay's answer: the refund's data when it is done; none when there is no such
    refund (yet)."""

    def run(tx: Tx) -> dict[str, str]:
        order, trade = _found(tx, call)
        request_no = _text(call, "out_request_no", required=False) or order.out_trade_no
        body = {"trade_no": trade.trade_no, "out_trade_no": order.out_trade_no}
        found = _refund_named(tx, order.id, request_no)
        if found is None or found.status != "succeeded":
            return body
        return {
            **body,
            "out_request_no": request_no,
            "total_amount": yuan(order.amount),
            "refund_amount": yuan(found.amount),
            "refund_status": "REFUND_SUCCESS",
        }

    return db.run(run)


def bill_download_url(db: Database, call: Call) -> dict[str, str]:
    """A link to the day's trade bill (CSV), valid for ``gateway_bill_link_seconds``."""

    def run(tx: Tx) -> dict[str, str]:
        today = tx.now().astimezone(BEIJING).date()
        day = bills.bill_day(call.biz.get("bill_date"), today)
        bill_type = _text(call, "bill_type")
        return {"bill_download_url": bills.download_url(tx, call.app.app_id, bill_type, day)}

    return db.run(run)


METHODS: Final[Mapping[str, Callable[[Database, Call], dict[str, str]]]] = {
    "alipay.trade.precreate": precreate,
    "alipay.trade.pay": barcode_pay,
    "alipay.trade.query": query,
    "alipay.trade.refund": refund,
    "alipay.trade.fastpay.refund.query": refund_query,
    "alipay.trade.close": close,
    "alipay.trade.cancel": cancel,
    "alipay.data.dataservice.bill.downloadurl.query": bill_download_url,
    "alipay.system.oauth.token": lambda db, call: oauth.token(db, call.app.app_id, call.params),
    "alipay.user.info.share": lambda db, call: oauth.user_info(db, call.app.app_id, call.params),
}


# --- back to the shop --------------------------------------------------------------------


def return_to_shop(tx: Tx, order_id: uuid.UUID) -> str | None:
    """Once a page-pay trade is paid, the person goes to its return_url with Alipay's
    signed parameters (signed as notifications are: without sign and sign_type)."""
    trade = tx.session.get(GatewayTrade, order_id)
    if trade is None or not trade.return_url:
        return None
    order = payments.get_order(tx, order_id)
    if order.paid_at is None:
        return None
    params = {
        "method": f"{_page_method(trade.product_code)}.return",
        "app_id": trade.app_id,
        "auth_app_id": trade.app_id,
        "charset": "utf-8",
        "version": "1.0",
        "timestamp": beijing_time(tx.now()),
        "trade_no": trade.trade_no,
        "out_trade_no": order.out_trade_no,
        "total_amount": yuan(order.amount),
        "sign_type": "RSA2",
    }
    text = signing.sign_content(params, exclude=("sign", "sign_type"))
    params["sign"] = signing.sign(merchants.platform_signer(tx), text)
    separator = "&" if "?" in trade.return_url else "?"
    return trade.return_url + separator + urlencode(params)


def _page_method(product_code: str) -> str:
    return PAGE_METHODS[1] if product_code == "QUICK_WAP_WAY" else PAGE_METHODS[0]


payments.add_return_page(return_to_shop)
