"""The payment by balance as one database call (wallet/payments/in_database.py, PostgreSQL):
it writes exactly what the Python path writes, and leaves every other case to the Python
path with nothing written, so each refusal keeps its words. On SQLite there is no such
call: these tests run on PostgreSQL only."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.identity import service as identity
from qianbao.identity.models import PaymentPassword
from qianbao.money import Money
from qianbao.risk import restrictions
from qianbao.settings import Settings
from qianbao.wallet import limits
from qianbao.wallet.ledger import audit as ledger_audit
from qianbao.wallet.ledger import service as ledger
from qianbao.wallet.ledger.models import LedgerOperation, LedgerTransfer
from qianbao.wallet.payments import service as payments
from qianbao.wallet.payments.models import PaymentOrder
from tests.conftest import PG_URL
from tests.wallet.test_payments import PIN, buyer, cny, fund, order, refused, verify

pytestmark = pytest.mark.skipif(not PG_URL, reason="the in-database payment is PostgreSQL's")


@pytest.fixture
def backend() -> str:  # overrides conftest's: PostgreSQL only
    return "postgresql"


@pytest.fixture
def python_db(settings: Settings, clock: FrozenClock) -> Iterator[Database]:
    """The same database with the in-database payment turned off."""
    database = Database(settings.model_copy(update={"money_in_database": False}), clock)
    yield database
    database.dispose()


@pytest.fixture
def shop(db: Database) -> uuid.UUID:
    return db.run(lambda tx: payments.create_merchant(tx, "Demo Shop"))


def tried_in_database(outcome: str) -> float:
    sample = REGISTRY.get_sample_value("qianbao_money_in_database_total", {"outcome": outcome})
    return sample or 0.0


def paid_in_database() -> float:
    return tried_in_database("paid")


def left_to_python() -> float:
    return tried_in_database("python")


# What the paid-order listeners heard (registered once: listeners stay for the process).
HEARD: list[uuid.UUID] = []
payments.on_paid(lambda _tx, order_id: HEARD.append(order_id))


def verified_buyer(db: Database, clock: FrozenClock, money: str = "500") -> uuid.UUID:
    user = buyer(db, clock)
    verify(db, user)
    fund(db, user, money)
    return user


def operation_of(db: Database, order_id: uuid.UUID) -> tuple[Any, list[Any]]:
    """The order's ledger operation and its transfers."""

    def read(tx: Tx) -> tuple[Any, list[Any]]:
        operation = tx.session.execute(
            select(LedgerOperation).where(
                LedgerOperation.idempotency_key == f"order:{order_id}:pay"
            )
        ).scalar_one()
        transfers = tx.session.scalars(
            select(LedgerTransfer).where(LedgerTransfer.operation_id == operation.id)
        ).all()
        return operation, list(transfers)

    return db.run(read)


