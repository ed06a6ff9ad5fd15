"""The bank test's set-up: the settings every process shares, a database of its own, the
people and codes made through the service layer, and the ``qianbao serve`` and
``qianbao worker`` processes (in their own process groups, for SIGKILL). See bank_run.py."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from qianbao import migrate
from qianbao.db import Database, Tx
from qianbao.funding import card_network, foreign_cards
from qianbao.funding import service as funding
from qianbao.funding.sandbox import bank as bank_sandbox
from qianbao.funding.sandbox import card_network as sandbox_card_network
from qianbao.identity import security
from qianbao.identity import service as identity
from qianbao.identity.phone import parse_mobile
from qianbao.money import Money
from qianbao.notify import service as notify
from qianbao.sealing import new_key_entry
from qianbao.wallet.ledger import service as ledger
from qianbao.wallet.payments import service as payments
from qianbao.wallet.topup_codes import service as topup_codes

PIN = "802417"
AGREEMENT = "2026-11-01"
OPENING = Money.of("CNY", 50_000)
CODE_VALUE = "10"
BIG = 10**9
POLICY = {
    tier: {
        "transfers_per_day": BIG,
        "transfer_per_day": f"{BIG} CNY",
        "balance_per_day": f"{BIG} CNY",
        "balance_per_year": f"{BIG} CNY",
        "card_per_payment": f"{BIG} USD",
        "card_per_year": f"{BIG} USD",
    }
    for tier in ("class_ii", "class_iii")
}
APPROVE_CARDS = [c for c in sandbox_card_network.SANDBOX_CARDS if c.outcome == "approve"]
BANK_CARDS = [c for c in bank_sandbox.SANDBOX_CARDS if c.outcome == "match"]
READY_TIMEOUT_S = 90.0
ANSWER_WITHIN_S = 120.0  # a request unanswered this long (retries included) is a failure
# What each kind of operation may be refused with, by design; anything else is a finding.
EXPECTED_REFUSALS: dict[str, set[str]] = {
    "pay": {"order.paid", "card.attempt_abandoned", "card.attempt_replaced"},
    "refund": {"refund.too_much", "refund.not_refundable"},
    "refund_reuse": {"idempotency.mismatch"},
    "transfer": set(),
    "transfer_reuse": {"idempotency.mismatch"},
    "topup": {"topup.redeemed"},
    # Two friends paying one link at once: the loser is told it is paid, or, when the
    # winner paid another way while the loser's card was being charged, that the card
    # payment was cancelled (its money goes back: the reconciliation checks it).
    "pay_for_me": {"order.paid", "pay_for_me.already_paid", "card.attempt_replaced"},
}


# --- settings shared by every process -----------------------------------------------------


def settings_values(database_url: str, var_dir: Path) -> dict[str, Any]:
    """The settings of this run, the same for the server, the worker and this process."""
    return {
        "database_url": database_url,
        "var_dir": str(var_dir),
        "secret_key": secrets.token_urlsafe(32),
        "sealing_keys": new_key_entry("bank1"),
        "demo": True,
        "log_level": "WARNING",
        # Cheap argon2id: the payment password is checked on every payment
        # (bench/passwords.py measures its real cost).
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "argon2_parallelism": 1,
        "sms_resend_cooldown_seconds": 0,
        "sms_per_ip_per_hour": BIG,
        "sms_per_ip_per_day": BIG,
        "sms_per_number_per_hour": BIG,
        "sms_per_number_per_day": BIG,
        "sms_per_prefix_per_hour": BIG,
        "sms_per_country_per_hour": BIG,
        "sms_countries_per_ip_per_day": BIG,
        "number_lookups_per_ip_per_hour": BIG,
        "bank_checks_per_day": BIG,
        # Everyone is verified; a card shared by several of them is test data, not fraud.
        "risk_card_velocity_payments": BIG,
        "risk_shared_card_accounts": BIG,
        # Racing for a code someone else redeemed counts as a failed guess.
        "topup_code_failures_before_delay": BIG,
        "topup_code_failures_before_delay_per_ip": BIG,
        "policy_overrides": POLICY,
        # The shortest the settings allow, so that the worker meets them during a run.
        "refund_grace_seconds": 30,
        "card_attempt_grace_seconds": 60,
        "worker_lease_seconds": 30,
    }


def process_env(values: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QIANBAO_")}
    for name, value in values.items():
        if isinstance(value, dict):
            text_value = json.dumps(value)
        elif isinstance(value, bool):
            text_value = "true" if value else "false"
        else:
            text_value = str(value)
        env[f"QIANBAO_{name.upper()}"] = text_value
    return env


class OffsetClock:
    """The real time moved ``offset`` ahead: the final worker pass, past the grace times."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


# --- a database of its own ----------------------------------------------------------------


