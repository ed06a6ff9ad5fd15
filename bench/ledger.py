"""Ledger throughput and latency on PostgreSQL, beside pgbench's TPC-B-like run.

Every figure is measured in this run, on the same PostgreSQL:

- reference: ``pgbench -i -s 16`` then ``pgbench -c 16 -j 2 -T 10 -M prepared`` in its own
  database (``qianbao_ledger_pgbench``);
- ledger transfers, 16 threads in this process, one operation per transaction, READ
  COMMITTED with row locks (the ledger's chosen mode) and SERIALIZABLE;
- batched: 16 threads, ``execute_many`` of 50 operations per transaction;
- 16 clients paying ONE merchant (16 shards; and unsharded) vs 16 merchants;
- p50/p99 latency of one transfer, and this process's CPU per transfer (the Python
  side: the database backends' CPU is not in it);
- latency with 10k transfers of history, then with 1M (bulk-inserted, see ``grow``).

    .venv/bin/python bench/ledger.py            # about 3 minutes
    .venv/bin/python bench/ledger.py --quick    # 2 s phases, 100k history
    .venv/bin/python bench/ledger.py --history 10000000   # the long run: 10M of history
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import create_engine, text

from qianbao import migrate
from qianbao.db import Database, Tx
from qianbao.money import Money
from qianbao.settings import Settings
from qianbao.wallet.ledger import audit as ledger_audit
from qianbao.wallet.ledger import service as ledger

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
BENCH_DB = "qianbao_ledger_bench"
PGBENCH_DB = "qianbao_ledger_pgbench"
CLIENTS = 16
BATCH = 50


@dataclass
class Figure:
    name: str
    transfers: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float = 0.0  # this process's CPU (every client thread) over the phase
    retries_note: str = ""

    @property
    def tps(self) -> float:
        return self.transfers / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def psql(database: str, sql: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-qAtc", sql],
        check=True,
        capture_output=True,
    )


def ensure_database(name: str) -> None:
    # psql interpolates :'name' (quoted) only in SQL read from its input, not from -c.
    found = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-qAt",
            "-v",
            f"name={name}",
        ],
        input="SELECT 1 FROM pg_database WHERE datname = :'name';\n",
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not found:
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], check=True)


def pgbench(seconds: int) -> float:
    ensure_database(PGBENCH_DB)
    common = ["-h", "127.0.0.1", "-U", "postgres"]
    subprocess.run(
        ["pgbench", *common, "-i", "-s", "16", "-q", PGBENCH_DB], check=True, capture_output=True
    )
    output = subprocess.run(
        [
            "pgbench",
            *common,
            "-c",
            "16",
            "-j",
            "2",
            "-T",
            str(seconds),
            "-M",
            "prepared",
            PGBENCH_DB,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", output)
    assert match, output
    return float(match.group(1))


def fresh_ledger() -> Database:
    ensure_database(BENCH_DB)
    url = f"{SERVER}/{BENCH_DB}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    settings = Settings(database_url=url)
    migrate.upgrade(settings)
    return Database(settings)


def open_funded(
    db: Database,
    count: int,
    kind: ledger.AccountKind = "user_balance",
    shards: int = 1,
    fund: int = 10**12,
) -> list[uuid.UUID]:
    def open_all(tx: Tx) -> list[uuid.UUID]:
        return [
            ledger.open_account(tx, kind=kind, currency="CNY", shards=shards) for _ in range(count)
        ]

    accounts = db.run(open_all)
    if fund:
        source = db.run(lambda tx: ledger.open_account(tx, kind="issuance", currency="CNY"))
        operations = [
            ledger.Operation(
                f"fund-{account}",
                {"fund": account},
                lambda booking, a=account: {"t": booking.transfer(source, a, Money("CNY", fund))},
            )
            for account in accounts
        ]
        for start in range(0, len(operations), 500):
            db.run(
                lambda tx, s=start: ledger.execute_many(tx, operations[s : s + 500]),
                isolation="read committed",
            )
    return accounts


def drive(name: str, seconds: float, step: Callable[[random.Random], int]) -> Figure:
    """CLIENTS threads call ``step`` (which returns how many transfers it committed)
    until the time is up."""
    latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
    counts = [0] * CLIENTS
    deadline = time.perf_counter() + seconds
    barrier = threading.Barrier(CLIENTS)

    def client(number: int) -> None:
        rng = random.Random(number)
        barrier.wait()
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            counts[number] += step(rng)
            latencies[number].append(time.perf_counter() - started)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    started, cpu_started = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return Figure(name, sum(counts), elapsed, [v for part in latencies for v in part], cpu)


def transfers_between(
    db: Database, accounts: list[uuid.UUID], isolation: str = "read committed"
) -> Callable[[random.Random], int]:
    def step(rng: random.Random) -> int:
        debit, credit = rng.sample(accounts, 2)
        key = uuid.uuid4().hex
        db.run(
            lambda tx: ledger.transfer(tx, key, debit, credit, Money("CNY", 1)), isolation=isolation
        )  # type: ignore[arg-type]
        return 1

    return step


def payments_to(
    db: Database, payers: list[uuid.UUID], merchants: list[uuid.UUID]
) -> Callable[[random.Random], int]:
    def step(rng: random.Random) -> int:
        payer, merchant = rng.choice(payers), rng.choice(merchants)
        key = uuid.uuid4().hex
        db.run(
            lambda tx: ledger.transfer(tx, key, payer, merchant, Money("CNY", 1)),
            isolation="read committed",
        )
        return 1

    return step


def batches_between(db: Database, accounts: list[uuid.UUID]) -> Callable[[random.Random], int]:
    def step(rng: random.Random) -> int:
        operations = []
        for _ in range(BATCH):
            debit, credit = rng.sample(accounts, 2)
            operations.append(
                ledger.Operation(
                    uuid.uuid4().hex,
                    {"d": debit, "c": credit},
                    lambda booking, d=debit, c=credit: {
                        "t": booking.transfer(d, c, Money("CNY", 1))
                    },
                )
            )
        outcomes = db.run(
            lambda tx: ledger.execute_many(tx, operations), isolation="read committed"
        )
        return sum(1 for outcome in outcomes if isinstance(outcome, ledger.Receipt))

    return step


def grow(db: Database, transfers: int) -> float:
    """Append ``transfers`` rows of history between two filler accounts, in pairs that
    cancel out, with one statement (generate_series) and the triggers switched off for
    the load: each pair moves 1 there and back, so every balance still equals its
    history (the audit afterwards checks it on the bench's accounts)."""
    a, b = open_funded(db, 2, fund=0)
    started = time.perf_counter()
    with db.engine.begin() as connection:
        connection.execute(text("ALTER TABLE ledger_transfers DISABLE TRIGGER USER"))
        connection.execute(
            text(
                "CREATE TEMP TABLE filler ON COMMIT DROP AS"
                " SELECT gen_random_uuid() AS op, n FROM generate_series(1, :pairs) AS n"
            ),
            {"pairs": transfers // 2},
        )
        connection.execute(
            text(
                "INSERT INTO ledger_operations"
                " (id, idempotency_key, request_hash, result, created_at)"
                " SELECT op, 'filler-' || n, 'x', '{}', now() FROM filler"
            )
        )
        connection.execute(
            text(
                "INSERT INTO ledger_transfers (id, operation_id, position, debit_account_id,"
                " credit_account_id, amount, currency, kind, created_at)"
                " SELECT gen_random_uuid(), op, side, CASE side WHEN 0 THEN :a ELSE :b END,"
                " CASE side WHEN 0 THEN :b ELSE :a END, 1, 'CNY', 'posted', now()"
                " FROM filler CROSS JOIN (VALUES (0), (1)) AS sides(side)"
            ),
            {"a": a, "b": b},
        )
        connection.execute(text("ALTER TABLE ledger_transfers ENABLE TRIGGER USER"))
    with db.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("VACUUM ANALYZE ledger_transfers, ledger_operations")
        )
    return time.perf_counter() - started


def history_size(db: Database) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM ledger_transfers")).scalar_one())


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min), {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--history",
        type=int,
        default=None,
        help="transfers of history to grow to (default 1,000,000; --quick 100,000);"
        " 10,000,000 is the long run the README quotes",
    )
    args = parser.parse_args()
    seconds = 2.0 if args.quick else 8.0
    history_target = args.history or (100_000 if args.quick else 1_000_000)

    print(f"# ledger benchmark: {CLIENTS} clients; {load()}")
    reference = pgbench(int(seconds) if args.quick else 10)
    print(f"pgbench TPC-B-like -s 16 -c 16 -j 2 -M prepared: {reference:,.0f} tps  ({load()})")

    db = fresh_ledger()
    users = open_funded(db, 1000)
    figures: list[Figure] = []

    def report(figure: Figure, ratio_to: float | None = None, goal: str = "") -> Figure:
        figures.append(figure)
        ratio = f"  {figure.tps / ratio_to:.2f}x {goal}" if ratio_to else ""
        print(
            f"{figure.name:<52} {figure.tps:>8,.0f} transfers/s  p50 {figure.percentile(0.5):6.1f}"
            f" ms  p99 {figure.percentile(0.99):6.1f} ms"
            f"  CPU {figure.cpu_seconds * 1000 / max(1, figure.transfers):.2f} ms{ratio}"
        )
        return figure

    single = report(
        drive(
            "transfers, 1 per transaction, READ COMMITTED", seconds, transfers_between(db, users)
        ),
        reference,
        "of pgbench (goal >= 0.8x)",
    )
    report(
        drive(
            "transfers, 1 per transaction, SERIALIZABLE",
            seconds,
            transfers_between(db, users, "serializable"),
        ),
        reference,
        "of pgbench",
    )
    report(
        drive(
            f"transfers, batches of {BATCH} per transaction", seconds, batches_between(db, users)
        ),
        reference,
        "of pgbench (goal >= 2x)",
    )
    print(
        f"p99/p50 of one transfer (READ COMMITTED): "
        f"{single.percentile(0.99) / single.percentile(0.5):.1f}x (goal <= 8x)"
    )

    payers = open_funded(db, 256)
    many = report(
        drive(
            "16 clients paying 16 merchants (1 row each)",
            seconds,
            payments_to(db, payers, open_funded(db, 16, "merchant_settlement", fund=0)),
        )
    )
    report(
        drive(
            "16 clients paying ONE merchant (16 shards)",
            seconds,
            payments_to(db, payers, open_funded(db, 1, "merchant_settlement", shards=16, fund=0)),
        ),
        many.tps,
        "of 16 merchants (goal >= 0.5x)",
    )
    report(
        drive(
            "16 clients paying ONE merchant (1 row, no shards)",
            seconds,
            payments_to(db, payers, open_funded(db, 1, "merchant_settlement", fund=0)),
        ),
        many.tps,
        "of 16 merchants",
    )

    small = report(
        drive(
            f"history {history_size(db):,} transfers: transfers",
            seconds / 2,
            transfers_between(db, users),
        )
    )
    grow_to = max(0, history_target - history_size(db))
    built = grow(db, grow_to)
    print(
        f"(history grown by {grow_to:,} rows with one INSERT ... generate_series, triggers off"
        f" for the load, pairs that cancel out: {built:.0f} s)"
    )
    large = report(
        drive(
            f"history {history_size(db):,} transfers: transfers",
            seconds / 2,
            transfers_between(db, users),
        )
    )
    print(
        f"p50 latency at {history_size(db):,} vs before: "
        f"{large.percentile(0.5) / small.percentile(0.5):.2f}x; tps "
        f"{large.tps / small.tps:.2f}x (goal: flat within 20%)"
    )
    audit = db.run(ledger_audit.audit)
    print(f"audit after the run: {'sound' if audit.sound else 'NOT SOUND'} ({load()})")
    db.dispose()


if __name__ == "__main__":
    main()
