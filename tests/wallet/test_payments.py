"""Merchant payments through the service: orders, the cashier's rules (policy), paying by
balance and by foreign card (fee, currency, 3-D Secure), refunds the way the money came,
held money released on verification, and retries that move nothing twice."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.errors import QianbaoError
from qianbao.funding import connectors, foreign_cards
from qianbao.identity import security
from qianbao.identity import service as identity
from qianbao.identity.phone import parse_mobile
from qianbao.money import Money
from qianbao.wallet import limits
from qianbao.wallet.ledger import audit as ledger_audit
from qianbao.wallet.ledger import service as ledger
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments
from tests.helpers import HOME, last_code
from tests.identity.test_security import security_code
from tests.verification.flow_helpers import new_person

PIN = "802417"
VISA_USD = "4000 0000 0084 0019"
MASTERCARD_EUR = "5555 5500 0027 6016"
VISA_DECLINE = "4000 0000 0084 0027"


def refused(attempt: Callable[[], object]) -> QianbaoError:
    with pytest.raises(QianbaoError) as caught:
        attempt()
    return caught.value


def cny(major: str) -> Money:
    return Money.of("CNY", major)


@pytest.fixture
def shop(db: Database) -> uuid.UUID:
    return db.run(lambda tx: payments.create_merchant(tx, "Demo Shop"))


def buyer(db: Database, clock: FrozenClock, number: str = "07911 123456") -> uuid.UUID:
    person = new_person(db, number)
    security.set_payment_password(db, person.id, PIN, sms_code=security_code(db, person.id, clock))
    return person.id


def order(db: Database, shop: uuid.UUID, amount: str, number: str = "T1") -> uuid.UUID:
    return db.run(lambda tx: payments.create_order(tx, shop, number, "A teapot", cny(amount))).id


def fund(db: Database, user_id: uuid.UUID, amount: str) -> None:
    """Money arriving in a balance from outside (a bank top-up, in a later issue)."""

    def move(tx: object) -> None:
        from qianbao.db import Tx

        assert isinstance(tx, Tx)
        payments.claim_wallets(tx, str(user_id), payments.SYSTEM)
        source = payments.account_of(tx, payments.SYSTEM, "bank_clearing")
        target = payments.account_of(tx, str(user_id), "user_balance")
        ledger.transfer(tx, f"fund:{uuid.uuid4()}", source, target, cny(amount))

    db.run(move)


def verify(db: Database, user_id: uuid.UUID) -> None:
    db.run(lambda tx: identity.set_verification_level(tx, user_id, "passport_face"))


def add_card(db: Database, user_id: uuid.UUID, number: str = VISA_USD) -> uuid.UUID:
    return foreign_cards.add_foreign_card(db, user_id, number, "12/30", "123", "ADA LOVELACE").id


def test_an_unverified_person_pays_by_card_not_by_balance(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    user = buyer(db, clock)
    fund(db, user, "500")
    first = order(db, shop, "300.00")
    cashier = db.run(lambda tx: payments.cashier(tx, user, first))
    assert not cashier.can_use_balance and cashier.balance_refusal
    error = refused(lambda: payments.pay_with_balance(db, user, first, PIN))
    assert error.code == "policy.balance_not_allowed" and error.status == 403
    card = add_card(db, user)
    quote = db.run(lambda tx: payments.cashier(tx, user, first)).quotes[0]
    assert quote.fee == cny("9.00") and quote.total == cny("309.00")  # 3% above CNY 200
    paid = payments.pay_with_card(db, user, first, card, PIN)
    assert not isinstance(paid, str)
    assert paid.status == "TRADE_SUCCESS" and paid.fee == cny("9.00")
    assert paid.card_amount is not None and paid.card_amount.currency == "USD"
    small = order(db, shop, "200.00", "T2")
    assert payments.pay_with_card(db, user, small, card, PIN).fee == cny("0")  # type: ignore[union-attr]


def test_a_verified_person_pays_by_balance_once_whatever_the_retries(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    user = buyer(db, clock)
    verify(db, user)
    fund(db, user, "100")
    first = order(db, shop, "60.00")
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(
            pool.map(lambda _: payments.pay_with_balance(db, user, first, PIN), range(6))
        )
    assert {r.status for r in results} == {"TRADE_SUCCESS"}
    assert db.run(lambda tx: payments.wallet(tx, user)).balance == cny("40.00")
    second = order(db, shop, "60.00", "T2")
    error = refused(lambda: payments.pay_with_balance(db, user, second, PIN))
    assert error.code == "ledger.insufficient_funds"
    wrong = refused(lambda: payments.pay_with_balance(db, user, second, "111112"))
    assert wrong.code.startswith("paypw.")


def test_refunds_go_back_the_way_they_came_and_never_exceed_the_payment(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    user = buyer(db, clock)
    verify(db, user)
    fund(db, user, "100")
    by_balance = order(db, shop, "80.00")
    payments.pay_with_balance(db, user, by_balance, PIN)
    part = refunds.refund(db, shop, by_balance, "R1", cny("30.00"))
    assert part.destination == "balance"
    again = refunds.refund(db, shop, by_balance, "R1", cny("30.00"))  # a retry
    assert again.id == part.id
    assert refused(lambda: refunds.refund(db, shop, by_balance, "R1", cny("31.00"))).code == (
        "idempotency.mismatch"
    )
    assert refused(lambda: refunds.refund(db, shop, by_balance, "R2", cny("50.01"))).code == (
        "refund.too_much"
    )
    refunds.refund(db, shop, by_balance, "R2", cny("50.00"))
    assert db.run(lambda tx: payments.get_order(tx, by_balance)).status == "TRADE_CLOSED"
    assert db.run(lambda tx: payments.wallet(tx, user)).balance == cny("100.00")

    card = add_card(db, user, MASTERCARD_EUR)
    by_card = order(db, shop, "1000.00", "T2")
    payments.pay_with_card(db, user, by_card, card, PIN)
    half = refunds.refund(db, shop, by_card, "R1", cny("500.00"))
    assert half.destination == "foreign_card" and half.fee_refunded == cny("15.00")
    rest = refunds.refund(db, shop, by_card, "R2", cny("500.00"))
    assert rest.fee_refunded == cny("15.00")  # the whole fee comes back with the whole amount


def test_refunds_to_an_unverified_person_are_held_until_verification(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    """The comment thread's problem: a refund stuck in a balance the person cannot use.
    Here it is held, visible, and released the moment they verify."""
    user = buyer(db, clock)
    verify(db, user)
    fund(db, user, "50")
    paid = order(db, shop, "50.00")
    payments.pay_with_balance(db, user, paid, PIN)
    db.run(lambda tx: identity.set_verification_level(tx, user, "unverified"))  # e.g. revoked
    refunds.refund(db, shop, paid, "R1", cny("50.00"))
    view = db.run(lambda tx: payments.wallet(tx, user))
    assert view.held == cny("50.00") and view.balance == cny("0.00")
    verify(db, user)
    after = db.run(lambda tx: payments.wallet(tx, user))
    assert after.held == cny("0.00") and after.balance == cny("50.00")


def test_card_declines_and_3d_secure(db: Database, clock: FrozenClock, shop: uuid.UUID) -> None:
    user = buyer(db, clock)
    declined = add_card(db, user, VISA_DECLINE)
    first = order(db, shop, "20.00")
    assert refused(lambda: payments.pay_with_card(db, user, first, declined, PIN)).code == (
        "card.declined"
    )
    assert db.run(lambda tx: payments.get_order(tx, first)).status == "WAIT_BUYER_PAY"

    checked = add_checked_card(db, user)
    challenge = payments.pay_with_card(db, user, first, checked, PIN)
    assert isinstance(challenge, str) and "/sandbox/3ds/" in challenge
    early = refused(lambda: payments.finish_card_payment(db, user, first))
    assert early.code == "card.challenge_failed"
    authorization_id = challenge.split("/sandbox/3ds/")[1].split("?")[0]
    connectors.network_for(db).complete_challenge(authorization_id, "1234")
    paid = payments.finish_card_payment(db, user, first)
    assert paid.status == "TRADE_SUCCESS" and paid.card_amount is not None
    assert paid.card_amount.currency == "EUR"


CHECKED_CARD = "5400 0000 0027 6050"  # its issuer asks for 3-D Secure, at linking too


def add_checked_card(db: Database, user: uuid.UUID) -> uuid.UUID:
    pending = foreign_cards.add_foreign_card(
        db, user, CHECKED_CARD, "12/30", "123", "Ann Lee", challenge_return_url=lambda c: "/x"
    )
    assert pending.challenge_url is not None and "return_to=%2Fx" in pending.challenge_url
    usable = [card.id for card in db.run(lambda tx: payments.wallet(tx, user)).cards]
    assert pending.id not in usable  # not before the check
    authorization_id = pending.challenge_url.split("/sandbox/3ds/")[1].split("?")[0]
    connectors.network_for(db).complete_challenge(authorization_id, "1234")
    card = foreign_cards.finish_card_verification(db, user, pending.id)
    assert card.id == pending.id and card.challenge_url is None
    return card.id


def test_a_card_whose_issuer_checks_it_is_usable_only_after_the_check(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    user = buyer(db, clock)
    pending = foreign_cards.add_foreign_card(db, user, CHECKED_CARD, "12/30", "123", "Ann Lee")
    assert pending.challenge_url is not None
    first = order(db, shop, "20.00")
    unusable = refused(lambda: payments.pay_with_card(db, user, first, pending.id, PIN))
    assert unusable.code == "card.not_found"
    authorization_id = pending.challenge_url.split("/sandbox/3ds/")[1]
    with pytest.raises(QianbaoError):
        connectors.network_for(db).complete_challenge(authorization_id, "0000")  # wrong
    failed = refused(lambda: foreign_cards.finish_card_verification(db, user, pending.id))
    assert failed.code == "card.verification_failed"
    gone = refused(lambda: foreign_cards.finish_card_verification(db, user, pending.id))
    assert gone.code == "card.not_found"  # dropped: add it again
    again = foreign_cards.add_foreign_card(db, user, CHECKED_CARD, "12/30", "123", "Ann Lee")
    assert again.id != pending.id and again.challenge_url is not None
    abandoned = refused(lambda: foreign_cards.finish_card_verification(db, user, again.id))
    assert abandoned.code == "card.verification_failed"  # came back without answering
    assert db.run(lambda tx: payments.wallet(tx, user)).cards == []
    card_id = add_checked_card(db, user)
    assert [c.id for c in db.run(lambda tx: payments.wallet(tx, user)).cards] == [card_id]


def test_unpaid_orders_close_after_their_timeout(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    waiting = order(db, shop, "20.00")
    clock.advance(minutes=16)
    assert db.run(payments.close_expired_orders) == 1
    assert db.run(lambda tx: payments.get_order(tx, waiting)).status == "TRADE_CLOSED"


def test_held_money_is_released_by_the_verification_itself(
    db: Database, clock: FrozenClock, shop: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qianbao.verification import liveness
    from qianbao.verification import service as verification
    from tests.verification.flow_helpers import CHALLENGE, accept_synthetic_clips, clip, reading

    user = buyer(db, clock)
    verify(db, user)
    fund(db, user, "30")
    paid = order(db, shop, "30.00")
    payments.pay_with_balance(db, user, paid, PIN)
    db.run(lambda tx: identity.set_verification_level(tx, user, "unverified"))
    refunds.refund(db, shop, paid, "R1", cny("30.00"))
    monkeypatch.setattr(liveness, "new_challenge", lambda rng=None: CHALLENGE)
    accept_synthetic_clips(db.settings)
    case = db.run(lambda tx: verification.start_case(tx, user))
    db.run(lambda tx: verification.record_page(tx, user, case.id, reading()))
    db.run(lambda tx: verification.confirm_document(tx, user, case.id))
    db.run(lambda tx: verification.issue_challenge(tx, user, case.id))
    assert verification.submit_face(db, user, case.id, clip("astronaut")).status == "verified"

    def held_and_balance(tx: object) -> tuple[int, int]:
        from qianbao.db import Tx

        assert isinstance(tx, Tx)
        key = str(user)
        held = ledger.balance(tx, payments.account_of(tx, key, "user_held")).posted
        return held, ledger.balance(tx, payments.account_of(tx, key, "user_balance")).posted

    assert db.run(held_and_balance) == (0, 3000)  # before any page shows the wallet


def test_a_mainland_bank_card_pays_without_fee_and_takes_refunds_back(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    import re

    from qianbao.funding import service as funding
    from qianbao.notify import service as notify

    user = buyer(db, clock)
    holder = funding.CardHolder(
        "6222 0200 0000 0000 018", "JOHN SMITH", "912345678", "+447911000001"
    )
    started = funding.start_check(db, user, holder, None)
    text = db.run(lambda tx: notify.read_outbox(tx, "+447911000001", 1))[0].body
    code = re.search(r"(?<!\d)(\d{6})(?!\d)", text)
    assert code
    card = funding.confirm_check(db, user, started.id, code.group(1))
    order_id = order(db, shop, "300.00")
    quote = db.run(lambda tx: payments.cashier(tx, user, order_id))
    assert [c.last4 for c in quote.bank_cards] == ["0018"]
    paid = payments.pay_with_bank_card(db, user, quote.order.id, card.id, PIN)
    assert (paid.status, paid.source, paid.fee) == ("TRADE_SUCCESS", "bank_card", cny("0"))
    again = payments.pay_with_bank_card(db, user, quote.order.id, card.id, PIN)  # a retry
    assert again.status == "TRADE_SUCCESS"
    bank = funding.connector(db)
    token = db.run(lambda tx: funding.bank_token(tx, user, card.id))
    left = bank.debit(token, cny("1.00"), idempotency_key="probe")
    assert left.amount == cny("1.00")  # the account still pays: 50,000 - 300 - 1
    back = refunds.refund(db, shop, quote.order.id, "R1", cny("100.00"))
    assert back.destination == "bank_card"
    assert refunds.refund(db, shop, quote.order.id, "R1", cny("100.00")).id == back.id
    assert db.run(ledger_audit.audit).sound


def test_yearly_limits_count_the_calendar_year_in_beijing() -> None:
    from datetime import UTC, datetime

    new_years_eve_utc = datetime(2026, 12, 31, 20, 0, tzinfo=UTC)  # 04:00 on 1 Jan in Beijing
    assert limits.year_start(new_years_eve_utc) == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    still_2026 = datetime(2026, 12, 31, 15, 59, tzinfo=UTC)  # 23:59 on 31 Dec in Beijing
    assert limits.year_start(still_2026) == datetime(2025, 12, 31, 16, 0, tzinfo=UTC)


def test_a_paid_order_is_unknown_to_anyone_but_its_buyer_and_payer(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    owner = buyer(db, clock)
    verify(db, owner)
    fund(db, owner, "100")
    paid = order(db, shop, "60.00")
    payments.pay_with_balance(db, owner, paid, PIN)
    assert db.run(lambda tx: payments.cashier(tx, owner, paid)).order.status == "TRADE_SUCCESS"
    stranger = new_person(db, "07400 900123").id
    clock.advance(seconds=61)  # past the sign-up code's resend cooldown
    security.send_security_code(db, stranger, HOME, "en")
    code = last_code(db, parse_mobile("07400 900123", "GB"))
    security.set_payment_password(db, stranger, PIN, sms_code=code)
    verify(db, stranger)
    fund(db, stranger, "100")
    unknown = uuid.uuid4()
    for order_id in (paid, unknown):  # the same answer: nothing says the order exists
        seen = refused(
            lambda order_id=order_id: db.run(lambda tx: payments.cashier(tx, stranger, order_id))
        )
        assert (seen.code, seen.status) == ("order.not_found", 404)
        pay = refused(
            lambda order_id=order_id: payments.pay_with_balance(db, stranger, order_id, PIN)
        )
        assert (pay.code, pay.status) == ("order.not_found", 404)
    # An order nobody has paid yet is open to whoever holds its id (the shop's link).
    waiting = order(db, shop, "10.00", "T2")
    assert (
        db.run(lambda tx: payments.cashier(tx, stranger, waiting)).order.status == "WAIT_BUYER_PAY"
    )


@pytest.mark.parametrize(
    "typed", ["1e30", "1E2", "1_000", "NaN", "Infinity", "12345678901234.00", "1.001", "-5", ""]
)
def test_an_amount_is_digits_with_at_most_two_decimals(typed: str) -> None:
    error = refused(lambda: Money.parse(typed))
    assert (error.code, error.status) == ("amount.format", 422)


def test_a_typed_amount_is_read_exactly() -> None:
    assert Money.parse(" 288.5 ") == cny("288.50")
    assert Money.parse("100") == cny("100.00")
