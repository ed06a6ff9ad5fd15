"""Domain errors. Each has a stable ``code`` and a message that is translated when shown.

Every error becomes a problem body ``{code, message, details}``; the HTTP status, and a
``Retry-After`` header where the error says when to try again, come with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from qianbao.i18n import translate


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
    ) -> None:
        super().__init__(code)
        if status is not None:
            self.status = status
        self.code = code
        self.message = message
        self.params = dict(params or {})
        self.details = dict(details or {})
        self.retry_after = None if retry_after is None else max(1, math.ceil(retry_after))

    def localized_message(self) -> str:
        return translate(self.message, self.params)

    def problem(self) -> dict[str, Any]:
        details = dict(self.details)
        if self.retry_after is not None:
            details.setdefault("retry_after", self.retry_after)
        return {"code": self.code, "message": self.localized_message(), "details": details}

    def __str__(self) -> str:
        return f"{self.code}: {self.message.format(**self.params) if self.params else self.message}"


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
