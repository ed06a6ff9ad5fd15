"""The shop's pages: catalogue, sign-up and sign-in, the account page with its Qianbao
link, orders, and the callback from Qianbao.

Every visitor has a server-side session (an opaque cookie); every form carries the
session's CSRF token. A refusal is shown on the page it came from, as a 4xx.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from marketplace import service, store
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


@router.post("/signup")
def signup(
    request: Request,
    email: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    current = visit(request)
    try:
        check_csrf(current, csrf_token)
        with store.transaction(current.database) as db:
            account_id = service.sign_up(db, current.settings, email, password, now())
            token = service.open_session(db, current.settings, account_id, now())
    except ShopError as error:
        return refusal(request, current, "signup.html", error, email=email)
    return redirect(current, "/account", token)


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
    current = visit(request)
    try:
        check_csrf(current, csrf_token)
        with store.transaction(current.database) as db:
            account_id = service.sign_in(db, email, password)
            token = service.open_session(db, current.settings, account_id, now())
    except ShopError as error:
        return refusal(request, current, "signin.html", error, email=email)
    return redirect(current, "/account", token)


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
            service.place_order(db, account_id, product_id, service.parse_quantity(quantity), now())
    except ShopError as error:
        state = account_state(current)
        return refusal(request, current, "catalogue.html", error, products=PRODUCTS, **state)
    return redirect(current, "/account")
