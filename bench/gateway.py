"""The trade API in process: request signature checks against the bare RSA verification
of ``cryptography`` in the same run, precreate and barcode-pay round trips, and
notifications delivered per second with 1 and 2 delivering threads, and with 1 and 2
worker processes (each its own interpreter, as `qianbao worker` runs).

Everything runs in this process against a migrated SQLite file in a temp dir (or the
PostgreSQL database given with ``--pg-url``, whose public schema is dropped and made
again; ``test``, ``postgres`` and the templates are refused): the gateway's own service
(``service.answer``), not HTTP, so the figures are the gateway's work, not the web
server's. The shop's notify_url is a threaded HTTP server on 127.0.0.1 answering
``success``.

    .venv/bin/python bench/gateway.py          # 2,000 checks, 300 trades, 600 notifications
    .venv/bin/python bench/gateway.py --quick    # a tenth of that

The machine's other work counts: the header prints the cores and the load average.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from qianbao import migrate
from qianbao.db import Database, Tx
from qianbao.identity import service as identity
from qianbao.identity.phone import parse_mobile
from qianbao.money import Money
from qianbao.notify.service import read_outbox
from qianbao.openplatform import signing
from qianbao.openplatform.gateway import notifications, protocol, service
from qianbao.openplatform.merchants import service as merchants
from qianbao.settings import Settings
from qianbao.wallet.ledger import service as ledger
from qianbao.wallet.payment_codes import service as payment_codes
from qianbao.wallet.payments import service as payments

REFUSED = {"test", "postgres", "template0", "template1"}
SHOP = "Bench Shop"


def database(pg_url: str, folder: Path) -> Database:
    url = pg_url or f"sqlite:///{folder / 'bench.db'}"
    if pg_url:
        name = make_url(pg_url).database
        if not name or name in REFUSED:
            raise SystemExit(f"refusing to use the database {name!r}")
        engine = create_engine(pg_url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    settings = Settings(
        database_url=url, var_dir=folder / "var", secret_key="bench-secret", demo=True
    )
    migrate.upgrade(settings)
    return Database(settings)


def rate(count: int, work: Callable[[int], object]) -> float:
    started = time.perf_counter()
    for n in range(count):
        work(n)
    return count / (time.perf_counter() - started)


def request(
    db: Database, app_id: str, key: rsa.RSAPrivateKey, method: str, biz: dict[str, str]
) -> dict[str, str]:
    params = {
        "app_id": app_id,
        "method": method,
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": protocol.beijing_time(db.clock.now()),
        "version": "1.0",
        "biz_content": json.dumps(biz),
    }
    params["sign"] = signing.sign(key, signing.sign_content(params))
    return params


def payer(db: Database) -> uuid.UUID:
    """A verified person with money, signed up the way the app does it."""
    phone = parse_mobile("+447911800001", "GB")
    client = identity.Client(ip="198.51.100.9", user_agent="bench")
    identity.send_code(db, phone, "signup", client, "en", "2026-11-01")
    [message] = db.run(lambda tx: read_outbox(tx, phone.e164, 1))
    code = re.search(r"\b(\d{4,8})\b", message.body)
    assert code is not None
    user = identity.sign_in(db, phone, "signup", code.group(1), client).account.id
    db.run(lambda tx: identity.set_verification_level(tx, user, "passport_face"))

    def fund(tx: Tx) -> None:
        payments.claim_wallets(tx, str(user), payments.SYSTEM)
        source = payments.account_of(tx, payments.SYSTEM, "bank_clearing")
        target = payments.account_of(tx, str(user), "user_balance")
        ledger.transfer(tx, "bench:fund", source, target, Money.of("CNY", "1000000"))

    db.run(fund)
    return user


class Shop(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "7")
        self.end_headers()
        self.wfile.write(b"success")

    def log_message(self, format: str, *args: object) -> None:
        return


def pay_numbered(pay: Callable[[int], None], offset: int, n: int) -> None:
    pay(offset + n)


def deliver_all(db: Database, threads: int) -> tuple[float, list[int]]:
    """Every due notification delivered by ``threads`` threads at once: per second, and
    each thread's share."""
    counts = [0] * threads

    def deliver(slot: int) -> None:
        while done := notifications.deliver_due(db):
            counts[slot] += done

    workers = [threading.Thread(target=deliver, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.perf_counter() - started), counts


def deliver_in_a_process(settings: Settings, answers: Queue[int], start: Barrier) -> None:
    """One worker process: once every process is up, deliver what is due until nothing
    is, and say how many."""
    db = Database(settings)
    start.wait()
    count = 0
    while done := notifications.deliver_due(db):
        count += done
    db.dispose()
    answers.put(count)


def deliver_by_processes(db: Database, processes: int) -> tuple[float, list[int]]:
    """Every due notification delivered by ``processes`` worker processes at once."""
    context = multiprocessing.get_context("spawn")
    answers: Queue[int] = context.Queue()
    start = context.Barrier(processes + 1)  # timed from when every process is up
    workers = [
        context.Process(target=deliver_in_a_process, args=(db.settings, answers, start))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    start.wait()
    started = time.perf_counter()
    counts = [answers.get() for _ in workers]
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.join()
    return sum(counts) / elapsed, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pg-url", default="")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    verifications, trades, notices = 2000 // scale, 300 // scale, 600 // scale
    print(f"cores: {os.cpu_count()}, load: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        db = database(args.pg_url, Path(folder))
        print(f"database: {db.dialect}")
        keys = signing.new_private_key(2048)
        db.run(lambda tx: payments.create_merchant(tx, SHOP))
        app_id = db.run(lambda tx: merchants.create_app(tx, SHOP, "bench")).app_id
        pem = signing.public_pem(keys.public_key())
        db.run(lambda tx: merchants.set_app_key(tx, app_id, pem))
        person = payer(db)

        signed = request(db, app_id, keys, "alipay.trade.query", {"out_trade_no": "none"})
        text_signed = signing.sign_content(signed)
        public = keys.public_key()
        bare = rate(verifications, lambda _: signing.verify(public, text_signed, signed["sign"]))
        checked = rate(verifications, lambda _: db.run(lambda tx: service.authenticate(tx, signed)))
        print(f"bare RSA-2048 verify (cryptography): {bare:9.0f} /s")
        print(
            f"gateway request check (signature, app, timestamp, one transaction): "
            f"{checked:9.0f} /s  ({checked / bare:.2f}x bare)"
        )

        def precreate(n: int) -> None:
            params = request(
                db,
                app_id,
                keys,
                "alipay.trade.precreate",
                {"out_trade_no": f"P{n}", "total_amount": "1.00", "subject": "bench"},
            )
            assert '"10000"' in service.answer(db, params).text

        made = rate(trades, precreate)
        print(f"precreate round trips (verify, order, signed answer): {made:9.1f} /s")

        with ThreadingHTTPServer(("127.0.0.1", 0), Shop) as server:
            threading.Thread(target=server.serve_forever, daemon=True).start()
            notify_url = f"http://127.0.0.1:{server.server_address[1]}/notify"

            def pay(n: int) -> None:
                code = db.run(lambda tx: payment_codes.issue(tx, person)).code
                biz = {
                    "out_trade_no": f"B{n}",
                    "total_amount": "1.00",
                    "subject": "bench",
                    "scene": "bar_code",
                    "auth_code": code,
                }
                params = request(db, app_id, keys, "alipay.trade.pay", biz)
                params["notify_url"] = notify_url
                params["sign"] = signing.sign(keys, signing.sign_content(params))
                assert '"10000"' in service.answer(db, params).text

            for threads in (1, 2):
                paid = rate(notices, partial(pay_numbered, pay, threads * notices))
                print(
                    f"barcode pay round trips (code, ledger, notification queued), "
                    f"batch {threads}: {paid:9.1f} /s"
                )
                delivered, counts = deliver_all(db, threads)
                print(
                    f"notifications delivered with {threads} thread(s): "
                    f"{delivered:9.1f} /s  (each: {counts})"
                )
            for processes in (1, 2):
                offset = (3 + processes) * notices
                rate(notices, partial(pay_numbered, pay, offset))
                delivered, counts = deliver_by_processes(db, processes)
                print(
                    f"notifications delivered by {processes} worker process(es):"
                    f" {delivered:9.1f} /s  (each: {counts})"
                )
            server.shutdown()
        db.dispose()


if __name__ == "__main__":
    main()
