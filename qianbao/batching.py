"""Money operations that arrive together share one transaction, unseen by their callers.

A payment's own work is a dozen statements; what it cannot share alone is the
transaction around them: BEGIN, COMMIT and the commit's wait for the log to reach the
disk. ``run`` groups the operations that threads of one process submit while another
group is in the database (group commit, as TigerBeetle batches transfers and as
PostgreSQL itself groups WAL flushes):

- No extra thread. The first caller to find nobody leading becomes the leader: it takes
  what is queued (at most ``money_batch_max``), runs it as one transaction, hands each
  caller its own answer, and passes the lead to a waiting caller if more came meanwhile.
  Alone, an operation runs exactly as ``Database.run`` would run it.
- In a group of two or more, each operation runs inside a SAVEPOINT, in order, in its
  caller's own context (its language, its request's session check). One that is
  refused rolls back to its savepoint alone (or keeps what its refusal keeps, such as a
  wrong payment password's count) and its caller gets the refusal; the others commit.
- An operation may bring a first step that needs no savepoint (``run``'s ``first``): a
  payment that one database call either makes whole or leaves untouched. It runs before
  the savepoint, which is opened only when the step declines (two round trips saved per
  operation, a tenth of a grouped payment's CPU). Since it has no savepoint of its own,
  an error inside it fails the whole group (every caller gets it, nothing commits).
- A serialization failure or deadlock anywhere runs the whole group again, each
  operation from its start, as ``Database.run`` does for one. Every operation is
  idempotent under its own key, so running again cannot do anything twice.
- Nobody gets an answer before the group's COMMIT: a caller told "paid" is paid, and a
  refusal that keeps a change (the wrong PIN's count) is reported only once it is kept.

Locks: operations of one group lock rows in the order they run, inside one transaction,
so they cannot deadlock with each other; between groups of different processes, the rows
every operation locks first (the payer's wallets, claimed by owner key) decide the
order, and a deadlock that still happens is retried like any other.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar, cast
from weakref import WeakKeyDictionary

from sqlalchemy.exc import DBAPIError

from qianbao.db import Database, Guard, Tx, check_guard, is_retryable
from qianbao.errors import QianbaoError
from qianbao.observability import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")
Isolation = Literal["serializable", "read committed"]


@dataclass
class _Submitted(Generic[T]):
    """One caller's operation, its context, and (once the group committed) its answer."""

    use_case: Callable[[Tx], T]
    context: contextvars.Context
    first: Callable[[Tx], T | None] | None = None
    answered: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # set with ``answered`` when this caller is to lead the next group
    result: T | None = None
    error: BaseException | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return cast(T, self.result)


@dataclass
class _Done:
    """What one operation left inside the group's transaction."""

    result: object = None
    error: BaseException | None = None
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    guard: Guard | None = None


class Batcher:
    """The groups of one database and isolation level."""

    def __init__(self, db: Database, isolation: Isolation) -> None:
        self._db = db
        self._isolation = isolation
        self._lock = threading.Lock()
        self._queue: list[_Submitted[object]] = []
        self._leading = False
        self.groups_run = 0  # read by tests and the metrics: groups, and operations in them
        self.operations_run = 0

    def run(self, use_case: Callable[[Tx], T], first: Callable[[Tx], T | None] | None) -> T:
        mine: _Submitted[T] = _Submitted(use_case, contextvars.copy_context(), first)
        with self._lock:
            self._queue.append(cast(_Submitted[object], mine))
            lead = not self._leading
            self._leading = True
        while not lead:
            mine.answered.wait()
            if not mine.lead:
                return mine.outcome()
            mine.answered.clear()
            mine.lead, lead = False, True
        self._lead_until_answered(mine)
        return mine.outcome()

    def _lead_until_answered(self, mine: _Submitted[T]) -> None:
        while not mine.answered.is_set():
            with self._lock:
                limit = max(1, self._db.settings.money_batch_max)
                group, self._queue = self._queue[:limit], self._queue[limit:]
            self._run_group(group)
        with self._lock:  # hand the lead on, or give it up when nobody waits
            if self._queue:
                successor = self._queue[0]
                successor.lead = True
                successor.answered.set()
            else:
                self._leading = False

    def _run_group(self, group: list[_Submitted[object]]) -> None:
        if len(group) == 1:
            self._run_alone(group[0])
            return

        def all_of_them(tx: Tx) -> list[_Done]:
            return [_run_one(tx, submitted) for submitted in group]

        try:
            # A fresh context: the leader's own request guard must not open the group.
            done = contextvars.Context().run(self._db.run, all_of_them, isolation=self._isolation)
        except BaseException as error:  # the group failed as one (after its retries)
            for submitted in group:
                submitted.error = error
                submitted.answered.set()
            return
        self.groups_run += 1
        self.operations_run += len(group)
        metrics.money_group(len(group))
        for submitted, outcome in zip(group, done, strict=True):
            _answer(submitted, outcome)

    def _run_alone(self, submitted: _Submitted[object]) -> None:
        """An operation with nobody to share with: its own transaction, exactly as
        ``Database.run`` runs it (a savepoint would only add two round trips)."""
        try:
            submitted.result = submitted.context.run(
                self._db.run, _whole(submitted.use_case, submitted.first), isolation=self._isolation
            )
        except BaseException as error:  # the caller's to raise, as in a group
            submitted.error = error
        if not isinstance(submitted.error, DBAPIError):  # ran, refused or not, as in a group
            self.groups_run += 1
            self.operations_run += 1
            metrics.money_group(1)
        submitted.answered.set()


