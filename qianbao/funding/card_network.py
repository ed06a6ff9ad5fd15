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

``SandboxCardNetwork`` (the default, in ``qianbao/funding/sandbox/card_network.py``) is a
network that knows only the documented test
cards (``SANDBOX_CARDS``, listed in docs/sandbox_card_network.md), each with a fixed
outcome, like a payment provider's test mode. It keeps authorizations, captures and
refunds in a store (:mod:`qianbao.funding.sandbox.state`): a file every process shares
for the running service, memory for unit tests. Its card tokens carry no state.

``foreign_card_fee`` is Alipay's 3% on the whole amount of a payment above CNY 200.

Money is converted with ``decimal`` and rounded half-up to the minor unit of the target
currency (ISO 4217: 2 digits for USD, 0 for JPY), never through a float.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any, Protocol

from qianbao.errors import Conflict, FixedCode, InvalidInput, NotFound
from qianbao.funding.cards import luhn_valid, normalize_card_number
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


class CardInputRefused(InvalidInput, FixedCode):
    """What was typed, or the card itself, cannot be used (HTTP 422)."""

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(self.code_, self.message_, params)


class CardStateRefused(Conflict, FixedCode):
    """The card's issuer, or the payment's state, refuses this (HTTP 409)."""

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(self.code_, self.message_, params)


class CardRecordUnknown(NotFound, FixedCode):
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
        "China bank under Wallet › Bank cards instead."
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
