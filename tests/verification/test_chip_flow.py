""" "Passport chip & face" end to end: trust import, the chip files with active
authentication against the case's own challenge, then confirm and face as for "Verify
face"; the level reached is passport_chip (Class II)."""

from __future__ import annotations

import dataclasses
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
from qianbao.verification.chip_authentication import Challenge
from tests.api_helpers import api_sign_up, bearer
from tests.conftest import FrozenClock
from tests.verification.chip_vectors import (
    CA_AES_128,
    Chip,
    answer_chip_authentication,
    build_chip,
    document_signer,
    genuine_chip,
    sign_aa,
)
from tests.verification.flow_helpers import (
    CHALLENGE,
    TODAY,
    accept_synthetic_clips,
    clip,
    new_person,
    page_image,
    passport,
)
from tests.verification.passport_pages import encode
from tests.verification.test_cli import cli_env  # noqa: F401 - a fixture


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


def aa(signature: bytes | None) -> service.ChipProofs:
    return service.ChipProofs(aa_signature=signature)


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
    read = service.submit_chip(db, person.id, case.id, files, aa(answer))
    assert read.status == "confirm" and read.document is not None
    assert read.document.document_number == passport().document_number
    db.run(lambda tx: service.confirm_document(tx, person.id, case.id))
    db.run(lambda tx: service.issue_challenge(tx, person.id, case.id))
    assert service.submit_face(db, person.id, case.id, clip("astronaut")).status == "verified"
    assert db.run(lambda tx: identity.get_account(tx, person.id)).verification_level == (
        "passport_chip"
    )
    assert db.run(lambda tx: standing(tx, person.id)).tier == "class_ii"


def test_a_chip_signed_under_another_country_passes_only_as_a_configured_exception(
    db: Database,
) -> None:
    british = dataclasses.replace(passport(), nationality="GBR")
    signer = document_signer("rsa", country="DE")
    chip = build_chip(british, face.cut_portrait(page_image()), signer=signer, country="DE")
    key = chip.aa_private_key
    assert key is not None
    trust(db, chip.cscas)  # the German CSCA, as a full master list would hold it
    person = new_person(db)
    case = db.run(lambda tx: service.start_case(tx, person.id, "passport_chip"))

    def submit() -> service.CaseView:
        current = db.run(lambda tx: service.current_case(tx, person.id))
        assert current is not None
        answer = sign_aa(key, bytes.fromhex(current.aa_challenge or ""))
        return service.submit_chip(db, person.id, case.id, chip.files, aa(answer))

    assert refused(submit).code == "chip.signer_country"
    db.settings.chip_signer_country_exceptions = ["GBR:DE"]
    assert submit().status == "confirm"


def test_a_cloned_chip_and_an_unknown_country_are_refused(db: Database) -> None:
    files, cscas, key = chip_for()
    _, _, other_key = chip_for()  # another chip's key: what a copy without it would use
    person = new_person(db)
    case = db.run(lambda tx: service.start_case(tx, person.id, "passport_chip"))
    challenge = bytes.fromhex(case.aa_challenge or "")
    unknown = refused(
        lambda: service.submit_chip(db, person.id, case.id, files, aa(sign_aa(key, challenge)))
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
            aa(sign_aa(other_key, bytes.fromhex(fresh.aa_challenge or ""))),
        )
    )
    assert clone.code == "chip.active_auth"
    replay = refused(
        lambda: service.submit_chip(db, person.id, case.id, files, aa(sign_aa(key, challenge)))
    )
    assert replay.code == "chip.active_auth"  # an answer to an old challenge
    silent = refused(lambda: service.submit_chip(db, person.id, case.id, files, aa(None)))
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


# --- a chip with DG14 and no DG15: chip authentication, relayed by the phone -------------


def ca_chip_for(seed: int = 7) -> Chip:
    portrait = face.cut_portrait(page_image(seed))
    return build_chip(
        passport(seed), portrait, active_authentication=False, chip_authentication=CA_AES_128
    )


