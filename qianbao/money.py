"""Money: an integer number of minor units and an ISO 4217 currency. Never a float.

Minor units come from ISO 4217 (CNY and USD have 2, JPY 0); Babel formats amounts for
the reader's language.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from babel.numbers import format_currency

from qianbao.i18n import current_language

MINOR_DIGITS: Final = {"CNY": 2, "USD": 2, "EUR": 2, "GBP": 2, "HKD": 2, "JPY": 0, "KRW": 0}
BABEL_LOCALE: Final = {"en": "en", "zh_Hans": "zh_Hans_CN"}


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
