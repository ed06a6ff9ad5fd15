"""The mainland bank connector: four-element card verification with an SMS code.

Binding a mainland China debit card proves a real name the way Chinese payment
institutions do it (银行卡四要素验证): the bank checks that the card number, the holder's
name, the ID document number and the mobile number reserved at the bank (预留手机号) all
belong together, then sends a code by SMS to that reserved number; whoever types the
code back holds both the card details and the phone. A ``BankConnector`` does the two
steps: ``start_verification`` (check the four elements, send the code) and ``confirm``
(check the code). The caller checks the card number with ``funding.cards`` first; the
connectors check it again, so nothing malformed reaches a bank.

Two connectors (``qianbao/funding/connectors.py`` picks one by setting):

* ``SandboxBank`` (the default, in ``qianbao/funding/sandbox/bank.py``): a bank with a
  documented table of test cards (``SANDBOX_CARDS``, listed in docs/sandbox_bank.md),
  each with its holder, passport number, reserved phone and outcome, the way a payment
  provider's test mode works. The details typed are really compared with the card's
  record; a card whose outcome is a refusal refuses even when its documented details are
  typed. It "sends" the code through the ``send_sms`` callback it is given and keeps its
  books in a store every process shares.
* ``HttpBank``: a four-element verification provider over HTTPS, JSON both ways:

  ``POST {url}/four-elements/start`` with ``{"card_number", "holder_name", "id_type",
  "id_number", "reserved_phone"}`` answers ``200 {"reference", "masked_phone",
  "expires_at"}``; ``POST {url}/four-elements/confirm`` with ``{"reference",
  "sms_code"}`` answers ``200 {"bank_name", "last4", "card_token"}``. A refusal is a
  4xx with ``{"error": CODE, "tries_left"?: N}``, CODE one of ``PROVIDER_ERRORS``.

  Each request carries ``X-Request-Id`` (a random id), ``X-Timestamp`` (Unix seconds)
  and ``X-Signature: v1=HEX``, HEX being HMAC-SHA256 under the shared secret of
  ``timestamp \\n request-id \\n METHOD \\n path \\n body``. The provider signs its answer
  the same way over ``request-id \\n status \\n body``, binding it to the request, so a
  forged or replayed "verified" is refused. Answers that change nothing (5xx, 429) need
  no signature: a proxy in front of the provider may write them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import httpx
import phonenumbers

from qianbao.clock import Clock, SystemClock
from qianbao.errors import Conflict, FixedCode, InvalidInput, QianbaoError
from qianbao.funding.cards import credit_card_error, normalize_card_number, unionpay_card
from qianbao.i18n import N_
from qianbao.money import Money

log = logging.getLogger("qianbao.bank")

IdType = Literal["passport"]
SendSms = Callable[[str, str], None]

SMS_CODE_DIGITS = 6
DEFAULT_CODE_TTL_SECONDS = 300
DEFAULT_MAX_CODE_TRIES = 5
RETRY_AFTER_SECONDS = 30
SIGNATURE_VERSION = "v1"


# --- what a connector returns --------------------------------------------------------


@dataclass(frozen=True)
class BankChallenge:
    """A code was sent to the reserved phone; ``reference`` names this verification."""

    reference: str
    masked_phone: str
    expires_at: datetime | None = None


@dataclass(frozen=True)
class BankVerificationResult:
    """The bank confirmed the four elements and the code."""

    bank_name: str
    last4: str
    card_token_from_bank: str | None = None
    bank_name_zh: str | None = None


class BankConnector(Protocol):
    def start_verification(
        self,
        card_number: str,
        holder_name: str,
        id_type: IdType,
        id_number: str,
        reserved_phone_e164: str,
    ) -> BankChallenge:
        """Check the four elements; on a match, send a code to the reserved phone."""
        ...

    def confirm(self, reference: str, sms_code: str) -> BankVerificationResult:
        """Check the code the person typed for the verification ``reference``."""
        ...

    def debit(self, card_token: str, amount: Money, *, idempotency_key: str) -> BankMovement:
        """Take ``amount`` (CNY) from the bound card's account (a quick payment under the
        agreement the binding made); the same key returns the same debit."""
        ...

    def credit(self, debit_id: str, amount: Money, *, idempotency_key: str) -> BankMovement:
        """Give back up to what ``debit_id`` took; the same key returns the same credit."""
        ...

    def find_debit(self, idempotency_key: str) -> BankMovement | None:
        """The debit made under a key, if any, asking without making one (to send back
        a debit the wallet never recorded)."""
        ...


@dataclass(frozen=True)
class BankMovement:
    """A debit from, or a credit back to, a bound card's account."""

    id: str
    amount: Money


