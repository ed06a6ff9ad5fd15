"""The restore drill: a verified person with a funded wallet, backed up (database and,
apart, keys), restored into a fresh data directory, where the passport data opens with
the restored keys, and only with them, and the ledger's books still balance."""

from __future__ import annotations

import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from qianbao import backup, cli
from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.errors import QianbaoError
from qianbao.identity import security
from qianbao.identity import service as identity
from qianbao.sealing import Keyring, SealingError
from qianbao.settings import Settings, get_settings
from qianbao.verification import liveness
from qianbao.verification import service as verification
from qianbao.wallet.ledger import audit as ledger_audit
from qianbao.wallet.payments import service as payments
from tests.helpers import sign_up
from tests.identity.test_security import security_code
from tests.verification.flow_helpers import CHALLENGE, accept_synthetic_clips, clip, passport
from tests.verification.test_flow import to_face_step
from tests.wallet.test_payments import PIN, cny, fund, order


@pytest.fixture(autouse=True)
def fixed_challenge(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """The clips are made ahead for one challenge; the service would draw a random one."""
    monkeypatch.setattr(liveness, "new_challenge", lambda rng=None: CHALLENGE)
    accept_synthetic_clips(settings)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def verified_person_with_a_wallet(db: Database, clock: FrozenClock) -> tuple[uuid.UUID, str]:
    """Verified by passport and face, CNY 100 in, CNY 60 paid to a shop; and a session."""
    signed = sign_up(db)
    person = signed.account.id
    case_id = to_face_step(db, person)
    assert verification.submit_face(db, person, case_id, clip("astronaut")).status == "verified"
    code = security_code(db, person, clock)
    security.set_payment_password(db, person, PIN, sms_code=code)
    fund(db, person, "100")
    shop = db.run(lambda tx: payments.create_merchant(tx, "Demo Shop"))
    assert payments.pay_with_balance(db, person, order(db, shop, "60.00"), PIN).status == (
        "TRADE_SUCCESS"
    )
    return person, signed.token


@pytest.fixture
def fresh_url(backend: str, database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database to restore into: a new SQLite file, or a new PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh' / 'qianbao.db'}"
        return
    name = f"qianbao_restore_{uuid.uuid4().hex[:12]}"
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_the_restore_drill(
    db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path, fresh_url: str
) -> None:
    person, token = verified_person_with_a_wallet(db, clock)

    # Backed up while the service runs, the keys to a place of their own.
    dump, keys = tmp_path / "backups" / "qianbao.backup", tmp_path / "key-safe" / "keys"
    backup.backup_database(settings, dump)
    backup.backup_keys(settings, keys)
    assert mode(dump) == 0o600 and mode(keys) == 0o700
    assert {mode(path) for path in keys.iterdir()} == {0o600}
    assert (keys / "secret.key").read_text().strip() == settings.secret_key

    # A fresh data directory: no database, no keys.
    fresh = Settings(database_url=fresh_url, var_dir=tmp_path / "fresh" / "var")
    backup.restore_database(fresh, dump)
    backup.restore_keys(fresh, keys)
    restored = Database(fresh, clock)
    try:
        shown = restored.run(lambda tx: verification.verified_identity(tx, person))
        data = passport()
        assert shown is not None and shown.nationality == data.nationality
        assert shown.name == f"{data.surname} {data.given_names}".replace("<", " ")
        assert restored.run(lambda tx: identity.authenticate(tx, token)).account.id == person
        assert restored.run(lambda tx: payments.wallet(tx, person)).balance == cny("40.00")
        assert restored.run(ledger_audit.audit).sound
    finally:
        restored.dispose()

    # The same database with other keys (a data directory that lost its key backup):
    # the passport data stays shut, and no session opens.
    keyless = Database(Settings(database_url=fresh_url, var_dir=tmp_path / "lost"), clock)
    try:
        with pytest.raises(SealingError):
            keyless.run(lambda tx: verification.verified_identity(tx, person))
        with pytest.raises(QianbaoError):
            keyless.run(lambda tx: identity.authenticate(tx, token))
    finally:
        keyless.dispose()


def test_the_keys_can_be_mounted_from_the_backup_instead(
    tmp_path: Path, settings: Settings
) -> None:
    Keyring.from_settings(settings)  # the first sealed value creates the keyring
    backup.backup_keys(settings, tmp_path / "keys")
    mounted = Settings(
        secret_key_file=tmp_path / "keys" / "secret.key",
        sealing_keys_file=tmp_path / "keys" / "sealing.keys",
    )
    assert mounted.secret_key == settings.secret_key
    assert mounted.sealing_keys == (settings.var_dir / "sealing.keys").read_text().strip()
    with pytest.raises(backup.BackupError, match="QIANBAO_SECRET_KEY_FILE"):
        backup.restore_keys(mounted, tmp_path / "keys")


def test_a_backup_never_overwrites_and_a_restore_never_lands_on_data(
    db: Database, settings: Settings, tmp_path: Path, backend: str
) -> None:
    dump = tmp_path / "qianbao.backup"
    dump.write_text("an older backup")
    with pytest.raises(backup.BackupError, match="never overwrites"):
        backup.backup_database(settings, dump)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "secret.key").write_text("older")
    with pytest.raises(backup.BackupError, match="not empty"):
        backup.backup_keys(settings, tmp_path / "keys")
    if backend == "sqlite":
        with pytest.raises(backup.BackupError, match="fresh data directory"):
            backup.restore_database(settings, dump)
    with pytest.raises(backup.BackupError, match="nothing to back up"):
        backup.backup_keys(Settings(var_dir=tmp_path / "empty"), tmp_path / "no-keys")
    # Keys generated in a data directory are never replaced by other ones.
    other = Settings(var_dir=tmp_path / "other")
    other.hmac_key()
    third = Settings(var_dir=tmp_path / "third")
    third.hmac_key()
    Keyring.from_settings(third)
    backup.backup_keys(third, tmp_path / "third-keys")
    with pytest.raises(backup.BackupError, match="holds another key"):
        backup.restore_keys(other, tmp_path / "third-keys")


def test_the_commands_back_up_and_refuse_with_a_message(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Keyring.from_settings(settings)
    monkeypatch.setenv("QIANBAO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("QIANBAO_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("QIANBAO_SECRET_KEY", settings.secret_key)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        made = runner.invoke(cli.app, ["backup", "database", str(tmp_path / "db.backup")])
        assert made.exit_code == 0 and "the keys are not in it" in made.output, made.output
        keys = runner.invoke(cli.app, ["backup", "keys", str(tmp_path / "keys")])
        assert keys.exit_code == 0 and "apart from the database" in keys.output, keys.output
        again = runner.invoke(cli.app, ["backup", "database", str(tmp_path / "db.backup")])
        assert again.exit_code == 1 and "never overwrites" in again.output
        assert "Traceback" not in again.output
    finally:
        get_settings.cache_clear()
