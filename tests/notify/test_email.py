"""The email outbox: queued in the transaction, delivered after it over real SMTP (a
local aiosmtpd server), retried or given up as the server's answer says."""

from __future__ import annotations

import email
import logging
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.errors import QianbaoError
from qianbao.notify import email as mail
from qianbao.notify import service
from qianbao.notify.gateways import GatewayError
from qianbao.notify.models import OutboxMessage
from qianbao.settings import Settings
from tests.helpers import UK

TO = "traveller@example.com"
SUBJECT = "您的钱包验证码 / Your Qianbao code"
BODY = "您好！您的验证码是 246810，五分钟内有效。\nHello! Your code is 246810.\n"


# --- a real SMTP server on 127.0.0.1 --------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    login: bytes | None

    def parsed(self) -> EmailMessage:
        message = email.message_from_bytes(self.raw, policy=default_policy)
        assert isinstance(message, EmailMessage)
        return message


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps what it accepts and answers RCPT or DATA as told."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook names)
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.data_reply:
            return self.data_reply
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        assert envelope.mail_from is not None and envelope.original_content is not None
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content, login)
        )
        return "250 2.0.0 Ok: queued"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def start_smtp() -> Iterator[Callable[..., Mailbox]]:
    controllers: list[Controller] = []

    def start(**options: Any) -> Mailbox:
        mailbox = Mailbox(port=free_port())
        controller = Controller(
            mailbox,
            hostname="127.0.0.1",
            port=mailbox.port,
            server_hostname="mx.test",
            **options,
        )
        controller.start()
        controllers.append(controller)
        return mailbox

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def smtp_server(start_smtp: Callable[..., Mailbox]) -> Mailbox:
    return start_smtp()


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return Certificate(cert, key)


def smtp_gateway(
    port: int,
    *,
    clock: FrozenClock | None = None,
    ssl_context: ssl.SSLContext | None = None,
    **config: Any,
) -> mail.SmtpEmailGateway:
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "sender": "no-reply@qianbao.test",
        "sender_name": "钱包 Qianbao",
        "timeout": 5.0,
    }
    options.update(config)
    return mail.SmtpEmailGateway(mail.SmtpConfig(**options), clock=clock, ssl_context=ssl_context)


# --- helpers over the outbox ---------------------------------------------------------------


def queue(
    db: Database, to: str = TO, subject: str = SUBJECT, body: str = BODY, after: bool = True
) -> None:
    if not after:
        # A real provider: the mail waits for delivery after commit (skipped here, as if
        # the process died) or for the worker. The sandbox delivers at once instead.
        db.settings.email_gateway = "log"

    def write(tx: Tx) -> None:
        mail.queue_email(tx, to, subject, body, "zh_Hans")
        if not after:
            tx._after_commit.clear()  # as if the process died right after committing

    db.run(write)


def rows(db: Database, channel: str = "email") -> list[OutboxMessage]:
    return list(
        db.run(
            lambda tx: tx.session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.channel == channel)
                .order_by(OutboxMessage.created_at)
            ).all()
        )
    )


def statuses(db: Database, channel: str = "email") -> list[tuple[str, int]]:
    return [(row.status, row.attempts) for row in rows(db, channel)]


# --- the subject inside the row ------------------------------------------------------------

ONE_LINE = st.text(st.characters(exclude_categories=["Cc", "Zl", "Zp", "Cs"]))


@given(subject=ONE_LINE, body=st.text())
def test_subject_and_text_come_apart_as_they_went_in(subject: str, body: str) -> None:
    assert mail.split_subject(mail.pack_subject(subject, body)) == (subject, body)


@pytest.mark.parametrize("subject", ["two\nlines", "carriage\rreturn", "line\u2028separator"])
def test_a_subject_cannot_smuggle_in_headers(subject: str) -> None:
    with pytest.raises(ValueError, match="one line"):
        mail.pack_subject(subject, "x")


def test_text_without_a_subject_line_is_all_body() -> None:
    assert mail.split_subject(service.ERASED) == ("", service.ERASED)
    assert mail.split_subject("Subject: a\nb\n\nc") == ("", "Subject: a\nb\n\nc")


@pytest.mark.parametrize(
    "address", ["", "no-at-sign", "@example.com", "a@", "a b@example.com", "a@b\r\nBcc: x@y"]
)
def test_queueing_refuses_what_is_not_an_address(db: Database, address: str) -> None:
    with pytest.raises(ValueError, match="address"):
        db.run(lambda tx: mail.queue_email(tx, address, "s", "b", "en"))
    assert rows(db) == []


# --- the sandbox ---------------------------------------------------------------------------


