"""The ledger under concurrency: many threads (and, on PostgreSQL, processes) move money
between a few accounts at once, retry their idempotency keys, race each other on shared
keys, and fail half-way through use cases. Afterwards the books must be exact."""

from __future__ import annotations

import multiprocessing
import random
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from qianbao.clock import Clock, SystemClock
from qianbao.db import Database, Tx
from qianbao.errors import QianbaoError
from qianbao.money import Money
from qianbao.settings import Settings
from qianbao.wallet.ledger import audit as ledger_audit
from qianbao.wallet.ledger import service as ledger
from qianbao.wallet.ledger.models import LedgerOperation, LedgerTransfer

USERS = 8
SEED = 20_000
ISOLATION = "read committed"


class InjectedFailure(Exception):
    """Raised inside a use case after it has written: the transaction must roll back."""


@dataclass(frozen=True)
class Accounts:
    issuance: uuid.UUID
    users: tuple[uuid.UUID, ...]
    merchant: uuid.UUID
    fees: uuid.UUID


@dataclass
class Tally:
    """What one worker saw acknowledged, and what it made fail on purpose."""

    acknowledged: dict[str, uuid.UUID] = field(default_factory=dict)  # key -> operation
    first_tries: Counter[str] = field(default_factory=Counter)  # key -> non-replayed answers
    rolled_back: list[str] = field(default_factory=list)
    refusals: Counter[str] = field(default_factory=Counter)


def open_books(db: Database) -> Accounts:
    def open_all(tx: Tx) -> Accounts:
        return Accounts(
            issuance=ledger.open_account(tx, kind="issuance", currency="CNY"),
            users=tuple(
                ledger.open_account(tx, kind="user_balance", currency="CNY") for _ in range(USERS)
            ),
            merchant=ledger.open_account(tx, kind="merchant_settlement", currency="CNY", shards=4),
            fees=ledger.open_account(tx, kind="fee_income", currency="CNY"),
        )

    accounts = db.run(open_all)
    for number, user in enumerate(accounts.users):
        db.run(
            lambda tx, n=number, u=user: ledger.transfer(
                tx, f"seed-{n}", accounts.issuance, u, Money("CNY", SEED)
            ),
            isolation=ISOLATION,
        )
    return accounts


