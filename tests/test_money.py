"""The one parser of typed amounts (``Money.parse``): what a person types is read
exactly, anything else is 422 ``amount.format``, never another exception."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qianbao.errors import InvalidInput
from qianbao.money import Money


@pytest.mark.parametrize(
    ("typed", "fen"),
    [
        ("288", 28800),
        ("288.5", 28850),
        (" 1,288.00 ", 128800),
        ("¥288", 28800),
        ("￥ 1 000", 100000),
        ("２８８．５０", 28850),  # a Chinese keyboard's full-width digits
        ("0", 0),
        ("999999999999.99", 99999999999999),
    ],
)
def test_what_people_type_is_read_exactly(typed: str, fen: int) -> None:
    assert Money.parse(typed) == Money("CNY", fen)


@pytest.mark.parametrize(
    "typed",
    [
        "1e30",
        "1E2",
        "1_000",
        "NaN",
        "Infinity",
        "-5",
        "",
        "1.001",
        ".5",
        "5.",
        "0x10",
        "1000000000000",
        "١٢٣",
        "12\u202e3",
    ],
)
def test_anything_else_is_amount_format(typed: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        Money.parse(typed)
    assert (refused.value.code, refused.value.status) == ("amount.format", 422)


@given(st.integers(min_value=0, max_value=10**14 - 1))
def test_every_amount_written_out_reads_back(fen: int) -> None:
    assert Money.parse(f"{fen // 100}.{fen % 100:02d}") == Money("CNY", fen)


@given(st.text(max_size=24))
def test_no_text_raises_anything_but_amount_format(typed: str) -> None:
    try:
        parsed = Money.parse(typed)
    except InvalidInput as refused:
        assert refused.code == "amount.format"
    else:
        assert 0 <= parsed.minor < 10**14
