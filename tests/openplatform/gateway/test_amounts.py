"""The gateway's amount parameters (``total_amount``, ``refund_amount``): read by the one
parser, ``Money.parse``, as a protocol writes amounts, from 0.01 to 100,000,000 yuan;
anything else is Alipay's ``40004 ACQ.INVALID_PARAMETER`` naming the parameter."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qianbao.money import Money
from qianbao.openplatform.gateway.protocol import GatewayRefusal, parse_yuan


def refusal_of(value: object) -> dict[str, str]:
    with pytest.raises(GatewayRefusal) as refused:
        parse_yuan(value, "total_amount")
    return refused.value.body()


@pytest.mark.parametrize(
    ("value", "fen"),
    [
        ("5.00", 500),
        ("5", 500),
        ("0.01", 1),
        ("100000000", 10_000_000_000),
        ("100000000.00", 10_000_000_000),
        (" 1.00", 100),  # surrounding spaces, as before
        ("1.50\n", 150),
        ("1.500", 150),  # exact, however written
        ("+2", 200),
        (".5", 50),
        (18, 1800),  # a JSON number
        (18.5, 1850),
        (100000000.0, 10_000_000_000),
    ],
)
def test_an_amount_in_range_is_read_exactly(value: object, fen: int) -> None:
    assert parse_yuan(value, "total_amount") == Money("CNY", fen)


@pytest.mark.parametrize(
    "value",
    [
        "0.001",  # finer than a fen
        "5.001",
        "1e3",  # exponents and underscores are no amounts (Decimal read them)
        "1E2",
        "1_000",
        "-1",
        "-0.01",
        "0",  # below the range
        "0.00",
        "100000000.01",  # above it
        "1000000000000",
        "1,000.00",  # a grouping comma: a program's "1,5" might mean 1.5
        "1,5",
        "¥5",
        "5.00 CNY",
        "1 000",
        "",
        " ",
        "NaN",
        "Infinity",
        0.001,
        1e-7,
        1e20,
        float("nan"),
        True,
        None,
        ["5.00"],
        {"value": "5.00"},
    ],
)
def test_anything_else_is_invalid_parameter_naming_it(value: object) -> None:
    assert refusal_of(value) == {
        "code": "40004",
        "msg": "Business Failed",
        "sub_code": "ACQ.INVALID_PARAMETER",
        "sub_msg": "The parameter total_amount is missing or invalid.",
    }


def decimal_rule(text: str) -> Money | None:
    """The gateway's reading before it went through ``Money.parse`` (Decimal, quantized to
    the fen, in range): the reference for plainly written amounts."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite() or value != value.quantize(Decimal("0.01")):
        return None
    if not Decimal("0.01") <= value <= Decimal("100000000"):
        return None
    return Money.of("CNY", value)


@given(st.from_regex(r"[+-]?[0-9]{0,11}(\.[0-9]{0,4})?", fullmatch=True))
def test_a_plainly_written_amount_reads_as_it_did_before(text: str) -> None:
    try:
        got: Money | None = parse_yuan(text, "total_amount")
    except GatewayRefusal as refused:
        assert refused.sub_code == "ACQ.INVALID_PARAMETER"
        got = None
    assert got == decimal_rule(text)


@given(st.text(max_size=24) | st.floats() | st.integers())
def test_no_value_raises_anything_but_invalid_parameter(value: object) -> None:
    try:
        amount = parse_yuan(value, "refund_amount")
    except GatewayRefusal as refused:
        assert (refused.result, refused.sub_code) == (
            ("40004", "Business Failed"),
            "ACQ.INVALID_PARAMETER",
        )
    else:
        assert Money("CNY", 1) <= amount <= Money("CNY", 10_000_000_000)
