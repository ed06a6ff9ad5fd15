"""Email: gateways, and the email side of the outbox. ``outbox`` is the default sandbox.

* ``outbox``: the mail stays in the outbox table, marked sent; it is read with the outbox
  (``read_email_outbox``, ``qianbao sms outbox``, and in demo mode /demo/outbox). Test
  data, as in a provider's test mode: a recipient whose domain is under the reserved
  top-level domain ``.invalid`` (RFC 2606, e.g. ``bounce@example.invalid``) bounces at
  once, permanently, as a real server answers for a domain that does not exist.
* ``log``: a line in the application log says that a mail was sent, to which domain and
  how long; never the address or the text, which carry codes.
* ``smtp``: any SMTP submission server, with the standard library's ``smtplib``:
  STARTTLS on port 587 (RFC 6409), implicit TLS on port 465 (RFC 8314), or no TLS for a
  relay on the same machine (port 25). Certificates are verified. Subjects, names and
  bodies are UTF-8 (RFC 2047 encoded words; bodies base64 or quoted-printable, so the
  mail is 7-bit clean on the wire); a recipient's internationalized domain is sent in
  its IDNA form, and a non-ASCII mailbox name needs a server that offers SMTPUTF8.

Whether a failed attempt is retried follows the server's answer about *the message*:
a 5xx reply to MAIL, RCPT or DATA is permanent, a 4xx reply is retried, and so are a
refused or dropped connection, a timeout and a TLS error. Failures of the session
itself (authentication refused, STARTTLS not offered, a 5xx greeting) are retried too,
whatever their code: they are this installation's settings, not the message, and once
an operator fixes them the waiting mail goes out (up to ``outbox_max_attempts``).

The subject travels in the outbox row's body as its first line, ``Subject: ...``,
then an empty line, then the text (``pack_subject`` and ``split_subject``).
"""

from __future__ import annotations

import logging
import secrets
import smtplib
import ssl
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from typing import Literal, Protocol

from sqlalchemy import select

from qianbao.clock import Clock, SystemClock
from qianbao.db import Database, Tx
from qianbao.notify.gateways import GatewayError
from qianbao.notify.models import OutboxMessage
from qianbao.notify.service import deliver_channel, queue_message
from qianbao.settings import Settings

log = logging.getLogger("qianbao.email")

CHANNEL = "email"
SUBJECT_PREFIX = "Subject: "
SmtpSecurity = Literal["starttls", "ssl", "none"]
STANDARD_PORTS: dict[str, int] = {"starttls": 587, "ssl": 465, "none": 25}
# Headers in RFC 2047 encoded words, bodies in base64 or quoted-printable: 7-bit clean.
_POLICY = SMTP_POLICY.clone(cte_type="7bit")


# --- the subject inside the outbox row ---------------------------------------------------


def _check_one_line(what: str, value: str) -> None:
    # Line breaks (and other control characters) in a header are header injection.
    for char in value:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            raise ValueError(f"an email {what} must be one line without control characters")


def pack_subject(subject: str, body: str) -> str:
    """The outbox row's text for a mail: ``Subject: <subject>``, an empty line, the body."""
    _check_one_line("subject", subject)
    return f"{SUBJECT_PREFIX}{subject}\n\n{body}"


def split_subject(stored: str) -> tuple[str, str]:
    """``(subject, body)`` of an outbox row's text; ``("", stored)`` when it has no
    subject line (the text of a mail already handed to a provider is erased)."""
    head, separator, body = stored.partition("\n\n")
    if not separator or not head.startswith(SUBJECT_PREFIX) or "\n" in head:
        return "", stored
    return head[len(SUBJECT_PREFIX) :], body


def check_address(address: str) -> None:
    """Refuse what is not one plain ``local@domain`` (no display name, no line breaks)."""
    local, at, domain = address.rpartition("@")
    if not (at and local and domain) or len(address) > 320:
        raise ValueError("an email address is local@domain, at most 320 characters")
    if any(char.isspace() or unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in address):
        raise ValueError("an email address has no spaces or control characters")


# --- gateways ----------------------------------------------------------------------------


class EmailGateway(Protocol):
    name: str

    def send(self, to: str, subject: str, body: str) -> str:
        """Hand the mail over; return the provider's reference for it.

        Raises ``GatewayError``; ``permanent`` when sending it again cannot help."""
        ...