def test_a_payment_in_one_call_writes_what_the_python_path_writes(
    db: Database, python_db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    user = verified_buyer(db, clock)
    fast, slow = order(db, shop, "12.34", "T1"), order(db, shop, "12.34", "T2")
    before = paid_in_database()
    by_call = payments.pay_with_balance(db, user, fast, PIN)
    assert paid_in_database() == before + 1
    by_python = payments.pay_with_balance(python_db, user, slow, PIN)
    assert paid_in_database() == before + 1

    # The answers: the same view but for the order's own fields.
    different = {"id", "out_trade_no"}
    assert {k: v for k, v in vars(by_call).items() if k not in different} == {
        k: v for k, v in vars(by_python).items() if k not in different
    }
    assert by_call.status == "TRADE_SUCCESS" and by_call.paid_at == clock.now()
    assert by_call == payments.pay_with_balance(db, user, fast, PIN)  # a retry: the same

    # The ledger: one operation each, the request hashed as ledger.request_hash does.
    merchant = db.run(lambda tx: payments.merchant_facts(tx, shop))
    balance = db.run(lambda tx: payments.account_of(tx, str(user), "user_balance"))
    request = {
        "op": "transfer",
        "debit": balance,
        "credit": merchant.settlement_account_id,
        "amount": cny("12.34"),
    }
    for order_id in (fast, slow):
        operation, transfers = operation_of(db, order_id)
        assert operation.request_hash == ledger.request_hash(request)
        (moved,) = transfers
        assert json.loads(operation.result) == {"result": {}, "transfers": [str(moved.id)]}
        assert (moved.debit_account_id, moved.amount, moved.kind) == (balance, 1234, "posted")
        stored = db.run(lambda tx, o=order_id: tx.session.get(PaymentOrder, o))
        assert stored is not None and stored.ledger_operation_id == operation.id

    # The money, the limits' counters and the books.
    assert db.run(lambda tx: payments.wallet(tx, user)).balance == cny("475.32")
    used = db.run(lambda tx: limits.usage(tx, user))
    assert (used.balance_today, used.balance_this_year) == (2468, 2468)
    assert db.run(limits.discrepancies) == []
    assert db.run(ledger_audit.audit).sound


def test_a_shop_hears_of_a_payment_made_in_one_call(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    """The paid-order listeners (the trade API's notification) run as after mark_paid."""
    user = verified_buyer(db, clock)
    paying = order(db, shop, "5.00")
    before = paid_in_database()
    payments.pay_with_balance(db, user, paying, PIN)
    assert paid_in_database() == before + 1 and HEARD[-1] == paying


Setup = Callable[[Database, uuid.UUID, uuid.UUID], str]


def _wrong_pin(db: Database, user: uuid.UUID, shop: uuid.UUID) -> str:
    return "111112"


def _expired(db: Database, user: uuid.UUID, shop: uuid.UUID) -> str:
    assert isinstance(db.clock, FrozenClock)
    db.clock.advance(minutes=16)
    return PIN


def _restricted(db: Database, user: uuid.UUID, shop: uuid.UUID) -> str:
    db.run(lambda tx: restrictions.impose(tx, user, "restricted", "test", imposed_by="test"))
    return PIN


def _unverified(db: Database, user: uuid.UUID, shop: uuid.UUID) -> str:
    db.run(lambda tx: identity.set_verification_level(tx, user, "unverified"))
    return PIN


def _too_poor(db: Database, user: uuid.UUID, shop: uuid.UUID) -> str:
    payments.pay_with_balance(db, user, order(db, shop, "490.00", "BIG"), PIN)
    return PIN


@pytest.mark.parametrize(
    ("arrange", "code"),
    [
        (_wrong_pin, "paypw.mismatch"),
        (_expired, "order.expired"),
        (_restricted, "account.restricted"),
        (_unverified, "policy.balance_not_allowed"),
        (_too_poor, "ledger.insufficient_funds"),
    ],
)
def test_every_refusal_is_the_python_paths_with_nothing_written(
    db: Database, clock: FrozenClock, shop: uuid.UUID, arrange: Setup, code: str
) -> None:
    user = verified_buyer(db, clock)
    paying = order(db, shop, "20.00")
    pin = arrange(db, user, shop)
    balance_before = db.run(lambda tx: payments.wallet(tx, user)).balance
    usage_before = db.run(lambda tx: limits.usage(tx, user))
    python_before = left_to_python()
    assert refused(lambda: payments.pay_with_balance(db, user, paying, pin)).code == code
    assert left_to_python() == python_before + 1
    assert db.run(lambda tx: payments.get_order(tx, paying)).payer_id is None
    assert db.run(lambda tx: payments.wallet(tx, user)).balance == balance_before
    assert db.run(lambda tx: limits.usage(tx, user)) == usage_before


def test_a_wrong_entry_counted_sends_the_next_right_one_through_python(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    """The function pays only when there is nothing to write to the password's row: after
    a wrong entry, the right one goes through Python, which clears the count."""
    user = verified_buyer(db, clock)
    paying = order(db, shop, "20.00")
    refused(lambda: payments.pay_with_balance(db, user, paying, "111112"))
    failures = db.run(lambda tx: tx.session.get_one(PaymentPassword, user).failures)
    assert failures == 1
    python_before = left_to_python()
    assert payments.pay_with_balance(db, user, paying, PIN).status == "TRADE_SUCCESS"
    assert left_to_python() == python_before + 1
    assert db.run(lambda tx: tx.session.get_one(PaymentPassword, user).failures) == 0


def test_the_operators_limits_hold_in_the_database_too(
    settings: Settings, clock: FrozenClock
) -> None:
    """The rights come from policy.py with the settings' overrides, not from a copy."""
    strict = settings.model_copy(
        update={"policy_overrides": {"class_ii": {"balance_per_day": "30 CNY"}}}
    )
    db = Database(strict, clock)
    try:
        shop = db.run(lambda tx: payments.create_merchant(tx, "Strict Shop"))
        user = verified_buyer(db, clock)
        payments.pay_with_balance(db, user, order(db, shop, "20.00", "A"), PIN)
        error = refused(
            lambda: payments.pay_with_balance(db, user, order(db, shop, "20.00", "B"), PIN)
        )
        assert error.code == "policy.balance_day_limit"
        assert db.run(lambda tx: limits.usage(tx, user)).balance_today == 2000
    finally:
        db.dispose()


def test_money_never_moves_twice_whichever_path_pays(
    db: Database, python_db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    """The same order paid through both paths at once: one payment, one operation."""
    user = verified_buyer(db, clock, "100")
    paying = order(db, shop, "60.00")
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(
            pool.map(
                lambda n: payments.pay_with_balance(python_db if n % 2 else db, user, paying, PIN),
                range(6),
            )
        )
    assert {answer.status for answer in answers} == {"TRADE_SUCCESS"}
    assert db.run(lambda tx: payments.wallet(tx, user)).balance == cny("40.00")
    assert len(operation_of(db, paying)[1]) == 1
    assert db.run(limits.discrepancies) == []
    assert Money.of("CNY", "60.00") == db.run(lambda tx: payments.get_order(tx, paying)).amount
