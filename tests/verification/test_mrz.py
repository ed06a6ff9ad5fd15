"""Reading the machine-readable zone of a passport (ICAO Doc 9303 Part 4, TD3)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qianbao.errors import InvalidInput
from qianbao.i18n import language_scope
from qianbao.verification.mrz import (
    ICAO_NON_ISO_CODES,
    PassportMrz,
    check_digit,
    correct_numeric,
    iso_alpha3_codes,
    masked_document_number,
    parse_td3,
    read_td3,
)

# The specimen of Doc 9303 Part 4 (Appendix A): Anna Maria Eriksson of Utopia.
SPECIMEN_1 = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<"
SPECIMEN_2 = "L898902C36UTO7408122F1204159ZE184226B<<<<<10"
SPECIMEN_DAY = date(2010, 6, 1)  # the specimen expires on 2012-04-15
# Utopia is the specimen state: it exists only in tests.
UTOPIA = frozenset({"UTO"})

# The German specimen (Erika Mustermann): Germany writes "D<<", not DEU.
GERMAN_1 = "P<D<<MUSTERMANN<<ERIKA<<<<<<<<<<<<<<<<<<<<<<"
GERMAN_2 = "C01X00T478D<<6408125F2702283<<<<<<<<<<<<<<<4"

TODAY = date(2026, 3, 15)
DIGITS = "0123456789"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ALL_CODES = sorted(iso_alpha3_codes() | ICAO_NON_ISO_CODES.keys())


def build(
    *,
    document_type: str = "P<",
    issuing_state: str = "GBR",
    name: str = "SMITH<<JANE<ANN",
    number: str = "123456789",
    nationality: str = "GBR",
    birth: str = "900115",
    sex: str = "F",
    expiry: str = "300101",
    optional: str = "",
    optional_check: str | None = None,
) -> tuple[str, str]:
    """Two lines whose check digits are all right, computed with our own check_digit."""
    line1 = (document_type + issuing_state.ljust(3, "<") + name).ljust(44, "<")
    number = number.ljust(9, "<")
    optional = optional.ljust(14, "<")
    head = number + check_digit(number)
    middle = birth + check_digit(birth)
    tail = expiry + check_digit(expiry) + optional
    tail += check_digit(optional) if optional_check is None else optional_check
    line2 = head + nationality.ljust(3, "<") + middle + sex + tail
    line2 += check_digit(head + middle + tail)
    assert len(line1) == 44, line1
    assert len(line2) == 44, line2
    return line1, line2


def refused(line1: str, line2: str, today: date = TODAY, **options: object) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse_td3(line1, line2, today=today, **options)  # type: ignore[arg-type]
    # Every refusal reads as a sentence, its placeholders filled.
    with language_scope("en"):
        assert "{" not in caught.value.localized_message()
    return caught.value


def replace(line: str, position: int, character: str) -> str:
    """``line`` with the character at 0-based ``position`` replaced."""
    return line[:position] + character + line[position + 1 :]


# -- the check digit ---------------------------------------------------------------


def test_check_digits_of_the_specimen() -> None:
    assert check_digit("L898902C3") == "6"
    assert check_digit("740812") == "2"
    assert check_digit("120415") == "9"
    assert check_digit("ZE184226B<<<<<") == "1"
    assert check_digit("L898902C36" + "7408122" + "1204159ZE184226B<<<<<1") == "0"


def test_check_digit_counts_a_filler_as_zero_and_letters_from_ten() -> None:
    assert check_digit("<<<<<<") == "0"
    assert check_digit("A") == check_digit("0") == "0"  # A = 10, weight 7
    assert check_digit("Z") == "5"  # 35 * 7 = 245


def test_check_digit_refuses_what_no_zone_holds() -> None:
    with pytest.raises(ValueError, match="not a machine-readable zone character"):
        check_digit("l898902c3")


# -- good passports -----------------------------------------------------------------


def test_the_icao_specimen() -> None:
    mrz = parse_td3(SPECIMEN_1, SPECIMEN_2, today=SPECIMEN_DAY, extra_codes=UTOPIA)
    assert mrz == PassportMrz(
        document_type="P",
        issuing_state="UTO",
        surname="ERIKSSON",
        given_names="ANNA MARIA",
        document_number="L898902C3",
        nationality="UTO",
        birth_date=date(1974, 8, 12),
        sex="F",
        expiry_date=date(2012, 4, 15),
        optional_data="ZE184226B",
        line1=SPECIMEN_1,
        line2=SPECIMEN_2,
    )
    assert read_td3(SPECIMEN_1, SPECIMEN_2, SPECIMEN_DAY, extra_codes=UTOPIA) == mrz


def test_utopia_is_only_a_specimen() -> None:
    error = refused(SPECIMEN_1, SPECIMEN_2, SPECIMEN_DAY)
    assert (error.code, error.details) == ("mrz.country", {"field": "issuing_state"})


def test_a_german_passport_says_d() -> None:
    mrz = parse_td3(GERMAN_1, GERMAN_2, today=TODAY)
    assert (mrz.issuing_state, mrz.nationality) == ("D", "D")
    assert (mrz.surname, mrz.given_names) == ("MUSTERMANN", "ERIKA")
    assert mrz.document_number == "C01X00T47"
    assert (mrz.birth_date, mrz.expiry_date) == (date(1964, 8, 12), date(2027, 2, 28))
    assert mrz.optional_data == ""


@pytest.mark.parametrize("code", sorted(ICAO_NON_ISO_CODES))
def test_every_icao_code_beyond_iso_is_accepted(code: str) -> None:
    mrz = parse_td3(*build(issuing_state=code, nationality=code), today=TODAY)
    assert (mrz.issuing_state, mrz.nationality) == (code, code)


@pytest.mark.parametrize("code", ["CHN", "HKG", "MAC", "TWN", "GBR", "USA", "MYS", "DEU"])
def test_iso_codes_are_accepted(code: str) -> None:
    assert parse_td3(*build(issuing_state=code, nationality=code), today=TODAY).nationality == code


def test_names_read_fillers_as_spaces() -> None:
    line1, line2 = build(name="VAN<DER<BERG<<MARIA<LUISA<<<<")
    mrz = parse_td3(line1, line2, today=TODAY)
    assert (mrz.surname, mrz.given_names) == ("VAN DER BERG", "MARIA LUISA")


def test_a_single_name_is_the_surname() -> None:
    mrz = parse_td3(*build(name="SUKARNO"), today=TODAY)
    assert (mrz.surname, mrz.given_names) == ("SUKARNO", "")


@pytest.mark.parametrize(("sex", "read"), [("M", "M"), ("F", "F"), ("X", "X"), ("<", "X")])
def test_sex(sex: str, read: str) -> None:
    assert parse_td3(*build(sex=sex), today=TODAY).sex == read


def test_document_subtypes_are_passports() -> None:
    assert parse_td3(*build(document_type="PD"), today=TODAY).document_type == "PD"
    assert parse_td3(*build(document_type="P<"), today=TODAY).document_type == "P"


@pytest.mark.parametrize("check", ["<", "0"])
def test_an_empty_optional_field_may_have_a_filler_check_digit(check: str) -> None:
    mrz = parse_td3(*build(optional="", optional_check=check), today=TODAY)
    assert mrz.optional_data == ""


def test_birth_century_puts_the_birth_in_the_past() -> None:
    assert parse_td3(*build(birth="000229"), today=TODAY).birth_date == date(2000, 2, 29)
    assert parse_td3(*build(birth="300101"), today=TODAY).birth_date == date(1930, 1, 1)
    # 2008-03-15 has come; 2026-03-16 would be tomorrow, so it is 1926.
    assert parse_td3(*build(birth="080315"), today=TODAY).birth_date == date(2008, 3, 15)
    assert parse_td3(*build(birth="260316"), today=TODAY).birth_date == date(1926, 3, 16)


def test_expiry_century_is_the_one_near_today() -> None:
    assert parse_td3(*build(expiry="360314"), today=TODAY).expiry_date == date(2036, 3, 14)
    later = date(2095, 1, 1)  # a passport read in 2095 that expires in 2101
    line1, line2 = build(birth="700101", expiry="010101")
    assert parse_td3(line1, line2, today=later).expiry_date == date(2101, 1, 1)


def test_masked_document_number() -> None:
    assert masked_document_number("L898902C3") == "******2C3"
    assert masked_document_number("1234") == "**34"
    assert masked_document_number("1") == "*"
    assert masked_document_number("") == ""


def test_the_representation_hides_the_passport() -> None:
    mrz = parse_td3(SPECIMEN_1, SPECIMEN_2, today=SPECIMEN_DAY, extra_codes=UTOPIA)
    shown = repr(mrz)
    assert "L898902C3" not in shown
    assert "ERIKSSON" not in shown
    assert "1974" not in shown
    assert "******2C3" in shown


# -- refusals -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line1", "line2", "line", "length"),
    [
        (SPECIMEN_1[:-1], SPECIMEN_2, 1, 43),
        (SPECIMEN_1 + "<", SPECIMEN_2, 1, 45),
        (SPECIMEN_1, SPECIMEN_2[:-1], 2, 43),
        (SPECIMEN_1, SPECIMEN_2 + "0", 2, 45),
        ("", "", 1, 0),
        # Machine-readable zones of two lines of 36 (TD2) are not passports.
        (SPECIMEN_1[:36], SPECIMEN_2[:36], 1, 36),
    ],
)
def test_wrong_lengths(line1: str, line2: str, line: int, length: int) -> None:
    error = refused(line1, line2, SPECIMEN_DAY, extra_codes=UTOPIA)
    assert error.code == "mrz.length"
    assert error.details == {"line": line, "length": length}
    with pytest.raises(InvalidInput) as caught:
        read_td3(line1, line2, SPECIMEN_DAY, extra_codes=UTOPIA)
    assert caught.value.code == "mrz.length"


@pytest.mark.parametrize(
    ("line1", "line2", "line", "position"),
    [
        (SPECIMEN_1.lower(), SPECIMEN_2, 1, 1),
        (SPECIMEN_1, SPECIMEN_2.lower(), 2, 1),
        (replace(SPECIMEN_1, 10, "s"), SPECIMEN_2, 1, 11),
        (replace(SPECIMEN_1, 43, " "), SPECIMEN_2, 1, 44),
        (SPECIMEN_1, replace(SPECIMEN_2, 20, "é"), 2, 21),
    ],
)
def test_lowercase_and_other_characters(line1: str, line2: str, line: int, position: int) -> None:
    error = refused(line1, line2, SPECIMEN_DAY, extra_codes=UTOPIA)
    assert error.code == "mrz.characters"
    assert error.details == {"line": line, "position": position}
    with pytest.raises(InvalidInput) as caught:
        read_td3(line1, line2, SPECIMEN_DAY, extra_codes=UTOPIA)
    assert caught.value.code == "mrz.characters"


@pytest.mark.parametrize("name", ["ERIKSS0N<<ANNA", "ERIKSSON<<ANNA<MAR1A", "<<ANNA"])
def test_names_hold_letters_and_begin_with_one(name: str) -> None:
    line1, line2 = build(name=name)
    assert refused(line1, line2).code == "mrz.characters"
    # A digit in a name is never "corrected" into a letter.
    with pytest.raises(InvalidInput) as caught:
        read_td3(line1, line2, TODAY)
    assert caught.value.code == "mrz.characters"


@pytest.mark.parametrize("sex", ["A", "0", "W"])
def test_sex_is_m_f_x_or_unspecified(sex: str) -> None:
    error = refused(*build(sex=sex))
    assert (error.code, error.details) == ("mrz.characters", {"line": 2, "position": 21})


@pytest.mark.parametrize("document_type", ["V<", "I<", "AC", "ID", "P1", "<P"])
def test_only_passports(document_type: str) -> None:
    assert refused(*build(document_type=document_type)).code == "mrz.document_type"


@pytest.mark.parametrize(
    ("position", "field"),
    [(9, "document_number"), (19, "birth_date"), (27, "expiry_date"), (42, "optional_data")],
)
def test_each_check_digit(position: int, field: str) -> None:
    line1, line2 = build(optional="AB1234567")
    wrong = str((int(line2[position]) + 1) % 10)
    error = refused(line1, replace(line2, position, wrong))
    assert (error.code, error.details) == ("mrz.check_digit", {"field": field})


def test_a_field_that_was_misread_fails_its_check_digit() -> None:
    line1, line2 = build()
    error = refused(line1, replace(line2, 0, "7"))  # 123456789 read as 723456789
    assert (error.code, error.details) == ("mrz.check_digit", {"field": "document_number"})


def test_a_filled_optional_field_needs_its_check_digit() -> None:
    error = refused(*build(optional="AB1234567", optional_check="<"))
    assert (error.code, error.details) == ("mrz.check_digit", {"field": "optional_data"})


def test_composite_check_digit() -> None:
    line1, line2 = build()
    wrong = str((int(line2[43]) + 1) % 10)
    assert refused(line1, replace(line2, 43, wrong)).code == "mrz.composite_check_digit"
    assert refused(line1, replace(line2, 43, "<")).code == "mrz.composite_check_digit"


def test_specimen_composite_check_digit() -> None:
    line2 = replace(SPECIMEN_2, 43, "1")
    error = refused(SPECIMEN_1, line2, SPECIMEN_DAY, extra_codes=UTOPIA)
    assert error.code == "mrz.composite_check_digit"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"birth": "900230"}, "birth_date"),  # 30 February
        ({"birth": "010229"}, "birth_date"),  # 29 February in a common year
        ({"birth": "901301"}, "birth_date"),
        ({"birth": "900100"}, "birth_date"),
        ({"birth": "9001<<"}, "birth_date"),  # 9303 lets an unknown day be filled; we cannot
        ({"birth": "9OO115"}, "birth_date"),  # letters in a date, with a matching check digit
        ({"expiry": "300230"}, "expiry_date"),
        ({"expiry": "301301"}, "expiry_date"),
        ({"expiry": "<<<<<<"}, "expiry_date"),
    ],
)
def test_bad_dates(fields: dict[str, str], field: str) -> None:
    error = refused(*build(**fields))
    assert (error.code, error.details) == ("mrz.date", {"field": field})


def test_unknown_nationality() -> None:
    error = refused(*build(nationality="ZZZ"))
    assert (error.code, error.details) == ("mrz.country", {"field": "nationality"})
    error = refused(*build(nationality="<<<"))
    assert (error.code, error.details) == ("mrz.country", {"field": "nationality"})
    error = refused(*build(issuing_state="<D<"))
    assert (error.code, error.details) == ("mrz.country", {"field": "issuing_state"})


def test_expired() -> None:
    line1, line2 = build(expiry="260315")
    assert parse_td3(line1, line2, today=TODAY).expiry_date == TODAY  # valid on its last day
    error = refused(line1, line2, TODAY + timedelta(days=1))
    assert error.code == "mrz.expired"
    assert error.params == {"expiry_date": "2026-03-15"}
    assert refused(SPECIMEN_1, SPECIMEN_2, date(2012, 4, 16), extra_codes=UTOPIA).code == (
        "mrz.expired"
    )


def test_a_minimum_validity_can_be_asked_for() -> None:
    line1, line2 = build(expiry="260414")
    parse_td3(line1, line2, today=TODAY, minimum_validity_days=30)
    error = refused(line1, line2, TODAY, minimum_validity_days=31)
    assert error.code == "mrz.expired"
    assert error.params == {"expiry_date": "2026-04-14", "required_until": "2026-04-15"}


def test_under_18_until_the_18th_birthday() -> None:
    line1, line2 = build(birth="080315")
    error = refused(line1, line2, date(2026, 3, 14))
    assert (error.code, error.params) == ("mrz.underage", {"minimum_age": 18})
    assert parse_td3(line1, line2, today=date(2026, 3, 15)).birth_date == date(2008, 3, 15)


def test_the_minimum_age_can_be_changed() -> None:
    line1, line2 = build(birth="080315")
    assert refused(line1, line2, TODAY, minimum_age=21).code == "mrz.underage"
    assert parse_td3(line1, line2, today=date(2026, 3, 14), minimum_age=16)


def test_born_on_29_february_comes_of_age_on_1_march() -> None:
    line1, line2 = build(birth="080229")
    assert refused(line1, line2, date(2026, 2, 28)).code == "mrz.underage"
    assert parse_td3(line1, line2, today=date(2026, 3, 1)).birth_date == date(2008, 2, 29)


# -- OCR confusables ----------------------------------------------------------------


def test_correct_numeric() -> None:
    assert correct_numeric("OILZSBG") == "0112586"
    assert correct_numeric("74O8I2") == "740812"
    assert correct_numeric("<<12AX") == "<<12AX"


def test_an_o_in_a_date_is_read_as_zero() -> None:
    misread = replace(SPECIMEN_2, 15, "O")  # 740812 -> 74O812
    assert refused(SPECIMEN_1, misread, SPECIMEN_DAY, extra_codes=UTOPIA).code == (
        "mrz.check_digit"
    )
    mrz = read_td3(SPECIMEN_1, misread, SPECIMEN_DAY, extra_codes=UTOPIA)
    assert mrz.birth_date == date(1974, 8, 12)
    assert mrz.line2 == SPECIMEN_2


def test_every_confusable_in_the_numeric_fields_at_once() -> None:
    # Dates 680515 / 291108, check digits as printed; OCR reads them as letters.
    line1, line2 = build(birth="680515", expiry="291108")
    misread = "".join(
        {"0": "O", "1": "I", "2": "Z", "5": "S", "8": "B", "6": "G"}.get(character, character)
        if position in (*range(13, 20), *range(21, 28), 43)
        else character
        for position, character in enumerate(line2)
    )
    assert misread != line2
    assert read_td3(line1, misread, TODAY) == parse_td3(line1, line2, today=TODAY)


def test_correction_never_alters_names_or_the_document_number() -> None:
    # A holder whose name and number are full of letters that look like digits.
    line1, line2 = build(
        name="BOGLIZS<<OLGA<ISOBEL", number="SO1IB2GZL", optional="OSLO", birth="800101"
    )
    misread = replace(line2, 13, "B")  # 800101 -> B00101
    mrz = read_td3(line1, misread, TODAY)
    assert (mrz.surname, mrz.given_names) == ("BOGLIZS", "OLGA ISOBEL")
    assert mrz.document_number == "SO1IB2GZL"
    assert mrz.optional_data == "OSLO"
    assert mrz.line1 == line1
    assert mrz.birth_date == date(1980, 1, 1)


def test_correction_is_accepted_only_when_every_check_digit_passes() -> None:
    line1, line2 = build(birth="750101")
    # "7" misread as "Z" would be corrected to "2": a different date, whose check fails.
    misread = replace(line2, 13, "Z")
    with pytest.raises(InvalidInput) as caught:
        read_td3(line1, misread, TODAY)
    assert (caught.value.code, caught.value.details) == (
        "mrz.check_digit",
        {"field": "birth_date"},
    )


def test_when_neither_read_is_good_the_error_is_about_the_lines_as_given() -> None:
    line1, line2 = build(number="12345672", birth="750101")  # check digit 0
    assert line2[9] == "0"
    misread = replace(replace(line2, 9, "O"), 13, "Z")
    with pytest.raises(InvalidInput) as caught:
        read_td3(line1, misread, TODAY)
    assert (caught.value.code, caught.value.details) == (
        "mrz.check_digit",
        {"field": "document_number"},
    )


def test_a_corrected_read_of_an_expired_passport_says_expired() -> None:
    misread = replace(SPECIMEN_2, 15, "O")
    with pytest.raises(InvalidInput) as caught:
        read_td3(SPECIMEN_1, misread, date(2020, 1, 1), extra_codes=UTOPIA)
    assert caught.value.code == "mrz.expired"


# -- properties ---------------------------------------------------------------------


def shift_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


words = st.lists(st.text(LETTERS, min_size=1, max_size=10), min_size=1, max_size=3)


@st.composite
def passports(draw: st.DrawFn) -> tuple[str, str, date, dict[str, object]]:
    """A valid passport zone, the day it is read, and what it must read as."""
    today = draw(st.dates(date(2001, 1, 1), date(2089, 12, 31)))
    surname = draw(words)
    given_names = draw(st.lists(st.text(LETTERS, min_size=1, max_size=10), max_size=3))
    name = "<".join(surname) + ("<<" + "<".join(given_names) if given_names else "")
    if len(name) > 39:
        given_names = []
        name = "<".join(surname)
    number = draw(st.text(LETTERS + DIGITS, min_size=1, max_size=9))
    optional = draw(st.text(LETTERS + DIGITS + "<", max_size=14))
    optional_check = "<" if not optional.strip("<") and draw(st.booleans()) else None
    birth = draw(st.dates(shift_years(today, -99) + timedelta(days=1), shift_years(today, -18)))
    expiry = draw(st.dates(today, shift_years(today, 10)))
    sex = draw(st.sampled_from("MF<X"))
    issuing_state = draw(st.sampled_from(ALL_CODES))
    nationality = draw(st.sampled_from(ALL_CODES))
    subtype = draw(st.sampled_from("<" + LETTERS))
    line1, line2 = build(
        document_type="P" + subtype,
        issuing_state=issuing_state,
        name=name,
        number=number,
        nationality=nationality,
        birth=birth.strftime("%y%m%d"),
        sex=sex,
        expiry=expiry.strftime("%y%m%d"),
        optional=optional,
        optional_check=optional_check,
    )
    expected: dict[str, object] = {
        "document_type": ("P" + subtype).rstrip("<"),
        "issuing_state": issuing_state,
        "surname": " ".join(surname),
        "given_names": " ".join(given_names),
        "document_number": number,
        "nationality": nationality,
        "birth_date": birth,
        "sex": "X" if sex == "<" else sex,
        "expiry_date": expiry,
        "optional_data": optional.rstrip("<"),
        "line1": line1,
        "line2": line2,
    }
    return line1, line2, today, expected


@given(passports())
def test_every_valid_zone_reads(passport: tuple[str, str, date, dict[str, object]]) -> None:
    line1, line2, today, expected = passport
    assert parse_td3(line1, line2, today=today) == PassportMrz(**expected)  # type: ignore[arg-type]
    assert read_td3(line1, line2, today) == PassportMrz(**expected)  # type: ignore[arg-type]


@given(passports(), st.data())
def test_changing_any_digit_is_refused(
    passport: tuple[str, str, date, dict[str, object]], data: st.DataObject
) -> None:
    line1, line2, today, _ = passport
    positions = [position for position, character in enumerate(line2) if character in DIGITS]
    position = data.draw(st.sampled_from(positions))
    digit = data.draw(st.sampled_from(DIGITS.replace(line2[position], "")))
    changed = replace(line2, position, digit)
    with pytest.raises(InvalidInput):
        parse_td3(line1, changed, today=today)
    with pytest.raises(InvalidInput):
        read_td3(line1, changed, today)


NUMERIC_ONLY = (9, *range(13, 20), *range(21, 28), 43)


@given(passports(), st.sampled_from(NUMERIC_ONLY), st.sampled_from(LETTERS + DIGITS + "<"))
def test_a_misread_digit_is_read_back_or_refused_never_read_as_something_else(
    passport: tuple[str, str, date, dict[str, object]], position: int, character: str
) -> None:
    line1, line2, today, expected = passport
    changed = replace(line2, position, character)
    try:
        mrz = read_td3(line1, changed, today)
    except InvalidInput:
        return
    assert mrz == PassportMrz(**expected)  # type: ignore[arg-type]
