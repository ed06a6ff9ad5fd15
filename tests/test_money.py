"""The one parser of typed amounts (``Money.parse``): what a person types is read
exactly, anything else is 422 ``amount.format``, never another exception."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qianbao.errors import InvalidInput
from qianbao.money import AmountRefused, Money
from qianbao.wallet.transfers import service as transfers


@pytest.mark.parametrize(
    ("typed", "fen"),
    [
        ("288", 28800),
        ("288.5", 28850),
        (" 1,288.00 ", 128800),
        ("¥288", 28800),
        ("￥ 1 000", 100000),
        ("２８８．５０", 28850),  # a Chinese keyboard's full-width digits
        ("١٢٣", 12300),  # Arabic-Indic digits
        ("0", 0),
        (".5", 50),
        ("1.500", 150),  # exact, however written
        ("+5", 500),
        ("999999999999.99", 99999999999999),
    ],
)
def test_what_people_type_is_read_exactly(typed: str, fen: int) -> None:
    assert Money.parse(typed) == Money("CNY", fen)


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("1e30", "format"),
        ("1E2", "format"),
        ("1_000", "format"),
        ("NaN", "format"),
        ("Infinity", "format"),
        ("0x10", "format"),
        ("1000000000000", "format"),
        ("1²", "format"),
        ("12\u202e3", "format"),
        (".", "format"),
        ("", "missing"),
        ("  ", "missing"),
        ("-5", "negative"),
        ("-0.001", "negative"),
        ("1.001", "precision"),
        ("0.005", "precision"),
    ],
)
def test_anything_else_is_amount_format_with_its_reason(typed: str, reason: str) -> None:
    with pytest.raises(AmountRefused) as refused:
        Money.parse(typed)
    assert (refused.value.code, refused.value.status) == ("amount.format", 422)
    assert refused.value.reason == reason == refused.value.details["reason"]


@pytest.mark.parametrize(
    ("typed", "fen"),
    [("288.50", 28850), (" 1.00\n", 100), ("+5", 500), ("２８８", 28800), ("1.500", 150)],
)
def test_a_plain_amount_is_read_as_a_typed_one(typed: str, fen: int) -> None:
    assert Money.parse(typed, plain=True) == Money.parse(typed) == Money("CNY", fen)


@pytest.mark.parametrize("typed", ["1,5", "1,000.00", "¥5", "￥5", "1 000", "２８８．５０"])
def test_a_plain_amount_has_nothing_cleaned_away(typed: str) -> None:
    """A protocol's amount is refused where a person's would be read: a program's "1,5"
    may be a decimal comma, not 15."""
    Money.parse(typed)
    with pytest.raises(AmountRefused) as refused:
        Money.parse(typed, plain=True)
    assert refused.value.reason == "format"


@given(st.integers(min_value=0, max_value=10**14 - 1))
def test_every_amount_written_out_reads_back(fen: int) -> None:
    assert Money.parse(f"{fen // 100}.{fen % 100:02d}") == Money("CNY", fen)


@given(st.text(max_size=24))
def test_no_text_raises_anything_but_amount_format(typed: str) -> None:
    try:
        parsed = Money.parse(typed)
    except AmountRefused as refused:
        assert refused.code == "amount.format"
    else:
        assert 0 <= parsed.minor < 10**14


@given(st.text(max_size=16) | st.from_regex(r"[+-]?[0-9,]{0,14}(\.[0-9]{0,4})?", fullmatch=True))
def test_a_transfer_reads_amounts_as_the_one_parser_does(typed: str) -> None:
    """Transfers still have their own parser, with their own codes (the lead folds it
    into ``Money.parse``): both read the same amounts, and refuse the rest for the
    same reason."""
    try:
        expected: Money | str = Money.parse(typed)
    except AmountRefused as refused:
        expected = f"transfer.amount_{refused.reason}"
    try:
        got: Money | str = transfers.parse_amount(typed)
    except InvalidInput as refused:
        got = refused.code
    if expected == Money("CNY", 0):
        expected = "transfer.amount_zero"
    assert got == expected
