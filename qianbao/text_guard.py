"""Control characters are refused at the edge, before any handler, with a 4xx that names
the field.

A NUL in a login reached PostgreSQL, which cannot store it, and came back as a server
error with the statement and its parameters in the log; other control characters
(backspace, escape, form feed) have no business in a name, a note or an address and
only confuse whoever reads them later. Tab, line feed and carriage return stay allowed
(a multi-line address). The JSON API's query strings, JSON bodies and form bodies are
checked; a file upload's bytes are not text and are left to the handler that reads them.
Pages keep their domains' own checks, which answer inside the form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse

from qianbao.errors import InvalidInput
from qianbao.i18n import N_

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_FORBIDDEN: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Bodies larger than this are not scanned (none of the text forms comes near it).
_MAX_SCANNED: Final = 1 << 20
_TEXT_BODIES: Final = ("application/json", "application/x-www-form-urlencoded")


class ControlCharacterGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The JSON API only: a page's form re-renders with the domain's own message in
        # place (the profile's street, the transfer's note), which a bare problem body
        # would lose.
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith("/api/"):
            await self.app(scope, receive, send)
            return
        field = _in_pairs(_query_pairs(scope))
        content_type = _content_type(scope)
        if field is None and content_type.startswith(_TEXT_BODIES):
            body = await _read_body(receive)
            field = _in_body(body, content_type)
            receive = _replaying(body, receive)
        if field is None:
            await self.app(scope, receive, send)
            return
        error = refusal(field)
        response = JSONResponse(error.problem(), status_code=error.status)
        await response(scope, receive, send)


def refusal(field: str) -> InvalidInput:
    return InvalidInput(
        "request.control_characters",
        N_(
            "The field {field} contains a control character (such as NUL) that text cannot "
            "hold. Type it again as plain text."
        ),
        {"field": field},
        details={"field": field},
    )


def _content_type(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return str(value.decode("latin-1")).lower()
    return ""


def _query_pairs(scope: Scope) -> list[tuple[str, str]]:
    raw = scope.get("query_string", b"").decode("latin-1")
    return parse_qsl(raw, keep_blank_values=True, encoding="utf-8", errors="replace")


def _in_pairs(pairs: list[tuple[str, str]]) -> str | None:
    for name, value in pairs:
        if _FORBIDDEN.search(name) or _FORBIDDEN.search(value):
            return _FORBIDDEN.sub("?", name)
    return None


def _in_body(body: bytes, content_type: str) -> str | None:
    if len(body) > _MAX_SCANNED:
        return None
    if content_type.startswith("application/x-www-form-urlencoded"):
        text = body.decode("latin-1")
        return _in_pairs(parse_qsl(text, keep_blank_values=True, errors="replace"))
    try:
        document = json.loads(body)
    except ValueError:  # not JSON: the handler says so
        return None
    return _in_json(document, "")


def _in_json(value: object, path: str) -> str | None:
    if isinstance(value, str):
        return (path or "body") if _FORBIDDEN.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if _FORBIDDEN.search(str(key)):
                return _FORBIDDEN.sub("?", where)
            found = _in_json(item, where)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _in_json(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replaying(body: bytes, server_receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then the server's own
    messages (a disconnect, when the client goes away)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await server_receive()

    return receive
