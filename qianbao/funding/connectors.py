"""Which bank connector a deployment talks to: the sandbox bank (the default) or a
provider over HTTPS, by ``QIANBAO_BANK_CONNECTOR``."""

from __future__ import annotations

import httpx

from qianbao.clock import Clock, SystemClock
from qianbao.funding.bank import (
    BankConnector,
    BankSettings,
    HttpBank,
    SendSms,
)
from qianbao.funding.sandbox.bank import SandboxBank
from qianbao.funding.sandbox.state import MemoryStore, SandboxStore


def connector_for(
    settings: BankSettings,
    *,
    send_sms: SendSms,
    clock: Clock | None = None,
    transport: httpx.BaseTransport | None = None,
    store: SandboxStore | None = None,
) -> BankConnector:
    """The connector ``QIANBAO_BANK_CONNECTOR`` names: ``sandbox`` (default) or ``http``;
    ``store`` keeps the sandbox's records (memory when None)."""
    if settings.bank_connector == "http":
        return HttpBank.from_settings(settings, transport, clock)
    if settings.bank_connector == "sandbox":
        return SandboxBank(send_sms, clock or SystemClock(), store=store or MemoryStore())
    raise ValueError(
        f"QIANBAO_BANK_CONNECTOR must be sandbox or http, not {settings.bank_connector!r}"
    )
