"""Backups of the database and, apart from it, of the keys (DESIGN.md, "Secrets").

The database alone is useless: passport data, names and face images in it are sealed
under the sealing keys, and sessions, codes, card tokens and passport fingerprints are
keyed hashes under the server key. The keys alone open nothing. So they are backed up
by two commands to two places, and a thief of one backup holds nothing readable.

- SQLite: a consistent copy of a live database through SQLite's online backup API
  (writers may go on meanwhile); restore copies it into a database file that does not
  exist yet.
- PostgreSQL: ``pg_dump --format=custom`` and ``pg_restore`` into an empty database.
- Keys: a folder holding ``secret.key`` and ``sealing.keys``, the same files the service
  generates into ``var/`` and the same form ``QIANBAO_SECRET_KEY_FILE`` and
  ``QIANBAO_SEALING_KEYS_FILE`` read, so a restore mounts them or copies them into var/.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from qianbao.private_files import create_private, private_dir, touch_private
from qianbao.settings import Settings

SERVER_KEY_NAME = "secret.key"
SEALING_KEYS_NAME = "sealing.keys"


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


# --- the database ---------------------------------------------------------------------


def backup_database(settings: Settings, target: Path) -> None:
    """Write a consistent copy of the database to ``target`` (readable by its owner only)."""
    if target.exists():
        raise BackupError(f"{target} exists: a backup never overwrites another")
    source = settings.sqlite_path()
    if source is not None:
        _sqlite_copy(source, target)
    elif _is_postgresql(settings):
        touch_private(target)
        _run_pg("pg_dump", settings, ["--format=custom", "--no-owner", f"--file={target}"])
    else:
        raise BackupError(f"no backup for {make_url(settings.database_url).drivername}")


def restore_database(settings: Settings, backup: Path) -> None:
    """Load ``backup`` into the configured database, which must be new and empty."""
    if not backup.is_file():
        raise BackupError(f"{backup}: no such backup file")
    target = settings.sqlite_path()
    if target is not None:
        if target.exists() and target.stat().st_size > 0:
            raise BackupError(f"{target} exists: restore into a fresh data directory")
        _sqlite_copy(backup, target)
    elif _is_postgresql(settings):
        options = ["--no-owner", "--exit-on-error", "--single-transaction", str(backup)]
        _run_pg("pg_restore", settings, options)
    else:
        raise BackupError(f"no restore for {make_url(settings.database_url).drivername}")


def _sqlite_copy(source: Path, target: Path) -> None:
    if not source.is_file():
        raise BackupError(f"{source}: no such database file")
    touch_private(target)  # 0600 before SQLite writes a page into it
    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    writer = sqlite3.connect(target)
    try:
        # The backup API copies one consistent snapshot, even while others write.
        reader.backup(writer)
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{source}: not a SQLite database ({error})") from None
    finally:
        writer.close()
        reader.close()


def _is_postgresql(settings: Settings) -> bool:
    return make_url(settings.database_url).get_backend_name() == "postgresql"


def _run_pg(tool: str, settings: Settings, options: list[str]) -> None:
    url = make_url(settings.database_url)
    # The password goes through the environment, never the command line (ps shows that).
    env = {**os.environ, **({"PGPASSWORD": url.password} if url.password else {})}
    command = [tool, *options, f"--dbname={_libpq_url(url)}"]
    try:
        # No shell: the tool is ours and the URL one argument.
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    except FileNotFoundError:
        raise BackupError(f"{tool} is not installed (PostgreSQL's client tools)") from None
    if done.returncode != 0:
        raise BackupError(f"{tool} failed: {done.stderr.strip()}")


def _libpq_url(url: URL) -> str:
    """The SQLAlchemy URL as libpq reads it: no driver name, no password."""
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False)


# --- the keys ---------------------------------------------------------------------------


def backup_keys(settings: Settings, folder: Path) -> None:
    """Write the server key and the sealing keys into a new ``folder`` (0700, files 0600)."""
    if folder.exists() and any(folder.iterdir()):
        raise BackupError(f"{folder} is not empty: a backup never overwrites another")
    secret, sealing = _current_keys(settings)
    private_dir(folder)
    create_private(folder / SERVER_KEY_NAME, secret + "\n")
    create_private(folder / SEALING_KEYS_NAME, sealing + "\n")


def _current_keys(settings: Settings) -> tuple[str, str]:
    """The keys in use, never fresh ones: a new key would open nothing that exists."""
    secret = settings.secret_key or _read_generated(settings, SERVER_KEY_NAME)
    sealing = settings.sealing_keys or _read_generated(settings, SEALING_KEYS_NAME)
    return secret, sealing


def _read_generated(settings: Settings, name: str) -> str:
    path = Path(settings.var_dir) / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise BackupError(f"no key in the settings and no {path}: nothing to back up") from None


def restore_keys(settings: Settings, folder: Path) -> None:
    """Put backed-up keys where this service generates its own (``var_dir``).

    When the settings give the keys (a variable or a mounted file), they are the place
    to restore to: point ``QIANBAO_SECRET_KEY_FILE`` and ``QIANBAO_SEALING_KEYS_FILE`` at
    the backup's files, or copy their contents into your secret store.
    """
    if settings.secret_key or settings.sealing_keys:
        raise BackupError(
            "the keys are given by the settings: point QIANBAO_SECRET_KEY_FILE and"
            f" QIANBAO_SEALING_KEYS_FILE at {folder / SERVER_KEY_NAME} and"
            f" {folder / SEALING_KEYS_NAME} instead"
        )
    for name in (SERVER_KEY_NAME, SEALING_KEYS_NAME):
        wanted = _read_backup(folder / name)
        target = Path(settings.var_dir) / name
        if create_private(target, wanted + "\n").strip() != wanted:
            raise BackupError(f"{target} holds another key: restore into a fresh data directory")


def _read_backup(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise BackupError(f"{path}: missing from the key backup") from None
    if not text:
        raise BackupError(f"{path} is empty")
    return text
