"""The outside books against the ledger (wallet/reconciliation.py): card and bank card
orders, their refunds and the attempts sent back agree to the fen; money moved on the
card network or at the bank behind the wallet's back, a refund left pending and a capture
never recorded are each found, with their numbers; `qianbao ledger audit` reports them
and exits 1. On SQLite, and on PostgreSQL with QIANBAO_TEST_DATABASE_URL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from qianbao import jobs
from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.funding import connectors
from qianbao.funding import service as funding
from qianbao.settings import Settings, get_settings
from qianbao.wallet import reconciliation
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments
from qianbao.wallet.payments.models import PaymentOrder
from tests.test_cli_ops import invoke, point_cli_at
from tests.wallet.test_card_recovery import Crash, bind_bank_card, capture_of, crash_in
from tests.wallet.test_payments import PIN, add_card, buyer, cny, fund, order, verify


@pytest.fixture
def shop(db: Database) -> uuid.UUID:
    db.settings.card_attempt_grace_seconds = 60
    db.settings.refund_grace_seconds = 30
    return db.run(lambda tx: payments.create_merchant(tx, "Demo Shop"))


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    point_cli_at(monkeypatch, settings.database_url, settings)
    yield
    get_settings.cache_clear()


def codes(db: Database) -> list[str]:
    return sorted(finding.code for finding in reconciliation.reconcile(db).findings)


def debit_of(db: Database, order_id: uuid.UUID) -> str:
    found = db.run(lambda tx: tx.session.get_one(PaymentOrder, order_id).bank_debit_id)
    assert found is not None
    return found


def card_and_bank_orders(db: Database, clock: FrozenClock, shop: uuid.UUID) -> uuid.UUID:
    """A card order (fee 9.00) refunded in part to the card and in part to the balance,
    and a bank card order refunded in part: the books agree. Returns the buyer."""
    user = buyer(db, clock)
    verify(db, user)
    fund(db, user, "100")
    by_card = order(db, shop, "300.00", "C1")
    payments.pay_with_card(db, user, by_card, add_card(db, user), PIN)
    refunds.refund(db, shop, by_card, "R1", cny("100.00"))  # 103.00 back to the card
    refunds.refund(db, shop, by_card, "R2", cny("50.00"), to_balance=True)
    by_bank = order(db, shop, "80.00", "B1")
    payments.pay_with_bank_card(db, user, by_bank, bind_bank_card(db, user), PIN)
    refunds.refund(db, shop, by_bank, "R1", cny("30.00"))
    by_balance = order(db, shop, "20.00", "P1")
    payments.pay_with_balance(db, user, by_balance, PIN)
    return user


def test_the_books_agree_then_money_moved_behind_the_wallets_back_is_found(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    card_and_bank_orders(db, clock, shop)
    found = reconciliation.reconcile(db)
    assert found.sound, found.report()
    assert (found.card_orders, found.bank_orders, found.refunds_checked) == (1, 1, 2)
    assert found.report()[-1] == "outside books agree"

    by_card = db.run(lambda tx: payments.merchant_orders(tx, shop))
    card_order = next(o for o in by_card if o.out_trade_no == "C1").id
    bank_order = next(o for o in by_card if o.out_trade_no == "B1").id
    # The network gives CNY 10.00 more back and the bank CNY 5.00, with no refund asked.
    connectors.network_for(db).refund(
        capture_of(db, card_order), cny("10.00"), rate_date=clock.now().date()
    )
    funding.connector(db).credit(debit_of(db, bank_order), cny("5.00"), idempotency_key="oops")
    found = reconciliation.reconcile(db)
    assert sorted(f.code for f in found.findings) == ["bank.kept_differs", "card.kept_differs"]
    card = next(f for f in found.findings if f.code == "card.kept_differs")
    assert card.order_id == card_order
    assert "refunded 11300" in card.detail and "the wallet keeps 20600" in card.detail
    assert found.report()[-1] == "OUTSIDE BOOKS DISAGREE"


def test_a_capture_never_recorded_is_a_finding_until_the_worker_sends_it_back(
    db: Database, clock: FrozenClock, shop: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = buyer(db, clock)
    card = add_card(db, user)
    first = order(db, shop, "300.00")
    with monkeypatch.context() as patched:
        crash_in(patched, payments, "mark_paid")  # after the capture, before the ledger
        with pytest.raises(Crash):
            payments.pay_with_card(db, user, first, card, PIN)
    found = reconciliation.reconcile(db)
    assert [f.code for f in found.findings] == ["card.attempt_kept"]
    assert "captured 30900, refunded 0: it is still the order's live attempt" in str(
        found.findings[0]
    )
    clock.advance(seconds=61)
    jobs.reverse_stranded_card_payments(db)
    found = reconciliation.reconcile(db)
    assert found.sound and found.attempts_sent_back == 1, found.report()


def test_a_refund_left_pending_is_a_finding_until_the_worker_settles_it(
    db: Database, clock: FrozenClock, shop: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = buyer(db, clock)
    first = order(db, shop, "120.00")
    payments.pay_with_bank_card(db, user, first, bind_bank_card(db, user), PIN)
    with monkeypatch.context() as patched:
        crash_in(patched, refunds, "_settle_refund")  # the bank gave it back; not posted
        with pytest.raises(Crash):
            refunds.refund(db, shop, first, "R1", cny("120.00"))
    # Pending, and the bank already gave the money back: both are reported.
    assert codes(db) == ["bank.kept_differs", "refund.pending"]
    clock.advance(seconds=31)
    assert jobs.finish_pending_refunds(db) == 1
    assert codes(db) == []


@pytest.mark.usefixtures("cli_env")
def test_ledger_audit_on_the_command_line_reconciles_the_sandboxes(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    card_and_bank_orders(db, clock, shop)
    sound = invoke("ledger", "audit")
    assert sound.exit_code == 0, sound.output
    assert "card orders reconciled with the card network: 1" in sound.output
    assert "outside books agree" in sound.output

    bank_order = next(
        o.id
        for o in db.run(lambda tx: payments.merchant_orders(tx, shop))
        if o.out_trade_no == "B1"
    )
    funding.connector(db).credit(debit_of(db, bank_order), cny("5.00"), idempotency_key="oops")
    broken = invoke("ledger", "audit")
    assert broken.exit_code == 1
    assert "bank.kept_differs" in broken.output and str(bank_order) in broken.output
    assert "ledger sound" in broken.output and "OUTSIDE BOOKS DISAGREE" in broken.output
