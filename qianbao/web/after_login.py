"""Back to the page that asked for a login: a page that needs a signed-in person (a
pay-for-me link a friend opened) remembers itself in a short-lived cookie and sends them
to log in; the login (by SMS code or password, or a sign-up) then returns them there."""

from __future__ import annotations

from typing import Final

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from qianbao.web.render import redirect, secure_cookies

COOKIE: Final = "qianbao_after_login"
KEEP_SECONDS: Final = 30 * 60  # long enough to sign up and enter a code


def to_login(request: Request, back_to: str) -> Response:
    """Send the person to log in, remembering ``back_to`` (a same-site path)."""
    response = redirect(request, "/")
    response.set_cookie(
        COOKIE,
        _same_site(back_to) or "/home",
        max_age=KEEP_SECONDS,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
        path="/",
    )
    return response


def back(request: Request, default: str) -> RedirectResponse:
    """Where a fresh login goes: the remembered page (once), else ``default``."""
    target = _same_site(request.cookies.get(COOKIE, "")) or default
    response = redirect(request, target)
    if COOKIE in request.cookies:
        response.delete_cookie(COOKIE, path="/")
    return response


def _same_site(path: str) -> str | None:
    """Only a path on this site: the cookie must never become an open redirect."""
    if path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return None
