"""Files only the service's own user may read: generated keys and the SQLite database.

They are created with their final mode (0600, folders 0700) rather than chmod-ed
afterwards, so no other user on the machine can open them even for an instant, and a
key is written under a temporary name and linked into place, so a process that races
another to create it reads the winner's whole key, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> None:
    """Create ``path`` (0700) if it is missing; a folder that exists is the operator's."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)


def touch_private(path: Path) -> None:
    """Create an empty file (0600) if it is missing: SQLite opens it as an empty
    database, and gives its journal and WAL files the same mode."""
    private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


def _write_temporary(path: Path, text: str) -> Path:
    private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return temporary


def create_private(path: Path, text: str) -> str:
    """Write ``text`` to ``path`` (0600) unless the file exists; return what it holds."""
    if not path.exists():
        temporary = _write_temporary(path, text)
        try:
            os.link(temporary, path)  # fails if another process created it first
        except FileExistsError:
            pass
        except OSError:
            # A file system without hard links: a rename is still atomic, but the last
            # of two racing creators wins (`qianbao serve` creates its keys before it
            # starts workers, so only processes started apart could race there).
            if not path.exists():
                os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    return path.read_text()


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (0600)."""
    os.replace(_write_temporary(path, text), path)
