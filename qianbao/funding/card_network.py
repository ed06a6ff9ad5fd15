"""Foreign bank cards: checking a card, the card-network interface and its sandbox.

Since March 2024 Alipay takes Visa, Mastercard, JCB, Diners Club and Discover cards
issued abroad, and American Express since February 2025 (shared/reference/alipay_rules.md,
section 3). This module holds what Qianbao needs to add such a card and charge it,
without a database: the caller (funding/service.py) keeps the token, never the number.

Checking a card number, in the order that gives a person the most useful answer:

1. Reading: ``funding.cards.normalize_card_number`` (spaces, dashes and full-width
   digits are fine; anything else is ``card.format``).
2. Length 12 to 19 digits at all (ISO/IEC 7812-1 allows 8 to 19, but no accepted brand
   issues fewer than 13), else ``card.length``.
3. The brand, from the issuer identification number (the leading digits, ISO/IEC
   7812-1), using the ranges the networks publish (the longest matching prefix wins):

   ============  ================================================  ===============
   brand         leading digits                                    lengths
   ============  ================================================  ===============
   Visa          4                                                 13, 16, 19
   Mastercard    51-55, 2221-2720                                  16
   Amex          34, 37                                            15
   JCB           3528-3589                                         16-19
   Diners Club   300-305, 3095, 36, 38-39                          14-19
   Discover      6011, 644-649, 65                                 16-19
   ============  ================================================  ===============

   Numbers starting with ``62`` are China UnionPay's, *including* 622126-622925, the
   range Discover also routes abroad under its reciprocal agreement with UnionPay.
   Decision: inside China such a card is a UnionPay card from a mainland bank (ICBC's
   622202 debit cards sit in that very range, see funding/cards.py), so it is refused
   here with ``card.brand_unknown`` and the advice to add it under bank cards, where
   the mainland bank connector verifies it. Anything else (Maestro, Mir, RuPay's own
   ranges, ...) is ``card.brand_unknown`` too: Alipay does not take it.
4. The brand's lengths (``card.length``), then the Luhn check digit (``card.luhn``,
   ISO/IEC 7812-1 annex B, from funding/cards.py).

The expiry date is the last day of the printed month (``MM/YY``); a card is expired
from the first day of the next month, compared with a date the caller gives (from the
injected clock, UTC). The security code (CVV2/CVC2/CID) has 3 digits, 4 on American
Express (printed on the front). It is checked, passed to the network once to link the
card and never returned or kept.

A ``CardNetwork`` links a card (``tokenize``) and charges it: ``authorize`` (which may
ask for a 3-D Secure challenge), ``capture`` (all or part, once), ``void``, ``refund``.
Amounts are asked for in CNY; the card is charged in its own currency at the network's
rate, which the authorization records. A refund is converted at the rate of the refund
day, not of the payment, so the cardholder bears the difference, as Alipay's rules say.

``SandboxCardNetwork`` (the default) is a network that knows only the documented test
cards (``SANDBOX_CARDS``, listed in docs/sandbox_card_network.md), each with a fixed
outcome, like a payment provider's test mode. It keeps authorizations, captures and
refunds in a store (:mod:`qianbao.funding.sandbox_state`): a file every process shares
for the running service, memory for unit tests. Its card tokens carry no state.

``foreign_card_fee`` is Alipay's 3% on the whole amount of a payment above CNY 200.

Money is converted with ``decimal`` and rounded half-up to the minor unit of the target
currency (ISO 4217: 2 digits for USD, 0 for JPY), never through a float.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any, ClassVar, Protocol
from urllib.parse import urlencode

from qianbao.clock import Clock
from qianbao.errors import Conflict, InvalidInput, NotFound, QianbaoError
from qianbao.funding.cards import luhn_valid, normalize_card_number
from qianbao.funding.sandbox_state import (
    MemoryStore,
    SandboxState,
    SandboxStore,
    money_from_record,
    money_record,
)
from qianbao.i18n import N_
from qianbao.money import MINOR_DIGITS, Money

WALLET_CURRENCY = "CNY"
MIN_CARD_LENGTH = 12
MAX_CARD_LENGTH = 19
# A card is issued for at most a few years; a date further ahead is a typing slip.
MAX_YEARS_AHEAD = 20
# How long a 3-D Secure challenge stays open, and an approval waits for its capture
# (card-not-present approvals are commonly held for 7 days by the networks).
CHALLENGE_TTL = timedelta(minutes=10)
AUTHORIZATION_TTL = timedelta(days=7)
SANDBOX_CHALLENGE_ANSWER = "1234"


class Brand(StrEnum):
    VISA = "visa"
    MASTERCARD = "mastercard"
    JCB = "jcb"
    DINERS = "diners"
    DISCOVER = "discover"
    AMEX = "amex"

    @property
    def display_name(self) -> str:
        return BRAND_NAMES[self]

    @property
    def lengths(self) -> tuple[int, ...]:
        return BRAND_LENGTHS[self]

    @property
    def cvv_length(self) -> int:
        return 4 if self is Brand.AMEX else 3


# The brands Alipay accepts from abroad, in the order the pages list them.
FOREIGN_BRANDS: tuple[Brand, ...] = tuple(Brand)

BRAND_NAMES: Mapping[Brand, str] = {
    Brand.VISA: "Visa",
    Brand.MASTERCARD: "Mastercard",
    Brand.JCB: "JCB",
    Brand.DINERS: "Diners Club",
    Brand.DISCOVER: "Discover",
    Brand.AMEX: "American Express",
}

BRAND_LENGTHS: Mapping[Brand, tuple[int, ...]] = {
    Brand.VISA: (13, 16, 19),
    Brand.MASTERCARD: (16,),
    Brand.AMEX: (15,),
    Brand.JCB: (16, 17, 18, 19),
    Brand.DINERS: (14, 15, 16, 17, 18, 19),
    Brand.DISCOVER: (16, 17, 18, 19),
}


@dataclass(frozen=True)
class _PrefixRange:
    """Numbers whose first ``len(low)`` digits lie in ``low..high``; brand None: UnionPay."""

    low: str
    high: str
    brand: Brand | None

    def matches(self, digits: str) -> bool:
        head = digits[: len(self.low)]
        return len(head) == len(self.low) and self.low <= head <= self.high


_UNIONPAY = None
_PREFIX_RANGES: tuple[_PrefixRange, ...] = tuple(
    sorted(
        (
            _PrefixRange("4", "4", Brand.VISA),
            _PrefixRange("51", "55", Brand.MASTERCARD),
            _PrefixRange("2221", "2720", Brand.MASTERCARD),
            _PrefixRange("34", "34", Brand.AMEX),
            _PrefixRange("37", "37", Brand.AMEX),
            _PrefixRange("3528", "3589", Brand.JCB),
            _PrefixRange("300", "305", Brand.DINERS),
            _PrefixRange("3095", "3095", Brand.DINERS),
            _PrefixRange("36", "36", Brand.DINERS),
            _PrefixRange("38", "39", Brand.DINERS),
            _PrefixRange("6011", "6011", Brand.DISCOVER),
            _PrefixRange("644", "649", Brand.DISCOVER),
            _PrefixRange("65", "65", Brand.DISCOVER),
            # UnionPay, including the 622126-622925 range Discover routes abroad.
            _PrefixRange("62", "62", _UNIONPAY),
        ),
        key=lambda prefix: -len(prefix.low),
    )
)


# --- errors: one class per refusal, so callers can catch them by name ----------------


class _FixedCode:
    code_: ClassVar[str]
    message_: ClassVar[str]


class CardInputRefused(InvalidInput, _FixedCode):
    """What was typed, or the card itself, cannot be used (HTTP 422)."""

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(self.code_, self.message_, params)


class CardStateRefused(Conflict, _FixedCode):
    """The card's issuer, or the payment's state, refuses this (HTTP 409)."""

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(self.code_, self.message_, params)


class CardRecordUnknown(NotFound, _FixedCode):
    """A token, authorization or capture this network does not know (HTTP 404)."""

    def __init__(self) -> None:
        super().__init__(self.code_, self.message_)


class CardLengthWrong(CardInputRefused):
    code_ = "card.length"
    message_ = N_(
        "A card number has 13 to 19 digits; this one has {length}. Check the number on "
        "your card and type it again."
    )


class BrandLengthWrong(CardInputRefused):
    code_ = "card.length"
    message_ = N_(
        "A {brand} card number has {lengths} digits; this one has {length}. Check the "
        "number on your card and type it again."
    )


class UnionPayNotHere(CardInputRefused):
    code_ = "card.brand_unknown"
    message_ = N_(
        "This is a UnionPay card (its number starts with 62). Add a card from a mainland "
        "China bank under Bank cards instead."
    )


class BrandUnknown(CardInputRefused):
    code_ = "card.brand_unknown"
    message_ = N_(
        "This card's network is not accepted. Use a Visa, Mastercard, JCB, Diners Club, "
        "Discover or American Express card."
    )


class LuhnWrong(CardInputRefused):
    code_ = "card.luhn"
    # The same words as funding/cards.py, so the one translation serves both.
    message_ = N_(
        "This card number is not valid: a digit is wrong or two digits are swapped. "
        "Check the number on your card and type it again."
    )


class ExpiryUnreadable(CardInputRefused):
    code_ = "card.expiry_format"
    message_ = N_("Type the expiry date as it is printed on the card: month and year, like 08/29.")


class CardExpired(CardInputRefused):
    code_ = "card.expired"
    message_ = N_("This card expired at the end of {expiry}. Use a card that is still valid.")


class CardExpiredAtIssuer(CardInputRefused):
    code_ = "card.expired"
    message_ = N_(
        "The card's bank says this card has expired or was replaced. Add your new card "
        "and pay with it."
    )


class CvvWrong(CardInputRefused):
    code_ = "card.cvv"
    message_ = N_(
        "The security code has {digits} digits: on American Express cards the 4 digits "
        "printed on the front, on other cards the 3 digits on the back."
    )


class HolderNameMissing(CardInputRefused):
    code_ = "card.holder_name"
    message_ = N_("Type the cardholder's name as it is printed on the card.")


class SandboxUnknownCard(CardInputRefused):
    code_ = "card.sandbox_unknown_card"
    message_ = N_(
        "This is the sandbox card network: only its documented test cards work (see "
        "docs/sandbox_card_network.md). Use one of them, or ask the operator to connect "
        "a real card network."
    )


class ChallengeFailed(CardInputRefused):
    code_ = "card.challenge_failed"
    message_ = N_(
        "The card's bank could not confirm it is you, so the payment was not made. Pay "
        "again and answer your bank's check, or use another card."
    )


class IssuerRefusedLink(CardStateRefused):
    code_ = "card.issuer_refused_link"
    message_ = N_(
        "The bank that issued this card does not allow it to be added to Qianbao. Ask "
        "your bank to allow payments in China, or use another card."
    )


class CardDeclined(CardStateRefused):
    code_ = "card.declined"
    message_ = N_(
        "The card's bank declined this payment. Contact your bank, or pay with another card."
    )


class InsufficientFunds(CardStateRefused):
    code_ = "card.insufficient_funds"
    message_ = N_(
        "The card's bank declined this payment: not enough funds or credit. Use another "
        "card, or pay a smaller amount."
    )


class ChallengeExpired(CardStateRefused):
    code_ = "card.challenge_expired"
    message_ = N_("The check by your card's bank took too long. Pay again.")


class ChallengeNotOpen(CardStateRefused):
    code_ = "card.challenge_not_open"
    message_ = N_("This payment is not waiting for a check by your card's bank.")


class AuthorizationExpired(CardStateRefused):
    code_ = "card.authorization_expired"
    message_ = N_("The card approval for this payment expired before it was completed. Pay again.")


class NotCapturable(CardStateRefused):
    code_ = "card.not_capturable"
    message_ = N_(
        "This card payment cannot be completed: it is not approved, or it was already "
        "completed or cancelled."
    )


class NotVoidable(CardStateRefused):
    code_ = "card.not_voidable"
    message_ = N_(
        "This card payment cannot be cancelled: it was already completed (refund it "
        "instead) or cancelled."
    )


class CaptureExceedsAuthorization(CardStateRefused):
    code_ = "card.capture_exceeds"
    message_ = N_("No more than the approved {authorized} can be taken from the card.")


class RefundExceedsCapture(CardStateRefused):
    code_ = "card.refund_exceeds"
    message_ = N_("No more than {remaining} is left to refund on this card payment.")


class IdempotencyKeyReused(CardStateRefused):
    code_ = "card.idempotency_key_reused"
    message_ = N_(
        "This payment request reuses the key of a different payment. Send each new "
        "payment with a new key."
    )


class TokenUnknown(CardRecordUnknown):
    code_ = "card.token_unknown"
    message_ = N_("This card is not known to the card network. Add the card again.")


class AuthorizationUnknown(CardRecordUnknown):
    code_ = "card.authorization_unknown"
    message_ = N_("This card payment is not known to the card network.")


class CaptureUnknown(CardRecordUnknown):
    code_ = "card.capture_unknown"
    message_ = N_("This card payment is not known to the card network.")


# --- checking what a person types ----------------------------------------------------


@dataclass(frozen=True, order=True)
class Expiry:
    """The printed expiry month; the card is valid through its last day."""

    year: int
    month: int

    def __str__(self) -> str:
        return f"{self.month:02d}/{self.year % 100:02d}"

    def has_passed(self, today: date) -> bool:
        return (self.year, self.month) < (today.year, today.month)


@dataclass(frozen=True)
class CheckedCard:
    """A card number that passed every local check; ``digits`` must not be kept."""

    digits: str = field(repr=False)
    brand: Brand
    expiry: Expiry

    @property
    def last4(self) -> str:
        return self.digits[-4:]


def detect_brand(number: str) -> Brand:
    """The brand of a typed card number, after the length and Luhn checks; see above."""
    digits = normalize_card_number(number)
    if not MIN_CARD_LENGTH <= len(digits) <= MAX_CARD_LENGTH:
        raise CardLengthWrong({"length": len(digits)})
    brand = _brand_of_prefix(digits)
    if len(digits) not in brand.lengths:
        raise BrandLengthWrong(
            {"brand": brand.display_name, "lengths": _lengths_text(brand), "length": len(digits)}
        )
    if not luhn_valid(digits):
        raise LuhnWrong()
    return brand


def _brand_of_prefix(digits: str) -> Brand:
    for prefix in _PREFIX_RANGES:
        if prefix.matches(digits):
            if prefix.brand is None:
                raise UnionPayNotHere()
            return prefix.brand
    raise BrandUnknown()


def _lengths_text(brand: Brand) -> str:
    lengths = brand.lengths
    # A run reads "16–19" in both languages; anything else "13/16/19".
    if len(lengths) > 2 and lengths == tuple(range(lengths[0], lengths[-1] + 1)):
        return f"{lengths[0]}–{lengths[-1]}"
    return "/".join(str(length) for length in lengths)


_EXPIRY_WITH_SEPARATOR = re.compile(r"([0-9]{1,2})\s*[/\-.]\s*([0-9]{2}|[0-9]{4})")
_EXPIRY_DIGITS_ONLY = re.compile(r"([0-9]{2})([0-9]{2}|[0-9]{4})")


def parse_expiry(text: str) -> tuple[int, int]:
    """``(month, year)`` from ``MM/YY``, ``MM/YYYY``, ``MM-YY``, ``MMYY`` or ``MMYYYY``."""
    folded = unicodedata.normalize("NFKC", text).strip()
    found = _EXPIRY_WITH_SEPARATOR.fullmatch(folded) or _EXPIRY_DIGITS_ONLY.fullmatch(folded)
    if found is None:
        raise ExpiryUnreadable()
    return int(found.group(1)), int(found.group(2))


def check_expiry(month: int, year: int, *, today: date) -> Expiry:
    """The expiry for a month and a year (two digits mean 20YY); refuse a past one."""
    full_year = 2000 + year if 0 <= year < 100 else year
    if not 1 <= month <= 12 or full_year > today.year + MAX_YEARS_AHEAD:
        raise ExpiryUnreadable()
    expiry = Expiry(full_year, month)
    if expiry.has_passed(today):
        raise CardExpired({"expiry": str(expiry)})
    return expiry


def check_cvv(cvv: str, brand: Brand) -> None:
    """Refuse a security code that is not the brand's number of digits."""
    folded = unicodedata.normalize("NFKC", cvv).strip()
    if len(folded) != brand.cvv_length or not (folded.isascii() and folded.isdigit()):
        raise CvvWrong({"digits": brand.cvv_length})


