"""The database: engine, table base, and one transaction per use case.

A use case is a function ``fn(tx) -> result``. ``Database.run`` gives it a fresh
transaction, commits once when it returns, rolls back when it raises, and runs it
again from the start when the database reports a serialization failure (PostgreSQL
runs at SERIALIZABLE, as CockroachDB always does). Services flush, never commit.
Work for after the commit (delivering an SMS) is registered with ``tx.after_commit``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Engine, Result
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.expression import Executable
from sqlalchemy.types import TypeDecorator

from qianbao.clock import Clock, SystemClock
from qianbao.errors import QianbaoError
from qianbao.private_files import touch_private
from qianbao.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def new_id() -> uuid.UUID:
    # Random keys: no global sequence, so no hot range on a distributed database.
    return uuid.uuid4()


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python on every database (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use clock.now()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass
class Tx:
    """What a use case gets: the session, the clock, the settings, after-commit work."""

    session: Session
    clock: Clock
    settings: Settings
    db: Database
    _after_commit: list[Callable[[], None]] = field(default_factory=list)
    _kept: list[object] = field(default_factory=list)
    committing: bool = False  # COMMIT was sent: a lost connection leaves the outcome unknown

    def now(self) -> datetime:
        return self.clock.now()

    def after_commit(self, work: Callable[[], None]) -> None:
        self._after_commit.append(work)

    def keep(self, row: R) -> R:
        """``row`` held until the transaction ends. The session remembers what it loaded
        only while something refers to it: a row turned into a view and dropped (the
        signed-in person's, read by several checks of one transfer) was loaded again from
        the database by each ``Session.get``."""
        self._kept.append(row)
        return row

    def read(self, statement: Executable, parameters: Mapping[str, Any]) -> Result[Any]:
        """A Core statement built once, run straight on the transaction's connection after
        the session's pending writes (as the ORM's autoflush would). For the reads every
        money operation makes: the ORM's execution path costs more than such a read."""
        self.session.flush()  # nothing to do, and nearly free, when nothing is pending
        return self.session.connection().execute(statement, parameters)


# A check that opens the current request's first transaction (the request's session
# still alive), set by the gate where it took the session from its cache: the check then
# costs one statement inside the request's own transaction instead of a transaction of
# its own. Only the first one that commits: a later transaction of the same request may
# be the second half of an operation (recording a card network's answer) that must not
# be stopped halfway. A context variable because it belongs to one request (each request
# is a task with its own context; a handler's thread gets a copy, which shares the
# mutable guard, so "done" is seen by every copy).
@dataclass
class Guard:
    check: Callable[[Tx], None]
    done: bool = False


_GUARD: ContextVar[Guard | None] = ContextVar("qianbao_tx_guard", default=None)


def guard_first_transaction(check: Callable[[Tx], None]) -> None:
    """Run ``check`` first in the current request's first transaction from now on (in
    each attempt until one commits); if it raises, that transaction does nothing else."""
    _GUARD.set(Guard(check))