def test_the_sandbox_outbox_keeps_the_mail_to_be_read(db: Database) -> None:
    queue(db)
    assert statuses(db) == [("sent", 1)]
    (entry,) = db.run(lambda tx: mail.read_email_outbox(tx, TO))
    assert (entry.subject, entry.body, entry.language) == (SUBJECT, BODY, "zh_Hans")
    assert entry.gateway == "outbox"


def test_the_sandbox_bounces_the_reserved_invalid_domain(db: Database) -> None:
    queue(db, to="bounce@example.invalid")
    (row,) = rows(db)
    assert (row.status, row.attempts) == ("failed", 1)
    assert "550" in (row.last_error or "")


def test_nothing_is_queued_when_the_transaction_fails(db: Database) -> None:
    def fail(tx: Tx) -> None:
        mail.queue_email(tx, TO, SUBJECT, BODY, "zh_Hans")
        raise QianbaoError("test.failed", "failed")

    with pytest.raises(QianbaoError):
        db.run(fail)
    assert rows(db) == []


def test_the_log_gateway_logs_that_a_mail_went_but_not_the_address_or_the_code(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="qianbao.email"):
        assert mail.LogEmailGateway().send(TO, SUBJECT, BODY) == "log"
    (record,) = caplog.records
    assert record.domain == "example.com" and record.length == len(BODY)
    assert "246810" not in caplog.text and TO not in caplog.text


# --- over SMTP -----------------------------------------------------------------------------


def test_smtp_delivers_chinese_subject_name_and_text(
    smtp_server: Mailbox, clock: FrozenClock
) -> None:
    reference = smtp_gateway(smtp_server.port, clock=clock).send(TO, SUBJECT, BODY)
    (received,) = smtp_server.received
    assert received.mail_from == "no-reply@qianbao.test"
    assert received.rcpt_tos == [TO]
    assert received.raw.isascii()  # 7-bit clean: any relay on the way keeps it intact
    message = received.parsed()
    assert message["Subject"] == SUBJECT
    assert message["From"].addresses[0].display_name == "钱包 Qianbao"
    assert message["From"].addresses[0].addr_spec == "no-reply@qianbao.test"
    assert message["To"].addresses[0].addr_spec == TO
    assert message["Message-ID"] == reference
    assert message["Date"].datetime == clock.now()
    body = message.get_body()
    assert body is not None
    assert body.get_content_charset() == "utf-8"
    # Text travels with CRLF line ends (MIME's canonical form); the words are intact.
    assert body.get_content().replace("\r\n", "\n") == BODY


def test_a_mail_queued_in_a_request_goes_out_over_smtp_after_commit(
    smtp_server: Mailbox, settings: Settings, clock: FrozenClock
) -> None:
    configured = settings.model_copy(
        update={
            "email_gateway": "smtp",
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_server.port,
            "smtp_security": "none",
            "email_from": "no-reply@qianbao.test",
            "email_from_name": "钱包",
        }
    )
    database = Database(configured, clock)
    try:
        queue(database)
        (row,) = rows(database)
        assert (row.status, row.attempts, row.gateway) == ("sent", 1, "smtp")
        # The text (codes, links) is erased once a real server has it, as for SMS.
        assert row.body == service.ERASED
        (received,) = smtp_server.received
        assert received.parsed()["Message-ID"] == row.provider_ref
        assert received.parsed()["Subject"] == SUBJECT
        (entry,) = database.run(lambda tx: mail.read_email_outbox(tx))
        assert (entry.subject, entry.body) == ("", service.ERASED)
    finally:
        database.dispose()


def test_a_550_rejection_fails_the_mail_at_once(db: Database, smtp_server: Mailbox) -> None:
    smtp_server.rcpt_replies[TO] = "550 5.1.1 <traveller@example.com>: no such user"
    queue(db, after=False)
    assert mail.deliver_due_email(db, gateway=smtp_gateway(smtp_server.port)) == 0
    (row,) = rows(db)
    assert (row.status, row.attempts) == ("failed", 1)
    assert (row.last_error or "").startswith("SMTP 550 5.1.1")
    assert smtp_server.received == []


def test_a_451_is_retried_later(db: Database, smtp_server: Mailbox, clock: FrozenClock) -> None:
    smtp_server.rcpt_replies[TO] = "451 4.3.0 greylisted, try again later"
    gateway = smtp_gateway(smtp_server.port, clock=clock)
    queue(db, after=False)
    assert mail.deliver_due_email(db, gateway=gateway) == 0
    (row,) = rows(db)
    assert (row.status, row.attempts) == ("pending", 1)
    assert (row.last_error or "").startswith("SMTP 451")
    del smtp_server.rcpt_replies[TO]
    assert mail.deliver_due_email(db, gateway=gateway) == 0  # not due yet: waits 10 s
    clock.advance(seconds=10)
    assert mail.deliver_due_email(db, gateway=gateway) == 1
    assert statuses(db) == [("sent", 2)]
    assert len(smtp_server.received) == 1