def check_card(
    number: str, expiry_month: int, expiry_year: int, cvv: str, *, today: date
) -> CheckedCard:
    """Every check that needs no network, in the order of the form's fields."""
    brand = detect_brand(number)
    expiry = check_expiry(expiry_month, expiry_year, today=today)
    check_cvv(cvv, brand)
    return CheckedCard(normalize_card_number(number), brand, expiry)


# --- money: conversion and the fee ---------------------------------------------------


def _round_to_minor(amount_major: Decimal, currency: str) -> Money:
    minor = (amount_major.scaleb(MINOR_DIGITS[currency])).quantize(
        Decimal(1), rounding=ROUND_HALF_UP
    )
    return Money(currency, int(minor))


def to_card_currency(amount: Money, currency: str, rate: Decimal) -> Money:
    """A CNY amount in ``currency``, at ``rate`` CNY per unit, rounded half-up."""
    if amount.currency != WALLET_CURRENCY:
        raise ValueError(f"card amounts are asked for in CNY, not {amount.currency}")
    if rate <= 0:
        raise ValueError("an exchange rate is positive")
    return _round_to_minor(amount.major / rate, currency)


def foreign_card_fee(amount: Money, *, threshold: Money, rate_percent: Decimal) -> Money:
    """Alipay's fee for a foreign card: ``rate_percent`` of the WHOLE amount when the
    payment is above ``threshold`` (none at or below it), rounded half-up."""
    if amount.currency != threshold.currency:
        raise ValueError(f"the fee threshold is in {threshold.currency}, not {amount.currency}")
    if rate_percent < 0:
        raise ValueError("a fee percentage is not negative")
    if amount <= threshold:
        return Money(amount.currency, 0)
    return _round_to_minor(amount.major * rate_percent / 100, amount.currency)


