"""Tour Pass: who may open one, the top-up limits, cap and fee, spending it at the cashier,
a merchant's refund coming back to it, and what is left going back to the cards at expiry
or closing, newest top-up first, each part exactly once whatever the crashes and the
concurrency. On SQLite and PostgreSQL; the ledger audits sound after each story."""

from __future__ import annotations

import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from threading import Event, Lock
from typing import Any

import pytest
from sqlalchemy import select

from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.errors import QianbaoError
from qianbao.funding import card_network, connectors
from qianbao.i18n import language_scope
from qianbao.identity import service as identity
from qianbao.money import Money
from qianbao.notify.service import read_outbox
from qianbao.standing import standing
from qianbao.wallet import limits
from qianbao.wallet.ledger import audit as ledger_audit
from qianbao.wallet.ledger import service as ledger
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments
from qianbao.wallet.tour_pass import service as tour_pass
from qianbao.wallet.tour_pass.models import TourPass, TourPassRefund, TourPassTopUp
from tests.verification.flow_helpers import new_person
from tests.wallet.test_payments import (
    MASTERCARD_EUR,
    PIN,
    VISA_DECLINE,
    add_card,
    add_checked_card,
    buyer,
    cny,
    order,
    refused,
    verify,
)


@pytest.fixture
def shop(db: Database) -> uuid.UUID:
    return db.run(lambda tx: payments.create_merchant(tx, "Tea House"))


def visitor(db: Database, clock: FrozenClock) -> uuid.UUID:
    """A person verified by passport, with a payment password and an open pass."""
    user = buyer(db, clock)
    verify(db, user)
    tour_pass.open_pass(db, user)
    return user


def top(
    db: Database, user: uuid.UUID, card: uuid.UUID, amount: str, key: str | None = None
) -> tour_pass.TopUpView:
    return tour_pass.top_up(db, user, card, cny(amount), PIN, key or uuid.uuid4().hex)


def current(db: Database, user: uuid.UUID) -> tour_pass.PassView:
    found = db.run(lambda tx: tour_pass.overview(tx, user)).current
    assert found is not None
    return found


def system_balance(db: Database, kind: ledger.AccountKind) -> int:
    def read(tx: Tx) -> int:
        payments.claim_wallets(tx, payments.SYSTEM)
        return ledger.balance(tx, payments.account_of(tx, payments.SYSTEM, kind)).posted

    return db.run(read)


def sound(db: Database) -> None:
    audit = db.run(ledger_audit.audit)
    assert audit.sound, audit


def card_parts(db: Database, user: uuid.UUID) -> list[tuple[str, int, str]]:
    """(card last 4, CNY minor, state) of each part sent back, in the order written."""

    def read(tx: Tx) -> list[tuple[str, int, str]]:
        from qianbao.funding.models import ForeignCard

        rows = tx.session.execute(
            select(ForeignCard.last4, TourPassRefund.amount, TourPassRefund.state)
            .join(TourPassTopUp, TourPassTopUp.id == TourPassRefund.top_up_id)
            .join(ForeignCard, ForeignCard.id == TourPassTopUp.card_id)
            .join(TourPass, TourPass.id == TourPassRefund.pass_id)
            .where(TourPass.user_id == user)
            # In the order they were written: by time, then newest top-up first (the
            # frozen clock gives the parts of one run the same time).
            .order_by(TourPassRefund.created_at, TourPassTopUp.completed_at.desc())
        ).all()
        return [(row[0], int(row[1]), str(row[2])) for row in rows]

    return db.run(read)


# --- who may open one ----------------------------------------------------------------------


def test_only_a_person_verified_by_passport_may_open_a_pass(
    db: Database, clock: FrozenClock
) -> None:
    user = buyer(db, clock)
    error = refused(lambda: tour_pass.open_pass(db, user))
    assert error.code == "policy.tour_pass_not_allowed" and error.status == 403
    assert "passport" in error.localized_message()
    with language_scope("zh_Hans"):
        assert "护照" in error.localized_message()

    # A Class II person verified by a mainland bank card alone has no passport.
    db.run(lambda tx: identity.set_verification_level(tx, user, "bank_card"))
    assert refused(lambda: tour_pass.open_pass(db, user)).code == "policy.tour_pass_not_allowed"
    refusal = db.run(lambda tx: tour_pass.overview(tx, user)).refusal
    assert refusal is not None

    verify(db, user)
    opened = tour_pass.open_pass(db, user)
    assert opened.state == "open" and opened.balance == cny("0")
    assert opened.expires_at - opened.opened_at == timedelta(days=90)
    assert tour_pass.open_pass(db, user).id == opened.id  # opening twice opens one
    assert db.run(lambda tx: tour_pass.overview(tx, user)).refusal is None


