"""Staff's and merchant users' sessions (identity/password_sessions.py): a signed-in request
writes the session's last-seen time only once it is ``session_touch_interval_seconds``
old, as persons' sessions do, so that a signed-in read stays a read. On SQLite and
PostgreSQL, through both doors of both kinds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.deps import STAFF_COOKIE
from qianbao.gate import MERCHANT_COOKIE
from qianbao.identity import staff
from qianbao.identity.models import StaffSession
from qianbao.openplatform.merchants import accounts
from qianbao.openplatform.merchants.models import MerchantSession
from tests.openplatform.portal.helpers import new_shop

PASSWORD = "a long staff passphrase"


@contextmanager
def session_updates(db: Database, table: str) -> Iterator[list[str]]:
    """The UPDATE statements on that table sent while the block runs."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        statement = str(args[2])
        if statement.lstrip().upper().startswith(f"UPDATE {table.upper()}"):
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def signed_in(
    db: Database, kind: str, door: accounts.Door
) -> tuple[str, dict[str, str], dict[str, str], type[StaffSession] | type[MerchantSession]]:
    """A new account of that kind signed in through that door: the URL it may read, the
    headers and cookies its request sends, and its sessions' table."""
    if kind == "staff":
        staff.create_staff(db, "sam", "Sam", PASSWORD, "support")
        token = staff.open_session(db, "sam", PASSWORD, door).token
        if door == "api":
            return "/api/v1/staff/me", {"Authorization": f"Bearer {token}"}, {}, StaffSession
        return "/admin/people", {}, {STAFF_COOKIE: token}, StaffSession
    shop = new_shop(db, "Teahouse Online", "owner@teahouse.example")
    token = accounts.open_session(db, shop.login, shop.password, door).token
    if door == "api":
        return "/api/v1/merchant/orders", {"Authorization": f"Bearer {token}"}, {}, MerchantSession
    return "/merchant/orders", {}, {MERCHANT_COOKIE: token}, MerchantSession


def last_seen(db: Database, table: type[StaffSession] | type[MerchantSession]) -> datetime:
    found = db.run(lambda tx: tx.session.scalars(select(table.last_seen_at)).one())
    assert isinstance(found, datetime)
    return found


@pytest.mark.parametrize("door", ["page", "api"])
@pytest.mark.parametrize("kind", ["staff", "merchant"])
def test_a_request_moves_last_seen_only_once_the_touch_interval_has_passed(
    client: TestClient, clock: FrozenClock, kind: str, door: accounts.Door
) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    url, headers, cookies, table = signed_in(db, kind, door)
    client.cookies.clear()
    for name, value in cookies.items():
        client.cookies.set(name, value)
    signed_at = clock.now()
    interval = db.settings.session_touch_interval_seconds
    assert interval > 1

    clock.advance(seconds=interval - 1)  # within the interval: the read writes nothing
    with session_updates(db, table.__tablename__) as updates:
        assert client.get(url, headers=headers).status_code == 200
    assert updates == []
    assert last_seen(db, table) == signed_at

    clock.advance(seconds=1)  # the interval has passed: the read moves it
    with session_updates(db, table.__tablename__) as updates:
        assert client.get(url, headers=headers).status_code == 200
    assert len(updates) == 1
    moved_at = clock.now()
    assert last_seen(db, table) == moved_at

    clock.advance(seconds=interval - 1)  # and then not again until the next interval
    with session_updates(db, table.__tablename__) as updates:
        assert client.get(url, headers=headers).status_code == 200
    assert updates == []
    assert last_seen(db, table) == moved_at