def test_a_refused_connection_is_retried(
    db: Database, smtp_server: Mailbox, clock: FrozenClock
) -> None:
    queue(db, after=False)
    assert mail.deliver_due_email(db, gateway=smtp_gateway(free_port())) == 0  # nobody listens
    (row,) = rows(db)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "ConnectionRefusedError" in (row.last_error or "")
    clock.advance(seconds=10)
    assert mail.deliver_due_email(db, gateway=smtp_gateway(smtp_server.port)) == 1
    assert statuses(db) == [("sent", 2)]


@pytest.mark.parametrize(
    ("stage", "reply", "permanent"),
    [
        ("rcpt", "550 5.1.1 no such user", True),
        ("rcpt", "452 4.2.2 mailbox full", False),
        ("data", "554 5.7.1 message refused as spam", True),
        ("data", "421 4.4.2 timeout, closing", False),
    ],
)
def test_the_server_reply_says_whether_to_retry(
    smtp_server: Mailbox, stage: str, reply: str, permanent: bool
) -> None:
    if stage == "rcpt":
        smtp_server.rcpt_replies[TO] = reply
    else:
        smtp_server.data_reply = reply
    with pytest.raises(GatewayError) as caught:
        smtp_gateway(smtp_server.port).send(TO, SUBJECT, BODY)
    assert caught.value.permanent is permanent
    assert str(caught.value).startswith(f"SMTP {reply[:3]}")


def test_an_internationalized_domain_is_sent_in_its_ascii_form(smtp_server: Mailbox) -> None:
    smtp_gateway(smtp_server.port).send("lü@例子.中国", SUBJECT, BODY)
    assert smtp_server.received[0].rcpt_tos == ["lü@xn--fsqu00a.xn--fiqs8s"]


def test_a_non_ascii_mailbox_needs_a_server_with_smtputf8(
    start_smtp: Callable[..., Mailbox],
) -> None:
    without = start_smtp(enable_SMTPUTF8=False)
    with pytest.raises(GatewayError, match="SMTPUTF8") as caught:
        smtp_gateway(without.port).send("用户@example.com", SUBJECT, BODY)
    assert caught.value.permanent
    assert without.received == []
    with_utf8 = start_smtp(enable_SMTPUTF8=True)
    smtp_gateway(with_utf8.port).send("用户@example.com", SUBJECT, BODY)
    (received,) = with_utf8.received
    assert received.rcpt_tos == ["用户@example.com"]
    assert received.parsed()["Subject"] == SUBJECT


# --- TLS and authentication ----------------------------------------------------------------


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data == (b"qianbao", b"s3cret-pass")
    return AuthResult(success=ok, handled=False, auth_data=data)


