"""Structured logs: one JSON object per line, the request id in each, nothing personal.

Why structlog, and only as the formatter: the code logs through the standard library
(``logging.getLogger(__name__)``, fields in ``extra=``), and so do uvicorn, SQLAlchemy
and every other library. structlog's ``ProcessorFormatter`` runs each of those records
through one processor chain: the request id bound in a context variable is added, the
``extra`` fields become keys, secrets are redacted, and the line is rendered as JSON
(or for a person at a console). One chain for every record means no record escapes the
redaction, and no second logging API to learn. The whole setup is a ``dictConfig``
dict, so ``uvicorn --workers N`` applies the same setup in each process it starts.

Redaction is defence in depth: log calls are written to leave secrets out, and
``redact`` still scrubs every line: values under names such as ``phone``, ``token`` or
``passport`` are dropped, and in every text, bearer tokens, phone numbers (E.164 and
national forms), URL query values, digit runs that could be a code, a card number or a birth date,
passport-like numbers, machine-readable zone lines, e-mail addresses, token-like
strings and SQLAlchemy's ``[parameters: ...]`` are replaced by ``[redacted]``. It has
false positives (a four-digit number in a message goes too); structured fields that
are numbers (``status``, ``duration_ms``, ``rows``) are kept.
"""

from __future__ import annotations

import logging
import logging.config
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import IO, Any, Literal

import structlog

REDACTED = "[redacted]"
LogFormat = Literal["json", "console"]

# Keys whose value is dropped whatever it looks like (matched on the key's words, so
# ``reserved_phone`` and ``card_number`` are caught too).
SENSITIVE_WORDS = frozenset(
    {
        "password", "passwd", "secret", "token", "authorization", "cookie", "code", "otp",
        "pin", "cvv", "pan", "card", "number", "phone", "e164", "msisdn", "passport",
        "document", "name", "surname", "given", "birth", "dob", "email", "recipient", "to",
        "body", "address", "ip", "mrz", "face", "selfie", "key",
    }
)  # fmt: skip
# Keys the pipeline itself writes, or that hold what we chose to log: their words are
# not matched (their text values are still scrubbed).
SAFE_KEYS = frozenset(
    {
        "event", "level", "logger", "timestamp", "request_id", "route", "method", "status",
        "duration_ms", "job", "rows", "failed", "exception", "stack",
    }
)  # fmt: skip

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # "Authorization: Bearer abc", "bearer=abc"
    (re.compile(r"(?i)\b(bearer)\s+[^\s,;\"']+"), r"\1 " + REDACTED),
    # SQLAlchemy errors quote the statement's parameters (numbers, hashes, texts).
    (re.compile(r"\[parameters: [^\n]*"), f"[parameters: {REDACTED}]"),
    # key=value and key: value for secret names in free text
    (
        re.compile(
            r"(?i)\b(password|passwd|secret|token|otp|cvv|pin|cookie|authorization)"
            r"(\"?'?\s*[:=]\s*\"?'?)[^\s,;&\"']+"
        ),
        r"\1\2" + REDACTED,
    ),
    # A URL's query values (?phone=%2B44..., ?token=...): an HTTP client logs whole URLs.
    (re.compile(r"([?&][\w.%-]+=)[^&\s#\"']*"), r"\1" + REDACTED),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), REDACTED),  # e-mail addresses
    # Machine-readable zone lines: names and numbers between chevrons.
    (re.compile(r"[A-Z0-9<]*<<[A-Z0-9<]*"), REDACTED),
    # E.164 and written-out international numbers, "+" URL-encoded too
    (re.compile(r"(?:\+|%2[Bb])\d[\d\s().-]{5,}\d"), REDACTED),
    # Passport-like numbers: capitals and at least three digits (L898902C3, X1234567).
    (
        re.compile(r"(?<![\w-])(?=[A-Z0-9]*[A-Z])(?=(?:[A-Z0-9]*\d){3})[A-Z0-9]{6,12}(?![\w-])"),
        REDACTED,
    ),
    # Token-like strings: long, with capitals, small letters and digits (not a hex id).
    (
        re.compile(
            r"(?<![\w-])(?=[\w-]*[A-Z])(?=[\w-]*[a-z])(?=[\w-]*\d)[A-Za-z0-9_-]{20,}(?![\w-])"
        ),
        REDACTED,
    ),
]
# Digit runs (spaces, dashes, dots and brackets between) of four digits or more: SMS
# codes, national phone numbers, card numbers, dates of birth. Not inside a word, an
# address or a path, and not a traceback's "line 1234".
_DIGITS = re.compile(r"(?<![\w.:/-])(?<!line )\(?\d(?:[\d ().-]*\d)?(?![\w:/-]|\.\d)")


def scrub(text: str) -> str:
    """``text`` with everything that looks like a secret or a personal datum replaced."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _DIGITS.sub(_digits_replacement, text)


def _digits_replacement(match: re.Match[str]) -> str:
    found = match.group(0)
    return REDACTED if sum(c.isdigit() for c in found) >= 4 else found


def _sensitive(key: str) -> bool:
    if key in SAFE_KEYS:
        return False
    words = re.split(r"[^a-z0-9]+", key.lower())
    return any(word in SENSITIVE_WORDS for word in words)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {str(k): REDACTED if _sensitive(str(k)) else _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(item) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return scrub(str(value))


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The structlog processor: sensitive keys dropped, every text scrubbed."""
    event.pop("color_message", None)  # uvicorn's copy of the message, in terminal colours
    for key in list(event):
        if key in ("timestamp", "level", "logger", "_record", "_from_structlog"):
            continue
        event[key] = REDACTED if _sensitive(key) else _clean(event[key])
    return event


def _pre_chain() -> list[Any]:
    """What every record gets before formatting, ours and the libraries' alike."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def formatter(fmt: LogFormat = "json") -> logging.Formatter:
    """The formatter of every handler (``dictConfig`` calls it by name, in each process)."""
    if fmt == "json":
        renderer: Any = structlog.processors.JSONRenderer(sort_keys=False, ensure_ascii=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_pre_chain(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,  # a traceback becomes text, then scrubbed
            redact,
            renderer,
        ],
    )


def logging_config(
    level: str = "INFO", fmt: LogFormat = "json", stream: IO[str] | None = None
) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict: every record to one handler on stderr.

    uvicorn's own loggers go to the same handler (its access log stays off: ours has the
    route template and the request id); SQLAlchemy stays at WARNING whatever the level,
    because at INFO it logs every statement's parameters."""
    handler: dict[str, Any] = {
        "class": "logging.StreamHandler",
        "formatter": "structured",
        "stream": stream if stream is not None else "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": {"()": f"{__name__}.formatter", "fmt": fmt}},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True, "level": level.upper()},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
            "sqlalchemy": {"handlers": [], "propagate": True, "level": "WARNING"},
        },
    }


def configure(level: str = "INFO", fmt: LogFormat = "json", stream: IO[str] | None = None) -> None:
    """Set up logging for this process; called once at start (serve, worker)."""
    logging.config.dictConfig(logging_config(level, fmt, stream))
