"""The sign-in and sign-out pages of a kind of password account with pages of its own
(the back office's staff, the merchant portal's users).

The form is checked against CSRF like every other; a right login and password get a
session cookie of the kind's own (HttpOnly, SameSite strict, sent only to the kind's
path), a wrong one the sign-in page again with the error and the login as typed. Signing
out ends the session the cookie names and forgets the cookie. What signs in and out is
the kind's own service (identity/password_sessions.py behind both).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response

from qianbao.db import Database, Tx
from qianbao.errors import QianbaoError
from qianbao.web.render import check_csrf, page, redirect, secure_cookies


@dataclass(frozen=True)
class SignInPages:
    cookie: str
    path: str  # the pages' prefix: the only path the cookie is sent to
    template: str  # the sign-in page, at ``{path}/login``
    login_field: str  # the typed login's name in the form and the template
    home: str  # where a sign-in lands
    sign_in: Callable[[Database, str, str], str]  # a new page session's token
    sign_out: Callable[[Tx, str], None]

    def form(self, request: Request) -> Response:
        return page(request, self.template)

    def submit(
        self, request: Request, db: Database, csrf: str, login: str, password: str
    ) -> Response:
        check_csrf(request, csrf)
        try:
            token = self.sign_in(db, login, password)
        except QianbaoError as error:
            typed = {self.login_field: login}
            return page(request, self.template, status=error.status, error=error, **typed)
        response = redirect(request, self.home)
        response.set_cookie(
            self.cookie,
            token,
            httponly=True,
            samesite="strict",
            secure=secure_cookies(request),
            path=self.path,
        )
        return response

    def leave(self, request: Request, db: Database, csrf: str) -> Response:
        check_csrf(request, csrf)
        token = request.cookies.get(self.cookie)
        if token:
            db.run(lambda tx: self.sign_out(tx, token))
        response = redirect(request, f"{self.path}/login")
        response.delete_cookie(self.cookie, path=self.path)
        return response
