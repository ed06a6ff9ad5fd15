"""The application factory: routers, middleware and error handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import iter_route_contexts
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from qianbao import deps, gate, openapi
from qianbao.backoffice import api as backoffice_api
from qianbao.clock import Clock
from qianbao.db import Database, DatabaseFailure, classify_failure
from qianbao.errors import QianbaoError, SignInRequired
from qianbao.funding import api as funding_api
from qianbao.funding import web as funding_web
from qianbao.i18n import N_, negotiate, parse_language, set_language
from qianbao.identity import api as identity_api
from qianbao.monitoring import instrument
from qianbao.notify import api as notify_api
from qianbao.openplatform.gateway import api as gateway_api
from qianbao.openplatform.oidc import api as oidc_api
from qianbao.openplatform.oidc import web as oidc_web
from qianbao.openplatform.portal import api as portal_api
from qianbao.openplatform.portal import staff_api as portal_staff_api
from qianbao.openplatform.portal import web as portal_web
from qianbao.pages import account as account_pages
from qianbao.pages import backoffice
from qianbao.pages import home as home_pages
from qianbao.profile import api as profile_api
from qianbao.profile import web as profile_web
from qianbao.proxies import TrustedProxyMiddleware
from qianbao.settings import Settings, get_settings
from qianbao.text_guard import ControlCharacterGuard
from qianbao.verification import api as verification_api
from qianbao.verification import web as verification_web
from qianbao.wallet import api as wallet_api
from qianbao.wallet import web as wallet_web
from qianbao.wallet.pay_for_me import api as pay_for_me_api
from qianbao.wallet.pay_for_me import web as pay_for_me_web
from qianbao.wallet.payment_codes import api as payment_codes_api
from qianbao.wallet.payment_codes import web as payment_codes_web
from qianbao.wallet.scan import api as scan_api
from qianbao.wallet.scan import web as scan_web
from qianbao.wallet.topup_codes import api as topup_codes_api
from qianbao.wallet.topup_codes import web as topup_codes_web
from qianbao.wallet.tour_pass import api as tour_pass_api
from qianbao.wallet.tour_pass import web as tour_pass_web
from qianbao.wallet.transfers import api as transfers_api
from qianbao.wallet.transfers import web as transfers_web
from qianbao.web import after_login, render

log = logging.getLogger(__name__)
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


class LanguageMiddleware:
    """Sets the language of each request: the cookie, then Accept-Language, then default.

    Handlers that know the signed-in account use its language when neither was given.
    """

    def __init__(self, app: ASGIApp, default: str) -> None:
        self.app = app
        self.default = parse_language(default) or "en"

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            chosen = deps.language_from_cookie(request) or negotiate(
                request.headers.get("accept-language")
            )
            scope["qianbao.language_explicit"] = chosen is not None
            set_language(chosen or self.default)
        await self.app(scope, receive, send)


def problem_response(error: QianbaoError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The problem body, with ``Retry-After`` and the RateLimit fields the error carries."""
    return JSONResponse(
        error.problem(), status_code=error.status, headers={**(headers or {}), **error.headers()}
    )


def error_response(
    request: Request, error: QianbaoError, headers: Mapping[str, str] | None = None
) -> Response:
    """A problem body for the API and for clients that ask for JSON; a page otherwise."""
    accept = request.headers.get("accept", "")
    is_page = not request.url.path.startswith("/api/")
    if isinstance(error, SignInRequired) and is_page and "application/json" not in accept:
        if error.back_to:  # and comes back here after it
            return after_login.to_login(request, error.back_to)
        return render.redirect(request, error.sign_in_at)  # a browser goes to sign in
    wants_page = is_page and "text/html" in accept
    if not wants_page:
        return problem_response(error, headers)
    response = render.page(request, "error.html", status=error.status, error=error)
    response.headers.update({**(headers or {}), **error.headers()})
    return response


def allowed_methods(request: Request) -> str:
    """Every method the address takes. Starlette's own ``Allow`` names only the methods
    of the first route that matched the path, and one path often has several routes."""
    methods: set[str] = set()
    path = request.scope["path"]
    for route in iter_route_contexts(request.app.routes):
        if isinstance(route.original_route, Route) and route.path_regex.match(path):
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(QianbaoError)
    async def domain_error(request: Request, error: QianbaoError) -> Response:
        return error_response(request, error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        fields = [
            {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "type": e["type"]}
            for e in error.errors()
        ]
        problem = QianbaoError(
            "request.invalid",
            N_("Some fields are missing or not in the right form."),
            details={"fields": fields},
            status=422,
        )
        return problem_response(problem)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        messages = {
            404: ("not_found", N_("There is nothing at this address.")),
            405: ("method_not_allowed", N_("This address does not take that kind of request.")),
        }
        code, message = messages.get(error.status_code, ("http_error", N_("Request refused.")))
        headers = dict(error.headers or {})  # 405's Allow, 401's WWW-Authenticate
        if error.status_code == 405:
            headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
        problem = QianbaoError(code, message, status=error.status_code)
        return error_response(request, problem, headers)

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, error: DBAPIError) -> Response:
        log.error("database error: %s", type(error.orig).__name__, exc_info=error)
        return error_response(request, database_problem(classify_failure(error)))


