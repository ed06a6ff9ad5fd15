"""Several ``qianbao worker`` processes at once, and workers killed with SIGKILL in the
middle of a job: every outbox message goes out once, every expired order closes once,
every expired hold is released once.

The scheduling tests run in-process on SQLite and PostgreSQL. The process tests start
real worker processes (``tests/worker_child.py``: the ``qianbao worker`` command plus
test-only hooks to log deliveries, to hang at a chosen step, and to start later on the
clock) against the test's own database; they run on both backends too, but the claim
they prove (``FOR UPDATE SKIP LOCKED``) only exists on PostgreSQL, where they matter.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from qianbao import jobs
from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.money import Money
from qianbao.notify.models import OutboxMessage
from qianbao.settings import Settings
from qianbao.wallet.ledger import audit as ledger_audit
from qianbao.wallet.ledger import service as ledger
from qianbao.wallet.ledger.models import LedgerTransfer
from qianbao.wallet.payments import service as payments
from qianbao.wallet.payments.models import PaymentOrder
from qianbao.worker_models import WorkerJob

ROOT = Path(__file__).resolve().parent.parent
OUTBOX_LEASE_SECONDS = 120  # qianbao/notify/service.py LEASE
JOB_LEASE_SECONDS = 60  # the children's worker_lease_seconds
LATER = OUTBOX_LEASE_SECONDS + 10  # a restarted worker's clock: both leases ran out


# --- scheduling, in-process -----------------------------------------------------------------


def counting(name: str, every: float, ran: list[str]) -> jobs.Job:
    def run(_: Database) -> int:
        ran.append(name)
        return 1

    return jobs.Job(name, run, every)


def test_a_periodic_job_runs_once_per_interval_across_workers(
    db: Database, clock: FrozenClock
) -> None:
    ran: list[str] = []
    schedule = [counting("tidy", 60, ran), counting("outbox", 0, ran)]
    assert jobs.run_due(db, schedule, worker="a") == {"tidy": 1, "outbox": 1}
    assert jobs.run_due(db, schedule, worker="b") == {"outbox": 1}
    clock.advance(seconds=59)
    assert jobs.run_due(db, schedule, worker="b") == {"outbox": 1}
    clock.advance(seconds=1)
    assert jobs.run_due(db, schedule, worker="b") == {"tidy": 1, "outbox": 1}
    assert jobs.run_due(db, schedule, worker="a") == {"outbox": 1}
    assert ran.count("tidy") == 2 and ran.count("outbox") == 5


def test_a_job_held_by_a_dead_worker_is_taken_over_when_its_lease_runs_out(
    db: Database, clock: FrozenClock
) -> None:
    ran: list[str] = []
    tidy = counting("tidy", 3600, ran)
    # Worker "dead" takes the job and dies before finishing: its lease stays.
    assert db.run(lambda tx: jobs._take_due(tx, [tidy], "dead")) == {"tidy"}
    assert jobs.run_due(db, [tidy], worker="alive") == {}
    clock.advance(seconds=db.settings.worker_lease_seconds)
    assert jobs.run_due(db, [tidy], worker="alive") == {"tidy": 1}
    row = db.run(lambda tx: tx.session.get_one(WorkerJob, "tidy"))
    assert (row.leased_by, row.last_count) == (None, 1)
    assert row.next_run_at == clock.now() + timedelta(hours=1)
    # The dead worker's late finish, had it come back, changes nothing.
    db.run(lambda tx: jobs._release(tx, tidy, "dead", 99))
    assert db.run(lambda tx: tx.session.get_one(WorkerJob, "tidy")).last_count == 1


def test_a_failing_periodic_job_waits_for_its_next_turn(db: Database, clock: FrozenClock) -> None:
    def broken(_: Database) -> int:
        raise RuntimeError("boom")

    schedule = [jobs.Job("broken", broken, 30)]
    assert jobs.run_due(db, schedule) == {}
    assert db.run(lambda tx: tx.session.get_one(WorkerJob, "broken")).leased_by is None
    clock.advance(seconds=30)
    assert jobs.run_due(db, schedule) == {}  # it ran (and failed) again


def test_the_loop_drains_a_backlog_without_waiting_then_stops_when_idle(db: Database) -> None:
    backlog = [3]

    def deliver(_: Database) -> int:
        if backlog[0] == 0:
            return 0
        backlog[0] -= 1
        return 1

    reported: list[tuple[str, int]] = []
    loop = threading.Thread(
        target=jobs.work,
        args=(db, [jobs.Job("deliver", deliver, 0)]),
        kwargs={
            "interval": 3600,  # an idle sweep would wait an hour; a busy one must not
            "once": True,
            "report": lambda name, count: reported.append((name, count)),
        },
        daemon=True,
    )
    loop.start()
    loop.join(timeout=30)
    assert not loop.is_alive()
    assert reported == [("deliver", 1)] * 3 and backlog == [0]


# --- worker processes -----------------------------------------------------------------------


@dataclass
class Workers:
    """Starts ``qianbao worker`` processes against the test's database."""

    settings: Settings
    tmp: Path
    started: int = 0
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self, **hooks: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("QIANBAO_", "WORKER_CHILD_"))
        }
        env.update(
            QIANBAO_DATABASE_URL=self.settings.database_url,
            QIANBAO_VAR_DIR=str(self.tmp / "var"),
            QIANBAO_SECRET_KEY=self.settings.secret_key,
            QIANBAO_WORKER_LEASE_SECONDS=str(JOB_LEASE_SECONDS),
            QIANBAO_SMS_GATEWAY="outbox",
            WORKER_CHILD_LOG=str(self.log),
            PYTHONPATH=str(ROOT),
        )
        env.update({f"WORKER_CHILD_{key.upper()}": value for key, value in hooks.items()})
        return env

    @property
    def log(self) -> Path:
        return self.tmp / "delivered.log"

    def start(self, *args: str, **hooks: str) -> tuple[subprocess.Popen[bytes], Path]:
        self.started += 1
        output = self.tmp / f"worker{self.started}.out"
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.worker_child", "worker", "--interval", "0.05", *args],
            cwd=ROOT,
            env=self.env(**hooks),
            stdout=output.open("wb"),
            stderr=(self.tmp / f"worker{self.started}.err").open("wb"),
        )
        self.processes.append(process)
        return process, output

    def stop_all(self) -> None:
        """Kill whatever is still running (a failed test must not leave workers behind)."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)

    def run_once(self, **hooks: str) -> dict[str, int]:
        """One worker that does what is due, then exits; what it reported doing."""
        process, output = self.start("--once", **hooks)
        assert process.wait(timeout=120) == 0, self.errors()
        return reported(output)

    def errors(self) -> str:
        return "\n".join(path.read_text()[-3000:] for path in sorted(self.tmp.glob("*.err")))

    def deliveries(self) -> Counter[str]:
        return Counter(self.log.read_text().splitlines()) if self.log.exists() else Counter()


def reported(output: Path) -> dict[str, int]:
    """The worker's own account: lines ``deliver SMS: 50`` summed by job."""
    totals: Counter[str] = Counter()
    for line in output.read_text().splitlines():
        name, _, count = line.rpartition(": ")
        if count.isdigit():
            totals[name] += int(count)
    return dict(totals)


