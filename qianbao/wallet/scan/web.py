"""The Scan page: the camera reads a QR code in the page (the browser's BarcodeDetector,
or the jsQR decoder served from /static), or the person pastes what a code says; the
server decides what it is and where to go."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from qianbao.errors import QianbaoError
from qianbao.wallet.scan import service as scan
from qianbao.web.pages import CsrfField, DbDep, signed_in_or_home
from qianbao.web.render import check_csrf, page, redirect

router = APIRouter(include_in_schema=False)


@router.get("/wallet/scan")
def scan_page(request: Request, db: DbDep) -> Response:
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    return page(request, "scan.html", account=session.account, tab="wallet", typed="")


@router.post("/wallet/scan")
def scanned(
    request: Request, db: DbDep, csrf: CsrfField = "", text: Annotated[str, Form()] = ""
) -> Response:
    """Where the code leads, on this site; or the page again with what it was."""
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    try:
        found = db.run(lambda tx: scan.resolve(tx, text))
    except QianbaoError as error:
        return page(
            request,
            "scan.html",
            status=error.status,
            account=session.account,
            tab="wallet",
            typed=text[:2048],
            error=error,
        )
    return redirect(request, found.path)
