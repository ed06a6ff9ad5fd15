"""The gate: before any handler runs, the caller must be who the route's line in
``qianbao.access.ROUTES`` admits. One dependency on the whole app, so that no handler
can forget; a handler still decides whose object a path names.

A person is found by the API's bearer token (``/api/...``) or the pages' session cookie;
a staff member by a staff API token (``/api/...``) or the staff cookie; a merchant user
by a merchant API token (``/api/...``) or the merchant portal's cookie. The bearers
are different tokens checked against different tables: a person's never opens a staff
or a merchant operation, a staff member's never a person's, a merchant's neither. What
the gate found is kept on the request, and the handlers' own dependencies read it from
there rather than asking the database again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Final

from fastapi import FastAPI, Request
from fastapi.routing import iter_route_contexts
from starlette.concurrency import run_in_threadpool
from starlette.routing import Mount

from qianbao import access, deps
from qianbao.db import Tx, guard_first_transaction
from qianbao.errors import Forbidden, NotAuthenticated, NotFound, SignInRequired
from qianbao.i18n import N_
from qianbao.identity import service, staff
from qianbao.identity.staff import Staff
from qianbao.openplatform.merchants import accounts
from qianbao.openplatform.merchants.accounts import MerchantUserView
from qianbao.web.render import this_page

log = logging.getLogger(__name__)

PERSON_SIGN_IN: Final = "/"
STAFF_SIGN_IN: Final = "/admin/login"
MERCHANT_SIGN_IN: Final = "/merchant/login"
MERCHANT_COOKIE: Final = "qb_merchant"  # the merchant portal's session, sent only to /merchant
_PLEASE_LOG_IN: Final = N_("Please log in.")


def app_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """Every (method, path template) the app answers; a mount (static files) is a GET."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, Mount):
            yield "GET", route.path
            continue
        path = context.path
        if path is None:
            continue
        for method in sorted(getattr(route, "methods", None) or ()):
            yield method, path


def check_declarations(app: FastAPI) -> None:
    """Refuse to start an app with a route that declares nobody who may call it."""
    missing = access.undeclared(app_routes(app))
    if missing:
        raise RuntimeError(access.missing_message(missing))


async def enforce(request: Request) -> None:
    """The app-wide dependency: refuse the caller the route's declaration does not admit."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    who = access.declared(request.method, path) if isinstance(path, str) else None
    if who is None:  # check_declarations makes this unreachable; closed if it is not
        log.error("route without a declaration in qianbao/access.py: %s %s", request.method, path)
        raise NotFound("not_found", N_("There is nothing at this address."))
    if who.kind == "person":
        await _person(request, who)
    elif who.kind == "staff":
        await _staff(request, who)
    elif who.kind == "merchant":
        await _merchant(request)


async def _person(request: Request, who: access.Who) -> None:
    db = deps.database(request)
    back_to = None
    if who.comes_back:
        back_to = this_page(request)
    if request.url.path.startswith("/api/"):
        token = bearer_token(request)
    else:
        token = request.cookies.get(deps.SESSION_COOKIE, "")
    if not token:
        raise SignInRequired("session.missing", _PLEASE_LOG_IN, PERSON_SIGN_IN, back_to)
    session = service.cached_session(db, token) if who.checks_session_in_transaction else None
    if session is not None:
        guard_first_transaction(partial(_still_signed_in, session.session_id, back_to))
    else:
        try:
            session = await run_in_threadpool(db.run, lambda tx: service.authenticate(tx, token))
        except NotAuthenticated as error:  # ended or expired: the same code, a way back in
            raise SignInRequired(error.code, error.message, PERSON_SIGN_IN, back_to) from error
    deps.remember_session(request, session)


def _still_signed_in(session_id: uuid.UUID, back_to: str | None, tx: Tx) -> None:
    """A cached session, checked again inside the request's first transaction."""
    try:
        service.check_session(tx, session_id)
    except NotAuthenticated as error:
        raise SignInRequired(error.code, error.message, PERSON_SIGN_IN, back_to) from error


def bearer_token(request: Request) -> str:
    """The token of an ``Authorization: Bearer`` header; empty when there is none."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _staff(request: Request, who: access.Who) -> None:
    db = deps.database(request)
    door: staff.Door = "api" if request.url.path.startswith("/api/") else "page"
    token = bearer_token(request) if door == "api" else request.cookies.get(deps.STAFF_COOKIE, "")
    member = (
        await run_in_threadpool(db.run, lambda tx: staff.authenticate(tx, token, door))
        if token
        else None
    )
    if member is None:
        raise SignInRequired("staff.not_signed_in", _PLEASE_LOG_IN, STAFF_SIGN_IN)
    if not who.admits_role(member.role):
        raise Forbidden(
            "staff.role",
            N_("Your role does not allow this. Ask an administrator if you need it."),
            details={"role": member.role},
        )
    deps.remember_staff(request, member)


def signed_in_staff(request: Request) -> Staff:
    """The staff member the gate admitted (the dependency of every staff handler)."""
    member = deps.remembered_staff(request)
    if member is None:  # a handler of a route not declared for staff
        raise SignInRequired("staff.not_signed_in", _PLEASE_LOG_IN, STAFF_SIGN_IN)
    return member


async def _merchant(request: Request) -> None:
    db = deps.database(request)
    door: accounts.Door = "api" if request.url.path.startswith("/api/") else "page"
    token = bearer_token(request) if door == "api" else request.cookies.get(MERCHANT_COOKIE, "")
    user = (
        await run_in_threadpool(db.run, lambda tx: accounts.authenticate(tx, token, door))
        if token
        else None
    )
    if user is None:
        raise SignInRequired("merchant_user.not_signed_in", _PLEASE_LOG_IN, MERCHANT_SIGN_IN)
    request.state.qianbao_merchant_user = user


def signed_in_merchant(request: Request) -> MerchantUserView:
    """The merchant user the gate admitted (the dependency of every portal handler)."""
    user: MerchantUserView | None = getattr(request.state, "qianbao_merchant_user", None)
    if user is None:  # a handler of a route not declared for merchants
        raise SignInRequired("merchant_user.not_signed_in", _PLEASE_LOG_IN, MERCHANT_SIGN_IN)
    return user
