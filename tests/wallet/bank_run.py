"""The bank test's machinery: real ``qianbao serve`` and ``qianbao worker`` processes,
clients paying, refunding, sending and redeeming through the HTTP API, a killer that
SIGKILLs the processes at random moments, and the audit of the books afterwards.

Used by ``tests/wallet/test_bank.py`` (the short form, in CI) and ``bench/bank.py`` (the
long form, which prints its figures). Everything listens on 127.0.0.1 only.

The run, in order:

1. set-up in this process, through the service layer, against the database the server
   will use: people signed up by SMS code with a payment password, passport-verified,
   funded, each with a foreign card and a mainland bank card, and a prepaid batch of top-up
   codes; each person's bearer token is their session's;
2. ``qianbao serve --demo`` and ``qianbao worker`` start with the same settings (database,
   var directory: the sandbox card network and bank keep their books there, server key,
   sealing keys), each on its own free port;
3. N client threads do random operations through the API for the given time; a request
   that times out or meets a closed connection (or a 503) is asked again with the same
   key or request number until it is answered; every 2xx and every 4xx (with its code)
   is written down; meanwhile a killer SIGKILLs the server, the worker or both and starts
   them again (waiting for ``/readyz``);
4. the processes stop; the worker's work is finished here, in this process, on a clock
   moved past the grace times (the card attempts' and the pending refunds');
5. the audit: the ledger's own audit, the outside books (``wallet/reconciliation.py``),
   every acknowledged operation present exactly once with its amount, no refused one, no
   order refunded beyond its amount, every key reused for another body refused with
   ``409 idempotency.mismatch``, no refusal with an unexpected code, and no 5xx but 503
   while a process was down.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from qianbao import jobs
from qianbao.db import Database, Tx
from qianbao.settings import Settings
from qianbao.wallet import limits, reconciliation
from qianbao.wallet.ledger import audit as ledger_audit
from qianbao.wallet.ledger import service as ledger
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments
from qianbao.wallet.payments.models import OrderRefund, PaymentAttemptReversal, PaymentOrder
from qianbao.wallet.topup_codes.models import TopupCode
from qianbao.wallet.transfers.models import PersonTransfer
from tests.wallet.bank_clients import Actor, Client, Journal, Unanswered, World
from tests.wallet.bank_setup import (
    ANSWER_WITHIN_S,
    READY_TIMEOUT_S,
    OffsetClock,
    Servers,
    own_database,
    prepare,
    process_env,
    settings_values,
)

# --- the run ------------------------------------------------------------------------------


@dataclass
class RunResult:
    seed: int
    backend: str
    seconds: float
    clients: int
    journal: Journal
    problems: list[str]
    server_cpu_s: float
    reconciliation: reconciliation.Reconciliation | None
    ledger_sound: bool
    errors: list[str]
    left_over: dict[str, int] = field(default_factory=dict)

    @property
    def operations(self) -> int:
        return sum(self.journal.acked.values())

    def figures(self) -> list[str]:
        rate = self.seconds or 1.0
        lines = [
            f"bank run: {self.backend}, seed {self.seed}, {self.clients} clients,"
            f" {self.seconds:.0f} s of load, load average {os.getloadavg()[0]:.2f}",
            f"kills: {dict(self.journal.kills)} ({sum(self.journal.kills.values())} in all)",
            f"acknowledged: {self.operations} ({self.operations / rate:.1f}/s)",
            *(
                f"  {kind:<22} {count:>6}  {count / rate:6.2f}/s"
                for kind, count in sorted(self.journal.acked.items())
            ),
            f"refused: {sum(self.journal.refused.values())}",
            *(f"  {what:<40} {count:>6}" for what, count in sorted(self.journal.refused.items())),
            f"asked again: {self.journal.transport_retries} after no answer,"
            f" {self.journal.retries_503} after a 503",
        ]
        per_op = self.server_cpu_s / self.operations * 1000 if self.operations else 0.0
        lines.append(
            f"server CPU: {self.server_cpu_s:.1f} s, {per_op:.1f} ms per acknowledged operation"
        )
        left = ", ".join(f"{what} {count}" for what, count in self.left_over.items())
        lines.append(f"left for the final worker pass: {left}")
        if self.reconciliation is not None:
            lines += ["reconciliation:", *(f"  {line}" for line in self.reconciliation.report())]
        lines.append(f"ledger audit: {'sound' if self.ledger_sound else 'NOT SOUND'}")
        lines.append(
            "audit: sound" if not self.problems else f"audit: {len(self.problems)} problem(s)"
        )
        lines += [f"  {problem}" for problem in self.problems[:50]]
        return lines


def run_bank(
    *,
    backend: str,
    work_dir: Path,
    seconds: float,
    kills: int,
    clients: int,
    seed: int,
    pg_url: str = "",
    server_workers: int = 1,
) -> RunResult:
    """One bank run (see the module docstring); returns what it saw and the audit."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with own_database(backend, work_dir, pg_url) as url:
        values = settings_values(url, work_dir / "var")
        settings = Settings(**values)
        db = Database(settings)
        try:
            persons, codes = prepare(db, people=max(2, min(clients, 16)), codes=clients * 40)
        finally:
            db.dispose()
        world = World(persons, codes)
        journal = Journal()
        servers = Servers(process_env(values), work_dir, server_workers)
        errors: list[str] = []
        try:
            servers.start()
            _load(servers, world, journal, seconds, kills, clients, seed, errors)
        finally:
            servers.stop()
        final = Database(settings, OffsetClock(timedelta(hours=2)))
        try:
            leftover = final.run(left_over)
            finish_work(final)
            found = reconciliation.reconcile(final)
            sound = final.run(ledger_audit.audit).sound
            problems = audit(final, journal, found, sound) + errors
        finally:
            final.dispose()
        cpu = servers.server.cpu_seconds
    return RunResult(
        seed, backend, seconds, clients, journal, problems, cpu, found, sound, errors, leftover
    )


