"""The merchant portal's pages (/merchant/...) and the back office's merchant pages.

A merchant user signs in with the portal's own cookie (``qb_merchant``, HttpOnly,
SameSite strict, sent only to /merchant); every form carries the CSRF token like the
other pages. Each handler asks ``gateway.trades`` for the signed-in user's merchant only,
so another merchant's trade is the same 404 as an unknown one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from qianbao.errors import InvalidInput, QianbaoError
from qianbao.gate import MERCHANT_COOKIE, signed_in_merchant, signed_in_staff
from qianbao.i18n import N_
from qianbao.identity.staff import Staff
from qianbao.money import Money
from qianbao.openplatform.gateway import trades
from qianbao.openplatform.gateway.protocol import BEIJING, beijing_time
from qianbao.openplatform.merchants import accounts
from qianbao.openplatform.merchants import service as merchants
from qianbao.openplatform.merchants.accounts import MerchantUserView, NewUser
from qianbao.wallet.payments import refunds
from qianbao.web.pages import CsrfField, DbDep
from qianbao.web.render import check_csrf, page, redirect
from qianbao.web.sign_in_pages import SignInPages

router = APIRouter(prefix="/merchant", include_in_schema=False)
admin_router = APIRouter(prefix="/admin/merchants", include_in_schema=False)
Text = Annotated[str, Form()]
MerchantDep = Annotated[MerchantUserView, Depends(signed_in_merchant)]
StaffDep = Annotated[Staff, Depends(signed_in_staff)]
BILL_DAYS_BACK: Final = 90  # the bill page offers this many closed days
_SIGN_IN: Final = SignInPages(
    cookie=MERCHANT_COOKIE,
    path="/merchant",
    template="merchant_login.html",
    login_field="login",
    home="/merchant/orders",
    sign_in=lambda db, login, password: accounts.open_session(db, login, password, "page").token,
    sign_out=accounts.sign_out,
)


def _portal(request: Request, template: str, user: MerchantUserView, **context: object) -> Response:
    error = context.get("error")
    status = error.status if isinstance(error, QianbaoError) else 200
    return page(request, template, status=status, merchant_user=user, bj=beijing_time, **context)


# --- signing in -------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request) -> Response:
    return _SIGN_IN.form(request)


@router.post("/login")
def login(
    request: Request, db: DbDep, csrf: CsrfField = "", login: Text = "", password: Text = ""
) -> Response:
    return _SIGN_IN.submit(request, db, csrf, login, password)


@router.post("/logout")
def logout(request: Request, db: DbDep, csrf: CsrfField = "") -> Response:
    return _SIGN_IN.leave(request, db, csrf)


@router.get("/apply")
def apply_page(request: Request) -> Response:
    return page(request, "merchant_apply.html", form={})


@router.post("/apply")
def apply(
    request: Request,
    db: DbDep,
    csrf: CsrfField = "",
    shop_name: Text = "",
    contact_name: Text = "",
    email: Text = "",
    website: Text = "",
) -> Response:
    check_csrf(request, csrf)
    form = {"shop_name": shop_name, "contact_name": contact_name, "email": email}
    form["website"] = website
    try:
        db.run(lambda tx: accounts.apply(tx, shop_name, contact_name, email, website))
    except QianbaoError as error:
        return page(request, "merchant_apply.html", status=error.status, error=error, form=form)
    return page(request, "merchant_apply.html", form={}, applied=True)


# --- orders -----------------------------------------------------------------------------


@router.get("")
def portal_home(request: Request, user: MerchantDep) -> Response:
    return redirect(request, "/merchant/orders")


@router.get("/orders")
def orders(
    request: Request,
    db: DbDep,
    user: MerchantDep,
    since: str = "",
    until: str = "",
    status: str = "",
) -> Response:
    try:
        first, last = trades.parse_day(since, "since"), trades.parse_day(until, "until")
        status = trades.check_state(status)
    except QianbaoError as error:
        return _portal(
            request,
            "merchant_orders.html",
            user,
            error=error,
            found=[],
            states=trades.TRADE_STATES,
            filters={},
        )
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
    filters = {"since": since, "until": until, "status": status}
    return _portal(
        request,
        "merchant_orders.html",
        user,
        found=found,
        states=trades.TRADE_STATES,
        filters=filters,
    )


def _order_page(
    request: Request,
    db: DbDep,
    user: MerchantUserView,
    trade_no: str,
    *,
    error: QianbaoError | None = None,
    notice: str | None = None,
) -> Response:
    detail = db.run(lambda tx: trades.trade_detail(tx, user.merchant_id, trade_no))
    return _portal(request, "merchant_order.html", user, detail=detail, error=error, notice=notice)


@router.get("/orders/{trade_no}")
def order(request: Request, db: DbDep, user: MerchantDep, trade_no: str) -> Response:
    return _order_page(request, db, user, trade_no)


@router.post("/orders/{trade_no}/refunds")
def refund(
    request: Request,
    db: DbDep,
    user: MerchantDep,
    trade_no: str,
    csrf: CsrfField = "",
    amount: Text = "",
    reason: Text = "",
    out_request_no: Text = "",
) -> Response:
    check_csrf(request, csrf)
    try:
        trades.refund(
            db,
            user.merchant_id,
            trade_no,
            out_request_no,
            Money.parse(amount),
            actor=f"merchant_user:{user.id}",
            reason=reason.strip()[:256],
        )
    except QianbaoError as error:
        if error.status == 404:
            raise
        return _order_page(request, db, user, trade_no, error=error)
    return redirect(request, f"/merchant/orders/{trade_no}")


@router.post("/orders/{trade_no}/notifications/{notification_id}/resend")
def resend(
    request: Request,
    db: DbDep,
    user: MerchantDep,
    trade_no: str,
    notification_id: uuid.UUID,
    csrf: CsrfField = "",
) -> Response:
    check_csrf(request, csrf)
    db.run(lambda tx: trades.resend(tx, user.merchant_id, trade_no, notification_id))
    return _order_page(
        request, db, user, trade_no, notice=N_("The notification will be sent again now.")
    )


@router.get("/refunds")
def refunds_page(
    request: Request, db: DbDep, user: MerchantDep, since: str = "", until: str = ""
) -> Response:
    today = db.run(lambda tx: tx.now().astimezone(BEIJING).date())
    try:
        first = trades.parse_day(since, "since") or today - timedelta(days=30)
        last = trades.parse_day(until, "until") or today
    except QianbaoError as error:
        return _portal(request, "merchant_refunds.html", user, error=error, found=[], filters={})
    found = db.run(
        lambda tx: refunds.merchant_refunds_between(
            tx,
            user.merchant_id,
            trades.beijing_day_start(first),
            trades.beijing_day_start(last + timedelta(days=1)),
        )
    )
    filters = {"since": first.isoformat(), "until": last.isoformat()}
    return _portal(request, "merchant_refunds.html", user, found=found, filters=filters)


# --- keys -------------------------------------------------------------------------------


def _keys_page(
    request: Request, db: DbDep, user: MerchantUserView, error: QianbaoError | None = None
) -> Response:
    apps = db.run(lambda tx: merchants.apps_of(tx, user.merchant_id))
    platform = db.run(merchants.platform_keys)
    return _portal(request, "merchant_keys.html", user, apps=apps, platform=platform, error=error)


@router.get("/keys")
def keys(request: Request, db: DbDep, user: MerchantDep) -> Response:
    return _keys_page(request, db, user)


@router.post("/keys/{app_id}")
def upload_key(
    request: Request,
    db: DbDep,
    user: MerchantDep,
    app_id: str,
    csrf: CsrfField = "",
    public_key: Text = "",
) -> Response:
    check_csrf(request, csrf)
    try:
        db.run(lambda tx: merchants.set_merchant_app_key(tx, user.merchant_id, app_id, public_key))
    except QianbaoError as error:
        if error.status == 404:
            raise
        return _keys_page(request, db, user, error)
    return redirect(request, "/merchant/keys")


@router.get("/keys/platform.pem")
def platform_key(db: DbDep, user: MerchantDep) -> Response:
    keys = db.run(merchants.platform_keys)
    text = "".join(key.public_key for key in keys if key.state == "current")
    return Response(
        text,
        media_type="application/x-pem-file",
        headers={"Content-Disposition": 'attachment; filename="qianbao_public_key.pem"'},
    )


# --- daily bills ------------------------------------------------------------------------


@router.get("/bills")
def bills(request: Request, db: DbDep, user: MerchantDep) -> Response:
    today = db.run(lambda tx: tx.now().astimezone(BEIJING).date())
    days = [today - timedelta(days=n) for n in range(1, BILL_DAYS_BACK + 1)]
    return _portal(request, "merchant_bills.html", user, days=days, latest=days[0])


@router.get("/bills/download")
def download_bill(db: DbDep, user: MerchantDep, day: str = "") -> Response:
    chosen = trades.parse_day(day, "day")
    if chosen is None:
        raise InvalidInput(
            "merchant_portal.date", N_("Write a date as yyyy-mm-dd."), details={"field": "day"}
        )
    bill = db.run(lambda tx: trades.daily_bill(tx, user.merchant_id, chosen))
    return Response(
        bill.text.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{bill.filename}"',
            "Cache-Control": "no-store",
        },
    )


# --- the back office: applications and portal users --------------------------------------


@dataclass(frozen=True)
class Made:
    """What an approval or a new user shows the operator once."""

    merchant: str
    login: str
    password: str


def _made(new: NewUser) -> Made:
    return Made(new.user.merchant, new.user.login, new.password)


def _admin_page(
    request: Request,
    db: DbDep,
    member: Staff,
    *,
    error: QianbaoError | None = None,
    made: Made | None = None,
) -> Response:
    return page(
        request,
        "admin_merchants.html",
        status=error.status if error else 200,
        staff=member,
        pending=db.run(accounts.applications),
        error=error,
        made=made,
        bj=beijing_time,
    )


@admin_router.get("")
def merchants_page(request: Request, db: DbDep, member: StaffDep) -> Response:
    return _admin_page(request, db, member)


@admin_router.post("/applications/{application_id}/approve")
def approve(
    request: Request, db: DbDep, member: StaffDep, application_id: uuid.UUID, csrf: CsrfField = ""
) -> Response:
    check_csrf(request, csrf)
    try:
        new = accounts.approve(db, member.id, application_id)
    except QianbaoError as error:
        return _admin_page(request, db, member, error=error)
    return _admin_page(request, db, member, made=_made(new))


@admin_router.post("/applications/{application_id}/reject")
def reject(
    request: Request, db: DbDep, member: StaffDep, application_id: uuid.UUID, csrf: CsrfField = ""
) -> Response:
    check_csrf(request, csrf)
    try:
        db.run(lambda tx: accounts.reject(tx, member.id, application_id))
    except QianbaoError as error:
        return _admin_page(request, db, member, error=error)
    return redirect(request, "/admin/merchants")


@admin_router.post("/users")
def create_user(
    request: Request,
    db: DbDep,
    member: StaffDep,
    csrf: CsrfField = "",
    merchant: Text = "",
    login: Text = "",
) -> Response:
    check_csrf(request, csrf)
    try:
        new = accounts.create_user(db, merchant, login, created_by=member.id)
    except QianbaoError as error:
        return _admin_page(request, db, member, error=error)
    return _admin_page(request, db, member, made=_made(new))
