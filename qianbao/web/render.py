"""Jinja2 rendering with gettext, CSRF tokens and the session cookie."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from qianbao import deps
from qianbao.access import ROLE_NAMES
from qianbao.errors import Forbidden
from qianbao.i18n import (
    HTML_LANG,
    LANGUAGE_NAMES,
    LANGUAGES,
    N_,
    current_language,
    formats,
    gettext_,
    ngettext_,
    words,
)
from qianbao.identity.codes import same_hash
from qianbao.settings import Settings

TEMPLATES = Path(__file__).parent / "templates"

environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.install_gettext_callables(gettext_, ngettext_, newstyle=True)  # type: ignore[attr-defined]
environment.globals["role_names"] = ROLE_NAMES
# THE way a page writes a time, a day, an amount, a country or a status: one filter
# each, so that every page shows the reader's clock and words, never UTC or a code.
environment.filters.update(
    when=formats.local_datetime,
    day=formats.local_date,
    money=formats.amount,
    country=formats.country_name,
    trade_status=words.trade_status,
    source_word=words.source,
    transfer_word=words.transfer_state,
    state_word=words.state,
)


def csrf_token(request: Request) -> str:
    """The double-submit token: the cookie's value, echoed in every form."""
    token = request.cookies.get(deps.CSRF_COOKIE) or request.scope.get("qianbao.csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.scope["qianbao.csrf"] = token
    return str(token)


def check_csrf(request: Request, submitted: str | None) -> None:
    cookie = request.cookies.get(deps.CSRF_COOKIE)
    if not cookie or not submitted or not same_hash(cookie, submitted):
        raise Forbidden(
            "csrf.failed",
            N_("This form has expired. Reload the page and try again."),
        )


def secure_cookies(request: Request) -> bool:
    # From the settings alone: the Host header and the scheme are the client's to choose.
    settings: Settings = request.app.state.settings
    return settings.secure_cookies()


def _finish(request: Request, response: HTMLResponse | RedirectResponse) -> None:
    fresh = request.scope.get("qianbao.csrf")
    if fresh and not request.cookies.get(deps.CSRF_COOKIE):
        response.set_cookie(
            deps.CSRF_COOKIE,
            str(fresh),
            httponly=True,
            samesite="lax",
            secure=secure_cookies(request),
            path="/",
        )


def this_page(request: Request) -> str:
    """The request's own address on this site: its path and query."""
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{request.url.path}{query}"


def current_page(request: Request) -> str:
    """Where the language switch should return to.

    A page drawn in answer to a form post (a wrong code) lives at the address of the
    page that sent the form, with its query, so the referrer is the better answer.
    """
    if request.method == "GET":
        return this_page(request)
    referrer = urlsplit(request.headers.get("referer", ""))
    if referrer.netloc == request.url.netloc and referrer.path.startswith("/"):
        return f"{referrer.path}?{referrer.query}" if referrer.query else referrer.path
    return "/"


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    language = current_language()
    html = environment.get_template(template).render(
        request=request,
        csrf=csrf_token(request),
        here=current_page(request),
        language=language,
        html_lang=HTML_LANG[language],
        languages=[(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        demo=request.app.state.settings.demo,
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    # The camera (Scan, the face check) for our own pages only; never for a frame.
    response.headers["Permissions-Policy"] = "camera=(self)"
    _finish(request, response)
    return response


def public_url(request: Request, path: str) -> str:
    """An address to hand to someone else (a pay-for-me or a collect-money link): under
    QIANBAO_PUBLIC_BASE_URL, never the Host header the request came with, which anyone
    may set."""
    settings: Settings = request.app.state.settings
    return settings.public_base_url.rstrip("/") + path


def redirect(request: Request, url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    _finish(request, response)
    return response
