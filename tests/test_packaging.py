"""Packaging: the wheel, installed the way the container image installs it, sets itself up.

``docker/install.sh`` (the script the Dockerfile's build stage runs), run on a copy of the
Docker build's context (what .dockerignore lets in), builds the wheel and installs it with
the locked dependencies into a fresh virtual environment; then the
image's own command, ``qianbao serve``, runs from that environment on an empty SQLite
file in a temporary folder, and must migrate it and answer ``/readyz``. Docker itself
cannot run here, so this is the image's install checked without it.

Children run with a bare environment (no ``QIANBAO_*`` from the test run, no path into
this checkout), a fresh HOME and every proxy variable pointing at a closed port, so the
face and liveness models must come from the installed packages: nothing is downloaded.
Run just these with ``pytest -m packaging``; leave them out with ``-m "not packaging"``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parent.parent
UV = Path(sys.executable).parent / "uv"
# The Dockerfile's ENTRYPOINT and CMD, with the address a test may bind.
SERVE = ["serve", "--host", "127.0.0.1"]
NOWHERE = "http://127.0.0.1:9"  # the discard port: a download through it fails at once


def docker_context(target: Path) -> Path:
    """A copy of what ``docker build`` sends: the paths .dockerignore's allow-list lets in."""
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", ".dockerignore is an allow-list: '*' first, then '!path' lines"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for line in lines[1:]:
        if not line.startswith("!"):
            continue
        source = ROOT / line[1:].rstrip("/")
        copy = target / source.relative_to(ROOT)
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, copy, ignore=skip)
        else:
            shutil.copy2(source, copy)
    return target


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment holding the built wheel and the locked dependencies,
    installed from the Docker build's context by the Dockerfile's script."""
    uv = UV if UV.exists() else shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed (make install puts it in .venv)")
    context = docker_context(tmp_path_factory.mktemp("context"))
    venv = tmp_path_factory.mktemp("wheel") / "venv"
    done = subprocess.run(
        ["sh", "docker/install.sh", str(venv), sys.executable],
        cwd=context,
        # The build step may use the network (an index, its certificates), as the image's
        # build stage does; only what runs the installed wheel below is kept off it.
        env={**os.environ, "UV": str(uv)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return venv


def bare_env(home: Path, **settings: str) -> dict[str, str]:
    proxies = dict.fromkeys(("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"), NOWHERE)
    lower = {name.lower(): value for name, value in proxies.items()}
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), **proxies, **lower, **settings}


def run_installed(
    venv: Path, home: Path, *args: str, **settings: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        cwd=home,
        env=bare_env(home, **settings),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(installed: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``qianbao serve`` from the installed wheel, on a fresh SQLite file."""
    port = free_port()
    database = tmp_path / "data" / "qianbao.db"
    env = bare_env(
        tmp_path,
        QIANBAO_DATABASE_URL=f"sqlite:///{database}",
        QIANBAO_VAR_DIR=str(tmp_path / "var"),
    )
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [str(installed / "bin" / "qianbao"), *SERVE, "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}", database
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def wait_ready(base: str, log: Path, seconds: float = 120) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            return httpx.get(f"{base}/readyz", timeout=5)
        except httpx.TransportError:
            time.sleep(0.25)
    raise AssertionError("qianbao serve never answered:\n" + log.read_text()[-4000:])


def test_the_dockerfile_installs_and_runs_as_this_test_does() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "sh docker/install.sh /opt/qianbao" in dockerfile
    assert 'ENTRYPOINT ["qianbao"]' in dockerfile
    assert 'CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]' in dockerfile
    assert "/readyz" in dockerfile.split("HEALTHCHECK", 1)[1]
    assert "\nUSER qianbao\n" in dockerfile  # not root


def test_the_installed_wheel_is_the_one_imported(installed: Path, tmp_path: Path) -> None:
    where = run_installed(
        installed, tmp_path, "python", "-c", "import qianbao; print(qianbao.__file__)"
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.startswith(str(installed)), where.stdout
    version = run_installed(installed, tmp_path, "qianbao", "--version")
    assert version.stdout.strip() == "qianbao 0.1.0", version.stderr


def test_face_and_liveness_models_ship_in_the_packages(installed: Path, tmp_path: Path) -> None:
    load = (
        "from qianbao.verification import face, liveness;"
        "face.load_models(); liveness.load_landmarker().close(); print('loaded')"
    )
    done = run_installed(installed, tmp_path, "python", "-c", load)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.strip().endswith("loaded")


def test_serve_migrates_a_fresh_database_and_is_ready(
    installed: Path, server: tuple[str, Path], tmp_path: Path
) -> None:
    base, database = server
    ready = wait_ready(base, tmp_path / "serve.log")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "database": "sqlite"}
    assert database.exists()
    # Templates and static files came with the wheel.
    assert httpx.get(f"{base}/", timeout=10, follow_redirects=True).status_code == 200
    assert "body" in httpx.get(f"{base}/static/app.css", timeout=10).text

    check = run_installed(
        installed, tmp_path, "qianbao", "db", "check", QIANBAO_DATABASE_URL=f"sqlite:///{database}"
    )
    assert check.returncode == 0, check.stdout + check.stderr
