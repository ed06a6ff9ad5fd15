"""The machine-readable zone of a passport: ICAO Doc 9303 Part 4, format TD3.

A TD3 zone is two lines of 44 characters from ``A``-``Z``, ``0``-``9`` and the filler
``<``::

    P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<
    L898902C36UTO7408122F1204159ZE184226B<<<<<10

Line 1: document code (2), issuing state (3), name (39).
Line 2: document number (9) and its check digit, nationality (3), date of birth
(YYMMDD) and its check digit, sex, date of expiry and its check digit, optional data
(14) and its check digit, and the composite check digit over the document number,
birth date, expiry date and optional data with their check digits.

:func:`parse_td3` reads the lines exactly as given. :func:`read_td3` is for lines that
came from OCR: when the exact read fails it tries once more with the letters that OCR
confuses with digits (``O`` for ``0``, ``B`` for ``8``, ...) turned into digits, in the
fields that can only hold digits, and accepts that read only if every check digit
passes. Names, the document number and the optional data are never altered: they may
hold letters, so a letter there is what the passport says. A wrong read is worse than
no read.

Nationality and sex are covered by no check digit in Doc 9303; they are checked
against what the fields may hold, nothing more.
"""

from __future__ import annotations

import string
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from typing import Final, Literal

import pycountry

from qianbao.errors import InvalidInput
from qianbao.i18n import N_

Sex = Literal["M", "F", "X"]

TD3_LENGTH: Final = 44
FILLER: Final = "<"
ALLOWED_CHARACTERS: Final = frozenset(string.ascii_uppercase + string.digits + FILLER)
_LETTERS: Final = frozenset(string.ascii_uppercase)
_DIGITS: Final = frozenset(string.digits)
_WEIGHTS: Final = (7, 3, 1)

# The three-letter codes of Doc 9303 Part 3, section 5, that are not ISO 3166-1
# alpha-3 country codes. Every ISO 3166-1 alpha-3 code (from pycountry) is accepted too.
ICAO_NON_ISO_CODES: Final[Mapping[str, str]] = {
    # Germany writes "D<<" rather than DEU.
    "D": "Germany",
    # The European Union's laissez-passer.
    "EUE": "European Union (EU)",
    # British nationality other than British citizen (GBR).
    "GBD": "British Overseas Territories Citizen (BOTC)",
    "GBN": "British National (Overseas)",
    "GBO": "British Overseas Citizen",
    "GBP": "British Protected Person",
    "GBS": "British Subject",
    # The United Nations.
    "UNA": "Specialized agency of the United Nations",
    "UNK": "Resident of Kosovo with a travel document issued by UNMIK",
    "UNO": "United Nations organization or one of its officials",
    # Other issuing organizations.
    "XBA": "African Development Bank (AfDB)",
    "XCC": "Caribbean Community or one of its emissaries (CARICOM)",
    "XCE": "Council of Europe",
    "XCO": "Common Market for Eastern and Southern Africa (COMESA)",
    "XDC": "Southern African Development Community (SADC)",
    "XEC": "Economic Community of West African States (ECOWAS)",
    "XES": "Organization of Eastern Caribbean States (OECS)",
    "XIM": "African Export-Import Bank (Afreximbank)",
    "XMP": "Parliamentary Assembly of the Mediterranean (PAM)",
    "XOM": "Sovereign Military Order of Malta or one of its emissaries",
    "XPO": "International Criminal Police Organization (INTERPOL)",
    # Persons without a defined nationality (nationality field only, in practice).
    "XXA": "Stateless person (1954 Convention)",
    "XXB": "Refugee (1951 Convention and 1967 Protocol)",
    "XXC": "Refugee, other than XXB",
    "XXX": "Person of unspecified nationality",
    # Not in Doc 9303's list, but the code Kosovo's own passports carry (ISO 3166-1 has
    # no code for Kosovo; UNMIK documents use UNK above).
    "RKS": "Republic of Kosovo",
}
# Deliberately left out: UTO (Utopia, the specimen state of Doc 9303; tests pass it as an
# extra code), IAO (ICAO itself, only signs master lists, never on a document), and the
# withdrawn ISO codes ANT and NTZ (no passport carrying them can still be valid).

