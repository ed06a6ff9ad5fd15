"""Request plumbing shared by the JSON API and the web pages."""

from __future__ import annotations

from fastapi import Request

from qianbao.db import Database
from qianbao.i18n import Language, current_language, parse_language
from qianbao.identity.service import Client

LANGUAGE_COOKIE = "qb_lang"
SESSION_COOKIE = "qb_session"
CSRF_COOKIE = "qb_csrf"


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def client(request: Request) -> Client:
    # Behind our own proxies, proxies.TrustedProxyMiddleware has put the client's address
    # here; nothing else reads X-Forwarded-For.
    host = request.client.host if request.client else "unknown"
    return Client(ip=host, user_agent=request.headers.get("user-agent", "")[:512])


def language() -> Language:
    return current_language()


def language_from_cookie(request: Request) -> Language | None:
    return parse_language(request.cookies.get(LANGUAGE_COOKIE))


def language_is_explicit(request: Request) -> bool:
    """Whether the request chose its language (cookie or Accept-Language) itself."""
    return bool(request.scope.get("qianbao.language_explicit"))
