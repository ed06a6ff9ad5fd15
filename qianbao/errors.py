"""Domain errors. Each has a stable ``code`` and a message that is translated when shown.

Every error becomes a problem body ``{code, message, details}``; the HTTP status, and a
``Retry-After`` header where the error says when to try again, come with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from qianbao.i18n import translate


@dataclass(frozen=True)
class RateLimit:
    """The limit a 429 ran into, for the ``RateLimit-Policy`` and ``RateLimit`` headers
    (draft-ietf-httpapi-ratelimit-headers): ``quota`` events per ``window_seconds``,
    ``remaining`` of them left now. ``quota`` is None for a lock that is no quota (too
    many wrong codes): the answer then says only what is left and for how long."""

    policy: str
    quota: int | None = None
    window_seconds: int | None = None
    remaining: int = 0


class QianbaoError(Exception):
    """The root of every error a person or a merchant may see."""

    status: int = 400
    # A refusal that must still be remembered (a wrong SMS code counts against the
    # number) sets this: the transaction commits what it wrote, then the error is shown.
    keeps_changes: bool = False

    def __init__(
        self,
        code: str,
        message: str,
        params: Mapping[str, Any] | None = None,
        *,
        details: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
        status: int | None = None,
        rate_limit: RateLimit | None = None,
    ) -> None:
        super().__init__(code)
        if status is not None:
            self.status = status
        self.code = code
        self.message = message
        self.params = dict(params or {})
        self.details = dict(details or {})
        self.retry_after = None if retry_after is None else max(1, math.ceil(retry_after))
        self.rate_limit = rate_limit

    def localized_message(self) -> str:
        return translate(self.message, self.params)

    def problem(self) -> dict[str, Any]:
        details = dict(self.details)
        if self.retry_after is not None:
            details.setdefault("retry_after", self.retry_after)
        return {"code": self.code, "message": self.localized_message(), "details": details}

    def headers(self) -> dict[str, str]:
        """``Retry-After``, and on a 429 the draft's ``RateLimit`` fields (the policy is
        named by the error code, so a client can tell one limit from another)."""
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after else {}
        if self.status != 429:
            return headers
        limit = self.rate_limit or RateLimit(self.code)
        name = _sf_string(limit.policy)
        if limit.quota is not None:
            window = f";w={limit.window_seconds}" if limit.window_seconds else ""
            headers["RateLimit-Policy"] = f"{name};q={limit.quota}{window}"
        reset = f";t={self.retry_after}" if self.retry_after else ""
        headers["RateLimit"] = f"{name};r={max(0, limit.remaining)}{reset}"
        return headers

    def __str__(self) -> str:
        return f"{self.code}: {self.message.format(**self.params) if self.params else self.message}"


def _sf_string(text: str) -> str:
    """A Structured Field string (RFC 9651 3.3.3): printable ASCII, quoted, escaped."""
    printable = "".join(c if " " <= c <= "~" else "_" for c in text)
    return '"' + printable.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InvalidInput(QianbaoError):
    status = 422


class NotAuthenticated(QianbaoError):
    status = 401


class Forbidden(QianbaoError):
    status = 403


class NotFound(QianbaoError):
    status = 404


class Conflict(QianbaoError):
    status = 409


class TooManyRequests(QianbaoError):
    status = 429


class RecordedRefusal(QianbaoError):
    """A refusal whose bookkeeping (an attempt counter) must be committed."""

    status = 400
    keeps_changes = True


class FixedCode:
    """Gives an error class its own code and message, so callers raise and catch it by
    name (the card network's and the bank's refusals)."""

    code_: ClassVar[str]
    message_: ClassVar[str]


class SignInRequired(NotAuthenticated):
    """No one (or no one allowed) is signed in where a route needs it: the API answers
    401; a page sends the browser to ``sign_in_at``."""

    def __init__(
        self, code: str, message: str, sign_in_at: str, back_to: str | None = None
    ) -> None:
        super().__init__(code, message)
        self.sign_in_at = sign_in_at
        self.back_to = back_to  # the page to open again after the login
