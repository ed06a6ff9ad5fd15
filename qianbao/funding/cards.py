"""Mainland China UnionPay card numbers: reading, checking, masking and tokenising.

A card number (PAN) is read leniently and checked strictly, in the order that gives a
person the most useful answer:

1. ``normalize_card_number``: digits only. Spaces, dashes and full-width digits (which
   a Chinese input method types) are accepted; NFKC turns ``６２２２`` into ``6222``.
2. UnionPay: the number starts with ``62``, the issuer identification range ISO/IEC
   7812-1 registers to China UnionPay, and has 16 to 19 digits (UnionPay's lengths).
3. The issuer (BIN, the first six digits): a small table of the major mainland banks'
   UnionPay BINs says who issued the card, whether it is a debit (借记卡) or credit
   (贷记卡) card and how many digits its numbers have. Real-name verification needs a
   debit (savings) card, as Alipay's does (shared/reference/alipay_rules.md, section 2),
   so a known credit BIN is refused. A ``62`` number whose BIN is not in the table is
   "UnionPay, bank unknown": the bank's own four-element check has the last word.
4. The Luhn check digit (ISO/IEC 7812-1 annex B), which catches every single wrong digit
   and most swaps of neighbouring digits.

The BIN table is a hand-picked subset of ``data/bin.csv`` in the MIT-licensed
``hexindai/bcbc`` project (https://github.com/hexindai/bcbc), whose bank codes and card
types (``DC`` debit, ``CC`` credit) are those of Alipay's public card-information
lookup. It lists a handful of BINs per bank; it is not meant to be complete.

A card number is never stored whole: ``mask`` shows the last four digits and
``card_token`` maps a number to a keyed hash (HMAC-SHA256), so the same card always has
the same token without the number being kept. The key matters: a debit card number has
few unknown digits once the BIN and the last four are known, so an unkeyed hash could be
reversed by trying them all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from qianbao.errors import InvalidInput
from qianbao.i18n import N_

UNIONPAY_PREFIX = "62"
UNIONPAY_MIN_LENGTH = 16
UNIONPAY_MAX_LENGTH = 19
BIN_LENGTH = 6
# Room for 19 digits with generous separators; stops pathological input early.
MAX_INPUT_LENGTH = 100
_SEPARATORS = frozenset(" -\t")
_TOKEN_CONTEXT = b"qianbao.card-token.v1:"


class CardType(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Bank:
    code: str  # the short code Alipay's card lookup uses: ICBC, CCB, ABC, ...
    name_en: str
    name_zh: str


@dataclass(frozen=True)
class BinRange:
    bank: Bank
    card_type: CardType
    length: int


@dataclass(frozen=True)
class UnionPayCard:
    """What a card number tells about the card; holds no more of it than a mask shows."""

    bin: str
    last4: str
    length: int
    card_type: CardType
    bank: Bank | None  # None: a UnionPay card from a bank the table does not list

    @property
    def masked(self) -> str:
        return f"**** **** **** {self.last4}"

    @property
    def bank_name_en(self) -> str:
        return self.bank.name_en if self.bank else "UnionPay, bank unknown"

    @property
    def bank_name_zh(self) -> str:
        return self.bank.name_zh if self.bank else "银联卡，发卡行未知"


ICBC = Bank("ICBC", "Industrial and Commercial Bank of China", "中国工商银行")
CCB = Bank("CCB", "China Construction Bank", "中国建设银行")
ABC = Bank("ABC", "Agricultural Bank of China", "中国农业银行")
BOC = Bank("BOC", "Bank of China", "中国银行")
BOCOM = Bank("COMM", "Bank of Communications", "交通银行")
CMB = Bank("CMB", "China Merchants Bank", "招商银行")
PSBC = Bank("PSBC", "Postal Savings Bank of China", "中国邮政储蓄银行")

_D, _C = CardType.DEBIT, CardType.CREDIT

# (BIN, bank, type, number length), from hexindai/bcbc data/bin.csv (see the docstring).
_BIN_ROWS: tuple[tuple[str, Bank, CardType, int], ...] = (
    ("622202", ICBC, _D, 19),
    ("622208", ICBC, _D, 19),
    ("621226", ICBC, _D, 19),
    ("621288", ICBC, _D, 19),
    ("621558", ICBC, _D, 19),
    ("622230", ICBC, _C, 16),
    ("625916", ICBC, _C, 16),
    ("628288", ICBC, _C, 16),
    ("621700", CCB, _D, 19),
    ("622700", CCB, _D, 19),
    ("622280", CCB, _D, 19),
    ("621284", CCB, _D, 19),
    ("621467", CCB, _D, 19),
    ("622166", CCB, _C, 16),
    ("625964", CCB, _C, 16),
    ("628366", CCB, _C, 16),
    ("622848", ABC, _D, 19),
    ("622845", ABC, _D, 19),
    ("622846", ABC, _D, 19),
    ("621282", ABC, _D, 19),
    ("623052", ABC, _D, 19),
    ("622836", ABC, _C, 16),
    ("625996", ABC, _C, 16),
    ("628268", ABC, _C, 16),
    ("621661", BOC, _D, 19),
    ("621785", BOC, _D, 19),
    ("621790", BOC, _D, 19),
    ("621283", BOC, _D, 19),
    ("623569", BOC, _D, 19),
    ("622760", BOC, _C, 16),
    ("625905", BOC, _C, 16),
    ("628312", BOC, _C, 16),
    ("622262", BOCOM, _D, 19),
    ("622260", BOCOM, _D, 19),
    ("622261", BOCOM, _D, 19),
    ("622252", BOCOM, _C, 16),
    ("622656", BOCOM, _C, 16),
    ("622588", CMB, _D, 16),
    ("622580", CMB, _D, 16),
    ("621483", CMB, _D, 16),
    ("621485", CMB, _D, 16),
    ("621286", CMB, _D, 16),
    ("622575", CMB, _C, 16),
    ("622576", CMB, _C, 16),
    ("622582", CMB, _C, 16),
    ("621098", PSBC, _D, 19),
    ("622188", PSBC, _D, 19),
    ("621799", PSBC, _D, 19),
    ("622150", PSBC, _D, 19),
    ("623218", PSBC, _D, 19),
    ("622810", PSBC, _C, 16),
    ("625919", PSBC, _C, 16),
    ("628310", PSBC, _C, 16),
)

BIN_TABLE: dict[str, BinRange] = {
    bin_: BinRange(bank, card_type, length) for bin_, bank, card_type, length in _BIN_ROWS
}


def normalize_card_number(text: str) -> str:
    """The digits of a typed card number; spaces, dashes and full-width digits allowed."""
    if len(text) > MAX_INPUT_LENGTH:
        raise _format_error()
    # NFKC folds full-width digits and the ideographic space into their ASCII forms.
    folded = unicodedata.normalize("NFKC", text).strip()
    digits = [char for char in folded if char not in _SEPARATORS]
    if not digits or not all("0" <= char <= "9" for char in digits):
        raise _format_error()
    return "".join(digits)


def luhn_check_digit(payload: str) -> str:
    """The digit that, appended to ``payload``, makes a number pass the Luhn check."""
    total = 0
    # Counting from the right of the payload, every first digit is the one that the
    # appended check digit pushes into a doubled position.
    for index, char in enumerate(reversed(payload)):
        digit = int(char)
        if index % 2 == 0:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    """Whether an all-digit ``number`` ends with its Luhn check digit."""
    if len(number) < 2 or not number.isascii() or not number.isdigit():
        return False
    return luhn_check_digit(number[:-1]) == number[-1]


def lookup_bin(number: str) -> BinRange | None:
    return BIN_TABLE.get(number[:BIN_LENGTH])


def unionpay_card(number: str) -> UnionPayCard:
    """Check a card number (typed or normalised) for binding; refuse with a stable code."""
    digits = normalize_card_number(number)
    if not digits.startswith(UNIONPAY_PREFIX):
        raise InvalidInput(
            "card.not_unionpay",
            N_(
                "This is not a UnionPay card from a mainland China bank (their numbers "
                "start with 62). Use a UnionPay debit card issued in mainland China."
            ),
        )
    if not UNIONPAY_MIN_LENGTH <= len(digits) <= UNIONPAY_MAX_LENGTH:
        raise InvalidInput(
            "card.length",
            N_(
                "A UnionPay card number has 16 to 19 digits; this one has {length}. "
                "Check the number on your card and type it again."
            ),
            {"length": len(digits)},
        )
    known = lookup_bin(digits)
    if known is not None:
        _check_known_bin(digits, known)
    if not luhn_valid(digits):
        raise InvalidInput(
            "card.luhn",
            N_(
                "This card number is not valid: a digit is wrong or two digits are swapped. "
                "Check the number on your card and type it again."
            ),
        )
    return UnionPayCard(
        bin=digits[:BIN_LENGTH],
        last4=digits[-4:],
        length=len(digits),
        card_type=known.card_type if known else CardType.UNKNOWN,
        bank=known.bank if known else None,
    )


def _check_known_bin(digits: str, known: BinRange) -> None:
    # Refused before the Luhn check: "this is a credit card" helps more than "a digit is
    # wrong" when someone typed their credit card with a slip.
    if known.card_type is CardType.CREDIT:
        raise credit_card_error()
    if len(digits) != known.length:
        raise InvalidInput(
            "card.length",
            N_(
                "Card numbers that start with {bin} have {expected} digits; this one has "
                "{length}. Check the number on your card and type it again."
            ),
            {"bin": digits[:BIN_LENGTH], "expected": known.length, "length": len(digits)},
        )


def credit_card_error() -> InvalidInput:
    """The refusal for a credit card; the bank connectors raise it too."""
    return InvalidInput(
        "card.credit_card",
        N_(
            "This is a credit card. Real-name verification needs a debit (savings) card "
            "from a mainland China bank."
        ),
    )


def mask(number: str) -> str:
    """``**** **** **** 1234``: the last four digits, whatever the card's length."""
    return f"**** **** **** {normalize_card_number(number)[-4:]}"


def card_token(number: str, key: bytes) -> str:
    """A stable, keyed token for a card number (HMAC-SHA256, URL-safe base64)."""
    if not key:
        raise ValueError("card_token needs a non-empty secret key")
    digest = hmac.new(
        key, _TOKEN_CONTEXT + normalize_card_number(number).encode(), hashlib.sha256
    ).digest()
    return "ct_" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _format_error() -> InvalidInput:
    return InvalidInput(
        "card.format",
        N_(
            "A card number has only digits (spaces and dashes are fine). Check the number "
            "and type it again."
        ),
    )
