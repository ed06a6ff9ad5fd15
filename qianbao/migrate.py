"""Bring a database to the newest schema with Alembic (run on ``serve`` and ``db upgrade``).

The migrations ship inside the package (``qianbao/migrations``), and Alembic is configured
here in code rather than by an ``alembic.ini`` beside the sources, so an installed wheel
migrates its database from wherever it is installed.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from qianbao.private_files import touch_private
from qianbao.settings import Settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # One folder of versions, so the separator never matters; Alembic warns when unset.
    config.set_main_option("path_separator", "os")
    return config


def alembic_config(settings: Settings) -> Config:
    config = _config()
    config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    sqlite_path = settings.sqlite_path()
    if sqlite_path is not None:
        touch_private(sqlite_path)  # the owner's alone (0600) before SQLite creates it
    command.upgrade(alembic_config(settings), revision)


def head() -> str:
    """The newest revision this code ships."""
    newest = ScriptDirectory.from_config(_config()).get_current_head()
    assert newest is not None, "the package ships no migrations"
    return newest


def current(settings: Settings) -> str | None:
    """The revision the database is at (None: never migrated). Reads, never writes, and
    never creates a SQLite file that is not there."""
    sqlite_path = settings.sqlite_path()
    if sqlite_path is not None and not sqlite_path.exists():
        return None
    engine = create_engine(settings.database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
