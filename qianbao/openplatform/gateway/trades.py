"""A merchant's own view of its gateway trades, for the merchant portal and the merchant
API: the list with filters, one trade with its refunds and notification log, a refund
(through the wallet's refunds, as ``alipay.trade.refund``), a notification sent again,
and the daily bill. Another merchant's trade is the same 404 as an unknown one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final

from sqlalchemy import select

from qianbao import audit
from qianbao.db import Database, Tx
from qianbao.errors import Conflict, InvalidInput, NotFound
from qianbao.i18n import N_
from qianbao.money import Money
from qianbao.openplatform.gateway import bills, notifications
from qianbao.openplatform.gateway.models import GatewayTrade
from qianbao.openplatform.gateway.protocol import BEIJING
from qianbao.openplatform.gateway.service import trade_status
from qianbao.openplatform.merchants import service as merchants_service
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments
from qianbao.wallet.payments.service import OrderView

TRADE_STATES: Final = ("WAIT_BUYER_PAY", "TRADE_SUCCESS", "TRADE_CLOSED", "TRADE_FINISHED")


@dataclass(frozen=True)
class TradeView:
    trade_no: str
    app_id: str
    status: str  # Alipay's trade state
    order: OrderView
    notify_url: str | None


@dataclass(frozen=True)
class TradeDetail:
    trade: TradeView
    refunds: list[refunds.RefundView]
    notifications: list[notifications.NotificationView]


def _not_found() -> NotFound:
    return NotFound("trade.not_found", N_("There is no such trade."))


def parse_day(text: str, field: str) -> date | None:
    """A Beijing day a merchant typed (yyyy-mm-dd); None when left empty."""
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            "merchant_portal.date", N_("Write a date as yyyy-mm-dd."), details={"field": field}
        ) from None


def check_state(text: str) -> str:
    """One of Alipay's trade states as a filter; empty for all."""
    if text and text not in TRADE_STATES:
        raise InvalidInput(
            "merchant_portal.status", N_("Unknown trade state."), details={"field": "status"}
        )
    return text


def beijing_day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=BEIJING)


def merchant_trades(
    tx: Tx,
    merchant_id: uuid.UUID,
    *,
    since: date | None = None,
    until: date | None = None,
    status: str = "",
    limit: int = 100,
) -> list[TradeView]:
    """The merchant's trades made from Beijing day ``since`` to ``until`` (both
    included), newest first, optionally only those in one of Alipay's states."""
    query = select(GatewayTrade).where(GatewayTrade.app_id.in_(_app_ids(tx, merchant_id)))
    if since is not None:
        query = query.where(GatewayTrade.created_at >= beijing_day_start(since))
    if until is not None:
        query = query.where(GatewayTrade.created_at < beijing_day_start(until + timedelta(days=1)))
    found: list[TradeView] = []
    # The state is computed (TRADE_FINISHED is a paid trade past the refund window), so
    # the filter reads on in pages until it has enough.
    offset, page = 0, max(limit, 50)
    while len(found) < limit:
        rows = list(
            tx.session.scalars(
                query.order_by(GatewayTrade.created_at.desc(), GatewayTrade.trade_no)
                .offset(offset)
                .limit(page)
            )
        )
        for row in rows:
            view = _view(tx, row)
            if not status or view.status == status:
                found.append(view)
        if len(rows) < page:
            break
        offset += page
    return found[:limit]


def _app_ids(tx: Tx, merchant_id: uuid.UUID) -> list[str]:
    return [app.app_id for app in merchants_apps(tx, merchant_id)]


def merchants_apps(tx: Tx, merchant_id: uuid.UUID) -> list[merchants_service.AppKeyView]:
    return merchants_service.apps_of(tx, merchant_id)


def _view(tx: Tx, row: GatewayTrade) -> TradeView:
    order = payments.get_order(tx, row.order_id)
    return TradeView(row.trade_no, row.app_id, trade_status(tx, order), order, row.notify_url)


def merchant_trade(tx: Tx, merchant_id: uuid.UUID, trade_no: str) -> TradeView:
    row = tx.session.scalar(select(GatewayTrade).where(GatewayTrade.trade_no == trade_no[:64]))
    if row is None or payments.merchant_order(tx, merchant_id, order_id=row.order_id) is None:
        raise _not_found()
    return _view(tx, row)


def trade_detail(tx: Tx, merchant_id: uuid.UUID, trade_no: str) -> TradeDetail:
    trade = merchant_trade(tx, merchant_id, trade_no)
    return TradeDetail(
        trade,
        refunds.order_refunds(tx, trade.order.id),
        notifications.notifications_of(tx, trade.order.id),
    )


def refund(
    db: Database,
    merchant_id: uuid.UUID,
    trade_no: str,
    request_no: str,
    amount: Money,
    *,
    actor: str,
    reason: str = "",
) -> refunds.RefundView:
    """A refund the merchant asks for itself: the wallet's refund use case (the one
    ``alipay.trade.refund`` uses), one per request number, so a retry moves nothing."""
    trade = db.run(lambda tx: merchant_trade(tx, merchant_id, trade_no))
    if trade.status == "TRADE_FINISHED":
        raise Conflict("trade.finished", N_("The refund period of this trade is over."))
    if trade.order.paid_at is None:
        raise Conflict("trade.not_paid", N_("The trade has not been paid."))
    done = refunds.refund(db, merchant_id, trade.order.id, request_no, amount)

    def record(tx: Tx) -> None:
        audit.record(
            tx,
            actor,
            "trade.refund_asked",
            f"order:{trade.order.id}",
            note=reason,
            details={"out_request_no": done.out_request_no, "status": done.status},
        )

    db.run(record)
    return done


def resend(tx: Tx, merchant_id: uuid.UUID, trade_no: str, notification_id: uuid.UUID) -> None:
    """Send one of the trade's notifications again now (the same notify_id)."""
    trade = merchant_trade(tx, merchant_id, trade_no)
    known = {n.id for n in notifications.notifications_of(tx, trade.order.id)}
    if notification_id not in known:
        raise NotFound("notification.not_found", N_("There is no such notification."))
    notifications.resend(tx, notification_id)


def daily_bill(tx: Tx, merchant_id: uuid.UUID, day: date) -> bills.Bill:
    """The merchant's trade bill of a closed Beijing day, as the gateway's link serves it."""
    today = tx.now().astimezone(BEIJING).date()
    if day >= today:
        raise Conflict("bill.not_closed", N_("A day's bill is ready once the day is over."))
    apps = merchants_apps(tx, merchant_id)
    app_id = apps[0].app_id if apps else "merchant"
    return bills.merchant_trade_bill(tx, merchant_id, app_id, day)
