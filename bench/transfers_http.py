"""Transfers between people per second through the HTTP API, beside pgbench TPC-B-like.

    .venv/bin/python bench/transfers_http.py [--seconds 10] [--workers 2] [--clients 16]

The approach of bench/payments_http.py: a real `qianbao serve` (PostgreSQL database
`qianbao_transfers_bench`, recreated each run) with N workers. Set-up, not timed: 16
people sign up over the API and set a payment password (the SMS codes read from the demo
outbox); then, straight in the database, each is verified and funded. Timed: 16 clients
(wrk, one connection a thread, ``bench/wrkload.py``) in a ring, client i sending CNY
1.00 to client i+1 again and again (`POST /api/v1/wallet/transfers`: bearer auth, a
fresh Idempotency-Key, the recipient looked up by number, the payment password, policy
for both people, restrictions, the limits (their usage queries run as always; the
numbers are raised so that the run does not stop at 100 transfers a day), the ledger
operation, the transfer row and the recipient's SMS in the outbox), against the
reference `pgbench -c 16 -j 2 -T <seconds> -M prepared` on the same server in the same
run. Goal: >= 0.5x pgbench. Afterwards the ledger is audited and the transfers counted
against the acknowledged ones.

The server runs at the shipped security settings (the payment password is a keyed hash,
qianbao/identity/pins.py; argon2 is for login passwords only). Printed beside the rate:
the server processes' CPU per transfer over the timed window, and one payment password
check timed alone in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import payments_http  # noqa: E402
import signup_http  # noqa: E402
import wrkload  # noqa: E402
from ledger import pgbench  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from qianbao.db import Database, Tx  # noqa: E402
from qianbao.identity import pins  # noqa: E402
from qianbao.identity import service as identity  # noqa: E402
from qianbao.identity.phone import parse_mobile  # noqa: E402
from qianbao.money import Money  # noqa: E402
from qianbao.settings import Settings  # noqa: E402
from qianbao.wallet.ledger import audit as ledger_audit  # noqa: E402
from qianbao.wallet.ledger import service as ledger  # noqa: E402
from qianbao.wallet.payments import service as payments  # noqa: E402
from qianbao.wallet.transfers.models import PersonTransfer  # noqa: E402

DATABASE = "qianbao_transfers_bench"
PIN = payments_http.PIN
BIG = 10**9
# The limits' numbers, raised for the run (their checks still run on every transfer).
POLICY = {
    tier: {
        "transfers_per_day": BIG,
        "transfer_per_day": f"{BIG} CNY",
        "balance_per_day": f"{BIG} CNY",
        "balance_per_year": f"{BIG} CNY",
    }
    for tier in ("class_ii", "class_iii")
}


def number(index: int) -> str:
    return f"+44791172{index:04d}"


def server_env_for_transfers() -> None:
    """payments_http's server settings, plus the raised policy numbers."""
    payments_http.bench_server_env()
    base = signup_http.server_env

    def server_env(database_url: str, var_dir: Path, secret_key: str) -> dict[str, str]:
        return {
            **base(database_url, var_dir, secret_key),
            "QIANBAO_POLICY_OVERRIDES": json.dumps(POLICY),
        }

    signup_http.server_env = server_env


def prepare(url: str, people: int) -> None:
    """Verify and fund everyone (not timed)."""
    db = Database(Settings(database_url=url))
    for index in range(people):
        phone = parse_mobile(number(index), "GB")

        def setup(tx: Tx, phone: object = phone) -> None:
            account = identity.account_by_phone(tx, phone)  # type: ignore[arg-type]
            identity.set_verification_level(tx, account.id, "passport_face")
            payments.claim_wallets(tx, str(account.id), payments.SYSTEM)
            source = payments.account_of(tx, payments.SYSTEM, "bank_clearing")
            target = payments.account_of(tx, str(account.id), "user_balance")
            ledger.transfer(tx, f"fund:{account.id}", source, target, Money.of("CNY", 90_000))

        db.run(setup)
    db.dispose()