def _payment(accounts: Accounts, payer: uuid.UUID, price: int, key: str) -> Any:
    fee = max(1, price // 100)

    def build(booking: ledger.Booking) -> dict[str, Any]:
        booking.transfer(payer, accounts.merchant, Money("CNY", price))
        booking.transfer(accounts.merchant, accounts.fees, Money("CNY", fee))
        return {"price": price, "fee": fee}

    def use_case(tx: Tx) -> ledger.Receipt:
        return ledger.execute(tx, key, {"payer": payer, "price": price, "fee": fee}, build)

    return use_case


def _hold(accounts: Accounts, payer: uuid.UUID, key: str, expires: datetime) -> Any:
    def use_case(tx: Tx) -> ledger.Receipt:
        amount = Money("CNY", 400)
        return ledger.hold(tx, key, payer, accounts.merchant, amount, expires_at=expires)

    return use_case


def _settle(key: str, pending: uuid.UUID) -> Any:
    def use_case(tx: Tx) -> ledger.Receipt:
        if key.endswith("-post"):
            return ledger.post_pending(tx, key, pending, Money("CNY", 250))
        return ledger.void_pending(tx, key, pending)

    return use_case


def work(
    db: Database, accounts: Accounts, worker: int, operations: int, seed: int, clock: Clock
) -> Tally:
    """One client: random operations, each checked against what it must give back."""
    rng = random.Random(seed)  # reproducible test traffic
    tally = Tally()
    mine = f"w{worker}-{seed}"

    def record(key: str, receipt: ledger.Receipt) -> None:
        earlier = tally.acknowledged.setdefault(key, receipt.operation_id)
        assert earlier == receipt.operation_id, key
        if not receipt.replayed:
            tally.first_tries[key] += 1

    for number in range(operations):
        choice = rng.random()
        key = f"{mine}-{number}"
        payer, payee = rng.sample(accounts.users, 2)
        try:
            if number % 5 == 4:  # writes, then fails: nothing of it may remain
                amount = Money("CNY", rng.randint(1, 300))

                def fail_half_way(
                    tx: Tx,
                    k: str = key,
                    a: Money = amount,
                    payer: uuid.UUID = payer,
                    payee: uuid.UUID = payee,
                ) -> None:
                    # Two operations, then a failure. The second touches only rows the
                    # first has locked: a new lock taken after others would break the
                    # one lock order and could deadlock (see qianbao.wallet.ledger).
                    ledger.transfer(tx, k + "-a", payer, payee, a)
                    ledger.transfer(tx, k + "-b", payee, payer, a)
                    raise InjectedFailure(k)

                tally.rolled_back += [key + "-a", key + "-b"]
                with pytest.raises(InjectedFailure):
                    db.run(fail_half_way, isolation=ISOLATION)
            elif choice < 0.4:  # a payment and its fee, both or neither
                use_case = _payment(accounts, payer, rng.randint(100, 1_500), key)
                record(key, db.run(use_case, isolation=ISOLATION))
            elif choice < 0.6:  # a transfer; the answer is lost, so the client retries
                amount = Money("CNY", rng.randint(1, 800))

                def pay(
                    tx: Tx,
                    k: str = key,
                    a: Money = amount,
                    payer: uuid.UUID = payer,
                    payee: uuid.UUID = payee,
                ) -> ledger.Receipt:
                    return ledger.transfer(tx, k, payer, payee, a)

                first = db.run(pay, isolation=ISOLATION)
                again = db.run(pay, isolation=ISOLATION)
                assert again.replayed and again.operation_id == first.operation_id
                record(key, first)
                record(key, again)
            elif choice < 0.8:  # a key shared by all workers: one of them moves money
                shared = f"shared-{rng.randint(0, 15)}"
                use_case = _payment(accounts, accounts.users[0], 50, shared)
                record(shared, db.run(use_case, isolation=ISOLATION))
            else:  # a hold, then posted in part or voided
                expires = clock.now() + timedelta(hours=1)
                hold = _hold(accounts, payer, key, expires)
                held = db.run(hold, isolation=ISOLATION)
                record(key, held)
                settle_key = key + ("-post" if rng.random() < 0.5 else "-void")
                settle = _settle(settle_key, held.transfer_ids[0])
                record(settle_key, db.run(settle, isolation=ISOLATION))
        except QianbaoError as refusal:
            # Only honest refusals: a payer without enough money.
            assert refusal.code == "ledger.insufficient_funds", refusal
            tally.refusals[refusal.code] += 1
    return tally


def check_books(db: Database, accounts: Accounts, tallies: list[Tally]) -> None:
    audit = db.run(ledger_audit.audit)
    assert audit.balances_off_history == []
    assert audit.below_floor == []
    assert audit.currency_totals == {"CNY": 0}
    total_users = sum(db.run(lambda tx, u=u: ledger.balance(tx, u)).posted for u in accounts.users)
    merchant = db.run(lambda tx: ledger.balance(tx, accounts.merchant)).posted
    fees = db.run(lambda tx: ledger.balance(tx, accounts.fees)).posted
    assert total_users + merchant + fees == USERS * SEED  # money only moved around

    acknowledged: dict[str, uuid.UUID] = {}
    first_tries: Counter[str] = Counter()
    for tally in tallies:
        for key, operation in tally.acknowledged.items():
            assert acknowledged.setdefault(key, operation) == operation, key
        first_tries.update(tally.first_tries)
    # A key moved money at most once, however many clients sent it.
    assert all(count == 1 for count in first_tries.values()), first_tries.most_common(3)

    def stored(tx: Tx) -> dict[str, uuid.UUID]:
        rows = tx.session.execute(select(LedgerOperation.idempotency_key, LedgerOperation.id))
        return {str(key): operation for key, operation in rows}

    operations = db.run(stored)
    for key, operation in acknowledged.items():
        assert operations.get(key) == operation, key
    rolled_back = [key for tally in tallies for key in tally.rolled_back]
    assert not set(rolled_back) & set(operations)

    def orphans(tx: Tx) -> int:
        known = select(LedgerOperation.id)
        return int(
            tx.session.scalar(
                select(func.count())
                .select_from(LedgerTransfer)
                .where(LedgerTransfer.operation_id.not_in(known))
            )
            or 0
        )

    assert db.run(orphans) == 0


def test_threads_keep_the_books_exact(db: Database) -> None:
    accounts = open_books(db)
    threads_count, per_thread = 8, 30
    tallies: list[Tally] = [Tally() for _ in range(threads_count)]
    errors: list[BaseException] = []
    start = threading.Barrier(threads_count)

    def client(worker: int) -> None:
        try:
            start.wait()
            tallies[worker] = work(db, accounts, worker, per_thread, 1000 + worker, db.clock)
        except BaseException as error:  # reported below, with the test's failure
            errors.append(error)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert all(tally.rolled_back for tally in tallies)  # every client failed some on purpose
    check_books(db, accounts, tallies)


def test_holds_race_their_expiry_sweep(db: Database) -> None:
    """Posts and the expiry sweep race for the same holds: each is resolved once."""
    accounts = open_books(db)
    clock = db.clock
    holds = []
    for number in range(24):
        receipt = db.run(
            lambda tx, n=number: ledger.hold(
                tx,
                f"race-{n}",
                accounts.users[n % USERS],
                accounts.merchant,
                Money("CNY", 100),
                expires_at=clock.now() + timedelta(seconds=1),
            ),
            isolation=ISOLATION,
        )
        holds.append(receipt.transfer_ids[0])
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def poster(part: list[uuid.UUID]) -> None:
        for pending in part:
            try:
                db.run(
                    lambda tx, p=pending: ledger.post_pending(tx, f"post-{p}", p),
                    isolation=ISOLATION,
                )
                result = "posted"
            except QianbaoError as refusal:
                result = refusal.code
            with lock:
                outcomes[result] += 1

    def sweeper() -> None:
        for _ in range(5):
            swept = db.run(ledger.expire_pending, isolation=ISOLATION)
            with lock:
                outcomes["swept"] += swept

    if hasattr(clock, "advance"):
        clock.advance(seconds=0.5)
    threads = [threading.Thread(target=poster, args=(holds[n::3],)) for n in range(3)]
    threads += [threading.Thread(target=sweeper) for _ in range(2)]
    for thread in threads:
        thread.start()
        if thread is threads[2] and hasattr(clock, "advance"):
            clock.advance(seconds=1)  # the holds expire while the posters are at work
    for thread in threads:
        thread.join(timeout=60)
    db.run(ledger.expire_pending, isolation=ISOLATION)

    def resolutions(tx: Tx) -> Counter[str]:
        rows = tx.session.execute(
            select(LedgerTransfer.kind, func.count())
            .where(LedgerTransfer.pending_id.in_(holds))
            .group_by(LedgerTransfer.kind)
        )
        return Counter({kind: int(count) for kind, count in rows})

    resolved = db.run(resolutions)
    assert resolved["post_pending"] + resolved["void_pending"] == len(holds)
    assert resolved["post_pending"] == outcomes["posted"]
    assert set(outcomes) <= {"posted", "swept", "ledger.pending_resolved", "ledger.pending_expired"}
    check_books(db, accounts, [])


# --- several processes, PostgreSQL only ------------------------------------------------


def _process_client(args: tuple[str, Accounts, int, int]) -> Tally:
    url, accounts, worker, operations = args
    database = Database(Settings(database_url=url), SystemClock())
    try:
        return work(database, accounts, worker, operations, 5000 + worker, database.clock)
    finally:
        database.dispose()


def test_processes_keep_the_books_exact(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("several processes share one database server on PostgreSQL")
    accounts = open_books(db)
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        tallies = pool.map(
            _process_client, [(db.settings.database_url, accounts, n, 30) for n in range(4)]
        )
    assert all(tally.rolled_back for tally in tallies)
    check_books(db, accounts, tallies)