def _load(
    servers: Servers,
    world: World,
    journal: Journal,
    seconds: float,
    kills: int,
    clients: int,
    seed: int,
    errors: list[str],
) -> None:
    master = random.Random(seed)
    started = time.monotonic()
    deadline = started + seconds
    stop = threading.Event()

    def client_loop(index: int) -> None:
        rng = random.Random(master_seeds[index])
        actor = Actor(index, world, Client(servers.base_url, journal, rng), journal)
        try:
            while time.monotonic() < deadline and not stop.is_set():
                actor.step()
        except Unanswered as error:
            errors.append(f"client {index}: no answer for {error} in {ANSWER_WITHIN_S} s")
        except Exception as error:  # the client's own assertion: a wrong answer
            errors.append(f"client {index}: {type(error).__name__}: {error}")
        finally:
            actor.client.http.close()

    master_seeds = [master.getrandbits(64) for _ in range(clients)]
    kill_at = sorted(master.uniform(0.1, 0.85) * seconds for _ in range(kills))
    targets = ["both"] + [master.choice(["server", "worker", "both"]) for _ in range(kills)]

    def killer() -> None:
        for number, moment in enumerate(kill_at):
            if stop.wait(max(0.0, started + moment - time.monotonic())):
                return
            target = targets[number]
            down = time.monotonic()
            if target in ("server", "both"):
                servers.server.kill()
            if target in ("worker", "both"):
                servers.worker.kill()
            journal.kills[target] += 1
            time.sleep(master.uniform(0.2, 1.5))
            if target in ("server", "both"):
                servers.server.start()
                servers.wait_ready()
            if target in ("worker", "both"):
                servers.worker.start()
            with journal.lock:
                journal.kill_windows.append((down, time.monotonic() + 3.0))

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(clients)]
    killing = threading.Thread(target=killer, daemon=True)
    killing.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + ANSWER_WITHIN_S + 60)
        if thread.is_alive():
            errors.append("a client thread did not stop")
    stop.set()
    killing.join(READY_TIMEOUT_S + 30)


