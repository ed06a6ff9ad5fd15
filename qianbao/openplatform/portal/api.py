"""The merchant API: what the portal does, for a merchant's own tools, under
``/api/v1/merchant``. A merchant user signs in with ``POST /api/v1/merchant/sessions``
and sends the token as ``Authorization: Bearer``; the gate checks it. The handlers call
the portal's use cases (``gateway.trades``), so another merchant's trade is 404 here too.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from qianbao import deps, gate
from qianbao.db import Database, Tx
from qianbao.errors import InvalidInput
from qianbao.i18n import N_
from qianbao.money import Money
from qianbao.openplatform.gateway import trades
from qianbao.openplatform.merchants import accounts
from qianbao.openplatform.merchants import service as merchants
from qianbao.openplatform.merchants.accounts import MerchantUserView
from qianbao.openplatform.portal import schemas
from qianbao.wallet.api import order_out
from qianbao.wallet.payments import refunds
from qianbao.wallet.schemas import AmountOut, RefundOut

router = APIRouter(prefix="/api/v1/merchant", tags=["merchant"])
DbDep = Annotated[Database, Depends(deps.database)]
MERCHANT_BEARER: Final = HTTPBearer(
    scheme_name="merchantBearer",
    bearerFormat="opaque merchant token",
    description="The `token` from POST /api/v1/merchant/sessions (a merchant user's login "
    "and password). A person's or a staff member's token is not one.",
    auto_error=False,
)


def current_merchant_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(MERCHANT_BEARER)] = None,
) -> MerchantUserView:
    return gate.signed_in_merchant(request)


MerchantDep = Annotated[MerchantUserView, Depends(current_merchant_user)]


def _trade_out(trade: trades.TradeView) -> schemas.TradeOut:
    return schemas.TradeOut(
        trade_no=trade.trade_no,
        app_id=trade.app_id,
        trade_status=trade.status,
        order=order_out(trade.order),
    )


def _refund_out(refund: refunds.RefundView) -> RefundOut:
    return RefundOut(
        id=refund.id,
        out_request_no=refund.out_request_no,
        amount=AmountOut.of(refund.amount),
        fee_refunded=AmountOut.of(refund.fee_refunded),
        destination=refund.destination,
    )


@router.post(
    "/sessions",
    response_model=schemas.MerchantSignedInOut,
    status_code=201,
    responses={401: {"description": "Wrong login or password (`merchant_user.login_failed`)."}},
)
def sign_in(body: schemas.MerchantSignInIn, db: DbDep) -> schemas.MerchantSignedInOut:
    """A merchant token for a right login and password (the portal's throttle applies)."""
    signed = accounts.open_session(db, body.login, body.password, "api")
    return schemas.MerchantSignedInOut(
        token=signed.token,
        expires_at=signed.expires_at,
        merchant=signed.user.merchant,
        login=signed.user.login,
    )


@router.delete("/session", status_code=204)
def sign_out(request: Request, db: DbDep, user: MerchantDep) -> Response:
    """End this token."""
    token = gate.bearer_token(request)
    db.run(lambda tx: accounts.sign_out(tx, token, "api"))
    return Response(status_code=204)


@router.get("/orders", response_model=list[schemas.TradeOut])
def orders(
    db: DbDep, user: MerchantDep, since: str = "", until: str = "", status: str = ""
) -> list[schemas.TradeOut]:
    """The merchant's trades, newest first; ``since`` and ``until`` are Beijing days
    (yyyy-mm-dd, both included), ``status`` one of Alipay's trade states."""
    first, last = trades.parse_day(since, "since"), trades.parse_day(until, "until")
    status = trades.check_state(status)
    found = db.run(
        lambda tx: trades.merchant_trades(
            tx,
            user.merchant_id,
            since=first,
            until=last,
            status=status,
            limit=tx.settings.merchant_portal_page_size,
        )
    )
    return [_trade_out(trade) for trade in found]


@router.get("/orders/{trade_no}", response_model=schemas.TradeDetailOut)
def order(db: DbDep, user: MerchantDep, trade_no: str) -> schemas.TradeDetailOut:
    """One trade with its refunds; another merchant's is 404 (`trade.not_found`)."""
    detail = db.run(lambda tx: trades.trade_detail(tx, user.merchant_id, trade_no))
    base = _trade_out(detail.trade)
    return schemas.TradeDetailOut(
        **base.model_dump(), refunds=[_refund_out(refund) for refund in detail.refunds]
    )


@router.post("/orders/{trade_no}/refunds", response_model=schemas.TradeRefundOut, status_code=201)
def refund(
    db: DbDep, user: MerchantDep, trade_no: str, body: schemas.TradeRefundIn
) -> schemas.TradeRefundOut:
    """Give back all or part of a paid trade, the way it was paid (the refund use case
    of ``alipay.trade.refund``): one refund per ``out_request_no``."""
    done = trades.refund(
        db,
        user.merchant_id,
        trade_no,
        body.out_request_no,
        Money.parse(body.amount),
        actor=f"merchant_user:{user.id}",
        reason=body.reason,
    )
    after = db.run(lambda tx: trades.merchant_trade(tx, user.merchant_id, trade_no))
    out = _refund_out(done)
    return schemas.TradeRefundOut(
        **out.model_dump(), status=done.status, refunded=AmountOut.of(after.order.refunded)
    )


@router.get("/orders/{trade_no}/notifications", response_model=list[schemas.NotificationOut])
def order_notifications(
    db: DbDep, user: MerchantDep, trade_no: str
) -> list[schemas.NotificationOut]:
    """The trade's notifications, each with every attempt and the shop's answer."""
    detail = db.run(lambda tx: trades.trade_detail(tx, user.merchant_id, trade_no))
    return [
        schemas.NotificationOut(
            id=notification.id,
            notify_id=notification.notify_id,
            notify_url=notification.notify_url,
            status=notification.status,
            trade_status=notification.fields.get("trade_status", ""),
            attempts=[schemas.AttemptOut(**attempt.__dict__) for attempt in notification.attempts],
        )
        for notification in detail.notifications
    ]


@router.post("/orders/{trade_no}/notifications/{notification_id}/resend", status_code=204)
def resend_notification(
    db: DbDep, user: MerchantDep, trade_no: str, notification_id: uuid.UUID
) -> Response:
    """Send the notification again now, with the same notify_id, on a fresh schedule."""
    db.run(lambda tx: trades.resend(tx, user.merchant_id, trade_no, notification_id))
    return Response(status_code=204)


def _app_out(app: merchants.AppKeyView) -> schemas.AppKeyOut:
    return schemas.AppKeyOut(**app.__dict__)


@router.get("/apps", response_model=list[schemas.AppKeyOut])
def apps(db: DbDep, user: MerchantDep) -> list[schemas.AppKeyOut]:
    """The merchant's apps with their uploaded keys."""
    return [_app_out(app) for app in db.run(lambda tx: merchants.apps_of(tx, user.merchant_id))]


@router.put("/apps/{app_id}/key", response_model=schemas.AppKeyOut)
def upload_key(
    db: DbDep, user: MerchantDep, app_id: str, body: schemas.AppKeyIn
) -> schemas.AppKeyOut:
    """Install the app's new public key; the one it replaces stays valid for
    ``QIANBAO_GATEWAY_APP_KEY_OVERLAP_SECONDS``."""

    def run(tx: Tx) -> merchants.AppKeyView:
        merchants.set_merchant_app_key(tx, user.merchant_id, app_id, body.public_key)
        return next(a for a in merchants.apps_of(tx, user.merchant_id) if a.app_id == app_id)

    return _app_out(db.run(run))


@router.get(
    "/bills/{day}",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "the day's trade bill"}},
)
def bill(db: DbDep, user: MerchantDep, day: str) -> Response:
    """A closed Beijing day's trade bill (yyyy-mm-dd), the gateway's CSV."""
    chosen = trades.parse_day(day, "day")
    if chosen is None:
        raise InvalidInput(
            "merchant_portal.date", N_("Write a date as yyyy-mm-dd."), details={"field": "day"}
        )
    found = db.run(lambda tx: trades.daily_bill(tx, user.merchant_id, chosen))
    return Response(
        found.text.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{found.filename}"'},
    )