# --- the card-network interface ------------------------------------------------------


class AuthorizationStatus(StrEnum):
    CHALLENGE_REQUIRED = "challenge_required"
    APPROVED = "approved"
    CAPTURED = "captured"
    VOIDED = "voided"
    FAILED = "failed"  # the 3-D Secure challenge was failed or timed out
    EXPIRED = "expired"  # approved, but not captured in time


@dataclass(frozen=True)
class CardToken:
    """A linked card: what may be stored. Never the number or the security code."""

    token: str
    brand: Brand
    last4: str
    expiry: Expiry
    issuer_country: str  # ISO 3166-1 alpha-2
    currency: str  # ISO 4217: the card account's currency, which the card is charged in


@dataclass(frozen=True)
class Authorization:
    id: str
    status: AuthorizationStatus
    amount: Money  # asked for, in CNY
    amount_in_card_currency: Money
    rate: Decimal  # CNY per unit of the card currency, on rate_date
    rate_date: date
    challenge_url: str | None = None  # where to send the person while challenge_required


@dataclass(frozen=True)
class Capture:
    id: str
    authorization_id: str
    amount: Money  # CNY
    amount_in_card_currency: Money  # at the authorization's rate
    rate: Decimal


@dataclass(frozen=True)
class Refund:
    id: str
    capture_id: str
    amount: Money  # CNY
    amount_in_card_currency: Money  # at the refund day's rate
    rate: Decimal
    rate_date: date