def test_numbers_from_the_mainland_hong_kong_macao_and_taiwan_are_refused_by_setting(
    db: Database,
) -> None:
    person = new_person(db, "+852 5123 4567")
    db.run(lambda tx: identity.set_verification_level(tx, person.id, "passport_chip"))
    error = refused(lambda: tour_pass.open_pass(db, person.id))
    assert error.code == "tour_pass.phone_region" and "HK" in error.localized_message()
    with language_scope("zh_Hans"):
        assert "HK" in error.localized_message() and "手机号" in error.localized_message()
    db.settings.tour_pass_refused_phone_regions = []  # TourCard (2023+) admits them
    assert tour_pass.open_pass(db, person.id).state == "open"


# --- top-ups -------------------------------------------------------------------------------


def test_top_up_limits_cap_and_the_fee_shown_before_confirming(
    db: Database, clock: FrozenClock
) -> None:
    user = visitor(db, clock)
    card = add_card(db, user)
    for amount in ("99.99", "2000.01"):

        def attempt(amount: str = amount) -> object:
            return top(db, user, card, amount)

        error = refused(attempt)
        assert error.code == "tour_pass.top_up_range"
        assert cny("100").format() in error.localized_message()
    assert refused(lambda: Money.parse("100.001")).code == "amount.format"

    quote = db.run(lambda tx: tour_pass.quote(tx, user, cny("1000.00")))
    assert quote.fee == cny("50.00") and quote.total == cny("1050.00")  # 5%
    (usd,) = quote.cards
    assert usd.card_total == Money.of("USD", "147.74")  # 1050 / 7.1072, half up

    first = top(db, user, card, "1500.00")
    assert first.state == "done" and first.fee == cny("75.00") and first.total == cny("1575.00")
    assert first.card_amount == Money.of("USD", "221.61")
    assert current(db, user).room == cny("500.00")
    error = refused(lambda: top(db, user, card, "600.00"))
    assert error.code == "tour_pass.cap" and cny("500").format() in error.localized_message()
    with language_scope("zh_Hans"):
        assert "500.00" in error.localized_message() and "最多" in error.localized_message()
    assert refused(lambda: db.run(lambda tx: tour_pass.quote(tx, user, cny("600")))).code == (
        "tour_pass.cap"
    )
    top(db, user, card, "500.00")
    assert current(db, user).balance == cny("2000.00") and current(db, user).room == cny("0")
    assert system_balance(db, "fee_income") == 10_000  # 75 + 25: the fees, to fee income
    sound(db)


def test_a_top_up_is_charged_once_whatever_the_retries(db: Database, clock: FrozenClock) -> None:
    user = visitor(db, clock)
    card = add_card(db, user)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: top(db, user, card, "300.00", "same-key"), range(4)))
    assert len({result.id for result in results}) == 1
    assert current(db, user).balance == cny("300.00")
    assert system_balance(db, "fee_income") == 1500
    error = refused(lambda: top(db, user, card, "400.00", "same-key"))
    assert error.code == "idempotency.mismatch"
    no_key = refused(lambda: tour_pass.top_up(db, user, card, cny("300"), PIN, ""))
    assert no_key.code == "tour_pass.request_key"
    wrong = refused(lambda: tour_pass.top_up(db, user, card, cny("300"), "111112", "k2"))
    assert wrong.code.startswith("paypw.")
    sound(db)


def test_top_ups_count_against_the_foreign_card_limits(db: Database, clock: FrozenClock) -> None:
    user = visitor(db, clock)
    card = add_card(db, user)
    top(db, user, card, "500.00", "k1")
    used = db.run(lambda tx: limits.limit_usage(tx, user, standing(tx, user).rights))
    assert used["card_per_year"].minor == round(500_00 / float(db.settings.fx_rates["USD"]))
    db.settings.policy_overrides = {"class_ii": {"card_per_year": "100 USD"}}
    over = refused(lambda: top(db, user, card, "1000.00", "k2"))  # USD 140 > what is left
    assert over.code == "policy.card_year_limit"
    assert current(db, user).balance == cny("500.00")  # nothing half-written
    sound(db)


