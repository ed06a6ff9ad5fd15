"""Outbox messages sent per second by ``qianbao worker`` with 1 and 2 worker processes,
on PostgreSQL, with the sandbox SMS gateway.

Each round starts the workers (the real ``qianbao worker`` command, ``--interval 0.05``),
lets them settle, then writes N pending SMS messages in one transaction (as a gateway
outage leaves them) and times, from that commit, until the last one is marked sent.
Rounds alternate 1 and 2 workers; the median of each is reported, with the ratio
2 workers / 1 worker. Each worker's share comes from its own output
(``deliver SMS: n`` lines); the CPU time the workers used (from ``wait4``) shows whether
they were short of processor rather than of work.

    .venv/bin/python bench/worker_outbox.py                 # 3 rounds of 3,000 messages
    .venv/bin/python bench/worker_outbox.py --quick         # 1 round of 600

The database (default ``qianbao_worker_bench``) is created if missing and its public
schema dropped and recreated; the script refuses ``test``, ``postgres`` and templates.
The workers, this script and PostgreSQL share the machine's cores: the header prints
how many and the load average, and figures from a busy machine are not comparable with
figures from an idle one.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import Engine, make_url

from qianbao import migrate
from qianbao.notify.models import OutboxMessage
from qianbao.settings import Settings

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/qianbao_worker_bench"
REFUSED = {"test", "postgres", "template0", "template1"}
QIANBAO = Path(sys.executable).parent / "qianbao"


def fresh_database(url: str) -> None:
    name = make_url(url).database
    if not name or name in REFUSED:
        raise SystemExit(f"refusing to use the database {name!r}")
    server = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        exists = connection.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        )
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    server.dispose()
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    migrate.upgrade(Settings(database_url=url))


def start_workers(url: str, count: int, logs: Path) -> list[tuple[subprocess.Popen[bytes], Path]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("QIANBAO_")}
    env.update(
        QIANBAO_DATABASE_URL=url,
        QIANBAO_SMS_GATEWAY="outbox",
        QIANBAO_SECRET_KEY="bench-secret-key",
        QIANBAO_VAR_DIR=str(logs / "var"),
    )
    started = []
    for n in range(count):
        output = logs / f"worker{n}-{uuid.uuid4().hex[:6]}.out"
        process = subprocess.Popen(
            [str(QIANBAO), "worker", "--interval", "0.05"],
            env=env,
            stdout=output.open("wb"),
            stderr=subprocess.DEVNULL,
        )
        started.append((process, output))
    return started


def queue(engine: Engine, count: int) -> None:
    now = datetime.now(UTC)
    rows = [
        {
            "id": uuid.uuid4(),
            "channel": "sms",
            "recipient": f"+447911{n:06d}",
            "body": f"Your Qianbao code is {n:06d}.",
            "language": "en",
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
        }
        for n in range(count)
    ]
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE outbox_messages"))
        connection.execute(insert(OutboxMessage), rows)


def sent(engine: Engine) -> int:
    with engine.connect() as connection:
        query = select(func.count()).where(OutboxMessage.status == "sent")
        return int(connection.scalar(query) or 0)


def shares(outputs: list[Path]) -> list[int]:
    counts: list[int] = []
    for output in outputs:
        total: Counter[str] = Counter()
        for line in output.read_text().splitlines():
            name, _, number = line.rpartition(": ")
            if number.isdigit():
                total[name] += int(number)
        counts.append(total["deliver SMS"])
    return counts


def one_round(url: str, engine: Engine, workers: int, messages: int, logs: Path) -> float:
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE outbox_messages, worker_jobs"))
    started = start_workers(url, workers, logs)
    time.sleep(4)  # imports, connections, a first idle sweep
    if any(process.poll() is not None for process, _ in started):
        raise SystemExit("a worker exited early; run `qianbao worker` by hand to see why")
    queue(engine, messages)
    begin = time.perf_counter()
    while sent(engine) < messages:
        time.sleep(0.01)
    seconds = time.perf_counter() - begin
    for process, _ in started:
        process.send_signal(signal.SIGTERM)
    cpu = sum(cpu_seconds(process) for process, _ in started)
    split = shares([output for _, output in started])
    print(
        f"  {workers} worker(s): {messages} messages in {seconds:6.2f} s = "
        f"{messages / seconds:7.0f} msg/s   (per worker: {', '.join(map(str, split))}; "
        f"workers' CPU {cpu * 1000 / messages:.1f} ms a message, including the settling)"
    )
    return messages / seconds


def cpu_seconds(process: subprocess.Popen[bytes]) -> float:
    """Wait for the worker to exit; the user and system CPU time it used."""
    _, _, usage = os.wait4(process.pid, 0)
    process.returncode = 0
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=DEFAULT_URL)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round of 600 messages")
    args = parser.parse_args()
    messages, rounds = (600, 1) if args.quick else (args.messages, args.rounds)
    print(
        f"worker outbox throughput: PostgreSQL, sandbox SMS gateway, {messages} messages, "
        f"{rounds} round(s); {os.cpu_count()} cores, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    fresh_database(args.pg_url)
    engine = create_engine(args.pg_url)
    rates: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="qianbao-worker-bench-") as tmp:
        for round_number in range(1, rounds + 1):
            print(f"round {round_number}")
            for workers in (1, 2):
                rates[workers].append(one_round(args.pg_url, engine, workers, messages, Path(tmp)))
    engine.dispose()
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"median: 1 worker {one:.0f} msg/s, 2 workers {two:.0f} msg/s")
    print(f"ratio 2 workers / 1 worker: {two / one:.2f}x")


if __name__ == "__main__":
    main()
