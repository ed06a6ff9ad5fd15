"""Background work that ``qianbao worker`` runs; several workers may run at once.

Registering work: add a ``Job`` to ``default_jobs()`` (its docstring says what a job's
``run`` must guarantee). ``work`` is the worker's loop; ``run_due`` one sweep of it.

How workers stay apart, and why this way. Each job claims the *rows* it works on with
``SELECT ... FOR UPDATE SKIP LOCKED`` and changes them in the transaction that claimed
them (outbox messages, expired orders, ledger holds, Tour Pass expiries). That is what
makes the work exactly once: two workers never hold the same row, and a worker killed
with ``kill -9`` mid-transaction loses its connection, so the database rolls its changes
back and the rows wait, untouched, for the next sweep. Row claims also let N workers
share one backlog (``bench/worker_outbox.py``), which one lease per job would not.

On top of that, a *periodic* job (``every_seconds`` > 0) has a row in ``worker_jobs``
that a worker takes with ``FOR UPDATE SKIP LOCKED`` and leases (``worker_lease_seconds``)
before running it, so the fleet runs it once per interval, not once per worker. The
lease only saves work; correctness never depends on it. A worker killed while holding
one leaves the lease to run out, and the next worker runs the job (what the dead one
committed stays done; what it had not committed is done then, once).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from qianbao.db import Database, Tx
from qianbao.notify import email as notify_email
from qianbao.notify import service as notify
from qianbao.observability import metrics
from qianbao.openplatform.gateway import notifications as shop_notifications
from qianbao.openplatform.oidc import service as oidc
from qianbao.throttling import ratelimit
from qianbao.verification import service as verification
from qianbao.wallet.ledger import service as ledger
from qianbao.wallet.pay_for_me import service as pay_for_me
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments
from qianbao.wallet.tour_pass import service as tour_pass
from qianbao.worker_models import WorkerJob

log = logging.getLogger(__name__)


def prune_rate_limits(db: Database) -> int:
    """Drop rate-limit events that no window can count any more."""
    settings = db.settings
    longest = max(
        timedelta(days=1),
        timedelta(seconds=settings.sms_lock_seconds),
        timedelta(seconds=settings.sms_failure_window_seconds),
    )
    return db.run(lambda tx: ratelimit.prune(tx, longest + timedelta(hours=1)))


def prune_oidc(db: Database) -> int:
    """Drop Log in with Qianbao's expired codes, tokens and client assertions."""
    return db.run(oidc.prune)


def purge_verification_images(db: Database) -> int:
    """Delete verification images past their retention period, in batches."""
    total = 0
    while True:
        cases, images = db.run(verification.purge_images)
        total += images
        if cases == 0:
            return total


def close_expired_orders(db: Database) -> int:
    """Unpaid orders close after their timeout; expired ledger holds are released."""
    closed = db.run(payments.close_expired_orders, isolation="read committed")
    released = db.run(ledger.expire_pending, isolation="read committed")
    return int(closed) + int(released)


def reverse_stranded_card_payments(db: Database) -> int:
    """Card payments left half-way (charged on the network, never recorded, or approved
    and never captured) are given up and sent back to the card."""
    abandoned = db.run(payments.abandon_stranded_card_attempts, isolation="read committed")
    return int(abandoned) + payments.reverse_card_attempts(db)


def finish_pending_refunds(db: Database) -> int:
    """Refunds to a card or a bank card whose request died half-way (reserved in the
    ledger, perhaps already given back) are settled from what the outside party says."""
    return refunds.finish_pending_refunds(db)


def expire_pay_for_me_links(db: Database) -> int:
    """Pay-for-me links past their time are marked expired (they read so already)."""
    return db.run(pay_for_me.expire_links, isolation="read committed")


def expire_tour_passes(db: Database) -> int:
    """Top-ups left half-way are finished or undone; Tour Passes past their validity
    expire, and what is left on closed and expired ones goes back to the cards it came
    from (each part once, under its own key)."""
    return tour_pass.finish_stranded_top_ups(db) + tour_pass.expire_due(db)


@dataclass
class Job:
    """One kind of background work; register it in ``default_jobs()``.

    ``name`` is stable and unique (a periodic job's schedule row is keyed by it).
    ``run(db)`` does one round of work and returns how many things it did (0: none were
    due). ``every_seconds``: 0 makes the job *continuous*: every worker runs it on every
    sweep, and the sweeps repeat at once while it finds work (the outbox); more makes
    it *periodic*: the fleet runs it once per interval.

    What ``run`` must guarantee, with several workers and ``kill -9`` at any moment:

    - claim its rows with ``FOR UPDATE SKIP LOCKED`` and change them in the transaction
      that claimed them, so no row is taken twice and an interrupted round rolls back;
    - move money only in ledger operations whose idempotency key comes from the row
      (``expire:<hold id>``), so a repeat cannot move it twice;
    - for a side effect outside the database (an SMS gateway, a card network refund),
      claim with a lease that expires (the outbox pushes ``next_attempt_at`` ahead),
      hand the outside party an idempotency key made from the row where it takes one,
      and record the outcome after. (An SMS provider takes no key: a message whose
      worker died between the hand-over and the record is sent again, at least once.)
    """

    name: str
    run: Callable[[Database], int]
    every_seconds: float


