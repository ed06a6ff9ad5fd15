"""Money: an integer number of minor units and an ISO 4217 currency. Never a float.

Minor units come from ISO 4217 (CNY and USD have 2, JPY 0); Babel formats amounts for
the reader's language.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

from babel.numbers import format_currency

from qianbao.errors import InvalidInput
from qianbao.i18n import N_, current_language

MINOR_DIGITS: Final = {"CNY": 2, "USD": 2, "EUR": 2, "GBP": 2, "HKD": 2, "JPY": 0, "KRW": 0}
BABEL_LOCALE: Final = {"en": "en", "zh_Hans": "zh_Hans_CN"}
# What a person types: a sign, digits (at most 12 before the point: a trillion yuan, which
# every column holds in fen) and a point. Decimal itself also reads exponents ("1e30"),
# underscores ("1_000"), "NaN" and "Infinity", which reached the database as numbers no
# column holds; float() reads more still.
# Digits of any script ("١٢٣" too), read as what they are.
_TYPED: Final = re.compile(r"(?P<sign>[+-]?)(?P<whole>\d{0,12})(?:\.(?P<fraction>\d*))?")
# A Chinese keyboard's full-width forms ("２８８．５０", "￥", the ideographic space) as ASCII.
_FULL_WIDTH: Final = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {
    0xFFE5: ord("¥"),
    0x3000: ord(" "),
}
AmountProblem = Literal["missing", "format", "negative", "precision"]


class AmountRefused(InvalidInput):
    """A typed amount that is no amount: 422 ``amount.format``. ``reason`` says why, for a
    caller that answers with codes of its own (a transfer's ``transfer.amount_*``), and
    ``typed`` is the text as read."""

    def __init__(self, reason: AmountProblem, typed: str) -> None:
        super().__init__(
            "amount.format",
            N_("Write an amount in CNY with at most 2 decimals, like 288.00."),
            details={"reason": reason},
        )
        self.reason: AmountProblem = reason
        self.typed = typed


def _cleaned(text: str) -> str:
    """What a person typed without what only eases their reading: full-width forms, the
    yuan sign, grouping commas and spaces."""
    cleaned = text.translate(_FULL_WIDTH).strip().removeprefix("¥")
    return cleaned.replace(",", "").replace(" ", "")


def _ascii(digits: str | None) -> str:
    return "".join(str(unicodedata.decimal(digit)) for digit in digits or "")


@dataclass(frozen=True, order=True)
class Money:
    currency: str
    minor: int

    def __post_init__(self) -> None:
        if self.currency not in MINOR_DIGITS:
            raise ValueError(f"unsupported currency {self.currency!r}")
        if not isinstance(self.minor, int) or isinstance(self.minor, bool):
            raise TypeError("money is an integer number of minor units")

    @classmethod
    def of(cls, currency: str, major: int | str | Decimal) -> Money:
        """``Money.of("CNY", "100.50")``: from major units, exactly (no float)."""
        amount = Decimal(str(major)) * (10 ** MINOR_DIGITS[currency])
        if amount != amount.to_integral_value():
            raise ValueError(f"{major} {currency} has more decimals than the currency")
        return cls(currency, int(amount))

    @classmethod
    def parse(cls, text: str, *, plain: bool = False) -> Money:
        """THE parser of a CNY amount that a person or a client typed (an order, a
        refund, a transfer, a top-up, a top-up code's face value), exactly: "288",
        "288.5", ".5", "1.500", "1,288.00", "¥288", full-width digits from a Chinese
        keyboard, digits of other scripts. Empty, not a number, negative or finer than a
        fen is ``AmountRefused``. Zero passes: whether it is allowed is the caller's rule.

        ``plain``: the amount as a protocol writes it (the Alipay gateway's): nothing but
        the surrounding spaces is cleaned away, so a grouping comma, a currency sign or a
        full-width point is refused ("format"). A program's "1,5" may be a decimal comma
        as well as a thousands one; read as 15 it would charge ten times the price."""
        cleaned = text.strip() if plain else _cleaned(text)
        if not cleaned:
            raise AmountRefused("missing", cleaned)
        match = _TYPED.fullmatch(cleaned)
        if match is None or not (match["whole"] or match["fraction"]):
            raise AmountRefused("format", cleaned)
        whole, fraction = _ascii(match["whole"]) or "0", _ascii(match["fraction"]).rstrip("0")
        if match["sign"] == "-" and (whole.strip("0") or fraction):
            raise AmountRefused("negative", cleaned)
        if len(fraction) > MINOR_DIGITS["CNY"]:
            raise AmountRefused("precision", cleaned)
        return cls.of("CNY", f"{whole}.{fraction or '0'}")

    @property
    def major(self) -> Decimal:
        return Decimal(self.minor).scaleb(-MINOR_DIGITS[self.currency])

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.currency, self.minor + other.minor)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.currency, self.minor - other.minor)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot mix {self.currency} and {other.currency}")

    def format(self) -> str:
        """In the reader's language, with the ISO code that people from anywhere read
        the same way: "USD 5,000.00", "CNY 1,000.00"."""
        locale = BABEL_LOCALE.get(current_language(), "en")
        pattern = "¤¤\u00a0#,##0.00" if MINOR_DIGITS[self.currency] == 2 else "¤¤\u00a0#,##0"
        return str(
            format_currency(
                self.major, self.currency, format=pattern, locale=locale, currency_digits=False
            )
        )
