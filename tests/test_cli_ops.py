"""The operator's commands: --version, python -m qianbao, db current/check, ledger audit,
and the worker's dead letters (list, retry), each with its non-zero exits."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner, Result

from qianbao import cli, migrate
from qianbao.db import Database, Tx
from qianbao.money import Money
from qianbao.notify import service as notify
from qianbao.notify.gateways import GatewayError
from qianbao.notify.models import OutboxMessage
from qianbao.settings import Settings, get_settings
from qianbao.wallet.ledger import service as ledger

UK = "+447911123456"


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The command line reads its settings from the environment, as in production."""
    point_cli_at(monkeypatch, settings.database_url, settings)
    yield
    get_settings.cache_clear()


def point_cli_at(monkeypatch: pytest.MonkeyPatch, url: str, settings: Settings) -> None:
    monkeypatch.setenv("QIANBAO_DATABASE_URL", url)
    monkeypatch.setenv("QIANBAO_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("QIANBAO_SECRET_KEY", settings.secret_key)
    get_settings.cache_clear()


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli.app, list(args))


# --- version -------------------------------------------------------------------------------


def test_version_comes_from_the_installed_package() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == "qianbao 0.1.0"


def test_python_dash_m_runs_the_same_commands() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "qianbao", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "qianbao 0.1.0"


# --- db current / db check ------------------------------------------------------------------


@pytest.mark.usefixtures("cli_env")
def test_a_migrated_database_is_at_head() -> None:
    head = migrate.head()
    current = invoke("db", "current")
    assert current.exit_code == 0
    assert current.output.strip() == f"{head} (head)"
    check = invoke("db", "check")
    assert check.exit_code == 0
    assert f"database at {head} (head)" in check.output


