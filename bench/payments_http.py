"""Merchant payments per second through the HTTP API, beside pgbench TPC-B-like.

    .venv/bin/python bench/payments_http.py [--seconds 10] [--workers 2] [--clients 16]
    .venv/bin/python bench/payments_http.py --plain   # without shared transactions
    .venv/bin/python bench/payments_http.py --python  # not as one database call

A real `qianbao serve` (PostgreSQL database `qianbao_payments_bench`, recreated each
run) with N workers. Set-up, not timed: 16 people sign up over the API and set a payment
password (the SMS codes read from the demo outbox); then, straight in the database, each
is verified and funded and the demo shop gets enough orders. Timed: 16 clients (wrk, one
connection a thread, ``bench/wrkload.py``: a load generator whose own cost does not cap
the figure) each paying their own orders by balance (`POST /api/v1/orders/{id}/pay`:
bearer auth, the payment password, policy, restrictions, limits, the ledger operation),
against the reference `pgbench -c 16 -j 2 -T <seconds> -M prepared` on the same server in the same
run. Goal: >= 0.5x pgbench.

The server runs at the shipped security settings: the payment password is a keyed hash
(qianbao/identity/pins.py), so argon2, which only login passwords use, is not on this
path at all. Printed: payments a second and the ratio to pgbench, p50/p99, and the
server processes' CPU per payment (their /proc times over the timed window; the database
backends' CPU is not in it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import signup_http  # noqa: E402
import wrkload  # noqa: E402
from ledger import SERVER, ensure_database, pgbench  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from qianbao import migrate  # noqa: E402
from qianbao.db import Database, Tx  # noqa: E402
from qianbao.identity import service as identity  # noqa: E402
from qianbao.identity.phone import parse_mobile  # noqa: E402
from qianbao.money import Money  # noqa: E402
from qianbao.settings import Settings  # noqa: E402
from qianbao.wallet.ledger import service as ledger  # noqa: E402
from qianbao.wallet.payments import service as payments  # noqa: E402

DATABASE = "qianbao_payments_bench"
PIN = "802417"
METRICS_TOKEN = "bench-metrics"  # a local, throwaway server's scrape token


def fresh_database(database: str = DATABASE) -> str:
    """``database`` dropped to an empty schema and migrated (each run starts clean)."""
    ensure_database(database)
    url = f"{SERVER}/{database}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    migrate.upgrade(Settings(database_url=url))
    return url


def bench_server_env(*, plain: bool = False, python_path: bool = False) -> None:
    """The server's environment; ``plain``: no shared transactions and no session cache
    (the path as it was before them, to measure them beside it); ``python_path``: the
    payment's rules and writes in Python, not as one database call."""
    base = signup_http.server_env
    plain_env = {"QIANBAO_MONEY_BATCH_MAX": "1", "QIANBAO_SESSION_CACHE_SECONDS": "0"}
    python_env = {"QIANBAO_MONEY_IN_DATABASE": "false"}

    def server_env(database_url: str, var_dir: Path, secret_key: str) -> dict[str, str]:
        # Only the set-up's SMS codes are relaxed; every security cost is as shipped.
        return {
            **base(database_url, var_dir, secret_key),
            "QIANBAO_SMS_RESEND_COOLDOWN_SECONDS": "0",
            "QIANBAO_METRICS_TOKEN": METRICS_TOKEN,
            **(plain_env if plain else {}),
            **(python_env if python_path else {}),
        }

    signup_http.server_env = server_env


async def sign_up(
    client: httpx.AsyncClient, base: str, index: int, number: str | None = None
) -> str:
    """Person ``index`` signs up over the API and sets the payment password; the token."""
    number = number or f"+44791170{index:04d}"
    phone = {"country": "GB", "number": number}
    await client.post(f"{base}/api/v1/auth/number-check", json=phone)
    sent = await client.post(
        f"{base}/api/v1/auth/sms-codes",
        json={**phone, "purpose": "signup", "agreement_version": "2026-11-01"},
    )
    sent.raise_for_status()
    code = await outbox_code(client, base, number)
    signed = await client.post(
        f"{base}/api/v1/auth/sessions", json={**phone, "purpose": "signup", "code": code}
    )
    signed.raise_for_status()
    token = str(signed.json()["token"])
    auth = {"Authorization": f"Bearer {token}"}
    (await client.post(f"{base}/api/v1/me/security-codes", headers=auth)).raise_for_status()
    code = await outbox_code(client, base, number)
    done = await client.put(
        f"{base}/api/v1/me/payment-password",
        headers=auth,
        json={"new_password": PIN, "sms_code": code},
    )
    done.raise_for_status()
    return token


async def outbox_code(client: httpx.AsyncClient, base: str, number: str) -> str:
    messages = (await client.get(f"{base}/api/v1/demo/outbox", params={"phone": number})).json()
    found = re.search(r"(?<!\d)(\d{6})(?!\d)", messages[0]["body"])
    assert found, messages
    return found.group(1)


