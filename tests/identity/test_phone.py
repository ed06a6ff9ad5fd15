"""Parsing what people type into E.164, for many countries, and refusing the rest."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qianbao.errors import InvalidInput
from qianbao.i18n import language_scope
from qianbao.identity.phone import calling_code, calling_codes, parse_mobile

# (country picked, what the person typed, E.164 expected)
VALID = [
    ("GB", "07911 123456", "+447911123456"),  # UK with its trunk 0
    ("GB", "7911123456", "+447911123456"),
    ("GB", "+44 (0)7911 123456", "+447911123456"),
    ("MY", "012-345 6789", "+60123456789"),  # Malaysia with its trunk 0
    ("MY", "12 345 6789", "+60123456789"),
    ("US", "(201) 555-0234", "+12015550234"),
    ("CA", "416-555-0299", "+14165550299"),
    ("SG", "8123 4567", "+6581234567"),
    ("ID", "0812-3456-789", "+628123456789"),
    ("VN", "0912 345 678", "+84912345678"),
    ("MO", "6612 3456", "+85366123456"),
    ("HK", "9123 4567", "+85291234567"),
    ("CN", "138 1234 5678", "+8613812345678"),
    ("TW", "0912 345 678", "+886912345678"),
    ("JP", "090-1234-5678", "+819012345678"),
    ("KR", "010-1234-5678", "+821012345678"),
    ("TH", "081 234 5678", "+66812345678"),
    ("PH", "0917 123 4567", "+639171234567"),
    ("IN", "098765 43210", "+919876543210"),
    ("AU", "0412 345 678", "+61412345678"),
    ("DE", "0151 23456789", "+4915123456789"),
    ("FR", "06 12 34 56 78", "+33612345678"),
    ("RU", "8 912 345-67-89", "+79123456789"),
    ("BR", "(11) 91234-5678", "+5511912345678"),
    ("NG", "0803 123 4567", "+2348031234567"),
    ("AE", "050 123 4567", "+971501234567"),
    ("GB", "00 44 7911 123456", "+447911123456"),  # international prefix typed
    ("CN", "+44 7911 123456", "+447911123456"),  # a + number wins over the picker
]


@pytest.mark.parametrize(("country", "typed", "e164"), VALID)
def test_valid_mobile_numbers_become_e164(country: str, typed: str, e164: str) -> None:
    assert parse_mobile(typed, country).e164 == e164


@pytest.mark.parametrize(
    ("country", "typed", "code"),
    [
        ("GB", "", "phone.empty"),
        ("GB", "   ", "phone.empty"),
        ("GB", "07911", "phone.too_short"),
        ("GB", "07911 123456 789", "phone.too_long"),
        ("GB", "1" * 40, "phone.too_long"),
        ("GB", "9" * 41, "phone.too_long"),
        ("GB", "020 7946 0000", "phone.not_mobile"),  # a London landline
        ("CN", "010 6552 9988", "phone.not_mobile"),  # a Beijing landline
        ("GB", "hello", "phone.not_a_number"),
        ("GB", "📱📱📱", "phone.not_a_number"),
        ("GB", "+999 123456789", "phone.unknown_country"),
        ("XX", "07911 123456", "phone.unknown_country"),
        ("MO", "2821 2345", "phone.not_mobile"),
        ("MY", "03-2385 6789", "phone.not_mobile"),
        ("HK", "2123 4567", "phone.not_mobile"),
        ("SG", "1234 5678", "phone.invalid"),
        ("US", "(201) 555-0123", "phone.fictional"),  # NANPA's numbers for fiction
        ("CA", "+1 416 555 0199", "phone.fictional"),
        ("GB", "07911 123456 ext. 12", "phone.extension"),  # it was dropped silently
        ("US", "201-555-0234 x7", "phone.extension"),
    ],
)
def test_impossible_numbers_say_why(country: str, typed: str, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_mobile(typed, country)
    assert caught.value.code == code
    assert caught.value.localized_message()


def test_error_names_the_country_in_the_persons_language() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_mobile("07911", "GB", "zh_Hans")
    with language_scope("zh_Hans"):
        message = caught.value.localized_message()
    assert "英国" in message
    assert "+44" in message


def test_every_itu_calling_code_is_offered() -> None:
    offered = {row.code for row in calling_codes()}
    assert offered == set(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    # Shared codes list each of their countries (+1: the US, Canada, Jamaica, ...).
    assert {row.region for row in calling_codes() if row.code == 1} >= {"US", "CA", "JM"}
    assert calling_code("CN").name_zh == "中国"
    assert calling_code("gb").name_en == "United Kingdom"


def test_display_and_masking() -> None:
    phone = parse_mobile("07911 123456", "GB")
    assert phone.international() == "+44 7911 123456"
    assert phone.masked() == "+44 ******3456"


@given(st.text(max_size=60), st.sampled_from(["GB", "CN", "US", "MY", "001-882"]))
def test_anything_typed_either_parses_or_is_refused_clearly(typed: str, country: str) -> None:
    try:
        phone = parse_mobile(typed, country)
    except InvalidInput as error:
        assert error.code.startswith("phone.")
        return
    reparsed = phonenumbers.parse(phone.e164)
    assert phonenumbers.is_valid_number(reparsed)
    assert phone.e164 == phonenumbers.format_number(reparsed, phonenumbers.PhoneNumberFormat.E164)


@given(st.integers(min_value=7_000_000_000, max_value=7_999_999_999))
def test_uk_mobiles_round_trip_with_and_without_the_trunk_zero(national: int) -> None:
    try:
        without_zero = parse_mobile(str(national), "GB")
    except InvalidInput:
        return
    assert parse_mobile(f"0{national}", "GB") == without_zero
