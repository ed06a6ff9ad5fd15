""" "Passport chip & face" end to end: trust import, the chip files with active
authentication against the case's own challenge, then confirm and face as for "Verify
face"; the level reached is passport_chip (Class II)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from qianbao import cli
from qianbao.db import Database
from qianbao.errors import QianbaoError
from qianbao.identity import service as identity
from qianbao.standing import standing
from qianbao.verification import face, liveness, service, trust_store
from qianbao.verification.chip import ChipFiles
from tests.api_helpers import api_sign_up, bearer
from tests.verification.chip_vectors import genuine_chip, sign_aa
from tests.verification.flow_helpers import (
    CHALLENGE,
    TODAY,
    accept_synthetic_clips,
    clip,
    new_person,
    page_image,
    passport,
)
from tests.verification.test_cli import cli_env  # noqa: F401 - a fixture
from tests.web.test_pages import csrf, sign_up_by_form


@pytest.fixture(autouse=True)
def fixed_challenge(monkeypatch: pytest.MonkeyPatch, db: Database) -> None:
    monkeypatch.setattr(liveness, "new_challenge", lambda rng=None: CHALLENGE)
    accept_synthetic_clips(db.settings)


def chip_for(seed: int = 7) -> tuple[ChipFiles, list[bytes], object]:
    portrait = face.cut_portrait(page_image(seed))
    return genuine_chip(passport(seed), portrait)


def trust(db: Database, cscas: list[bytes]) -> None:
    for der in cscas:
        db.run(lambda tx, der=der: trust_store.import_file(tx, der, "test CSCA", today=TODAY))


def refused(attempt: object) -> QianbaoError:
    with pytest.raises(QianbaoError) as caught:
        attempt()  # type: ignore[operator]
    return caught.value


def test_a_genuine_chip_and_a_live_face_verify_at_the_chip_level(db: Database) -> None:
    files, cscas, key = chip_for()
    trust(db, cscas)
    person = new_person(db)
    case = db.run(lambda tx: service.start_case(tx, person.id, "passport_chip"))
    assert case.method == "passport_chip" and case.aa_challenge and len(case.aa_challenge) == 16
    answer = sign_aa(key, bytes.fromhex(case.aa_challenge))  # type: ignore[arg-type]
    read = service.submit_chip(db, person.id, case.id, files, answer)
    assert read.status == "confirm" and read.document is not None
    assert read.document.document_number == passport().document_number
    db.run(lambda tx: service.confirm_document(tx, person.id, case.id))
    db.run(lambda tx: service.issue_challenge(tx, person.id, case.id))
    assert service.submit_face(db, person.id, case.id, clip("astronaut")).status == "verified"
    assert db.run(lambda tx: identity.get_account(tx, person.id)).verification_level == (
        "passport_chip"
    )
    assert db.run(lambda tx: standing(tx, person.id)).tier == "class_ii"


def test_a_cloned_chip_and_an_unknown_country_are_refused(db: Database) -> None:
    files, cscas, key = chip_for()
    _, _, other_key = chip_for()  # another chip's key: what a copy without it would use
    person = new_person(db)
    case = db.run(lambda tx: service.start_case(tx, person.id, "passport_chip"))
    challenge = bytes.fromhex(case.aa_challenge or "")
    unknown = refused(
        lambda: service.submit_chip(db, person.id, case.id, files, sign_aa(key, challenge))
    )
    assert unknown.code == "chip.unknown_csca"
    trust(db, cscas)
    fresh = db.run(lambda tx: service.current_case(tx, person.id))
    assert fresh is not None and fresh.aa_challenge != case.aa_challenge  # one per try
    clone = refused(
        lambda: service.submit_chip(
            db,
            person.id,
            case.id,
            files,
            sign_aa(other_key, bytes.fromhex(fresh.aa_challenge or "")),
        )
    )
    assert clone.code == "chip.active_auth"
    replay = refused(
        lambda: service.submit_chip(db, person.id, case.id, files, sign_aa(key, challenge))
    )
    assert replay.code == "chip.active_auth"  # an answer to an old challenge
    silent = refused(lambda: service.submit_chip(db, person.id, case.id, files, None))
    assert silent.code == "chip.active_auth"
    assert db.run(lambda tx: service.current_case(tx, person.id)).status == "passport"  # type: ignore[union-attr]


def test_the_api_takes_the_chip_files(client: TestClient) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    accept_synthetic_clips(db.settings)
    files, cscas, key = chip_for()
    trust(db, cscas)
    auth = bearer(api_sign_up(client)["token"])
    case = client.post("/api/v1/verification/passport-chip", headers=auth).json()
    upload = {
        "sod": ("EF.SOD", files.sod),
        **{f"dg{n}": (f"EF.DG{n}", data) for n, data in files.dgs.items()},
    }
    answer = sign_aa(key, bytes.fromhex(case["aa_challenge"])).hex()  # type: ignore[arg-type]
    read = client.post(
        f"/api/v1/verification/passport-chip/{case['id']}/chip",
        headers=auth,
        files=upload,
        data={"aa_signature": answer},
    )
    assert read.status_code == 200, read.text
    assert read.json()["status"] == "confirm"
    assert read.json()["document"]["document_number"] != passport().document_number  # masked
    tampered = dict(upload, dg1=("EF.DG1", files.dgs[1][:-3] + b"XYZ"))
    case2 = client.post(f"/api/v1/verification/cases/{case['id']}/retake", headers=auth).json()
    bad = client.post(
        f"/api/v1/verification/passport-chip/{case['id']}/chip",
        headers=auth,
        files=tampered,
        data={"aa_signature": sign_aa(key, bytes.fromhex(case2["aa_challenge"])).hex()},  # type: ignore[arg-type]
    )
    assert bad.status_code == 422 and bad.json()["code"] in {"chip.dg_hash", "chip.garbage"}


def test_trust_import_and_list_from_the_command_line(
    db: Database,
    tmp_path: Path,
    cli_env: None,  # noqa: F811
) -> None:
    _, cscas, _ = chip_for()
    pem = tmp_path / "csca.pem"
    pem.write_bytes(
        b"".join(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM) for der in cscas)
    )
    result = CliRunner().invoke(cli.app, ["trust", "import", str(pem)])
    assert result.exit_code == 0, result.output
    assert f"{len(cscas)} CSCA certificates" in result.output
    again = CliRunner().invoke(cli.app, ["trust", "import", str(pem)])
    assert "already known" in again.output and "0 CSCA" in again.output
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a certificate at all")
    refused_import = CliRunner().invoke(cli.app, ["trust", "import", str(junk)])
    assert refused_import.exit_code != 0
    listed = CliRunner().invoke(cli.app, ["trust", "list"])
    assert "csca" in listed.output and f"{len(cscas)} entries" in listed.output


def test_the_chip_page_shows_the_challenge(client: TestClient) -> None:
    sign_up_by_form(client)
    token = csrf(client, "/me/verify/passport-chip")
    page = client.post("/me/verify/passport-chip/start", data={"csrf": token})
    assert 'data-testid="aa-challenge"' in page.text
