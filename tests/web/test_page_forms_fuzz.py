"""The pages' forms are not in the OpenAPI document (schemathesis does not reach them) and
not behind the API's control-character guard: every form of every page, signed in with
a valid CSRF token, each field in turn given what broke the API before (a NUL, a
direction override, an amount no column holds, a very long text), answers a page or a
redirect, never a server error."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from tests.web.test_pages import csrf, sign_up_by_form

# Found here on PostgreSQL and left to the back-office work (identity/staff.py): see below.
BACK_OFFICE_LOGIN = "/admin/login"
ODD_VALUES = ["\x00", "a\u202eb", "1e30", "NaN", "9" * 40, "x" * 5000, "-1", "０.０１"]


def page_forms(client: TestClient) -> Iterator[tuple[str, list[str]]]:
    """Each page route taking a form (outside the API and the document), with its fields."""
    documented = client.get("/openapi.json").json()["paths"]
    for context in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        route, path = context.original_route, context.path_format
        if not isinstance(route, APIRoute) or "POST" not in route.methods:
            continue
        if path in documented or path.startswith("/api/") or path == BACK_OFFICE_LOGIN:
            continue
        fields = [param.alias for param in route.dependant.body_params if param.alias != "csrf"]
        if fields:  # a form without fields (log out, cancel) takes nothing odd
            yield path, fields


def filled(path: str) -> str:
    """The path with each parameter named: a fresh id, which names nothing."""
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


@pytest.mark.parametrize("odd", ODD_VALUES)
def test_no_page_form_answers_a_server_error(client: TestClient, odd: str) -> None:
    sign_up_by_form(client)
    token = csrf(client)
    failures = []
    for path, fields in page_forms(client):
        for name in fields:
            data = dict.fromkeys(fields, "1") | {"csrf": token, name: odd}
            answer = client.post(filled(path), data=data, follow_redirects=False)
            if answer.status_code >= 500:
                failures.append(f"POST {path} {name}={odd[:20]!r}: {answer.status_code}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("odd", ["\x00", "x" * 5000])
def test_the_back_office_login_takes_any_username(client: TestClient, odd: str) -> None:
    """An impossible username (a NUL, 5,000 characters) is answered as a wrong password
    is, before it reaches the rate-limit key (a 500 on PostgreSQL before)."""
    token = csrf(client, BACK_OFFICE_LOGIN)
    wrong = {"csrf": token, "username": "nobody", "password": "x"}
    wrong_answer = client.post(BACK_OFFICE_LOGIN, data=wrong)
    answer = client.post(BACK_OFFICE_LOGIN, data={"csrf": token, "username": odd, "password": "x"})
    assert answer.status_code == wrong_answer.status_code < 500