def wait_for(path: Path, process: subprocess.Popen[bytes], workers: Workers) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert process.poll() is None, workers.errors()
        assert time.monotonic() < deadline, "the worker never reached the step"
        time.sleep(0.02)


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(settings, tmp_path)
    yield started
    started.stop_all()


def queue_messages(db: Database, count: int) -> None:
    """Messages waiting in the outbox (as after a gateway outage), all due now."""

    def write(tx: Tx) -> None:
        due = tx.now() - timedelta(minutes=1)
        rows = [
            {
                "id": uuid.uuid4(),
                "channel": "sms",
                "recipient": f"+4479111{n:05d}",
                "body": f"message {n}",
                "language": "en",
                "status": "pending",
                "attempts": 0,
                "created_at": due,
                "next_attempt_at": due,
            }
            for n in range(count)
        ]
        tx.session.execute(insert(OutboxMessage), rows)

    db.run(write)


def expired_orders_and_holds(db: Database, orders: int, holds: int) -> None:
    """Unpaid orders and ledger holds that expire a minute after the test clock's now,
    months before the worker processes' (real) now."""
    shop = db.run(lambda tx: payments.create_merchant(tx, "Night Market"))
    amount = Money.of("CNY", "9.90")

    def write(tx: Tx) -> None:
        for n in range(orders):
            payments.create_order(tx, shop, f"N{n}", "Skewers", amount, timedelta(minutes=1))
        payments.claim_wallets(tx, payments.SYSTEM)
        source = payments.account_of(tx, payments.SYSTEM, "bank_clearing")
        target = payments.account_of_merchant(tx, shop)
        for n in range(holds):
            expiry = tx.now() + timedelta(minutes=1)
            ledger.hold(tx, f"hold:{n}", source, target, amount, expires_at=expiry)

    db.run(write)


def outbox_state(db: Database) -> dict[str, int]:
    rows = db.run(
        lambda tx: tx.session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        ).all()
    )
    return {status: int(count) for status, count in rows}


