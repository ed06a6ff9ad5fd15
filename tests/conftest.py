"""Shared fixtures: a fresh, migrated database per test, on SQLite and (when
``QIANBAO_TEST_DATABASE_URL`` is set) on PostgreSQL; an injected clock; an app client."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from qianbao import migrate
from qianbao.app import create_app
from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.models import metadata
from qianbao.settings import Settings

PG_URL = os.environ.get("QIANBAO_TEST_DATABASE_URL", "")
BACKENDS = ["sqlite", *(["postgresql"] if PG_URL else [])]


def pytest_report_header() -> list[str]:
    if PG_URL:
        return [f"database tests: SQLite and PostgreSQL ({PG_URL})"]
    return ["database tests: SQLite only (set QIANBAO_TEST_DATABASE_URL for PostgreSQL)"]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; each test gets a copy (much faster than migrating)."""
    path = tmp_path_factory.mktemp("template") / "qianbao.db"
    migrate.upgrade(Settings(database_url=f"sqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def pg_migrated() -> str:
    engine = create_engine(PG_URL)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    migrate.upgrade(Settings(database_url=PG_URL))
    return PG_URL


def truncate_pg(url: str) -> None:
    engine = create_engine(url)
    names = ", ".join(table.name for table in metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} CASCADE"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "postgresql":
        url: str = request.getfixturevalue("pg_migrated")
        truncate_pg(url)
        return url
    template: Path = request.getfixturevalue("sqlite_template")
    target = tmp_path / "qianbao.db"
    shutil.copy(template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        var_dir=tmp_path / "var",
        secret_key="test-secret-key-not-for-production",
        demo=True,
        # Cheap argon2id: the tests check behaviour; bench/passwords.py measures the cost.
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
    )


@pytest.fixture
def db(settings: Settings, clock: FrozenClock) -> Iterator[Database]:
    database = Database(settings, clock)
    yield database
    database.dispose()


@pytest.fixture
def client(settings: Settings, clock: FrozenClock) -> Iterator[TestClient]:
    app = create_app(settings, clock)
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client
