"""Card numbers: reading, the UnionPay and BIN rules, Luhn, masking and tokens."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qianbao.errors import InvalidInput
from qianbao.funding.cards import (
    BIN_TABLE,
    CardType,
    card_token,
    luhn_check_digit,
    luhn_valid,
    mask,
    normalize_card_number,
    unionpay_card,
)

digit_strings = st.text(alphabet="0123456789", min_size=1, max_size=30)


def with_check_digit(payload: str) -> str:
    return payload + luhn_check_digit(payload)


def card_number(bin_: str, length: int, serial: str = "1") -> str:
    return with_check_digit(bin_ + serial.rjust(length - len(bin_) - 1, "0"))


def refusal_code(number: str) -> str:
    with pytest.raises(InvalidInput) as caught:
        unionpay_card(number)
    return caught.value.code


# --- reading -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "6222020000000000018",
        "6222 0200 0000 0000 018",
        "6222-0200-0000-0000-018",
        "  6222 0200\t0000 0000 018 ",
        "６２２２ ０２００ ００００ ００００ ０１８",  # full-width, as a Chinese IME types
        "6222\u30000200 0000 0000 018",  # ideographic space
    ],
)
def test_typed_forms_read_as_the_same_digits(typed: str) -> None:
    assert normalize_card_number(typed) == "6222020000000000018"


@pytest.mark.parametrize("typed", ["", "   ", "6222 02OO 0000", "6222.0200", "١٢٣٤", "6" * 101])
def test_anything_but_digits_and_separators_is_refused(typed: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_card_number(typed)
    assert caught.value.code == "card.format"


@given(digits=st.text(alphabet="0123456789", min_size=1, max_size=19), data=st.data())
def test_separators_anywhere_do_not_change_the_number(digits: str, data: st.DataObject) -> None:
    pieces = [char + data.draw(st.sampled_from(["", " ", "-", "  ", " - "])) for char in digits]
    assert normalize_card_number("".join(pieces)) == digits


# --- Luhn ----------------------------------------------------------------------------


def test_luhn_matches_the_published_example() -> None:
    # The worked example in ISO/IEC 7812-1 annex B and most descriptions of the algorithm.
    assert luhn_check_digit("7992739871") == "3"
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


@given(payload=digit_strings)
def test_a_number_with_its_check_digit_passes(payload: str) -> None:
    assert luhn_valid(with_check_digit(payload))


@given(payload=digit_strings, data=st.data())
def test_any_single_wrong_digit_fails(payload: str, data: st.DataObject) -> None:
    number = with_check_digit(payload)
    position = data.draw(st.integers(0, len(number) - 1))
    wrong = data.draw(st.sampled_from([d for d in "0123456789" if d != number[position]]))
    assert not luhn_valid(number[:position] + wrong + number[position + 1 :])


@given(payload=st.text(alphabet="0123456789", min_size=2, max_size=30), data=st.data())
def test_swapping_neighbours_fails_except_09(payload: str, data: st.DataObject) -> None:
    number = with_check_digit(payload)
    position = data.draw(st.integers(0, len(number) - 2))
    first, second = number[position], number[position + 1]
    swapped = number[:position] + second + first + number[position + 2 :]
    # Luhn's one known blind spot among adjacent swaps is 09 <-> 90.
    if first != second and {first, second} != {"0", "9"}:
        assert not luhn_valid(swapped)


def test_luhn_valid_refuses_non_digits() -> None:
    assert not luhn_valid("")
    assert not luhn_valid("7")
    assert not luhn_valid("7992739871a")
    assert not luhn_valid("７９９２７３９８７１３")


# --- UnionPay and the BIN table ---------------------------------------------------------


@pytest.mark.parametrize("bin_", sorted(b for b, r in BIN_TABLE.items() if r.card_type == "debit"))
def test_every_debit_bin_is_recognised(bin_: str) -> None:
    known = BIN_TABLE[bin_]
    card = unionpay_card(card_number(bin_, known.length))
    assert card.bank == known.bank
    assert card.card_type is CardType.DEBIT
    assert card.bin == bin_
    assert card.length == known.length


@pytest.mark.parametrize("bin_", sorted(b for b, r in BIN_TABLE.items() if r.card_type == "credit"))
def test_every_credit_bin_is_refused(bin_: str) -> None:
    assert refusal_code(card_number(bin_, BIN_TABLE[bin_].length)) == "card.credit_card"


def test_the_table_covers_the_major_banks() -> None:
    codes = {row.bank.code for row in BIN_TABLE.values()}
    assert codes == {"ICBC", "CCB", "ABC", "BOC", "COMM", "CMB", "PSBC"}
    for code in codes:
        types = {row.card_type for row in BIN_TABLE.values() if row.bank.code == code}
        assert types == {CardType.DEBIT, CardType.CREDIT}, code
    assert all(bin_.startswith("62") and len(bin_) == 6 for bin_ in BIN_TABLE)


def test_a_known_card_reads_its_bank_in_both_languages() -> None:
    card = unionpay_card("6222 0200 0000 0000 018")
    assert card.bank_name_en == "Industrial and Commercial Bank of China"
    assert card.bank_name_zh == "中国工商银行"
    assert card.last4 == "0018"
    assert card.masked == "**** **** **** 0018"
    assert "6222020000000000018" not in repr(card)


def test_an_unknown_62_bin_is_unionpay_bank_unknown() -> None:
    card = unionpay_card(card_number("623456", 19))
    assert card.bank is None
    assert card.card_type is CardType.UNKNOWN
    assert card.bank_name_en == "UnionPay, bank unknown"
    assert card.bank_name_zh == "银联卡，发卡行未知"


@pytest.mark.parametrize("length", [16, 17, 18, 19])
def test_an_unknown_bin_accepts_every_unionpay_length(length: int) -> None:
    assert unionpay_card(card_number("629999", length)).length == length


@pytest.mark.parametrize(
    "number",
    [
        "4111111111111111",  # Visa's test number
        "5555555555554444",  # Mastercard's
        "378282246310005",  # American Express's
        "3530111333300000",  # JCB's
        card_number("601382", 19),  # Bank of China's old 601382 cards: not in the 62 range
        card_number("436742", 19),  # CCB's Visa debit card
    ],
)
def test_other_networks_are_not_unionpay(number: str) -> None:
    assert refusal_code(number) == "card.not_unionpay"


@pytest.mark.parametrize("length", [12, 15, 20, 25])
def test_unionpay_numbers_have_16_to_19_digits(length: int) -> None:
    with pytest.raises(InvalidInput) as caught:
        unionpay_card(card_number("629999", length))
    assert caught.value.code == "card.length"
    assert caught.value.params == {"length": length}


def test_a_known_bin_needs_its_own_length() -> None:
    # ICBC's 622202 cards have 19 digits; a valid-looking 18-digit one lost a digit.
    with pytest.raises(InvalidInput) as caught:
        unionpay_card(card_number("622202", 18))
    assert caught.value.code == "card.length"
    assert caught.value.params == {"bin": "622202", "expected": 19, "length": 18}


@pytest.mark.parametrize("number", ["6222020000000000019", "6222020000000000108"])
def test_a_typo_fails_the_luhn_check(number: str) -> None:
    assert refusal_code(number) == "card.luhn"


def test_a_credit_card_is_named_before_a_typo() -> None:
    typo = card_number("622575", 16)[:-1] + "0"
    assert not luhn_valid(typo)
    assert refusal_code(typo) == "card.credit_card"


def test_refusals_explain_themselves() -> None:
    with pytest.raises(InvalidInput) as caught:
        unionpay_card("4111111111111111")
    assert caught.value.status == 422
    assert "62" in caught.value.localized_message()


# --- masking and tokens -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "masked"),
    [
        ("6222020000000000018", "**** **** **** 0018"),
        ("6225 8800 0000 0027", "**** **** **** 0027"),
        ("6217-0000-0000-0000-038", "**** **** **** 0038"),
    ],
)
def test_mask_shows_only_the_last_four(typed: str, masked: str) -> None:
    assert mask(typed) == masked


def test_a_card_maps_to_one_token_without_showing_its_number() -> None:
    key = b"k" * 32
    token = card_token("6222020000000000018", key)
    assert token == card_token("6222 0200 0000 0000 018", key)
    assert token.startswith("ct_")
    assert len(token) <= 64  # fits the bank_cards.card_hash column
    assert "0018" not in token and "622202" not in token
    assert token != card_token("6225880000000027", key)
    assert token != card_token("6222020000000000018", b"another key")


@given(first=st.text("0123456789", min_size=16, max_size=19), second=st.text("0123456789"))
def test_different_numbers_get_different_tokens(first: str, second: str) -> None:
    if first != second and second:
        assert card_token(first, b"key") != card_token(second, b"key")


def test_a_token_needs_a_key() -> None:
    with pytest.raises(ValueError, match="key"):
        card_token("6222020000000000018", b"")