def test_declined_cards_and_3d_secure(db: Database, clock: FrozenClock) -> None:
    user = visitor(db, clock)
    declined = add_card(db, user, VISA_DECLINE)
    assert refused(lambda: top(db, user, declined, "200.00", "d1")).code == "card.declined"
    assert refused(lambda: top(db, user, declined, "200.00", "d1")).code == (
        "tour_pass.top_up_failed"
    )
    assert current(db, user).balance == cny("0") and current(db, user).room == cny("2000.00")

    checked = add_checked_card(db, user)
    waiting = tour_pass.top_up(
        db, user, checked, cny("200.00"), PIN, "c1", challenge_return_url=lambda i: f"/tp/{i}"
    )
    assert waiting.state == "pending" and waiting.challenge_url is not None
    assert f"%2Ftp%2F{waiting.id}" in waiting.challenge_url
    assert current(db, user).room == cny("1800.00")  # a top-up under way counts
    authorization_id = waiting.challenge_url.split("/sandbox/3ds/")[1].split("?")[0]
    connectors.network_for(db).complete_challenge(authorization_id, "1234")
    done = tour_pass.finish_top_up(db, user, waiting.id)
    assert done.state == "done" and done.card_amount is not None
    assert done.card_amount.currency == "EUR"
    assert tour_pass.finish_top_up(db, user, waiting.id).id == done.id
    assert current(db, user).balance == cny("200.00")

    abandoned = top(db, user, checked, "100.00", "c2")
    assert abandoned.challenge_url is not None
    assert refused(lambda: tour_pass.finish_top_up(db, user, abandoned.id)).code == (
        "card.challenge_failed"
    )
    assert current(db, user).balance == cny("200.00")

    # Closed during the issuer's check: the approval is released, nothing is charged.
    late = top(db, user, checked, "100.00", "c3")
    assert late.challenge_url is not None
    connectors.network_for(db).complete_challenge(late.challenge_url.split("/3ds/")[1], "1234")
    fees = system_balance(db, "fee_income")
    tour_pass.close(db, user, PIN)
    assert refused(lambda: tour_pass.finish_top_up(db, user, late.id)).code == "tour_pass.none"
    assert system_balance(db, "fee_income") == fees and current(db, user).balance == cny("0")
    sound(db)


# --- spending ------------------------------------------------------------------------------