def test_db_check_fails_on_an_empty_and_on_an_old_database(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("one fresh file is enough to show the exits")
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    point_cli_at(monkeypatch, url, settings)
    try:
        empty = invoke("db", "check")
        assert empty.exit_code == 1
        assert "database at none" in empty.output and "qianbao db upgrade" in empty.output
        assert "none (an empty database" in invoke("db", "current").output
        assert not (tmp_path / "fresh.db").exists(), "reading the revision created the file"

        migrate.upgrade(Settings(database_url=url), "0020")
        old = invoke("db", "check")
        assert old.exit_code == 1
        assert f"database at 0020, code at {migrate.head()}" in old.output
        assert invoke("db", "current").output.strip() == f"0020 (the newest is {migrate.head()})"

        assert invoke("db", "upgrade").exit_code == 0
        assert invoke("db", "check").exit_code == 0
    finally:
        get_settings.cache_clear()


def test_db_check_exits_2_when_the_database_cannot_be_read(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "not-a-database.db").write_bytes(b"this is no SQLite file, " * 100)
    point_cli_at(monkeypatch, f"sqlite:///{tmp_path / 'not-a-database.db'}", settings)
    try:
        result = invoke("db", "check")
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "cannot read the database" in result.output
    assert "not-a-database" not in result.output  # the URL (and any password) stays out


# --- ledger audit ---------------------------------------------------------------------------


def two_accounts_and_a_transfer(db: Database) -> uuid.UUID:
    def book(tx: Tx) -> uuid.UUID:
        issuance = ledger.open_account(tx, kind="issuance", currency="CNY")
        person = ledger.open_account(tx, kind="user_balance", currency="CNY")
        ledger.transfer(tx, "cli-audit-seed", issuance, person, Money("CNY", 10_000))
        return person

    return db.run(book)


def change_a_balance_behind_the_ledgers_back(db: Database, account: uuid.UUID) -> None:
    """Write around the triggers that keep a balance equal to its history, as a bad
    manual fix or a restore from the wrong backup would."""
    with db.engine.begin() as connection:
        if db.dialect == "postgresql":
            connection.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            connection.execute(text("DROP TRIGGER ledger_accounts_balance_from_transfers"))
        connection.execute(
            text("UPDATE ledger_accounts SET balance = balance + 1 WHERE id = :id"),
            {"id": account if db.dialect == "postgresql" else account.hex},
        )


@pytest.mark.usefixtures("cli_env")
def test_ledger_audit_passes_sound_books_and_fails_a_changed_balance(db: Database) -> None:
    person = two_accounts_and_a_transfer(db)
    sound = invoke("ledger", "audit")
    assert sound.exit_code == 0, sound.output
    assert "accounts checked: 2" in sound.output
    assert "balances that differ from their history: 0" in sound.output
    assert "CNY 0" in sound.output and "ledger sound" in sound.output

    change_a_balance_behind_the_ledgers_back(db, person)
    broken = invoke("ledger", "audit")
    assert broken.exit_code == 1
    assert "balances that differ from their history: 1" in broken.output
    assert str(person) in broken.output
    assert "CNY 1" in broken.output and "LEDGER NOT SOUND" in broken.output


# --- the worker's dead letters --------------------------------------------------------------


def refused_for_good(_recipient: str, _body: str) -> str:
    raise GatewayError("21211 invalid 'To' number", permanent=True)


def dead_messages(db: Database, count: int) -> None:
    """Messages queued for a real provider that refused each of them for good."""
    db.settings.sms_gateway = "log"  # not the sandbox: delivery happens after the commit

    def write(tx: Tx) -> None:
        for number in range(count):
            notify.queue_sms(tx, UK, f"Your Qianbao code is 12345{number}", "en")
        tx._after_commit.clear()  # the worker, below, is who tries them

    db.run(write)
    assert notify.deliver_channel(db, "sms", "twilio", refused_for_good) == 0


def statuses(db: Database) -> dict[uuid.UUID, str]:
    rows = db.run(lambda tx: tx.session.execute(select(OutboxMessage.id, OutboxMessage.status)))
    return {row.id: row.status for row in rows}


@pytest.mark.usefixtures("cli_env")
def test_dead_messages_are_listed_without_their_text(db: Database) -> None:
    dead_messages(db, 2)
    listed = invoke("worker", "dead", "list")
    assert listed.exit_code == 0, listed.output
    assert "2 dead messages" in listed.output
    assert "+44******3456" in listed.output and UK not in listed.output
    assert "21211 invalid 'To' number" in listed.output
    assert "code is" not in listed.output  # a message may hold a code
    for message_id in statuses(db):
        assert str(message_id) in listed.output


@pytest.mark.usefixtures("cli_env")
def test_retrying_one_dead_message_queues_it_and_the_worker_sends_it(db: Database) -> None:
    dead_messages(db, 2)
    first, second = sorted(statuses(db))
    retried = invoke("worker", "dead", "retry", str(first))
    assert retried.exit_code == 0, retried.output
    assert "1 messages queued again" in retried.output
    assert statuses(db) == {first: "pending", second: "failed"}

    # The worker's next sweep (on the real clock, as `qianbao worker` runs) sends it.
    worker_db = Database(db.settings)
    try:
        db.settings.sms_gateway = "outbox"
        assert notify.deliver_due(worker_db) == 1
    finally:
        worker_db.dispose()
    assert statuses(db) == {first: "sent", second: "failed"}
    assert "1 dead messages" in invoke("worker", "dead", "list").output


@pytest.mark.usefixtures("cli_env")
def test_retry_all_and_the_refusals(db: Database) -> None:
    dead_messages(db, 3)
    neither = invoke("worker", "dead", "retry")
    assert neither.exit_code == 2 and "--all" in neither.output
    both = invoke("worker", "dead", "retry", str(uuid.uuid4()), "--all")
    assert both.exit_code == 2
    assert invoke("worker", "dead", "retry", "not-an-id").exit_code == 2

    everything = invoke("worker", "dead", "retry", "--all")
    assert everything.exit_code == 0
    assert "3 messages queued again" in everything.output
    assert set(statuses(db).values()) == {"pending"}

    # Already queued, or never existed: said, and exit 1 for a script to notice.
    some_id = next(iter(statuses(db)))
    again = invoke("worker", "dead", "retry", str(some_id))
    assert again.exit_code == 1
    assert "0 messages queued again" in again.output and str(some_id) in again.output
    assert "0 dead messages" in invoke("worker", "dead", "list").output


def test_a_merchant_name_that_reads_backwards_is_refused(cli_env: None, db: Database) -> None:
    refused = invoke("admin", "create-merchant", "Tea \u202epohs")
    assert refused.exit_code == 2 and "U+202E" in refused.output
    created = invoke("admin", "create-merchant", "Tea shop")
    assert created.exit_code == 0, created.output
