"""A card payment left half-way by a crash: the card was charged (or approved) on the
network, the ledger never heard of it. The worker gives the attempt up after the grace
time and sends the money back to the card, once; the order can be paid again."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from qianbao import jobs
from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.funding.card_network import SandboxCardNetwork
from qianbao.funding.sandbox_state import SqliteStore
from qianbao.wallet import ledger, payments
from tests.wallet.test_payments import (
    PIN,
    add_card,
    buyer,
    cny,
    order,
    refused,
)


@pytest.fixture
def shop(db: Database) -> uuid.UUID:
    db.settings.card_attempt_grace_seconds = 60  # orders close after 15 minutes
    return db.run(lambda tx: payments.create_merchant(tx, "Demo Shop"))


class Crash(Exception):
    """The process dies here."""


def crash_in(monkeypatch: pytest.MonkeyPatch, target: object, name: str) -> None:
    def die(*_args: Any, **_kwargs: Any) -> None:
        raise Crash(name)

    monkeypatch.setattr(target, name, die)


def attempt_key(db: Database, order_id: uuid.UUID) -> str | None:
    return db.run(lambda tx: payments._order(tx, order_id).card_attempt_key)


def past_grace(db: Database, clock: FrozenClock) -> None:
    clock.advance(seconds=db.settings.card_attempt_grace_seconds + 1)


def sound(db: Database) -> None:
    audit = db.run(ledger.audit)
    assert audit.sound, audit


def test_a_capture_never_recorded_goes_back_to_the_card_once(
    db: Database, clock: FrozenClock, shop: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = buyer(db, clock)
    card = add_card(db, user)
    first = order(db, shop, "300.00")  # above CNY 200: a 3% fee, CNY 9.00
    with monkeypatch.context() as patched:
        crash_in(patched, payments, "_mark_paid")  # dies after the capture, before commit
        with pytest.raises(Crash):
            payments.pay_with_card(db, user, first, card, PIN)
    key = attempt_key(db, first)
    assert key is not None
    network = payments.network_for(db)
    taken = network.find_authorization(key)
    assert taken is not None and taken.status == "captured"
    capture = network.capture(taken.id)
    assert db.run(lambda tx: payments.get_order(tx, first)).status == "WAIT_BUYER_PAY"

    assert jobs.reverse_stranded_card_payments(db) == 0  # within the grace time: alone
    past_grace(db, clock)
    assert jobs.reverse_stranded_card_payments(db) == 2  # given up, then sent back
    assert network.refunded(capture.id) == cny("309.00")  # amount and fee
    assert jobs.reverse_stranded_card_payments(db) == 0
    assert network.refunded(capture.id) == cny("309.00")  # once
    sound(db)

    paid = payments.pay_with_card(db, user, first, card, PIN)  # a new attempt, a new key
    assert paid.status == "TRADE_SUCCESS" and paid.card_amount is not None
    assert attempt_key(db, first) != key


def test_an_approval_never_captured_is_voided(
    db: Database, clock: FrozenClock, shop: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = buyer(db, clock)
    card = add_card(db, user)
    first = order(db, shop, "50.00")
    network = payments.network_for(db)
    with monkeypatch.context() as patched:
        crash_in(patched, network, "capture")  # dies between approval and capture
        with pytest.raises(Crash):
            payments.pay_with_card(db, user, first, card, PIN)
    key = attempt_key(db, first)
    assert key is not None
    past_grace(db, clock)
    assert jobs.reverse_stranded_card_payments(db) == 2
    voided = network.find_authorization(key)
    assert voided is not None and voided.status == "voided"


def test_an_attempt_given_up_cannot_be_recorded_late_and_is_refunded_once(
    db: Database, clock: FrozenClock, shop: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker gives the attempt up just as the slow request captures: the request
    must not record the payment, and the card gets its money back exactly once."""
    user = buyer(db, clock)
    card = add_card(db, user)
    first = order(db, shop, "80.00")
    network = payments.network_for(db)
    real_capture: Callable[..., Any] = network.capture

    def slow_capture(authorization_id: str, amount: Any = None) -> Any:
        captured = real_capture(authorization_id, amount)
        past_grace(db, clock)
        db.run(payments.abandon_stranded_card_attempts)
        return captured

    with monkeypatch.context() as patched:
        patched.setattr(network, "capture", slow_capture)
        late = refused(lambda: payments.pay_with_card(db, user, first, card, PIN))
    assert late.code == "card.attempt_abandoned"
    assert payments.reverse_card_attempts(db) == 1
    key = db.run(lambda tx: payments._order(tx, first).card_reversal_key)
    assert key is None
    authorizations = [
        found
        for found in [network.find_authorization(k) for k in _keys_tried(db, first)]
        if found is not None
    ]
    capture = network.capture(authorizations[0].id)
    assert network.refunded(capture.id) == cny("80.00")  # by the request and the worker: once
    assert db.run(lambda tx: payments.get_order(tx, first)).status == "WAIT_BUYER_PAY"
    sound(db)


def _keys_tried(db: Database, order_id: uuid.UUID) -> list[str]:
    """The attempt key is random; the sandbox's file records it, so read it there."""
    import sqlite3
    from pathlib import Path

    path = Path(db.settings.var_dir) / payments.SANDBOX_NETWORK_FILE
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT key FROM records WHERE kind = 'request' AND key LIKE ?",
            (f"order:{order_id}:card:%",),
        ).fetchall()
    return [str(row[0]) for row in rows]


def test_another_process_sees_the_same_payments(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    """The sandbox keeps its records in a file of its own: a worker process (another
    network client on the same file) finds what a web process did."""
    user = buyer(db, clock)
    card = add_card(db, user)
    first = order(db, shop, "20.00")
    payments.pay_with_card(db, user, first, card, PIN)
    key = attempt_key(db, first)
    assert key is not None
    elsewhere = SandboxCardNetwork(
        clock,
        db.settings.fx_rates,
        store=SqliteStore(db.settings.var_dir / payments.SANDBOX_NETWORK_FILE),
    )
    seen = elsewhere.find_authorization(key)
    assert seen is not None and seen.status == "captured"
