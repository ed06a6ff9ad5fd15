"""A database error that reaches the edge gets an answer a client can act on: a fired
constraint is a 409 with a stable code (and an error in the log), contention that outlasted
every retry or a database that cannot be reached is a 503 with Retry-After, anything else
a 500. Never "busy" for a race the code should have answered itself."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from qianbao import access
from qianbao.app import create_app
from qianbao.settings import Settings


@pytest.fixture(autouse=True)
def _declared(monkeypatch: pytest.MonkeyPatch) -> None:
    """The route these tests add says who may call it, as every route must."""
    monkeypatch.setitem(access.ROUTES, "GET /api/v1/test-only/fail", access.ANYONE)


class _DriverError(Exception):
    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _answer(settings: Settings, error: DBAPIError) -> tuple[int, dict[str, object], str]:
    app = create_app(settings)

    @app.get("/api/v1/test-only/fail")
    def fail() -> None:
        raise error

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/v1/test-only/fail")
    return response.status_code, response.json(), response.headers.get("retry-after", "")


def test_a_fired_constraint_is_a_409_and_an_error_in_the_log(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    error = IntegrityError("INSERT ...", {}, _DriverError("CHECK constraint failed", "23514"))
    with caplog.at_level(logging.ERROR):
        status, body, retry_after = _answer(settings, error)
    assert (status, body["code"], retry_after) == (409, "request.conflict", "")
    assert any(record.levelno == logging.ERROR for record in caplog.records)


def test_contention_past_every_retry_is_503_with_retry_after(settings: Settings) -> None:
    error = OperationalError("SELECT ...", {}, _DriverError("could not serialize", "40001"))
    status, body, retry_after = _answer(settings, error)
    assert (status, body["code"], retry_after) == (503, "service.busy", "2")


def test_an_unreachable_database_is_503(settings: Settings) -> None:
    error = OperationalError("SELECT 1", {}, _DriverError("connection refused"))
    status, body, _ = _answer(settings, error)
    assert (status, body["code"]) == (503, "service.busy")


def test_any_other_database_error_is_a_500_not_busy(settings: Settings) -> None:
    error = DBAPIError("SELECT nonsense", {}, _DriverError("syntax error", "42601"))
    status, body, retry_after = _answer(settings, error)
    assert (status, body["code"], retry_after) == (500, "service.error", "")
