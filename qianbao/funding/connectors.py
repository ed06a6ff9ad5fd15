"""Which outside parties a deployment talks to: the bank connector (the sandbox bank by
default, or a provider over HTTPS, by ``QIANBAO_BANK_CONNECTOR``) and the card network
(the sandbox card network, one client per process and database)."""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import Final

import httpx

from qianbao.clock import Clock, SystemClock
from qianbao.db import Database
from qianbao.funding import card_network
from qianbao.funding.bank import (
    BankConnector,
    BankSettings,
    HttpBank,
    SendSms,
)
from qianbao.funding.sandbox.bank import SandboxBank
from qianbao.funding.sandbox.card_network import SandboxCardNetwork
from qianbao.funding.sandbox.state import MemoryStore, SandboxStore, SqliteStore


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


SANDBOX_NETWORK_FILE: Final = "sandbox_card_network.sqlite3"
_networks: weakref.WeakKeyDictionary[Database, card_network.CardNetwork] = (
    weakref.WeakKeyDictionary()
)
_networks_lock = threading.Lock()


def network_for(db: Database) -> card_network.CardNetwork:
    """One card network client per process and database. The sandbox keeps its records
    in a file of its own under the var directory, so every process sees the same
    payments and a worker can finish what a crashed request started."""
    with _networks_lock:
        found = _networks.get(db)
        if found is None:
            store = SqliteStore(Path(db.settings.var_dir) / SANDBOX_NETWORK_FILE)
            found = SandboxCardNetwork(db.clock, rates=db.settings.fx_rates, store=store)
            _networks[db] = found
        return found