# What OCR reads in place of a digit. Only applied where 9303 allows nothing but digits.
CONFUSABLE_DIGITS: Final[Mapping[str, str]] = {
    "O": "0",
    "I": "1",
    "L": "1",
    "Z": "2",
    "S": "5",
    "B": "8",
    "G": "6",
}
_CONFUSABLE_TABLE: Final = str.maketrans(dict(CONFUSABLE_DIGITS))

# Line 2, 0-based: the positions that can only hold a digit (the optional data's check
# digit may also be the filler, which correction leaves alone).
_NUMERIC_POSITIONS: Final = frozenset((9, *range(13, 20), *range(21, 28), 42, 43))

_CHECK_DIGIT_MESSAGES: Final[Mapping[str, str]] = {
    "document_number": N_(
        "The check digit of the document number does not match. Scan the passport again."
    ),
    "birth_date": N_(
        "The check digit of the date of birth does not match. Scan the passport again."
    ),
    "expiry_date": N_(
        "The check digit of the date of expiry does not match. Scan the passport again."
    ),
    "optional_data": N_(
        "The check digit of the personal number does not match. Scan the passport again."
    ),
}
_DATE_MESSAGES: Final[Mapping[str, str]] = {
    "birth_date": N_(
        "The date of birth in the machine-readable zone is not a valid date. "
        "Scan the passport again."
    ),
    "expiry_date": N_(
        "The date of expiry in the machine-readable zone is not a valid date. "
        "Scan the passport again."
    ),
}
_COUNTRY_MESSAGES: Final[Mapping[str, str]] = {
    "issuing_state": N_(
        "The issuing state “{code}” in the machine-readable zone is not a known country "
        "or authority code."
    ),
    "nationality": N_(
        "The nationality “{code}” in the machine-readable zone is not a known country "
        "or authority code."
    ),
}


@dataclass(frozen=True, repr=False)
class PassportMrz:
    document_type: str  # "P" and the state's subtype letter, if any: "P", "PD", "PO"...
    issuing_state: str  # ICAO code without fillers: "UTO", "D", "GBR"
    surname: str  # the primary identifier, fillers read as spaces
    given_names: str  # the secondary identifier, fillers read as spaces; may be empty
    document_number: str  # without trailing fillers
    nationality: str
    birth_date: date
    sex: Sex  # "X" for unspecified ("<" or "X" in the zone)
    expiry_date: date
    optional_data: str  # without trailing fillers; often a personal number, may be empty
    line1: str
    line2: str

    def __repr__(self) -> str:
        # Passport data is personal: never whole in a log line or a traceback.
        number = masked_document_number(self.document_number)
        return f"PassportMrz(issuing_state={self.issuing_state!r}, document_number={number!r})"


def check_digit(field: str) -> str:
    """The 9303 check digit of ``field``: weights 7, 3, 1, ``<`` = 0, ``A`` = 10 ... ``Z`` = 35.

    ``field`` must hold only zone characters (:func:`parse_td3` checks that first).
    """
    total = 0
    for position, character in enumerate(field):
        if character in _DIGITS:
            value = ord(character) - ord("0")
        elif character in _LETTERS:
            value = ord(character) - ord("A") + 10
        elif character == FILLER:
            value = 0
        else:
            raise ValueError(f"not a machine-readable zone character: {character!r}")
        total += value * _WEIGHTS[position % 3]
    return str(total % 10)


def correct_numeric(field: str) -> str:
    """``field`` with the letters OCR confuses with digits turned into those digits.

    For fields that may hold only digits; anything else (a digit, a filler) is kept.
    """
    return field.translate(_CONFUSABLE_TABLE)


