"""Operations submitted together share one transaction; each caller still gets its own
answer, a refused one is rolled back alone, and nobody hears "done" before the COMMIT."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from contextvars import ContextVar

import pytest
from sqlalchemy import event

from qianbao import batching
from qianbao.db import Database, Tx
from qianbao.errors import Conflict, QianbaoError
from qianbao.money import Money
from qianbao.wallet.ledger import service as ledger

GROUPED: ContextVar[str] = ContextVar("grouped_test_caller", default="nobody")


def cny(minor: int) -> Money:
    return Money("CNY", minor)


def accounts(db: Database, funded: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """An issuance account, and ``funded`` people with CNY 10.00 each."""

    def open_all(tx: Tx) -> tuple[uuid.UUID, list[uuid.UUID]]:
        issuance = ledger.open_account(tx, kind="issuance", currency="CNY")
        people = [
            ledger.open_account(tx, kind="user_balance", currency="CNY") for _ in range(funded)
        ]
        for n, person in enumerate(people):
            ledger.transfer(tx, f"fund:{n}", issuance, person, cny(1000))
        return issuance, people

    return db.run(open_all)


def commits(db: Database) -> list[int]:
    counted: list[int] = []
    event.listen(db.engine, "commit", lambda _conn: counted.append(1))
    return counted


def together(db: Database, jobs: list[Callable[[], object]]) -> list[object]:
    """Run ``jobs`` from as many threads at once; their answers (or errors), in order."""
    answers: list[object] = [None] * len(jobs)

    def runner(index: int) -> None:
        try:
            answers[index] = jobs[index]()
        except Exception as error:
            answers[index] = error

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def test_concurrent_transfers_share_transactions_and_each_gets_its_own_answer(
    db: Database,
) -> None:
    issuance, people = accounts(db, 8)
    first_is_running = threading.Event()
    others_submitted = threading.Event()
    group = batching.batcher(db, "read committed")

    def slow_first(tx: Tx) -> str:
        first_is_running.set()
        others_submitted.wait(timeout=30)  # hold the lead while the others queue up
        return "first"

    def pay_back(n: int) -> Callable[[], object]:
        def job() -> object:
            first_is_running.wait(timeout=30)
            return batching.run(
                db,
                lambda tx: (
                    ledger.transfer(tx, f"back:{n}", people[n], issuance, cny(100)).operation_id
                ),
                isolation="read committed",
            )

        return job

    counted = commits(db)
    leader = threading.Thread(
        target=lambda: batching.run(db, slow_first, isolation="read committed")
    )
    leader.start()
    first_is_running.wait(timeout=30)
    waiting = threading.Thread(target=lambda: together(db, [pay_back(n) for n in range(8)]))
    waiting.start()
    while len(group._queue) < 8:
        threading.Event().wait(0.01)
    others_submitted.set()
    leader.join(timeout=60)
    waiting.join(timeout=60)
    assert group.operations_run == 9
    assert group.groups_run == 2  # the slow first one, then the eight together
    assert len(counted) == 1  # the slow one touched no table: the eight, one COMMIT
    balances = db.run(lambda tx: [ledger.balance(tx, p).posted for p in people])
    assert balances == [900] * 8


def test_a_refused_operation_is_rolled_back_alone(db: Database) -> None:
    issuance, people = accounts(db, 2)

    def two_then_fail(tx: Tx) -> str:
        ledger.transfer(tx, "ok-part", people[0], issuance, cny(100))
        raise Conflict("test.refused", "refused after writing")

    # The refused one wrote before it was refused: its savepoint takes that back.
    group = batching.batcher(db, "read committed")
    answers = together(
        db,
        [
            lambda: batching.run(db, two_then_fail, isolation="read committed"),
            lambda: batching.run(
                db,
                lambda tx: ledger.transfer(tx, "kept", people[1], issuance, cny(300)).operation_id,
                isolation="read committed",
            ),
        ],
    )
    assert isinstance(answers[0], Conflict) and answers[0].code == "test.refused"
    assert isinstance(answers[1], uuid.UUID)
    balances = db.run(lambda tx: [ledger.balance(tx, p).posted for p in people])
    assert balances == [1000, 700]
    assert group.operations_run == 2


def test_insufficient_funds_refuses_only_the_one_that_overdraws(db: Database) -> None:
    issuance, people = accounts(db, 1)
    jobs: list[Callable[[], object]] = [
        (
            lambda n=n: batching.run(
                db,
                lambda tx: (
                    ledger.transfer(tx, f"spend:{n}", people[0], issuance, cny(300)).operation_id
                ),
                isolation="read committed",
            )
        )
        for n in range(5)
    ]
    answers = together(db, jobs)
    refused = [a for a in answers if isinstance(a, QianbaoError)]
    assert len(refused) == 2  # CNY 10.00 pays three of CNY 3.00, never four
    assert all(isinstance(a, uuid.UUID) for a in answers if a not in refused)
    assert db.run(lambda tx: ledger.balance(tx, people[0]).posted) == 100


def test_each_operation_runs_in_its_callers_context(db: Database) -> None:
    seen: list[tuple[str, str]] = []

    def as_caller(name: str) -> Callable[[], object]:
        def job() -> object:
            GROUPED.set(name)
            return batching.run(
                db, lambda tx: seen.append((name, GROUPED.get())), isolation="read committed"
            )

        return job

    together(db, [as_caller(f"caller-{n}") for n in range(6)])
    assert sorted(seen) == sorted((f"caller-{n}", f"caller-{n}") for n in range(6))


def test_a_keeping_refusal_keeps_its_change_and_is_reported(db: Database) -> None:
    issuance, people = accounts(db, 1)

    class KeptRefusal(Conflict):
        keeps_changes = True

    def count_then_refuse(tx: Tx) -> None:
        ledger.transfer(tx, "counted", people[0], issuance, cny(100))
        raise KeptRefusal("test.kept", "refused, change kept")

    with pytest.raises(KeptRefusal):
        batching.run(db, count_then_refuse, isolation="read committed")
    assert db.run(lambda tx: ledger.balance(tx, people[0]).posted) == 900


def test_with_batches_off_it_is_database_run(db: Database) -> None:
    alone = Database(db.settings.model_copy(update={"money_batch_max": 1}), db.clock)
    issuance, people = accounts(alone, 1)
    batching.run(
        alone,
        lambda tx: ledger.transfer(tx, "alone", people[0], issuance, cny(100)),
        isolation="read committed",
    )
    assert batching.batcher(alone, "read committed").operations_run == 0
    assert alone.run(lambda tx: ledger.balance(tx, people[0]).posted) == 900
    alone.dispose()


def in_one_group(db: Database, jobs: list[Callable[[], object]]) -> list[object]:
    """Run ``jobs`` as one group: a slow operation holds the lead until all are queued."""
    holding, queued = threading.Event(), threading.Event()
    group = batching.batcher(db, "read committed")

    def hold(tx: Tx) -> None:
        holding.set()
        queued.wait(timeout=30)

    leader = threading.Thread(target=lambda: batching.run(db, hold, isolation="read committed"))
    leader.start()
    holding.wait(timeout=30)
    answers: list[object] = []
    waiting = threading.Thread(target=lambda: answers.extend(together(db, jobs)))
    waiting.start()
    while len(group._queue) < len(jobs):
        threading.Event().wait(0.01)
    queued.set()
    leader.join(timeout=60)
    waiting.join(timeout=60)
    return answers


def savepoints(db: Database) -> list[str]:
    seen: list[str] = []
    event.listen(
        db.engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: (
            seen.append(statement) if statement.startswith("SAVEPOINT") else None
        ),
    )
    return seen


def test_a_first_step_that_answers_needs_no_savepoint(db: Database) -> None:
    """The payments' one database call: in a group, an operation whose first step answers
    opens no savepoint; one whose first step declines runs the rest in its own."""
    issuance, people = accounts(db, 6)

    def operation(n: int) -> Callable[[], object]:
        def move(tx: Tx) -> object:
            return ledger.transfer(tx, f"rest:{n}", people[n], issuance, cny(100)).operation_id

        def first(tx: Tx) -> object | None:
            return None if n % 2 else move(tx)

        return lambda: batching.run(db, move, isolation="read committed", first=first)

    opened = savepoints(db)
    answers = in_one_group(db, [operation(n) for n in range(6)])
    assert all(isinstance(answer, uuid.UUID) for answer in answers)
    assert len(opened) == 3  # the three that declined
    balances = db.run(lambda tx: [ledger.balance(tx, p).posted for p in people])
    assert balances == [900] * 6


def test_a_first_step_that_fails_fails_its_whole_group(db: Database) -> None:
    """A first step has no savepoint to roll back to: its error fails the group, and
    nothing of the group commits (each caller gets the error; their keys make a retry
    safe)."""
    issuance, people = accounts(db, 3)

    def operation(n: int) -> Callable[[], object]:
        def move(tx: Tx) -> object:
            return ledger.transfer(tx, f"doomed:{n}", people[n], issuance, cny(100)).operation_id

        def first(tx: Tx) -> object | None:
            move(tx)
            if n == 2:
                raise RuntimeError("a bug in a first step")
            return "done"

        return lambda: batching.run(db, move, isolation="read committed", first=first)

    answers = in_one_group(db, [operation(n) for n in range(3)])
    assert all(isinstance(answer, RuntimeError) for answer in answers)
    balances = db.run(lambda tx: [ledger.balance(tx, p).posted for p in people])
    assert balances == [1000] * 3


def test_alone_or_with_batches_off_the_first_step_runs_first(db: Database) -> None:
    alone = Database(db.settings.model_copy(update={"money_batch_max": 1}), db.clock)
    steps: list[str] = []
    for database in (db, alone):
        answer = batching.run(
            database,
            lambda tx: steps.append("rest") or "rest",
            isolation="read committed",
            first=lambda tx: steps.append("first") or None,
        )
        assert answer == "rest"
        answer = batching.run(
            database,
            lambda tx: steps.append("rest") or "rest",
            isolation="read committed",
            first=lambda tx: "first",
        )
        assert answer == "first"
    assert steps == ["first", "rest", "first", "rest"]
    alone.dispose()
