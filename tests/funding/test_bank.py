"""The bank connectors: every sandbox outcome, the SMS code's rules, and the HTTP
adapter against a provider written from its documented protocol (httpx.MockTransport)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from qianbao.clock import FrozenClock
from qianbao.errors import Conflict, InvalidInput, QianbaoError
from qianbao.funding.bank import (
    PROVIDER_ERRORS,
    BankChallenge,
    BankConnector,
    BankMovement,
    HttpBank,
    mask_phone,
)
from qianbao.funding.connectors import connector_for
from qianbao.funding.sandbox.bank import (
    SANDBOX_CARDS,
    SandboxBank,
    SandboxCard,
    SandboxOutcome,
)
from qianbao.money import Money

DOC = Path(__file__).resolve().parents[2] / "docs" / "sandbox_bank.md"
SECRET = "shared-secret-for-tests"


def sandbox_card(outcome: SandboxOutcome) -> SandboxCard:
    return next(card for card in SANDBOX_CARDS if card.outcome is outcome)


MATCH = sandbox_card(SandboxOutcome.MATCH)


@dataclass
class Phone:
    """The reserved phones: every SMS the sandbox bank sends lands here."""

    sent: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, to_e164: str, code: str) -> None:
        self.sent.append((to_e164, code))

    def last_code(self) -> str:
        return self.sent[-1][1]


@pytest.fixture
def phone() -> Phone:
    return Phone()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def bank(phone: Phone, clock: FrozenClock) -> SandboxBank:
    return SandboxBank(phone, clock)


def start(
    bank: BankConnector,
    card: SandboxCard,
    *,
    number: str | None = None,
    name: str | None = None,
    passport: str | None = None,
    reserved_phone: str | None = None,
) -> BankChallenge:
    return bank.start_verification(
        number or card.number,
        card.holder_name if name is None else name,
        "passport",
        card.passport_number if passport is None else passport,
        reserved_phone or card.reserved_phone,
    )


def refusal(action: Callable[[], object]) -> QianbaoError:
    with pytest.raises(QianbaoError) as caught:
        action()
    return caught.value


# --- the sandbox: the documented table ------------------------------------------------------


def test_the_docs_list_exactly_the_sandbox_cards() -> None:
    rows = re.findall(
        r"^\| `([\d ]+)` \| ([^|]+) \| ([^|]+) \| (\+\d+) \| ([^|(]+?) *[(|]",
        DOC.read_text(),
        flags=re.MULTILINE,
    )
    documented = {
        (number.replace(" ", ""), name.strip(), passport.strip(), phone, outcome)
        for number, name, passport, phone, outcome in rows
    }
    words = {
        "match": SandboxOutcome.MATCH,
        "name mismatch": SandboxOutcome.NAME_MISMATCH,
        "ID mismatch": SandboxOutcome.ID_MISMATCH,
        "phone mismatch": SandboxOutcome.PHONE_MISMATCH,
        "card frozen": SandboxOutcome.CARD_FROZEN,
        "bank timeout": SandboxOutcome.BANK_TIMEOUT,
    }
    assert {(n, h, p, r, words[o]) for n, h, p, r, o in documented} == {
        (c.number, c.holder_name, c.passport_number, c.reserved_phone, c.outcome)
        for c in SANDBOX_CARDS
    }
    assert {card.outcome for card in SANDBOX_CARDS} == set(SandboxOutcome)


# --- the sandbox: outcomes ---------------------------------------------------------------


def test_a_matching_card_gets_a_code_on_its_reserved_phone(
    bank: SandboxBank, phone: Phone, clock: FrozenClock
) -> None:
    challenge = start(bank, MATCH)
    assert phone.sent == [(MATCH.reserved_phone, phone.last_code())]
    assert re.fullmatch(r"\d{6}", phone.last_code())
    assert challenge.masked_phone == "+44 ******0001"
    assert challenge.expires_at == clock.now() + timedelta(seconds=300)

    result = bank.confirm(challenge.reference, phone.last_code())
    assert result.bank_name == "Industrial and Commercial Bank of China"
    assert result.bank_name_zh == "中国工商银行"
    assert result.last4 == "0018"
    assert result.card_token_from_bank and "6222020000000000018" not in (
        result.card_token_from_bank
    )


def test_each_match_card_binds_with_its_own_bank(bank: SandboxBank, phone: Phone) -> None:
    names = []
    for card in (c for c in SANDBOX_CARDS if c.outcome is SandboxOutcome.MATCH):
        challenge = start(bank, card)
        names.append(bank.confirm(challenge.reference, phone.last_code()).bank_name)
    assert names == [
        "Industrial and Commercial Bank of China",
        "China Merchants Bank",
        "Sandbox Rural Commercial Bank",
    ]


def test_codes_differ_between_challenges(bank: SandboxBank, phone: Phone) -> None:
    references = {start(bank, MATCH).reference for _ in range(20)}
    assert len(references) == 20
    assert len({code for _, code in phone.sent}) > 1


@pytest.mark.parametrize(
    ("outcome", "code", "error_class", "status"),
    [
        (SandboxOutcome.NAME_MISMATCH, "bank.name_mismatch", InvalidInput, 422),
        (SandboxOutcome.ID_MISMATCH, "bank.id_mismatch", InvalidInput, 422),
        (SandboxOutcome.PHONE_MISMATCH, "bank.phone_mismatch", InvalidInput, 422),
        (SandboxOutcome.CARD_FROZEN, "bank.card_frozen", Conflict, 409),
        (SandboxOutcome.BANK_TIMEOUT, "bank.timeout", QianbaoError, 503),
    ],
)
def test_each_refusal_card_refuses_with_its_documented_details(
    bank: SandboxBank,
    phone: Phone,
    outcome: SandboxOutcome,
    code: str,
    error_class: type[QianbaoError],
    status: int,
) -> None:
    error = refusal(lambda: start(bank, sandbox_card(outcome)))
    assert isinstance(error, error_class)
    assert (error.code, error.status) == (code, status)
    assert phone.sent == []


def test_a_bank_timeout_says_when_to_try_again(bank: SandboxBank) -> None:
    error = refusal(lambda: start(bank, sandbox_card(SandboxOutcome.BANK_TIMEOUT)))
    assert error.retry_after == 30
    assert error.problem()["details"] == {"retry_after": 30}


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"name": "JOHN SMYTH"}, "bank.name_mismatch"),
        ({"name": "SMITH JOHN"}, "bank.name_mismatch"),
        ({"passport": "912345679"}, "bank.id_mismatch"),
        ({"reserved_phone": "+447911000002"}, "bank.phone_mismatch"),
        # The name is checked before the passport, as a bank answers.
        ({"name": "JANE SMITH", "passport": "000000000"}, "bank.name_mismatch"),
    ],
)
def test_typed_details_are_compared_with_the_bank_record(
    bank: SandboxBank, phone: Phone, changes: dict[str, str], code: str
) -> None:
    assert refusal(lambda: start(bank, MATCH, **changes)).code == code
    assert phone.sent == []


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "John  Smith"},
        {"name": " john smith "},
        {"name": "ＪＯＨＮ　ＳＭＩＴＨ"},  # full-width letters and space
        {"passport": "912 345 678"},
        {"number": "6222 0200 0000 0000 018"},
        {"number": "6222-0200-0000-0000-018"},
    ],
)
def test_harmless_differences_in_typing_still_match(
    bank: SandboxBank, phone: Phone, changes: dict[str, str]
) -> None:
    challenge = start(bank, MATCH, **changes)
    assert bank.confirm(challenge.reference, phone.last_code()).last4 == "0018"


def test_a_frozen_card_is_refused_whatever_is_typed(bank: SandboxBank) -> None:
    frozen = sandbox_card(SandboxOutcome.CARD_FROZEN)
    assert refusal(lambda: start(bank, frozen, name="SOMEONE ELSE")).code == "bank.card_frozen"


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("6222020000000000026", "bank.sandbox_unknown_card"),  # valid ICBC number, not a test card
        ("6234560000000000100", "bank.sandbox_unknown_card"),
        ("6225750000000089", "card.credit_card"),
        ("6222020000000000019", "card.luhn"),
        ("4111111111111111", "card.not_unionpay"),
        ("6222 02OO", "card.format"),
    ],
)
def test_only_the_documented_cards_reach_the_sandbox(
    bank: SandboxBank, phone: Phone, number: str, code: str
) -> None:
    error = refusal(lambda: start(bank, MATCH, number=number))
    assert error.code == code
    assert isinstance(error, InvalidInput)
    assert phone.sent == []


def test_the_unknown_card_refusal_points_to_the_test_cards(bank: SandboxBank) -> None:
    error = refusal(lambda: start(bank, MATCH, number="6222020000000000026"))
    assert "docs/sandbox_bank.md" in error.localized_message()


def test_only_a_passport_is_accepted(bank: SandboxBank) -> None:
    error = refusal(
        lambda: bank.start_verification(
            MATCH.number,
            MATCH.holder_name,
            "id_card",  # type: ignore[arg-type]
            MATCH.passport_number,
            MATCH.reserved_phone,
        )
    )
    assert error.code == "bank.id_type"


# --- the sandbox: the SMS code -------------------------------------------------------------


def test_the_code_expires(bank: SandboxBank, phone: Phone, clock: FrozenClock) -> None:
    late = start(bank, MATCH)
    late_code = phone.last_code()
    in_time = start(bank, MATCH)
    in_time_code = phone.last_code()
    clock.advance(seconds=299)
    assert bank.confirm(in_time.reference, in_time_code).last4 == "0018"
    clock.advance(seconds=1)
    error = refusal(lambda: bank.confirm(late.reference, late_code))
    assert (error.code, error.status) == ("bank.code_expired", 409)


def test_the_code_works_once(bank: SandboxBank, phone: Phone) -> None:
    challenge = start(bank, MATCH)
    bank.confirm(challenge.reference, phone.last_code())
    error = refusal(lambda: bank.confirm(challenge.reference, phone.last_code()))
    assert error.code == "bank.challenge_unknown"


def test_an_unknown_reference_is_refused(bank: SandboxBank) -> None:
    assert refusal(lambda: bank.confirm("sbx_nothing", "123456")).code == ("bank.challenge_unknown")


def wrong_code(right: str) -> str:
    return f"{(int(right) + 1) % 1_000_000:06d}"


def test_five_wrong_codes_close_the_challenge(bank: SandboxBank, phone: Phone) -> None:
    challenge = start(bank, MATCH)
    right = phone.last_code()
    tries_left = []
    for _ in range(4):
        error = refusal(lambda: bank.confirm(challenge.reference, wrong_code(right)))
        assert (error.code, error.status) == ("bank.code_wrong", 422)
        tries_left.append(error.params["tries_left"])
    assert tries_left == [4, 3, 2, 1]
    fifth = refusal(lambda: bank.confirm(challenge.reference, wrong_code(right)))
    assert (fifth.code, fifth.status) == ("bank.too_many_tries", 409)
    # Closed for good: the right code does not open it again.
    assert refusal(lambda: bank.confirm(challenge.reference, right)).code == ("bank.too_many_tries")


def test_concurrent_wrong_codes_still_get_five_tries(bank: SandboxBank, phone: Phone) -> None:
    challenge = start(bank, MATCH)
    wrong = wrong_code(phone.last_code())
    codes: list[str] = []
    barrier = threading.Barrier(20)

    def guess() -> None:
        barrier.wait()
        codes.append(refusal(lambda: bank.confirm(challenge.reference, wrong)).code)

    threads = [threading.Thread(target=guess) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == ["bank.code_wrong"] * 4 + ["bank.too_many_tries"] * 16


def test_a_new_challenge_starts_with_fresh_tries(bank: SandboxBank, phone: Phone) -> None:
    first = start(bank, MATCH)
    for _ in range(5):
        refusal(lambda: bank.confirm(first.reference, wrong_code(phone.last_code())))
    second = start(bank, MATCH)
    assert bank.confirm(second.reference, phone.last_code()).last4 == "0018"


def test_a_code_typed_with_spaces_works(bank: SandboxBank, phone: Phone) -> None:
    challenge = start(bank, MATCH)
    code = phone.last_code()
    assert bank.confirm(challenge.reference, f" {code[:3]} {code[3:]} ").last4 == "0018"


def test_expired_challenges_are_forgotten(
    bank: SandboxBank, phone: Phone, clock: FrozenClock
) -> None:
    challenge = start(bank, MATCH)
    clock.advance(seconds=301)
    with pytest.raises(QianbaoError) as expired:
        bank.confirm(challenge.reference, phone.last_code())
    assert expired.value.code == "bank.code_expired"
    with pytest.raises(QianbaoError) as forgotten:
        bank.confirm(challenge.reference, phone.last_code())
    assert forgotten.value.code == "bank.challenge_unknown"


def test_a_code_sent_by_one_process_is_checked_by_another(
    phone: Phone, clock: FrozenClock, tmp_path: Path
) -> None:
    """With the file store, two bank clients (two web workers) share codes and debits."""
    from qianbao.funding.sandbox.state import SqliteStore

    first = SandboxBank(phone, clock, store=SqliteStore(tmp_path / "bank.sqlite3"))
    second = SandboxBank(phone, clock, store=SqliteStore(tmp_path / "bank.sqlite3"))
    challenge = start(first, MATCH)
    result = second.confirm(challenge.reference, phone.last_code())
    assert result.card_token_from_bank is not None
    debit = first.debit(result.card_token_from_bank, Money.of("CNY", 10), idempotency_key="k")
    assert second.find_debit("k") == debit


def test_mask_phone() -> None:
    assert mask_phone("+8613800138000") == "+86 *******8000"
    assert mask_phone("+447911000001") == "+44 ******0001"
    assert mask_phone("not a number 1234") == "1234"


# --- the HTTP adapter: a provider written from the documented protocol ---------------------


def sign(message: bytes) -> str:
    return "v1=" + hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()


@dataclass
class Provider:
    """A four-element provider as docs/sandbox_bank.md describes it.

    It checks each request's signature itself (not with the code under test), answers
    with ``answer(path, body)`` -> (status, json, headers) and signs its answers, unless
    told to sign them wrongly.
    """

    answer: Callable[[str, dict[str, Any]], tuple[int, Any, dict[str, str]]]
    clock: FrozenClock
    secret: str = SECRET
    signing: str = "right"  # "right", "none", "other-request", "other-body"
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        request_id = request.headers["X-Request-Id"]
        timestamp = request.headers["X-Timestamp"]
        message = f"{timestamp}\n{request_id}\nPOST\n{request.url.path}\n".encode()
        expected = (
            "v1="
            + hmac.new(self.secret.encode(), message + request.content, hashlib.sha256).hexdigest()
        )
        if not hmac.compare_digest(request.headers["X-Signature"], expected):
            return httpx.Response(401, json={"error": "bad_signature"})
        if abs(int(timestamp) - self.clock.now().timestamp()) > 300:
            return httpx.Response(401, json={"error": "stale_timestamp"})
        status, payload, headers = self.answer(request.url.path, json.loads(request.content))
        content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        signed_id = "0" * 32 if self.signing == "other-request" else request_id
        signed_body = b"{}" if self.signing == "other-body" else content
        if self.signing != "none":
            headers = {
                **headers,
                "X-Signature": sign(f"{signed_id}\n{status}\n".encode() + signed_body),
            }
        return httpx.Response(status, content=content, headers=headers)


def ok_start(path: str, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    if path.endswith("/four-elements/start"):
        return (
            200,
            {
                "reference": "ref-123",
                "masked_phone": "+44 ******0001",
                "expires_at": "2026-01-01T08:05:00Z",
            },
            {},
        )
    return 200, {"bank_name": "Bank of China", "last4": "0057", "card_token": "agr-9"}, {}


def http_bank(provider: Provider, url: str = "https://kyc.example.com/api") -> HttpBank:
    return HttpBank(url, SECRET, transport=httpx.MockTransport(provider), clock=provider.clock)


def answering(status: int, payload: Any, headers: dict[str, str] | None = None) -> Provider:
    return Provider(lambda path, body: (status, payload, headers or {}), FrozenClock())


def test_http_start_sends_the_documented_request_and_reads_the_answer() -> None:
    provider = Provider(ok_start, FrozenClock())
    challenge = start(
        http_bank(provider), MATCH, number="6222 0200 0000 0000 018", passport="912 345 678"
    )
    assert challenge == BankChallenge(
        "ref-123", "+44 ******0001", datetime(2026, 1, 1, 8, 5, tzinfo=UTC)
    )
    (request,) = provider.requests
    assert request.method == "POST"
    assert str(request.url) == "https://kyc.example.com/api/four-elements/start"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Timestamp"] == str(int(provider.clock.now().timestamp()))
    assert re.fullmatch(r"[0-9a-f]{32}", request.headers["X-Request-Id"])
    assert json.loads(request.content) == {
        "card_number": "6222020000000000018",
        "holder_name": "JOHN SMITH",
        "id_type": "passport",
        "id_number": "912345678",
        "reserved_phone": "+447911000001",
    }


def test_http_confirm_reads_the_bank_and_token() -> None:
    provider = Provider(ok_start, FrozenClock())
    result = http_bank(provider).confirm("ref-123", "123 456")
    assert (result.bank_name, result.last4, result.card_token_from_bank) == (
        "Bank of China",
        "0057",
        "agr-9",
    )
    assert json.loads(provider.requests[0].content) == {
        "reference": "ref-123",
        "sms_code": "123456",
    }


def test_each_request_has_its_own_id() -> None:
    provider = Provider(ok_start, FrozenClock())
    bank = http_bank(provider)
    bank.confirm("ref-1", "123456")
    bank.confirm("ref-1", "123456")
    assert len({r.headers["X-Request-Id"] for r in provider.requests}) == 2


def test_a_bad_card_never_reaches_the_provider() -> None:
    provider = Provider(ok_start, FrozenClock())
    assert refusal(lambda: start(http_bank(provider), MATCH, number="6225750000000089")).code == (
        "card.credit_card"
    )
    assert provider.requests == []


def test_a_wrong_secret_is_a_provider_error() -> None:
    provider = Provider(ok_start, FrozenClock(), secret="the provider's other secret")
    error = refusal(lambda: start(http_bank(provider), MATCH))
    assert (error.code, error.status) == ("bank.provider_error", 502)
    assert "credentials" in str(error)
    assert "credentials" not in error.localized_message()


def test_a_stale_clock_is_refused_by_the_provider() -> None:
    provider = Provider(ok_start, FrozenClock())
    bank = HttpBank(
        "https://kyc.example.com/api",
        SECRET,
        transport=httpx.MockTransport(provider),
        clock=FrozenClock(provider.clock.now() - timedelta(minutes=10)),
    )
    assert refusal(lambda: bank.confirm("ref", "123456")).code == "bank.provider_error"


@pytest.mark.parametrize("signing", ["none", "other-request", "other-body"])
def test_an_answer_without_a_valid_signature_is_refused(signing: str) -> None:
    provider = Provider(ok_start, FrozenClock(), signing=signing)
    error = refusal(lambda: http_bank(provider).confirm("ref-123", "123456"))
    assert (error.code, error.status) == ("bank.provider_error", 502)
    assert "signature" in str(error)


@pytest.mark.parametrize(
    ("provider_code", "code", "status"),
    [
        ("name_mismatch", "bank.name_mismatch", 422),
        ("id_mismatch", "bank.id_mismatch", 422),
        ("phone_mismatch", "bank.phone_mismatch", 422),
        ("card_not_debit", "card.credit_card", 422),
        ("code_wrong", "bank.code_wrong", 422),
        ("card_frozen", "bank.card_frozen", 409),
        ("code_expired", "bank.code_expired", 409),
        ("too_many_tries", "bank.too_many_tries", 409),
        ("unknown_reference", "bank.challenge_unknown", 409),
        ("bank_timeout", "bank.timeout", 503),
        ("insufficient_funds", "bank.insufficient_funds", 409),
        ("credit_exceeds", "bank.credit_exceeds", 409),
    ],
)
def test_provider_refusals_map_to_codes(provider_code: str, code: str, status: int) -> None:
    error = refusal(lambda: start(http_bank(answering(422, {"error": provider_code})), MATCH))
    assert (error.code, error.status) == (code, status)


def test_every_provider_code_is_tested() -> None:
    tested = {
        "name_mismatch", "id_mismatch", "phone_mismatch", "card_not_debit", "code_wrong",
        "card_frozen", "code_expired", "too_many_tries", "unknown_reference", "bank_timeout",
        "insufficient_funds", "credit_exceeds",
    }  # fmt: skip
    assert set(PROVIDER_ERRORS) == tested


def test_a_wrong_code_carries_the_tries_left() -> None:
    provider = answering(400, {"error": "code_wrong", "tries_left": 2})
    error = refusal(lambda: http_bank(provider).confirm("ref", "000000"))
    assert error.params == {"tries_left": 2}


@pytest.mark.parametrize(
    ("status", "headers", "code", "retry_after"),
    [
        (500, {}, "bank.unavailable", 30),
        (502, {}, "bank.unavailable", 30),
        (503, {"Retry-After": "120"}, "bank.unavailable", 120),
        (429, {"Retry-After": "7"}, "bank.unavailable", 7),
        (504, {}, "bank.timeout", 30),
    ],
)
def test_server_trouble_is_retryable(
    status: int, headers: dict[str, str], code: str, retry_after: int
) -> None:
    provider = answering(status, b"<html>Bad gateway</html>", headers)
    provider.signing = "none"  # a proxy's page: no signature needed to say "try later"
    error = refusal(lambda: start(http_bank(provider), MATCH))
    assert (error.code, error.status, error.retry_after) == (code, 503, retry_after)


@pytest.mark.parametrize(
    ("status", "payload"),
    [
        (422, {"error": "something_new"}),
        (404, {"detail": "not found"}),
        (200, b"not json"),
        (200, ["a", "list"]),
        (200, {"reference": "r"}),  # masked_phone missing
        (200, {"reference": "r" * 129, "masked_phone": "+44 ******0001"}),
        (200, {"reference": "r", "masked_phone": "+44 ******0001", "expires_at": "tomorrow"}),
        (
            200,
            {
                "reference": "r",
                "masked_phone": "+44 ******0001",
                "expires_at": "2026-01-01T08:05:00",
            },
        ),
        (302, {}),
    ],
)
def test_unusable_answers_are_provider_errors(status: int, payload: Any) -> None:
    error = refusal(lambda: start(http_bank(answering(status, payload)), MATCH))
    assert (error.code, error.status) == ("bank.provider_error", 502)


@pytest.mark.parametrize(
    "payload",
    [
        {"bank_name": "BOC", "last4": "57", "card_token": None},
        {"bank_name": "BOC", "last4": "0057", "card_token": 42},
        {"bank_name": "", "last4": "0057"},
    ],
)
def test_an_unusable_confirmation_is_a_provider_error(payload: dict[str, Any]) -> None:
    error = refusal(lambda: http_bank(answering(200, payload)).confirm("ref", "123456"))
    assert error.code == "bank.provider_error"


def test_a_confirmation_without_a_token_is_fine() -> None:
    result = http_bank(answering(200, {"bank_name": "BOC", "last4": "0057", "card_token": None}))
    assert result.confirm("ref", "123456").card_token_from_bank is None


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (httpx.ReadTimeout("read timed out"), "bank.timeout"),
        (httpx.ConnectTimeout("connect timed out"), "bank.timeout"),
        (httpx.ConnectError("connection refused"), "bank.unavailable"),
    ],
)
def test_network_failures_are_retryable(failure: httpx.HTTPError, code: str) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise failure

    bank = HttpBank("https://kyc.example.com", SECRET, transport=httpx.MockTransport(fail))
    error = refusal(lambda: bank.confirm("ref", "123456"))
    assert (error.code, error.status, error.retry_after) == (code, 503, 30)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_a_real_timeout_becomes_bank_timeout(silent_server: str) -> None:
    bank = HttpBank(silent_server, SECRET, timeout_seconds=0.2)
    assert refusal(lambda: bank.confirm("ref", "123456")).code == "bank.timeout"


# --- choosing a connector from the settings ---------------------------------------------------


@dataclass
class FakeSettings:
    bank_connector: str = "sandbox"
    bank_http_url: str = ""
    bank_http_secret: str = ""
    bank_http_timeout_seconds: float = 10.0


def test_the_sandbox_is_the_default(phone: Phone, clock: FrozenClock) -> None:
    bank = connector_for(FakeSettings(), send_sms=phone, clock=clock)
    assert isinstance(bank, SandboxBank)
    start(bank, MATCH)
    assert phone.sent[0][0] == MATCH.reserved_phone


def test_the_http_connector_uses_its_settings(phone: Phone) -> None:
    provider = Provider(ok_start, FrozenClock())
    settings = FakeSettings("http", "https://kyc.example.com/v2/", SECRET, 5.0)
    bank = connector_for(
        settings, send_sms=phone, clock=provider.clock, transport=httpx.MockTransport(provider)
    )
    assert isinstance(bank, HttpBank)
    bank.confirm("ref", "123456")
    assert str(provider.requests[0].url) == "https://kyc.example.com/v2/four-elements/confirm"
    assert phone.sent == []  # the bank texts the code itself


def test_the_http_connector_needs_its_url_and_secret(phone: Phone) -> None:
    with pytest.raises(ValueError, match="QIANBAO_BANK_HTTP_SECRET"):
        connector_for(FakeSettings("http", "https://kyc.example.com"), send_sms=phone)


def test_an_unknown_connector_is_a_setup_error(phone: Phone) -> None:
    with pytest.raises(ValueError, match="QIANBAO_BANK_CONNECTOR"):
        connector_for(FakeSettings("mock"), send_sms=phone)


def test_http_looks_a_debit_up_by_its_key() -> None:
    def answer(path: str, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        assert path.endswith("/payments/lookup")
        if body["idempotency_key"] == "known":
            return 200, {"found": True, "id": "dbt-1", "amount": "12.50", "currency": "CNY"}, {}
        return 200, {"found": False}, {}

    bank = http_bank(Provider(answer, FrozenClock()))
    assert bank.find_debit("known") == BankMovement("dbt-1", Money.of("CNY", "12.50"))
    assert bank.find_debit("other") is None
    broken = http_bank(
        answering(200, {"found": True, "id": "dbt-1", "amount": "lots", "currency": "CNY"})
    )
    with pytest.raises(QianbaoError) as caught:
        broken.find_debit("known")
    assert caught.value.code == "bank.provider_error"