@dataclass(frozen=True)
class BookedDebit:
    """One debit in the bank's books: the key it was made under, what it took and what
    of it was given back since (CNY). For reconciliation with the wallet's ledger."""

    key: str
    id: str
    taken: Money
    given_back: Money


class BankInsufficientFunds(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "bank.insufficient_funds",
            N_("Your bank account does not have enough money for this payment."),
        )


class BankCreditExceeds(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "bank.credit_exceeds",
            N_("No more can be given back to the bank card than was taken from it."),
        )


class BankSettings(Protocol):
    """The settings this module reads (``qianbao.settings.Settings`` once they are added)."""

    @property
    def bank_connector(self) -> str: ...

    @property
    def bank_http_url(self) -> str: ...

    @property
    def bank_http_secret(self) -> str: ...

    @property
    def bank_http_timeout_seconds(self) -> float: ...


# --- errors: one class per stable code ---------------------------------------------------


class BankInputRefused(InvalidInput, FixedCode):
    """The bank refused what was typed (HTTP 422)."""

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(self.code_, self.message_, params)


class BankStateRefused(Conflict, FixedCode):
    """The card or the verification is in a state that refuses this (HTTP 409)."""

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(self.code_, self.message_, params)


class BankUnavailable(QianbaoError, FixedCode):
    """The bank could not be asked; nothing changed and trying again may work (503)."""

    def __init__(self, retry_after: float = RETRY_AFTER_SECONDS) -> None:
        super().__init__(self.code_, self.message_, retry_after=retry_after, status=503)


class NameMismatch(BankInputRefused):
    code_ = "bank.name_mismatch"
    message_ = N_(
        "The name does not match the name the bank holds for this card. Enter your name "
        "exactly as your bank has it."
    )


class IdMismatch(BankInputRefused):
    code_ = "bank.id_mismatch"
    message_ = N_(
        "The passport number does not match the one the bank holds for this card. Enter "
        "the passport number you gave your bank."
    )


class PhoneMismatch(BankInputRefused):
    code_ = "bank.phone_mismatch"
    message_ = N_(
        "This mobile number is not the one reserved at the bank for this card. Enter the "
        "number you gave your bank, or change it at your bank first."
    )


class CodeWrong(BankInputRefused):
    code_ = "bank.code_wrong"
    message_ = N_(
        "The code is not right. Check the SMS from your bank and type it again. Tries "
        "left: {tries_left}."
    )


class SandboxUnknownCard(BankInputRefused):
    code_ = "bank.sandbox_unknown_card"
    message_ = N_(
        "This is the sandbox bank: only its documented test cards work (see "
        "docs/sandbox_bank.md). Use one of them, or ask the operator to connect a real bank."
    )


class UnsupportedIdType(BankInputRefused):
    code_ = "bank.id_type"
    message_ = N_("Only a passport can be used to verify a bank card here.")


class CardFrozen(BankStateRefused):
    code_ = "bank.card_frozen"
    message_ = N_(
        "Your bank says this card is frozen or closed, so it cannot be verified. Contact "
        "your bank, or use another card."
    )


class CodeExpired(BankStateRefused):
    code_ = "bank.code_expired"
    message_ = N_("The code has expired. Ask for a new code.")


class TooManyTries(BankStateRefused):
    code_ = "bank.too_many_tries"
    message_ = N_("The code was typed wrongly too many times. Ask for a new code.")


class ChallengeUnknown(BankStateRefused):
    code_ = "bank.challenge_unknown"
    message_ = N_("This card verification is no longer open. Start again.")


class BankTimeout(BankUnavailable):
    code_ = "bank.timeout"
    message_ = N_("The bank did not answer in time. Nothing was changed; try again in a minute.")


class BankDown(BankUnavailable):
    code_ = "bank.unavailable"
    message_ = N_("The bank's service is not available right now. Try again later.")


class ProviderError(QianbaoError, FixedCode):
    """The verification provider's answer was unusable or refused our credentials (502)."""

    code_ = "bank.provider_error"
    message_ = N_(
        "The bank's verification service gave an answer Qianbao could not use. Try again "
        "later; if it keeps happening, contact support."
    )

    def __init__(self, reason: str) -> None:
        # The reason goes to the log and the exception text, never to the person.
        super().__init__(self.code_, self.message_, status=502)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code_}: {self.reason}"


# --- shared helpers ----------------------------------------------------------------------


def mask_phone(e164: str) -> str:
    """``+44 ******0001``: the calling code and the last four digits."""
    try:
        parsed = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        digits = "".join(char for char in e164 if char.isdigit())
        return "*" * max(len(digits) - 4, 0) + digits[-4:]
    national = str(parsed.national_number)
    return f"+{parsed.country_code} {'*' * max(len(national) - 4, 0)}{national[-4:]}"


