"""The worker logs each job run (name, rows, duration, failure) and counts it."""

from __future__ import annotations

import io
import json

from prometheus_client import REGISTRY

from qianbao import jobs
from qianbao.db import Database


def runs_of(job: str, outcome: str) -> float:
    labels = {"job": job, "outcome": outcome}
    return REGISTRY.get_sample_value("qianbao_worker_job_runs_total", labels) or 0.0


def test_each_job_run_is_logged_with_its_rows_and_duration_and_counted(
    db: Database, captured: io.StringIO
) -> None:
    def busy(_: Database) -> int:
        return 3

    def idle(_: Database) -> int:
        return 0

    def broken(_: Database) -> int:
        raise RuntimeError("gateway refused +447911123456")

    schedule = [jobs.Job("busy", busy, 0), jobs.Job("idle", idle, 0), jobs.Job("broken", broken, 0)]
    failed_before, ok_before = runs_of("broken", "failed"), runs_of("busy", "ok")
    assert jobs.run_due(db, schedule) == {"busy": 3, "idle": 0}

    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    runs = {line["job"]: line for line in lines if line.get("logger") == "qianbao.jobs"}
    assert (runs["busy"]["event"], runs["busy"]["level"]) == ("job run", "info")
    assert (runs["busy"]["rows"], runs["busy"]["failed"]) == (3, False)
    assert runs["busy"]["duration_ms"] >= 0
    assert runs["idle"]["level"] == "debug"  # an idle sweep is there at DEBUG only
    assert (runs["broken"]["level"], runs["broken"]["failed"]) == ("error", True)
    assert "RuntimeError" in runs["broken"]["exception"]
    assert "7911123456" not in captured.getvalue()
    assert runs_of("broken", "failed") == failed_before + 1
    assert runs_of("busy", "ok") == ok_before + 1
