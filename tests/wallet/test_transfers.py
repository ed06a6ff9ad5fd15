"""Transfers between people: the recipient by number or proven email with a masked
verified name, who must verify, the limits with what remains (counted with payments),
restrictions and freezes, clear refusals of bad amounts, the payment password, retries
that move money once, the recipient's SMS, history and CSV, the request-money link, the
API and the pages, in English and Chinese."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from qianbao import policy
from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.errors import InvalidInput, QianbaoError
from qianbao.i18n import language_scope
from qianbao.identity import security
from qianbao.identity import service as identity
from qianbao.identity.models import User
from qianbao.identity.phone import parse_mobile
from qianbao.money import Money
from qianbao.notify.service import read_outbox
from qianbao.risk import restrictions
from qianbao.settings import Settings
from qianbao.verification import liveness
from qianbao.wallet import limits
from qianbao.wallet.ledger import audit as ledger_audit
from qianbao.wallet.payments import service as payments
from qianbao.wallet.transfers import service as transfers
from qianbao.wallet.transfers.models import PersonTransfer
from tests.api_helpers import AGREEMENT, outbox_code
from tests.helpers import last_code
from tests.verification.flow_helpers import (
    CHALLENGE,
    accept_synthetic_clips,
    clip,
    new_person,
    passport,
)
from tests.verification.test_flow import face_try, to_face_step
from tests.wallet.test_payments import PIN, cny, fund
from tests.web.test_pages import csrf

ALICE = "07911 123456"  # +44 7911 123456
BOB = "07400 900123"  # +44 7400 900123
CAROL = "07400 900456"


def refused(attempt: Callable[[], object]) -> QianbaoError:
    with pytest.raises(QianbaoError) as caught:
        attempt()
    return caught.value


def person(db: Database, clock: FrozenClock, number: str, *, verified: bool = True) -> uuid.UUID:
    """Signed up by SMS, with a payment password, verified (by bank card: no name on
    record) unless told otherwise."""
    account = new_person(db, number)
    clock.advance(seconds=61)  # past the sign-up code's resend cooldown
    security.send_security_code(db, account.id, identity.Client("203.0.113.7", "pytest"), "en")
    code = last_code(db, account.phone)
    security.set_payment_password(db, account.id, PIN, sms_code=code)
    if verified:
        db.run(lambda tx: identity.set_verification_level(tx, account.id, "bank_card"))
    return account.id


def e164(number: str) -> str:
    return parse_mobile(number, "GB").e164


def balance(db: Database, user_id: uuid.UUID) -> Money:
    return db.run(lambda tx: payments.wallet(tx, user_id)).balance


def send(
    db: Database,
    sender: uuid.UUID,
    to: str,
    amount: str,
    *,
    note: str = "",
    key: str | None = None,
    pin: str = PIN,
) -> transfers.TransferView:
    return transfers.send(db, sender, to, amount, note, pin, key or uuid.uuid4().hex)


def sms_to(db: Database, number: str) -> list[str]:
    return [plain(m.body) for m in db.run(lambda tx: read_outbox(tx, e164(number), 20))]


def plain(text: str) -> str:
    """Money is formatted with a no-break space ("CNY\u00a0100.00"); tests read spaces."""
    return text.replace("\u00a0", " ")


@pytest.fixture
def pair(db: Database, clock: FrozenClock) -> tuple[uuid.UUID, uuid.UUID]:
    alice, bob = person(db, clock, ALICE), person(db, clock, BOB)
    fund(db, alice, "30000")
    return alice, bob


# --- masked names and amounts ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("李明", "*明"),
        ("张小明", "**明"),
        ("SMITH JOHN", "** JOHN"),
        ("ZHANG XIAOMING", "** XIAOMING"),
        ("GARCIA LOPEZ MARIA JOSE", "** JOSE"),
        ("MADONNA", "******A"),
        ("", ""),
    ],
)
def test_a_name_is_masked_but_its_end(name: str, shown: str) -> None:
    assert transfers.masked_name(name) == shown


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("", "transfer.amount_missing"),
        ("0", "transfer.amount_zero"),
        ("0.00", "transfer.amount_zero"),
        ("-5", "transfer.amount_negative"),
        ("-0.001", "transfer.amount_negative"),
        ("1.001", "transfer.amount_precision"),
        ("0.005", "transfer.amount_precision"),
        ("abc", "transfer.amount_format"),
        ("1e5", "transfer.amount_format"),
        ("NaN", "transfer.amount_format"),
        ("1234567890123", "transfer.amount_format"),
    ],
)
def test_bad_amounts_are_refused_clearly(typed: str, code: str) -> None:
    error = refused(lambda: transfers.parse_amount(typed))
    assert error.code == code and error.status == 422


@given(st.text(max_size=24) | st.from_regex(r"-?\d{0,13}(\.\d{0,4})?", fullmatch=True))
def test_any_typed_amount_is_money_or_a_clear_refusal(typed: str) -> None:
    try:
        money = transfers.parse_amount(typed)
    except InvalidInput as error:
        assert error.code.startswith("transfer.amount_")
    else:
        assert money.currency == "CNY" and 0 < money.minor < 10**14


@given(st.text(max_size=40))
def test_any_name_masks_to_its_last_word_or_character(name: str) -> None:
    shown, words = transfers.masked_name(name), name.split()
    if len(words) > 1:
        assert shown == f"** {words[-1]}"  # nothing of the earlier words shows
    elif words:
        assert shown == "*" * (len(words[0]) - 1) + words[0][-1]
    else:
        assert shown == ""


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(to=st.text(max_size=60), amount=st.text(max_size=12), note=st.text(max_size=60))
def test_whatever_is_typed_the_answer_is_a_quote_or_a_clear_refusal(
    db: Database, pair: tuple[uuid.UUID, uuid.UUID], to: str, amount: str, note: str
) -> None:
    try:
        db.run(lambda tx: transfers.quote(tx, pair[0], to, amount, note))
    except QianbaoError as error:
        assert 400 <= error.status < 500


def test_amounts_as_people_type_them() -> None:
    assert transfers.parse_amount(" 1,000.5 ") == cny("1000.50")
    assert transfers.parse_amount("¥88") == cny("88")
    assert transfers.parse_amount("1.500") == cny("1.50")  # exact, however written
    assert transfers.parse_amount(".5") == cny("0.50")


def test_over_precise_and_zero_are_said_in_chinese_too() -> None:
    error = refused(lambda: transfers.parse_amount("1.001"))
    with language_scope("zh_Hans"):
        assert error.localized_message() == "人民币金额最多两位小数（分）；1.001 超出了。"
        assert refused(lambda: transfers.parse_amount("0")).localized_message() == (
            "转账金额须大于零。"
        )


# --- sending ------------------------------------------------------------------------


def test_a_transfer_by_number_moves_money_once_and_tells_the_recipient(
    db: Database, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, bob = pair
    quote = db.run(lambda tx: transfers.quote(tx, alice, "+44 7400 900123", "100", "Dinner"))
    assert quote.recipient.id == bob and quote.amount == cny("100")
    # Verified by bank card alone: no name on record, so the masked number shows.
    assert quote.recipient.shown() == "+44 ******0123 (verified)"
    done = send(db, alice, "+44 7400 900123", "100.00", note="Dinner")
    assert done.direction == "sent" and not done.replayed
    assert balance(db, alice) == cny("29900") and balance(db, bob) == cny("100")
    assert any("CNY 100.00" in body and "“Dinner”" in body for body in sms_to(db, BOB))
    received = db.run(lambda tx: transfers.user_transfers(tx, bob))
    assert [(r.direction, r.amount, r.note, r.id) for r in received] == [
        ("received", cny("100"), "Dinner", done.id)
    ]
    assert received[0].counterparty_phone == "+44 ******3456"
    sent = db.run(lambda tx: transfers.user_transfer(tx, alice, done.id))
    assert sent.counterparty_phone == "+44 ******0123"
    assert db.run(ledger_audit.audit).sound


def test_a_number_without_a_country_code_is_one_of_the_senders_country(
    db: Database, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, bob = pair
    assert db.run(lambda tx: transfers.find_recipient(tx, alice, BOB)).id == bob
    assert db.run(lambda tx: transfers.find_recipient(tx, alice, "0044 7400 900123")).id == bob
    error = refused(lambda: db.run(lambda tx: transfers.find_recipient(tx, alice, "12")))
    assert error.code.startswith("phone.")


def test_a_transfer_by_proven_email_only(db: Database, pair: tuple[uuid.UUID, uuid.UUID]) -> None:
    alice, bob = pair

    def set_email(tx: Tx, proven: bool) -> None:
        user = tx.session.get_one(User, bob)
        user.email = "bob@example.org"
        user.email_verified_at = tx.now() if proven else None

    db.run(lambda tx: set_email(tx, proven=False))
    unknown = refused(lambda: send(db, alice, "bob@example.org", "5"))
    assert unknown.code == "transfer.recipient_unknown" and unknown.status == 404
    db.run(lambda tx: set_email(tx, proven=True))
    done = send(db, alice, "  Bob@Example.org ", "5")
    assert balance(db, bob) == cny("5") and done.counterparty_phone == "+44 ******0123"


def test_a_passport_verified_recipient_shows_their_masked_name(
    db: Database,
    clock: FrozenClock,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(liveness, "new_challenge", lambda rng=None: CHALLENGE)
    accept_synthetic_clips(settings)
    alice = person(db, clock, ALICE)
    fund(db, alice, "100")
    bob = person(db, clock, BOB, verified=False)
    case_id = to_face_step(db, bob)
    assert face_try(db, bob, case_id, clip("astronaut")) == "verified"
    data = passport()
    last_word = f"{data.surname} {data.given_names}".replace("<", " ").split()[-1]
    quote = db.run(lambda tx: transfers.quote(tx, alice, "+447400900123", "1", ""))
    assert quote.recipient.name == f"** {last_word}"
    assert quote.recipient.shown() == f"** {last_word} (verified)"
    with language_scope("zh_Hans"):
        assert quote.recipient.shown() == f"** {last_word}（已认证）"
    assert data.surname not in quote.recipient.shown()
    done = send(db, alice, "+447400900123", "1")
    assert done.counterparty() == f"** {last_word} (verified)"


def test_to_oneself_to_nobody_and_without_money(
    db: Database, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = pair
    own = refused(lambda: send(db, alice, "+447911123456", "1"))
    assert own.code == "transfer.to_self" and own.status == 422
    nobody = refused(lambda: send(db, alice, "+44 7400 900999", "1"))
    assert nobody.code == "transfer.recipient_unknown"
    assert refused(lambda: send(db, alice, " ", "1")).code == "transfer.recipient_missing"
    poor = refused(lambda: send(db, alice, BOB, "19999", key="k1"))
    assert poor.code != "transfer.insufficient_balance"  # the daily limit comes first
    fund(db, alice, "0.5")
    db.settings.policy_overrides = {"class_ii": {"balance_per_day": None, "transfer_per_day": None}}
    short = refused(lambda: send(db, alice, BOB, "30000.51"))
    assert short.code == "transfer.limit_per_transfer"
    db.settings.policy_overrides = {
        "class_ii": {
            "balance_per_day": None,
            "transfer_per_day": None,
            "transfer_per_payment": None,
        }
    }
    short = refused(lambda: send(db, alice, BOB, "30000.51"))
    assert short.code == "transfer.insufficient_balance" and short.status == 409
    assert "CNY 30,000.50" in plain(short.localized_message())
    assert balance(db, alice) == cny("30000.50")


def test_both_must_be_verified_and_the_message_says_who(db: Database, clock: FrozenClock) -> None:
    alice = person(db, clock, ALICE, verified=False)
    bob = person(db, clock, BOB)
    carol = person(db, clock, CAROL, verified=False)
    fund(db, alice, "100")
    fund(db, bob, "100")
    sender = refused(lambda: send(db, alice, BOB, "10"))
    assert sender.code == "transfer.sender_not_verified" and sender.status == 403
    assert sender.details == {"who": "sender", "verify": "/me/verify"}
    assert "Verify your real name" in sender.localized_message()
    recipient = refused(lambda: send(db, bob, CAROL, "10"))
    assert recipient.code == "transfer.recipient_not_verified"
    assert recipient.details["who"] == "recipient"
    assert "+44 ******0456 cannot receive transfers yet" in recipient.localized_message()
    with language_scope("zh_Hans"):
        assert "实名认证" in sender.localized_message()
        assert recipient.localized_message().startswith("+44 ******0456 暂时无法收款")
    assert balance(db, bob) == cny("100") and balance(db, carol) == cny("0")


def test_a_restricted_sender_sends_nothing_and_a_frozen_account_neither_sends_nor_receives(
    db: Database, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, bob = pair

    def impose(user: uuid.UUID, kind: str) -> None:
        db.run(lambda tx: restrictions.impose(tx, user, kind, "reviewer", imposed_by="test"))

    impose(bob, "restricted")
    send(db, alice, BOB, "10")  # a restricted account still receives
    assert refused(lambda: send(db, bob, ALICE, "1")).code == "account.restricted"
    impose(bob, "frozen")
    frozen = refused(lambda: send(db, alice, BOB, "10"))
    assert frozen.code == "transfer.recipient_frozen" and frozen.status == 403
    assert refused(lambda: send(db, bob, ALICE, "1")).code == "account.frozen"
    with language_scope("zh_Hans"):
        assert frozen.localized_message() == "收款方账户已被冻结，目前无法收款。"
    assert balance(db, bob) == cny("10")


# --- limits -------------------------------------------------------------------------


def test_limits_per_transfer_per_day_and_count_with_what_remains(
    db: Database, clock: FrozenClock, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = pair
    first = db.run(lambda tx: transfers.allowance(tx, alice))
    assert first.per_transfer == cny("20000") and first.most() == cny("5000")
    left = {line.key: line.left for line in first.remaining}
    assert left == {
        "transfers_per_day": 100,
        "transfer_per_day": cny("20000"),
        "balance_per_day": cny("5000"),
        "balance_per_year": cny("100000"),
    }
    over = refused(lambda: send(db, alice, BOB, "20000.01"))
    assert over.code == "transfer.limit_per_transfer"
    send(db, alice, BOB, "3000")
    day = refused(lambda: send(db, alice, BOB, "2500"))
    assert day.code == "transfer.limit_balance_per_day" and day.status == 403
    assert day.details == {"limit": "balance_per_day", "left": "2000.00"}
    assert "CNY 2,000.00 left today" in plain(day.localized_message())
    with language_scope("zh_Hans"):
        assert "今日还剩 CNY 2,000.00" in plain(day.localized_message())
    clock.advance(hours=24, seconds=1)  # the day is the last 24 hours, as for payments
    send(db, alice, BOB, "2500")
    db.settings.policy_overrides = {"class_ii": {"transfers_per_day": 2}}
    send(db, alice, BOB, "1")
    count = refused(lambda: send(db, alice, BOB, "1"))
    assert count.code == "transfer.limit_count"
    assert db.run(lambda tx: transfers.allowance(tx, alice)).most() == cny("0")


def test_the_balance_limits_count_payments_and_transfers_together(
    db: Database, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = pair
    shop = db.run(lambda tx: payments.create_merchant(tx, "Tea Shop"))
    order = db.run(lambda tx: payments.create_order(tx, shop, "T1", "Tea", cny("3000"))).id
    payments.pay_with_balance(db, alice, order, PIN)
    refusal = refused(lambda: send(db, alice, BOB, "2500"))
    assert refusal.code == "transfer.limit_balance_per_day"
    send(db, alice, BOB, "2000")
    second = db.run(lambda tx: payments.create_order(tx, shop, "T2", "Tea", cny("1"))).id
    paying = refused(lambda: payments.pay_with_balance(db, alice, second, PIN))
    assert paying.code == "policy.balance_day_limit"
    used = db.run(
        lambda tx: limits.limit_usage(tx, alice, policy.rights_for("class_ii", db.settings))
    )
    assert used["balance_per_day"] == cny("5000") and used["transfer_per_day"] == cny("2000")
    db.settings.policy_overrides = {"class_ii": {"balance_per_day": None}}
    year = db.run(lambda tx: transfers.allowance(tx, alice))
    assert {line.key: line.left for line in year.remaining}["balance_per_year"] == cny("95000")


def test_the_year_limit_refuses_with_what_is_left(
    db: Database, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = pair
    db.settings.policy_overrides = {
        "class_ii": {"balance_per_day": None, "balance_per_year": "1000 CNY"}
    }
    send(db, alice, BOB, "600")
    year = refused(lambda: send(db, alice, BOB, "500"))
    assert year.code == "transfer.limit_balance_per_year"
    assert "CNY 400.00 left this year" in plain(year.localized_message())


def test_the_level_page_lists_the_transfer_limits() -> None:
    rights = policy.rights_for("class_ii", Settings())
    lines = {line.key: line for line in policy.describe(rights, {"transfers_per_day": 3})}
    assert lines["transfer_per_payment"].value.replace("\u00a0", " ") == "CNY 20,000.00"
    assert lines["transfers_per_day"].value == "100" and lines["transfers_per_day"].used
    unverified = policy.describe(policy.rights_for("unverified", Settings()))
    assert not {line.key: line for line in unverified}["transfer_per_day"].allowed
    with pytest.raises(ValueError, match="whole number"):
        policy.rights_for(
            "class_ii", Settings(policy_overrides={"class_ii": {"transfers_per_day": "x"}})
        )


# --- confirmation and retries ----------------------------------------------------------


def test_the_payment_password_confirms_and_a_wrong_one_moves_nothing(
    db: Database, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, bob = pair
    wrong = refused(lambda: send(db, alice, BOB, "10", pin="111111"))
    assert wrong.code == "paypw.mismatch"
    assert balance(db, bob) == cny("0")
    typo = refused(lambda: send(db, alice, BOB, "1.001", pin="111111"))
    assert typo.code == "transfer.amount_precision"  # checked before the password's tries
    assert db.run(lambda tx: security.status(tx, alice)).payment_locked_until is None


def test_a_retry_with_the_same_key_returns_the_first_transfer(
    db: Database, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, bob = pair
    first = send(db, alice, BOB, "4000", note="Rent", key="rent-2026-11")
    again = send(db, alice, "+447400900123", "4000.00", note=" Rent ", key="rent-2026-11")
    assert again.id == first.id and again.replayed and not first.replayed
    assert balance(db, bob) == cny("4000")
    # The first try used most of today's limit; the retry still gets its answer.
    assert send(db, alice, BOB, "4000", note="Rent", key="rent-2026-11").id == first.id
    other = refused(lambda: send(db, alice, BOB, "40", note="Rent", key="rent-2026-11"))
    assert other.code == "idempotency.mismatch" and other.status == 409
    bad_key = refused(lambda: send(db, alice, BOB, "1", key="not a key!"))
    assert bad_key.code == "transfer.idempotency_key"
    assert refused(lambda: send(db, alice, BOB, "1", key="x" * 81)).code == bad_key.code
    rows = db.run(lambda tx: list(tx.session.scalars(select(PersonTransfer))))
    assert len(rows) == 1 and balance(db, alice) == cny("26000")


def test_a_note_is_kept_short_and_shown_to_both(
    db: Database, clock: FrozenClock, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, bob = pair
    long = refused(lambda: send(db, alice, BOB, "1", note="x" * 51))
    assert long.code == "transfer.note_too_long" and "50" in long.localized_message()
    done = send(db, alice, BOB, "1", note="  Lunch   at  noon ")
    assert done.note == "Lunch at noon"
    assert db.run(lambda tx: transfers.user_transfer(tx, bob, done.id)).note == "Lunch at noon"
    stranger = person(db, clock, CAROL)
    missing = refused(lambda: db.run(lambda tx: transfers.user_transfer(tx, stranger, done.id)))
    assert missing.code == "transfer.not_found"


def test_the_request_money_link_prefills_the_form(
    db: Database, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    _, bob = pair
    path = db.run(lambda tx: transfers.request_link(tx, bob, "88.5", "Tickets & snacks"))
    assert path == "/wallet/transfer?to=%2B447400900123&amount=88.50&note=Tickets%20%26%20snacks"
    assert "amount" not in db.run(lambda tx: transfers.request_link(tx, bob))
    error = refused(lambda: db.run(lambda tx: transfers.request_link(tx, bob, by_email=True)))
    assert error.code == "transfer.no_email"


# --- over HTTP ------------------------------------------------------------------------


def sign_in(client: TestClient, db: Database, clock: FrozenClock, number: str) -> dict[str, str]:
    """A bearer token for an existing account, by SMS code over the API."""
    clock.advance(seconds=61)  # past the last code's resend cooldown
    phone = {"country": "GB", "number": number}
    sent = client.post("/api/v1/auth/sms-codes", json={**phone, "purpose": "login"})
    assert sent.status_code == 201, sent.text
    code = last_code(db, parse_mobile(number, "GB"))
    signed = client.post("/api/v1/auth/sessions", json={**phone, "purpose": "login", "code": code})
    assert signed.status_code == 201, signed.text
    return {"Authorization": f"Bearer {signed.json()['token']}"}


def test_the_api_quotes_sends_once_per_key_and_lists(
    client: TestClient, db: Database, clock: FrozenClock, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice_auth = sign_in(client, db, clock, ALICE)
    allowance = client.get("/api/v1/wallet/transfers/allowance", headers=alice_auth).json()
    assert allowance["most_now"] == {"currency": "CNY", "value": "5000.00"}
    body = {"to": "+447400900123", "amount": "12.30", "note": "Coffee"}
    quote = client.post("/api/v1/wallet/transfers/quote", headers=alice_auth, json=body)
    assert quote.status_code == 200, quote.text
    assert quote.json()["recipient"]["shown"] == "+44 ******0123 (verified)"
    paying = {**body, "payment_password": PIN}
    keyless = client.post("/api/v1/wallet/transfers", headers=alice_auth, json=paying)
    assert keyless.status_code == 422 and keyless.json()["code"] == "transfer.idempotency_key"
    keyed = {**alice_auth, "Idempotency-Key": "coffee-1"}
    first = client.post("/api/v1/wallet/transfers", headers=keyed, json=paying)
    assert first.status_code == 201, first.text
    again = client.post("/api/v1/wallet/transfers", headers=keyed, json=paying)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and again.json()["replayed"] is True
    changed = client.post(
        "/api/v1/wallet/transfers", headers=keyed, json={**paying, "amount": "99"}
    )
    assert changed.status_code == 409 and changed.json()["code"] == "idempotency.mismatch"
    zero = client.post(
        "/api/v1/wallet/transfers",
        headers={**keyed, "Idempotency-Key": "z", "Accept-Language": "zh-CN"},
        json={**paying, "amount": "0"},
    )
    assert zero.status_code == 422 and zero.json()["message"] == "转账金额须大于零。"
    bob_auth = sign_in(client, db, clock, BOB)
    listed = client.get("/api/v1/wallet/transfers", headers=bob_auth).json()
    assert [(t["direction"], t["amount"]["value"], t["note"]) for t in listed] == [
        ("received", "12.30", "Coffee")
    ]
    one = client.get(f"/api/v1/wallet/transfers/{first.json()['id']}", headers=bob_auth)
    assert one.json()["counterparty"]["phone"] == "+44 ******3456"
    link = client.get(
        "/api/v1/wallet/transfers/request-link", headers=bob_auth, params={"amount": "5"}
    )
    assert link.json()["path"] == "/wallet/transfer?to=%2B447400900123&amount=5.00"


def test_the_pages_send_money_show_it_to_both_and_export_it(
    client: TestClient, db: Database, clock: FrozenClock, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    _web_sign_in(client, db, clock, ALICE)
    form = client.get("/wallet/transfer", params={"to": "+447400900123", "amount": "20"})
    assert 'value="+447400900123"' in form.text and 'value="20"' in form.text
    assert "CNY 5,000.00" in plain(form.text)  # what is left today
    token = _csrf(form.text)
    typed = {"csrf": token, "to": "+447400900123", "amount": "20", "note": "Taxi"}
    review = client.post("/wallet/transfer/review", data=typed)
    assert review.status_code == 200
    assert "+44 ******0123 (verified)" in review.text
    key = re.search(r'name="key" value="([^"]+)"', review.text)
    assert key
    wrong = client.post(
        "/wallet/transfer", data={**typed, "key": key.group(1), "payment_password": "111111"}
    )
    assert wrong.status_code == 403 and "Wrong payment password" in wrong.text
    assert f'value="{key.group(1)}"' in wrong.text  # the same confirmation, the same key
    confirmed = {**typed, "key": key.group(1), "payment_password": PIN}
    done = client.post("/wallet/transfer", data=confirmed)
    assert done.status_code == 200 and "Money sent." in done.text
    assert '<span class="amount">−CNY 20.00</span>' in plain(done.text)
    twice = client.post("/wallet/transfer", data=confirmed)  # a double submit
    assert twice.url == done.url
    history = client.get("/wallet/history")
    assert "To +44 ******0123 (verified)" in history.text and "Taxi" in history.text
    exported = client.get("/wallet/history.csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert [row[8] for row in rows[1:]] == ["transfer_sent"]
    assert rows[1][3] == "Taxi" and rows[1][4] == "20.00"
    bad = client.post("/wallet/transfer/review", data={**typed, "amount": "-1"})
    assert bad.status_code == 422 and "cannot be negative" in bad.text
    request_page = client.get("/wallet/request", params={"amount": "9.9", "note": "Tea"})
    assert "/wallet/transfer?to=%2B447911123456&amp;amount=9.90&amp;note=Tea" in request_page.text
    assert balance(db, pair[1]) == cny("20")
    client.post("/language", data={"csrf": token, "language": "zh_Hans", "next": "/wallet"})
    chinese = client.post("/wallet/transfer/review", data={**typed, "amount": "0.001"})
    assert "人民币金额最多两位小数（分）；0.001 超出了。" in chinese.text
    assert "可转金额" in chinese.text


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match
    return match.group(1)


def _web_sign_in(client: TestClient, db: Database, clock: FrozenClock, number: str) -> None:
    """Sign in on the pages (login by SMS code), as a person does."""
    clock.advance(seconds=61)  # past the last code's resend cooldown
    token = _csrf(client.get("/").text)
    phone = e164(number)
    sent = client.post("/start", data={"csrf": token, "country": "GB", "number": number})
    assert sent.url.path == "/code", sent.text[:300]
    code = last_code(db, parse_mobile(number, "GB"))
    done = client.post(
        "/code", data={"csrf": token, "phone": phone, "purpose": "login", "code": code}
    )
    assert done.url.path == "/home", done.text[:300]


def test_the_sms_is_in_the_recipients_language(
    db: Database, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, bob = pair
    db.run(lambda tx: identity.set_language(tx, bob, "zh_Hans"))
    send(db, alice, BOB, "8")
    assert sms_to(db, BOB)[0] == "【钱包】+44 ******3456 向您转账 CNY 8.00。打开“钱包”查看。"


def test_looking_up_numbers_that_name_no_account_is_throttled(
    db: Database, clock: FrozenClock, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, bob = pair
    db.settings.transfer_unknown_recipients_per_hour = 3
    for last in range(3):
        missed = refused(lambda last=last: send(db, alice, f"+44 7400 90099{last}", "1"))
        assert missed.code == "transfer.recipient_unknown"
    waiting = refused(lambda: send(db, alice, BOB, "1"))  # even a real one, for a while
    assert waiting.code == "transfer.too_many_unknown" and waiting.status == 429
    assert waiting.retry_after is not None and 0 < waiting.retry_after <= 3600
    fund(db, alice, "1")
    clock.advance(seconds=3601)
    send(db, alice, BOB, "1")
    assert balance(db, bob) == cny("1")


def test_a_request_money_link_opened_signed_out_comes_back_after_login(
    client: TestClient,
) -> None:
    link = "/wallet/transfer?to=%2B447400900123&amount=88.50&note=Tickets"
    first = client.get(link)
    assert first.url.path == "/"  # sent to log in, the link remembered
    token = csrf(client)
    number = {"csrf": token, "country": "GB", "number": "07911 123456"}
    client.post("/start", data=number)
    client.post("/signup", data={**number, "agree": "yes", "agreement_version": AGREEMENT})
    code = outbox_code(client, "+447911123456")
    done = client.post(
        "/code", data={"csrf": token, "phone": "+447911123456", "purpose": "signup", "code": code}
    )
    assert done.url.path == "/wallet/transfer" and "88.50" in done.text
    assert client.get("/home").url.path == "/home"  # once only


def test_control_characters_are_refused_in_the_note_and_the_recipient(
    db: Database, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = pair
    fund(db, alice, "5")
    nul = refused(lambda: send(db, alice, BOB, "1", note="a\u0000b"))
    assert nul.code == "transfer.note_invalid" and nul.status == 422
    bidi = refused(lambda: send(db, alice, BOB, "1", note="refund \u202egnp.exe"))
    assert bidi.code == "transfer.note_invalid"
    to = refused(lambda: send(db, alice, "x\u0000@example.com", "1"))
    assert to.code == "transfer.recipient_invalid"


def test_the_money_goes_only_to_the_account_the_sender_saw(
    db: Database, clock: FrozenClock, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, bob = pair
    carol = person(db, clock, CAROL)
    before = (balance(db, alice), balance(db, bob))
    changed = refused(
        lambda: transfers.send(
            db, alice, BOB, "1", "", PIN, uuid.uuid4().hex, expected_recipient=carol
        )
    )
    assert changed.code == "transfer.recipient_changed"
    assert (balance(db, alice), balance(db, bob)) == before  # nothing sent
    sent = transfers.send(db, alice, BOB, "1", "", PIN, "k-seen", expected_recipient=bob)
    assert sent.counterparty_phone == "+44 ******0123"


def test_a_retry_is_answered_from_its_key_whatever_changed_since(
    db: Database, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = pair
    fund(db, alice, "5")
    first = send(db, alice, BOB, "1", key="k-retry")
    db.settings.transfer_unknown_recipients_per_hour = 1
    refused(lambda: send(db, alice, "+44 7400 900999", "1"))  # the look-ups are now held
    again = send(db, alice, BOB, "1", key="k-retry")
    assert again.id == first.id and again.replayed
    other = refused(lambda: send(db, alice, BOB, "2", key="k-retry"))
    assert other.code == "idempotency.mismatch"


def test_the_export_does_not_let_a_note_run_as_a_spreadsheet_formula(
    db: Database, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    from qianbao.wallet import web as wallet_web

    alice, bob = pair
    send(db, alice, BOB, "1", note='=HYPERLINK("http://x.example","Refund")')
    views = db.run(lambda tx: transfers.history(tx, bob, 10, {}))
    (row,) = [wallet_web._spreadsheet_safe(cells) for cells in transfers.csv_rows(views)]
    assert row[3] == '\'=HYPERLINK("http://x.example","Refund")'
    assert row[4] == "1.00"  # numbers stay numbers
    assert wallet_web._spreadsheet_safe(["-5.00", "-x", "@SUM(A1)", "+1", "plain"]) == [
        "-5.00",
        "'-x",
        "'@SUM(A1)",
        "'+1",
        "plain",
    ]


def test_the_level_page_counts_the_transfers_sent_today(
    db: Database, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    from qianbao.standing import standing

    alice, _ = pair
    send(db, alice, BOB, "1")
    send(db, alice, BOB, "2")
    rights = db.run(lambda tx: standing(tx, alice)).rights
    used = db.run(lambda tx: limits.limit_usage(tx, alice, rights))
    assert used["transfers_per_day"] == 2 and used["transfer_per_day"] == cny("3")
    lines = {line.key: line for line in policy.describe(rights, used)}
    assert lines["transfers_per_day"].used is not None and "2" in lines["transfers_per_day"].used


def test_a_key_reused_for_another_recipient_with_the_same_amount_is_refused(
    db: Database, clock: FrozenClock, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    # The finding: the same key, the same amount, another person was answered
    # "replayed" with the first transfer. The key names the whole request.
    alice, bob = pair
    carol = person(db, clock, CAROL)
    first = send(db, alice, BOB, "10", key="k-one")
    other = refused(lambda: send(db, alice, CAROL, "10", key="k-one"))
    assert (other.code, other.status) == ("idempotency.mismatch", 409)
    noted = refused(lambda: send(db, alice, BOB, "10", note="Lunch", key="k-one"))
    assert noted.code == "idempotency.mismatch"
    assert send(db, alice, e164(BOB), "10.00", key="k-one").id == first.id  # same request
    assert (balance(db, bob), balance(db, carol)) == (cny("10"), cny("0"))