def ca_answer(chip: Chip, view: service.ChipAuthenticationView) -> bytes:
    challenge = Challenge(
        view.protocol_oid,
        view.key_id,
        bytes.fromhex(view.ephemeral_public_key),
        bytes.fromhex(view.command),
    )
    assert chip.ca_private_key is not None
    return answer_chip_authentication(chip.ca_private_key, chip.files.dgs[1], challenge)


def test_a_chip_without_dg15_proves_itself_by_chip_authentication(db: Database) -> None:
    chip = ca_chip_for()
    assert 15 not in chip.files.dgs
    trust(db, chip.cscas)
    person = new_person(db)
    case = db.run(lambda tx: service.start_case(tx, person.id, "passport_chip"))
    dgs = chip.files.dgs
    view = service.start_chip_authentication(db, person.id, case.id, dgs[14], dgs[1])
    assert view.protocol_oid == CA_AES_128 and view.key_id == 1
    proofs = service.ChipProofs(ca_response=ca_answer(chip, view))
    read = service.submit_chip(db, person.id, case.id, chip.files, proofs)
    assert read.status == "confirm"
    db.run(lambda tx: service.confirm_document(tx, person.id, case.id))
    db.run(lambda tx: service.issue_challenge(tx, person.id, case.id))
    assert service.submit_face(db, person.id, case.id, clip("astronaut")).status == "verified"
    level = db.run(lambda tx: identity.get_account(tx, person.id)).verification_level
    assert level == "passport_chip"


def test_chip_authentication_refuses_silence_clones_replays_and_late_answers(
    db: Database, clock: FrozenClock
) -> None:
    chip = ca_chip_for()
    trust(db, chip.cscas)
    person = new_person(db)
    case = db.run(lambda tx: service.start_case(tx, person.id, "passport_chip"))
    dgs = chip.files.dgs

    def submit(response: bytes | None) -> str:
        proofs = service.ChipProofs(ca_response=response)
        return refused(lambda: service.submit_chip(db, person.id, case.id, chip.files, proofs)).code

    assert submit(None) == "chip.chip_auth_missing"  # a chip that can prove it must
    view = service.start_chip_authentication(db, person.id, case.id, dgs[14], dgs[1])
    genuine = ca_answer(chip, view)
    clone = ca_chip_for()  # the same passport's files on a chip with another key
    clone_challenge = Challenge(
        view.protocol_oid,
        view.key_id,
        bytes.fromhex(view.ephemeral_public_key),
        bytes.fromhex(view.command),
    )
    assert clone.ca_private_key is not None
    forged = answer_chip_authentication(
        clone.ca_private_key, dgs[1], clone_challenge, check_command=False
    )
    assert submit(forged) == "chip.chip_auth"
    assert submit(genuine) == "chip.chip_auth_expired"  # the challenge was used up
    late = service.start_chip_authentication(db, person.id, case.id, dgs[14], dgs[1])
    clock.advance(seconds=db.settings.verification_chip_auth_ttl_seconds + 1)
    assert submit(ca_answer(chip, late)) == "chip.chip_auth_expired"
    assert db.run(lambda tx: service.current_case(tx, person.id)).status == "passport"  # type: ignore[union-attr]


def test_a_dg14_without_chip_authentication_gets_no_challenge(db: Database) -> None:
    files, _, _ = chip_for()
    person = new_person(db)
    case = db.run(lambda tx: service.start_case(tx, person.id, "passport_chip"))
    empty_dg14 = b"\x6e\x02\x31\x00"  # SecurityInfos with nothing in it
    with pytest.raises(QianbaoError) as caught:
        service.start_chip_authentication(db, person.id, case.id, empty_dg14, files.dgs[1])
    assert caught.value.code == "chip.chip_auth_unsupported"


