"""Proof that transfers between people make, lose or repeat no money, whatever the
concurrency, the retries and the crashes: threads send random planned transfers among a
few people, several threads retrying the same keys at once, some tries reusing a key for
another amount, and crashes injected after the ledger wrote and before commit. Afterwards
the ledger audits sound, the people's money adds up to what they were given, every
balance equals what its owner was given, received and sent, and every acknowledged
transfer exists exactly once, as acknowledged. On SQLite and PostgreSQL."""

from __future__ import annotations

import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from threading import Lock

import pytest
from sqlalchemy import func, select

from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.errors import QianbaoError
from qianbao.models import metadata
from qianbao.money import Money
from qianbao.wallet.ledger import audit as ledger_audit
from qianbao.wallet.transfers import service as transfers
from qianbao.wallet.transfers.models import PersonTransfer
from tests.wallet.test_payments import PIN, fund
from tests.wallet.test_transfers import balance, person

THREADS = 6
STEPS_PER_THREAD = 15
NUMBERS = ("07911 123456", "07400 900123", "07400 900456", "07911 777456")
FUNDED = 2_000_00  # minor units each person starts with


class Crash(Exception):
    """Injected between the ledger's write and the commit: nothing may remain of it."""


@dataclass(frozen=True)
class Plan:
    key: str
    sender: int
    recipient: int
    amount: str


@dataclass
class Acknowledged:
    # key -> (transfer id, sender, recipient, amount in minor units) of every answer
    answers: dict[str, set[tuple[uuid.UUID, int, int, int]]] = field(default_factory=dict)
    mismatches: int = 0
    crashes: int = 0
    lock: Lock = field(default_factory=Lock)


def test_no_money_is_made_lost_or_repeated_by_concurrent_transfers(
    db: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = [person(db, clock, number) for number in NUMBERS]
    for someone in people:
        fund(db, someone, str(FUNDED // 100))
    numbers = ["+44" + number.replace(" ", "")[1:] for number in NUMBERS]
    rng = random.Random(7)
    plans = []
    for n in range(40):
        sender, recipient = rng.sample(range(len(people)), 2)
        plans.append(Plan(f"plan-{n}", sender, recipient, f"{rng.randint(1, 900)}.{n:02d}"))
    done = Acknowledged()
    real_record = transfers._record

    def flaky_record(*args: object, **kwargs: object) -> PersonTransfer:
        row = real_record(*args, **kwargs)  # type: ignore[arg-type]
        if random.random() < 0.15:
            with done.lock:
                done.crashes += 1
            raise Crash("after the ledger moved the money, before commit")
        return row

    monkeypatch.setattr(transfers, "_record", flaky_record)

    def worker(seed: int) -> None:
        local = random.Random(seed)
        for _ in range(STEPS_PER_THREAD):
            plan = local.choice(plans)
            amount = plan.amount if local.random() < 0.9 else "1.00"  # a key reused wrongly
            try:
                sent = transfers.send(
                    db,
                    people[plan.sender],
                    numbers[plan.recipient],
                    amount,
                    "",
                    PIN,
                    plan.key,
                )
            except QianbaoError as error:
                if error.code == "idempotency.mismatch":
                    with done.lock:
                        done.mismatches += 1
                continue
            except Crash:
                continue  # retried by a later step, or not at all
            answer = (sent.id, plan.sender, plan.recipient, sent.amount.minor)
            with done.lock:
                done.answers.setdefault(plan.key, set()).add(answer)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(worker, range(THREADS)))

    assert len(done.answers) >= 10 and done.crashes >= 1  # the load really happened
    audit = db.run(ledger_audit.audit)
    assert audit.sound, audit

    rows = db.run(lambda tx: list(tx.session.scalars(select(PersonTransfer))))
    by_key = {(row.sender_id, row.idempotency_key): row for row in rows}
    assert len(by_key) == len(rows)  # one row per sender's key
    for key, answers in done.answers.items():
        assert len(answers) == 1, (key, answers)  # every retry got the first answer
        ((transfer_id, sender, recipient, amount),) = answers
        row = by_key[(people[sender], key)]
        assert (row.id, row.recipient_id, row.amount) == (transfer_id, people[recipient], amount)

    def p2p_operations(tx: Tx) -> int:
        operations = metadata.tables["ledger_operations"]
        query = select(func.count()).where(operations.c.idempotency_key.like("p2p:%"))
        return int(tx.session.scalar(query) or 0)

    assert db.run(p2p_operations) == len(rows)  # no money moved without its record
    for index, someone in enumerate(people):
        received = sum(row.amount for row in rows if row.recipient_id == someone)
        sent = sum(row.amount for row in rows if row.sender_id == someone)
        assert balance(db, someone) == Money("CNY", FUNDED + received - sent), index
    assert sum(balance(db, someone).minor for someone in people) == FUNDED * len(people)
