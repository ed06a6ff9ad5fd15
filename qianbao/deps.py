"""Request plumbing shared by the JSON API and the web pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Request

from qianbao.db import Database
from qianbao.errors import InvalidInput
from qianbao.i18n import N_, Language, current_language, parse_language
from qianbao.identity.service import Client, CurrentSession
from qianbao.identity.staff import Staff

LANGUAGE_COOKIE = "qb_lang"
SESSION_COOKIE = "qb_session"
CSRF_COOKIE = "qb_csrf"
STAFF_COOKIE = "qb_staff"  # the back office's own session, sent only to /admin
# The browser's device id (identity/devices.py): random, HttpOnly, kept for 400 days.
DEVICE_COOKIE = "qb_device"


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def client(request: Request) -> Client:
    # Behind our own proxies, proxies.TrustedProxyMiddleware has put the client's address
    # here; nothing else reads X-Forwarded-For.
    host = request.client.host if request.client else "unknown"
    return Client(
        ip=host,
        user_agent=request.headers.get("user-agent", "")[:512],
        device_id=request.cookies.get(DEVICE_COOKIE, "")[:64],
    )


def language() -> Language:
    return current_language()


def language_from_cookie(request: Request) -> Language | None:
    return parse_language(request.cookies.get(LANGUAGE_COOKIE))


def language_is_explicit(request: Request) -> bool:
    """Whether the request chose its language (cookie or Accept-Language) itself."""
    return bool(request.scope.get("qianbao.language_explicit"))


# One convention for every request that moves money and has no key of its own (a
# transfer, a refund, a Tour Pass top-up): the Idempotency-Key header. A retry with the
# same key and the same request gets the first answer and moves nothing; the same key
# with another request is 409 idempotency.mismatch. (A payment's key is its order, a
# top-up code's key is the code.)
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="names this request: a retry with the same key and the same body gets "
        "the first answer and moves nothing; another body under it is 409 "
        "idempotency.mismatch (each operation says how long a key may be)",
    ),
]


def request_key(header: str | None, in_body: str | None, field: str) -> str | None:
    """The request's key: the Idempotency-Key header, or the body field that carried it
    before the header (kept for the clients written then). Both given must agree."""
    if header is not None and in_body is not None and header != in_body:
        raise InvalidInput(
            "idempotency.key_conflict",
            N_("The Idempotency-Key header and the field {field} name different keys."),
            {"field": field},
            details={"field": field},
        )
    return header if header is not None else in_body


# What the gate (qianbao.gate) found for this request, so that the handlers' own
# dependencies do not authenticate the same token a second time.
def remember_session(request: Request, session: CurrentSession) -> None:
    request.state.qianbao_session = session


def remembered_session(request: Request) -> CurrentSession | None:
    found: CurrentSession | None = getattr(request.state, "qianbao_session", None)
    return found


def remember_staff(request: Request, member: Staff) -> None:
    request.state.qianbao_staff = member


def remembered_staff(request: Request) -> Staff | None:
    found: Staff | None = getattr(request.state, "qianbao_staff", None)
    return found