@dataclass(frozen=True)
class BookedAuthorization:
    """One line of the network's books, as a settlement report gives it: an authorization
    made under an idempotency key, in its current state, and what of it was captured and
    refunded (CNY). For reconciliation with the wallet's ledger."""

    key: str
    authorization: Authorization
    capture_id: str | None
    captured: Money  # 0 when nothing was captured
    refunded: Money


class CardNetwork(Protocol):
    def tokenize(
        self, number: str, expiry_month: int, expiry_year: int, cvv: str, holder_name: str
    ) -> CardToken:
        """Check the card with its issuer and link it; the CVV is used for this call only."""
        ...

    def authorize(
        self,
        token: str,
        amount: Money,
        *,
        idempotency_key: str,
        three_ds_return_url: str | None = None,
    ) -> Authorization:
        """Reserve ``amount`` (CNY) on the card; the same key returns the same authorization."""
        ...

    def verify_card(
        self, token: str, *, idempotency_key: str, three_ds_return_url: str | None = None
    ) -> Authorization:
        """Ask the issuer to confirm a newly linked card is the person's (a zero-amount
        account verification, with its 3-D Secure challenge when the issuer wants one).
        The same key returns the same verification, in its current state; it can never
        be captured."""
        ...

    def find_authorization(self, idempotency_key: str) -> Authorization | None:
        """The authorization made under a key, in its current state; None when the key
        was never used (or was refused): asks without making one."""
        ...

    def find_refund(self, idempotency_key: str) -> Refund | None:
        """The refund made under a key, if any: asks without making one."""
        ...

    def complete_challenge(self, authorization_id: str, answer: str) -> Authorization:
        """Pass the person's answer to the issuer's 3-D Secure challenge."""
        ...

    def capture(self, authorization_id: str, amount: Money | None = None) -> Capture:
        """Take all (None) or part of an approved amount, once; the rest is released.
        Asking again for what was captured returns that capture (a retry after a lost
        answer, or after the wallet crashed before recording it); another amount is
        refused."""
        ...

    def void(self, authorization_id: str) -> Authorization:
        """Release an approval that will not be captured."""
        ...

    def refund(
        self,
        capture_id: str,
        amount: Money,
        *,
        rate_date: date,
        idempotency_key: str | None = None,
    ) -> Refund:
        """Give back ``amount`` (CNY) of a capture, converted at ``rate_date``'s rate. With
        an ``idempotency_key``, asking again returns the first refund and moves nothing
        (a retry after a lost answer or a crash); the key with another request is refused."""
        ...


# --- the sandbox network -------------------------------------------------------------


class SandboxOutcome(StrEnum):
    APPROVE = "approve"
    DECLINE = "decline"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    EXPIRED_AT_ISSUER = "expired_at_issuer"
    CHALLENGE = "challenge"
    ISSUER_REFUSES_LINK = "issuer_refuses_link"


@dataclass(frozen=True)
class SandboxCard:
    number: str
    brand: Brand
    issuer_country: str
    currency: str
    outcome: SandboxOutcome


_O = SandboxOutcome

