"""The shop's pages: catalogue, sign-up and sign-in, the account page with its Qianbao
link, orders, and the callback from Qianbao.

Every visitor has a server-side session (an opaque cookie); every form carries the
session's CSRF token. A refusal is shown on the page it came from, as a 4xx.
"""

from __future__ import annotations

import hmac
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

import qrcode
import qrcode.image.svg
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from marketplace import payments, service, store
from marketplace.catalog import PRODUCTS, format_cny, product
from marketplace.i18n import (
    HTML_LANG,
    LANGUAGE_NAMES,
    LANGUAGES,
    N_,
    Language,
    from_accept_language,
    parse_language,
    translate,
)
from marketplace.qianbao_client import QianbaoClient
from marketplace.service import ShopError
from marketplace.settings import Settings
from marketplace.trade_client import TradeClient, yuan

SESSION_COOKIE: Final = "shop_session"
LANGUAGE_COOKIE: Final = "shop_lang"
TEMPLATES: Final = Jinja2Templates(directory=Path(__file__).parent / "templates")
ROUTE_NAMES: Final[Mapping[str, str]] = {
    "passport_chip": N_("passport chip"),
    "passport_page": N_("passport photo page"),
    "bank_card": N_("mainland bank card"),
    "other": N_("Qianbao"),
}

router = APIRouter()


