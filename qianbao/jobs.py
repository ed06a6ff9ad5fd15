"""Background work that ``qianbao worker`` runs; each job is safe to run in several
workers at once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from qianbao.db import Database
from qianbao.notify import email as notify_email
from qianbao.notify import service as notify
from qianbao.risk import ratelimit

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


def purge_verification_images(db: Database) -> int:
    """Delete verification images past their retention period, in batches."""
    from qianbao.verification import service as verification

    total = 0
    while True:
        cases, images = db.run(verification.purge_images)
        total += images
        if cases == 0:
            return total


def close_expired_orders(db: Database) -> int:
    """Unpaid orders close after their timeout; expired ledger holds are released."""
    from qianbao.wallet import ledger, payments

    closed = db.run(payments.close_expired_orders, isolation="read committed")
    released = db.run(ledger.expire_pending, isolation="read committed")
    return int(closed) + int(released)


@dataclass
class Job:
    name: str
    run: Callable[[Database], int]
    every_seconds: float
    last_run: float = field(default=float("-inf"))


def default_jobs() -> list[Job]:
    return [
        Job("deliver SMS", notify.deliver_due, every_seconds=0),
        Job("deliver email", notify_email.deliver_due_email, every_seconds=0),
        Job("prune rate limits", prune_rate_limits, every_seconds=3600),
        Job("purge verification images", purge_verification_images, every_seconds=86400),
        Job("close expired orders", close_expired_orders, every_seconds=30),
    ]


def run_due(db: Database, jobs: list[Job]) -> dict[str, int]:
    """Run every job whose interval has passed; a failing job does not stop the others."""
    done: dict[str, int] = {}
    for job in jobs:
        now = time.monotonic()
        if now - job.last_run < job.every_seconds:
            continue
        job.last_run = now
        try:
            done[job.name] = job.run(db)
        except Exception:
            log.exception("job %r failed; it runs again at its next turn", job.name)
    return done