# Luhn-valid numbers made up for the sandbox: after the brand prefix come the issuer
# country's ISO 3166 numeric code (840 US, 276 DE, 410 KR, 826 GB, 392 JP, 344 HK) and
# the outcome (1 approve, 2 decline, 3 insufficient funds, 4 expired, 5 challenge,
# 6 refused link), then the check digit. docs/sandbox_card_network.md lists the same
# table; tests/funding/test_card_network.py checks that they agree.
SANDBOX_CARDS: tuple[SandboxCard, ...] = (
    SandboxCard("4000000000840019", Brand.VISA, "US", "USD", _O.APPROVE),
    SandboxCard("5555550000276016", Brand.MASTERCARD, "DE", "EUR", _O.APPROVE),
    SandboxCard("2221000000410018", Brand.MASTERCARD, "KR", "KRW", _O.APPROVE),
    SandboxCard("370000000826018", Brand.AMEX, "GB", "GBP", _O.APPROVE),
    SandboxCard("3530000000392012", Brand.JCB, "JP", "JPY", _O.APPROVE),
    SandboxCard("36000000344018", Brand.DINERS, "HK", "HKD", _O.APPROVE),
    SandboxCard("6011000000840011", Brand.DISCOVER, "US", "USD", _O.APPROVE),
    SandboxCard("4000000000840027", Brand.VISA, "US", "USD", _O.DECLINE),
    SandboxCard("5200000000826039", Brand.MASTERCARD, "GB", "GBP", _O.INSUFFICIENT_FUNDS),
    SandboxCard("4000000000840043", Brand.VISA, "US", "USD", _O.EXPIRED_AT_ISSUER),
    SandboxCard("5400000000276050", Brand.MASTERCARD, "DE", "EUR", _O.CHALLENGE),
    SandboxCard("4000000000840068", Brand.VISA, "US", "USD", _O.ISSUER_REFUSES_LINK),
)

# CFETS central parity rates of 1 September 2025 (Xinhua: "central parity rates of the
# Chinese currency renminbi ... against 25 major currencies"), CNY per unit. A stand-in
# for a network's daily rate, good enough for a sandbox and a demo; settings override it.
DEFAULT_SANDBOX_RATES: Mapping[str, Decimal] = {
    "USD": Decimal("7.1072"),
    "EUR": Decimal("8.3129"),
    "GBP": Decimal("9.6061"),
    "JPY": Decimal("0.04834"),
    "HKD": Decimal("0.91174"),
    "KRW": Decimal("0.0051201"),  # published as 19,531 KRW per 100 CNY
}

_TOKEN = re.compile(r"tok_sbx_([0-9a-f]{16})_([0-9]{4})([0-9]{2})")


def _card_key(number: str) -> str:
    # The numbers are public test data; the hash only keeps them out of tokens and logs.
    return hashlib.sha256(b"qianbao.sandbox-card:" + number.encode()).hexdigest()[:16]


@dataclass
class _AuthorizationRecord:
    snapshot: Authorization
    card: SandboxCard
    expires_at: datetime  # of the challenge while one is open, else of the approval


@dataclass
class _CaptureRecord:
    snapshot: Capture
    currency: str
    refunded: Money


# What an idempotency key stands for: the card and the amount. The 3-D Secure return URL
# is not part of it: asking again after the check (to learn the outcome) sends none.
_Request = tuple[str, Money]


