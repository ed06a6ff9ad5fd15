"""The worker's jobs: old rate-limit events are pruned, a failing job spares the others."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from qianbao import jobs
from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.errors import QianbaoError
from qianbao.identity import service
from qianbao.throttling.models import RateEvent
from tests.helpers import AGREEMENT, HOME, UK, send_signup_code


def events(db: Database) -> int:
    return int(db.run(lambda tx: tx.session.scalar(select(func.count()).select_from(RateEvent))))


def test_pruning_keeps_what_a_window_still_counts(db: Database, clock: FrozenClock) -> None:
    send_signup_code(db)
    recorded = events(db)
    assert recorded > 0
    clock.advance(hours=24)
    assert jobs.prune_rate_limits(db) == 0  # the daily cap still counts them
    clock.advance(hours=1, seconds=1)
    assert jobs.prune_rate_limits(db) == recorded
    assert events(db) == 0
    # With the history gone the number may get codes again, limits intact.
    send_signup_code(db)
    with pytest.raises(QianbaoError) as caught:
        service.send_code(db, UK, "signup", HOME, "en", AGREEMENT)
    assert caught.value.code == "otp.resend_too_soon"


def test_a_failing_job_does_not_stop_the_others(db: Database) -> None:
    ran: list[str] = []

    def broken(_: Database) -> int:
        raise RuntimeError("boom")

    def fine(_: Database) -> int:
        ran.append("fine")
        return 1

    schedule = [jobs.Job("broken", broken, 0), jobs.Job("fine", fine, 0)]
    assert jobs.run_due(db, schedule) == {"fine": 1}
    assert jobs.run_due(db, schedule) == {"fine": 1}
    slow = [jobs.Job("hourly", fine, 3600)]
    jobs.run_due(db, slow)
    assert jobs.run_due(db, slow) == {}
    assert ran == ["fine", "fine", "fine"]
