"""Money: an integer number of minor units and an ISO 4217 currency. Never a float.

Minor units come from ISO 4217 (CNY and USD have 2, JPY 0); Babel formats amounts for
the reader's language.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from babel.numbers import format_currency

from qianbao.errors import InvalidInput
from qianbao.i18n import N_, current_language

MINOR_DIGITS: Final = {"CNY": 2, "USD": 2, "EUR": 2, "GBP": 2, "HKD": 2, "JPY": 0, "KRW": 0}
BABEL_LOCALE: Final = {"en": "en", "zh_Hans": "zh_Hans_CN"}
# What a person types: digits, at most 12 before the point (a trillion yuan; every column
# holds it in fen) and at most 2 after. Decimal itself also reads exponents ("1e30"),
# underscores ("1_000"), "NaN" and "Infinity", which reached the database as numbers no
# column holds; float() reads more still.
_TYPED_CNY: Final = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,2})?")


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
    def parse(cls, text: str) -> Money:
        """THE parser of a CNY amount a person or a client typed (an order, a refund, a
        transfer, a top-up, a top-up code's face value): "288", "288.5", "1,288.00",
        "¥288", full-width digits from a Chinese keyboard. Anything else, and more than 2
        decimals, is 422 ``amount.format``. Zero passes: whether it is allowed is the
        caller's rule (a refund of nothing, a transfer of nothing say so themselves)."""
        cleaned = unicodedata.normalize("NFKC", text).strip().removeprefix("¥")
        cleaned = cleaned.replace(",", "").replace(" ", "")
        if not _TYPED_CNY.fullmatch(cleaned):
            raise InvalidInput(
                "amount.format", N_("Write an amount in CNY with at most 2 decimals, like 288.00.")
            )
        return cls.of("CNY", cleaned)

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
