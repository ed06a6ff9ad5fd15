"""``qianbao backup ...`` and ``qianbao restore ...`` (the work is in qianbao/backup.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from qianbao import backup
from qianbao.settings import get_settings

backup_app = typer.Typer(
    help="Back up the database and, apart from it, the keys.", no_args_is_help=True
)
restore_app = typer.Typer(
    help="Restore a backup into a fresh data directory.", no_args_is_help=True
)

KEEP_APART = (
    "Keep it apart from the database backups: either alone opens nothing, together they"
    " open everything."
)


@backup_app.command("database")
def backup_database(
    target: Annotated[Path, typer.Argument(help="The backup file to write (must not exist).")],
) -> None:
    """A consistent copy of the live database: SQLite's online backup, or pg_dump's custom
    format for PostgreSQL. It holds sealed data only; the keys are backed up apart."""
    _run(lambda: backup.backup_database(get_settings(), target))
    typer.echo(f"database backed up to {target} (the keys are not in it: qianbao backup keys)")


@backup_app.command("keys")
def backup_keys(
    folder: Annotated[Path, typer.Argument(help="A new folder for secret.key and sealing.keys.")],
) -> None:
    """The server key and the sealing keys in use, as two files (0600) in FOLDER (0700)."""
    _run(lambda: backup.backup_keys(get_settings(), folder))
    typer.echo(f"keys written to {folder}. {KEEP_APART}")


@restore_app.command("database")
def restore_database(
    source: Annotated[Path, typer.Argument(help="A file made by `qianbao backup database`.")],
) -> None:
    """Load a backup into the configured database, which must not exist yet (SQLite) or be
    empty (PostgreSQL: create it first). Stop the service meanwhile."""
    _run(lambda: backup.restore_database(get_settings(), source))
    typer.echo("database restored; check it with `qianbao ledger audit`")


@restore_app.command("keys")
def restore_keys(
    folder: Annotated[Path, typer.Argument(help="A folder made by `qianbao backup keys`.")],
) -> None:
    """Put backed-up keys into QIANBAO_VAR_DIR, where the service generates its own. When
    the settings give the keys, point QIANBAO_SECRET_KEY_FILE and
    QIANBAO_SEALING_KEYS_FILE at the folder's files instead."""
    _run(lambda: backup.restore_keys(get_settings(), folder))
    typer.echo("keys restored")


def _run(work: Callable[[], None]) -> None:
    """A BackupError becomes its message on stderr and exit status 1, not a traceback."""
    try:
        work()
    except backup.BackupError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
