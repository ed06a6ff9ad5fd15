"""prometheus-client's multiprocess mode, chosen before prometheus-client is imported.

prometheus-client decides at import whether values live in this process's memory or in
files under ``PROMETHEUS_MULTIPROC_DIR`` that every process of the server writes and a
scrape adds up. So this module imports nothing of it: ``qianbao serve`` calls ``prepare``
before anything that counts is imported, and the worker processes it starts inherit the
variable.
"""

from __future__ import annotations

import os
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(setting: Path | None, var_dir: Path, workers: int) -> Path | None:
    """Choose the folder (the setting, else the environment's, else ``var_dir/metrics``
    when there are several workers), empty it of a previous run's values, and export it.
    None: single-process mode."""
    given = setting or (Path(os.environ[MULTIPROC_ENV]) if os.environ.get(MULTIPROC_ENV) else None)
    folder = given or (var_dir / "metrics" if workers > 1 else None)
    if folder is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    # Files left by processes of an earlier run would be added to this run's values.
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder
