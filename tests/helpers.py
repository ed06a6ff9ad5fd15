"""Small helpers shared by the tests."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from qianbao.db import Database
from qianbao.identity import service
from qianbao.identity.phone import PhoneNumber, parse_mobile
from qianbao.identity.service import Client
from qianbao.notify.service import read_outbox

UK = parse_mobile("07911 123456", "GB")
AGREEMENT = "2026-11-01"
HOME = Client(ip="203.0.113.7", user_agent="pytest")


def last_code(db: Database, phone: PhoneNumber) -> str:
    """The code in the newest SMS to ``phone`` (the sandbox outbox is the phone)."""
    messages = db.run(lambda tx: read_outbox(tx, phone.e164, 1))
    assert messages, f"no SMS was sent to {phone.e164}"
    match = re.search(r"\b(\d{4,8})\b", messages[0].body)
    assert match, messages[0].body
    return match.group(1)


def send_signup_code(db: Database, phone: PhoneNumber = UK, client: Client = HOME) -> str:
    service.send_code(db, phone, "signup", client, "en", AGREEMENT)
    return last_code(db, phone)


def sign_up(db: Database, phone: PhoneNumber = UK, client: Client = HOME) -> service.SignedIn:
    code = send_signup_code(db, phone, client)
    return service.sign_in(db, phone, "signup", code, client)


def wrong_code(code: str) -> str:
    """A code of the same length that is certainly not ``code``."""
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


@contextmanager
def beijing_local_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time set to Beijing's, and put back after: a shop runs in China
    and Alipay's SDK stamps its requests in local time."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
