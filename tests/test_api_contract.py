"""The API's contract as a client generator reads it from /openapi.json: the bearer
scheme on every operation that needs a session, the problem body for every error
(422 included), stable operationIds, examples for money requests, no demo routes outside
demo mode; and what the server sends that the document promises: 405 with ``Allow``, 429
with ``Retry-After`` and the RateLimit fields."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from qianbao import access
from qianbao.app import create_app
from qianbao.backoffice.api import current_staff
from qianbao.clock import FrozenClock
from qianbao.identity.api import current_session
from qianbao.openplatform.portal.api import current_merchant_user
from qianbao.settings import Settings
from tests.api_helpers import AGREEMENT, api_sign_up

MONEY_REQUESTS = [
    ("post", "/api/v1/orders/{order_id}/pay"),
    ("post", "/api/v1/wallet/transfers/quote"),
    ("post", "/api/v1/wallet/transfers"),
    ("post", "/api/v1/tour-pass/top-ups"),
    ("post", "/api/v1/orders/{order_id}/pay/tour-pass"),
    ("post", "/api/v1/pay-for-me/{token}/pay"),
    ("post", "/api/v1/wallet/topup-codes/redemptions"),
    ("post", "/api/v1/wallet/cards"),
    ("post", "/api/v1/demo/shop/orders"),
    ("post", "/api/v1/demo/shop/orders/{order_id}/refunds"),
]
PROBLEM = {"$ref": "#/components/schemas/Problem"}


@pytest.fixture
def doc(client: TestClient) -> dict[str, Any]:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def needs_session(route: APIRoute) -> bool:
    return depends_on(route, current_session)


def depends_on(route: APIRoute, call: Any) -> bool:
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if dependency.call is call:
            return True
        pending.extend(dependency.dependencies)
    return False


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_the_document_is_well_formed_openapi(client: TestClient, doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.") and doc["info"]["title"]
    schemas = doc["components"]["schemas"]
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    for path, method, operation in operations(doc):
        assert operation["responses"], (method, path)
        assert all(r.get("description") for r in operation["responses"].values()), path
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)
    assert "swagger-ui" in client.get("/docs").text


def test_bearer_is_the_security_scheme_of_every_operation_that_needs_a_session(
    client: TestClient, doc: dict[str, Any]
) -> None:
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "opaque session token",
        "description": "The `token` from POST /api/v1/auth/sessions (or password-sessions).",
    }
    checked = 0
    for context in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        route = context.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods:
            operation = doc["paths"][context.path_format][method.lower()]
            if needs_session(route):
                assert operation["security"] == [{"bearer": []}], context.path
                assert operation["responses"]["401"]["content"]["application/json"]["schema"] == (
                    PROBLEM
                )
                checked += 1
            elif depends_on(route, current_staff):
                assert operation["security"] == [{"staffBearer": []}], context.path
            elif depends_on(route, current_merchant_user):
                assert operation["security"] == [{"merchantBearer": []}], context.path
            else:
                assert "security" not in operation, context.path
    assert checked > 50
    assert doc["paths"]["/api/v1/me"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in doc["paths"]["/api/v1/auth/sms-codes"]["post"]


def test_the_staff_api_has_a_security_scheme_of_its_own_matching_the_access_table(
    doc: dict[str, Any],
) -> None:
    """Each staff operation lists ``staffBearer`` (never the person's ``bearer``) and
    each person's API operation ``bearer``: exactly as qianbao/access.py declares them."""
    scheme = doc["components"]["securitySchemes"]["staffBearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "/api/v1/staff/sessions" in scheme["description"]
    staff_operations = 0
    schemes: dict[str, list[dict[str, list[str]]]] = {
        "staff": [{"staffBearer": []}],
        "person": [{"bearer": []}],
        "merchant": [{"merchantBearer": []}],
    }
    for path, method, operation in operations(doc):
        who = access.declared(method.upper(), path)
        assert who is not None, (method, path)
        wanted = schemes.get(who.kind)
        assert operation.get("security") == wanted, (method, path)
        if who.kind == "staff":
            staff_operations += 1
            responses = operation["responses"]
            assert "staff.not_signed_in" in responses["401"]["description"], (method, path)
            assert "staff.role" in responses["403"]["description"], (method, path)
    assert staff_operations >= 19


def test_every_error_answer_is_a_problem_body_and_422_is_not_fastapis(
    doc: dict[str, Any],
) -> None:
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"code", "message", "details"}
    assert (
        "HTTPValidationError" not in str(doc)
        and "ValidationError" not in doc["components"]["schemas"]
    )
    seen: set[str] = set()
    for path, method, operation in operations(doc):
        for status, response in operation["responses"].items():
            if status[0] in "45":
                seen.add(status)
                assert response["content"]["application/json"]["schema"] == PROBLEM, (
                    method,
                    path,
                    status,
                )
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in operation["responses"], (method, path)
    assert seen == {"400", "401", "403", "404", "409", "422", "429", "503"}
    send = doc["paths"]["/api/v1/wallet/transfers"]["post"]["responses"]
    assert set(send["429"]["headers"]) == {"Retry-After", "RateLimit", "RateLimit-Policy"}


def test_operation_ids_are_unique_and_named_by_tag_and_function(doc: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(doc)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z_]+\.[a-z0-9_]+", i) for i in ids), ids
    assert doc["paths"]["/api/v1/wallet/transfers"]["post"]["operationId"] == "transfers.send"
    assert doc["paths"]["/api/v1/tour-pass/top-ups"]["post"]["operationId"] == "tour_pass.top_up"
    assert all(operation.get("tags") for _, _, operation in operations(doc))


def test_every_money_request_body_has_an_example(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    for method, path in MONEY_REQUESTS:
        body = doc["paths"][path][method]["requestBody"]["content"]["application/json"]
        name = body["schema"]["$ref"].rsplit("/", 1)[1]
        examples = schemas[name]["examples"]
        assert examples, (path, name)
        for example in examples:
            assert set(schemas[name].get("required", [])) <= set(example), (path, name)


def test_demo_routes_are_documented_only_in_demo_mode(settings: Settings) -> None:
    def demo_paths(demo: bool) -> list[str]:
        app = create_app(settings.model_copy(update={"demo": demo}))
        return [path for path in app.openapi()["paths"] if "/demo/" in path]

    assert demo_paths(False) == []
    assert "/api/v1/demo/shop/orders" in demo_paths(True)


def test_405_names_every_method_the_address_takes(client: TestClient) -> None:
    answer = client.put("/api/v1/wallet/transfers")
    assert answer.status_code == 405 and answer.headers["Allow"] == "GET, POST"
    assert answer.json()["code"] == "method_not_allowed"
    page = client.delete("/healthz", headers={"Accept": "text/html"})
    assert page.status_code == 405 and page.headers["Allow"] == "GET"


def test_a_rate_limited_answer_carries_retry_after_and_the_ratelimit_fields(
    client: TestClient, clock: FrozenClock
) -> None:
    phone = {"country": "GB", "number": "07911 123456"}
    ask = {**phone, "purpose": "signup", "agreement_version": AGREEMENT}
    assert client.post("/api/v1/auth/sms-codes", json=ask).status_code == 201
    again = client.post("/api/v1/auth/sms-codes", json=ask)
    assert again.status_code == 429 and again.json()["code"] == "otp.resend_too_soon"
    assert again.headers["Retry-After"] == "60"
    assert again.headers["RateLimit-Policy"] == '"otp.resend_too_soon";q=1;w=60'
    assert again.headers["RateLimit"] == '"otp.resend_too_soon";r=0;t=60'
    for _ in range(2):  # the hourly cap of one purpose: three codes an hour
        clock.advance(seconds=61)
        assert client.post("/api/v1/auth/sms-codes", json=ask).status_code == 201
    clock.advance(seconds=61)
    capped = client.post("/api/v1/auth/sms-codes", json=ask)
    assert capped.status_code == 429 and capped.json()["code"] == "otp.purpose_hourly_cap"
    wait = int(capped.headers["Retry-After"])
    assert capped.headers["RateLimit-Policy"] == '"otp.purpose_hourly_cap";q=3;w=3600'
    assert capped.headers["RateLimit"] == f'"otp.purpose_hourly_cap";r=0;t={wait}'
    assert 0 < wait <= 3600 - 2 * 61


def test_a_quota_on_a_shared_key_names_its_policy_too(
    client: TestClient, clock: FrozenClock
) -> None:
    """One address asking codes for a fourth country in a day: the quota is three."""
    for number, country in [("07911 123456", "GB"), ("8123 4567", "SG"), ("012-345 6789", "MY")]:
        ask = {"country": country, "number": number, "purpose": "signup"}
        sent = client.post("/api/v1/auth/sms-codes", json={**ask, "agreement_version": AGREEMENT})
        assert sent.status_code == 201, sent.text
        clock.advance(hours=1)
    fourth = {"country": "ID", "number": "0812-3456-789", "purpose": "signup"}
    refused = client.post("/api/v1/auth/sms-codes", json={**fourth, "agreement_version": AGREEMENT})
    assert refused.status_code == 429 and refused.json()["code"] == "otp.too_many_countries"
    assert refused.headers["Retry-After"] == str(21 * 3600)
    assert refused.headers["RateLimit-Policy"] == '"otp.too_many_countries";q=3;w=86400'
    assert refused.headers["RateLimit"] == f'"otp.too_many_countries";r=0;t={21 * 3600}'


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/api/v1/verification", "verification.no_case"),
        ("/api/v1/verification/identity", "verification.not_verified"),
    ],
)
def test_a_404_without_an_id_in_the_path_is_in_the_document(
    client: TestClient, doc: dict[str, Any], path: str, code: str
) -> None:
    """Found by schemathesis: a person with no verification yet got a 404 the document
    did not list (it listed 404 only where the path names a thing)."""
    auth = {"Authorization": f"Bearer {api_sign_up(client)['token']}"}
    answer = client.get(path, headers=auth)
    assert (answer.status_code, answer.json()["code"]) == (404, code)
    documented = doc["paths"][path]["get"]["responses"]["404"]
    assert documented["content"]["application/json"]["schema"] == PROBLEM
