"""The bank test, long form: real `qianbao serve` and `qianbao worker` processes killed
with SIGKILL at random moments while clients pay, refund, send and redeem through the HTTP
API; then the books are audited and the figures printed.

    .venv/bin/python bench/bank.py [--seconds 60] [--kills 5] [--clients 16]
                                   [--database sqlite|postgresql] [--seed N] [--workers 1]

The machinery is tests/wallet/bank_run.py (its docstring says what a run does and what the
audit checks); tests/wallet/test_bank.py runs the short form in CI. PostgreSQL runs in a
database of its own, created for the run and dropped after it, on the server of
QIANBAO_TEST_DATABASE_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/bank_test).

Printed: operations acknowledged per second by kind, refusals by code, kills, how many
requests were asked again, the server's CPU per acknowledged operation (from
/proc/<pid>/stat of the server's processes, start-up excluded), the reconciliation with
the sandbox card network and bank, and the audit. Exits 1 when the audit finds anything.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.wallet.bank_run import run_bank  # noqa: E402

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/bank_test"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs during the load")
    parser.add_argument("--clients", type=int, default=16, help="client threads")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    options = parser.parse_args()
    seed = options.seed if options.seed is not None else random.randrange(2**32)
    with tempfile.TemporaryDirectory(prefix="qianbao-bank-") as work:
        result = run_bank(
            backend=options.database,
            work_dir=Path(work),
            seconds=options.seconds,
            kills=options.kills,
            clients=options.clients,
            seed=seed,
            pg_url=os.environ.get("QIANBAO_TEST_DATABASE_URL", DEFAULT_PG),
            server_workers=options.workers,
        )
    print("\n".join(result.figures()))
    return 1 if result.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
