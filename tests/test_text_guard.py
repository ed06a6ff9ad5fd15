"""Control characters are refused at the edge with a 4xx that names the field, whatever
the route and whatever the database (a NUL reached PostgreSQL, which gave a server error
with the statement in the log)."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_a_nul_in_a_json_field_is_a_422_that_names_the_field(client: TestClient) -> None:
    answer = client.post(
        "/api/v1/auth/password-sessions",
        json={"login": "07911\x00123456", "country": "GB", "password": "x" * 10},
    )
    assert answer.status_code == 422
    assert answer.json()["code"] == "request.control_characters"
    assert answer.json()["details"] == {"field": "login"}


def test_nested_fields_query_strings_and_forms_are_checked_too(client: TestClient) -> None:
    nested = client.post("/api/v1/password-strength", json={"password": "a\x1bb"})
    assert nested.json()["details"] == {"field": "password"}
    query = client.get("/api/v1/calling-codes", params={"q": "\x00"})
    assert (query.status_code, query.json()["details"]) == (422, {"field": "q"})
    form = client.post(
        "/api/v1/auth/number-check", data={"country": "GB", "number": "07911\x07123456"}
    )
    assert (form.status_code, form.json()["details"]) == (422, {"field": "number"})


def test_the_refusal_speaks_the_request_s_language(client: TestClient) -> None:
    answer = client.post(
        "/api/v1/password-strength",
        json={"password": "\x00"},
        headers={"Accept-Language": "zh-CN"},
    )
    assert answer.status_code == 422 and "NUL" in answer.json()["message"]
    assert (
        answer.json()["message"]
        != client.post("/api/v1/password-strength", json={"password": "\x00"}).json()["message"]
    )


def test_tabs_and_new_lines_are_text(client: TestClient) -> None:
    answer = client.post("/api/v1/password-strength", json={"password": "two\nlines\tand tab"})
    assert answer.status_code == 200
