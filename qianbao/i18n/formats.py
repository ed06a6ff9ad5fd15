"""How times, dates, amounts and countries are written for a reader: in the reader's
language (Babel's CLDR formats) and, for times, on the reader's own clock with the zone
named. Pages use these through Jinja filters (qianbao.web.render); the JSON API keeps
ISO 8601 in UTC and never comes here.

The reader's time zone is a context variable like the language: the signed-in page sets
it from the account, and anyone else reads Beijing time, since the wallet is for China.
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import UTC, date, datetime
from functools import cache
from typing import Final
from zoneinfo import ZoneInfo, available_timezones

import pycountry
from babel import Locale
from babel.dates import format_date, format_time, get_timezone_name
from markupsafe import Markup

from qianbao.i18n import Language, current_language
from qianbao.money import BABEL_LOCALE, Money

DEFAULT_TIME_ZONE: Final = "Asia/Shanghai"
# The zones a person is offered first on the profile page: where the wallet's visitors
# mostly live, and China. Any other IANA name is accepted too (the detected one).
COMMON_TIME_ZONES: Final = (
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Taipei",
    "Asia/Tokyo",
    "Asia/Seoul",
    "Asia/Singapore",
    "Asia/Kuala_Lumpur",
    "Asia/Bangkok",
    "Asia/Kolkata",
    "Asia/Dubai",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Moscow",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Australia/Sydney",
    "Pacific/Auckland",
    "Africa/Johannesburg",
    "UTC",
)

_zone: ContextVar[str] = ContextVar("qianbao_time_zone", default=DEFAULT_TIME_ZONE)


def current_time_zone() -> str:
    return _zone.get()


def set_time_zone(zone: str) -> None:
    _zone.set(zone if is_time_zone(zone) else DEFAULT_TIME_ZONE)


@cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def is_time_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone that this machine's tz database knows."""
    return name in _known_zones()


def _locale(language: Language | None) -> str:
    return BABEL_LOCALE[language or current_language()]


def zone_name(zone: str, moment: datetime | None = None, language: Language | None = None) -> str:
    """The zone as a reader names it: "China Standard Time", "中国标准时间", "British
    Summer Time" (the name at ``moment``, which knows summer time)."""
    when = (moment or datetime.now(UTC)).astimezone(ZoneInfo(zone))
    return str(get_timezone_name(when, locale=_locale(language)))


def local_datetime(
    moment: datetime, zone: str | None = None, language: Language | None = None
) -> str:
    """``Dec 7, 2026, 5:14 PM (China Standard Time)`` / ``2026年12月7日 17:14（中国标准时间）``:
    the moment on the reader's clock, in the language's medium date and short time."""
    chosen = zone or current_time_zone()
    locale = _locale(language)
    local = _aware(moment).astimezone(ZoneInfo(chosen))
    pattern = Locale.parse(locale).datetime_formats["medium"]
    text = str(pattern).format(
        format_time(local, "short", locale=locale), format_date(local, "medium", locale=locale)
    )
    named = zone_name(chosen, local, language)
    if (language or current_language()) == "zh_Hans":
        return f"{text}（{named}）"
    return f"{text} ({named})"


def local_date(
    moment: datetime | date, zone: str | None = None, language: Language | None = None
) -> str:
    """The reader's calendar day of a moment (a plain date is shown as it is)."""
    day = moment
    if isinstance(moment, datetime):
        day = _aware(moment).astimezone(ZoneInfo(zone or current_time_zone())).date()
    return str(format_date(day, "medium", locale=_locale(language)))


def _aware(moment: datetime) -> datetime:
    # Columns are UTC; SQLite hands some back without a zone.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def amount(money: Money, sign: str = "") -> Markup:
    """An amount that never breaks across lines: ``Money.format`` (Babel, the reader's
    language) in a span the stylesheet keeps on one line, with its sign ("−", "+")
    inside, so that the sign never stays behind on a line of its own."""
    return Markup('<span class="amount">{}{}</span>').format(sign, money.format())


def country_name(code: str | None, language: Language | None = None) -> str:
    """A country's name in the reader's language from an ISO 3166-1 alpha-3 (a passport's
    nationality: "MYS") or alpha-2 code; the code itself when it names no country (the
    ICAO's own codes, stateless persons)."""
    if not code:
        return ""
    cleaned = code.strip("<").upper()
    found = pycountry.countries.get(alpha_3=cleaned) if len(cleaned) == 3 else None
    if cleaned == "D":  # ICAO's code for Germany, the one not in ISO 3166
        found = pycountry.countries.get(alpha_2="DE")
    alpha_2 = str(found.alpha_2) if found is not None else cleaned
    names = Locale.parse(_locale(language)).territories
    return str(names.get(alpha_2, cleaned)) if len(alpha_2) == 2 else cleaned


def time_zone_choices(current: str, detected: str | None = None) -> list[tuple[str, str]]:
    """The profile page's choices: the person's zone, the one detected from their mobile
    number, then the common ones; each as ``(IANA name, "China Standard Time ·
    Asia/Shanghai")`` in the reader's language."""
    names = [current, detected, *COMMON_TIME_ZONES]
    unique = [zone for zone in dict.fromkeys(names) if zone and is_time_zone(zone)]
    return [(zone, f"{zone_name(zone)} · {zone}") for zone in unique]
