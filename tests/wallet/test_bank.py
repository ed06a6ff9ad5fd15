"""The bank test, short form: real `qianbao serve` and `qianbao worker` processes killed
with SIGKILL at random moments while 16 clients pay, refund, send and redeem through the
HTTP API; then the books are audited (tests/wallet/bank_run.py says how). On SQLite, and
on PostgreSQL when QIANBAO_TEST_DATABASE_URL is set (in a database of its own, created and
dropped by the run). The long form, with its figures: bench/bank.py.

Deterministic in what it asserts: the operations are random, from a seed printed on
failure (QIANBAO_BANK_SEED replays a seed's choices; the timing of kills and answers
still varies from run to run)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import PG_URL
from tests.wallet.bank_run import run_bank

SEED = int(os.environ.get("QIANBAO_BANK_SEED", "20261206"))


@pytest.mark.bank
def test_killed_servers_and_workers_leave_the_books_right(backend: str, tmp_path: Path) -> None:
    result = run_bank(
        backend=backend,
        work_dir=tmp_path,
        seconds=20,
        kills=2,
        clients=16,
        seed=SEED,
        pg_url=PG_URL,
    )
    report = "\n".join(result.figures())
    print(report)
    assert sum(result.journal.kills.values()) == 2, report
    assert result.operations > 0, report
    assert not result.problems, f"seed {SEED} (QIANBAO_BANK_SEED replays it)\n{report}"
