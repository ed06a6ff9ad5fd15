"""Whatever a client sends, the answer is a problem body or success, never a 500."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ENDPOINTS = ["/api/v1/auth/number-check", "/api/v1/auth/sms-codes", "/api/v1/auth/sessions"]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "country": st.sampled_from(["GB", "CN", "MY", "XX", "", "001-882"]) | st.text(max_size=9),
        "number": st.text(max_size=45) | st.integers(),
        "purpose": st.sampled_from(["signup", "login", "other"]),
        "code": st.text(max_size=10),
        "agreement_version": st.sampled_from(["2026-11-01", ""]) | st.text(max_size=40),
    },
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    body=FIELDS | JSON_VALUES,
    language=st.sampled_from(["en", "zh-CN", "fr", ""]),
)
def test_no_input_makes_the_api_fail(
    client: TestClient, endpoint: str, body: object, language: str
) -> None:
    response = client.post(
        endpoint,
        content=json.dumps(body),
        headers={"Content-Type": "application/json", "Accept-Language": language},
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        problem = response.json()
        assert set(problem) == {"code", "message", "details"}
        assert problem["message"]
