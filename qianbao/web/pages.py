"""What every domain's pages share: the database and client dependencies, the CSRF form
field, and the signed-in person read from the session cookie."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import Response

from qianbao import deps
from qianbao.db import Database
from qianbao.errors import NotAuthenticated
from qianbao.i18n import formats, set_language
from qianbao.identity import service
from qianbao.identity.service import Client, CurrentSession
from qianbao.web.render import redirect

DbDep = Annotated[Database, Depends(deps.database)]
ClientDep = Annotated[Client, Depends(deps.client)]
CsrfField = Annotated[str, Form(alias="csrf")]
Page = Response


def signed_in(request: Request, db: Database) -> CurrentSession | None:
    session = deps.remembered_session(request)  # the gate (qianbao.gate) found it
    if session is None:
        token = request.cookies.get(deps.SESSION_COOKIE)
        if not token:
            return None
        try:
            session = db.run(lambda tx: service.authenticate(tx, token))
        except NotAuthenticated:
            return None
    if not deps.language_from_cookie(request):
        set_language(session.account.language)
    formats.set_time_zone(session.account.time_zone)
    return session


def signed_in_or_home(request: Request, db: Database) -> CurrentSession | Response:
    """The signed-in session, or a redirect to the first page for a page that needs one."""
    session = signed_in(request, db)
    return session if session is not None else redirect(request, "/")