class SandboxCardNetwork:
    """A card network that knows only the documented test cards; see the module docstring.

    ``rates`` maps each card currency to CNY per unit (from settings). ``set_rates``
    changes them from a given day on; every conversion uses the table of its day (the
    UTC date of the clock). ``store`` keeps the network's records
    (:mod:`qianbao.funding.sandbox_state`): in memory by default, or in a file that every
    process on the machine shares.
    """

    def __init__(
        self,
        clock: Clock,
        rates: Mapping[str, Decimal] = DEFAULT_SANDBOX_RATES,
        *,
        cards: tuple[SandboxCard, ...] = SANDBOX_CARDS,
        challenge_base_url: str = "/sandbox/3ds",
        store: SandboxStore | None = None,
    ) -> None:
        self._clock = clock
        self._cards = {_card_key(card.number): card for card in cards}
        self._challenge_base_url = challenge_base_url.rstrip("/")
        self._store: SandboxStore = store if store is not None else MemoryStore()
        self._rates_lock = threading.Lock()
        # (first day, table), in order of first day; the first one covers all the past.
        self._rate_tables: list[tuple[date, dict[str, Decimal]]] = [
            (date.min, self._checked_rates(rates))
        ]

    # --- rates ---

    def set_rates(self, rates: Mapping[str, Decimal], *, effective: date | None = None) -> None:
        """Use ``rates`` from ``effective`` (default: today) on, as a network's next table."""
        table = self._checked_rates(rates)
        first_day = effective or self._today()
        with self._rates_lock:
            kept = [(day, old) for day, old in self._rate_tables if day < first_day]
            self._rate_tables = [*kept, (first_day, table)]

    def rate_on(self, currency: str, day: date) -> Decimal:
        """CNY per unit of ``currency`` on ``day``; there is no rate for a future day."""
        if day > self._today():
            raise ValueError(f"no exchange rate is known yet for {day.isoformat()}")
        return self._table_on(day)[currency]

    def _checked_rates(self, rates: Mapping[str, Decimal]) -> dict[str, Decimal]:
        table = {currency: Decimal(str(rate)) for currency, rate in rates.items()}
        needed = {card.currency for card in self._cards.values()}
        missing = sorted(needed - table.keys())
        if missing:
            raise ValueError(f"the sandbox card network needs a CNY rate for {missing}")
        if any(rate <= 0 or not rate.is_finite() for rate in table.values()):
            raise ValueError("exchange rates are positive numbers")
        unknown = sorted(set(table) - set(MINOR_DIGITS))
        if unknown:
            raise ValueError(f"unsupported currencies in the rate table: {unknown}")
        return table

    def _table_on(self, day: date) -> dict[str, Decimal]:
        with self._rates_lock:  # the first table starts at date.min, so one always matches
            return next(table for first, table in reversed(self._rate_tables) if first <= day)

    def _today(self) -> date:
        return self._clock.now().date()

    # --- linking a card ---

    def tokenize(
        self, number: str, expiry_month: int, expiry_year: int, cvv: str, holder_name: str
    ) -> CardToken:
        checked = check_card(number, expiry_month, expiry_year, cvv, today=self._today())
        if not holder_name.strip():
            raise HolderNameMissing()
        card = self._cards.get(_card_key(checked.digits))
        if card is None:
            raise SandboxUnknownCard()
        if card.outcome is SandboxOutcome.ISSUER_REFUSES_LINK:
            raise IssuerRefusedLink()
        expiry = checked.expiry
        # Stateless: the token names the card and the expiry, so it outlives the process.
        token = f"tok_sbx_{_card_key(card.number)}_{expiry.year:04d}{expiry.month:02d}"
        return CardToken(
            token, card.brand, checked.last4, expiry, card.issuer_country, card.currency
        )

    def _card_of_token(self, token: str) -> tuple[SandboxCard, Expiry]:
        found = _TOKEN.fullmatch(token)
        card = self._cards.get(found.group(1)) if found else None
        if found is None or card is None:
            raise TokenUnknown()
        return card, Expiry(int(found.group(2)), int(found.group(3)))

    # --- authorizing ---

    def authorize(
        self,
        token: str,
        amount: Money,
        *,
        idempotency_key: str,
        three_ds_return_url: str | None = None,
    ) -> Authorization:
        if amount.currency != WALLET_CURRENCY or amount.minor <= 0:
            raise ValueError("authorize a positive amount in CNY")
        if not idempotency_key:
            raise ValueError("authorize needs an idempotency key")
        return self._keyed(
            idempotency_key,
            (token, amount),
            lambda: self._new_authorization(token, amount, three_ds_return_url),
        )

    def verify_card(
        self, token: str, *, idempotency_key: str, three_ds_return_url: str | None = None
    ) -> Authorization:
        if not idempotency_key:
            raise ValueError("verify_card needs an idempotency key")
        return self._keyed(
            idempotency_key,
            (token, Money(WALLET_CURRENCY, 0)),
            lambda: self._new_verification(token, three_ds_return_url),
        )

    def find_authorization(self, idempotency_key: str) -> Authorization | None:
        with self._store.transaction() as state:
            records = _Records(state, self)
            earlier = records.keyed(idempotency_key)
            if earlier is None or isinstance(earlier[1], QianbaoError):
                return None
            return records.current(records.authorization(earlier[1])).snapshot

    def find_refund(self, idempotency_key: str) -> Refund | None:
        with self._store.transaction() as state:
            return _Records(state, self).refund_by_key(idempotency_key)

    def _keyed(
        self, key: str, request: _Request, make: Callable[[], _AuthorizationRecord]
    ) -> Authorization:
        """The authorization a key stands for: the first answer again (a refusal too, as
        a real network remembers it, instead of a second attempt on the card), or a new
        one made by ``make``."""
        with self._store.transaction() as state:
            records = _Records(state, self)
            earlier = records.keyed(key)
            if earlier is not None:
                if earlier[0] != request:
                    raise IdempotencyKeyReused()
                if isinstance(earlier[1], QianbaoError):
                    raise earlier[1]
                return records.current(records.authorization(earlier[1])).snapshot
            try:
                record = make()
            except QianbaoError as refusal:
                records.remember(key, request, refusal)
                outcome: Authorization | QianbaoError = refusal
            else:
                records.remember(key, request, record.snapshot.id)
                records.save_authorization(record)
                outcome = record.snapshot
        if isinstance(outcome, QianbaoError):
            raise outcome  # after the commit: the refusal is remembered
        return outcome

    def _new_verification(
        self, token: str, three_ds_return_url: str | None
    ) -> _AuthorizationRecord:
        card, expiry = self._card_of_token(token)
        now = self._clock.now()
        if expiry.has_passed(now.date()):
            raise CardExpired({"expiry": str(expiry)})
        # Declines, funds and issuer-side expiry concern payments: the test cards for
        # them link, so that each outcome can be met at the cashier.
        rate = self._table_on(now.date())[card.currency]
        verification = Authorization(
            id="auth_sbx_" + secrets.token_urlsafe(12),
            status=AuthorizationStatus.APPROVED,
            amount=Money(WALLET_CURRENCY, 0),
            amount_in_card_currency=Money(card.currency, 0),
            rate=rate,
            rate_date=now.date(),
        )
        return self._challenged(verification, card, three_ds_return_url)

    def _new_authorization(
        self, token: str, amount: Money, three_ds_return_url: str | None
    ) -> _AuthorizationRecord:
        card, expiry = self._card_of_token(token)
        now = self._clock.now()
        if expiry.has_passed(now.date()):
            raise CardExpired({"expiry": str(expiry)})
        _refuse_by_outcome(card.outcome)
        rate_date = now.date()
        rate = self._table_on(rate_date)[card.currency]
        authorization = Authorization(
            id="auth_sbx_" + secrets.token_urlsafe(12),
            status=AuthorizationStatus.APPROVED,
            amount=amount,
            amount_in_card_currency=to_card_currency(amount, card.currency, rate),
            rate=rate,
            rate_date=rate_date,
        )
        return self._challenged(authorization, card, three_ds_return_url)

    def _challenged(
        self, authorization: Authorization, card: SandboxCard, return_url: str | None
    ) -> _AuthorizationRecord:
        """The record: waiting for 3-D Secure for the challenge card, else approved."""
        now = self._clock.now()
        if card.outcome is not SandboxOutcome.CHALLENGE:
            return _AuthorizationRecord(authorization, card, now + AUTHORIZATION_TTL)
        url = f"{self._challenge_base_url}/{authorization.id}"
        if return_url:
            url = f"{url}?{urlencode({'return_to': return_url})}"
        waiting = replace(
            authorization, status=AuthorizationStatus.CHALLENGE_REQUIRED, challenge_url=url
        )
        return _AuthorizationRecord(waiting, card, now + CHALLENGE_TTL)

    # --- 3-D Secure ---

    def complete_challenge(self, authorization_id: str, answer: str) -> Authorization:
        with self._store.transaction() as state:
            records = _Records(state, self)
            record = records.current(records.authorization(authorization_id))
            if record.snapshot.status is not AuthorizationStatus.CHALLENGE_REQUIRED:
                raise ChallengeNotOpen()
            now = self._clock.now()
            typed = unicodedata.normalize("NFKC", answer).strip()
            failure: QianbaoError | None = None
            if now >= record.expires_at:
                failure = ChallengeExpired()
            elif not hmac.compare_digest(typed.encode(), SANDBOX_CHALLENGE_ANSWER.encode()):
                # One answer only, as an issuer's one-time code: a failed payment starts over.
                failure = ChallengeFailed()
            if failure is not None:
                _set_status(record, AuthorizationStatus.FAILED)
            else:
                record.expires_at = now + AUTHORIZATION_TTL
                _set_status(record, AuthorizationStatus.APPROVED, challenge_url=None)
            records.save_authorization(record)
        if failure is not None:
            raise failure  # after the commit: the failed check stays failed
        return record.snapshot

    # --- capture, void, refund ---

    def capture(self, authorization_id: str, amount: Money | None = None) -> Capture:
        with self._store.transaction() as state:
            records = _Records(state, self)
            record = records.current(records.authorization(authorization_id))
            status = record.snapshot.status
            if status is AuthorizationStatus.CAPTURED:
                return _repeated_capture(records.capture_of(authorization_id), amount)
            if status is AuthorizationStatus.EXPIRED:
                raise AuthorizationExpired()
            if status is not AuthorizationStatus.APPROVED or not record.snapshot.amount.minor:
                raise NotCapturable()  # (a card verification has nothing to capture)
            authorized = record.snapshot.amount
            taken = authorized if amount is None else amount
            if taken.currency != WALLET_CURRENCY or taken.minor <= 0:
                raise ValueError("capture a positive amount in CNY")
            if taken > authorized:
                raise CaptureExceedsAuthorization({"authorized": authorized.format()})
            rate = record.snapshot.rate
            capture = Capture(
                id="cap_sbx_" + secrets.token_urlsafe(12),
                authorization_id=authorization_id,
                amount=taken,
                amount_in_card_currency=to_card_currency(taken, record.card.currency, rate),
                rate=rate,
            )
            records.save_capture(
                _CaptureRecord(capture, record.card.currency, Money(WALLET_CURRENCY, 0))
            )
            _set_status(record, AuthorizationStatus.CAPTURED)
            records.save_authorization(record)
            return capture

    def void(self, authorization_id: str) -> Authorization:
        with self._store.transaction() as state:
            records = _Records(state, self)
            record = records.current(records.authorization(authorization_id))
            voidable = (AuthorizationStatus.APPROVED, AuthorizationStatus.CHALLENGE_REQUIRED)
            if record.snapshot.status not in voidable:
                raise NotVoidable()
            _set_status(record, AuthorizationStatus.VOIDED, challenge_url=None)
            records.save_authorization(record)
            return record.snapshot

    def refund(
        self,
        capture_id: str,
        amount: Money,
        *,
        rate_date: date,
        idempotency_key: str | None = None,
    ) -> Refund:
        if amount.currency != WALLET_CURRENCY or amount.minor <= 0:
            raise ValueError("refund a positive amount in CNY")
        if rate_date > self._today():
            raise ValueError(f"no exchange rate is known yet for {rate_date.isoformat()}")
        with self._store.transaction() as state:
            records = _Records(state, self)
            if idempotency_key is not None:
                earlier = records.refund_by_key(idempotency_key)
                if earlier is not None:
                    if (earlier.capture_id, earlier.amount) != (capture_id, amount):
                        raise IdempotencyKeyReused()
                    return earlier
            refund = self._new_refund(records, capture_id, amount, rate_date)
            if idempotency_key is not None:
                records.save_refund_by_key(idempotency_key, refund)
            return refund

    def books(self) -> list[BookedAuthorization]:
        """Every authorization made under a key (refusals left out), with its capture
        and what went back: the sandbox's settlement report, for reconciliation."""
        booked: list[BookedAuthorization] = []
        with self._store.transaction() as state:
            records = _Records(state, self)
            for key, found in state.items("request"):
                if "authorization" not in found:
                    continue  # a refusal: nothing was authorized
                record = records.current(records.authorization(str(found["authorization"])))
                capture = records.capture_of(record.snapshot.id)
                nothing = Money(WALLET_CURRENCY, 0)
                booked.append(
                    BookedAuthorization(
                        key=key,
                        authorization=record.snapshot,
                        capture_id=None if capture is None else capture.snapshot.id,
                        captured=nothing if capture is None else capture.snapshot.amount,
                        refunded=nothing if capture is None else capture.refunded,
                    )
                )
        return booked

    def refunded(self, capture_id: str) -> Money:
        """How much of a capture has gone back to the card (the network's own count, as a
        settlement report gives it: for reconciliation and tests)."""
        with self._store.transaction() as state:
            captured = _Records(state, self).capture(capture_id)
        if captured is None:
            raise CaptureUnknown()
        return captured.refunded

    def _new_refund(
        self, records: _Records, capture_id: str, amount: Money, rate_date: date
    ) -> Refund:
        captured = records.capture(capture_id)
        if captured is None:
            raise CaptureUnknown()
        remaining = captured.snapshot.amount - captured.refunded
        if amount > remaining:
            raise RefundExceedsCapture({"remaining": remaining.format()})
        rate = self._table_on(rate_date)[captured.currency]
        captured.refunded += amount
        records.save_capture(captured)
        return Refund(
            id="rf_sbx_" + secrets.token_urlsafe(12),
            capture_id=capture_id,
            amount=amount,
            amount_in_card_currency=to_card_currency(amount, captured.currency, rate),
            rate=rate,
            rate_date=rate_date,
        )