def test_the_api_relays_chip_authentication_and_compares_the_printed_page(
    client: TestClient,
) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    accept_synthetic_clips(db.settings)
    chip = ca_chip_for()
    trust(db, chip.cscas)
    auth = bearer(api_sign_up(client)["token"])
    case = client.post("/api/v1/verification/passport-chip", headers=auth).json()
    base = f"/api/v1/verification/passport-chip/{case['id']}"
    dgs = chip.files.dgs
    asked = client.post(
        base + "/chip-authentication",
        headers=auth,
        files={"dg14": ("EF.DG14", dgs[14]), "dg1": ("EF.DG1", dgs[1])},
    )
    assert asked.status_code == 200, asked.text
    body = asked.json()
    view = service.ChipAuthenticationView(
        body["protocol"],
        body["key_id"],
        body["ephemeral_public_key"],
        body["command"],
        body["expires_at"],
    )
    upload = {
        "sod": ("EF.SOD", chip.files.sod),
        **{f"dg{n}": (f"EF.DG{n}", data) for n, data in dgs.items()},
        "page": ("page.jpg", encode(page_image(8), "JPEG", 92)),  # another passport's page
    }
    mismatch = client.post(
        base + "/chip",
        headers=auth,
        files=upload,
        data={"ca_response": ca_answer(chip, view).hex()},
    )
    assert mismatch.status_code == 422 and mismatch.json()["code"] == "chip.mrz_mismatch"
    body = client.post(
        base + "/chip-authentication",
        headers=auth,
        files={"dg14": ("EF.DG14", dgs[14]), "dg1": ("EF.DG1", dgs[1])},
    ).json()
    view = service.ChipAuthenticationView(
        body["protocol"],
        body["key_id"],
        body["ephemeral_public_key"],
        body["command"],
        body["expires_at"],
    )
    upload["page"] = ("page.jpg", encode(page_image(7), "JPEG", 92))  # this passport's page
    read = client.post(
        base + "/chip",
        headers=auth,
        files=upload,
        data={"ca_response": ca_answer(chip, view).hex()},
    )
    assert read.status_code == 200, read.text
    assert read.json()["status"] == "confirm"


# --- a phone cannot skip the chip's clone check --------------------------------------------


def test_a_reading_that_leaves_out_the_chip_s_proof_files_is_refused(db: Database) -> None:
    """The finding: a copied chip passed when the phone simply did not send DG15 (or
    DG14); the SOD lists them, so leaving one out is refused, whatever else is right."""
    files, cscas, _ = chip_for()  # a chip with DG15 (active authentication)
    trust(db, cscas)
    person = new_person(db)
    case = db.run(lambda tx: service.start_case(tx, person.id, "passport_chip"))
    without_dg15 = ChipFiles(files.sod, {n: d for n, d in files.dgs.items() if n != 15})
    skipped = refused(lambda: service.submit_chip(db, person.id, case.id, without_dg15, aa(None)))
    assert (skipped.code, skipped.details) == ("chip.missing_proof", {"data_group": 15})

    chip = ca_chip_for()  # a chip with DG14 (chip authentication) and no DG15
    trust(db, chip.cscas)
    without_dg14 = ChipFiles(chip.files.sod, {n: d for n, d in chip.files.dgs.items() if n != 14})
    dropped = refused(
        lambda: service.submit_chip(db, person.id, case.id, without_dg14, service.ChipProofs())
    )
    assert (dropped.code, dropped.details) == ("chip.missing_proof", {"data_group": 14})
    assert db.run(lambda tx: service.current_case(tx, person.id)).status == "passport"  # type: ignore[union-attr]


def test_a_chip_that_can_prove_nothing_is_sent_to_the_photo_page(db: Database) -> None:
    """A chip whose SOD lists neither DG14 nor DG15 passes passive authentication, yet a
    copy of it could not be told apart: it earns no chip level, and the person is told to
    use the photo page (the same rights) instead."""
    portrait = face.cut_portrait(page_image(7))
    chip = build_chip(passport(7), portrait, active_authentication=False)
    assert not {14, 15} & set(chip.files.dgs)
    trust(db, chip.cscas)
    person = new_person(db)
    case = db.run(lambda tx: service.start_case(tx, person.id, "passport_chip"))
    plain = refused(
        lambda: service.submit_chip(db, person.id, case.id, chip.files, service.ChipProofs())
    )
    assert (plain.code, plain.status) == ("chip.no_clone_check", 422)
    assert "photo page" in plain.localized_message()
