"""``qianbao chip read`` where no PC/SC is installed: the simulated chip stands in for
the reader (the same command through real pcscd is in test_emulated_passport.py), the
server is live."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner, Result

from qianbao import cli
from qianbao.chipreader import apdu
from qianbao.chipreader.apdu import PcscTransport, ReaderError
from qianbao.db import Database
from qianbao.verification import trust_store
from tests.api_helpers import api_sign_up
from tests.chipreader.simulated_chip import SimulatedPassport
from tests.chipreader.test_reader import aa_chip, zone_key
from tests.verification.flow_helpers import TODAY, passport


def run(live_server: str, token: str, *extra: str, expiry: str | None = None) -> Result:
    key = zone_key()
    return CliRunner().invoke(
        cli.app,
        [
            "chip",
            "read",
            "--document-number",
            key.document_number,
            "--birth-date",
            key.birth_date,
            "--expiry-date",
            expiry or key.expiry_date,
            "--server",
            live_server,
            *extra,
        ],
        env={"QIANBAO_TOKEN": token},
    )


@pytest.fixture
def token(live_server: str) -> str:
    with httpx.Client(base_url=live_server) as http:
        return str(api_sign_up(http)["token"])  # type: ignore[arg-type]


@pytest.fixture
def card(monkeypatch: pytest.MonkeyPatch) -> SimulatedPassport:
    chip = SimulatedPassport(aa_chip(), zone_key())
    monkeypatch.setattr(PcscTransport, "open", classmethod(lambda cls, reader=0: chip))
    monkeypatch.setattr(SimulatedPassport, "close", lambda self: None, raising=False)
    return chip


def test_the_command_reads_submits_and_says_what_comes_next(
    live_server: str, token: str, card: SimulatedPassport, db: Database
) -> None:
    for der in card.chip.cscas:
        db.run(lambda tx, der=der: trust_store.import_file(tx, der, "test CSCA", today=TODAY))  # type: ignore[misc]
    result = run(live_server, token)
    assert result.exit_code == 0, result.output
    assert "chip opened (BAC)" in result.output
    assert f"accepted: {passport().surname}" in result.output
    assert "face check" in result.output


def test_the_server_s_refusal_is_shown_in_the_person_s_language(
    live_server: str, token: str, card: SimulatedPassport
) -> None:
    result = run(live_server, token, "--language", "zh-Hans")  # no CSCA trusted
    assert result.exit_code == 1
    assert "refused (chip.unknown_csca)" in result.output
    assert any("\u4e00" <= ch <= "\u9fff" for ch in result.output)


def test_a_bad_token_and_a_mistyped_date_are_explained(
    live_server: str, card: SimulatedPassport
) -> None:
    no_entry = run(live_server, "not-a-token")
    assert no_entry.exit_code == 1 and "refused (" in no_entry.output
    typo = run(live_server, "x", expiry="31-12-30")
    assert typo.exit_code == 2 and "expiry date" in typo.output


def test_no_reader_is_a_clear_message(live_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def absent(cls: object, reader: int = 0) -> None:
        raise ReaderError("No smart card reader number 0 (found 0).")

    monkeypatch.setattr(PcscTransport, "open", classmethod(absent))
    result = run(live_server, "x")
    assert result.exit_code == 1 and "reader: No smart card reader" in result.output


def test_without_pyscard_the_command_says_what_to_install(
    live_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apdu, "pcsc_readers", None)  # the server's install: no reader extra
    result = run(live_server, "x")
    assert result.exit_code == 1 and "pip install 'qianbao[reader]'" in result.output