def test_starttls_then_login_then_delivery(
    start_smtp: Callable[..., Mailbox], certificate: Certificate
) -> None:
    server = start_smtp(
        tls_context=certificate.server_context(),
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    gateway = smtp_gateway(
        server.port,
        security="starttls",
        username="qianbao",
        password="s3cret-pass",
        ssl_context=certificate.client_context(),
    )
    gateway.send(TO, SUBJECT, BODY)
    (received,) = server.received
    assert received.login == b"qianbao"
    assert received.parsed()["Subject"] == SUBJECT


def test_a_wrong_password_is_retried_not_given_up(
    start_smtp: Callable[..., Mailbox], certificate: Certificate
) -> None:
    server = start_smtp(
        tls_context=certificate.server_context(), auth_required=True, authenticator=authenticator
    )
    gateway = smtp_gateway(
        server.port,
        security="starttls",
        username="qianbao",
        password="wrong",
        ssl_context=certificate.client_context(),
    )
    with pytest.raises(GatewayError, match="authentication") as caught:
        gateway.send(TO, SUBJECT, BODY)
    assert not caught.value.permanent  # the settings are wrong, not the mail
    assert server.received == []


def test_implicit_tls_delivers(
    start_smtp: Callable[..., Mailbox], certificate: Certificate
) -> None:
    server = start_smtp(
        ssl_context=certificate.server_context(),
        auth_require_tls=False,  # the connection is TLS from its first byte
        authenticator=authenticator,
    )
    gateway = smtp_gateway(
        server.port,
        security="ssl",
        username="qianbao",
        password="s3cret-pass",
        ssl_context=certificate.client_context(),
    )
    gateway.send(TO, SUBJECT, BODY)
    assert server.received[0].login == b"qianbao"


def test_no_mail_goes_out_in_clear_when_starttls_is_not_offered(smtp_server: Mailbox) -> None:
    with pytest.raises(GatewayError, match="STARTTLS") as caught:
        smtp_gateway(smtp_server.port, security="starttls").send(TO, SUBJECT, BODY)
    assert not caught.value.permanent
    assert smtp_server.received == []


def test_an_untrusted_certificate_is_refused(
    start_smtp: Callable[..., Mailbox], certificate: Certificate
) -> None:
    server = start_smtp(tls_context=certificate.server_context())
    # The system's trust store does not know the self-signed test certificate.
    with pytest.raises(GatewayError, match="network: SSLCertVerificationError") as caught:
        smtp_gateway(server.port, security="starttls").send(TO, SUBJECT, BODY)
    assert not caught.value.permanent
    assert server.received == []


# --- settings ------------------------------------------------------------------------------


def test_the_gateway_follows_the_settings(tmp_path: Path) -> None:
    base: dict[str, Any] = {"var_dir": tmp_path, "secret_key": "k"}
    assert isinstance(mail.email_gateway_for(Settings(**base)), mail.OutboxEmailGateway)
    assert isinstance(
        mail.email_gateway_for(Settings(**base, email_gateway="log")), mail.LogEmailGateway
    )
    gateway = mail.email_gateway_for(
        Settings(
            **base,
            email_gateway="smtp",
            smtp_host="smtp.example.com",
            smtp_security="ssl",
            smtp_username="u",
            smtp_password="p",
            email_from="no-reply@example.com",
        )
    )
    assert isinstance(gateway, mail.SmtpEmailGateway)
    assert gateway.config.effective_port == 465
    assert "password" not in repr(gateway.config)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"email_from": "no-reply@example.com"}, "SMTP_HOST"),
        ({"smtp_host": "smtp.example.com"}, "EMAIL_FROM"),
        (
            {
                "smtp_host": "smtp.example.com",
                "email_from": "no-reply@example.com",
                "smtp_security": "none",
                "smtp_username": "u",
            },
            "in clear",
        ),
        (
            {
                "smtp_host": "smtp.example.com",
                "email_from": "no-reply@example.com",
                "smtp_username": "u",
                "smtp_password": "密码",
            },
            "ASCII",
        ),
    ],
)
def test_smtp_settings_that_cannot_work_are_refused(
    tmp_path: Path, options: dict[str, Any], match: str
) -> None:
    settings = Settings(var_dir=tmp_path, email_gateway="smtp", **options)
    with pytest.raises(ValueError, match=match):
        mail.email_gateway_for(settings)


# --- the two channels, the worker ----------------------------------------------------------


def test_email_delivery_leaves_sms_alone(db: Database) -> None:
    db.settings.sms_gateway = "log"  # not the sandbox: the SMS waits for its delivery

    def queue_sms(tx: Tx) -> None:
        service.queue_sms(tx, UK.e164, "code 123456", "en")
        tx._after_commit.clear()

    db.run(queue_sms)
    queue(db, after=False)
    assert mail.deliver_due_email(db) == 1
    assert statuses(db, "sms") == [("pending", 0)]
    assert statuses(db, "email") == [("sent", 1)]


def test_sms_delivery_leaves_email_alone(db: Database) -> None:
    queue(db, after=False)
    service.deliver_due(db)
    assert statuses(db) == [("pending", 0)]


class SlowGateway:
    name = "slow"

    def __init__(self) -> None:
        self.subjects: list[str] = []
        self.lock = threading.Lock()

    def send(self, to: str, subject: str, body: str) -> str:
        time.sleep(0.02)
        with self.lock:
            self.subjects.append(subject)
        return "ok-ref"


def test_two_workers_never_send_the_same_mail(db: Database) -> None:
    for n in range(20):
        queue(db, subject=f"mail {n}", after=False)
    gateway = SlowGateway()
    threads = [
        threading.Thread(
            target=lambda: [mail.deliver_due_email(db, gateway=gateway, batch=3) for _ in range(8)]
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(gateway.subjects) == sorted(f"mail {n}" for n in range(20))


def test_a_worker_that_dies_after_claiming_leaves_the_mail_to_others(
    db: Database, clock: FrozenClock
) -> None:
    queue(db, after=False)
    assert (
        len(db.run(lambda tx: service._claim(tx, "email", None, 10))) == 1
    )  # ...then the worker dies
    assert mail.deliver_due_email(db) == 0  # the claim holds for its lease
    clock.advance(minutes=2)
    assert mail.deliver_due_email(db) == 1
    assert statuses(db) == [("sent", 2)]