def database_problem(failure: DatabaseFailure) -> QianbaoError:
    """The answer to a database error: 503 only when waiting may really help."""
    if failure == "constraint":
        return QianbaoError(
            "request.conflict",
            N_(
                "This request collided with another one that changed the same thing at the "
                "same moment. Look at where things stand now, then try again if it still "
                "makes sense."
            ),
            status=409,
        )
    if failure == "other":
        return QianbaoError(
            "service.error",
            N_("Something went wrong on our side. Nothing was changed."),
            status=500,
        )
    return QianbaoError(
        "service.busy",
        N_("We are very busy right now. Try again in a moment."),
        retry_after=2,
        status=503,
    )


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or get_settings()
    database = Database(settings, clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        database.dispose()

    app = FastAPI(
        title="Qianbao API",
        version="0.1.0",
        description="Sign-up by international mobile number, sessions, and (as they land) "
        "verification and the wallet. Errors are problem bodies `{code, message, details}`; "
        "`message` follows Accept-Language (en, zh-Hans).",
        lifespan=lifespan,
        generate_unique_id_function=openapi.operation_id,
        # Before every handler: the caller must be who qianbao/access.py admits.
        dependencies=[Depends(gate.enforce)],
    )
    app.state.db = database
    app.state.settings = settings
    # Inside the language layer, so that its refusal speaks the request's language.
    app.add_middleware(ControlCharacterGuard)
    app.add_middleware(LanguageMiddleware, default=settings.default_language)
    _install_error_handlers(app)
    instrument(app, settings, database)  # request ids, access log, latency; /metrics

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers. Trivial on purpose (the benchmarks' baseline)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    def readyz() -> dict[str, str]:
        """Readiness: the database answers a query."""
        database.run(lambda tx: tx.session.execute(text("SELECT 1")))
        return {"status": "ok", "database": database.dialect}

    # The money API first: a request is matched against every route before its own (300
    # of them, a sixth of a payment's CPU when the wallet came thirteenth); the order
    # hides no route behind another (tests/test_route_order.py).
    app.include_router(wallet_api.router)
    app.include_router(transfers_api.router)
    app.include_router(identity_api.router)
    app.include_router(notify_api.router)
    app.include_router(profile_api.router)
    app.include_router(home_pages.router)
    app.include_router(account_pages.router)
    app.include_router(profile_web.router)
    app.include_router(verification_api.router)
    app.include_router(funding_api.router)
    app.include_router(funding_web.router)
    app.include_router(verification_web.router)
    app.include_router(backoffice.router)
    app.include_router(backoffice_api.router)
    app.include_router(wallet_web.router)
    app.include_router(tour_pass_api.router)
    app.include_router(tour_pass_web.router)
    app.include_router(transfers_web.router)
    app.include_router(pay_for_me_api.router)
    app.include_router(pay_for_me_web.router)
    app.include_router(topup_codes_api.router)
    app.include_router(topup_codes_web.router)
    app.include_router(payment_codes_api.router)
    app.include_router(payment_codes_web.router)
    app.include_router(scan_api.router)
    app.include_router(scan_web.router)
    app.include_router(gateway_api.router)
    app.include_router(oidc_api.router)
    app.include_router(oidc_api.protocol)
    app.include_router(oidc_web.router)
    app.include_router(portal_web.router)
    app.include_router(portal_web.admin_router)
    app.include_router(portal_api.router)
    app.include_router(portal_staff_api.router)
    openapi.install(app, settings)
    app.mount(
        "/static", StaticFiles(directory=Path(__file__).parent / "web" / "static"), name="static"
    )
    gate.check_declarations(app)  # every route says who may call it, or no start
    # Added last, so it is the outermost layer: every other one (logs, limits, handlers)
    # sees the client's address, not our proxy's.
    app.add_middleware(TrustedProxyMiddleware, trusted=settings.trusted_proxies)
    return app
