"""The mainland bank connector: four-element card verification with an SMS code.

Binding a mainland China debit card proves a real name the way Chinese payment
institutions do it (银行卡四要素验证): the bank checks that the card number, the holder's
name, the ID document number and the mobile number reserved at the bank (预留手机号) all
belong together, then sends a code by SMS to that reserved number; whoever types the
code back holds both the card details and the phone. A ``BankConnector`` does the two
steps: ``start_verification`` (check the four elements, send the code) and ``confirm``
(check the code). The caller checks the card number with ``funding.cards`` first; the
connectors check it again, so nothing malformed reaches a bank.

Two connectors:

* ``SandboxBank`` (the default): a bank with a documented table of test cards
  (``SANDBOX_CARDS``, listed in docs/sandbox_bank.md), each with its holder, passport
  number, reserved phone and outcome, the way a payment provider's test mode works.
  The details typed are really compared with the card's record; a card whose outcome
  is a refusal refuses even when its documented details are typed. It "sends" the code
  through the ``send_sms`` callback it is given and keeps challenges in memory, so it
  suits one process (a demo, the tests), not a fleet of servers.
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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Literal, Protocol

import httpx
import phonenumbers

from qianbao.clock import Clock, SystemClock
from qianbao.errors import Conflict, InvalidInput, QianbaoError
from qianbao.funding.cards import credit_card_error, normalize_card_number, unionpay_card
from qianbao.funding.sandbox_state import (
    MemoryStore,
    SandboxState,
    SandboxStore,
    money_from_record,
    money_record,
)
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


class _FixedCode:
    """Gives an error class its own code and message, so callers raise it by name."""

    code_: ClassVar[str]
    message_: ClassVar[str]


class BankInputRefused(InvalidInput, _FixedCode):
    """The bank refused what was typed (HTTP 422)."""

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(self.code_, self.message_, params)


class BankStateRefused(Conflict, _FixedCode):
    """The card or the verification is in a state that refuses this (HTTP 409)."""

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(self.code_, self.message_, params)


class BankUnavailable(QianbaoError, _FixedCode):
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


class ProviderError(QianbaoError, _FixedCode):
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


def _same_name(typed: str, held: str) -> bool:
    # Banks hold names as on the passport, in capitals; case, width and runs of spaces are
    # how people type them differently, not different names.
    return _name_key(typed) == _name_key(held)


def _name_key(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def _id_key(number: str) -> str:
    return "".join(unicodedata.normalize("NFKC", number).upper().split())


def _phone_key(e164: str) -> str:
    return "".join(char for char in e164 if char.isdigit() or char == "+")


def _require_passport(id_type: str) -> None:
    if id_type != "passport":
        raise UnsupportedIdType()


# --- the sandbox bank --------------------------------------------------------------------


class SandboxOutcome(StrEnum):
    MATCH = "match"
    NAME_MISMATCH = "name_mismatch"
    ID_MISMATCH = "id_mismatch"
    PHONE_MISMATCH = "phone_mismatch"
    CARD_FROZEN = "card_frozen"
    BANK_TIMEOUT = "bank_timeout"


@dataclass(frozen=True)
class SandboxCard:
    number: str
    holder_name: str
    passport_number: str
    reserved_phone: str
    outcome: SandboxOutcome
    # For a BIN that funding.cards does not list; otherwise the name comes from there.
    bank_name_en: str | None = None
    bank_name_zh: str | None = None


_O = SandboxOutcome

# Every number passes the Luhn check and has a real UnionPay debit BIN (623456, of the
# third, is outside the BIN table). Names and passport numbers are made up. docs/sandbox_bank.md
# lists the same table; tests/funding/test_bank.py checks that the two agree.
SANDBOX_CARDS: tuple[SandboxCard, ...] = (
    SandboxCard("6222020000000000018", "JOHN SMITH", "912345678", "+447911000001", _O.MATCH),
    SandboxCard("6225880000000027", "MARIA GARCIA", "PAA000001", "+8613800138000", _O.MATCH),
    SandboxCard(
        "6234560000000000092",
        "NGUYEN VAN AN",
        "C0000009",
        "+6591234567",
        _O.MATCH,
        bank_name_en="Sandbox Rural Commercial Bank",
        bank_name_zh="沙箱农村商业银行",
    ),
    SandboxCard(
        "6217000000000000038", "EMMA BROWN", "533000003", "+447700900003", _O.NAME_MISMATCH
    ),
    SandboxCard(
        "6228480000000000042", "LUCAS MARTIN", "15AA00004", "+447700900004", _O.ID_MISMATCH
    ),
    SandboxCard(
        "6216610000000000057", "SOFIA ROSSI", "YA0000005", "+447700900005", _O.PHONE_MISMATCH
    ),
    SandboxCard(
        "6222620000000000061", "KENJI TANAKA", "TZ0000006", "+447700900006", _O.CARD_FROZEN
    ),
    SandboxCard(
        "6210980000000000078", "ANNA MUELLER", "C00000007", "+447700900007", _O.BANK_TIMEOUT
    ),
)


@dataclass
class _Challenge:
    card: SandboxCard
    code: str
    expires_at: datetime
    wrong_tries: int = 0
    locked: bool = False


@dataclass
class SandboxBank:
    """A bank with documented test cards; see the module docstring and docs/sandbox_bank.md.

    Its codes, accounts and movements live in ``store`` (:mod:`qianbao.funding.sandbox_state`):
    memory by default, or a file every process shares, so that a code sent by one web
    worker is checked by another and a debit made before a crash is found after it."""

    send_sms: SendSms
    clock: Clock = field(default_factory=SystemClock)
    code_ttl_seconds: int = DEFAULT_CODE_TTL_SECONDS
    max_code_tries: int = DEFAULT_MAX_CODE_TRIES
    cards: tuple[SandboxCard, ...] = SANDBOX_CARDS
    store: SandboxStore = field(default_factory=MemoryStore, repr=False)

    def start_verification(
        self,
        card_number: str,
        holder_name: str,
        id_type: IdType,
        id_number: str,
        reserved_phone_e164: str,
    ) -> BankChallenge:
        _require_passport(id_type)
        unionpay_card(card_number)  # a malformed or credit card is refused before the bank
        card = self._card(normalize_card_number(card_number))
        self._check_four_elements(card, holder_name, id_number, reserved_phone_e164)
        code = f"{secrets.randbelow(10**SMS_CODE_DIGITS):0{SMS_CODE_DIGITS}d}"
        reference = "sbx_" + secrets.token_urlsafe(16)
        expires_at = self.clock.now() + timedelta(seconds=self.code_ttl_seconds)
        with self.store.transaction() as state:
            self._save_challenge(state, reference, _Challenge(card, code, expires_at))
        # The bank texts its reserved number, not the number typed (they match here).
        self.send_sms(card.reserved_phone, code)
        return BankChallenge(reference, mask_phone(card.reserved_phone), expires_at)

    def confirm(self, reference: str, sms_code: str) -> BankVerificationResult:
        refusal: QianbaoError | None = None
        with self.store.transaction() as state:
            challenge = self._challenge(state, reference)
            if challenge is None:
                raise ChallengeUnknown()
            if challenge.locked:
                raise TooManyTries()
            expired = self.clock.now() >= challenge.expires_at
            right = hmac.compare_digest(_digits(sms_code).encode(), challenge.code.encode())
            if expired:
                refusal = CodeExpired()
            elif not right:
                refusal = self._count_wrong_try(challenge)
            # A code works once, and an expired one is forgotten; a wrong try is counted.
            self._save_challenge(state, reference, challenge, used=expired or right)
        if refusal is not None:
            raise refusal  # after the commit: the wrong try stays counted
        return _sandbox_result(challenge.card)

    # Each test card's account starts with this much (CNY): enough to try payments.
    SANDBOX_ACCOUNT_OPENING: ClassVar[Money] = Money.of("CNY", 50_000)

    def debit(self, card_token: str, amount: Money, *, idempotency_key: str) -> BankMovement:
        with self.store.transaction() as state:
            done = state.get("movement", idempotency_key)
            if done is not None:
                return _movement(done)
            card = self._card_of_token(card_token)
            if card.outcome is SandboxOutcome.CARD_FROZEN:
                raise CardFrozen()
            balance = self._balance(state, card_token)
            if amount.minor <= 0 or balance.minor < amount.minor:
                raise BankInsufficientFunds()
            state.put("account", card_token, money_record(balance - amount))
            movement = BankMovement("dbt_sbx_" + secrets.token_hex(8), amount)
            state.put("movement", idempotency_key, _movement_json(movement))
            state.put(
                "debit",
                movement.id,
                {"token": card_token, "taken": money_record(amount), "given_back": 0},
            )
            return movement

    def credit(self, debit_id: str, amount: Money, *, idempotency_key: str) -> BankMovement:
        with self.store.transaction() as state:
            done = state.get("movement", idempotency_key)
            if done is not None:
                return _movement(done)
            debit = state.get("debit", debit_id)
            if debit is None:
                raise ChallengeUnknown()
            taken, given_back = money_from_record(debit["taken"]), int(debit["given_back"])
            if amount.minor <= 0 or given_back + amount.minor > taken.minor:
                raise BankCreditExceeds()
            state.put("debit", debit_id, {**debit, "given_back": given_back + amount.minor})
            token = str(debit["token"])
            state.put("account", token, money_record(self._balance(state, token) + amount))
            movement = BankMovement("crd_sbx_" + secrets.token_hex(8), amount)
            state.put("movement", idempotency_key, _movement_json(movement))
            return movement

    def statement(self) -> list[BookedDebit]:
        """Every debit, with its key and what was given back: the sandbox's statement,
        for reconciliation."""
        with self.store.transaction() as state:
            booked: list[BookedDebit] = []
            for key, movement in state.items("movement"):
                debit = state.get("debit", str(movement["id"]))
                if debit is None:
                    continue  # a credit: counted in its debit's given_back
                taken = money_from_record(debit["taken"])
                given_back = Money(taken.currency, int(debit["given_back"]))
                booked.append(BookedDebit(key, str(movement["id"]), taken, given_back))
        return booked

    def find_debit(self, idempotency_key: str) -> BankMovement | None:
        """The movement made under a key, if any (asks without making one)."""
        with self.store.transaction() as state:
            done = state.get("movement", idempotency_key)
        return None if done is None else _movement(done)

    def _balance(self, state: SandboxState, card_token: str) -> Money:
        found = state.get("account", card_token)
        return self.SANDBOX_ACCOUNT_OPENING if found is None else money_from_record(found)

    def _challenge(self, state: SandboxState, reference: str) -> _Challenge | None:
        found = state.get("challenge", reference)
        if found is None or found.get("used"):
            return None
        return _Challenge(
            self._card(str(found["card"])),
            str(found["code"]),
            datetime.fromisoformat(found["expires_at"]),
            int(found["wrong_tries"]),
            bool(found["locked"]),
        )

    @staticmethod
    def _save_challenge(
        state: SandboxState, reference: str, challenge: _Challenge, *, used: bool = False
    ) -> None:
        state.put(
            "challenge",
            reference,
            {
                "card": challenge.card.number,
                "code": challenge.code,
                "expires_at": challenge.expires_at.isoformat(),
                "wrong_tries": challenge.wrong_tries,
                "locked": challenge.locked,
                "used": used,
            },
        )

    def _card_of_token(self, card_token: str) -> SandboxCard:
        for card in self.cards:
            if _sandbox_result(card).card_token_from_bank == card_token:
                return card
        raise SandboxUnknownCard()

    def _card(self, number: str) -> SandboxCard:
        for card in self.cards:
            if card.number == number:
                return card
        raise SandboxUnknownCard()

    @staticmethod
    def _check_four_elements(
        card: SandboxCard, holder_name: str, id_number: str, phone: str
    ) -> None:
        # In the order a bank answers: the card's state first, then each element.
        if card.outcome is SandboxOutcome.CARD_FROZEN:
            raise CardFrozen()
        if card.outcome is SandboxOutcome.BANK_TIMEOUT:
            raise BankTimeout()
        if card.outcome is SandboxOutcome.NAME_MISMATCH or not _same_name(
            holder_name, card.holder_name
        ):
            raise NameMismatch()
        if card.outcome is SandboxOutcome.ID_MISMATCH or _id_key(id_number) != _id_key(
            card.passport_number
        ):
            raise IdMismatch()
        if card.outcome is SandboxOutcome.PHONE_MISMATCH or _phone_key(phone) != _phone_key(
            card.reserved_phone
        ):
            raise PhoneMismatch()

    def _count_wrong_try(self, challenge: _Challenge) -> BankInputRefused | BankStateRefused:
        challenge.wrong_tries += 1
        tries_left = self.max_code_tries - challenge.wrong_tries
        if tries_left <= 0:
            # Locked rather than forgotten: the right code must not work after this either.
            challenge.locked = True
            return TooManyTries()
        return CodeWrong({"tries_left": tries_left})


def _movement_json(movement: BankMovement) -> dict[str, Any]:
    return {"id": movement.id, "amount": money_record(movement.amount)}


def _movement(value: dict[str, Any]) -> BankMovement:
    return BankMovement(str(value["id"]), money_from_record(value["amount"]))


def _digits(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


def _sandbox_result(card: SandboxCard) -> BankVerificationResult:
    known = unionpay_card(card.number)
    # Like a bank's agreement number for the card: stable per card, not the number.
    token = "sbx_" + hashlib.sha256(b"sandbox-card:" + card.number.encode()).hexdigest()[:24]
    return BankVerificationResult(
        bank_name=card.bank_name_en or known.bank_name_en,
        last4=known.last4,
        card_token_from_bank=token,
        bank_name_zh=card.bank_name_zh or known.bank_name_zh,
    )


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
        _require_passport(id_type)
        unionpay_card(card_number)
        body = self._call(
            "four-elements/start",
            {
                "card_number": normalize_card_number(card_number),
                "holder_name": holder_name.strip(),
                "id_type": id_type,
                "id_number": _id_key(id_number),
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
            "four-elements/confirm", {"reference": reference, "sms_code": _digits(sms_code)}
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


def connector_for(
    settings: BankSettings,
    *,
    send_sms: SendSms,
    clock: Clock | None = None,
    transport: httpx.BaseTransport | None = None,
    store: SandboxStore | None = None,
) -> BankConnector:
    """The connector ``QIANBAO_BANK_CONNECTOR`` names: ``sandbox`` (default) or ``http``;
    ``store`` keeps the sandbox's records (memory when None)."""
    if settings.bank_connector == "http":
        return HttpBank.from_settings(settings, transport, clock)
    if settings.bank_connector == "sandbox":
        return SandboxBank(send_sms, clock or SystemClock(), store=store or MemoryStore())
    raise ValueError(
        f"QIANBAO_BANK_CONNECTOR must be sandbox or http, not {settings.bank_connector!r}"
    )
