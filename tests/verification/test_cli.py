"""The back-office commands: create staff with a role, purge old images, rotate the key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from qianbao import cli
from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.identity import staff
from qianbao.jobs import default_jobs
from qianbao.settings import Settings, get_settings
from qianbao.verification import liveness
from qianbao.verification.models import VerificationImage
from tests.verification.flow_helpers import CHALLENGE, accept_synthetic_clips, clip, new_person
from tests.verification.test_flow import face_try, to_face_step


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The command line reads its settings from the environment, as in production."""
    monkeypatch.setenv("QIANBAO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("QIANBAO_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("QIANBAO_SECRET_KEY", settings.secret_key)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def run(*args: str) -> str:
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.usefixtures("cli_env")
def test_create_reviewer_then_sign_in(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIANBAO_NEW_STAFF_PASSWORD", "a long reviewer passphrase")
    assert "reviewer mei created" in run("admin", "create-reviewer", "mei", "--name", "Mei")
    token, member = staff.sign_in(db, "mei", "a long reviewer passphrase")
    assert token and member.display_name == "Mei" and member.role == "reviewer"
    taken = CliRunner().invoke(cli.app, ["admin", "create-reviewer", "mei"])
    assert taken.exit_code != 0 and "taken" in taken.output
    weak = CliRunner().invoke(
        cli.app, ["admin", "create-reviewer", "lee"], env={"QIANBAO_NEW_STAFF_PASSWORD": "short"}
    )
    assert weak.exit_code != 0


@pytest.mark.usefixtures("cli_env")
def test_create_staff_takes_the_role(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIANBAO_NEW_STAFF_PASSWORD", "a long staff passphrase")
    made = run("admin", "create-staff", "rio", "--role", "risk_officer")
    assert "risk_officer rio created" in made
    _, member = staff.sign_in(db, "rio", "a long staff passphrase")
    assert member.role == "risk_officer"
    unknown = CliRunner().invoke(cli.app, ["admin", "create-staff", "rex", "--role", "boss"])
    assert unknown.exit_code != 0 and "boss" in unknown.output
    no_role = CliRunner().invoke(cli.app, ["admin", "create-staff", "rex"])
    assert no_role.exit_code != 0  # a role is always chosen, never assumed


@pytest.mark.usefixtures("cli_env")
def test_rotate_key_and_purge(
    db: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(liveness, "new_challenge", lambda rng=None: CHALLENGE)
    accept_synthetic_clips(db.settings)
    person = new_person(db)
    case_id = to_face_step(db, person.id)
    assert face_try(db, person.id, case_id, clip("astronaut")) == "verified"
    with db.engine.connect() as connection:
        before = set(connection.execute(select(VerificationImage.key_id)).scalars())
    output = run("kyc", "rotate-key", "--new-key")
    assert "resealed" in output
    with db.engine.connect() as connection:
        after = set(connection.execute(select(VerificationImage.key_id)).scalars())
    assert len(after) == 1 and after != before
    # The purge is a daily worker job, and a command. The command runs on the real
    # clock, months after the tests' frozen one: the images are past their 30 days.
    assert "purge verification images" in [job.name for job in default_jobs()]
    deleted = int(run("kyc", "purge").split()[0])
    assert deleted == len(clip("astronaut")) + 2  # the frames, the page, the portrait
    with db.engine.connect() as connection:
        assert connection.execute(select(VerificationImage.id)).first() is None
    assert run("kyc", "purge").startswith("0 images")