def check_guard(tx: Tx) -> Guard | None:
    """Run the current request's pending guard in ``tx``; the guard returned is to be
    marked done once ``tx`` commits."""
    guard = _GUARD.get()
    if guard is None or guard.done:
        return None
    guard.check(tx)
    return guard


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _configure_sqlite(engine)
        return engine
    # No pre-ping: it is a round trip before every transaction. A connection the server
    # closed meanwhile fails on the transaction's first statement instead, and
    # ``Database.run`` retries that transaction on a fresh one (nothing was committed).
    return create_engine(
        url,
        isolation_level="SERIALIZABLE",
        pool_size=20,
        max_overflow=20,
        pool_pre_ping=False,
        pool_recycle=1800,
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock at the start: a transaction that reads, then writes,
        # cannot then fail half-way on a lock upgrade. SQLite runs writers one at a
        # time, which makes every use case serializable there.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def is_retryable(error: BaseException) -> bool:
    if not isinstance(error, DBAPIError):
        return False
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate in {"40001", "40P01"}:  # serialization_failure, deadlock_detected
        return True
    return isinstance(error, OperationalError) and "database is locked" in str(error.orig)


def _stale(error: DBAPIError, tx: Tx) -> bool:
    """A pooled connection that the server had closed: safe to run again on a fresh one
    unless the COMMIT itself was under way (then the outcome is unknown, and the client
    retries under its idempotency key)."""
    return bool(error.connection_invalidated) and not tx.committing


DatabaseFailure = Literal["constraint", "contention", "unavailable", "other"]


def classify_failure(error: DBAPIError) -> DatabaseFailure:
    """What a database error that reached the edge means for the client.

    ``constraint``: a constraint fired, a race or a bug the code did not foresee (the
    answer is a 409 and an error in the log, never "busy"); ``contention``: serialization
    failures or locks that outlasted every retry (503, try again); ``unavailable``: the
    database cannot be reached (503); ``other``: a bug (500).
    """
    if isinstance(error, IntegrityError):
        return "constraint"
    if is_retryable(error):
        return "contention"
    if isinstance(error, OperationalError | InterfaceError) or error.connection_invalidated:
        return "unavailable"
    return "other"


class Database:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        sqlite_path = settings.sqlite_path()
        if sqlite_path is not None:
            touch_private(sqlite_path)  # the owner's alone (0600) before SQLite opens it
        self.engine = make_engine(settings.database_url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=True)
        # For small transactions on hot rows (shared quotas) that take their locks
        # explicitly: no serialization failures, exact because of the row lock.
        read_committed = (
            self.engine.execution_options(isolation_level="READ COMMITTED")
            if self.engine.dialect.name == "postgresql"
            else self.engine
        )
        self._read_committed_sessions = sessionmaker(
            read_committed, expire_on_commit=False, autoflush=True
        )
        # SQLite runs one writer at a time and makes the others poll with growing sleeps,
        # which gives long tails under load; threads of one process queue here instead.
        self._writer_turn: AbstractContextManager[object] = (
            threading.Lock() if self.engine.dialect.name == "sqlite" else nullcontext()
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def run(
        self,
        use_case: Callable[[Tx], T],
        *,
        attempts: int = 30,
        isolation: Literal["serializable", "read committed"] = "serializable",
    ) -> T:
        """Run ``use_case`` in one transaction, retrying on serialization failures.

        ``read committed`` is for short transactions that lock what they read (see
        ``risk.quotas``); everything else runs serializable (SQLite: one writer at a time).
        """
        sessions = self._sessions if isolation == "serializable" else self._read_committed_sessions
        for attempt in range(1, attempts + 1):
            tx = Tx(sessions(), self.clock, self.settings, self)
            try:
                with self._writer_turn:
                    result = self._run_once(tx, use_case)
            except DBAPIError as error:
                if attempt == attempts or not (is_retryable(error) or _stale(error, tx)):
                    raise
                log.info("retrying after %s (attempt %d)", type(error.orig).__name__, attempt)
                # Full jitter, capped: contenders for one hot row spread out quickly.
                time.sleep(random.uniform(0, min(0.2, 0.002 * 2**attempt)))  # noqa: S311
                continue
            for work in tx._after_commit:
                try:
                    work()
                except Exception:  # after-commit work must never undo a committed answer
                    log.exception("after-commit work failed; the worker will retry it")
            return result
        raise AssertionError("unreachable")

    @staticmethod
    def _run_once(tx: Tx, use_case: Callable[[Tx], T]) -> T:
        with tx.session:
            try:
                guard = check_guard(tx)
                result = use_case(tx)
                tx.committing = True
                tx.session.commit()
                if guard is not None:
                    guard.done = True
                return result
            except QianbaoError as error:
                if error.keeps_changes:
                    tx.session.commit()
                else:
                    tx.session.rollback()
                raise
            except BaseException:
                tx.session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()