def qr_svg(text: str) -> Markup:
    """``text`` as a QR code, an inline SVG drawn here (no image service)."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, border=4)
    return Markup(image.to_string(encoding="unicode"))  # noqa: S704 - drawn from our own URL


@dataclass(frozen=True)
class Visit:
    """Who is asking, in which language, with which session."""

    token: str
    session: store.Session
    new_session: bool
    language: Language
    settings: Settings
    client: QianbaoClient

    def _(self, message: str, params: Mapping[str, object] | None = None) -> str:
        return translate(self.language, message, params)

    @property
    def database(self) -> Path:
        return self.settings.database


def now() -> int:
    return int(time.time())


def visit(request: Request) -> Visit:
    settings: Settings = request.app.state.settings
    language = parse_language(request.cookies.get(LANGUAGE_COOKIE)) or from_accept_language(
        request.headers.get("accept-language")
    )
    token = request.cookies.get(SESSION_COOKIE, "")
    with store.transaction(settings.database) as db:
        session = store.session_by_token(db, token, now()) if token else None
        new = session is None
        if session is None:
            token = service.open_session(db, settings, None, now())
            session = store.session_by_token(db, token, now())
            assert session is not None
    return Visit(token, session, new, language, settings, request.app.state.client)


def with_cookie(response: Response, current: Visit, token: str | None = None) -> Response:
    """Sets the session cookie when the visit started a session (or signed in)."""
    if token is not None or current.new_session:
        response.set_cookie(
            SESSION_COOKIE,
            token or current.token,
            max_age=current.settings.session_ttl_seconds,
            httponly=True,
            samesite="lax",
            secure=current.settings.secure_cookies,
        )
    return response


def render(
    request: Request, current: Visit, template: str, status_code: int = 200, **context: Any
) -> Response:
    account = None
    if current.session.account_id is not None:
        with store.transaction(current.database) as db:
            account = store.account_by_id(db, current.session.account_id)
    page = TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "_": current._,
            "lang": current.language,
            "html_lang": HTML_LANG[current.language],
            "languages": [(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
            "csrf_token": current.session.csrf_token,
            "account": account,
            "cny": format_cny,
            **context,
        },
        status_code=status_code,
    )
    return with_cookie(page, current)


def redirect(current: Visit, to: str, token: str | None = None) -> Response:
    return with_cookie(RedirectResponse(to, status_code=303), current, token)


def check_csrf(current: Visit, submitted: str) -> None:
    if not hmac.compare_digest(submitted, current.session.csrf_token):
        raise ShopError(
            "csrf.mismatch", N_("This form has expired. Reload the page and try again.")
        )


def refusal(
    request: Request, current: Visit, template: str, error: ShopError, **context: Any
) -> Response:
    status = 409 if error.code in {"account.exists", "link.other_account"} else 400
    if error.code == "qianbao.unavailable":
        status = 503
    message = current._(error.message, error.params)
    return render(
        request, current, template, status, error=message, error_code=error.code, **context
    )


# --- catalogue ---


@router.get("/", response_class=HTMLResponse)
def catalogue(request: Request) -> Response:
    current = visit(request)
    return render(request, current, "catalogue.html", products=PRODUCTS, **account_state(current))


@router.post("/language")
def choose_language(
    request: Request, lang: Annotated[str, Form()], back: Annotated[str, Form()] = "/"
) -> Response:
    current = visit(request)
    target = back if back.startswith("/") and not back.startswith("//") else "/"
    response = redirect(current, target)
    language = parse_language(lang)
    if language is not None:
        response.set_cookie(LANGUAGE_COOKIE, language, max_age=365 * 24 * 3600, samesite="lax")
    return response


# --- shop accounts ---


@router.get("/signup", response_class=HTMLResponse)
def signup_page(request: Request) -> Response:
    return render(request, visit(request), "signup.html")


def password_session(
    request: Request,
    template: str,
    email: str,
    csrf_token: str,
    account_of: Callable[[sqlite3.Connection, Settings], int],
) -> Response:
    """The sign-up and sign-in forms: ``account_of`` names the account (or refuses), which
    then gets a new session; a refusal is shown again on ``template``, email kept."""
    current = visit(request)
    try:
        check_csrf(current, csrf_token)
        with store.transaction(current.database) as db:
            account_id = account_of(db, current.settings)
            token = service.open_session(db, current.settings, account_id, now())
    except ShopError as error:
        return refusal(request, current, template, error, email=email)
    return redirect(current, "/account", token)


@router.post("/signup")
def signup(
    request: Request,
    email: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    def new_account(db: sqlite3.Connection, settings: Settings) -> int:
        return service.sign_up(db, settings, email, password, now())

    return password_session(request, "signup.html", email, csrf_token, new_account)


@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request) -> Response:
    return render(request, visit(request), "signin.html")


@router.post("/signin")
def signin(
    request: Request,
    email: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    def known_account(db: sqlite3.Connection, settings: Settings) -> int:
        return service.sign_in(db, email, password)

    return password_session(request, "signin.html", email, csrf_token, known_account)


@router.post("/signout")
def signout(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    current = visit(request)
    if hmac.compare_digest(csrf_token, current.session.csrf_token):
        with store.transaction(current.database) as db:
            store.delete_session(db, current.token)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


# --- the account page and its Qianbao link ---


def account_state(current: Visit) -> dict[str, Any]:
    """What every page shows of the account: its link, the restriction, the badge, and
    (for the account page) its orders."""
    if current.session.account_id is None:
        return {"link": None, "may_order": False, "badge": None, "orders": [], "product": product}
    with store.transaction(current.database) as db:
        link = store.link_of(db, current.session.account_id)
        orders = store.orders_of(db, current.session.account_id)
    return {
        "link": link,
        "may_order": service.may_order(link),
        "badge": badge(current, link),
        "orders": orders,
        "product": product,
    }


def badge(current: Visit, link: store.Link | None) -> str | None:
    if link is None or not link.verified:
        return None
    route = current._(ROUTE_NAMES.get(link.route or "other", "Qianbao"))
    return current._("verified via Qianbao ({route})", {"route": route})


def refreshed_link(current: Visit, account_id: int, force: bool) -> str | None:
    """Checks the link at Qianbao when due (or asked); returns a message when Qianbao
    could not be reached."""
    with service.REFRESH_LOCK:
        with store.transaction(current.database) as db:
            link = store.link_of(db, account_id)
        if link is None or not link.active:
            return None
        if not force and not service.link_due(link, current.settings, now()):
            return None
        try:
            checked = service.check_link(current.client, link, now())
        except ShopError as error:
            return current._(error.message, error.params)
        with store.transaction(current.database) as db:
            store.save_link(db, checked)
    return None


def signed_in(current: Visit) -> int | None:
    return current.session.account_id


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request) -> Response:
    current = visit(request)
    account_id = signed_in(current)
    if account_id is None:
        return redirect(current, "/signin")
    warning = refreshed_link(current, account_id, force=False)
    return render(request, current, "account.html", warning=warning, **account_state(current))


@router.post("/account/check-link")
def check_link_now(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    current = visit(request)
    account_id = signed_in(current)
    if account_id is None:
        return redirect(current, "/signin")
    try:
        check_csrf(current, csrf_token)
    except ShopError as error:
        return refusal(request, current, "account.html", error, **account_state(current))
    warning = refreshed_link(current, account_id, force=True)
    if warning is not None:
        state = account_state(current)
        return render(request, current, "account.html", 503, warning=warning, **state)
    return redirect(current, "/account")


def start_at_qianbao(request: Request, csrf_token: str, purpose: str) -> Response:
    current = visit(request)
    account_id = signed_in(current)
    if purpose == service.PURPOSE_LINK and account_id is None:
        return redirect(current, "/signin")
    template = "account.html" if purpose == service.PURPOSE_LINK else "signin.html"
    try:
        check_csrf(current, csrf_token)
        with store.transaction(current.database) as db:
            url = service.start_login(db, current.client, current.token, purpose, account_id, now())
    except ShopError as error:
        return refusal(request, current, template, error, **account_state(current))
    return redirect(current, url)


@router.post("/auth/qianbao/link")
def link_start(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    return start_at_qianbao(request, csrf_token, service.PURPOSE_LINK)


@router.post("/auth/qianbao/signin")
def signin_start(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    return start_at_qianbao(request, csrf_token, service.PURPOSE_SIGN_IN)


@router.get("/auth/qianbao/callback")
def callback(request: Request) -> Response:
    current = visit(request)
    response = dict(request.query_params)
    try:
        with store.transaction(current.database) as db:
            pending = service.take_pending_login(
                db, current.settings, response.get("state", ""), current.token, now()
            )
        # Qianbao is asked between the two transactions, never inside one.
        login = service.exchange(current.client, pending, response)
        with store.transaction(current.database) as db:
            finished = service.complete_login(db, pending, login, now())
            token = None
            if finished.purpose == service.PURPOSE_SIGN_IN:
                token = service.open_session(db, current.settings, finished.account_id, now())
    except ShopError as error:
        template = "signin.html" if current.session.account_id is None else "account.html"
        return refusal(request, current, template, error, **account_state(current))
    return redirect(current, "/account", token)


# --- orders ---


@router.post("/orders")
def order(
    request: Request,
    product_id: Annotated[str, Form()],
    quantity: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    current = visit(request)
    account_id = signed_in(current)
    if account_id is None:
        return redirect(current, "/signin")
    try:
        check_csrf(current, csrf_token)
        with store.transaction(current.database) as db:
            order_id = service.place_order(
                db, account_id, product_id, service.parse_quantity(quantity), now()
            )
    except ShopError as error:
        state = account_state(current)
        return refusal(request, current, "catalogue.html", error, products=PRODUCTS, **state)
    return redirect(current, f"/orders/{order_id}")


# --- paying and refunding through Qianbao's trade API ---

TRADE_STATES: Final[Mapping[str, str]] = {
    "WAIT_BUYER_PAY": N_("Waiting for payment"),
    "TRADE_SUCCESS": N_("Paid"),
    "TRADE_CLOSED": N_("Closed"),
    "TRADE_FINISHED": N_("Finished"),
}


def trade(request: Request) -> TradeClient:
    client: TradeClient = request.app.state.trade
    return client


def order_page(
    request: Request,
    current: Visit,
    order: store.Order,
    status_code: int = 200,
    **context: Any,
) -> Response:
    with store.transaction(current.database) as db:
        refunds = store.refunds_of(db, order.id)
        notifications = store.notifications_of(db, order.id)
    return render(
        request,
        current,
        "order.html",
        status_code,
        order=order,
        item=product(order.product_id),
        refunds=refunds,
        notifications=notifications,
        trade_state=current._(TRADE_STATES.get(order.trade_status or "", N_("Not paid"))),
        qr_svg=qr_svg(order.qr_code) if order.qr_code and not order.paid else None,
        yuan=yuan,
        **context,
    )


def order_refusal(
    request: Request, current: Visit, order: store.Order, error: ShopError
) -> Response:
    status = 503 if error.code == "payment.unavailable" else 400
    message = current._(error.message, error.params)
    return order_page(request, current, order, status, error=message, error_code=error.code)


def signed_in_order(current: Visit, order_id: int) -> store.Order | None:
    account_id = signed_in(current)
    if account_id is None:
        return None
    try:
        return payments.own_order(current.database, account_id, order_id)
    except ShopError:
        return None


@router.get("/orders/{order_id}", response_class=HTMLResponse)
def order_view(request: Request, order_id: int) -> Response:
    current = visit(request)
    order = signed_in_order(current, order_id)
    if order is None:
        return redirect(current, "/account" if signed_in(current) else "/signin")
    if order.out_trade_no and not order.paid:
        try:  # a QR code paid on a phone: the page asks on each visit until paid
            order = payments.sync(current.settings, trade(request), order, now())
        except ShopError as error:
            return order_refusal(request, current, order, error)
    return order_page(request, current, order)


OrderAction = Callable[[Settings, TradeClient, store.Order], str]
"""A button on an order's page: it does its part at Qianbao and names the page to go to."""