SEND_LUA = (
    wrkload.CLIENT_FILES_LUA
    + r"""
local sent = 0
function request()
  sent = sent + 1
  return wrk.format("POST", "/api/v1/wallet/transfers", {
    ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("bench-%d-%d", id, sent),
  }, lines[1])
end
"""
)


def timed(base: str, tokens: list[str], seconds: float, work: Path) -> wrkload.WrkRun:
    """Each client sends CNY 1.00 to the next one around the ring, under wrk."""
    clients = [
        [
            token,
            json.dumps(
                {"to": number((index + 1) % len(tokens)), "amount": "1.00", "payment_password": PIN}
            ),
        ]
        for index, token in enumerate(tokens)
    ]
    env = wrkload.write_client_files(work, clients)
    return wrkload.run(
        base, SEND_LUA, connections=len(tokens), seconds=seconds, work_dir=work, env=env
    )


def check(url: str) -> tuple[bool, int]:
    """The ledger's audit, and how many transfers were recorded."""
    db = Database(Settings(database_url=url))
    sound = db.run(ledger_audit.audit).sound
    count = db.run(lambda tx: int(tx.session.scalar(select(func.count(PersonTransfer.id))) or 0))
    db.dispose()
    return sound, count


def payment_password_cost(var_dir: Path, rounds: int = 2000) -> float:
    """Milliseconds of one payment password check (the keyed hash), keys already loaded."""
    settings = Settings(var_dir=var_dir)
    user_id = uuid.uuid4()
    stored = pins.hash_pin(settings, user_id, PIN)
    started = time.perf_counter()
    for _ in range(rounds):
        assert pins.check_pin(settings, user_id, stored, PIN).matches
    return (time.perf_counter() - started) / rounds * 1000


async def run(options: argparse.Namespace) -> int:
    if not wrkload.available():
        print("wrk is not installed (apt install wrk)", file=sys.stderr)
        return 2
    url = payments_http.fresh_database(DATABASE)
    server_env_for_transfers()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = signup_http.Server(url, options.workers, work, work / "server.log", "bench-secret")
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                await server.wait_ready(client)
                tokens = [
                    await payments_http.sign_up(client, server.base_url, index, number(index))
                    for index in range(options.clients)
                ]
            prepare(url, options.clients)
            reference = pgbench(int(options.seconds))
            cpu_before = server.cpu_seconds()
            load = timed(server.base_url, tokens, options.seconds, work)
            time.sleep(signup_http.STATS_SETTLE_S)  # the answers in flight at the end
            cpu_after = server.cpu_seconds()
        finally:
            server.stop()
        pin_ms = payment_password_cost(work)
    sound, recorded = check(url)
    done, failures = load.succeeded, load.non_2xx
    rate = done / options.seconds
    print(
        f"transfers_http: {options.clients} clients in a ring (wrk), {options.workers} workers,"
        f" PostgreSQL, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"pgbench TPC-B-like -c 16 -j 2 -M prepared: {reference:,.0f} tps")
    print(
        f"transfers between people over HTTP: {rate:,.1f}/s  p50 {load.p50_ms:.0f} ms"
        f"  p99 {load.p99_ms:.0f} ms  failures {failures}, socket errors {load.socket_errors}"
        f"  ratio {rate / reference:.2f}x of pgbench (goal >= 0.5x)"
    )
    # wrk stops counting at its deadline: up to one answer a client was still in flight.
    in_flight_ok = done <= recorded <= done + options.clients
    print(
        f"after the run: ledger audit {'sound' if sound else 'NOT SOUND'},"
        f" {recorded} transfers recorded for {done} acknowledged"
        f" (and at most {options.clients} in flight at the end)"
    )
    cpu_ms = (
        (cpu_after - cpu_before) * 1000 / done
        if done and cpu_before is not None and cpu_after is not None
        else float("nan")
    )
    print(f"server CPU per transfer: {cpu_ms:.1f} ms (goal <= 2 ms)")
    print(f"payment password check alone (keyed hash, one core): {pin_ms:.3f} ms")
    return 1 if failures or not sound or not in_flight_ok else 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
