"""The SMS outbox: queued in the transaction, delivered after it, retried, never twice."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.errors import QianbaoError
from qianbao.notify import service
from qianbao.notify.gateways import GatewayError, TwilioGateway
from qianbao.notify.models import OutboxMessage
from qianbao.settings import Settings
from tests.helpers import UK, send_signup_code


def queue(db: Database, body: str = "hello", after: bool = True) -> None:
    if not after:
        # A real provider: the message waits for delivery after commit (skipped here, as
        # if the process died) or for the worker. The sandbox delivers at once instead.
        db.settings.sms_gateway = "log"

    def write(tx: Tx) -> None:
        service.queue_sms(tx, UK.e164, body, "en")
        if not after:
            tx._after_commit.clear()  # as if the process died right after committing

    db.run(write)


def statuses(db: Database) -> list[tuple[str, int]]:
    rows = db.run(
        lambda tx: tx.session.execute(
            select(OutboxMessage.status, OutboxMessage.attempts).order_by(OutboxMessage.created_at)
        ).all()
    )
    return [(status, attempts) for status, attempts in rows]


def test_a_message_is_sent_once_its_transaction_commits(db: Database) -> None:
    queue(db)
    assert statuses(db) == [("sent", 1)]


def test_nothing_is_sent_when_the_transaction_fails(db: Database) -> None:
    def fail(tx: Tx) -> None:
        service.queue_sms(tx, UK.e164, "never", "en")
        raise QianbaoError("test.failed", "failed")

    with pytest.raises(QianbaoError):
        db.run(fail)
    assert statuses(db) == []


def test_the_worker_sends_what_the_request_did_not(db: Database) -> None:
    queue(db, after=False)
    assert statuses(db) == [("pending", 0)]
    assert service.deliver_due(db) == 1
    assert service.deliver_due(db) == 0
    assert statuses(db) == [("sent", 1)]


class FlakyGateway:
    name = "flaky"

    def __init__(self, failures: int, permanent: bool = False) -> None:
        self.failures, self.permanent, self.sent = failures, permanent, 0

    def send(self, to_e164: str, body: str) -> str:
        if self.failures:
            self.failures -= 1
            raise GatewayError("provider down", permanent=self.permanent)
        self.sent += 1
        return f"ref-{self.sent}"


def test_failed_deliveries_are_retried_later_then_given_up(
    db: Database, clock: FrozenClock
) -> None:
    queue(db, after=False)
    gateway = FlakyGateway(failures=2)
    assert service.deliver_due(db, gateway=gateway) == 0
    assert service.deliver_due(db, gateway=gateway) == 0  # not due yet: waits 10 s
    clock.advance(seconds=10)
    assert service.deliver_due(db, gateway=gateway) == 0
    clock.advance(seconds=30)
    assert service.deliver_due(db, gateway=gateway) == 1
    assert statuses(db) == [("sent", 3)]
    body = db.run(lambda tx: tx.session.scalars(select(OutboxMessage.body)).one())
    assert "erased" in body  # a real provider has it; the code is not kept


def test_permanent_failures_stop_at_once(db: Database) -> None:
    queue(db, after=False)
    service.deliver_due(db, gateway=FlakyGateway(failures=1, permanent=True))
    assert statuses(db) == [("failed", 1)]


class SlowGateway:
    name = "slow"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def send(self, to_e164: str, body: str) -> str:
        time.sleep(0.05)
        with self.lock:
            self.calls.append(body)
        return "ok-ref"


def test_two_workers_never_send_the_same_message(db: Database) -> None:
    for n in range(30):
        queue(db, f"message {n}", after=False)
    gateway = SlowGateway()
    threads = [
        threading.Thread(
            target=lambda: [service.deliver_due(db, gateway=gateway, batch=5) for _ in range(8)]
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(gateway.calls) == sorted(f"[Qianbao] message {n}" for n in range(30))


def twilio(handler: httpx.MockTransport) -> TwilioGateway:
    settings = Settings(
        twilio_account_sid="AC123",
        twilio_auth_token="secret",
        twilio_from="+15005550006",
        sms_gateway="twilio",
    )
    return TwilioGateway(settings, transport=handler)


def test_twilio_adapter_speaks_the_messages_api() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"sid": "SM0001", "status": "queued"})

    assert twilio(httpx.MockTransport(answer)).send("+447911123456", "code 123456") == "SM0001"
    request = seen[0]
    assert request.url.path == "/2010-04-01/Accounts/AC123/Messages.json"
    assert request.headers["authorization"].startswith("Basic ")
    form = dict(httpx.QueryParams(request.content.decode()))
    assert form == {"To": "+447911123456", "From": "+15005550006", "Body": "code 123456"}


@pytest.mark.parametrize(
    ("status", "permanent"), [(400, True), (401, True), (429, False), (503, False)]
)
def test_twilio_errors_say_whether_to_retry(status: int, permanent: bool) -> None:
    gateway = twilio(httpx.MockTransport(lambda _: httpx.Response(status, json={"code": 21211})))
    with pytest.raises(GatewayError) as caught:
        gateway.send("+447911123456", "x")
    assert caught.value.permanent is permanent


def test_twilio_needs_its_credentials() -> None:
    with pytest.raises(ValueError, match="TWILIO"):
        TwilioGateway(Settings(sms_gateway="twilio"))


def test_cli_reads_the_outbox(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qianbao import cli
    from qianbao.settings import get_settings

    send_signup_code(db)
    monkeypatch.setenv("QIANBAO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("QIANBAO_SECRET_KEY", settings.secret_key)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli.app, ["sms", "outbox", "--phone", "+44 7911 123456"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert UK.e164 in result.output
    assert "Your Qianbao code is" in result.output


def test_a_worker_that_dies_after_claiming_leaves_the_message_to_others(
    db: Database, clock: FrozenClock
) -> None:
    queue(db, after=False)
    claimed = db.run(lambda tx: service._claim(tx, "sms", None, 10))  # ...then the worker dies
    assert len(claimed) == 1
    assert service.deliver_due(db) == 0  # the claim holds for its lease
    clock.advance(minutes=2)
    assert service.deliver_due(db) == 1
    assert statuses(db) == [("sent", 2)]