def default_jobs() -> list[Job]:
    return [
        Job("deliver SMS", notify.deliver_due, every_seconds=0),
        Job("deliver email", notify_email.deliver_due_email, every_seconds=0),
        Job("notify shops", shop_notifications.deliver_due, every_seconds=0),
        Job("prune rate limits", prune_rate_limits, every_seconds=3600),
        Job("purge verification images", purge_verification_images, every_seconds=86400),
        Job("prune Log in with Qianbao records", prune_oidc, every_seconds=3600),
        Job("close expired orders", close_expired_orders, every_seconds=30),
        Job("expire pay-for-me links", expire_pay_for_me_links, every_seconds=60),
        Job("reverse stranded card payments", reverse_stranded_card_payments, every_seconds=60),
        Job("finish pending refunds", finish_pending_refunds, every_seconds=60),
        Job("expire Tour Passes", expire_tour_passes, every_seconds=60),
    ]


def worker_name() -> str:
    """Who holds a lease: host, process and a random tag (a pid is reused)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{_TAG}"


_TAG = secrets.token_hex(4)


def run_due(db: Database, jobs: list[Job], *, worker: str | None = None) -> dict[str, int]:
    """One sweep: every continuous job, and each periodic job whose turn has come and
    that no other worker holds. A failing job does not stop the others."""
    holder = worker or worker_name()
    periodic = [job for job in jobs if job.every_seconds > 0]
    taken = db.run(lambda tx: _take_due(tx, periodic, holder), isolation="read committed")
    done: dict[str, int] = {}
    for job in jobs:
        if job.every_seconds > 0 and job.name not in taken:
            continue
        count: int | None = 0
        try:
            count = _run_one(db, job)
        finally:
            if job.every_seconds > 0:
                _finish(db, job, holder, count or 0)
        if count is not None:
            done[job.name] = count
    return done


def _run_one(db: Database, job: Job) -> int | None:
    """Run a job once, with its name in every log line it writes; log the run (an idle
    one at DEBUG) and count it in the metrics. None: it failed."""
    started = time.perf_counter()
    with structlog.contextvars.bound_contextvars(job=job.name):
        try:
            count = job.run(db)
        except Exception:
            seconds = time.perf_counter() - started
            metrics.job_ran(job.name, 0, seconds, failed=True)
            log.exception(
                "job failed; it runs again at its next turn", extra=_run(0, seconds, True)
            )
            return None
        seconds = time.perf_counter() - started
        metrics.job_ran(job.name, count, seconds, failed=False)
        log.log(logging.INFO if count else logging.DEBUG, "job run", extra=_run(count, seconds))
    return count


def _run(rows: int, seconds: float, failed: bool = False) -> dict[str, object]:
    return {"rows": rows, "duration_ms": round(seconds * 1000, 2), "failed": failed}


def lag(tx: Tx) -> dict[str, float]:
    """Per periodic job, the seconds it has been due without a worker taking it (0: not
    due, or running under a live lease); a dead worker's job shows once its lease ends."""
    now = tx.now()
    lags: dict[str, float] = {}
    for row in tx.session.scalars(select(WorkerJob)):
        running = row.leased_until is not None and row.leased_until > now
        lags[row.name] = 0.0 if running else max(0.0, (now - row.next_run_at).total_seconds())
    return lags


def work(
    db: Database,
    jobs: list[Job],
    *,
    interval: float,
    once: bool = False,
    stop: threading.Event | None = None,
    report: Callable[[str, int], None] | None = None,
) -> None:
    """The worker's loop. After a sweep that did something the next one starts at once,
    so a backlog drains at full speed; after an idle sweep it waits ``interval``
    (``once``: it returns). ``stop`` ends it between sweeps."""
    stopping = stop or threading.Event()
    holder = worker_name()
    while not stopping.is_set():
        try:
            done = run_due(db, jobs, worker=holder)
        except Exception:  # the database itself failed: keep the worker, try again later
            if once:
                raise
            log.exception("sweep failed; the next one starts in %s s", interval)
            done = {}
        for name, count in done.items():
            if count and report is not None:
                report(name, count)
        if any(done.values()):
            continue
        if once:
            return
        stopping.wait(interval)


def _take_due(tx: Tx, periodic: list[Job], holder: str) -> set[str]:
    """Lease the periodic jobs that are due and free; a job another worker is taking
    right now is skipped, not waited for."""
    if not periodic:
        return set()
    now = tx.now()
    names = [job.name for job in periodic]
    known = set(tx.session.scalars(select(WorkerJob.name).where(WorkerJob.name.in_(names))))
    if missing := [name for name in names if name not in known]:
        insert = pg_insert if tx.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        tx.session.execute(
            insert(WorkerJob)
            .values([{"name": name, "next_run_at": now, "last_count": 0} for name in missing])
            .on_conflict_do_nothing(index_elements=[WorkerJob.name])
        )
    due = tx.session.scalars(
        select(WorkerJob)
        .where(
            WorkerJob.name.in_(names),
            WorkerJob.next_run_at <= now,
            or_(WorkerJob.leased_until.is_(None), WorkerJob.leased_until <= now),
        )
        .with_for_update(skip_locked=True)
    ).all()
    lease = timedelta(seconds=tx.settings.worker_lease_seconds)
    for row in due:
        row.leased_until, row.leased_by = now + lease, holder
    return {row.name for row in due}


def _finish(db: Database, job: Job, holder: str, count: int) -> None:
    db.run(lambda tx: _release(tx, job, holder, count), isolation="read committed")


def _release(tx: Tx, job: Job, holder: str, count: int) -> None:
    """Schedule the job's next turn, unless its lease ran out and another worker has
    taken it over meanwhile (then that worker schedules it)."""
    row = tx.session.get(WorkerJob, job.name, with_for_update=True)
    if row is None or row.leased_by != holder:
        return
    now = tx.now()
    row.next_run_at = now + timedelta(seconds=job.every_seconds)
    row.leased_until = row.leased_by = None
    row.last_finished_at, row.last_count = now, count
