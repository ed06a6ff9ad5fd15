"""International mobile numbers: the calling-code picker and parsing to E.164.

Parsing and metadata come from ``phonenumbers`` (Google's libphonenumber data);
country names in both languages come from the CLDR data that Babel ships.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

import phonenumbers
import phonenumbers.timezone
from babel import Locale
from babel.core import get_global
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult

from qianbao.errors import InvalidInput
from qianbao.i18n import N_, Language

# libphonenumber's region for the non-geographic codes (+800, +870, +882, ...).
NON_GEOGRAPHIC = "001"
MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
MAX_INPUT_LENGTH = 40


@dataclass(frozen=True)
class CallingCode:
    region: str  # ISO 3166-1 alpha-2, or "001" with the code for global services
    code: int
    name_en: str
    name_zh: str

    @property
    def key(self) -> str:
        """The value the picker submits: region, plus the code for global services."""
        return self.region if self.region != NON_GEOGRAPHIC else f"{NON_GEOGRAPHIC}-{self.code}"

    def name(self, language: Language) -> str:
        return self.name_zh if language == "zh_Hans" else self.name_en


@dataclass(frozen=True)
class PhoneNumber:
    e164: str
    region: str
    country_code: int
    national: str  # the national significant number, without trunk prefix

    def international(self) -> str:
        """``+44 7911 123456``: how the number is shown back to its owner."""
        parsed = phonenumbers.parse(self.e164)
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)

    def time_zone(self) -> str:
        """The IANA time zone of the number's area: libphonenumber's zones for it, kept to
        the region's own (CLDR) where they meet, when they all keep one clock (the UK's
        four Crown zones do); "UTC" when the number names no single clock (a global
        service, a mobile range across Russia's eleven zones)."""
        return _time_zone(self.e164, self.region)

    def masked(self) -> str:
        """``+44 ******3456``: enough to recognise one's own number, no more."""
        return f"+{self.country_code} {'*' * max(len(self.national) - 4, 0)}{self.national[-4:]}"


@cache
def _time_zone(e164: str, region: str) -> str:
    zones = [
        zone
        for zone in phonenumbers.timezone.time_zones_for_number(phonenumbers.parse(e164))
        if zone != "Etc/Unknown"
    ]
    regional = set(get_global("territory_zones").get(region, ()))
    zones = [zone for zone in zones if zone in regional] or zones
    clocks = {
        tuple(datetime(2026, month, 1, tzinfo=ZoneInfo(zone)).utcoffset() for month in (1, 7))
        for zone in zones
    }
    return zones[0] if len(clocks) == 1 else "UTC"


@cache
def calling_codes() -> tuple[CallingCode, ...]:
    """Every ITU calling code that libphonenumber knows, one row per region."""
    english, chinese = Locale("en").territories, Locale("zh", script="Hans").territories
    rows: list[CallingCode] = []
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        for region in regions:
            if region == NON_GEOGRAPHIC:
                rows.append(
                    CallingCode(region, code, f"Global service +{code}", f"全球服务 +{code}")
                )
            else:
                rows.append(
                    CallingCode(
                        region, code, english.get(region, region), chinese.get(region, region)
                    )
                )
    return tuple(sorted(rows, key=lambda row: (row.name_en, row.code)))


@cache
def _codes_by_key() -> dict[str, CallingCode]:
    return {row.key: row for row in calling_codes()}


def calling_code(key: str) -> CallingCode:
    row = _codes_by_key().get(key.strip().upper())
    if row is None:
        raise InvalidInput(
            "phone.unknown_country",
            N_("We do not know the country or region code “{key}”. Choose one from the list."),
            {"key": key[:8]},
        )
    return row


_TOO_SHORT = N_("This number is too short for {country}. Check that no digit is missing.")
_TOO_LONG = N_("This number is too long for {country}. Check for an extra digit.")


# Pure, and a walk through phonenumbers' metadata each time (a transfer parsed the same
# number twice, a sign-up three times): remembered. A refusal is an exception, which is
# never remembered, so bad input cannot fill the cache; good input is bounded by it.
@lru_cache(maxsize=16384)
def parse_mobile(raw: str, country_key: str, language: Language = "en") -> PhoneNumber:
    """Parse what a person typed for the chosen country into a mobile number.

    Spaces, dashes, brackets and a trunk ``0`` are accepted and dropped. A number that
    starts with ``+`` or ``00`` is read as international whatever country is chosen.
    """
    picked = calling_code(country_key)
    country = f"{picked.name(language)} (+{picked.code})"
    text = (raw or "").strip()
    if not text:
        raise InvalidInput("phone.empty", N_("Enter your mobile number."))
    if len(text) > MAX_INPUT_LENGTH:
        raise InvalidInput("phone.too_long", _TOO_LONG, {"country": country})
    if not any(ch.isdigit() for ch in text):
        raise InvalidInput("phone.not_a_number", N_("A mobile number is made of digits."))
    parse_region = None if picked.region == NON_GEOGRAPHIC else picked.region
    if parse_region is None and not text.startswith("+"):
        text = f"+{picked.code}{text}"
    try:
        parsed = phonenumbers.parse(text, parse_region)
    except NumberParseException as error:
        raise _parse_error(error, country) from None
    if parsed.extension:
        # An SMS cannot reach an extension; dropping it silently signed up another line.
        raise InvalidInput(
            "phone.extension",
            N_("A mobile number has no extension. Enter the number without it."),
        )
    if _fictional(parsed):
        raise InvalidInput(
            "phone.fictional",
            N_("This number is reserved for films and books; no phone has it."),
        )

    reason = phonenumbers.is_possible_number_with_reason(parsed)
    if reason in (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        raise InvalidInput("phone.too_short", _TOO_SHORT, {"country": country})
    if reason == ValidationResult.TOO_LONG:
        raise InvalidInput("phone.too_long", _TOO_LONG, {"country": country})
    if reason == ValidationResult.INVALID_COUNTRY_CODE:
        raise InvalidInput(
            "phone.unknown_country",
            N_("No country or region uses the calling code of this number."),
        )
    if reason != ValidationResult.IS_POSSIBLE or not phonenumbers.is_valid_number(parsed):
        raise InvalidInput(
            "phone.invalid",
            N_("This is not a valid number for {country}. Check the number and the country."),
            {"country": country},
        )
    if phonenumbers.number_type(parsed) not in MOBILE_TYPES:
        raise InvalidInput(
            "phone.not_mobile",
            N_("This is not a mobile number for {country}. We send codes by SMS, so use a mobile."),
            {"country": country},
        )
    region = phonenumbers.region_code_for_number(parsed) or picked.region
    return PhoneNumber(
        e164=phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
        region=region,
        country_code=int(parsed.country_code or 0),
        national=str(phonenumbers.national_significant_number(parsed)),
    )


def _fictional(parsed: phonenumbers.PhoneNumber) -> bool:
    """North America's 555-0100 to 555-0199 (NANPA reserves them for fiction in every area
    code): valid to phonenumbers, yet no phone answers them."""
    national = str(phonenumbers.national_significant_number(parsed))
    return parsed.country_code == 1 and len(national) == 10 and national[3:8] == "55501"


@lru_cache(maxsize=65_536)
def from_e164(e164: str) -> PhoneNumber:
    """Rebuild a stored E.164 number (always valid: it was checked when stored). Every
    account load asks, so the parse is remembered: a number always rebuilds the same
    (PhoneNumber is frozen), and parsing cost more than the row's query."""
    parsed = phonenumbers.parse(e164)
    return PhoneNumber(
        e164=e164,
        region=phonenumbers.region_code_for_number(parsed) or NON_GEOGRAPHIC,
        country_code=int(parsed.country_code or 0),
        national=str(phonenumbers.national_significant_number(parsed)),
    )


def _parse_error(error: NumberParseException, country: str) -> InvalidInput:
    kind = error.error_type
    if kind == NumberParseException.INVALID_COUNTRY_CODE:
        return InvalidInput(
            "phone.unknown_country",
            N_("No country or region uses the calling code of this number."),
        )
    if kind in (NumberParseException.TOO_SHORT_NSN, NumberParseException.TOO_SHORT_AFTER_IDD):
        return InvalidInput("phone.too_short", _TOO_SHORT, {"country": country})
    if kind == NumberParseException.TOO_LONG:
        return InvalidInput("phone.too_long", _TOO_LONG, {"country": country})
    return InvalidInput("phone.not_a_number", N_("A mobile number is made of digits."))