@contextmanager
def own_database(backend: str, work_dir: Path, pg_url: str) -> Iterator[str]:
    """A fresh database for one run: a SQLite file, or a PostgreSQL database created under a
    unique name on the server of ``pg_url`` (through its ``postgres`` maintenance database)
    and dropped afterwards, so that parallel runs never share one."""
    if backend == "sqlite":
        yield f"sqlite:///{work_dir / 'qianbao.db'}"
        return
    base = make_url(pg_url)
    name = f"bank_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- set-up through the service layer ------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    index: int
    id: uuid.UUID
    phone: str
    token: str
    card_id: uuid.UUID
    bank_card_id: uuid.UUID

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _code_in_outbox(db: Database, e164: str) -> str:
    body = db.run(lambda tx: notify.read_outbox(tx, e164, 1))[0].body
    found = re.search(r"(?<!\d)(\d{6})(?!\d)", body)
    assert found, body
    return found.group(1)


def _fund(tx: Tx, user_id: uuid.UUID) -> None:
    payments.wallet(tx, user_id)  # opens the person's accounts under their claim
    source = payments.account_of(tx, payments.SYSTEM, "bank_clearing")
    target = payments.account_of(tx, str(user_id), "user_balance")
    ledger.transfer(tx, f"bank-test:fund:{user_id}", source, target, OPENING)


def make_person(db: Database, index: int) -> Person:
    phone = parse_mobile(f"+44791180{index:04d}", "GB")
    client = identity.Client(ip=f"198.51.100.{index + 1}", user_agent="bank-test")
    identity.send_code(db, phone, "signup", client, "en", AGREEMENT)
    signed = identity.sign_in(db, phone, "signup", _code_in_outbox(db, phone.e164), client)
    user = signed.account.id
    security.send_security_code(db, user, client, "en")
    security.set_payment_password(db, user, PIN, sms_code=_code_in_outbox(db, phone.e164))
    sandbox_bank_card = BANK_CARDS[index % len(BANK_CARDS)]
    holder = funding.CardHolder(
        sandbox_bank_card.number,
        sandbox_bank_card.holder_name,
        sandbox_bank_card.passport_number,
        sandbox_bank_card.reserved_phone,
    )
    started = funding.start_check(db, user, holder, None)
    code = _code_in_outbox(db, sandbox_bank_card.reserved_phone)
    bank_card = funding.confirm_check(db, user, started.id, code)
    db.run(lambda tx: identity.set_verification_level(tx, user, "passport_face"))
    db.run(lambda tx: _fund(tx, user))
    sandbox_card = APPROVE_CARDS[index % len(APPROVE_CARDS)]
    cvv = "1234" if sandbox_card.brand == card_network.Brand.AMEX else "123"
    card = foreign_cards.add_foreign_card(
        db, user, sandbox_card.number, "12/30", cvv, "ADA LOVELACE"
    )
    assert card.challenge_url is None
    return Person(index, user, phone.e164, signed.token, card.id, bank_card.id)


def prepare(db: Database, people: int, codes: int) -> tuple[list[Person], list[str]]:
    migrate.upgrade(db.settings)
    payments.demo_merchant(db)
    persons = [make_person(db, index) for index in range(people)]
    batch = topup_codes.create_batch(
        db, payments.DEMO_SHOP, CODE_VALUE, codes, paid_by_bank=f"BANK-{secrets.token_hex(6)}"
    )
    return persons, list(batch.codes)


# --- the processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system, with waited-for children) of a process group's members."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:  # field 5, pgrp
            total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / tick


class Process:
    """A ``qianbao`` command in its own process group (SIGKILL takes all of it)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.popen: subprocess.Popen[bytes] | None = None
        self.cpu_seconds = 0.0  # of the incarnations that ended, from when they were ready
        self.starts = 0
        self._baseline = 0.0  # CPU spent starting (imports, migrations): not counted

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        self._baseline = 0.0

    def ready(self) -> None:
        """From now on its CPU time counts (the start-up's does not)."""
        if self.popen is not None:
            self._baseline = _group_cpu_seconds(self.popen.pid)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def _end(self, sig: int, wait_s: float) -> None:
        popen = self.popen
        if popen is None:
            return
        if popen.poll() is None:
            self.cpu_seconds += _group_cpu_seconds(popen.pid) - self._baseline
            try:
                os.killpg(popen.pid, sig)
                popen.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(timeout=10)
            except ProcessLookupError:
                pass
        self.popen = None

    def kill(self) -> None:
        self._end(signal.SIGKILL, 10)

    def stop(self) -> None:
        self._end(signal.SIGTERM, 15)


def qianbao_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "qianbao", *args]


class Servers:
    def __init__(self, env: dict[str, str], work_dir: Path, server_workers: int = 1) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        serve = ["serve", "--demo", "--host", "127.0.0.1", "--port", str(self.port)]
        if server_workers > 1:
            serve += ["--workers", str(server_workers)]
        self.server = Process("server", qianbao_command(*serve), env, work_dir / "server.log")
        self.worker = Process(
            "worker", qianbao_command("worker", "--interval", "0.5"), env, work_dir / "worker.log"
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.server.alive():
                raise RuntimeError(f"qianbao serve exited; see {self.server.log}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    self.server.ready()
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"qianbao serve not ready in {READY_TIMEOUT_S} s; see {self.server.log}")

    def start(self) -> None:
        self.server.start()
        self.wait_ready()
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()
        self.server.stop()
