"""A money operation takes its session from the cache and checks it inside its own
transaction: one read instead of a transaction of its own, and an ended session (ended by
any process) still stops it at once."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, update

from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx, guard_first_transaction
from qianbao.identity.models import AuthSession, PaymentPassword
from qianbao.identity.session_cache import SessionCache
from tests.api_helpers import api_sign_up, bearer
from tests.wallet.test_wallet_http import with_payment_password


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def a_person_with_an_order(client: TestClient, clock: FrozenClock) -> tuple[dict[str, str], str]:
    signed = api_sign_up(client)
    auth = bearer(signed["token"])
    with_payment_password(client, auth, clock)
    order = client.post("/api/v1/demo/shop/orders", json={"subject": "Tea", "amount": "30.00"})
    assert order.status_code == 201, order.text
    return auth, order.json()["id"]


def pay_by_balance(client: TestClient, auth: dict[str, str], order_id: str) -> Any:
    return client.post(
        f"/api/v1/orders/{order_id}/pay",
        headers=auth,
        json={"source": "balance", "payment_password": "802417"},
    )


def test_a_payment_with_a_cached_session_skips_the_token_lookup(
    client: TestClient, clock: FrozenClock
) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    auth, order_id = a_person_with_an_order(client, clock)
    assert client.get("/api/v1/me", headers=auth).status_code == 200  # the cache is warm
    with statements(db) as seen:
        refused = pay_by_balance(client, auth, order_id)
    # Unverified: the balance is refused, after the session and the PIN were checked.
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "policy.balance_not_allowed"
    assert not [s for s in seen if "token_hash" in s], "the token was looked up again"
    assert [s for s in seen if "FROM auth_sessions" in s and "auth_sessions.id" in s]


def test_a_session_ended_elsewhere_stops_a_payment_even_with_the_cache_warm(
    client: TestClient, clock: FrozenClock
) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    auth, order_id = a_person_with_an_order(client, clock)
    assert client.get("/api/v1/me", headers=auth).status_code == 200  # the cache is warm
    # Another process ends the session: this process's cache knows nothing of it.
    db.run(lambda tx: tx.session.execute(update(AuthSession).values(revoked_at=tx.now())))
    wrong_pin = client.post(
        f"/api/v1/orders/{order_id}/pay",
        headers=auth,
        json={"source": "balance", "payment_password": "111111"},
    )
    assert wrong_pin.status_code == 401, wrong_pin.text
    assert wrong_pin.json()["code"] == "session.invalid"
    # Stopped before the PIN was looked at: the wrong entry did not count.
    pin = db.run(lambda tx: tx.session.query(PaymentPassword).one())
    assert pin.failures == 0


def test_an_idle_session_stops_a_payment_even_with_the_cache_warm(
    client: TestClient, clock: FrozenClock
) -> None:
    auth, order_id = a_person_with_an_order(client, clock)
    assert client.get("/api/v1/me", headers=auth).status_code == 200
    clock.advance(seconds=31 * 60)  # past the idle limit, within the cache's seconds
    refused = pay_by_balance(client, auth, order_id)
    assert refused.status_code == 401 and refused.json()["code"] == "session.expired"


def test_the_guard_opens_only_the_first_transaction_that_commits(db: Database) -> None:
    checks: list[str] = []

    def check(tx: Tx) -> None:
        checks.append("checked")

    def request() -> None:  # a request's own context, as each request has
        guard_first_transaction(check)
        db.run(lambda tx: None)
        db.run(lambda tx: None)  # the second half of an operation is not stopped halfway

    contextvars.copy_context().run(request)
    assert checks == ["checked"]
    db.run(lambda tx: None)  # outside that request: no guard
    assert checks == ["checked"]


def test_a_failing_guard_leaves_its_transaction_unwritten(db: Database) -> None:
    def refuse(tx: Tx) -> None:
        raise PermissionError("ended")

    def write(tx: Tx) -> None:
        raise AssertionError("the use case ran after its guard refused")

    def request() -> None:
        guard_first_transaction(refuse)
        db.run(write)

    with pytest.raises(PermissionError):
        contextvars.copy_context().run(request)


def test_the_cache_forgets_after_its_seconds_and_when_told() -> None:
    session_id = uuid.uuid4()
    cache: SessionCache[str] = SessionCache(ttl=60)
    cache.put("hash", session_id, "alive")
    assert cache.get("hash") == "alive"
    cache.forget(session_id)
    assert cache.get("hash") is None
    off: SessionCache[str] = SessionCache(ttl=0)
    off.put("hash", session_id, "alive")
    assert off.get("hash") is None
