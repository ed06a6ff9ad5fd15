"""SMS gateways. ``outbox`` is the default sandbox: the database is the phone.

* ``outbox``: the message stays in the outbox table, marked sent, and is read with
  ``qianbao sms outbox`` (and, in demo mode, on the /demo/outbox page).
* ``log``: a line in the application log says that a message was sent, to which calling
  code and how long; never its number or text, which carry codes (the outbox row keeps
  the text until it is delivered).
* ``twilio``: Twilio's Programmable Messaging REST API (``POST
  /2010-04-01/Accounts/{AccountSid}/Messages.json`` with ``To``, ``From`` and ``Body``,
  HTTP basic auth). Any provider that speaks this shape can be used via
  ``QIANBAO_TWILIO_BASE_URL``.
"""

from __future__ import annotations

import logging
from typing import Protocol

import httpx
import phonenumbers

from qianbao.settings import Settings

log = logging.getLogger("qianbao.sms")


class GatewayError(Exception):
    """The provider did not take the message; ``permanent`` means retrying cannot help."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


class SmsGateway(Protocol):
    name: str

    def send(self, to_e164: str, body: str) -> str:
        """Hand the message over; return the provider's reference for it."""
        ...


class OutboxGateway:
    name = "outbox"

    def send(self, to_e164: str, body: str) -> str:
        # The outbox row itself is the delivered message; nothing leaves the machine.
        return "outbox"


class LogGateway:
    name = "log"

    def send(self, to_e164: str, body: str) -> str:
        log.info(
            "SMS handed to the log gateway",
            extra={"country": _calling_code(to_e164), "length": len(body)},
        )
        return "log"


def _calling_code(e164: str) -> str:
    """``+44`` for ``+447911123456``: where a message went, without the number."""
    try:
        return f"+{phonenumbers.parse(e164).country_code}"
    except phonenumbers.NumberParseException:
        return "unknown"


class TwilioGateway:
    name = "twilio"

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        if not (
            settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from
        ):
            raise ValueError(
                "QIANBAO_TWILIO_ACCOUNT_SID, QIANBAO_TWILIO_AUTH_TOKEN and QIANBAO_TWILIO_FROM "
                "must be set for the twilio SMS gateway"
            )
        self._sid = settings.twilio_account_sid
        self._from = settings.twilio_from
        self._client = httpx.Client(
            base_url=settings.twilio_base_url,
            auth=(settings.twilio_account_sid, settings.twilio_auth_token),
            timeout=10.0,
            transport=transport,
        )

    def send(self, to_e164: str, body: str) -> str:
        try:
            response = self._client.post(
                f"/2010-04-01/Accounts/{self._sid}/Messages.json",
                data={"To": to_e164, "From": self._from, "Body": body},
            )
        except httpx.HTTPError as error:
            raise GatewayError(f"network: {error}") from error
        if response.status_code in (200, 201):
            return str(response.json()["sid"])
        reason = f"HTTP {response.status_code}: {response.text[:200]}"
        # 4xx other than throttling are about the request itself (bad number, auth).
        permanent = 400 <= response.status_code < 500 and response.status_code != 429
        raise GatewayError(reason, permanent=permanent)


def gateway_for(settings: Settings) -> SmsGateway:
    if settings.sms_gateway == "twilio":
        return TwilioGateway(settings)
    if settings.sms_gateway == "log":
        return LogGateway()
    return OutboxGateway()