def _run_one(tx: Tx, submitted: _Submitted[object]) -> _Done:
    """One operation in its caller's context: its first step, if it has one and it
    answers; else in its own savepoint."""
    own = Tx(tx.session, tx.clock, tx.settings, tx.db)
    outcome = _Done(after_commit=own._after_commit)
    guarded = False
    if submitted.first is not None:
        if _answered_first(own, submitted, outcome):
            return outcome
        guarded = True
    savepoint = tx.session.begin_nested()

    def attempt() -> None:
        if not guarded:
            outcome.guard = check_guard(own)
        outcome.result = submitted.use_case(own)

    try:
        submitted.context.run(attempt)
        savepoint.commit()
    except QianbaoError as error:
        if error.keeps_changes:
            savepoint.commit()
        else:
            savepoint.rollback()
            outcome.after_commit.clear()
        outcome.error = error
    except DBAPIError as error:
        if is_retryable(error) or error.connection_invalidated:
            raise  # the whole group runs again
        savepoint.rollback()
        outcome.after_commit.clear()
        outcome.error = error
    except Exception as error:
        savepoint.rollback()
        outcome.after_commit.clear()
        outcome.error = error
    return outcome


def _answered_first(own: Tx, submitted: _Submitted[object], outcome: _Done) -> bool:
    """The request's guard, then the operation's first step, with no savepoint: True when
    that answered it. The guard only reads, so its refusal is this operation's alone; any
    error of the step itself goes up and fails the group (there is nothing to roll back
    to), so a step must not raise what it could refuse."""
    assert submitted.first is not None
    try:
        outcome.guard = submitted.context.run(check_guard, own)
    except QianbaoError as error:
        outcome.error = error
        return True
    result = submitted.context.run(submitted.first, own)
    if result is None:
        return False
    outcome.result = result
    return True


def _whole(
    use_case: Callable[[Tx], T], first: Callable[[Tx], T | None] | None
) -> Callable[[Tx], T]:
    """The operation as one use case: its first step, then, if that declined, the rest."""
    if first is None:
        return use_case

    def both(tx: Tx) -> T:
        done = first(tx)
        return use_case(tx) if done is None else done

    return both


def _answer(submitted: _Submitted[object], outcome: _Done) -> None:
    if outcome.guard is not None:
        outcome.guard.done = True
    for work in outcome.after_commit:
        try:
            submitted.context.run(work)
        except Exception:  # as in Database.run: never undo a committed answer
            log.exception("after-commit work failed; the worker will retry it")
    submitted.result, submitted.error = outcome.result, outcome.error
    submitted.answered.set()


_BATCHERS: WeakKeyDictionary[Database, dict[Isolation, Batcher]] = WeakKeyDictionary()
_BATCHERS_LOCK = threading.Lock()


def batcher(db: Database, isolation: Isolation) -> Batcher:
    with _BATCHERS_LOCK:
        per_isolation = _BATCHERS.setdefault(db, {})
        found = per_isolation.get(isolation)
        if found is None:
            found = per_isolation[isolation] = Batcher(db, isolation)
        return found


def run(
    db: Database,
    use_case: Callable[[Tx], T],
    *,
    isolation: Isolation,
    first: Callable[[Tx], T | None] | None = None,
) -> T:
    """``db.run(use_case, isolation=...)``, in one transaction with the operations other
    threads submit meanwhile (see the module's docstring); the same answer either way.
    ``first``, when given, runs before ``use_case`` and answers instead of it unless it
    returns None, which it may only do having written nothing that would need undoing;
    in a group it runs without a savepoint."""
    if db.settings.money_batch_max <= 1:
        return db.run(_whole(use_case, first), isolation=isolation)
    return batcher(db, isolation).run(use_case, first)
