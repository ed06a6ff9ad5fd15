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

import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from qianbao import jobs, migrate
from qianbao.db import Database, Tx
from qianbao.funding import bank as bank_sandbox
from qianbao.funding import card_network
from qianbao.funding import service as funding
from qianbao.identity import security
from qianbao.identity import service as identity
from qianbao.identity.phone import parse_mobile
from qianbao.money import Money
from qianbao.notify import service as notify
from qianbao.sealing import new_key_entry
from qianbao.settings import Settings
from qianbao.wallet import ledger, payments, reconciliation, topup_codes
from qianbao.wallet.payment_models import OrderRefund, PaymentAttemptReversal, PaymentOrder
from qianbao.wallet.topup_code_models import TopupCode
from qianbao.wallet.transfer_models import PersonTransfer

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
APPROVE_CARDS = [c for c in card_network.SANDBOX_CARDS if c.outcome == "approve"]
BANK_CARDS = [c for c in bank_sandbox.SANDBOX_CARDS if c.outcome == "match"]
READY_TIMEOUT_S = 90.0
ANSWER_WITHIN_S = 120.0  # a request unanswered this long (retries included) is a failure
# What each kind of operation may be refused with, by design; anything else is a finding.
EXPECTED_REFUSALS: dict[str, set[str]] = {
    "pay": {"order.paid", "card.attempt_abandoned"},
    "refund": {"refund.too_much", "refund.not_refundable"},
    "refund_reuse": {"idempotency.mismatch"},
    "transfer": set(),
    "transfer_reuse": {"idempotency.mismatch"},
    "topup": {"topup.redeemed"},
    # Two friends paying one link at once: the loser is told it is paid, or, when the
    # winner paid another way while the loser's card was being charged, that the card
    # payment was cancelled (its money goes back: the reconciliation checks it).
    "pay_for_me": {"order.paid", "pay_for_me.already_paid", "card.attempt_abandoned"},
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
    card = payments.add_foreign_card(db, user, sandbox_card.number, "12/30", cvv, "ADA LOVELACE")
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


# --- what the clients saw -----------------------------------------------------------------


@dataclass
class Journal:
    """Every answer the clients got, written by many threads under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # "kind code"
    unexpected: list[str] = field(default_factory=list)
    server_errors: list[tuple[float, int, str, str]] = field(default_factory=list)
    transport_retries: int = 0
    retries_503: int = 0
    unanswered: list[str] = field(default_factory=list)
    kill_windows: list[tuple[float, float]] = field(default_factory=list)
    kills: Counter[str] = field(default_factory=Counter)
    # The acknowledged operations, to find in the books.
    payments: dict[uuid.UUID, tuple[int, int, uuid.UUID, str]] = field(default_factory=dict)
    # order id -> (amount minor, buyer index, payer id, source)
    pay_for_me: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]] = field(default_factory=dict)
    refunds: dict[tuple[uuid.UUID, str], tuple[int, uuid.UUID]] = field(default_factory=dict)
    refused_refunds: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    refused_payments: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)
    transfers: dict[tuple[uuid.UUID, str], tuple[int, uuid.UUID, uuid.UUID]] = field(
        default_factory=dict
    )
    reused_keys: list[str] = field(default_factory=list)  # what each reuse was answered
    codes: dict[str, uuid.UUID] = field(default_factory=dict)  # code -> redeemer

    def refusal(self, kind: str, status: int, body: dict[str, Any]) -> str:
        code = str(body.get("code", f"http.{status}"))
        with self.lock:
            self.refused[f"{kind} {code}"] += 1
            if code not in EXPECTED_REFUSALS.get(kind, set()):
                self.unexpected.append(f"{kind}: {status} {code} {body.get('message', '')}")
        return code


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Unanswered(Exception):
    pass


def _minor(value: str) -> int:
    return int((Decimal(value) * 100).to_integral_value())


def _major(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


class Client:
    """One client thread's HTTP client: asks again on timeouts, closed connections and
    503s, with the same body and headers (so the same keys), until it is answered."""

    def __init__(self, base_url: str, journal: Journal, rng: random.Random) -> None:
        self.base_url = base_url
        self.journal = journal
        self.rng = rng
        self.http = httpx.Client(timeout=httpx.Timeout(10.0, connect=2.0))

    def once(
        self,
        method: str,
        path: str,
        *,
        json_body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Answer | None:
        """One try: the answer, or None when there was none (to be asked again)."""
        try:
            kwargs: dict[str, Any] = {"json": json_body, "headers": headers}
            if timeout is not None:
                kwargs["timeout"] = httpx.Timeout(timeout, connect=2.0)
            response = self.http.request(method, self.base_url + path, **kwargs)
        except httpx.TransportError:
            with self.journal.lock:
                self.journal.transport_retries += 1
            return None
        body: dict[str, Any]
        try:
            parsed = response.json()
            body = parsed if isinstance(parsed, dict) else {"items": parsed}
        except ValueError:
            body = {"text": response.text[:200]}
        if response.status_code >= 500:
            with self.journal.lock:
                self.journal.server_errors.append(
                    (time.monotonic(), response.status_code, path, str(body.get("code", "")))
                )
                if response.status_code == 503:
                    self.journal.retries_503 += 1
            if response.status_code == 503:
                return None
        return Answer(response.status_code, body)

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        give_up = time.monotonic() + ANSWER_WITHIN_S
        while True:
            answer = self.once(method, path, json_body=json_body, headers=headers)
            if answer is not None:
                return answer
            if time.monotonic() > give_up:
                with self.journal.lock:
                    self.journal.unanswered.append(f"{method} {path}")
                raise Unanswered(path)
            time.sleep(0.1 + self.rng.random() * 0.3)


# --- the operations -----------------------------------------------------------------------


@dataclass
class World:
    """What the clients share: the people, the orders paid, the refunds and keys done."""

    people: list[Person]
    codes: list[str]
    lock: threading.Lock = field(default_factory=threading.Lock)
    paid: list[tuple[uuid.UUID, int]] = field(default_factory=list)  # order id, amount
    refunded: dict[uuid.UUID, int] = field(default_factory=dict)  # acknowledged, per order
    refund_requests: list[tuple[uuid.UUID, str, int, str]] = field(default_factory=list)
    transfer_keys: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    redeemed: list[tuple[str, int]] = field(default_factory=list)


class Actor:
    def __init__(self, index: int, world: World, client: Client, journal: Journal) -> None:
        self.me = world.people[index % len(world.people)]
        self.world, self.client, self.journal = world, client, journal
        self.rng = client.rng

    # helpers

    def other(self) -> Person:
        others = [p for p in self.world.people if p.index != self.me.index]
        return self.rng.choice(others)

    def new_order(self, amount: int) -> uuid.UUID:
        made = self.client.call(
            "POST",
            "/api/v1/demo/shop/orders",
            json_body={"subject": "bank test", "amount": _major(amount)},
        )
        assert made.status == 201, made
        return uuid.UUID(made.body["id"])

    def ack_payment(self, order: dict[str, Any], buyer: Person, payer: Person) -> None:
        order_id = uuid.UUID(order["id"])
        amount = _minor(order["amount"]["value"])
        with self.journal.lock:
            self.journal.acked[f"pay:{order['source']}"] += 1
            if order_id in self.journal.payments:  # each order is paid by one request
                self.journal.unexpected.append(f"order {order_id} acknowledged as paid twice")
            self.journal.payments[order_id] = (amount, buyer.index, payer.id, order["source"])
        with self.world.lock:
            self.world.paid.append((order_id, amount))

    # payments

    def pay(self) -> None:
        source = self.rng.choice(["balance", "foreign_card", "foreign_card", "bank_card"])
        amount = self.rng.randint(1, 400_00 if source == "foreign_card" else 200_00)
        order_id = self.new_order(amount)
        path = f"/api/v1/orders/{order_id}/pay"
        answer: Answer | None = None
        if source != "balance" and self.rng.random() < 0.25:
            # An impatient client: it gives up waiting, then pays another way; the first
            # attempt goes on in the server and must be sent back, not kept.
            answer = self.client.once(
                "POST",
                path,
                json_body=self.body(source),
                headers=self.me.auth,
                timeout=self.rng.uniform(0.01, 0.4),
            )
            if answer is None:
                source = "balance" if source != "balance" else "foreign_card"
        if answer is None:
            answer = self.client.call(
                "POST", path, json_body=self.body(source), headers=self.me.auth
            )
        if answer.ok:
            assert answer.body["order"]["status"] == "TRADE_SUCCESS", answer
            self.ack_payment(answer.body["order"], self.me, self.me)
        else:
            self.journal.refusal("pay", answer.status, answer.body)
            with self.journal.lock:
                self.journal.refused_payments.append((order_id, self.me.id))

    def body(self, source: str, payer: Person | None = None) -> dict[str, Any]:
        payer = payer or self.me
        card = {"foreign_card": payer.card_id, "bank_card": payer.bank_card_id}.get(source)
        body: dict[str, Any] = {"source": source, "payment_password": PIN}
        if card is not None:
            body["card_id"] = str(card)
        return body

    def pay_for_me(self) -> None:
        """I ask a friend (or two at once) to pay my order through a link."""
        order_id = self.new_order(self.rng.randint(1, 300_00))
        link = self.client.call(
            "POST", f"/api/v1/orders/{order_id}/pay-for-me", headers=self.me.auth
        )
        assert link.status == 201, link
        token = str(link.body["url"]).rstrip("/").rsplit("/", 1)[1]
        others = [p for p in self.world.people if p.index != self.me.index]
        friends = self.rng.sample(others, 2 if self.rng.random() < 0.3 else 1)

        def friend_pays(friend: Person) -> None:
            source = self.rng.choice(["balance", "foreign_card", "bank_card"])
            answer = self.client_for_helper().call(
                "POST",
                f"/api/v1/pay-for-me/{token}/pay",
                json_body=self.body(source, friend),
                headers=friend.auth,
            )
            if answer.ok:
                order = answer.body["link"]["order"]
                with self.journal.lock:
                    self.journal.pay_for_me[order_id] = (self.me.id, friend.id)
                self.ack_payment(order, self.me, friend)
            else:
                self.journal.refusal("pay_for_me", answer.status, answer.body)

        self.together([lambda f=f: friend_pays(f) for f in friends])  # type: ignore[misc]

    def client_for_helper(self) -> Client:
        return Client(self.client.base_url, self.journal, random.Random(self.rng.random()))

    def together(self, work: list[Callable[[], None]]) -> None:
        if len(work) == 1:
            work[0]()
            return
        errors: list[BaseException] = []

        def run(step: Callable[[], None]) -> None:
            try:
                step()
            except BaseException as error:  # re-raised in this thread
                errors.append(error)

        threads = [threading.Thread(target=run, args=(step,)) for step in work]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    # refunds (by the demo shop)

    def refund(self) -> None:
        with self.world.lock:
            if not self.world.paid:
                return
            order_id, amount = self.rng.choice(self.world.paid)
            done = self.world.refunded.get(order_id, 0)
            earlier = [r for r in self.world.refund_requests if r[0] == order_id]
        roll = self.rng.random()
        if earlier and roll < 0.2:
            self.refund_reuse(self.rng.choice(earlier))
            return
        left = amount - done
        if roll < 0.45 and left > 1:
            # Two refunds raced on one order, each for more than half of what is left.
            share = left // 2 + 1
            self.together([lambda: self.one_refund(order_id, share) for _ in range(2)])
            return
        # The rest (or more, once all is refunded: refused), or a part of it.
        whole = roll < 0.7 or left <= 0
        self.one_refund(order_id, max(left, 1) if whole else self.rng.randint(1, max(1, left // 2)))

    def one_refund(self, order_id: uuid.UUID, amount: int) -> None:
        request_no = f"R{secrets.token_hex(6)}"
        destination = "balance" if self.rng.random() < 0.15 else "original"
        body = {"out_request_no": request_no, "amount": _major(amount), "destination": destination}
        answer = self.client.call(
            "POST", f"/api/v1/demo/shop/orders/{order_id}/refunds", json_body=body
        )
        if answer.ok:
            assert _minor(answer.body["amount"]["value"]) == amount, answer
            with self.journal.lock:
                self.journal.acked[f"refund:{answer.body['destination']}"] += 1
                self.journal.refunds[(order_id, request_no)] = (
                    amount,
                    uuid.UUID(answer.body["id"]),
                )
            with self.world.lock:
                self.world.refunded[order_id] = self.world.refunded.get(order_id, 0) + amount
                self.world.refund_requests.append((order_id, request_no, amount, destination))
        else:
            self.journal.refusal("refund", answer.status, answer.body)
            with self.journal.lock:
                self.journal.refused_refunds.append((order_id, request_no))

    def refund_reuse(self, earlier: tuple[uuid.UUID, str, int, str]) -> None:
        """A request number asked again: the same refund is answered again; another
        amount under it is refused."""
        order_id, request_no, amount, destination = earlier
        same = self.rng.random() < 0.4
        asked = amount if same else amount + self.rng.choice([-1, 1]) * self.rng.randint(1, 99)
        if asked <= 0:
            asked = amount + 1
        body = {"out_request_no": request_no, "amount": _major(asked), "destination": destination}
        answer = self.client.call(
            "POST", f"/api/v1/demo/shop/orders/{order_id}/refunds", json_body=body
        )
        if same:
            if not answer.ok or _minor(answer.body["amount"]["value"]) != amount:
                with self.journal.lock:
                    self.journal.unexpected.append(f"refund replay {request_no}: {answer}")
            with self.journal.lock:
                self.journal.acked["refund:replay"] += 1
            return
        code = self.journal.refusal("refund_reuse", answer.status, answer.body)
        with self.journal.lock:
            self.journal.reused_keys.append(f"{answer.status} {code}")

    # transfers between people

    def transfer(self) -> None:
        with self.world.lock:
            mine = [k for k in self.world.transfer_keys if k[0] == self.me.index]
        if mine and self.rng.random() < 0.15:
            self.transfer_reuse(self.rng.choice(mine))
            return
        to = self.other()
        key = f"bank-{uuid.UUID(int=self.rng.getrandbits(128)).hex}"
        body = {
            "to": to.phone,
            "amount": _major(self.rng.randint(1, 100_00)),
            "note": "bank test",
            "payment_password": PIN,
        }
        answer = self.client.call(
            "POST",
            "/api/v1/wallet/transfers",
            json_body=body,
            headers={**self.me.auth, "Idempotency-Key": key},
        )
        if answer.ok:
            with self.journal.lock:
                self.journal.acked["transfer"] += 1
                self.journal.transfers[(self.me.id, key)] = (
                    _minor(body["amount"]),
                    to.id,
                    uuid.UUID(answer.body["id"]),
                )
            with self.world.lock:
                self.world.transfer_keys.append((self.me.index, key, body))
        else:
            self.journal.refusal("transfer", answer.status, answer.body)

    def transfer_reuse(self, earlier: tuple[int, str, dict[str, Any]]) -> None:
        _, key, body = earlier
        same = self.rng.random() < 0.4
        asked = dict(body)
        if not same:
            asked["amount"] = _major(_minor(body["amount"]) + self.rng.randint(1, 500))
        answer = self.client.call(
            "POST",
            "/api/v1/wallet/transfers",
            json_body=asked,
            headers={**self.me.auth, "Idempotency-Key": key},
        )
        if same:
            if answer.status != 200 or not answer.body.get("replayed"):
                with self.journal.lock:
                    self.journal.unexpected.append(f"transfer replay {key}: {answer}")
            with self.journal.lock:
                self.journal.acked["transfer:replay"] += 1
            return
        code = self.journal.refusal("transfer_reuse", answer.status, answer.body)
        with self.journal.lock:
            self.journal.reused_keys.append(f"{answer.status} {code}")

    # store top-up codes

    def topup(self) -> None:
        with self.world.lock:
            roll = self.rng.random()
            taken = self.world.redeemed
            if taken and roll < 0.15:
                code, owner = self.rng.choice(taken)  # someone's (maybe my own) code again
            elif self.world.codes:
                code, owner = self.world.codes.pop(), -1
            else:
                return
        answer = self.client.call(
            "POST",
            "/api/v1/wallet/topup-codes/redemptions",
            json_body={"code": code},
            headers=self.me.auth,
        )
        if answer.ok:
            with self.journal.lock:
                self.journal.acked["topup:replay" if answer.body["replayed"] else "topup"] += 1
                earlier = self.journal.codes.setdefault(code, self.me.id)
                if earlier != self.me.id:
                    self.journal.unexpected.append(f"code {code} redeemed by two people")
            if owner == -1:
                with self.world.lock:
                    self.world.redeemed.append((code, self.me.index))
        else:
            self.journal.refusal("topup", answer.status, answer.body)
            if owner in (-1, self.me.index):
                with self.journal.lock:
                    self.journal.unexpected.append(f"my own code {code} refused: {answer}")

    OPERATIONS: tuple[tuple[str, int], ...] = (
        ("pay", 6),
        ("refund", 5),
        ("transfer", 3),
        ("topup", 1),
        ("pay_for_me", 1),
    )

    def step(self) -> None:
        names = [name for name, _ in self.OPERATIONS]
        weights = [weight for _, weight in self.OPERATIONS]
        getattr(self, self.rng.choices(names, weights)[0])()


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
            sound = final.run(ledger.audit).sound
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
        done += payments.finish_pending_refunds(db)
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
        problems.append(f"ledger audit not sound: {db.run(ledger.audit)}")
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
