"""The operator's trust-store commands: `qianbao trust import-master-list` and
`qianbao trust import-crl`, and what a chip check sees after them."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from typer.testing import CliRunner, Result

from qianbao import cli
from qianbao.db import Database
from qianbao.errors import InvalidInput
from qianbao.settings import get_settings
from qianbao.verification import trust_store
from qianbao.verification.chip import verify_chip
from qianbao.verification.trust import fingerprint
from tests.verification import chip_vectors as vectors
from tests.verification.passport_pages import TODAY, random_passport
from tests.verification.test_cli import cli_env  # noqa: F401 - a fixture


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli.app, [str(arg) for arg in args])


def said(result: Result) -> str:
    """The output on one line, without the frame typer draws around an error."""
    return " ".join(result.output.replace("│", " ").split())


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def stored(db: Database) -> list[tuple[str, str | None]]:
    return sorted((row.kind, row.country) for row in db.run(trust_store.anchors))


def british_chip() -> vectors.Chip:
    passport = dataclasses.replace(random_passport(random.Random(8)), nationality="GBR")
    return vectors.build_chip(passport, active_authentication=False)


GERMAN = vectors.csca("rsa", country="DE")
BRITISH = vectors.csca("rsa", country="GB")
FRENCH = vectors.csca("ec", country="FR")


@pytest.mark.usefixtures("cli_env")
def test_a_master_list_and_a_crl_import_and_a_revoked_signer_is_refused(
    db: Database, tmp_path: Path
) -> None:
    german_pem = write(tmp_path / "de.pem", GERMAN.cert.public_bytes(Encoding.PEM))
    assert invoke("trust", "import", german_pem).exit_code == 0
    listed = vectors.master_list([GERMAN, BRITISH, FRENCH], GERMAN)
    result = invoke("trust", "import-master-list", write(tmp_path / "list.ml", listed))
    assert result.exit_code == 0, result.output
    assert "2 CSCA certificates, 0 CRLs added (1 already known)" in result.output
    assert stored(db) == [("csca", "DE"), ("csca", "FR"), ("csca", "GB")]
    chip = british_chip()
    assert chip.signer is not None
    passed = verify_chip(chip.files, db.run(trust_store.load), today=TODAY)
    assert passed.passive.country_signer_country == "GB"

    revocation = vectors.crl(BRITISH, [chip.signer.cert.serial_number])
    result = invoke("trust", "import-crl", write(tmp_path / "gb.crl", revocation))
    assert result.exit_code == 0, result.output
    assert "0 CSCA certificates, 1 CRLs added" in result.output
    with pytest.raises(InvalidInput) as caught:
        verify_chip(chip.files, db.run(trust_store.load), today=TODAY)
    assert caught.value.code == "chip.ds_revoked"


@pytest.mark.usefixtures("cli_env")
def test_refused_files_import_nothing(db: Database, tmp_path: Path) -> None:
    assert invoke("trust", "import", write(tmp_path / "de.der", GERMAN.der)).exit_code == 0
    before = stored(db)
    rogue = vectors.csca("rsa", "-rogue", country="GB")
    cases = [
        (
            "import-master-list",
            vectors.master_list([BRITISH], GERMAN, tamper=True),
            "The master list's signature does not verify",
        ),
        # Signed under a CSCA nobody trusts, and one that vouches only for itself.
        (
            "import-master-list",
            vectors.master_list([BRITISH], rogue),
            "not signed by a signer that a trusted country signing certificate issued",
        ),
        (
            "import-master-list",
            vectors.master_list([rogue, BRITISH], rogue),
            "Nothing was imported",
        ),
        (
            "import-crl",
            vectors.crl(BRITISH, [1]),
            "not signed by any country signing certificate in the trust store",
        ),
        ("import-master-list", vectors.crl(GERMAN, [1]), "not an ICAO CSCA master list"),
        (
            "import-crl",
            vectors.master_list([BRITISH], GERMAN),
            "not a certificate revocation list",
        ),
    ]
    for number, (command, data, message) in enumerate(cases):
        result = invoke("trust", command, write(tmp_path / f"file{number}", data))
        assert result.exit_code != 0, (command, message)
        assert message in said(result), said(result)
    # The command that takes any kind of file refuses a self-anchored list the same way.
    self_signed = write(tmp_path / "self.ml", vectors.master_list([rogue], rogue))
    result = invoke("trust", "import", self_signed)
    assert result.exit_code != 0
    assert "not signed by a signer that a trusted" in said(result)
    assert stored(db) == before == [("csca", "DE")]


@pytest.mark.usefixtures("cli_env")
def test_a_configured_fingerprint_anchors_the_first_master_list(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = write(tmp_path / "list.ml", vectors.master_list([GERMAN, BRITISH], GERMAN))
    assert invoke("trust", "import-master-list", listed).exit_code != 0
    assert stored(db) == []
    # As the publisher prints it: upper-case pairs with colons.
    printed = ":".join(f"{byte:02X}" for byte in bytes.fromhex(fingerprint(GERMAN.der)))
    monkeypatch.setenv("QIANBAO_CHIP_MASTER_LIST_ANCHORS", printed)
    get_settings.cache_clear()
    result = invoke("trust", "import-master-list", listed)
    assert result.exit_code == 0, result.output
    assert stored(db) == [("csca", "DE"), ("csca", "GB")]