def left_over(tx: Tx) -> dict[str, int]:
    """What the killed processes and the real clock left for the final pass."""

    def count(model: Any, *where: Any) -> int:
        return int(tx.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    return {
        "refunds pending": count(OrderRefund, OrderRefund.status == "pending"),
        "payment attempts unrecorded": count(
            PaymentOrder, PaymentOrder.card_attempt_key.is_not(None), PaymentOrder.paid_at.is_(None)
        ),
        "attempts queued to send back": count(PaymentAttemptReversal),
    }


def finish_work(db: Database) -> None:
    """The worker's last pass, here, with the clock past every grace time: everything due
    (jobs.default_jobs), then the money jobs again until none finds anything."""
    jobs.work(db, jobs.default_jobs(), interval=0, once=True)
    for _ in range(10):
        done = db.run(payments.abandon_stranded_card_attempts, isolation="read committed")
        done += payments.reverse_card_attempts(db)
        done += refunds.finish_pending_refunds(db)
        done += db.run(ledger.expire_pending, isolation="read committed")
        if not done:
            return


# --- the audit ----------------------------------------------------------------------------


def audit(
    db: Database, journal: Journal, found: reconciliation.Reconciliation, ledger_sound: bool
) -> list[str]:
    """Everything that is wrong with the books after the run, as sentences."""
    problems: list[str] = []
    if not ledger_sound:
        problems.append(f"ledger audit not sound: {db.run(ledger_audit.audit)}")
    problems += [f"reconciliation: {finding}" for finding in found.findings]
    problems += [f"unexpected answer: {what}" for what in journal.unexpected]
    problems += [f"unanswered: {what}" for what in journal.unanswered]
    for moment, status, path, code in journal.server_errors:
        in_window = any(start <= moment <= end for start, end in journal.kill_windows)
        if status != 503 or not in_window:
            problems.append(f"{status} {code} on {path} outside a kill window or not a 503")
    problems += [
        f"a key reused for another body was answered {answer}"
        for answer in journal.reused_keys
        if answer != "409 idempotency.mismatch"
    ]
    problems += db.run(lambda tx: _books_problems(tx, journal), isolation="read committed")
    # The limits' counters, kept beside each movement, still equal the history's sums.
    problems += db.run(limits.discrepancies, isolation="read committed")
    return problems


def _books_problems(tx: Tx, journal: Journal) -> list[str]:
    problems: list[str] = []
    orders = {row.id: row for row in tx.session.scalars(select(PaymentOrder))}
    for order_id, (amount, _buyer, payer, source) in journal.payments.items():
        row = orders.get(order_id)
        if row is None or row.paid_at is None:
            problems.append(f"acknowledged payment of {order_id} is not in the books")
            continue
        outside = {"foreign_card": row.card_capture_id, "bank_card": row.bank_debit_id}
        if source in outside and outside[source] is None:
            problems.append(f"order {order_id} paid by {source} without its capture or debit")
        if (row.amount, row.payer_id, row.source) != (amount, payer, source):
            problems.append(
                f"order {order_id}: acknowledged {amount} by {payer} ({source}), the books"
                f" say {row.amount} by {row.payer_id} ({row.source})"
            )
    for order_id, payer in journal.refused_payments:
        if orders[order_id].payer_id == payer:
            problems.append(f"refused payment of {order_id} is in the books")
    for order_id, (buyer, friend) in journal.pay_for_me.items():
        row = orders[order_id]
        if (row.buyer_id, row.payer_id) != (buyer, friend):
            problems.append(f"pay-for-me {order_id}: buyer/payer {row.buyer_id}/{row.payer_id}")
    refunds = {
        (row.order_id, row.out_request_no): row for row in tx.session.scalars(select(OrderRefund))
    }
    acked_per_order: Counter[uuid.UUID] = Counter()
    for (order_id, request_no), (amount, refund_id) in journal.refunds.items():
        acked_per_order[order_id] += amount
        refund = refunds.get((order_id, request_no))
        if refund is None or refund.status != "succeeded" or refund.amount != amount:
            state = "missing" if refund is None else f"{refund.status} {refund.amount}"
            problems.append(f"acknowledged refund {request_no} of {amount} is {state}")
        elif refund.id != refund_id:
            problems.append(f"refund {request_no} answered as {refund_id}, booked {refund.id}")
    for order_id, total in acked_per_order.items():
        if total > orders[order_id].amount:
            problems.append(
                f"order {order_id}: refunds of {total} acknowledged for {orders[order_id].amount}"
            )
    for order_id, request_no in journal.refused_refunds:
        refund = refunds.get((order_id, request_no))
        if refund is not None and refund.status == "succeeded":
            problems.append(f"refused refund {request_no} is in the books for {refund.amount}")
    sent = list(tx.session.scalars(select(PersonTransfer)))
    counted = Counter((found.sender_id, found.idempotency_key) for found in sent)
    transfers = {(found.sender_id, found.idempotency_key): found for found in sent}
    for key, (amount, recipient, transfer_id) in journal.transfers.items():
        booked = transfers.get(key)
        if booked is None:
            problems.append(f"acknowledged transfer {key[1]} is not in the books")
            continue
        same = (booked.amount, booked.recipient_id, booked.id) == (amount, recipient, transfer_id)
        if not same or counted[key] != 1:
            problems.append(
                f"transfer {key[1]}: acknowledged {amount} to {recipient} as {transfer_id},"
                f" booked {counted[key]} time(s): {booked.amount} to {booked.recipient_id}"
            )
    redeemed = {
        row.redeemed_by
        for row in tx.session.scalars(select(TopupCode).where(TopupCode.state == "redeemed"))
    }
    redemptions = int(
        tx.session.scalar(
            select(func.count()).select_from(TopupCode).where(TopupCode.state == "redeemed")
        )
        or 0
    )
    if redemptions != len(journal.codes):
        problems.append(
            f"{redemptions} codes redeemed in the books, {len(journal.codes)} acknowledged"
        )
    missing = set(journal.codes.values()) - redeemed
    if missing:
        problems.append(f"acknowledged redemptions missing for {len(missing)} people")
    return problems
