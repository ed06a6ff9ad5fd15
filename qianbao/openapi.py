"""The OpenAPI document at ``/openapi.json`` (and ``/docs``): the API's contract.

FastAPI writes most of it from the routes; this module adds what it cannot know:

- every error answer is the problem body ``{code, message, details}`` (``Problem``),
  including 422, which FastAPI would describe as its own ``{detail: [...]}`` although
  app.py's handler never sends that shape;
- which error statuses an operation may answer, from its shape (see ``error_statuses``);
- operationIds named ``<tag>.<function>`` (``transfers.send``): stable when a path moves;
- demo routes appear only in demo mode, the only mode in which they answer.

The bearer security scheme comes from the session dependency itself
(``identity.api.current_session`` reads the token through ``HTTPBearer``), so an
operation lists it exactly when it needs a signed-in person; the staff operations list
``staffBearer`` the same way (``backoffice.api.current_staff``).
"""

from __future__ import annotations

import re
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field

from qianbao.settings import Settings

PROBLEM_REF: Final = "#/components/schemas/Problem"
STATE_CHANGING: Final = frozenset({"post", "put", "patch", "delete"})
ERRORS: Final = {
    400: "Refused, and the refusal was recorded (a wrong SMS code counts against the number).",
    401: "No session, or it ended (`session.missing`, `session.expired`): log in again.",
    403: "Not allowed: the verification level, a restriction or a freeze (policy.py).",
    404: "No such thing, or not this person's.",
    409: "Conflicts with the current state (already done, or a reused Idempotency-Key).",
    422: "Bad input: `request.invalid` with `details.fields`, or a domain code "
    "(`phone.too_short`, `transfer.amount`).",
    429: "Too many tries: come back after `Retry-After` seconds.",
    503: "Busy (`service.busy`): try again after `Retry-After` seconds.",
}
# What 401 and 403 mean on a staff operation (security scheme ``staffBearer``).
STAFF_ERRORS: Final = {
    401: "No staff token, or it ended (`staff.not_signed_in`): POST /api/v1/staff/sessions.",
    403: "The staff member's role may not do this (`staff.role`): qianbao/access.py.",
}
# What 401 means on a merchant operation (security scheme ``merchantBearer``).
MERCHANT_ERRORS: Final = {
    401: "No merchant token, or it ended (`merchant_user.not_signed_in`): "
    "POST /api/v1/merchant/sessions.",
}
RATE_LIMIT_HEADERS: Final = {
    "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}},
    "RateLimit": {
        "description": 'draft-ietf-httpapi-ratelimit-headers: `"<code>";r=<left>;t=<seconds>`.',
        "schema": {"type": "string"},
    },
    "RateLimit-Policy": {
        "description": 'The quota that was reached: `"<code>";q=<events>;w=<seconds>` '
        "(absent for a lock, which is no quota).",
        "schema": {"type": "string"},
    },
}


class Problem(BaseModel):
    """Every error the API answers."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "otp.mismatch",
                    "message": "The code is not right. Tries left for this code: 4.",
                    "details": {"tries_left": 4},
                }
            ]
        }
    )

    code: str = Field(description="Stable, for programs: `otp.expired`, `refund.too_much`.")
    message: str = Field(description="For people, in the request's language.")
    details: dict[str, Any] = Field(
        description="Facts about this error: `retry_after`, `fields`, `tries_left`, ..."
    )


def operation_id(route: APIRoute) -> str:
    """``<first tag>.<function name>``: neither changes when a path does."""
    tag = str(route.tags[0]) if route.tags else "default"
    return f"{re.sub(r'[^a-z0-9]+', '_', tag.lower()).strip('_')}.{route.name}"


def is_demo(path: str) -> bool:
    return "/demo/" in path or path.endswith("/demo")


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the completed document, with the demo routes only in demo mode. (The routes
    themselves are shared by every app made in one process, tests' included, so they are
    filtered here rather than marked.)"""
    app.openapi = lambda: document(app, demo=settings.demo)  # type: ignore[method-assign]


def schema_routes(app: FastAPI, *, demo: bool) -> list[RouteContext]:
    return [
        context
        for context in iter_route_contexts(app.routes)
        if demo or not is_demo(context.path or "")
    ]


def document(app: FastAPI, *, demo: bool) -> dict[str, Any]:
    if app.openapi_schema is None:
        doc = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=schema_routes(app, demo=demo),
        )
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        # FastAPI's shapes of a 422; the handler in app.py answers a Problem instead.
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas["Problem"] = Problem.model_json_schema(ref_template=PROBLEM_REF)
        for path, item in doc.get("paths", {}).items():
            for method, operation in item.items():
                _document_errors(path, method, operation)
        app.openapi_schema = doc
    return app.openapi_schema


def error_statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    """The error statuses an operation may answer, from its shape: what it reads (the
    database: 503), whether it takes input (422), needs a session (401, and 403 for what
    the level or a restriction forbids), names a thing in its path (404), or changes
    state (409 conflicts, 429 limits on tries, 400 recorded refusals)."""
    if path == "/healthz":
        return []
    statuses = {503}
    takes_input = bool(operation.get("parameters") or operation.get("requestBody"))
    if takes_input or method in STATE_CHANGING:
        statuses.add(422)
    if operation.get("security"):
        statuses |= {401, 403}
    if "{" in path:
        statuses.add(404)
    if method in STATE_CHANGING:
        statuses |= {400, 409, 429}
    return sorted(statuses)


def _document_errors(path: str, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    staff_only = operation.get("security") == [{"staffBearer": []}]
    merchant_only = operation.get("security") == [{"merchantBearer": []}]
    for status in error_statuses(path, method, operation):
        declared = responses.get(str(status), {})
        meaning = STAFF_ERRORS.get(status) if staff_only else None
        if merchant_only:
            meaning = MERCHANT_ERRORS.get(status)
        response: dict[str, Any] = {
            "description": declared.get("description") or meaning or ERRORS[status],
            "content": {"application/json": {"schema": {"$ref": PROBLEM_REF}}},
        }
        if status in (429, 503):
            retry_only = {"Retry-After": RATE_LIMIT_HEADERS["Retry-After"]}
            response["headers"] = RATE_LIMIT_HEADERS if status == 429 else retry_only
        responses[str(status)] = response
    for code, declared in responses.items():
        # An error a route declared itself (``responses={409: ...}``) is a Problem too.
        if code[0] in "45" and (int(code) not in ERRORS or "content" not in declared):
            declared["content"] = {"application/json": {"schema": {"$ref": PROBLEM_REF}}}