class OutboxEmailGateway:
    """The sandbox: the outbox row itself is the delivered mail."""

    name = "outbox"

    def send(self, to: str, subject: str, body: str) -> str:
        domain = to.rpartition("@")[2].rstrip(".").lower()
        if domain == "invalid" or domain.endswith(".invalid"):
            raise GatewayError(
                "SMTP 550 5.1.2 sandbox: the domain does not exist (.invalid, RFC 2606)",
                permanent=True,
            )
        return "outbox"


class LogEmailGateway:
    name = "log"

    def send(self, to: str, subject: str, body: str) -> str:
        log.info(
            "email handed to the log gateway",
            extra={"domain": to.rpartition("@")[2].lower(), "length": len(body)},
        )
        return "log"


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    sender: str  # the From address
    sender_name: str = "Qianbao"
    port: int | None = None  # None: the standard port of ``security``
    security: SmtpSecurity = "starttls"
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not (self.host and self.sender):
            raise ValueError(
                "QIANBAO_SMTP_HOST and QIANBAO_EMAIL_FROM must be set for the smtp email gateway"
            )
        if self.security not in STANDARD_PORTS:
            raise ValueError("QIANBAO_SMTP_SECURITY is one of starttls, ssl, none")
        if self.username and self.security == "none":
            raise ValueError(
                "refusing to send the SMTP password in clear: set QIANBAO_SMTP_SECURITY "
                "to starttls or ssl"
            )
        if not (self.username.isascii() and self.password.isascii()):
            raise ValueError("smtplib sends only ASCII SMTP usernames and passwords")
        check_address(self.sender)
        _check_one_line("sender name", self.sender_name)

    @property
    def effective_port(self) -> int:
        return self.port or STANDARD_PORTS[self.security]

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        port = settings.smtp_port
        return cls(
            host=str(settings.smtp_host),
            sender=str(settings.email_from),
            sender_name=str(settings.email_from_name),
            port=int(port) if port else None,
            security=settings.smtp_security,
            username=str(settings.smtp_username),
            password=str(settings.smtp_password),
            timeout=float(settings.smtp_timeout_seconds),
        )


def ascii_domain(address: str) -> str:
    """The address with its domain in IDNA form (``用户@例子.中国`` -> ``用户@xn--...``)."""
    local, _, domain = address.rpartition("@")
    if domain.isascii():
        return address
    return f"{local}@{domain.encode('idna').decode('ascii')}"


def compose_email(
    *,
    sender: str,
    sender_name: str,
    to: str,
    subject: str,
    body: str,
    date: datetime,
    message_id: str,
) -> EmailMessage:
    message = EmailMessage(policy=_POLICY)
    # By parts: ``addr_spec=`` refuses a non-ASCII mailbox name, which SMTPUTF8 allows.
    sender_local, _, sender_domain = sender.rpartition("@")
    to_local, _, to_domain = to.rpartition("@")
    message["From"] = Address(sender_name, sender_local, sender_domain)
    message["To"] = Address(username=to_local, domain=to_domain)
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    message.set_content(body, charset="utf-8")
    return message