def without_spaces(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


def same_name(typed: str, held: str) -> bool:
    # Banks hold names as on the passport, in capitals; case, width and runs of spaces are
    # how people type them differently, not different names.
    return _name_key(typed) == _name_key(held)


def _name_key(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def id_key(number: str) -> str:
    return "".join(unicodedata.normalize("NFKC", number).upper().split())


def phone_key(e164: str) -> str:
    return "".join(char for char in e164 if char.isdigit() or char == "+")


def require_passport(id_type: str) -> None:
    if id_type != "passport":
        raise UnsupportedIdType()


# --- a verification provider over HTTPS -----------------------------------------------------

# The provider's refusal codes and what they become here.
PROVIDER_ERRORS: Mapping[str, Callable[[Mapping[str, Any]], QianbaoError]] = {
    "name_mismatch": lambda body: NameMismatch(),
    "id_mismatch": lambda body: IdMismatch(),
    "phone_mismatch": lambda body: PhoneMismatch(),
    "card_frozen": lambda body: CardFrozen(),
    "card_not_debit": lambda body: credit_card_error(),
    "bank_timeout": lambda body: BankTimeout(),
    "code_wrong": lambda body: CodeWrong({"tries_left": _tries_left(body)}),
    "code_expired": lambda body: CodeExpired(),
    "too_many_tries": lambda body: TooManyTries(),
    "unknown_reference": lambda body: ChallengeUnknown(),
    "insufficient_funds": lambda body: BankInsufficientFunds(),
    "credit_exceeds": lambda body: BankCreditExceeds(),
}
_LAST4 = re.compile(r"[0-9]{4}")
# What the caller's tables keep of a challenge (qianbao/funding/models.py).
MAX_REFERENCE_LENGTH = 128
MAX_MASKED_PHONE_LENGTH = 32
MAX_BANK_NAME_LENGTH = 128


def request_signature(
    secret: bytes, timestamp: str, request_id: str, method: str, path: str, body: bytes
) -> str:
    """``v1=HEX`` for a request: HMAC-SHA256 over timestamp, id, method, path and body."""
    message = "\n".join((timestamp, request_id, method.upper(), path)).encode() + b"\n" + body
    return f"{SIGNATURE_VERSION}={hmac.new(secret, message, hashlib.sha256).hexdigest()}"


def response_signature(secret: bytes, request_id: str, status: int, body: bytes) -> str:
    """``v1=HEX`` for an answer: HMAC-SHA256 over the request's id, the status and body."""
    message = f"{request_id}\n{status}\n".encode() + body
    return f"{SIGNATURE_VERSION}={hmac.new(secret, message, hashlib.sha256).hexdigest()}"


class HttpBank:
    """A four-element verification provider over HTTPS; see the module docstring."""

    def __init__(
        self,
        base_url: str,
        secret: str,
        *,
        timeout_seconds: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not base_url or not secret:
            raise ValueError(
                "QIANBAO_BANK_HTTP_URL and QIANBAO_BANK_HTTP_SECRET must be set for the "
                "http bank connector"
            )
        self._secret = secret.encode()
        self._clock = clock or SystemClock()
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + "/", timeout=timeout_seconds, transport=transport
        )

    @classmethod
    def from_settings(
        cls,
        settings: BankSettings,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
    ) -> HttpBank:
        return cls(
            settings.bank_http_url,
            settings.bank_http_secret,
            timeout_seconds=settings.bank_http_timeout_seconds,
            transport=transport,
            clock=clock,
        )

    def close(self) -> None:
        self._client.close()

    def start_verification(
        self,
        card_number: str,
        holder_name: str,
        id_type: IdType,
        id_number: str,
        reserved_phone_e164: str,
    ) -> BankChallenge:
        require_passport(id_type)
        unionpay_card(card_number)
        body = self._call(
            "four-elements/start",
            {
                "card_number": normalize_card_number(card_number),
                "holder_name": holder_name.strip(),
                "id_type": id_type,
                "id_number": id_key(id_number),
                "reserved_phone": reserved_phone_e164,
            },
        )
        return BankChallenge(
            reference=_text(body, "reference", max_length=MAX_REFERENCE_LENGTH),
            masked_phone=_text(body, "masked_phone", max_length=MAX_MASKED_PHONE_LENGTH),
            expires_at=_optional_time(body, "expires_at"),
        )

    def confirm(self, reference: str, sms_code: str) -> BankVerificationResult:
        body = self._call(
            "four-elements/confirm", {"reference": reference, "sms_code": without_spaces(sms_code)}
        )
        last4 = _text(body, "last4")
        if not _LAST4.fullmatch(last4):
            raise ProviderError("last4 is not four digits")
        token = body.get("card_token")
        if token is not None and not isinstance(token, str):
            raise ProviderError("card_token is not a string")
        bank_name = _text(body, "bank_name", max_length=MAX_BANK_NAME_LENGTH)
        return BankVerificationResult(bank_name, last4, token)

    def debit(self, card_token: str, amount: Money, *, idempotency_key: str) -> BankMovement:
        body = self._call(
            "payments/debit",
            {
                "card_token": card_token,
                "amount": str(amount.major),
                "currency": amount.currency,
                "idempotency_key": idempotency_key,
            },
        )
        return BankMovement(_text(body, "id", max_length=MAX_REFERENCE_LENGTH), amount)

    def find_debit(self, idempotency_key: str) -> BankMovement | None:
        body = self._call("payments/lookup", {"idempotency_key": idempotency_key})
        if body.get("found") is not True:
            return None
        currency = _text(body, "currency", max_length=3)
        try:
            amount = Money.of(currency, _text(body, "amount"))
        except (ValueError, ArithmeticError) as error:
            raise ProviderError("amount is not a sum of money") from error
        return BankMovement(_text(body, "id", max_length=MAX_REFERENCE_LENGTH), amount)

    def credit(self, debit_id: str, amount: Money, *, idempotency_key: str) -> BankMovement:
        body = self._call(
            "payments/credit",
            {
                "debit_id": debit_id,
                "amount": str(amount.major),
                "currency": amount.currency,
                "idempotency_key": idempotency_key,
            },
        )
        return BankMovement(_text(body, "id", max_length=MAX_REFERENCE_LENGTH), amount)

    def _call(self, path: str, payload: Mapping[str, Any]) -> Mapping[str, Any]:
        content = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        request = self._client.build_request(
            "POST", path, content=content, headers={"Content-Type": "application/json"}
        )
        request_id = secrets.token_hex(16)
        timestamp = str(int(self._clock.now().timestamp()))
        request.headers["X-Request-Id"] = request_id
        request.headers["X-Timestamp"] = timestamp
        request.headers["X-Signature"] = request_signature(
            self._secret, timestamp, request_id, "POST", request.url.path, content
        )
        try:
            response = self._client.send(request)
        except httpx.TimeoutException as error:
            log.warning("bank provider timed out on %s: %s", path, type(error).__name__)
            raise BankTimeout() from error
        except httpx.TransportError as error:
            log.warning("bank provider unreachable on %s: %s", path, type(error).__name__)
            raise BankDown() from error
        return self._answer(response, request_id)

    def _answer(self, response: httpx.Response, request_id: str) -> Mapping[str, Any]:
        status = response.status_code
        if status == 429 or status >= 500:
            retry_after = _retry_after(response)
            if status == 504:
                raise BankTimeout(retry_after)
            raise BankDown(retry_after)
        if status in (401, 403):
            log.error("bank provider refused our credentials (HTTP %s)", status)
            raise ProviderError(f"HTTP {status}: credentials refused")
        expected = response_signature(self._secret, request_id, status, response.content)
        if not hmac.compare_digest(response.headers.get("X-Signature", ""), expected):
            log.error("bank provider answer has a missing or wrong signature (HTTP %s)", status)
            raise ProviderError(f"HTTP {status}: bad response signature")
        body = _json_object(response)
        if status == 200:
            return body
        make_error = PROVIDER_ERRORS.get(str(body.get("error")))
        if 400 <= status < 500 and make_error is not None:
            raise make_error(body)
        log.error("bank provider answered HTTP %s with error %r", status, body.get("error"))
        raise ProviderError(f"HTTP {status}: unexpected answer")


def _json_object(response: httpx.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except ValueError as error:
        raise ProviderError(f"HTTP {response.status_code}: body is not JSON") from error
    if not isinstance(body, dict):
        raise ProviderError(f"HTTP {response.status_code}: body is not a JSON object")
    return body


def _text(body: Mapping[str, Any], key: str, *, max_length: int = 200) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ProviderError(f"{key} is missing or not a string")
    if len(value) > max_length:
        raise ProviderError(f"{key} is longer than {max_length} characters")
    return value


def _optional_time(body: Mapping[str, Any], key: str) -> datetime | None:
    value = body.get(key)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError as error:
        raise ProviderError(f"{key} is not an ISO 8601 time") from error
    if moment.tzinfo is None:
        raise ProviderError(f"{key} has no time zone")
    return moment


def _tries_left(body: Mapping[str, Any]) -> int:
    value = body.get("tries_left")
    return value if isinstance(value, int) and value >= 0 else 0


def _retry_after(response: httpx.Response) -> float:
    header = response.headers.get("Retry-After", "")
    return float(header) if header.isdigit() else RETRY_AFTER_SECONDS