def _set_status(record: _AuthorizationRecord, status: AuthorizationStatus, **changes: Any) -> None:
    record.snapshot = replace(record.snapshot, status=status, **changes)


def _repeated_capture(found: _CaptureRecord | None, amount: Money | None) -> Capture:
    """Asking again for what was captured returns that capture; another amount is not."""
    if found is None or (amount is not None and amount != found.snapshot.amount):
        raise NotCapturable()
    return found.snapshot


class _Records:
    """The sandbox's records in one store transaction, as JSON and back."""

    def __init__(self, state: SandboxState, network: SandboxCardNetwork) -> None:
        self._state = state
        self._network = network

    # idempotency keys: the request and its outcome (an authorization id or a refusal)

    def keyed(self, key: str) -> tuple[_Request, str | QianbaoError] | None:
        found = self._state.get("request", key)
        if found is None:
            return None
        request = (str(found["token"]), money_from_record(found["amount"]))
        if "refusal" in found:
            refusal_class, params = _REFUSALS[found["refusal"]], found.get("params")
            return request, refusal_class(params) if params else refusal_class()
        return request, str(found["authorization"])

    def remember(self, key: str, request: _Request, outcome: str | QianbaoError) -> None:
        value: dict[str, Any] = {"token": request[0], "amount": money_record(request[1])}
        if isinstance(outcome, QianbaoError):
            value |= {"refusal": type(outcome).__name__, "params": outcome.params}
        else:
            value["authorization"] = outcome
        self._state.put("request", key, value)

    # authorizations

    def authorization(self, authorization_id: str) -> _AuthorizationRecord:
        found = self._state.get("authorization", authorization_id)
        if found is None:
            raise AuthorizationUnknown()
        snapshot = Authorization(
            id=authorization_id,
            status=AuthorizationStatus(found["status"]),
            amount=money_from_record(found["amount"]),
            amount_in_card_currency=money_from_record(found["amount_in_card_currency"]),
            rate=Decimal(found["rate"]),
            rate_date=date.fromisoformat(found["rate_date"]),
            challenge_url=found.get("challenge_url"),
        )
        card = self._network._cards[found["card"]]
        return _AuthorizationRecord(snapshot, card, datetime.fromisoformat(found["expires_at"]))

    def save_authorization(self, record: _AuthorizationRecord) -> None:
        snapshot = record.snapshot
        self._state.put(
            "authorization",
            snapshot.id,
            {
                "status": snapshot.status.value,
                "amount": money_record(snapshot.amount),
                "amount_in_card_currency": money_record(snapshot.amount_in_card_currency),
                "rate": str(snapshot.rate),
                "rate_date": snapshot.rate_date.isoformat(),
                "challenge_url": snapshot.challenge_url,
                "card": _card_key(record.card.number),
                "expires_at": record.expires_at.isoformat(),
            },
        )

    def current(self, record: _AuthorizationRecord) -> _AuthorizationRecord:
        """The record, with an approval past its time marked expired."""
        if (
            record.snapshot.status is AuthorizationStatus.APPROVED
            and self._network._clock.now() >= record.expires_at
        ):
            _set_status(record, AuthorizationStatus.EXPIRED)
            self.save_authorization(record)
        return record

    # captures

    def capture(self, capture_id: str) -> _CaptureRecord | None:
        found = self._state.get("capture", capture_id)
        if found is None:
            return None
        snapshot = Capture(
            id=capture_id,
            authorization_id=found["authorization_id"],
            amount=money_from_record(found["amount"]),
            amount_in_card_currency=money_from_record(found["amount_in_card_currency"]),
            rate=Decimal(found["rate"]),
        )
        return _CaptureRecord(snapshot, found["currency"], money_from_record(found["refunded"]))

    def capture_of(self, authorization_id: str) -> _CaptureRecord | None:
        found = self._state.get("capture_of", authorization_id)
        return None if found is None else self.capture(found["capture"])

    def save_capture(self, record: _CaptureRecord) -> None:
        snapshot = record.snapshot
        self._state.put(
            "capture",
            snapshot.id,
            {
                "authorization_id": snapshot.authorization_id,
                "amount": money_record(snapshot.amount),
                "amount_in_card_currency": money_record(snapshot.amount_in_card_currency),
                "rate": str(snapshot.rate),
                "currency": record.currency,
                "refunded": money_record(record.refunded),
            },
        )
        self._state.put("capture_of", snapshot.authorization_id, {"capture": snapshot.id})

    # refunds asked with an idempotency key

    def refund_by_key(self, key: str) -> Refund | None:
        found = self._state.get("refund", key)
        if found is None:
            return None
        return Refund(
            id=found["id"],
            capture_id=found["capture_id"],
            amount=money_from_record(found["amount"]),
            amount_in_card_currency=money_from_record(found["amount_in_card_currency"]),
            rate=Decimal(found["rate"]),
            rate_date=date.fromisoformat(found["rate_date"]),
        )

    def save_refund_by_key(self, key: str, refund: Refund) -> None:
        self._state.put(
            "refund",
            key,
            {
                "id": refund.id,
                "capture_id": refund.capture_id,
                "amount": money_record(refund.amount),
                "amount_in_card_currency": money_record(refund.amount_in_card_currency),
                "rate": str(refund.rate),
                "rate_date": refund.rate_date.isoformat(),
            },
        )


def _refuse_by_outcome(outcome: SandboxOutcome) -> None:
    if outcome is SandboxOutcome.DECLINE:
        raise CardDeclined()
    if outcome is SandboxOutcome.INSUFFICIENT_FUNDS:
        raise InsufficientFunds()
    if outcome is SandboxOutcome.EXPIRED_AT_ISSUER:
        raise CardExpiredAtIssuer()


# The refusals a remembered idempotency key can replay, by class name.
_REFUSALS: dict[str, Callable[..., QianbaoError]] = {
    refusal.__name__: refusal
    for refusal in (
        CardDeclined,
        InsufficientFunds,
        CardExpiredAtIssuer,
        CardExpired,
        TokenUnknown,
    )
}
