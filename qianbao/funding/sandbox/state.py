"""Where the sandbox card network keeps its records, and how it takes its turn.

A real card network is another company's system: its authorizations and captures
outlive any one process of ours, every process sees the same ones, and it answers one
request at a time per payment. The sandbox imitates that with a small store of JSON
records by kind and key, read and written inside ``transaction()``, which gives one
process and one thread the whole store at a time:

* ``MemoryStore``: a dict behind a lock. One process; forgotten on restart. For unit
  tests of the network's rules.
* ``SqliteStore``: one SQLite file of its own (``var/sandbox_card_network.sqlite3``),
  ``BEGIN IMMEDIATE`` per transaction. Every process on the machine (uvicorn workers,
  ``qianbao worker``, the CLI) sees the same payments, and they survive restarts, so a
  worker can finish what a crashed request started. It is deliberately not the wallet's
  database: the network is not Qianbao, its records must not share Qianbao's
  transactions (a call from inside one would otherwise wait on its own lock), and a
  sandbox needs no server.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from qianbao.money import Money
from qianbao.private_files import touch_private

Record = dict[str, Any]


def money_record(amount: Money) -> Record:
    """A sum of money as a record field (minor units: never a float)."""
    return {"currency": amount.currency, "minor": amount.minor}


def money_from_record(value: Record) -> Money:
    return Money(str(value["currency"]), int(value["minor"]))


class SandboxState(Protocol):
    def get(self, kind: str, key: str) -> Record | None: ...

    def put(self, kind: str, key: str, value: Record) -> None: ...

    def items(self, kind: str) -> list[tuple[str, Record]]:
        """Every record of a kind, by key (a settlement report, for reconciliation)."""
        ...


class SandboxStore(Protocol):
    def transaction(self) -> Any:  # a context manager giving a SandboxState
        ...


class _DictState:
    def __init__(self, records: dict[tuple[str, str], str]) -> None:
        self._records = records

    def get(self, kind: str, key: str) -> Record | None:
        found = self._records.get((kind, key))
        return None if found is None else dict(json.loads(found))

    def put(self, kind: str, key: str, value: Record) -> None:
        # Stored as JSON, as SqliteStore does: a caller can never share a mutable record.
        self._records[(kind, key)] = json.dumps(value, sort_keys=True)

    def items(self, kind: str) -> list[tuple[str, Record]]:
        found = [(key, value) for (of, key), value in self._records.items() if of == kind]
        return [(key, dict(json.loads(value))) for key, value in sorted(found)]


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], str] = {}

    @contextmanager
    def transaction(self) -> Iterator[SandboxState]:
        with self._lock:
            yield _DictState(self._records)


class _SqliteState:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def get(self, kind: str, key: str) -> Record | None:
        row = self._connection.execute(
            "SELECT value FROM records WHERE kind = ? AND key = ?", (kind, key)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def put(self, kind: str, key: str, value: Record) -> None:
        self._connection.execute(
            "INSERT INTO records (kind, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value",
            (kind, key, json.dumps(value, sort_keys=True)),
        )

    def items(self, kind: str) -> list[tuple[str, Record]]:
        rows = self._connection.execute(
            "SELECT key, value FROM records WHERE kind = ? ORDER BY key", (kind,)
        ).fetchall()
        return [(str(key), dict(json.loads(value))) for key, value in rows]


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        touch_private(path)  # beside the database, and like it the owner's alone
        with self._connect() as connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS records ("
                " kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
                " PRIMARY KEY (kind, key))"
            )
            connection.execute("PRAGMA journal_mode = WAL")

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are begun and ended here, explicitly.
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    @contextmanager
    def transaction(self) -> Iterator[SandboxState]:
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")  # the whole store, one caller at a time
            try:
                yield _SqliteState(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()
