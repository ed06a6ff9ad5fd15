"""Where the keys come from (a setting, a mounted file, or generated for development) and
who may read what the service writes: keys and the SQLite database are the owner's alone."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text

from qianbao import migrate
from qianbao.db import Database
from qianbao.funding.sandbox.state import SqliteStore
from qianbao.private_files import create_private
from qianbao.sealing import Keyring, new_key_entry
from qianbao.settings import Settings

HTTPS = "https://wallet.example"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_are_read_from_mounted_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret_key"
    secret.write_text("a-server-key-from-a-file\n")
    sealing = tmp_path / "sealing_keys"
    newest, older = new_key_entry("k2"), new_key_entry("k1")
    sealing.write_text(f"{newest}\n{older}\n")  # one key a line, as a secret store writes
    settings = Settings(
        public_base_url=HTTPS,
        secret_key_file=secret,
        sealing_keys_file=sealing,
        var_dir=tmp_path / "var",
    )
    assert settings.hmac_key() == b"a-server-key-from-a-file"
    keyring = Keyring.from_settings(settings)
    assert keyring.current_id == "k2"
    assert keyring.open(Keyring.parse(older).seal(b"x", b"c"), b"c") == b"x"
    assert not (tmp_path / "var").exists()  # nothing generated beside the database


@pytest.mark.parametrize("name", ["secret_key", "sealing_keys"])
def test_a_key_given_twice_or_from_an_unreadable_file_is_refused(tmp_path: Path, name: str) -> None:
    upper = name.upper()
    file = tmp_path / name
    file.write_text(new_key_entry("k1"))
    with pytest.raises(ValueError, match=f"QIANBAO_{upper} and QIANBAO_{upper}_FILE are both"):
        Settings(**{name: new_key_entry("k1"), f"{name}_file": file})
    with pytest.raises(ValueError, match="cannot read"):
        Settings(**{f"{name}_file": tmp_path / "missing"})
    file.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        Settings(**{f"{name}_file": file})


def test_production_must_be_given_its_keys(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="QIANBAO_SECRET_KEY or QIANBAO_SECRET_KEY_FILE"):
        Settings(public_base_url=HTTPS, sealing_keys=new_key_entry("k1"))
    with pytest.raises(ValueError, match="QIANBAO_SEALING_KEYS or QIANBAO_SEALING_KEYS_FILE"):
        Settings(public_base_url=HTTPS, secret_key="k")
    # A demo, or a machine reached over plain http, may generate its own.
    assert Settings(public_base_url=HTTPS, demo=True).secret_key == ""
    assert Settings(var_dir=tmp_path).secret_key == ""


def test_generated_keys_and_their_folder_are_the_owner_s_alone(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    key = settings.hmac_key()
    Keyring.from_settings(settings)
    assert mode(tmp_path / "var") == 0o700
    assert mode(tmp_path / "var" / "secret.key") == 0o600
    assert mode(tmp_path / "var" / "sealing.keys") == 0o600
    # Created once: the next process reads the same key.
    assert Settings(var_dir=tmp_path / "var").hmac_key() == key
    assert sorted(p.name for p in (tmp_path / "var").iterdir()) == ["sealing.keys", "secret.key"]


def test_processes_racing_to_create_a_key_all_read_the_same_whole_key(tmp_path: Path) -> None:
    path = tmp_path / "var" / "secret.key"
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda n: create_private(path, f"key-{n}" * 20), range(32)))
    assert len(keys) == 1 and next(iter(keys)) == path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no temporary left


def test_the_sqlite_database_and_its_wal_are_the_owner_s_alone(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/data/qianbao.db", var_dir=tmp_path)
    migrate.upgrade(settings)
    database = Database(settings)
    try:
        with database.engine.begin() as connection:
            connection.execute(text("CREATE TABLE probe (x INTEGER)"))
        assert mode(tmp_path / "data") == 0o700
        assert mode(tmp_path / "data" / "qianbao.db") == 0o600
        assert mode(tmp_path / "data" / "qianbao.db-wal") == 0o600
    finally:
        database.dispose()
    SqliteStore(tmp_path / "sandbox" / "bank.db")
    assert mode(tmp_path / "sandbox" / "bank.db") == 0o600


def test_a_refused_setting_never_echoes_the_keys(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("from-a-file")
    with pytest.raises(ValueError, match="both set") as caught:
        Settings(secret_key="do-not-print-me", secret_key_file=tmp_path / "key")
    assert "do-not-print-me" not in str(caught.value)


def test_a_key_is_created_whole_where_hard_links_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(source: object, target: object) -> None:
        raise PermissionError("no hard links here")

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "var" / "secret.key"
    assert create_private(path, "the-key") == "the-key"
    assert mode(path) == 0o600
    assert create_private(path, "another") == "the-key"
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]


@pytest.mark.parametrize(
    "name",
    ["session_idle_seconds", "staff_api_token_idle_seconds", "merchant_session_idle_seconds"],
)
def test_an_idle_limit_must_outlast_the_touch_interval(name: str) -> None:
    # Last use is written once a touch interval: an idle limit within it would end a
    # session used every 59 seconds.
    with pytest.raises(ValueError, match=f"QIANBAO_{name.upper()} must be longer"):
        Settings.model_validate({name: 60, "session_touch_interval_seconds": 60})
    longer = Settings.model_validate({name: 61, "session_touch_interval_seconds": 60})
    assert getattr(longer, name) == 61