def order_states(db: Database) -> dict[str, int]:
    rows = db.run(
        lambda tx: tx.session.execute(
            select(PaymentOrder.status, func.count()).group_by(PaymentOrder.status)
        ).all()
    )
    return {status: int(count) for status, count in rows}


def voids_per_hold(db: Database) -> Counter[uuid.UUID]:
    rows = db.run(
        lambda tx: tx.session.scalars(
            select(LedgerTransfer.pending_id).where(LedgerTransfer.kind == "void_pending")
        ).all()
    )
    return Counter(row for row in rows if row is not None)


def test_several_workers_share_the_work_and_do_each_thing_once(
    db: Database, workers: Workers
) -> None:
    messages, orders, holds = 600, 60, 20
    queue_messages(db, messages)
    expired_orders_and_holds(db, orders, holds)
    go = workers.tmp / "go"
    started = [workers.start(ready=str(workers.tmp / f"ready{n}"), go=str(go)) for n in range(3)]
    for n, (process, _) in enumerate(started):
        wait_for(workers.tmp / f"ready{n}", process, workers)
    go.write_text("go")
    deadline = time.monotonic() + 180
    while outbox_state(db).get("sent", 0) < messages or order_states(db).get("WAIT_BUYER_PAY"):
        assert time.monotonic() < deadline, (outbox_state(db), workers.errors())
        time.sleep(0.1)
    for process, _ in started:
        process.send_signal(signal.SIGTERM)  # a clean stop, after the sweep
    assert [process.wait(timeout=60) for process, _ in started] == [0, 0, 0]

    accounts = [reported(output) for _, output in started]
    delivered = workers.deliveries()
    assert len(delivered) == messages and set(delivered.values()) == {1}
    assert sum(account.get("deliver SMS", 0) for account in accounts) == messages
    assert sum(1 for account in accounts if account.get("deliver SMS")) >= 2  # really shared
    assert sum(account.get("close expired orders", 0) for account in accounts) == orders + holds
    assert outbox_state(db) == {"sent": messages}
    assert order_states(db) == {"TRADE_CLOSED": orders}
    assert len(voids_per_hold(db)) == holds and set(voids_per_hold(db).values()) == {1}
    assert db.run(ledger_audit.audit).sound


def test_a_worker_killed_while_sending_leaves_nothing_sent_twice_or_lost(
    db: Database, workers: Workers
) -> None:
    messages = 120
    queue_messages(db, messages)
    mark = workers.tmp / "hung"
    victim, _ = workers.start(hang_at_sms="30", mark=str(mark))
    wait_for(mark, victim, workers)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert workers.deliveries().total() == 29  # the 30th was claimed, never handed over
    # A worker restarted at once sends what nobody holds; the dead worker's claimed batch
    # waits for its lease to run out.
    first = workers.run_once()
    leased = messages - 29 - first["deliver SMS"]
    assert leased > 0 and outbox_state(db)["pending"] == leased
    # Later (two minutes on), the rest goes out, and nothing went out twice.
    later = workers.run_once(clock_ahead=str(LATER))
    assert later["deliver SMS"] == leased
    delivered = workers.deliveries()
    assert len(delivered) == messages and set(delivered.values()) == {1}
    assert outbox_state(db) == {"sent": messages}
    retried = db.run(
        lambda tx: tx.session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.attempts == 2)
        )
    )
    assert retried == leased  # claimed by the dead worker, then by the later one


def test_a_worker_killed_inside_a_transaction_leaves_it_undone_then_it_is_done_once(
    db: Database, workers: Workers
) -> None:
    orders, holds = 40, 10
    expired_orders_and_holds(db, orders, holds)
    mark = workers.tmp / "hung"
    victim, _ = workers.start(hang_in_orders="1", mark=str(mark))
    wait_for(mark, victim, workers)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    # Killed before its commit: the database undid the half-done sweep.
    assert order_states(db) == {"WAIT_BUYER_PAY": orders}
    assert voids_per_hold(db) == Counter()
    # Restarted at once, the job's lease is still the dead worker's: nothing happens.
    assert "close expired orders" not in workers.run_once()
    assert order_states(db) == {"WAIT_BUYER_PAY": orders}
    # Once the lease has run out, the next worker does it, once.
    later = workers.run_once(clock_ahead=str(LATER))
    assert later["close expired orders"] == orders + holds
    assert order_states(db) == {"TRADE_CLOSED": orders}
    assert len(voids_per_hold(db)) == holds and set(voids_per_hold(db).values()) == {1}
    assert "close expired orders" not in workers.run_once(clock_ahead=str(LATER + 60))
    assert db.run(ledger_audit.audit).sound