def prepare(url: str, people: int, orders_each: int) -> dict[int, list[str]]:
    """Verify and fund everyone, and make the orders they will pay (not timed)."""
    db = Database(Settings(database_url=url))
    merchant = db.run(lambda tx: payments.create_merchant(tx, "Bench Shop"))
    orders: dict[int, list[str]] = {}
    for index in range(people):
        phone = parse_mobile(f"+44791170{index:04d}", "GB")

        def setup(tx: Tx, phone: object = phone, index: int = index) -> list[str]:
            account = identity.account_by_phone(tx, phone)  # type: ignore[arg-type]
            identity.set_verification_level(tx, account.id, "passport_face")
            payments.claim_wallets(tx, str(account.id), payments.SYSTEM)
            source = payments.account_of(tx, payments.SYSTEM, "bank_clearing")
            target = payments.account_of(tx, str(account.id), "user_balance")
            ledger.transfer(tx, f"fund:{account.id}", source, target, Money.of("CNY", 90_000))
            return [
                str(
                    payments.create_order(
                        tx, merchant, f"B{index}X{n}", "Bench", Money.of("CNY", "1.00")
                    ).id
                )
                for n in range(orders_each)
            ]

        orders[index] = db.run(setup)
    db.dispose()
    return orders


PAY_LUA = (
    wrkload.CLIENT_FILES_LUA
    + r"""
local paid = 0
local body = '{"source":"balance","payment_password":"PIN"}'
function request()
  paid = paid + 1
  if paid > #lines then  -- out of orders: answered 404, counted as a failure
    return wrk.format("GET", "/bench-ran-out-of-orders")
  end
  return wrk.format("POST", "/api/v1/orders/" .. lines[paid] .. "/pay", {
    ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json",
  }, body)
end
""".replace("PIN", PIN)
)


def timed(
    base: str, tokens: list[str], orders: dict[int, list[str]], seconds: float, work: Path
) -> wrkload.WrkRun:
    """Each client pays its own orders, one after another, under wrk."""
    env = wrkload.write_client_files(
        work, [[token, *orders[index]] for index, token in enumerate(tokens)]
    )
    return wrkload.run(
        base, PAY_LUA, connections=len(tokens), seconds=seconds, work_dir=work, env=env
    )


async def run(options: argparse.Namespace) -> int:
    if not wrkload.available():
        print("wrk is not installed (apt install wrk)", file=sys.stderr)
        return 2
    url = fresh_database()
    bench_server_env(plain=options.plain, python_path=options.python_path)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = signup_http.Server(url, options.workers, work, work / "server.log", "bench-secret")
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                await server.wait_ready(client)
                tokens = [
                    await sign_up(client, server.base_url, index)
                    for index in range(options.clients)
                ]
            orders = prepare(url, options.clients, options.orders or int(250 * options.seconds))
            reference = pgbench(int(options.seconds))
            cpu_before = server.cpu_seconds()
            load = timed(server.base_url, tokens, orders, options.seconds, work)
            time.sleep(signup_http.STATS_SETTLE_S)  # the answers in flight at the end
            cpu_after = server.cpu_seconds()
            groups = await money_groups(server.base_url)
        finally:
            server.stop()
    paid, failures = load.succeeded, load.non_2xx
    cpu_ms = (
        (cpu_after - cpu_before) * 1000 / paid
        if paid and cpu_before is not None and cpu_after is not None
        else float("nan")
    )
    rate = paid / options.seconds
    flags = (" --plain" if options.plain else "") + (" --python" if options.python_path else "")
    print(
        f"payments_http{flags}: {options.clients} clients,"
        f" {options.workers} workers, PostgreSQL,"
        f" load average {os.getloadavg()[0]:.2f}"
    )
    print(f"pgbench TPC-B-like -c 16 -j 2 -M prepared: {reference:,.0f} tps")
    print(
        f"payments by balance over HTTP (wrk): {rate:,.1f}/s  p50 {load.p50_ms:.0f} ms"
        f"  p99 {load.p99_ms:.0f} ms  failures {failures}, socket errors {load.socket_errors}"
        f"  ratio {rate / reference:.2f}x of pgbench (goal >= 0.5x)"
    )
    print(f"server CPU per payment: {cpu_ms:.1f} ms (goal <= 2 ms)")
    operations, transactions = groups
    if transactions:
        print(
            f"shared transactions (qianbao/batching.py): {operations:,.0f} payments in"
            f" {transactions:,.0f}, {operations / transactions:.2f} a transaction"
        )
    return 1 if failures else 0


async def money_groups(base: str) -> tuple[float, float]:
    """Payments and the transactions they shared, from the server's own metrics (all
    workers added up); the set-up's payments are none (it pays nothing)."""
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.get(
            f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
    values = {
        name: float(value)
        for name, value in re.findall(
            r"^qianbao_money_group_operations_(sum|count) (\S+)$", answer.text, re.M
        )
    }
    return values.get("sum", 0.0), values.get("count", 0.0)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--orders",
        type=int,
        default=None,
        help="orders made per client (default: 250 a second of the run; one client can pay"
        " four times the average when the workers' connections fall unevenly)",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="without shared transactions and the session cache, to compare",
    )
    parser.add_argument(
        "--python",
        dest="python_path",
        action="store_true",
        help="the payment in Python, not as one database call (wallet/payments/in_database.py)",
    )
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
