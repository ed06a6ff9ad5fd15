"""Per request: a request id, one access log line, the latency histogram; and /metrics."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.datastructures import MutableHeaders
from starlette.routing import Mount

from qianbao.errors import NotAuthenticated
from qianbao.i18n import N_
from qianbao.observability import logs, metrics

access_log = logging.getLogger("qianbao.access")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept when it is short and plain, and the log would show it unchanged
# (an id that looks like a phone number would be redacted, so it is replaced instead).
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
UNMATCHED = "<unmatched>"  # one label for every path no route knows (scanners, typos)


def request_id(given: str | None) -> str:
    """The caller's ``X-Request-ID`` when it is safe to log, else a fresh one."""
    if given and _REQUEST_ID.fullmatch(given) and logs.scrub(given) == given:
        return given
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The route that answered (``/api/v1/orders/{order_id}/pay``), never the raw path,
    which may carry ids and tokens; a mount's whole subtree is one route."""
    route = scope.get("route")
    if route is None and "endpoint" in scope:
        # A mount (the static files) answered: its prefix is what it added to root_path.
        prefix = str(scope.get("root_path", ""))[len(str(scope.get("app_root_path", ""))) :]
        return prefix + "/{path}" if prefix else UNMATCHED
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED
    if isinstance(route, Mount):
        return path.rstrip("/") + "/{path}"
    return path


class RequestLogMiddleware:
    """Binds the request id into every log line of the request, answers it in
    ``X-Request-ID``, and writes one access line and one histogram sample per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(_header(scope, b"x-request-id"))
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=rid):
            try:
                await self.app(scope, receive, answer)
            finally:
                _record(scope, status, time.perf_counter() - started)


def _record(scope: Scope, status: int, seconds: float) -> None:
    route, method = route_template(scope), str(scope.get("method", ""))
    metrics.http_request(route, method, status, seconds)
    access_log.log(
        logging.ERROR if status >= 500 else logging.INFO,
        "request",
        extra={
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
        },
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def add_metrics_endpoint(app: FastAPI, token: str, *extra: Collector) -> None:
    """``GET /metrics`` for ``Authorization: Bearer <token>`` only (compared in constant
    time); 401 otherwise. ``extra`` collectors are read at each scrape."""
    expected = hashlib.sha256(token.encode()).digest()

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def scrape(request: Request) -> Response:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        digest = hashlib.sha256(given.strip().encode()).digest()  # equal lengths: no length leak
        if scheme.lower() != "bearer" or not hmac.compare_digest(digest, expected):
            refusal = NotAuthenticated("metrics.token", N_("Please log in."))
            return JSONResponse(
                refusal.problem(), status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        return Response(metrics.exposition(*extra), media_type=CONTENT_TYPE_LATEST)