class SmtpEmailGateway:
    name = "smtp"

    def __init__(
        self,
        config: SmtpConfig,
        *,
        clock: Clock | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self._clock: Clock = clock or SystemClock()
        self._ssl_context = ssl_context
        self._sender = ascii_domain(config.sender)

    def send(self, to: str, subject: str, body: str) -> str:
        config = self.config
        message_id = f"<{secrets.token_hex(16)}@{self._sender.rpartition('@')[2]}>"
        try:
            recipient = ascii_domain(to)
            message = compose_email(
                sender=self._sender,
                sender_name=config.sender_name,
                to=recipient,
                subject=subject,
                body=body,
                date=self._clock.now(),
                message_id=message_id,
            )
        except (ValueError, IndexError) as error:  # UnicodeError is a ValueError
            raise GatewayError(f"not a valid mail: {error}", permanent=True) from error
        try:
            smtp = self._connect()
        except OSError as error:  # every smtplib error is an OSError
            raise _failure(error) from error
        try:
            self._start(smtp)
            if not recipient.isascii() and not smtp.has_extn("smtputf8"):
                raise GatewayError(
                    f"{config.host} does not offer SMTPUTF8, which the address {to} needs",
                    permanent=True,
                )
            smtp.send_message(message, from_addr=self._sender, to_addrs=[recipient])
        except OSError as error:
            raise _failure(error) from error
        finally:
            # The server has the mail once DATA is answered; a failed QUIT changes nothing.
            try:
                smtp.quit()
            except OSError:
                smtp.close()
        return message_id

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        if config.security == "ssl":
            return smtplib.SMTP_SSL(
                config.host, config.effective_port, timeout=config.timeout, context=self._tls()
            )
        return smtplib.SMTP(config.host, config.effective_port, timeout=config.timeout)

    def _start(self, smtp: smtplib.SMTP) -> None:
        config = self.config
        smtp.ehlo()
        if config.security == "starttls":
            code, reply = smtp.starttls(context=self._tls())  # no STARTTLS offered: raises
            if code != 220:  # smtplib returns a refusal instead of raising: never go on in clear
                raise smtplib.SMTPResponseException(code, reply)
            smtp.ehlo()
        if config.username:
            smtp.login(config.username, config.password)


def _reply_text(text: bytes | str) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _failure(error: OSError) -> GatewayError:
    """Whether the server's answer makes this mail hopeless (see the module's docstring)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(error.recipients.values()), (0, b""))
        return GatewayError(f"SMTP {code} {_reply_text(text)}", permanent=500 <= code < 600)
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return GatewayError(
            f"SMTP {error.smtp_code} authentication refused: check QIANBAO_SMTP_USERNAME "
            "and QIANBAO_SMTP_PASSWORD"
        )
    if isinstance(error, smtplib.SMTPSenderRefused | smtplib.SMTPDataError):
        code = error.smtp_code
        return GatewayError(
            f"SMTP {code} {_reply_text(error.smtp_error)}", permanent=500 <= code < 600
        )
    if isinstance(error, smtplib.SMTPResponseException):  # greeting, EHLO, STARTTLS
        return GatewayError(f"SMTP {error.smtp_code} {_reply_text(error.smtp_error)}")
    if isinstance(error, smtplib.SMTPException):  # no STARTTLS or AUTH offered, hung up
        return GatewayError(f"SMTP: {error}")
    return GatewayError(f"network: {type(error).__name__}: {error}")


def email_gateway_for(settings: Settings, *, clock: Clock | None = None) -> EmailGateway:
    kind = settings.email_gateway
    if kind == "smtp":
        return SmtpEmailGateway(SmtpConfig.from_settings(settings), clock=clock)
    if kind == "log":
        return LogEmailGateway()
    if kind == "outbox":
        return OutboxEmailGateway()
    raise ValueError(f"QIANBAO_EMAIL_GATEWAY is one of outbox, log, smtp, not {kind!r}")


# --- queueing and delivery ---------------------------------------------------------------


@dataclass(frozen=True)
class EmailEntry:
    id: uuid.UUID
    recipient: str
    subject: str
    body: str
    language: str
    status: str
    created_at: datetime
    sent_at: datetime | None
    gateway: str | None


def queue_email(tx: Tx, to: str, subject: str, body: str, language: str) -> uuid.UUID:
    """Write the mail to the outbox now; it is sent once this transaction commits."""
    check_address(to)
    gateway = email_gateway_for(tx.settings)

    def sandbox(recipient: str, stored: str) -> str:
        return gateway.send(recipient, *split_subject(stored))

    return queue_message(
        tx,
        CHANNEL,
        to,
        pack_subject(subject, body),
        language,
        lambda db, ids: deliver_due_email(db, only=ids),
        sandbox=sandbox if gateway.name == "outbox" else None,
    )


def deliver_due_email(
    db: Database,
    *,
    only: list[uuid.UUID] | None = None,
    batch: int = 50,
    gateway: EmailGateway | None = None,
) -> int:
    """Send mails that are due, as ``notify.service.deliver_channel`` does for every
    channel (claimed with a lease, sent outside any transaction, at least once)."""
    # Built before claiming: a setting that is missing costs no message an attempt.
    sender = gateway or email_gateway_for(db.settings, clock=db.clock)

    def send(recipient: str, stored: str) -> str:
        return sender.send(recipient, *split_subject(stored))

    return deliver_channel(db, CHANNEL, sender.name, send, only=only, batch=batch)


def read_email_outbox(tx: Tx, recipient: str | None = None, limit: int = 20) -> list[EmailEntry]:
    """Recent mails, newest first, subject and text apart (the sandbox's mailbox)."""
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.channel == CHANNEL)
        .order_by(OutboxMessage.created_at.desc())
        .limit(limit)
    )
    if recipient:
        query = query.where(OutboxMessage.recipient == recipient)
    entries = []
    for m in tx.session.scalars(query):
        subject, body = split_subject(m.body)
        entries.append(
            EmailEntry(
                m.id,
                m.recipient,
                subject,
                body,
                m.language,
                m.status,
                m.created_at,
                m.sent_at,
                m.gateway,
            )
        )
    return entries
