"""``qianbao worker`` in a child process, for tests/test_worker.py and bench/.

Run as ``python -m tests.worker_child worker --interval 0.05``: the same Typer command as
``qianbao worker``, with hooks that exist only here (the product has none), set by
environment variables:

- ``WORKER_CHILD_READY`` / ``WORKER_CHILD_GO``: write the first file once imported, then
  wait for the second, so several children start their sweeps together.
- ``WORKER_CHILD_LOG``: every SMS handed to the sandbox gateway is appended as a line
  (its body), so a test can count how many times each message went out.
- ``WORKER_CHILD_HANG_AT_SMS=n``: the n-th hand-over blocks for ever, before the gateway
  takes the message (after the claim was committed), and ``WORKER_CHILD_MARK`` is
  written: the test then kills the process with SIGKILL.
- ``WORKER_CHILD_HANG_IN_ORDERS=1``: the order sweep blocks inside its transaction, after
  closing the orders and before the commit; ``WORKER_CHILD_MARK`` is written.
- ``WORKER_CHILD_CLOCK_AHEAD=seconds``: this process's clock runs ahead, as if it were
  started that much later (after a dead worker's leases ran out).
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from qianbao import clock
from qianbao.cli import app
from qianbao.db import Tx
from qianbao.notify import gateways
from qianbao.wallet.payments import service as payments


def _hang() -> None:
    Path(os.environ["WORKER_CHILD_MARK"]).write_text(str(os.getpid()))
    while True:
        time.sleep(60)


def _install_hooks() -> None:
    log = os.environ.get("WORKER_CHILD_LOG")
    hang_at = int(os.environ.get("WORKER_CHILD_HANG_AT_SMS", "0"))
    handed = 0
    real_send = gateways.OutboxGateway.send

    def send(self: gateways.OutboxGateway, to_e164: str, body: str) -> str:
        nonlocal handed
        handed += 1
        if handed == hang_at:
            _hang()
        if log:
            with open(log, "a") as out:  # one short append per line: atomic
                out.write(body + "\n")
        return real_send(self, to_e164, body)

    gateways.OutboxGateway.send = send  # type: ignore[method-assign]

    if os.environ.get("WORKER_CHILD_HANG_IN_ORDERS"):
        real_close = payments.close_expired_orders

        def close_then_hang(tx: Tx, limit: int = 500) -> int:
            closed = real_close(tx, limit)
            tx.session.flush()
            _hang()
            return closed

        payments.close_expired_orders = close_then_hang

    ahead = float(os.environ.get("WORKER_CHILD_CLOCK_AHEAD", "0"))
    if ahead:
        real_now = clock.SystemClock.now

        def later(self: clock.SystemClock) -> datetime:
            return real_now(self) + timedelta(seconds=ahead)

        clock.SystemClock.now = later  # type: ignore[method-assign]


def _wait_for_go() -> None:
    ready, go = os.environ.get("WORKER_CHILD_READY"), os.environ.get("WORKER_CHILD_GO")
    if ready:
        Path(ready).write_text(str(os.getpid()))
    while go and not Path(go).exists():
        time.sleep(0.01)


if __name__ == "__main__":
    _install_hooks()
    _wait_for_go()
    app(sys.argv[1:], prog_name="qianbao")
