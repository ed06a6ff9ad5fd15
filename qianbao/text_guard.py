"""Control characters are refused at the edge, before any handler, with a 4xx that names
the field.

A NUL in a login reached PostgreSQL, which cannot store it, and came back as a server
error with the statement and its parameters in the log; other control characters
(backspace, escape, form feed) have no business in a name, a note or an address and
only confuse whoever reads them later. Tab, line feed and carriage return stay allowed
(a multi-line address). The JSON API's query strings, JSON bodies and form bodies are
checked, multipart ones too (their text fields; a file's bytes are not text and are left to
the handler that reads them). Pages keep their domains' own checks, which answer inside
the form.

Text that other people read (an order's subject, a merchant's name, an appeal's message)
also refuses the bidirectional embeddings, overrides and isolates: U+202E makes
"invoice_gpj.exe" show as "invoice_exe.jpg" and can turn the subject of an order around
(the "Trojan Source" trick). Those are checked per field by ``check_shown_text``, which the
code that takes such text calls; elsewhere (a password, a search) they do no harm. The
marks U+200E, U+200F and U+061C stay allowed: Arabic and Hebrew text uses them, and they
reorder nothing beyond their neighbours.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.responses import JSONResponse

from qianbao.errors import InvalidInput
from qianbao.i18n import N_

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_FORBIDDEN: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# LRE RLE PDF LRO RLO, then LRI RLI FSI PDI (Unicode's Bidi_Control, less the marks).
DIRECTION_CONTROLS: Final = re.compile("[\u202a-\u202e\u2066-\u2069]")
# Bodies larger than this are not scanned (none of the text forms comes near it); a
# multipart body (photos) is kept on disk past it while it is scanned.
_MAX_SCANNED: Final = 1 << 20
_TEXT_BODIES: Final = ("application/json", "application/x-www-form-urlencoded")
_MULTIPART: Final = "multipart/form-data"
_REPLAY_CHUNK: Final = 1 << 16


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
        kind = content_type.lower()
        if field is None and kind.startswith(_TEXT_BODIES):
            body = await _read_body(receive)
            field = _in_body(body, kind)
            receive = _replaying(body, receive)
        elif field is None and kind.startswith(_MULTIPART):
            field, receive = await _scan_multipart(content_type, receive)
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


def check_shown_text(field: str, text: str) -> str:
    """``text`` unchanged when other people may read it: a control character is
    ``request.control_characters`` (pages are not behind the guard), a character that
    reorders what is shown ``text.direction_controls``; both 422, naming ``field``."""
    if _FORBIDDEN.search(text):
        raise refusal(field)
    if DIRECTION_CONTROLS.search(text):
        raise InvalidInput(
            "text.direction_controls",
            N_(
                "The field {field} contains a character that changes the direction of the "
                "text (such as U+202E), which would make others read something other than "
                "what was typed. Type it again as plain text."
            ),
            {"field": field},
            details={"field": field},
        )
    return text


def _content_type(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return str(value.decode("latin-1"))  # as sent: a boundary is case-sensitive
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


class _FormScanner:
    """A multipart body fed through python-multipart as it arrives: notes the first text
    field (a part without a filename) whose name or value holds a control character."""

    def __init__(self, boundary: bytes) -> None:
        self.field: str | None = None
        self._broken = False
        self._header = (bytearray(), bytearray())
        self._name = ""
        self._is_file = False
        self._value = bytearray()
        self._parser = MultipartParser(
            boundary,
            {
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def write(self, chunk: bytes) -> None:
        if self._broken or self.field is not None:
            return
        try:
            self._parser.write(chunk)
        except FormParserError:  # not multipart after all: the handler refuses it
            self._broken = True

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header[0].extend(data[start:end])

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._header[1].extend(data[start:end])

    def _header_end(self) -> None:
        name, value = (bytes(part) for part in self._header)
        self._header = (bytearray(), bytearray())
        if name.lower() == b"content-disposition":
            _, options = parse_options_header(value)
            self._name = options.get(b"name", b"").decode("utf-8", "replace")
            self._is_file = b"filename" in options

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._is_file and len(self._value) <= _MAX_SCANNED:
            self._value.extend(data[start:end])

    def _part_end(self) -> None:
        value = self._value.decode("utf-8", "replace")
        if self.field is None and (_FORBIDDEN.search(self._name) or _FORBIDDEN.search(value)):
            self.field = _FORBIDDEN.sub("?", self._name) or "body"
        self._name, self._is_file, self._value = "", False, bytearray()


async def _scan_multipart(content_type: str, receive: Receive) -> tuple[str | None, Receive]:
    """The field a multipart body's text holds a control character in, if any, and a
    receive that hands the app the body again (kept on disk past ``_MAX_SCANNED``)."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:  # no parts to find: the handler says what is wrong
        return None, receive
    scanner = _FormScanner(boundary)
    spool = tempfile.SpooledTemporaryFile(max_size=_MAX_SCANNED)  # noqa: SIM115
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        scanner.write(chunk)
        spool.write(chunk)
        if not message.get("more_body", False):
            break
    spool.seek(0)
    return scanner.field, _replaying_file(spool, receive)


def _replaying_file(spool: tempfile.SpooledTemporaryFile[bytes], server: Receive) -> Receive:
    async def receive() -> Message:
        if spool.closed:
            return await server()
        chunk = spool.read(_REPLAY_CHUNK)
        more = len(chunk) == _REPLAY_CHUNK
        if not more:
            spool.close()
        return {"type": "http.request", "body": chunk, "more_body": more}

    return receive


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