def on_order(request: Request, order_id: int, csrf_token: str, action: OrderAction) -> Response:
    """Runs ``action`` on the signed-in buyer's own order; a refusal is shown on the
    order's page."""
    current = visit(request)
    order = signed_in_order(current, order_id)
    if order is None:
        return redirect(current, "/signin")
    try:
        check_csrf(current, csrf_token)
        target = action(current.settings, trade(request), order)
    except ShopError as error:
        return order_refusal(request, current, order, error)
    return redirect(current, target)


@router.post("/orders/{order_id}/pay")
def order_pay(request: Request, order_id: int, csrf_token: Annotated[str, Form()] = "") -> Response:
    # On to Qianbao's cashier.
    return on_order(request, order_id, csrf_token, payments.page_pay)


@router.post("/orders/{order_id}/qr")
def order_qr(request: Request, order_id: int, csrf_token: Annotated[str, Form()] = "") -> Response:
    def show_qr(settings: Settings, client: TradeClient, order: store.Order) -> str:
        payments.qr_pay(settings, client, order)
        return f"/orders/{order.id}"

    return on_order(request, order_id, csrf_token, show_qr)


@router.post("/orders/{order_id}/refund")
def order_refund(
    request: Request,
    order_id: int,
    amount: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    def give_back(settings: Settings, client: TradeClient, order: store.Order) -> str:
        payments.refund(settings, client, order, amount, now())
        return f"/orders/{order.id}"

    return on_order(request, order_id, csrf_token, give_back)


@router.get("/payments/return")
def payment_return(request: Request) -> Response:
    """Back from Qianbao's cashier with Alipay's signed return parameters."""
    current = visit(request)
    try:
        order = payments.returned(
            current.settings, trade(request), dict(request.query_params), now()
        )
    except ShopError as error:
        return refusal(request, current, "account.html", error, **account_state(current))
    return redirect(current, f"/orders/{order.id}")


@router.post("/payments/notify", response_class=PlainTextResponse)
async def payment_notify(request: Request) -> str:
    """Qianbao's trade_status_sync (a machine's POST, no session): ``success`` once
    recorded, so that Qianbao stops retrying."""
    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    settings: Settings = request.app.state.settings
    return await run_in_threadpool(payments.notified, settings, trade(request), fields, now())