def test_spent_at_the_cashier_and_a_merchants_refund_comes_back_to_the_pass(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    user = visitor(db, clock)
    card = add_card(db, user)
    top(db, user, card, "500.00")
    clock.advance(minutes=1)
    tea = order(db, shop, "320.00")
    cashier = db.run(lambda tx: payments.cashier(tx, user, tea))
    assert cashier.tour_pass == cny("500.00")
    paid = tour_pass.pay(db, user, tea, PIN)
    assert paid.status == "TRADE_SUCCESS" and paid.source == "tour_pass"
    assert tour_pass.pay(db, user, tea, PIN).id == paid.id  # a retry pays nothing more
    assert current(db, user).balance == cny("180.00")

    big = order(db, shop, "200.00", "T2")
    error = refused(lambda: tour_pass.pay(db, user, big, PIN))
    assert error.code == "tour_pass.not_enough" and cny("180").format() in error.localized_message()
    assert db.run(lambda tx: payments.get_order(tx, big)).status == "WAIT_BUYER_PAY"

    clock.advance(minutes=1)
    back = refunds.refund(db, shop, tea, "R1", cny("20.00"))
    assert back.destination == "tour_pass"
    assert current(db, user).balance == cny("200.00")
    kinds = [line.kind for line in current(db, user).history]
    assert kinds == ["merchant_refund", "payment", "top_up"]
    sound(db)


def test_no_open_pass_no_tour_pass_payment(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    user = buyer(db, clock)
    verify(db, user)
    tea = order(db, shop, "10.00")
    assert db.run(lambda tx: payments.cashier(tx, user, tea)).tour_pass is None
    assert refused(lambda: tour_pass.pay(db, user, tea, PIN)).code == "tour_pass.none"


# --- expiry and closing --------------------------------------------------------------------


def three_top_ups(db: Database, clock: FrozenClock, user: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    """500 (Visa), then 700 (Mastercard), then 300 (Visa): CNY 1,500 on the pass."""
    visa, mastercard = add_card(db, user), add_card(db, user, MASTERCARD_EUR)
    top(db, user, visa, "500.00")
    clock.advance(minutes=1)
    top(db, user, mastercard, "700.00")
    clock.advance(minutes=1)
    top(db, user, visa, "300.00")
    return visa, mastercard


def test_at_expiry_what_is_left_goes_back_newest_top_up_first(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    user = visitor(db, clock)
    three_top_ups(db, clock, user)
    tea = order(db, shop, "900.00")
    tour_pass.pay(db, user, tea, PIN)  # CNY 600 left
    clock.advance(days=89)
    assert tour_pass.expire_due(db) == 0 and current(db, user).state == "open"
    clock.advance(days=1, minutes=1)

    assert tour_pass.expire_due(db) == 2
    assert card_parts(db, user) == [("0019", 30000, "done"), ("6016", 30000, "done")]
    after = current(db, user)
    assert after.state == "expired" and after.settled and after.balance == cny("0")
    assert system_balance(db, "fee_income") == 7500  # the fees stay: 5% of 1,500
    sms = db.run(lambda tx: read_outbox(tx, "+447911123456", 1))
    assert "Tour Pass has expired" in sms[0].body and cny("600").format() in sms[0].body
    assert tour_pass.expire_due(db) == 0  # nothing twice

    # A merchant's refund after expiry reaches the pass, then the card it came from.
    refunds.refund(db, shop, tea, "late", cny("200.00"))
    assert not current(db, user).settled
    assert tour_pass.expire_due(db) == 1
    assert card_parts(db, user)[-1] == ("6016", 20000, "done")
    assert current(db, user).settled and current(db, user).balance == cny("0")
    refund_lines = [line for line in current(db, user).history if line.kind == "refund"]
    assert all(line.detail for line in refund_lines)  # in the card's currency
    sound(db)


def test_closing_early_refunds_the_same_way_and_a_new_pass_may_follow(
    db: Database, clock: FrozenClock
) -> None:
    user = visitor(db, clock)
    three_top_ups(db, clock, user)
    assert refused(lambda: tour_pass.close(db, user, "111112")).code.startswith("paypw.")
    closed = tour_pass.close(db, user, PIN)
    assert closed.state == "closed" and closed.settled and closed.balance == cny("0")
    assert card_parts(db, user) == [
        ("0019", 30000, "done"),
        ("6016", 70000, "done"),
        ("0019", 50000, "done"),
    ]
    assert refused(lambda: tour_pass.close(db, user, PIN)).code == "tour_pass.none"
    again = tour_pass.open_pass(db, user)
    assert again.id != closed.id and again.state == "open"
    sound(db)


def test_a_card_that_refuses_its_refund_sends_the_money_to_the_balance(
    db: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = visitor(db, clock)
    card = add_card(db, user)
    top(db, user, card, "400.00")
    network = connectors.network_for(db)

    def closed_card(*args: Any, **kwargs: Any) -> card_network.Refund:
        raise card_network.CardExpiredAtIssuer()

    monkeypatch.setattr(network, "refund", closed_card)
    tour_pass.close(db, user, PIN)
    assert card_parts(db, user) == [("0019", 40000, "refused")]
    assert db.run(lambda tx: payments.wallet(tx, user)).balance == cny("400.00")
    assert current(db, user).settled and current(db, user).balance == cny("0")
    sound(db)


def test_a_network_that_does_not_know_the_payment_leaves_the_part_waiting(
    db: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandbox network of another process (the worker's) does not know the web
    process's card payments: the part waits, nothing is reversed, and a later run where
    the payment is known sends it once."""
    user = visitor(db, clock)
    top(db, user, add_card(db, user), "250.00")
    network = connectors.network_for(db)
    real_refund = network.refund

    def forgetful(*args: Any, **kwargs: Any) -> card_network.Refund:
        raise card_network.CaptureUnknown()

    monkeypatch.setattr(network, "refund", forgetful)
    moment = clock.now() + timedelta(days=91)
    assert tour_pass.expire_due(db, as_of=moment) == 1
    assert card_parts(db, user) == [("0019", 25000, "sending")]
    assert not current(db, user).settled
    monkeypatch.setattr(network, "refund", real_refund)
    assert tour_pass.expire_due(db, as_of=moment) == 1
    assert card_parts(db, user) == [("0019", 25000, "done")]
    assert current(db, user).settled
    sound(db)


def test_a_frozen_account_is_settled_only_after_the_freeze(
    db: Database, clock: FrozenClock
) -> None:
    from qianbao.risk import restrictions

    user = visitor(db, clock)
    top(db, user, add_card(db, user), "300.00")
    db.run(lambda tx: restrictions.impose(tx, user, "frozen", "card_velocity", imposed_by="t"))
    assert tour_pass.expire_due(db, as_of=clock.now() + timedelta(days=91)) == 0
    assert current(db, user).state == "expired" and current(db, user).balance == cny("300.00")


class Crash(BaseException):
    """Injected between the steps of the refunds: a worker killed half-way (not an
    Exception, which the job would log and go on from)."""


def test_a_crash_between_refund_parts_and_a_rerun_refund_each_part_exactly_once(
    db: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = visitor(db, clock)
    three_top_ups(db, clock, user)
    network = connectors.network_for(db)
    real_refund = network.refund
    calls: list[tuple[str | None, str]] = []
    crash_after = {2}  # the network refunds part 2, then the worker dies

    def recording_refund(
        capture_id: str, amount: Money, *, rate_date: Any, idempotency_key: str | None = None
    ) -> card_network.Refund:
        done = real_refund(capture_id, amount, rate_date=rate_date, idempotency_key=idempotency_key)
        calls.append((idempotency_key, done.id))
        if len(calls) in crash_after:
            crash_after.clear()
            raise Crash("after the network refunded, before the wallet recorded it")
        return done

    monkeypatch.setattr(network, "refund", recording_refund)
    moment = clock.now() + timedelta(days=91)
    with pytest.raises(Crash):
        tour_pass.expire_due(db, as_of=moment)
    assert [state for *_, state in card_parts(db, user)] == ["done", "sending"]
    assert tour_pass.expire_due(db, as_of=moment) == 2  # the waiting part, then the last
    assert tour_pass.expire_due(db, as_of=moment) == 0

    assert card_parts(db, user) == [
        ("0019", 30000, "done"),
        ("6016", 70000, "done"),
        ("0019", 50000, "done"),
    ]
    # The part asked twice got the same refund back: three refunds on the network.
    assert len({refund_id for _, refund_id in calls}) == 3 and len(calls) == 4
    capture_ids = db.run(
        lambda tx: [row.capture_id for row in tx.session.scalars(select(TourPassTopUp))]
    )
    captured = [network.refunded(str(capture_id)).minor for capture_id in capture_ids]
    assert sorted(captured) == [30000, 50000, 70000]
    assert current(db, user).settled
    sound(db)


# --- concurrency ---------------------------------------------------------------------------


def test_no_money_is_made_or_lost_topping_up_and_spending_while_expiry_runs(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    """Customers top up (retrying keys), pay orders and get merchants' refunds while two
    workers run the expiry (which finds the pass due once the load has begun)."""
    user = visitor(db, clock)
    cards = [add_card(db, user), add_card(db, user, MASTERCARD_EUR)]
    orders = [
        order(db, shop, f"{random.Random(n).randint(20, 150)}.00", f"O{n}") for n in range(30)
    ]
    paid: set[uuid.UUID] = set()
    lock = Lock()
    topped_up = Event()  # the workers expire the pass only once money is on it
    moment = clock.now() + timedelta(days=91)

    def top_up_step(seed: int, step: int) -> None:
        amount = cny(f"{100 + 50 * (step % 3)}.00")
        # Repeated keys with the same contents: retries of one top-up.
        tour_pass.top_up(db, user, cards[step % 2], amount, PIN, f"k{seed}-{step % 3}-{step % 2}")
        topped_up.set()

    def pay_step(target: uuid.UUID) -> None:
        done = tour_pass.pay(db, user, target, PIN)
        with lock:
            paid.add(done.id)

    def customer(seed: int) -> None:
        rng = random.Random(seed)
        for step in range(10):
            choice = rng.random()
            try:
                if choice < 0.4:
                    top_up_step(seed, step)
                elif choice < 0.8:
                    pay_step(rng.choice(orders))
                else:
                    number = f"R{rng.randint(1, 2)}"
                    refunds.refund(db, shop, rng.choice(orders), number, cny("5.00"))
            except QianbaoError:
                continue  # refused (not enough, expired, already paid...): fine

    def worker(_: int) -> None:
        topped_up.wait(timeout=120)
        for _round in range(6):
            tour_pass.expire_due(db, as_of=moment)

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(customer, seed) for seed in range(4)]
        futures += [pool.submit(worker, n) for n in range(2)]
        for future in futures:
            future.result()
    tour_pass.expire_due(db, as_of=moment)  # what arrived after the last round

    sound(db)
    after = current(db, user)
    assert after.state == "expired" and after.settled and after.balance == cny("0")

    def facts(tx: Tx) -> tuple[list[TourPassTopUp], list[TourPassRefund]]:
        top_ups = list(
            tx.session.scalars(select(TourPassTopUp).where(TourPassTopUp.state == "done"))
        )
        parts = list(tx.session.scalars(select(TourPassRefund)))
        return top_ups, parts

    top_ups, parts = db.run(facts)
    assert top_ups, "the load really topped up"
    network = connectors.network_for(db)
    for row in top_ups:
        sent = sum(p.amount for p in parts if p.top_up_id == row.id and p.state == "done")
        assert sent == row.refunded <= row.amount
        assert row.capture_id is not None
        assert network.refunded(row.capture_id).minor == sent  # once each
    assert all(p.state != "sending" for p in parts)
    added = sum(row.amount for row in top_ups)

    def net_paid(tx: Tx) -> int:
        views = [payments.get_order(tx, order_id) for order_id in paid]
        return sum(view.amount.minor - view.refunded.minor for view in views)

    spent = db.run(net_paid)
    back = sum(p.amount for p in parts if p.state == "done")
    assert added - spent == back  # every yuan added is spent or back on a card


def test_the_demo_command_runs_the_expiry_in_another_process_s_place(
    db: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``qianbao demo-expire-tour-passes`` runs on its own Database and card network
    client, as a separate process would: the card network's shared file lets it refund
    what the web process charged."""
    from typer.testing import CliRunner

    from qianbao import cli
    from qianbao.settings import get_settings

    user = visitor(db, clock)
    card = add_card(db, user)
    top(db, user, card, "400.00")
    for name, value in {
        "QIANBAO_DATABASE_URL": db.settings.database_url,
        "QIANBAO_VAR_DIR": str(db.settings.var_dir),
        "QIANBAO_SECRET_KEY": db.settings.secret_key,
        "QIANBAO_SEALING_KEYS": db.settings.sealing_keys or "",
    }.items():
        monkeypatch.setenv(name, value)
    refused_outside_demo = CliRunner().invoke(cli.app, ["demo-expire-tour-passes"])
    assert refused_outside_demo.exit_code != 0
    monkeypatch.setenv("QIANBAO_DEMO", "true")
    get_settings.cache_clear()
    try:
        ran = CliRunner().invoke(cli.app, ["demo-expire-tour-passes", "--after-days", "400"])
    finally:
        get_settings.cache_clear()
    assert ran.exit_code == 0, ran.output
    assert "1 refund parts sent" in ran.output
    assert card_parts(db, user) == [("0019", 40000, "done")]
    sound(db)


def test_a_top_up_left_half_way_is_finished_or_undone_by_the_worker(
    db: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qianbao import jobs

    user = visitor(db, clock)
    card = add_card(db, user)
    network = connectors.network_for(db)

    def die(*_args: object, **_kwargs: object) -> None:
        raise Crash

    with monkeypatch.context() as patched:  # captured on the card, never recorded
        patched.setattr(tour_pass, "_record_top_up", die)
        with pytest.raises(Crash):
            top(db, user, card, "300.00", "captured")
    with monkeypatch.context() as patched:  # approved on the card, never captured
        patched.setattr(network, "capture", die)
        with pytest.raises(Crash):
            top(db, user, card, "200.00", "approved")
    assert current(db, user).balance == cny("0.00")
    assert tour_pass.finish_stranded_top_ups(db) == 0  # within the grace time: alone
    clock.advance(seconds=db.settings.card_attempt_grace_seconds + 1)
    jobs.expire_tour_passes(db)
    assert current(db, user).balance == cny("300.00")  # the captured one reached the pass

    def states(tx: Tx) -> dict[str, str]:
        rows = tx.session.scalars(select(TourPassTopUp))
        return {row.request_key: row.state for row in rows}

    assert db.run(states) == {"captured": "done", "approved": "failed"}
    approved_key = db.run(
        lambda tx: tx.session.scalars(
            select(TourPassTopUp.id).where(TourPassTopUp.request_key == "approved")
        ).one()
    )
    voided = network.find_authorization(tour_pass._top_up_key(approved_key))
    assert voided is not None and voided.status == "voided"
    assert tour_pass.finish_stranded_top_ups(db) == 0
    sound(db)
