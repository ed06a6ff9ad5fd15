"""The database layer: migrations, SQLite settings, one transaction per use case, retries."""

from __future__ import annotations

import contextlib
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.pool import NullPool

from qianbao.db import Database, Tx
from qianbao.errors import QianbaoError, RecordedRefusal
from qianbao.identity.models import User
from qianbao.models import metadata


def test_migrations_create_exactly_the_tables_the_code_declares(db: Database) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_sqlite_runs_with_wal_and_foreign_keys(db: Database) -> None:
    if db.dialect != "sqlite":
        pytest.skip("SQLite settings")
    with db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1


def _add_user(tx: Tx, phone: str) -> None:
    tx.session.add(User(phone_e164=phone, language="en", created_at=tx.now()))
    tx.session.flush()


def _users(db: Database) -> int:
    return int(db.run(lambda tx: tx.session.scalar(select(func.count()).select_from(User))))


def test_a_failed_use_case_leaves_nothing_behind(db: Database) -> None:
    def half_done(tx: Tx) -> None:
        _add_user(tx, "+447911123456")
        raise QianbaoError("test.failed", "failed half-way")

    with pytest.raises(QianbaoError):
        db.run(half_done)
    assert _users(db) == 0


def test_a_recorded_refusal_keeps_its_bookkeeping(db: Database) -> None:
    def refuse(tx: Tx) -> None:
        _add_user(tx, "+447911123456")
        raise RecordedRefusal("test.refused", "refused, but remembered")

    with pytest.raises(RecordedRefusal):
        db.run(refuse)
    assert _users(db) == 1


def test_database_refuses_what_must_never_be(db: Database) -> None:
    db.run(lambda tx: _add_user(tx, "+447911123456"))
    with pytest.raises(Exception, match=r"(?i)unique"):
        db.run(lambda tx: _add_user(tx, "+447911123456"))
    bad_purpose = text(
        "INSERT INTO sms_challenges (id, phone_e164, purpose, code_hash, created_at, "
        "expires_at, attempts, language, ip) VALUES ("
        "'00000000000000000000000000000001', '+1', 'steal', 'x', "
        "'2026-01-01', '2026-01-01', 0, 'en', '::1')"
    )
    with pytest.raises(Exception, match=r"(?i)check"):
        db.run(lambda tx: tx.session.execute(bad_purpose))


def test_serialization_failures_are_retried_until_the_work_lands(db: Database) -> None:
    """Two read-then-write transactions on one row: under SERIALIZABLE one of them fails
    and is run again; both increments land."""
    db.run(lambda tx: _add_user(tx, "+447911123456"))
    # SQLite admits one writer at a time, so there the first one waits in vain, briefly.
    barrier = threading.Barrier(2, timeout=10 if db.dialect == "postgresql" else 0.3)
    runs: list[int] = []

    def rename(tx: Tx) -> None:
        runs.append(1)
        user = tx.session.scalars(select(User)).one()
        current = int(user.verification_level) if user.verification_level.isdigit() else 0
        if len(runs) <= 2:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
        user.verification_level = str(current + 1)

    threads = [threading.Thread(target=lambda: db.run(rename)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = db.run(lambda tx: tx.session.scalars(select(User.verification_level)).one())
    assert final == "2"
    if db.dialect == "postgresql":
        assert len(runs) >= 3  # one of the two ran again


def test_a_connection_the_server_closed_is_replaced_without_a_pre_ping(db: Database) -> None:
    """No round trip checks a pooled connection before each transaction: one that the
    server closed meanwhile (a restart, a failover, an idle timeout) fails on the first
    statement, and the transaction runs again on a fresh connection, once."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite has no server to close a connection")
    assert db.engine.pool._pre_ping is False  # type: ignore[attr-defined]
    db.run(lambda tx: _add_user(tx, "+447911123456"))  # a connection now sits in the pool
    outsider = create_engine(db.settings.database_url, poolclass=NullPool)
    with outsider.connect() as admin:
        killed = admin.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND state = 'idle'"
            )
        ).scalar_one()
        admin.commit()
    outsider.dispose()
    assert killed >= 1
    runs: list[int] = []

    def count_users(tx: Tx) -> int:
        runs.append(1)
        return int(tx.session.scalar(select(func.count()).select_from(User)) or 0)

    assert db.run(count_users) == 1
    assert len(runs) == 2  # the first try met the closed connection
