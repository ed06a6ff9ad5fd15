"""The set-up of the tests that speak to a live Qianbao through Alipay's SDK (a module
asks for it with ``pytestmark = pytest.mark.usefixtures("beijing_shop")`` and runs its
``clock`` at the real time, since the SDK stamps requests with its own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qianbao.clock import FrozenClock
from qianbao.settings import Settings
from tests.e2e.liveserver import LiveServer, live_server
from tests.helpers import beijing_local_time
from tests.openplatform.gateway.shop import keep_the_port


@pytest.fixture
def beijing_shop(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The shop runs in China: the SDK writes its timestamp in local time."""
    keep_the_port(monkeypatch)
    with beijing_local_time(monkeypatch):
        yield


@pytest.fixture
def server(settings: Settings, clock: FrozenClock) -> Iterator[LiveServer]:
    with live_server(settings, clock) as running:
        yield running
