"""``/gateway.do``: Alipay's Open Platform gateway. A shop's SDK posts the common
parameters in the query string and ``biz_content`` in the form body (or all in either);
page pay comes as the person's browser GET or form POST. The caller is a machine with a
credential of its own: the request's signature, checked by the service (access.py's
OWN_TOKEN)."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from qianbao import deps
from qianbao.db import Database
from qianbao.openplatform import signing
from qianbao.openplatform.gateway import bills, notifications, service
from qianbao.openplatform.merchants import service as merchants

router = APIRouter(tags=["gateway"])
DbDep = Annotated[Database, Depends(deps.database)]
# Paying and refunding happen in this app: the notifications' listeners must be set.
assert notifications.SUCCESS_ANSWER
ANSWERS: Final[dict[int | str, dict[str, Any]]] = {
    200: {"description": "Alipay's answer: the response object and its signature (JSON)"},
    302: {"description": "Page pay: on to Qianbao's cashier"},
}


@router.post("/gateway.do", response_class=Response, responses=ANSWERS)
async def call(request: Request, db: DbDep) -> Response:
    """A shop's request (form-encoded, signed RSA2 with its app's key)."""
    params = dict(request.query_params.items())
    form = await request.form()
    params.update({key: value for key, value in form.items() if isinstance(value, str)})
    return await _answer(db, params)


@router.get("/gateway.do", response_class=Response, responses=ANSWERS)
async def page(request: Request, db: DbDep) -> Response:
    """Page pay as a link: the person's browser brings the shop's signed request."""
    return await _answer(db, dict(request.query_params.items()))


async def _answer(db: Database, params: dict[str, str]) -> Response:
    answer = await run_in_threadpool(service.answer, db, params)
    if answer.redirect:
        return RedirectResponse(answer.redirect, status_code=302)
    media = "application/json;charset=utf-8" if answer.status == 200 else "text/plain"
    return Response(answer.text, status_code=answer.status, media_type=media)


@router.get("/gateway/bills/{token}", response_class=Response)
def bill(token: str, db: DbDep) -> Response:
    """A daily bill, by the short-lived link ``bill.downloadurl.query`` answered."""
    found = db.run(lambda tx: bills.open_link(tx, token))
    return Response(
        found.text,
        media_type="text/csv;charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{found.filename}"'},
    )


@router.get("/gateway/platform-keys")
def platform_keys(db: DbDep) -> dict[str, list[dict[str, str]]]:
    """The platform's public keys (the shops' ``alipay_public_key``, one Base64 line):
    the current one, and the next one once published for a rotation. Public, like a
    JWKS; a shop should still pin what it installs."""
    keys = db.run(merchants.platform_keys)
    return {
        "keys": [
            {
                "key_id": key.key_id,
                "state": key.state,
                "public_key": signing.bare_base64(key.public_key),
            }
            for key in keys
        ]
    }
