"""The redaction layer on its own: what it removes, what it keeps, and request ids."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from qianbao.observability import http, logs
from qianbao.observability.logs import REDACTED, scrub


@pytest.mark.parametrize(
    "secret",
    [
        "+447911123456",
        "+44 7911 123456",
        "07911 123456",
        "07911123456",
        "(020) 7946 0958",
        "012-345 6789",
        "138 0013 8000",
        "4000 0000 0084 0019",
        "4000000000840019",
        "4000-0000-0084-0019",
        "123456",
        "8024",
        "1990-05-17",
        "17.05.1990",
        "900517",
        "L898902C3",
        "X12345678",
        "P<GBRSMITH<<JOHN<PETER<<<<<<<<<<<<<<<<<<<<<",
        "traveller@example.com",
        "GET /api/v1/demo/outbox?phone=%2B447400900123",
        "GET /pay?token=abc&x=1",
        "Bearer mF_9.B5f-4.1JqM",
        "kP3xZr9QwE2mN8vT5yLb7HcJ1sDfGa4u",  # a token_urlsafe() session token
    ],
)
def test_a_secret_in_free_text_is_redacted(secret: str) -> None:
    said = scrub(f"user said {secret} then left")
    assert secret not in said and REDACTED in said


@pytest.mark.parametrize(
    "kept",
    [
        "GET /api/v1/orders/{order_id}/pay",
        "order 7c9e6679-7425-40de-944b-e07fc1f90ae7 closed",
        "request 0f8fad5bd9cb469fa16570867728950e",
        "otp.mismatch after 3 tries",
        "Uvicorn running on http://127.0.0.1:8000",
        'File "/work/qianbao/wallet/payments/service.py", line 1218, in pay',
        "HTTP 503 from the bank",
    ],
)
def test_ordinary_operations_text_is_kept(kept: str) -> None:
    assert scrub(kept) == kept


def test_sqlalchemy_parameters_and_key_values_are_redacted() -> None:
    text = "IntegrityError\n[SQL: INSERT INTO users VALUES (?)]\n[parameters: ('+447911123456',)]"
    assert "+4479" not in scrub(text) and "[SQL: INSERT INTO users VALUES (?)]" in scrub(text)
    assert scrub("password=hunter2 token: abc") == f"password={REDACTED} token: {REDACTED}"


def test_fields_named_like_secrets_are_dropped_and_the_request_id_is_bound(
    captured: io.StringIO,
) -> None:
    log = logging.getLogger("qianbao.test")
    with structlog.contextvars.bound_contextvars(request_id="abc-123"):
        log.info(
            "signed in",
            extra={"phone": "+447911123456", "reserved_phone": "x", "rows": 4, "status": 200},
        )
    try:
        raise ValueError("code 246810 for +447911123456")
    except ValueError:
        log.exception("failed")
    first, second = (json.loads(line) for line in captured.getvalue().splitlines())
    assert first["request_id"] == "abc-123" and first["event"] == "signed in"
    assert first["phone"] == REDACTED and first["reserved_phone"] == REDACTED
    assert (first["rows"], first["status"], first["level"]) == (4, 200, "info")
    assert "ValueError" in second["exception"]
    assert "246810" not in second["exception"] and "+447911" not in second["exception"]


def test_console_format_is_for_people(captured: io.StringIO) -> None:
    buffer = io.StringIO()
    logs.configure("INFO", "console", stream=buffer)
    logging.getLogger("qianbao.test").info("hello %s", "+447911123456")
    assert "hello" in buffer.getvalue() and "+447911123456" not in buffer.getvalue()
    assert not buffer.getvalue().startswith("{")


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("abc-123", True),
        ("0f8fad5b-d9cb-469f-a165-70867728950e", True),
        ("", False),
        ("x" * 65, False),
        ("has space", False),
        ("<script>", False),
        ("+447911123456", False),  # would be redacted in the log: replaced instead
        ("447911123456", False),
    ],
)
def test_a_request_id_is_kept_only_when_short_plain_and_loggable(given: str, kept: bool) -> None:
    chosen = http.request_id(given)
    assert (chosen == given) is kept
    assert len(chosen) <= 64
