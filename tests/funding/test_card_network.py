"""Foreign cards: brand detection, the card checks, the fee, FX and the sandbox network."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import fields
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qianbao.clock import FrozenClock
from qianbao.errors import Conflict, InvalidInput, NotFound, QianbaoError
from qianbao.funding.card_network import (
    FOREIGN_BRANDS,
    AuthorizationStatus,
    Brand,
    CardNetwork,
    CardToken,
    check_card,
    check_cvv,
    check_expiry,
    detect_brand,
    foreign_card_fee,
    parse_expiry,
    to_card_currency,
)
from qianbao.funding.cards import luhn_check_digit
from qianbao.funding.sandbox.card_network import (
    DEFAULT_SANDBOX_RATES,
    SANDBOX_CARDS,
    SandboxCard,
    SandboxCardNetwork,
    SandboxOutcome,
)
from qianbao.money import Money

DOC = Path(__file__).resolve().parents[2] / "docs" / "sandbox_card_network.md"
TODAY = date(2026, 1, 15)


def numbered(prefix: str, length: int, serial: str = "1") -> str:
    payload = prefix + serial.rjust(length - len(prefix) - 1, "0")
    return payload + luhn_check_digit(payload)


def refusal(action: object, *args: object, **kwargs: object) -> QianbaoError:
    assert callable(action)
    with pytest.raises(QianbaoError) as caught:
        action(*args, **kwargs)
    return caught.value


def cny(major: str) -> Money:
    return Money.of("CNY", major)


def card_of(outcome: SandboxOutcome, brand: Brand | None = None) -> str:
    return next(
        card.number
        for card in SANDBOX_CARDS
        if card.outcome is outcome and (brand is None or card.brand is brand)
    )


# --- brands -------------------------------------------------------------------------


BRAND_TABLE = [
    ("4", Brand.VISA, (13, 16, 19)),
    ("51", Brand.MASTERCARD, (16,)),
    ("55", Brand.MASTERCARD, (16,)),
    ("2221", Brand.MASTERCARD, (16,)),
    ("2720", Brand.MASTERCARD, (16,)),
    ("34", Brand.AMEX, (15,)),
    ("37", Brand.AMEX, (15,)),
    ("3528", Brand.JCB, (16, 17, 18, 19)),
    ("3589", Brand.JCB, (16, 17, 18, 19)),
    ("300", Brand.DINERS, (14, 15, 16, 17, 18, 19)),
    ("305", Brand.DINERS, (14, 19)),
    ("3095", Brand.DINERS, (14, 16)),
    ("36", Brand.DINERS, (14, 16, 19)),
    ("38", Brand.DINERS, (14, 16)),
    ("39", Brand.DINERS, (16,)),
    ("6011", Brand.DISCOVER, (16, 17, 18, 19)),
    ("644", Brand.DISCOVER, (16,)),
    ("649", Brand.DISCOVER, (16, 19)),
    ("65", Brand.DISCOVER, (16, 19)),
]


@pytest.mark.parametrize(
    ("prefix", "brand", "length"),
    [(prefix, brand, length) for prefix, brand, lengths in BRAND_TABLE for length in lengths],
)
def test_each_brand_is_detected_at_each_of_its_lengths(
    prefix: str, brand: Brand, length: int
) -> None:
    assert detect_brand(numbered(prefix, length)) is brand


@pytest.mark.parametrize(
    ("prefix", "length", "brand_name"),
    [
        ("4", 15, "Visa"),
        ("4", 17, "Visa"),
        ("51", 15, "Mastercard"),
        ("2221", 19, "Mastercard"),
        ("37", 16, "American Express"),
        ("3528", 15, "JCB"),
        ("6011", 15, "Discover"),
        ("36", 13, "Diners Club"),
    ],
)
def test_a_length_the_brand_does_not_issue_is_refused(
    prefix: str, length: int, brand_name: str
) -> None:
    error = refusal(detect_brand, numbered(prefix, length))
    assert error.code == "card.length"
    assert error.params["brand"] == brand_name
    assert error.params["length"] == length


@pytest.mark.parametrize("length", [1, 4, 11, 20, 24])
def test_a_number_too_short_or_long_for_any_card_is_refused(length: int) -> None:
    error = refusal(detect_brand, "4" * length)
    assert error.code == "card.length"
    assert error.params == {"length": length}


@pytest.mark.parametrize(
    "prefix",
    ["50", "56", "2220", "2721", "3527", "3590", "306", "3094", "3096", "33", "6010", "643", "1"],
)
def test_numbers_just_outside_every_range_are_not_accepted(prefix: str) -> None:
    assert refusal(detect_brand, numbered(prefix, 16)).code == "card.brand_unknown"


@pytest.mark.parametrize(
    "number",
    [
        "6222020000000000018",  # ICBC debit, inside 622126-622925 (Discover co-branded)
        numbered("622126", 16),
        numbered("622925", 16),
        numbered("621700", 19),
        numbered("625916", 16),
    ],
)
def test_unionpay_numbers_are_sent_to_the_bank_cards_page(number: str) -> None:
    error = refusal(detect_brand, number)
    assert error.code == "card.brand_unknown"
    assert "Bank cards" in error.localized_message()


def test_a_card_number_is_read_leniently() -> None:
    assert detect_brand("4000 0000 0084 0019") is Brand.VISA
    assert detect_brand("４０００-００００-００８４-００１９") is Brand.VISA
    assert refusal(detect_brand, "4000 0000 0084 001O").code == "card.format"


def test_one_wrong_digit_fails_the_luhn_check() -> None:
    assert refusal(detect_brand, "4000000000840018").code == "card.luhn"


@given(
    entry=st.sampled_from(BRAND_TABLE),
    body=st.text(alphabet="0123456789", min_size=19, max_size=19),
    data=st.data(),
)
def test_any_luhn_valid_number_in_a_range_gets_its_brand_and_any_typo_is_caught(
    entry: tuple[str, Brand, tuple[int, ...]], body: str, data: st.DataObject
) -> None:
    prefix, brand, lengths = entry
    length = data.draw(st.sampled_from(lengths))
    payload = (prefix + body)[: length - 1]
    number = payload + luhn_check_digit(payload)
    assert detect_brand(number) is brand
    # Change one digit after the prefix: the brand stays, the Luhn check catches it.
    position = data.draw(st.integers(min_value=len(prefix), max_value=length - 1))
    other = data.draw(st.sampled_from([d for d in "0123456789" if d != number[position]]))
    typo = number[:position] + other + number[position + 1 :]
    # The brand depends on the prefix alone, which the typo leaves as it was.
    error = refusal(detect_brand, typo)
    assert error.code == "card.luhn"


def test_the_accepted_brands_are_alipays_six() -> None:
    assert set(FOREIGN_BRANDS) == {
        Brand.VISA,
        Brand.MASTERCARD,
        Brand.JCB,
        Brand.DINERS,
        Brand.DISCOVER,
        Brand.AMEX,
    }


# --- expiry and security code --------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("08/29", (8, 29)),
        ("8/29", (8, 29)),
        ("08 / 2029", (8, 2029)),
        ("08-29", (8, 29)),
        ("0829", (8, 29)),
        ("082029", (8, 2029)),
        ("０８／２９", (8, 29)),
    ],
)
def test_expiry_dates_are_read_as_printed(typed: str, expected: tuple[int, int]) -> None:
    assert parse_expiry(typed) == expected


@pytest.mark.parametrize("typed", ["", "08", "8/2", "08/299", "0829x", "08//29", "aug 29"])
def test_unreadable_expiry_dates_are_refused(typed: str) -> None:
    assert refusal(parse_expiry, typed).code == "card.expiry_format"


@pytest.mark.parametrize(("month", "year"), [(0, 29), (13, 29), (1, 2047), (12, 99)])
def test_impossible_months_and_far_years_are_refused(month: int, year: int) -> None:
    assert refusal(check_expiry, month, year, today=TODAY).code == "card.expiry_format"


def test_a_card_is_valid_through_the_last_day_of_its_month() -> None:
    assert str(check_expiry(1, 26, today=date(2026, 1, 31))) == "01/26"
    assert check_expiry(1, 2026, today=date(2026, 1, 1)).year == 2026
    error = refusal(check_expiry, 1, 26, today=date(2026, 2, 1))
    assert error.code == "card.expired"
    assert error.params == {"expiry": "01/26"}
    assert refusal(check_expiry, 12, 25, today=TODAY).code == "card.expired"


@pytest.mark.parametrize(
    ("brand", "good", "bad"),
    [
        (Brand.VISA, "123", ["12", "1234", "12a", ""]),
        (Brand.MASTERCARD, "０１２", ["0123"]),
        (Brand.AMEX, "1234", ["123", "12345"]),
    ],
)
def test_the_security_code_has_the_brands_length(brand: Brand, good: str, bad: list[str]) -> None:
    check_cvv(good, brand)
    for typed in bad:
        error = refusal(check_cvv, typed, brand)
        assert error.code == "card.cvv"
        assert error.params == {"digits": brand.cvv_length}


def test_check_card_reports_the_first_field_that_is_wrong() -> None:
    checked = check_card("3700 000008 26018", 8, 29, "1234", today=TODAY)
    assert (checked.brand, checked.last4, str(checked.expiry)) == (Brand.AMEX, "6018", "08/29")
    assert "370000000826018" not in repr(checked)
    assert refusal(check_card, "4000000000840018", 8, 20, "1", today=TODAY).code == "card.luhn"
    assert refusal(check_card, "4000000000840019", 8, 20, "1", today=TODAY).code == "card.expired"
    assert refusal(check_card, "4000000000840019", 8, 29, "1", today=TODAY).code == "card.cvv"


# --- the fee and the exchange rate ---------------------------------------------------

THRESHOLD = Money.of("CNY", 200)
PERCENT = Decimal(3)


@pytest.mark.parametrize(
    ("amount", "fee"),
    [
        ("0.01", "0"),
        ("200.00", "0"),
        ("200.01", "6.00"),
        ("216.83", "6.50"),  # 6.5049 rounds down
        ("216.84", "6.51"),  # 6.5052
        ("216.50", "6.50"),  # 6.495: half rounds up
        ("217.50", "6.53"),  # 6.525: half rounds up, not to the even 6.52
        ("1000", "30.00"),
    ],
)
def test_the_fee_is_three_percent_of_the_whole_amount_above_200(amount: str, fee: str) -> None:
    assert foreign_card_fee(cny(amount), threshold=THRESHOLD, rate_percent=PERCENT) == cny(fee)


@given(st.integers(min_value=0, max_value=10**12))
def test_the_fee_is_within_half_a_fen_of_three_percent(minor: int) -> None:
    fee = foreign_card_fee(Money("CNY", minor), threshold=THRESHOLD, rate_percent=PERCENT)
    if minor <= THRESHOLD.minor:
        assert fee.minor == 0
    else:
        assert abs(Decimal(fee.minor) - Decimal(minor) * 3 / 100) <= Decimal("0.5")


def test_the_fee_refuses_mixed_currencies() -> None:
    with pytest.raises(ValueError, match="threshold"):
        foreign_card_fee(Money.of("USD", 300), threshold=THRESHOLD, rate_percent=PERCENT)


@pytest.mark.parametrize(
    ("amount", "currency", "rate", "expected"),
    [
        ("100.00", "USD", "7.1072", Money.of("USD", "14.07")),
        ("100.00", "USD", "7.30", Money.of("USD", "13.70")),
        ("100.00", "JPY", "0.04834", Money.of("JPY", 2069)),
        ("0.71", "USD", "7.1", Money.of("USD", "0.10")),
        ("1.00", "KRW", "0.0051201", Money.of("KRW", 195)),  # 195.31
    ],
)
def test_cny_is_converted_at_the_rate_and_rounded_half_up(
    amount: str, currency: str, rate: str, expected: Money
) -> None:
    assert to_card_currency(cny(amount), currency, Decimal(rate)) == expected


def test_half_a_cent_rounds_up() -> None:
    # At 10 CNY per dollar, CNY 0.55 is exactly USD 0.055, and CNY 0.45 USD 0.045.
    assert to_card_currency(cny("0.55"), "USD", Decimal(10)) == Money.of("USD", "0.06")
    assert to_card_currency(cny("0.45"), "USD", Decimal(10)) == Money.of("USD", "0.05")
    assert to_card_currency(cny("0.54"), "USD", Decimal(10)) == Money.of("USD", "0.05")


@given(
    minor=st.integers(min_value=1, max_value=10**11),
    rate=st.decimals(min_value=Decimal("0.001"), max_value=Decimal(20), places=5),
)
def test_conversion_is_within_half_a_minor_unit(minor: int, rate: Decimal) -> None:
    converted = to_card_currency(Money("CNY", minor), "USD", rate)
    exact = Decimal(minor) / rate
    assert abs(Decimal(converted.minor) - exact) <= Decimal("0.5")


# --- the sandbox network -------------------------------------------------------------


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 1, 15, 8, 0, tzinfo=UTC))


@pytest.fixture
def network(clock: FrozenClock) -> SandboxCardNetwork:
    return SandboxCardNetwork(clock, DEFAULT_SANDBOX_RATES)


def link(network: CardNetwork, number: str, month: int = 8, year: int = 29) -> CardToken:
    brand = detect_brand(number)
    return network.tokenize(number, month, year, "1" * brand.cvv_length, "ALEX EXAMPLE")


def test_the_docs_list_exactly_the_sandbox_cards() -> None:
    rows = re.findall(
        r"^\| `([\d ]+)` \| ([^|]+) \| ([A-Z]{2}) \| ([A-Z]{3}) \| ([^|(]+?) *[(|]",
        DOC.read_text(),
        flags=re.MULTILINE,
    )
    words = {
        "approve": SandboxOutcome.APPROVE,
        "decline": SandboxOutcome.DECLINE,
        "insufficient funds": SandboxOutcome.INSUFFICIENT_FUNDS,
        "expired at the issuer": SandboxOutcome.EXPIRED_AT_ISSUER,
        "3-D Secure challenge": SandboxOutcome.CHALLENGE,
        "issuer refuses to link": SandboxOutcome.ISSUER_REFUSES_LINK,
    }
    documented = {
        (number.replace(" ", ""), brand.strip(), country, currency, words[outcome])
        for number, brand, country, currency, outcome in rows
    }
    assert documented == {
        (c.number, c.brand.display_name, c.issuer_country, c.currency, c.outcome)
        for c in SANDBOX_CARDS
    }
    assert len(rows) == len(SANDBOX_CARDS)


def test_the_test_cards_cover_every_outcome_brand_and_currency() -> None:
    assert {card.outcome for card in SANDBOX_CARDS} == set(SandboxOutcome)
    approving = [card for card in SANDBOX_CARDS if card.outcome is SandboxOutcome.APPROVE]
    assert {card.brand for card in approving} == set(Brand)
    assert {"USD", "EUR", "GBP", "JPY"} <= {card.currency for card in approving}
    for card in SANDBOX_CARDS:
        assert detect_brand(card.number) is card.brand


@pytest.mark.parametrize(
    "card",
    [card for card in SANDBOX_CARDS if card.outcome is SandboxOutcome.APPROVE],
    ids=lambda card: f"{card.brand}-{card.currency}",
)
def test_each_approving_card_is_charged_in_its_own_currency(
    network: SandboxCardNetwork, card: SandboxCard
) -> None:
    token = link(network, card.number)
    assert (token.brand, token.last4, token.currency) == (
        card.brand,
        card.number[-4:],
        card.currency,
    )
    assert card.number not in token.token
    authorization = network.authorize(token.token, cny("100.00"), idempotency_key="k")
    rate = DEFAULT_SANDBOX_RATES[card.currency]
    assert authorization.status is AuthorizationStatus.APPROVED
    assert authorization.rate == rate
    assert authorization.rate_date == TODAY
    assert authorization.amount_in_card_currency == to_card_currency(
        cny("100.00"), card.currency, rate
    )
    assert authorization.amount_in_card_currency.currency == card.currency


def test_a_usd_card_pays_cny_100_as_usd_14_07(network: SandboxCardNetwork) -> None:
    token = link(network, "4000000000840019")
    authorization = network.authorize(token.token, cny("100.00"), idempotency_key="k")
    assert authorization.amount_in_card_currency == Money.of("USD", "14.07")


def test_the_token_survives_a_restart_but_is_not_the_number(clock: FrozenClock) -> None:
    first = link(SandboxCardNetwork(clock), "4000000000840019")
    again = SandboxCardNetwork(clock)
    assert again.authorize(first.token, cny("1"), idempotency_key="k").status == "approved"
    assert "4000000000840019" not in first.token
    # What may be stored: no number, no security code.
    assert {f.name for f in fields(CardToken)} == {
        "token",
        "brand",
        "last4",
        "expiry",
        "issuer_country",
        "currency",
    }


@pytest.mark.parametrize(
    ("outcome", "code", "error_class"),
    [
        (SandboxOutcome.DECLINE, "card.declined", Conflict),
        (SandboxOutcome.INSUFFICIENT_FUNDS, "card.insufficient_funds", Conflict),
        (SandboxOutcome.EXPIRED_AT_ISSUER, "card.expired", InvalidInput),
    ],
)
def test_refusing_cards_are_linked_but_refused_at_payment(
    network: SandboxCardNetwork, outcome: SandboxOutcome, code: str, error_class: type
) -> None:
    token = link(network, card_of(outcome))
    error = refusal(network.authorize, token.token, cny("1"), idempotency_key="k")
    assert error.code == code
    assert isinstance(error, error_class)


def test_the_issuer_can_refuse_to_link_its_card(network: SandboxCardNetwork) -> None:
    error = refusal(link, network, card_of(SandboxOutcome.ISSUER_REFUSES_LINK))
    assert error.code == "card.issuer_refused_link"
    assert isinstance(error, Conflict)


def test_a_valid_number_outside_the_test_table_is_refused(network: SandboxCardNetwork) -> None:
    error = refusal(link, network, "4111111111111111")
    assert error.code == "card.sandbox_unknown_card"
    assert "docs/sandbox_card_network.md" in error.localized_message()


def test_linking_checks_the_card_details_first(network: SandboxCardNetwork) -> None:
    number = "4000000000840019"
    assert refusal(network.tokenize, number, 12, 25, "123", "A").code == "card.expired"
    assert refusal(network.tokenize, number, 12, 29, "1234", "A").code == "card.cvv"
    assert refusal(network.tokenize, number, 12, 29, "123", "  ").code == "card.holder_name"
    assert refusal(network.tokenize, "6222020000000000018", 12, 29, "123", "A").code == (
        "card.brand_unknown"
    )


def test_a_card_that_expires_after_linking_is_refused(
    network: SandboxCardNetwork, clock: FrozenClock
) -> None:
    token = link(network, "4000000000840019", month=1, year=26)
    network.authorize(token.token, cny("1"), idempotency_key="in-january")
    clock.advance(days=17)  # 1 February 2026
    error = refusal(network.authorize, token.token, cny("1"), idempotency_key="in-february")
    assert (error.code, error.params) == ("card.expired", {"expiry": "01/26"})


@pytest.mark.parametrize("token", ["", "tok_sbx_0000000000000000_202908", "4000000000840019"])
def test_an_unknown_token_is_not_found(network: SandboxCardNetwork, token: str) -> None:
    error = refusal(network.authorize, token, cny("1"), idempotency_key="k")
    assert error.code == "card.token_unknown"
    assert isinstance(error, NotFound)


# --- 3-D Secure ----------------------------------------------------------------------


@pytest.fixture
def challenged(network: SandboxCardNetwork) -> str:
    token = link(network, card_of(SandboxOutcome.CHALLENGE))
    authorization = network.authorize(
        token.token,
        cny("300.00"),
        idempotency_key="k",
        three_ds_return_url="https://qianbao.example/pay/done?x=1",
    )
    assert authorization.status is AuthorizationStatus.CHALLENGE_REQUIRED
    assert authorization.challenge_url == (
        f"/sandbox/3ds/{authorization.id}"
        "?return_to=https%3A%2F%2Fqianbao.example%2Fpay%2Fdone%3Fx%3D1"
    )
    refusal_code = refusal(network.capture, authorization.id).code
    assert refusal_code == "card.not_capturable"
    return authorization.id


def test_the_right_challenge_answer_approves(network: SandboxCardNetwork, challenged: str) -> None:
    approved = network.complete_challenge(challenged, " 1234 ")
    assert approved.status is AuthorizationStatus.APPROVED
    assert approved.challenge_url is None
    assert approved.amount_in_card_currency == Money.of("EUR", "36.09")  # 300 / 8.3129
    assert network.capture(challenged).amount == cny("300.00")


@pytest.mark.parametrize("answer", ["", "0000", "12345", "123"])
def test_a_wrong_challenge_answer_fails_the_payment_for_good(
    network: SandboxCardNetwork, challenged: str, answer: str
) -> None:
    assert refusal(network.complete_challenge, challenged, answer).code == ("card.challenge_failed")
    assert refusal(network.complete_challenge, challenged, "1234").code == (
        "card.challenge_not_open"
    )
    assert refusal(network.capture, challenged).code == "card.not_capturable"


def test_a_late_challenge_answer_fails(
    network: SandboxCardNetwork, challenged: str, clock: FrozenClock
) -> None:
    clock.advance(minutes=10)
    assert refusal(network.complete_challenge, challenged, "1234").code == (
        "card.challenge_expired"
    )


def test_an_approved_payment_has_no_challenge(network: SandboxCardNetwork) -> None:
    token = link(network, "4000000000840019")
    authorization = network.authorize(token.token, cny("1"), idempotency_key="k")
    assert authorization.challenge_url is None
    error = refusal(network.complete_challenge, authorization.id, "1234")
    assert error.code == "card.challenge_not_open"
    assert refusal(network.complete_challenge, "auth_sbx_nope", "1234").code == (
        "card.authorization_unknown"
    )


# --- idempotency ---------------------------------------------------------------------


def test_the_same_key_returns_the_same_authorization(network: SandboxCardNetwork) -> None:
    token = link(network, "4000000000840019")
    first = network.authorize(token.token, cny("50"), idempotency_key="order-1")
    again = network.authorize(token.token, cny("50"), idempotency_key="order-1")
    other = network.authorize(token.token, cny("50"), idempotency_key="order-2")
    assert again == first
    assert other.id != first.id
    network.capture(first.id)
    replayed = network.authorize(token.token, cny("50"), idempotency_key="order-1")
    assert (replayed.id, replayed.status) == (first.id, AuthorizationStatus.CAPTURED)


def test_the_same_key_for_another_payment_is_refused(network: SandboxCardNetwork) -> None:
    token = link(network, "4000000000840019")
    network.authorize(token.token, cny("50"), idempotency_key="order-1")
    error = refusal(network.authorize, token.token, cny("51"), idempotency_key="order-1")
    assert error.code == "card.idempotency_key_reused"


def test_a_refused_payment_is_refused_again_under_its_key(network: SandboxCardNetwork) -> None:
    token = link(network, card_of(SandboxOutcome.DECLINE))
    first = refusal(network.authorize, token.token, cny("50"), idempotency_key="order-1")
    again = refusal(network.authorize, token.token, cny("50"), idempotency_key="order-1")
    assert type(again) is type(first) and (again.code, again.params) == (first.code, first.params)


class SlowClock(FrozenClock):
    """Reading the time takes a while, so a request without the lock would interleave."""

    def now(self) -> datetime:
        time.sleep(0.005)
        return super().now()


def test_concurrent_requests_with_one_key_make_one_authorization() -> None:
    network = SandboxCardNetwork(SlowClock(datetime(2026, 1, 15, tzinfo=UTC)))
    token = link(network, "4000000000840019")
    ids: list[str] = []
    barrier = threading.Barrier(8)

    def pay() -> None:
        barrier.wait()
        ids.append(network.authorize(token.token, cny("9.99"), idempotency_key="same").id)

    threads = [threading.Thread(target=pay) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 8
    assert len(set(ids)) == 1


# --- capture, void, refund -----------------------------------------------------------


@pytest.fixture
def approved(network: SandboxCardNetwork) -> str:
    token = link(network, "4000000000840019")
    return network.authorize(token.token, cny("300.00"), idempotency_key="k").id


def test_a_partial_capture_takes_part_once(network: SandboxCardNetwork, approved: str) -> None:
    capture = network.capture(approved, cny("120.00"))
    assert capture.amount == cny("120.00")
    assert capture.amount_in_card_currency == Money.of("USD", "16.88")  # 120 / 7.1072
    assert capture.rate == Decimal("7.1072")
    assert refusal(network.capture, approved, cny("1")).code == "card.not_capturable"
    assert refusal(network.void, approved).code == "card.not_voidable"


def test_no_more_than_approved_can_be_captured(network: SandboxCardNetwork, approved: str) -> None:
    error = refusal(network.capture, approved, cny("300.01"))
    assert error.code == "card.capture_exceeds"
    assert network.capture(approved, cny("300.00")).amount == cny("300.00")


def test_a_voided_payment_cannot_be_captured(network: SandboxCardNetwork, approved: str) -> None:
    assert network.void(approved).status is AuthorizationStatus.VOIDED
    assert refusal(network.capture, approved).code == "card.not_capturable"
    assert refusal(network.void, approved).code == "card.not_voidable"


def test_an_approval_expires_after_seven_days(
    network: SandboxCardNetwork, approved: str, clock: FrozenClock
) -> None:
    clock.advance(days=6, hours=23)
    network.capture(approved, cny("1"))
    token = link(network, "4000000000840019")
    late = network.authorize(token.token, cny("1"), idempotency_key="late").id
    clock.advance(days=7)
    assert refusal(network.capture, late).code == "card.authorization_expired"
    assert network.authorize(token.token, cny("1"), idempotency_key="late").status == "expired"


def test_a_refund_is_converted_at_the_refund_days_rate(
    network: SandboxCardNetwork, clock: FrozenClock
) -> None:
    token = link(network, "4000000000840019")
    authorization = network.authorize(token.token, cny("100.00"), idempotency_key="k")
    capture = network.capture(authorization.id)
    assert capture.amount_in_card_currency == Money.of("USD", "14.07")

    clock.advance(days=3)
    network.set_rates({**DEFAULT_SANDBOX_RATES, "USD": Decimal("7.30")})
    refund = network.refund(capture.id, cny("100.00"), rate_date=clock.now().date())
    # The dollar strengthened, so CNY 100 buys fewer dollars back: the cardholder bears
    # the USD 0.37 difference.
    assert refund.amount_in_card_currency == Money.of("USD", "13.70")
    assert (refund.rate, refund.rate_date) == (Decimal("7.30"), date(2026, 1, 18))


def test_a_refund_dated_earlier_uses_that_days_rate(
    network: SandboxCardNetwork, clock: FrozenClock
) -> None:
    token = link(network, "4000000000840019")
    authorization = network.authorize(token.token, cny("100.00"), idempotency_key="k")
    capture = network.capture(authorization.id)
    clock.advance(days=3)
    network.set_rates({**DEFAULT_SANDBOX_RATES, "USD": Decimal("7.30")})
    refund = network.refund(capture.id, cny("100.00"), rate_date=TODAY)
    assert refund.amount_in_card_currency == Money.of("USD", "14.07")
    with pytest.raises(ValueError, match="no exchange rate"):
        network.refund(capture.id, cny("1"), rate_date=date(2026, 1, 19))


def test_refunds_come_in_parts_up_to_the_capture(
    network: SandboxCardNetwork, approved: str
) -> None:
    capture = network.capture(approved, cny("200.00"))
    today = TODAY  # the refund's day; the clock has not moved
    first = network.refund(capture.id, cny("150.00"), rate_date=today)
    assert first.amount_in_card_currency == Money.of("USD", "21.11")  # 150 / 7.1072
    error = refusal(network.refund, capture.id, cny("50.01"), rate_date=today)
    assert error.code == "card.refund_exceeds"
    network.refund(capture.id, cny("50.00"), rate_date=today)
    assert refusal(network.refund, capture.id, cny("0.01"), rate_date=today).code == (
        "card.refund_exceeds"
    )
    assert refusal(network.refund, "cap_sbx_nope", cny("1"), rate_date=today).code == (
        "card.capture_unknown"
    )


def test_a_rate_table_must_cover_every_card_currency(clock: FrozenClock) -> None:
    with pytest.raises(ValueError, match="JPY"):
        SandboxCardNetwork(clock, {k: v for k, v in DEFAULT_SANDBOX_RATES.items() if k != "JPY"})
    with pytest.raises(ValueError, match="positive"):
        SandboxCardNetwork(clock, {**DEFAULT_SANDBOX_RATES, "USD": Decimal(0)})


def test_set_rates_keeps_earlier_days(network: SandboxCardNetwork, clock: FrozenClock) -> None:
    network.set_rates({**DEFAULT_SANDBOX_RATES, "GBP": Decimal(10)}, effective=date(2026, 1, 10))
    assert network.rate_on("GBP", date(2026, 1, 9)) == Decimal("9.6061")
    assert network.rate_on("GBP", date(2026, 1, 10)) == Decimal(10)
    assert network.rate_on("GBP", TODAY) == Decimal(10)


def test_capturing_again_returns_the_same_capture(
    network: SandboxCardNetwork, approved: str
) -> None:
    """A retry after a lost answer (or a crash before the wallet recorded it) must not
    charge twice, nor lose the record of the charge."""
    first = network.capture(approved)
    assert network.capture(approved) == first
    assert network.capture(approved, cny("300.00")) == first
    assert refusal(network.capture, approved, cny("100.00")).code == "card.not_capturable"
