"""Daily bills: ``alipay.data.dataservice.bill.downloadurl.query`` answers a link that
works for a short while (Alipay's links last 30 seconds), and the link serves the day's
trade bill as CSV: every payment and every refund of the merchant in that Beijing day.

The link carries its own credential: the app, the day, the kind of bill and the expiry,
under a keyed hash (``sealing.py``, a key derived for this purpose alone), so no row is
written to serve it and a changed link is refused.
"""

from __future__ import annotations

import base64
import csv
import hmac
import io
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final

from qianbao.db import Tx
from qianbao.errors import NotFound
from qianbao.i18n import N_
from qianbao.openplatform.gateway.models import GatewayTrade
from qianbao.openplatform.gateway.protocol import BEIJING, beijing_time, invalid_parameter, yuan
from qianbao.openplatform.merchants import service as merchants
from qianbao.sealing import SealingError, keyring
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments

PURPOSE: Final = b"gateway-bill-link"
BILL_TYPES: Final = ("trade",)
# Alipay's trade bill columns, in its own words (a shop's parser reads these).
COLUMNS: Final = (
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "订单金额（元）",
    "商家实收（元）",
    "退款批次号/请求号",
)


@dataclass(frozen=True)
class Bill:
    filename: str
    text: str


def bill_day(text: object, today: date) -> date:
    """``yyyy-MM-dd``, a day before today in Beijing (today's bill is not closed)."""
    if not isinstance(text, str):
        raise invalid_parameter("bill_date")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise invalid_parameter("bill_date") from None
    if len(text) != 10 or day >= today:
        raise invalid_parameter("bill_date")
    return day


def download_url(tx: Tx, app_id: str, bill_type: str, day: date) -> str:
    if bill_type not in BILL_TYPES:
        raise invalid_parameter("bill_type")
    expires = int((tx.now() + timedelta(seconds=tx.settings.gateway_bill_link_seconds)).timestamp())
    payload = f"{app_id}.{day.isoformat()}.{bill_type}.{expires}"
    key_id, mac = keyring(tx.settings).keyed_hash(payload.encode(), PURPOSE)
    token = f"{payload}.{key_id}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"
    return f"{tx.settings.public_base_url.rstrip('/')}/gateway/bills/{token}"


def _refused() -> NotFound:
    return NotFound("bill.link", N_("This bill link is not valid or has expired."))


def open_link(tx: Tx, token: str) -> Bill:
    """The bill a link names, if the link is genuine and still valid."""
    parts = token.split(".")
    if len(parts) != 6:
        raise _refused()
    app_id, day_text, _bill_type, expires, key_id, mac_text = parts
    payload = ".".join(parts[:4])
    try:
        _, mac = keyring(tx.settings).keyed_hash(payload.encode(), PURPOSE, key_id)
        given = base64.urlsafe_b64decode(mac_text + "=" * (-len(mac_text) % 4))
    except (SealingError, ValueError):
        raise _refused() from None
    if not hmac.compare_digest(mac, given) or not expires.isdigit():
        raise _refused()
    if int(expires) < tx.now().timestamp():
        raise _refused()
    app = merchants.app(tx, app_id)
    day = date.fromisoformat(day_text)
    return merchant_trade_bill(tx, app.merchant_id, app_id, day)


def merchant_trade_bill(tx: Tx, merchant_id: uuid.UUID, app_id: str, day: date) -> Bill:
    """The merchant's trade bill of a Beijing day, as the link serves it (the portal's
    download too)."""
    name = f"{app_id}_{day.isoformat().replace('-', '')}_trade.csv"
    return Bill(name, _trade_bill(tx, merchant_id, day))


def _trade_bill(tx: Tx, merchant_id: uuid.UUID, day: date) -> str:
    since = datetime.combine(day, time(), tzinfo=BEIJING)
    until = since + timedelta(days=1)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for order in payments.merchant_orders_paid_between(tx, merchant_id, since, until):
        trade = tx.session.get(GatewayTrade, order.id)
        if trade is None:
            continue  # an order the merchant took without the trade API
        writer.writerow(
            (
                trade.trade_no,
                order.out_trade_no,
                "交易",
                order.subject,
                beijing_time(order.created_at),
                beijing_time(order.paid_at),
                yuan(order.amount),
                yuan(order.amount),
                "",
            )
        )
    for order_id, refund in refunds.merchant_refunds_between(tx, merchant_id, since, until):
        trade = tx.session.get(GatewayTrade, order_id)
        if trade is None:
            continue
        order = payments.get_order(tx, order_id)
        writer.writerow(
            (
                trade.trade_no,
                order.out_trade_no,
                "退款",
                order.subject,
                beijing_time(order.created_at),
                beijing_time(refund.created_at),
                yuan(order.amount),
                "-" + yuan(refund.amount),
                refund.out_request_no,
            )
        )
    return out.getvalue()
