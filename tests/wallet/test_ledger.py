"""The ledger: transfers, idempotency, holds, shards, batches, and the refusals the
database makes on its own when the Python code is written around (raw SQL)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.errors import Conflict, InvalidInput, NotFound, QianbaoError
from qianbao.money import Money
from qianbao.wallet.ledger import audit as ledger_audit
from qianbao.wallet.ledger import service as ledger
from qianbao.wallet.ledger.models import LedgerAccount, LedgerOperation, LedgerTransfer

T = TypeVar("T")


def cny(minor: int) -> Money:
    return Money("CNY", minor)


def run(db: Database, use_case: Callable[[Tx], T]) -> T:
    return db.run(use_case, isolation="read committed")


@dataclass
class Book:
    issuance: uuid.UUID
    alice: uuid.UUID
    bob: uuid.UUID
    merchant: uuid.UUID
    fees: uuid.UUID
    usd_user: uuid.UUID
    usd_issuance: uuid.UUID


@pytest.fixture
def book(db: Database) -> Book:
    def open_all(tx: Tx) -> Book:
        def user(currency: str = "CNY") -> uuid.UUID:
            return ledger.open_account(tx, kind="user_balance", currency=currency)

        return Book(
            issuance=ledger.open_account(tx, kind="issuance", currency="CNY"),
            alice=user(),
            bob=user(),
            merchant=ledger.open_account(tx, kind="merchant_settlement", currency="CNY", shards=4),
            fees=ledger.open_account(tx, kind="fee_income", currency="CNY"),
            usd_user=user("USD"),
            usd_issuance=ledger.open_account(tx, kind="issuance", currency="USD"),
        )

    accounts = run(db, open_all)
    run(
        db,
        lambda tx: ledger.transfer(
            tx, "seed-alice", accounts.issuance, accounts.alice, cny(10_000)
        ),
    )
    return accounts


def balance(db: Database, account: uuid.UUID) -> ledger.Balance:
    return run(db, lambda tx: ledger.balance(tx, account))


def counts(db: Database) -> tuple[int, int]:
    def count(tx: Tx) -> tuple[int, int]:
        operations = tx.session.scalar(select(func.count()).select_from(LedgerOperation))
        transfers = tx.session.scalar(select(func.count()).select_from(LedgerTransfer))
        return int(operations or 0), int(transfers or 0)

    return run(db, count)


def assert_sound(db: Database) -> None:
    report = run(db, ledger_audit.audit)
    assert report.balances_off_history == []
    assert report.below_floor == []
    assert all(total == 0 for total in report.currency_totals.values()), report
    assert report.sound


def raises_code(error_type: type[QianbaoError], code: str) -> Any:
    class _Matcher:
        def __enter__(self) -> None:
            self.context = pytest.raises(error_type)
            self.info = self.context.__enter__()

        def __exit__(self, *exc: Any) -> bool:
            handled = self.context.__exit__(*exc)
            assert self.info.value.code == code
            return bool(handled)

    return _Matcher()


# --- transfers and operations --------------------------------------------------------


def test_a_transfer_moves_money_between_two_accounts(db: Database, book: Book) -> None:
    receipt = run(db, lambda tx: ledger.transfer(tx, "t1", book.alice, book.bob, cny(2_500)))
    assert not receipt.replayed
    assert len(receipt.transfer_ids) == 1
    assert balance(db, book.alice).posted == 7_500
    assert balance(db, book.bob).posted == 2_500
    assert balance(db, book.issuance).posted == -10_000  # issuance may go negative
    assert_sound(db)


def test_not_enough_money_is_refused_and_leaves_nothing(db: Database, book: Book) -> None:
    before = counts(db)
    with raises_code(Conflict, "ledger.insufficient_funds"):
        run(db, lambda tx: ledger.transfer(tx, "t1", book.alice, book.bob, cny(10_001)))
    assert counts(db) == before
    assert balance(db, book.alice).posted == 10_000


def test_an_operation_of_several_transfers_lands_whole_or_not_at_all(
    db: Database, book: Book
) -> None:
    def pay_with_fee(price: int, fee: int) -> Callable[[Tx], ledger.Receipt]:
        def use_case(tx: Tx) -> ledger.Receipt:
            def build(booking: ledger.Booking) -> dict[str, Any]:
                payment = booking.transfer(book.alice, book.merchant, cny(price))
                booking.transfer(book.merchant, book.fees, cny(fee))
                return {"payment": payment, "fee": fee}

            request = {"payer": book.alice, "price": price, "fee": fee}
            return ledger.execute(tx, f"order-{price}-{fee}", request, build)

        return use_case

    receipt = run(db, pay_with_fee(1_000, 6))
    assert receipt.result == {"payment": str(receipt.transfer_ids[0]), "fee": 6}
    assert balance(db, book.merchant).posted == 994
    assert balance(db, book.fees).posted == 6

    before = counts(db)
    with raises_code(Conflict, "ledger.insufficient_funds"):  # the fee is more than it paid
        run(db, pay_with_fee(10, 20_000))
    assert counts(db) == before
    assert balance(db, book.alice).posted == 9_000
    assert_sound(db)


def test_a_retry_with_the_same_key_returns_the_first_result_and_moves_nothing(
    db: Database, book: Book
) -> None:
    first = run(db, lambda tx: ledger.transfer(tx, "pay-1", book.alice, book.bob, cny(300)))
    again = run(db, lambda tx: ledger.transfer(tx, "pay-1", book.alice, book.bob, cny(300)))
    assert again.replayed
    assert (again.operation_id, again.transfer_ids, again.result) == (
        first.operation_id,
        first.transfer_ids,
        first.result,
    )
    assert balance(db, book.alice).posted == 9_700
    assert balance(db, book.bob).posted == 300


def test_a_retry_is_recognised_even_when_it_could_no_longer_be_paid(
    db: Database, book: Book
) -> None:
    first = run(db, lambda tx: ledger.transfer(tx, "all", book.alice, book.bob, cny(10_000)))
    again = run(db, lambda tx: ledger.transfer(tx, "all", book.alice, book.bob, cny(10_000)))
    assert again.replayed and again.transfer_ids == first.transfer_ids


def test_the_same_key_with_another_request_is_a_conflict(db: Database, book: Book) -> None:
    run(db, lambda tx: ledger.transfer(tx, "pay-1", book.alice, book.bob, cny(300)))
    with raises_code(Conflict, "idempotency.mismatch"):
        run(db, lambda tx: ledger.transfer(tx, "pay-1", book.alice, book.bob, cny(301)))
    with raises_code(Conflict, "idempotency.mismatch"):
        run(db, lambda tx: ledger.transfer(tx, "pay-1", book.alice, book.merchant, cny(300)))
    assert balance(db, book.bob).posted == 300


def test_a_refused_operation_does_not_use_up_its_key(db: Database, book: Book) -> None:
    with raises_code(Conflict, "ledger.insufficient_funds"):
        run(db, lambda tx: ledger.transfer(tx, "k", book.bob, book.alice, cny(100)))
    run(db, lambda tx: ledger.transfer(tx, "fund-bob", book.issuance, book.bob, cny(100)))
    receipt = run(db, lambda tx: ledger.transfer(tx, "k", book.bob, book.alice, cny(100)))
    assert not receipt.replayed
    assert balance(db, book.bob).posted == 0


@pytest.mark.parametrize("minor", [0, -1])
def test_an_amount_must_be_positive(db: Database, book: Book, minor: int) -> None:
    with raises_code(InvalidInput, "ledger.invalid_amount"):
        run(db, lambda tx: ledger.transfer(tx, "k", book.alice, book.bob, cny(minor)))


def test_currencies_do_not_mix(db: Database, book: Book) -> None:
    with raises_code(InvalidInput, "ledger.currency_mismatch"):
        run(db, lambda tx: ledger.transfer(tx, "k", book.alice, book.usd_user, cny(1)))
    with raises_code(InvalidInput, "ledger.currency_mismatch"):
        run(db, lambda tx: ledger.transfer(tx, "k", book.alice, book.bob, Money("USD", 1)))


def test_money_does_not_move_to_the_same_account_or_an_unknown_one(
    db: Database, book: Book
) -> None:
    with raises_code(InvalidInput, "ledger.same_account"):
        run(db, lambda tx: ledger.transfer(tx, "k", book.alice, book.alice, cny(1)))
    with raises_code(NotFound, "ledger.account_not_found"):
        run(db, lambda tx: ledger.transfer(tx, "k", book.alice, uuid.uuid4(), cny(1)))


# --- holds ---------------------------------------------------------------------------


def _hold(db: Database, book: Book, clock: FrozenClock, key: str, minor: int) -> uuid.UUID:
    expires = clock.now() + timedelta(minutes=15)
    receipt = run(
        db,
        lambda tx: ledger.hold(tx, key, book.alice, book.merchant, cny(minor), expires_at=expires),
    )
    return receipt.transfer_ids[0]


def test_a_hold_counts_against_the_floor_at_once(
    db: Database, book: Book, clock: FrozenClock
) -> None:
    _hold(db, book, clock, "h", 8_000)
    alice = balance(db, book.alice)
    assert (alice.posted, alice.pending_debits, alice.available) == (10_000, 8_000, 2_000)
    assert balance(db, book.merchant).pending_credits == 8_000
    with raises_code(Conflict, "ledger.insufficient_funds"):
        run(db, lambda tx: ledger.transfer(tx, "t", book.alice, book.bob, cny(2_001)))
    run(db, lambda tx: ledger.transfer(tx, "t", book.alice, book.bob, cny(2_000)))
    assert_sound(db)


def test_posting_a_whole_hold_moves_it(db: Database, book: Book, clock: FrozenClock) -> None:
    pending = _hold(db, book, clock, "h", 3_000)
    run(db, lambda tx: ledger.post_pending(tx, "h-post", pending))
    alice, merchant = balance(db, book.alice), balance(db, book.merchant)
    assert (alice.posted, alice.pending_debits) == (7_000, 0)
    assert (merchant.posted, merchant.pending_credits) == (3_000, 0)
    assert_sound(db)


def test_posting_part_of_a_hold_releases_the_rest(
    db: Database, book: Book, clock: FrozenClock
) -> None:
    pending = _hold(db, book, clock, "h", 3_000)
    run(db, lambda tx: ledger.post_pending(tx, "h-post", pending, cny(1_200)))
    alice = balance(db, book.alice)
    assert (alice.posted, alice.pending_debits, alice.available) == (8_800, 0, 8_800)
    assert balance(db, book.merchant).posted == 1_200
    with raises_code(InvalidInput, "ledger.post_exceeds_hold"):
        pending_2 = _hold(db, book, clock, "h2", 100)
        run(db, lambda tx: ledger.post_pending(tx, "h2-post", pending_2, cny(101)))
    assert_sound(db)


def test_voiding_a_hold_releases_it_and_a_hold_is_settled_once(
    db: Database, book: Book, clock: FrozenClock
) -> None:
    pending = _hold(db, book, clock, "h", 3_000)
    run(db, lambda tx: ledger.void_pending(tx, "h-void", pending))
    alice = balance(db, book.alice)
    assert (alice.posted, alice.pending_debits) == (10_000, 0)
    with raises_code(Conflict, "ledger.pending_resolved"):
        run(db, lambda tx: ledger.post_pending(tx, "h-post", pending))
    with raises_code(Conflict, "ledger.pending_resolved"):
        run(db, lambda tx: ledger.void_pending(tx, "h-void-2", pending))
    # The retry of the void itself is still answered.
    assert run(db, lambda tx: ledger.void_pending(tx, "h-void", pending)).replayed
    with raises_code(NotFound, "ledger.pending_not_found"):
        run(db, lambda tx: ledger.void_pending(tx, "x", uuid.uuid4()))
    assert_sound(db)


def test_expired_holds_cannot_be_posted_and_the_sweep_voids_them(
    db: Database, book: Book, clock: FrozenClock
) -> None:
    expiring = _hold(db, book, clock, "h1", 1_000)
    clock.advance(minutes=10)
    later = _hold(db, book, clock, "h2", 2_000)
    clock.advance(minutes=6)  # the first has expired, the second has 9 minutes left
    with raises_code(Conflict, "ledger.pending_expired"):
        run(db, lambda tx: ledger.post_pending(tx, "h1-post", expiring))
    assert run(db, ledger.expire_pending) == 1
    assert run(db, ledger.expire_pending) == 0
    assert balance(db, book.alice).pending_debits == 2_000
    with raises_code(Conflict, "ledger.pending_resolved"):
        run(db, lambda tx: ledger.post_pending(tx, "h1-post", expiring))
    run(db, lambda tx: ledger.post_pending(tx, "h2-post", later))
    assert balance(db, book.alice).posted == 8_000
    with raises_code(InvalidInput, "ledger.hold_expiry"):
        run(
            db,
            lambda tx: ledger.hold(tx, "h3", book.alice, book.bob, cny(1), expires_at=clock.now()),
        )
    assert_sound(db)


# --- shards and batches --------------------------------------------------------------


def test_a_sharded_account_spreads_credits_and_sweeps_shards_to_pay_out(
    db: Database, book: Book
) -> None:
    for number in range(40):
        run(
            db,
            lambda tx, n=number: ledger.transfer(tx, f"p{n}", book.alice, book.merchant, cny(100)),
        )

    def rows(tx: Tx) -> list[int]:
        statement = select(LedgerAccount.balance).where(
            (LedgerAccount.id == book.merchant) | (LedgerAccount.shard_of == book.merchant)
        )
        return [int(value) for value in tx.session.scalars(statement)]

    shard_balances = run(db, rows)
    assert len(shard_balances) == 4
    assert sum(shard_balances) == 4_000
    assert sum(1 for value in shard_balances if value > 0) >= 2  # 40 credits, 4 rows
    assert balance(db, book.merchant).posted == 4_000

    payout = run(db, lambda tx: ledger.transfer(tx, "payout", book.merchant, book.bob, cny(3_900)))
    assert len(payout.transfer_ids) == 1  # the sweeps are internal transfers
    assert balance(db, book.merchant).posted == 100
    assert balance(db, book.bob).posted == 3_900
    with raises_code(Conflict, "ledger.insufficient_funds"):
        run(db, lambda tx: ledger.transfer(tx, "payout-2", book.merchant, book.bob, cny(101)))
    assert_sound(db)


def test_a_batch_runs_independent_operations_each_with_its_own_outcome(
    db: Database, book: Book
) -> None:
    def pay(key: str, debit: uuid.UUID, minor: int) -> ledger.Operation:
        return ledger.Operation(
            key,
            {"debit": debit, "minor": minor},
            lambda booking: {"id": booking.transfer(debit, book.merchant, cny(minor))},
        )

    run(db, lambda tx: ledger.transfer(tx, "done-before", book.alice, book.bob, cny(1)))
    batch = [
        pay("b1", book.alice, 100),
        pay("b2", book.bob, 5),  # bob has 1
        pay("b3", book.alice, 200),
        pay("b1", book.alice, 100),  # a repeat inside the batch
        pay("b3", book.alice, 999),  # the same key, another request
    ]
    outcomes = run(db, lambda tx: ledger.execute_many(tx, batch))
    assert [type(o).__name__ for o in outcomes] == [
        "Receipt",
        "Conflict",
        "Receipt",
        "Receipt",
        "Conflict",
    ]
    first, refused, _third, repeat, mismatch = outcomes
    assert isinstance(first, ledger.Receipt) and isinstance(repeat, ledger.Receipt)
    assert repeat.replayed and repeat.operation_id == first.operation_id
    assert isinstance(refused, Conflict) and refused.code == "ledger.insufficient_funds"
    assert isinstance(mismatch, Conflict) and mismatch.code == "idempotency.mismatch"
    assert balance(db, book.merchant).posted == 300
    again = run(db, lambda tx: ledger.execute_many(tx, batch[:1]))
    assert isinstance(again[0], ledger.Receipt) and again[0].replayed
    assert_sound(db)


# --- what the database refuses on its own --------------------------------------------


def _raw_id(db: Database, value: uuid.UUID) -> str:
    # SQLAlchemy stores UUIDs as 32 hex digits on SQLite and as uuid on PostgreSQL.
    return value.hex if db.dialect == "sqlite" else str(value)


def _raw_transfer(
    connection: Connection,
    db: Database,
    operation: uuid.UUID,
    debit: uuid.UUID,
    credit: uuid.UUID,
    amount: int,
    *,
    currency: str = "CNY",
    kind: str = "posted",
    pending: uuid.UUID | None = None,
    position: int = 0,
    expires: bool = False,
) -> uuid.UUID:
    transfer_id = uuid.uuid4()
    connection.execute(
        text(
            "INSERT INTO ledger_transfers (id, operation_id, position, debit_account_id,"
            " credit_account_id, amount, currency, kind, pending_id, expires_at, created_at)"
            " VALUES (:id, :op, :position, :debit, :credit, :amount, :currency, :kind,"
            " :pending, CASE WHEN :expires THEN CURRENT_TIMESTAMP END, CURRENT_TIMESTAMP)"
        ),
        {
            "id": _raw_id(db, transfer_id),
            "op": _raw_id(db, operation),
            "position": position,
            "debit": _raw_id(db, debit),
            "credit": _raw_id(db, credit),
            "amount": amount,
            "currency": currency,
            "kind": kind,
            "pending": _raw_id(db, pending) if pending else None,
            "expires": expires,
        },
    )
    return transfer_id


def _raw_operation(connection: Connection, db: Database, key: str) -> uuid.UUID:
    operation = uuid.uuid4()
    connection.execute(
        text(
            "INSERT INTO ledger_operations (id, idempotency_key, request_hash, result, created_at)"
            " VALUES (:id, :key, 'raw', '{}', CURRENT_TIMESTAMP)"
        ),
        {"id": _raw_id(db, operation), "key": key},
    )
    return operation


def _refused(db: Database, message: str, write: Callable[[Connection], object]) -> None:
    """``write`` runs in its own transaction and the database must refuse it."""
    with pytest.raises(IntegrityError, match=message), db.engine.begin() as connection:
        write(connection)


def test_raw_sql_that_follows_the_rules_is_applied_by_the_triggers(
    db: Database, book: Book
) -> None:
    with db.engine.begin() as connection:
        operation = _raw_operation(connection, db, "raw-ok")
        _raw_transfer(connection, db, operation, book.alice, book.bob, 700)
        _raw_transfer(connection, db, operation, book.bob, book.fees, 20, position=1)
    assert balance(db, book.alice).posted == 9_300
    assert balance(db, book.bob).posted == 680
    assert balance(db, book.fees).posted == 20
    assert_sound(db)


def test_a_multi_row_insert_applies_every_row(db: Database, book: Book) -> None:
    with db.engine.begin() as connection:
        operation = _raw_operation(connection, db, "raw-multi")
        connection.execute(
            text(
                "INSERT INTO ledger_transfers (id, operation_id, position, debit_account_id,"
                " credit_account_id, amount, currency, kind, created_at) VALUES"
                " (:t0, :op, 0, :a, :b, 10, 'CNY', 'posted', CURRENT_TIMESTAMP),"
                " (:t1, :op, 1, :a, :b, 20, 'CNY', 'posted', CURRENT_TIMESTAMP),"
                " (:t2, :op, 2, :b, :a, 5, 'CNY', 'posted', CURRENT_TIMESTAMP)"
            ),
            {
                "t0": _raw_id(db, uuid.uuid4()),
                "t1": _raw_id(db, uuid.uuid4()),
                "t2": _raw_id(db, uuid.uuid4()),
                "op": _raw_id(db, operation),
                "a": _raw_id(db, book.alice),
                "b": _raw_id(db, book.bob),
            },
        )
    assert balance(db, book.bob).posted == 25
    assert_sound(db)


@pytest.mark.parametrize("amount", [0, -5])
def test_the_database_refuses_an_amount_that_is_not_positive(
    db: Database, book: Book, amount: int
) -> None:
    def write(connection: Connection) -> None:
        operation = _raw_operation(connection, db, "raw")
        _raw_transfer(connection, db, operation, book.alice, book.bob, amount)

    _refused(db, "amount", write)
    assert balance(db, book.bob).posted == 0


def test_the_database_refuses_mixing_currencies(db: Database, book: Book) -> None:
    def across(connection: Connection) -> None:
        operation = _raw_operation(connection, db, "raw")
        _raw_transfer(connection, db, operation, book.alice, book.usd_user, 5)

    def mislabelled(connection: Connection) -> None:
        operation = _raw_operation(connection, db, "raw")
        _raw_transfer(connection, db, operation, book.alice, book.bob, 5, currency="USD")

    _refused(db, "one currency", across)
    _refused(db, "one currency", mislabelled)
    assert_sound(db)


def test_the_database_refuses_a_second_use_of_an_idempotency_key(db: Database, book: Book) -> None:
    run(db, lambda tx: ledger.transfer(tx, "used", book.alice, book.bob, cny(1)))
    _refused(db, "idempotency_key", lambda connection: _raw_operation(connection, db, "used"))


def test_the_database_refuses_a_balance_under_its_floor(db: Database, book: Book) -> None:
    def overdraw(connection: Connection) -> None:
        operation = _raw_operation(connection, db, "raw")
        _raw_transfer(connection, db, operation, book.alice, book.bob, 10_001)

    def hold_too_much(connection: Connection) -> None:
        operation = _raw_operation(connection, db, "raw")
        _raw_transfer(
            connection, db, operation, book.alice, book.bob, 10_001, kind="pending", expires=True
        )

    _refused(db, "floor", overdraw)
    _refused(db, "floor", hold_too_much)
    assert balance(db, book.alice).available == 10_000


def test_the_database_refuses_to_change_or_delete_history(db: Database, book: Book) -> None:
    run(db, lambda tx: ledger.transfer(tx, "t", book.alice, book.bob, cny(1)))
    for statement in [
        "UPDATE ledger_transfers SET amount = 2",
        "DELETE FROM ledger_transfers",
        "UPDATE ledger_operations SET result = '{}'",
        "DELETE FROM ledger_operations",
    ]:
        _refused(db, "append-only", lambda connection, s=statement: connection.execute(text(s)))
    assert counts(db) == (2, 2)


def test_the_database_refuses_a_balance_that_is_not_its_history(db: Database, book: Book) -> None:
    alice = _raw_id(db, book.alice)
    bob = _raw_id(db, book.bob)
    run(db, lambda tx: ledger.transfer(tx, "t", book.alice, book.bob, cny(40)))
    newest = run(db, lambda tx: ledger.balance(tx, book.bob))  # bob was moved last
    assert newest.posted == 40

    def write(statement: str) -> Callable[[Connection], object]:
        return lambda connection: connection.execute(text(statement), {"a": alice, "b": bob})

    _refused(
        db, "only through transfers", write("UPDATE ledger_accounts SET balance = 1 WHERE id = :a")
    )
    _refused(
        db,
        "only through transfers",
        write("UPDATE ledger_accounts SET pending_debits = 1 WHERE id = :a"),
    )
    # Replaying the newest transfer's effect by hand is refused too (it was applied once).
    _refused(
        db,
        "only through transfers",
        write("UPDATE ledger_accounts SET balance = balance + 40 WHERE id = :b"),
    )
    _refused(
        db,
        "keeps its id, currency",
        write("UPDATE ledger_accounts SET currency = 'USD' WHERE id = :a"),
    )

    def open_with_money(connection: Connection) -> None:
        connection.execute(
            text(
                "INSERT INTO ledger_accounts (id, kind, currency, balance, pending_debits,"
                " pending_credits, created_at) VALUES (:id, 'user_balance', 'CNY', 500, 0, 0,"
                " CURRENT_TIMESTAMP)"
            ),
            {"id": _raw_id(db, uuid.uuid4())},
        )

    _refused(db, "opens empty", open_with_money)
    # The floor itself may change (an operator's limit); the CHECK still holds it.
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE ledger_accounts SET floor = -100 WHERE id = :a"), {"a": alice}
        )
    _refused(db, "floor", write("UPDATE ledger_accounts SET floor = 20000 WHERE id = :a"))
    assert_sound(db)


def test_the_database_resolves_a_hold_once_within_its_amount(
    db: Database, book: Book, clock: FrozenClock
) -> None:
    pending = _hold(db, book, clock, "h", 500)
    merchant_row = run(
        db,
        lambda tx: tx.session.scalar(
            select(LedgerTransfer.credit_account_id).where(LedgerTransfer.id == pending)
        ),
    )
    assert merchant_row is not None

    def second_phase(
        kind: str, amount: int, debit: uuid.UUID = book.alice
    ) -> Callable[[Connection], object]:
        def write(connection: Connection) -> None:
            operation = _raw_operation(connection, db, f"raw-{uuid.uuid4()}")
            _raw_transfer(
                connection, db, operation, debit, merchant_row, amount, kind=kind, pending=pending
            )

        return write

    _refused(db, "at most the pending amount", second_phase("post_pending", 501))
    _refused(db, "exactly the pending amount", second_phase("void_pending", 499))
    _refused(db, "same accounts", second_phase("post_pending", 100, debit=book.bob))
    with db.engine.begin() as connection:
        second_phase("post_pending", 200)(connection)
    _refused(db, "pending_id", second_phase("void_pending", 500))
    alice = balance(db, book.alice)
    assert (alice.posted, alice.pending_debits) == (9_800, 0)
    assert_sound(db)


# --- property: invariants after every step -------------------------------------------

STEP = st.one_of(
    st.tuples(st.just("transfer"), st.integers(0, 3), st.integers(0, 3), st.integers(-5, 4_000)),
    st.tuples(st.just("hold"), st.integers(0, 3), st.integers(0, 3), st.integers(1, 4_000)),
    st.tuples(st.just("post"), st.integers(0, 20), st.integers(0, 1), st.integers(1, 4_000)),
    st.tuples(st.just("void"), st.integers(0, 20), st.just(0), st.just(0)),
    st.tuples(st.just("retry"), st.integers(0, 20), st.just(0), st.just(0)),
    st.tuples(st.just("expire"), st.integers(1, 30), st.just(0), st.just(0)),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEP, min_size=1, max_size=12))
def test_random_operations_keep_every_invariant(
    db: Database, clock: FrozenClock, steps: list[tuple[str, int, int, int]]
) -> None:
    """A model of the balances in Python; after each step the ledger agrees with it,
    each balance equals its history, none is under its floor, each currency sums to 0."""

    def open_accounts(tx: Tx) -> list[uuid.UUID]:
        source = ledger.open_account(tx, kind="issuance", currency="CNY")
        users = [ledger.open_account(tx, kind="user_balance", currency="CNY") for _ in range(2)]
        shop = ledger.open_account(tx, kind="merchant_settlement", currency="CNY", shards=3)
        return [source, *users, shop]

    clock.advance(days=1)  # holds left open by an earlier example expire now, not below
    run(db, ledger.expire_pending)
    accounts = run(db, open_accounts)
    posted = dict.fromkeys(accounts, 0)
    reserved = dict.fromkeys(accounts, 0)
    floors = {accounts[0]: None, accounts[1]: 0, accounts[2]: 0, accounts[3]: 0}
    holds: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, int, Any]] = []  # open holds
    done: list[tuple[str, Callable[[Tx], ledger.Receipt]]] = []
    prefix = uuid.uuid4().hex

    def available(account: uuid.UUID) -> int | None:
        floor = floors[account]
        return None if floor is None else posted[account] - reserved[account] - floor

    for number, (kind, first, second, minor) in enumerate(steps):
        key = f"{prefix}-{number}"
        expected_error: str | None = None
        use_case: Callable[[Tx], ledger.Receipt] | None = None
        if kind in ("transfer", "hold"):
            debit, credit = accounts[first], accounts[second]
            room = available(debit)
            if minor <= 0:
                expected_error = "ledger.invalid_amount"
            elif debit == credit:
                expected_error = "ledger.same_account"
            elif room is not None and minor > room:
                expected_error = "ledger.insufficient_funds"
            if kind == "transfer":
                use_case = lambda tx, d=debit, c=credit, m=minor, k=key: ledger.transfer(  # noqa: E731
                    tx, k, d, c, cny(m)
                )
            else:
                expires = clock.now() + timedelta(minutes=10)
                use_case = lambda tx, d=debit, c=credit, m=minor, k=key, e=expires: ledger.hold(  # noqa: E731
                    tx, k, d, c, cny(m), expires_at=e
                )
            if expected_error is None:
                if kind == "transfer":
                    posted[debit] -= minor
                    posted[credit] += minor
                else:
                    reserved[debit] += minor
        elif kind in ("post", "void"):
            if not holds:
                continue
            pending, debit, credit, amount, expires_at = holds.pop(first % len(holds))
            if kind == "post":
                part = min(minor, amount) if second else None
                use_case = lambda tx, p=pending, k=key, m=part: ledger.post_pending(  # noqa: E731
                    tx, k, p, None if m is None else cny(m)
                )
                if expires_at <= clock.now():
                    expected_error = "ledger.pending_expired"
                    holds.append((pending, debit, credit, amount, expires_at))
                else:
                    moved = amount if part is None else part
                    posted[debit] -= moved
                    posted[credit] += moved
                    reserved[debit] -= amount
            else:
                use_case = lambda tx, p=pending, k=key: ledger.void_pending(tx, k, p)  # noqa: E731
                reserved[debit] -= amount
        elif kind == "retry":
            if not done:
                continue
            retry_key, retry = done[first % len(done)]
            assert run(db, retry).replayed, retry_key
        else:  # expire
            clock.advance(minutes=first)
            expired = [h for h in holds if h[4] <= clock.now()]
            assert run(db, ledger.expire_pending) == len(expired)
            for hold_row in expired:
                holds.remove(hold_row)
                reserved[hold_row[1]] -= hold_row[3]

        if use_case is not None:
            if expected_error is not None:
                with pytest.raises(QianbaoError) as refusal:
                    run(db, use_case)
                assert refusal.value.code == expected_error
            else:
                receipt = run(db, use_case)
                done.append((key, use_case))
                if kind == "hold":
                    holds.append(
                        (
                            receipt.transfer_ids[0],
                            accounts[first],
                            accounts[second],
                            minor,
                            clock.now() + timedelta(minutes=10),
                        )
                    )

        for account in accounts:
            actual = balance(db, account)
            assert (actual.posted, actual.pending_debits) == (posted[account], reserved[account])
        assert_sound(db)