def masked_document_number(number: str) -> str:
    """``******2C3``: enough for the holder to recognise the passport, no more.

    At most the last three characters are shown, and never more than half of them.
    """
    visible = min(3, len(number) // 2)
    return "*" * (len(number) - visible) + number[len(number) - visible :]


@cache
def iso_alpha3_codes() -> frozenset[str]:
    return frozenset(country.alpha_3 for country in pycountry.countries)


def is_icao_code(code: str, extra_codes: Collection[str] = frozenset()) -> bool:
    """Whether ``code`` (without fillers) is a state or authority code of Doc 9303."""
    return code in ICAO_NON_ISO_CODES or code in iso_alpha3_codes() or code in extra_codes


def parse_td3(
    line1: str,
    line2: str,
    *,
    today: date,
    minimum_age: int = 18,
    minimum_validity_days: int = 0,
    extra_codes: Collection[str] = frozenset(),
) -> PassportMrz:
    """Read and check the two lines of a passport's zone, exactly as given.

    Refused unless the passport is valid until at least ``today`` plus
    ``minimum_validity_days`` and its holder is ``minimum_age`` or older on ``today``
    (a person born on 29 February comes of age on 1 March in common years).
    ``extra_codes`` adds state codes to Doc 9303's (the specimen state ``UTO`` in tests).
    """
    for number, line in ((1, line1), (2, line2)):
        if len(line) != TD3_LENGTH:
            raise InvalidInput(
                "mrz.length",
                N_(
                    "Each line of a passport's machine-readable zone has 44 characters; "
                    "line {line} has {length}. Scan the passport again."
                ),
                {"line": number, "length": len(line)},
                details={"line": number, "length": len(line)},
            )
    for number, line in ((1, line1), (2, line2)):
        for position, character in enumerate(line, start=1):
            if character not in ALLOWED_CHARACTERS:
                raise _characters_error(number, position)

    if line1[0] != "P" or line1[1] not in _LETTERS | {FILLER}:
        raise InvalidInput(
            "mrz.document_type",
            N_(
                "This is not a passport's machine-readable zone: it must start with “P”. "
                "Use the zone on the photo page of your passport."
            ),
        )
    # The primary identifier starts at position 6, and names hold letters only.
    if line1[5] not in _LETTERS:
        raise _characters_error(1, 6)
    for position in range(6, TD3_LENGTH):
        if line1[position] not in _LETTERS | {FILLER}:
            raise _characters_error(1, position + 1)
    if line2[20] not in {"M", "F", "X", FILLER}:
        raise _characters_error(2, 21)

    document_number, birth, expiry, optional = line2[0:9], line2[13:19], line2[21:27], line2[28:42]
    _check("document_number", document_number, line2[9])
    _check("birth_date", birth, line2[19])
    _check("expiry_date", expiry, line2[27])
    # 9303: an empty optional data field may have a filler as its check digit.
    if not (line2[42] == FILLER and optional == FILLER * len(optional)):
        _check("optional_data", optional, line2[42])
    if check_digit(line2[0:10] + line2[13:20] + line2[21:43]) != line2[43]:
        raise InvalidInput(
            "mrz.composite_check_digit",
            N_(
                "The final check digit of the machine-readable zone does not match. "
                "Scan the passport again."
            ),
        )

    birth_date = _birth_date(birth, today)
    expiry_date = _expiry_date(expiry, today)

    issuing_state = _country("issuing_state", line1[2:5], extra_codes)
    nationality = _country("nationality", line2[10:13], extra_codes)

    required_until = today + timedelta(days=minimum_validity_days)
    if expiry_date < today:
        raise InvalidInput(
            "mrz.expired",
            N_("This passport expired on {expiry_date}. Use a passport that is still valid."),
            {"expiry_date": expiry_date.isoformat()},
        )
    if expiry_date < required_until:
        raise InvalidInput(
            "mrz.expired",
            N_(
                "This passport expires on {expiry_date}; it must be valid until at least "
                "{required_until}. Use a passport that is valid for longer."
            ),
            {"expiry_date": expiry_date.isoformat(), "required_until": required_until.isoformat()},
        )
    if _age(birth_date, today) < minimum_age:
        raise InvalidInput(
            "mrz.underage",
            N_("You must be {minimum_age} or older to verify your identity with a passport."),
            {"minimum_age": minimum_age},
        )

    surname, _, given = line1[5:].partition("<<")
    sex = line2[20]
    return PassportMrz(
        document_type=line1[0:2].rstrip(FILLER),
        issuing_state=issuing_state,
        surname=_words(surname),
        given_names=_words(given),
        document_number=document_number.rstrip(FILLER),
        nationality=nationality,
        birth_date=birth_date,
        sex="M" if sex == "M" else "F" if sex == "F" else "X",
        expiry_date=expiry_date,
        optional_data=optional.rstrip(FILLER),
        line1=line1,
        line2=line2,
    )


def read_td3(
    line1: str,
    line2: str,
    today: date,
    *,
    minimum_age: int = 18,
    minimum_validity_days: int = 0,
    extra_codes: Collection[str] = frozenset(),
) -> PassportMrz:
    """Read lines from OCR: as given first, then with confusable letters made digits.

    The correction touches only the positions that may hold nothing but digits (dates
    and check digits), so it never changes a name, a document number or the optional
    data, and its read is accepted only if every check digit passes. When neither read
    is good, the error of the read as given is raised, unless the corrected read was
    good and only refused for what it says (expired, under age, unknown country).
    """

    def attempt(line: str) -> PassportMrz:
        return parse_td3(
            line1,
            line,
            today=today,
            minimum_age=minimum_age,
            minimum_validity_days=minimum_validity_days,
            extra_codes=extra_codes,
        )

    try:
        return attempt(line2)
    except InvalidInput as error:
        first_error = error
    if len(line1) != TD3_LENGTH or len(line2) != TD3_LENGTH:
        raise first_error
    corrected = "".join(
        correct_numeric(character) if position in _NUMERIC_POSITIONS else character
        for position, character in enumerate(line2)
    )
    if corrected == line2:
        raise first_error
    try:
        return attempt(corrected)
    except InvalidInput as error:
        if error.code in _READ_ERRORS:
            raise first_error from None
        raise


# Errors that say the read itself is wrong, as opposed to a good read of a passport
# that is refused for what it says.
_READ_ERRORS: Final = frozenset(
    {
        "mrz.length",
        "mrz.characters",
        "mrz.document_type",
        "mrz.check_digit",
        "mrz.composite_check_digit",
        "mrz.date",
    }
)


def _characters_error(line: int, position: int) -> InvalidInput:
    return InvalidInput(
        "mrz.characters",
        N_(
            "Line {line} of the machine-readable zone has a character that cannot be at "
            "position {position}. Scan the passport again."
        ),
        {"line": line, "position": position},
        details={"line": line, "position": position},
    )


def _check(field: str, value: str, digit: str) -> None:
    if check_digit(value) != digit:
        raise InvalidInput(
            "mrz.check_digit", _CHECK_DIGIT_MESSAGES[field], details={"field": field}
        )


def _date_error(field: str) -> InvalidInput:
    return InvalidInput("mrz.date", _DATE_MESSAGES[field], details={"field": field})


def _digits(field: str, value: str) -> tuple[int, int, int]:
    if not all(character in _DIGITS for character in value):
        raise _date_error(field)
    return int(value[0:2]), int(value[2:4]), int(value[4:6])


def _birth_date(value: str, today: date) -> date:
    """The latest date with these YYMMDD that is not after ``today``."""
    year, month, day = _digits("birth_date", value)
    century = today.year // 100 * 100
    for candidate in (century + year, century - 100 + year):
        try:
            born = date(candidate, month, day)
        except ValueError:
            continue
        if born <= today:
            return born
    raise _date_error("birth_date")


def _expiry_date(value: str, today: date) -> date:
    """The date with these YYMMDD from 50 years before ``today``'s year to 49 after."""
    year, month, day = _digits("expiry_date", value)
    first_year = today.year - 50
    try:
        return date(first_year + (year - first_year) % 100, month, day)
    except ValueError:
        raise _date_error("expiry_date") from None


def _country(field: str, value: str, extra_codes: Collection[str]) -> str:
    code = value.rstrip(FILLER)
    if not code or FILLER in code or not is_icao_code(code, extra_codes):
        raise InvalidInput(
            "mrz.country",
            _COUNTRY_MESSAGES[field],
            {"code": value},
            details={"field": field},
        )
    return code


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _words(identifier: str) -> str:
    return " ".join(word for word in identifier.split(FILLER) if word)
