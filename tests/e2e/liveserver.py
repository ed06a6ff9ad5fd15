"""A real Qianbao server for browser tests and screenshots.

uvicorn runs ``create_app`` in a background thread on 127.0.0.1 and a free port, against a
migrated SQLite file, in demo mode (SMS codes stay in the outbox). Imported by
``tests/e2e/conftest.py`` and by ``docs/screenshots.py``.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import uvicorn

from qianbao import migrate
from qianbao.app import create_app
from qianbao.clock import Clock
from qianbao.db import Database
from qianbao.notify.service import OutboxEntry, read_outbox
from qianbao.settings import Settings

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

SECRET_KEY: Final = "e2e-secret-key-not-for-production"
STARTUP_TIMEOUT_S: Final = 15.0
SHUTDOWN_TIMEOUT_S: Final = 10.0

# Debian's chromium, not a browser downloaded by ``playwright install``.
CHROMIUM_EXECUTABLE: Final = "/usr/bin/chromium"
CHROMIUM_ARGS: Final = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# A 375 x 812 phone screen (iPhone X/11 Pro/12 mini and friends), as the stylesheet targets.
PHONE_VIEWPORT: Final[ViewportSize] = {"width": 375, "height": 812}


def chromium_path() -> str | None:
    """Debian's chromium when it is installed, else None (the browser tests skip)."""
    found = shutil.which("chromium")
    if found is None:
        return None
    return CHROMIUM_EXECUTABLE if Path(CHROMIUM_EXECUTABLE).exists() else found


def migrated_sqlite(path: Path) -> Path:
    """Create a SQLite database at ``path`` with the newest schema."""
    migrate.upgrade(Settings(database_url=f"sqlite:///{path}"))
    return path


def demo_settings(database: Path, var_dir: Path) -> Settings:
    """Demo mode on a SQLite file: codes are kept in the outbox, /demo/outbox is on."""
    return Settings(
        database_url=f"sqlite:///{database}",
        var_dir=var_dir,
        secret_key=SECRET_KEY,
        demo=True,
        sms_gateway="outbox",
        default_language="en",
    )


@dataclass(frozen=True)
class LiveServer:
    url: str
    settings: Settings
    db: Database

    def outbox(self, e164: str) -> list[OutboxEntry]:
        """Messages to ``e164``, newest first."""
        return self.db.run(lambda tx: read_outbox(tx, e164, 20))

    def sms_code(self, e164: str) -> str:
        """The code in the newest SMS to ``e164``."""
        messages = self.outbox(e164)
        if not messages:
            raise AssertionError(f"no SMS in the outbox for {e164}")
        length = self.settings.sms_code_length
        # No \b: in Chinese text the code sits between word characters.
        found = re.search(rf"(?<!\d)(\d{{{length}}})(?!\d)", messages[0].body)
        if found is None:
            raise AssertionError(f"no {length}-digit code in {messages[0].body!r}")
        return found.group(1)


def _listening_socket() -> socket.socket:
    """A socket bound to a free port, handed to uvicorn so no other process can take it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def live_server(settings: Settings, clock: Clock | None = None) -> Iterator[LiveServer]:
    """Serve ``create_app(settings, clock)`` until the block ends."""
    sock = _listening_socket()
    port: int = sock.getsockname()[1]
    # Links handed to others (pay-for-me, collect money) are built under the public
    # address, which for this server is its own port.
    settings = settings.model_copy(update={"public_base_url": f"http://127.0.0.1:{port}"})
    app = create_app(settings, clock)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        ws="none",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn stopped before it started; see the log above")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start within {STARTUP_TIMEOUT_S} s")
            time.sleep(0.02)
        yield LiveServer(url=f"http://127.0.0.1:{port}", settings=settings, db=app.state.db)
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT_S)
        sock.close()


@contextmanager
def demo_server(directory: Path, template: Path | None = None) -> Iterator[LiveServer]:
    """A demo-mode server on a fresh SQLite file in ``directory``.

    ``template``, when given, is an already migrated database to copy (faster than migrating).
    """
    database = directory / "qianbao.db"
    if template is not None:
        shutil.copy(template, database)
    else:
        migrated_sqlite(database)
    with live_server(demo_settings(database, directory / "var")) as server:
        yield server
