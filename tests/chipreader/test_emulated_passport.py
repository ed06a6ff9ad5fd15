"""The reader over real PC/SC: Debian's ``pcscd`` with vsmartcard's virtual reader
(``vpcd``), started by the test with a reader configuration of its own.

* vsmartcard's ePass emulator (``vicc -t ePass``, loaded with a passport built by
  chip_vectors, see vicc_epass.py) checks the reader's BAC: the keys from the printed
  zone, the cryptogram and its MAC; the reader checks the emulator's answer and agrees
  the session keys. The emulator's secure messaging is Python 2 code that answers every
  wrapped command with 6988 under Python 3 (str and bytes mixed), its responses carry no
  DO99 status (which Doc 9303 requires), and it has no active or chip authentication,
  so the rest is tested against the project's simulator:
* ``qianbao chip read`` itself, as a person runs it, reads the project's simulated
  passport plugged into vpcd (PACE from EF.CardAccess, AES secure messaging, every file,
  active authentication) and submits it to a live server, which accepts it; a mistyped
  zone fails PACE's mutual authentication. The emulator has no EF.CardAccess, so there
  the reader falls back to BAC.
"""

from __future__ import annotations

import contextlib
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

from qianbao.chipreader.apdu import PcscTransport, ReaderError, pcsc_available
from qianbao.chipreader.bac import MrzKey
from qianbao.chipreader.passport import Passport
from qianbao.db import Database
from qianbao.verification import face, trust_store
from tests.api_helpers import api_sign_up
from tests.chipreader.simulated_chip import SimulatedPassport, ef_com, plugged_into_vpcd
from tests.verification.chip_vectors import Chip, build_chip
from tests.verification.flow_helpers import TODAY, page_image, passport

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
VICC_MODULES = Path("/usr/lib/python3/site-packages/virtualsmartcard/virtualsmartcard")
PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
LAUNCHER = Path(__file__).with_name("vicc_epass.py")
PACE_AES_128 = "0.4.0.127.0.7.2.2.4.2.2"

pytestmark = [
    pytest.mark.chipreader,
    pytest.mark.skipif(
        shutil.which("pcscd") is None or not VPCD_DRIVER.exists() or not VICC_MODULES.exists(),
        reason="needs Debian's pcscd, vsmartcard-vpcd and vsmartcard-vpicc",
    ),
    pytest.mark.skipif(not pcsc_available(), reason="needs pyscard (the 'reader' extra)"),
]


def _pcscd_running() -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(PCSCD_SOCKET))
        except OSError:
            return False
    return True


def _free_port_pair() -> int:
    """A port P with P and P + 1 free: vpcd's two readers listen on both."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port: int = first.getsockname()[1]
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


def _wait_for(condition: object, what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise TimeoutError(what)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def vpcd_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """pcscd in the foreground with a vpcd reader pair on a port of the test's own."""
    if _pcscd_running():
        pytest.skip("another pcscd is running: the test needs its own reader configuration")
    port = _free_port_pair()
    config = tmp_path_factory.mktemp("reader.conf.d")
    (config / "vpcd").write_text(
        'FRIENDLYNAME "Virtual PCD"\n'
        f"DEVICENAME /dev/null:0x{port:04X}\n"
        f"LIBPATH {VPCD_DRIVER}\n"
        f"CHANNELID 0x{port:04X}\n"
    )
    log = (config / "pcscd.log").open("wb")
    daemon = subprocess.Popen(
        ["pcscd", "--foreground", "--config", str(config)], stdout=log, stderr=log
    )
    try:
        _wait_for(lambda: _listening(port) and _listening(port + 1), "vpcd did not listen")
        yield port
    finally:
        daemon.terminate()
        daemon.wait(10)
        log.close()


def _connect(reader: int) -> PcscTransport:
    found: list[PcscTransport] = []

    def attempt() -> bool:
        with contextlib.suppress(ReaderError):
            found.append(PcscTransport.open(reader))
        return bool(found)

    _wait_for(attempt, f"no card on reader {reader}")
    return found[0]


def zone_key(seed: int = 7) -> MrzKey:
    line2 = passport(seed).lines()[1]
    return MrzKey.parse(line2[0:9].rstrip("<"), line2[13:19], line2[21:27])


def chip_for(seed: int = 7) -> Chip:
    return build_chip(passport(seed), face.cut_portrait(page_image(seed)))


@pytest.fixture
def emulated_epass(vpcd_port: int, tmp_path: Path) -> Iterator[None]:
    """vsmartcard's ePass emulator with our passport's files, on vpcd's first reader."""
    chip = chip_for()
    files = tmp_path / "epass"
    files.mkdir()
    (files / "COM").write_bytes(ef_com(list(chip.files.dgs)))
    (files / "SOD").write_bytes(chip.files.sod)
    for number, content in chip.files.dgs.items():
        (files / f"DG{number}").write_bytes(content)
    log = (tmp_path / "vicc.log").open("wb")
    emulator = subprocess.Popen(
        ["/usr/bin/python3", str(LAUNCHER), str(vpcd_port), str(files)], stdout=log, stderr=log
    )
    try:
        yield
    finally:
        emulator.terminate()
        emulator.wait(10)
        log.close()


def test_the_emulated_epass_opens_with_the_zone_s_key_and_refuses_another(
    emulated_epass: None,
) -> None:
    transport = _connect(0)
    right = zone_key()
    wrong = MrzKey(right.document_number, right.birth_date, "301231")
    with pytest.raises(ReaderError, match="refused the key"):
        Passport.open(transport, wrong)
    opened = Passport.open(transport, right)  # the emulator checked our MAC and cryptogram
    assert opened.access == "BAC"  # no EF.CardAccess on the emulator
    assert opened.channel.keys.cipher == "3DES" and opened.channel.ssc > 0
    transport.close()


# --- `qianbao chip read` against a live server ----------------------------------------------


def test_qianbao_chip_read_reads_a_passport_and_the_server_accepts_it(
    vpcd_port: int, live_server: str, db: Database
) -> None:
    chip = chip_for()
    for der in chip.cscas:
        db.run(lambda tx, der=der: trust_store.import_file(tx, der, "test CSCA", today=TODAY))  # type: ignore[misc]
    card = SimulatedPassport(chip, zone_key(), pace=PACE_AES_128)
    with httpx.Client(base_url=live_server) as http:
        token = api_sign_up(http)["token"]  # type: ignore[arg-type]
    key = zone_key()
    command = [
        sys.executable, "-m", "qianbao", "chip", "read",
        "--document-number", key.document_number,
        "--birth-date", key.birth_date,
        "--expiry-date", key.expiry_date,
        "--server", live_server, "--reader", "1",
    ]  # fmt: skip
    env = {**os.environ, "QIANBAO_TOKEN": token}
    with plugged_into_vpcd(card, vpcd_port + 1):  # vpcd's second reader: reader 1
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=120, check=False
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "chip opened (PACE)" in done.stdout and "PACE" in card.log
    assert "chip answered (active_authentication)" in done.stdout
    assert "'confirm'" in done.stdout and passport().surname in done.stdout
    assert "SM 88" in card.log  # the chip signed the server's challenge
    with httpx.Client(base_url=live_server, headers={"Authorization": f"Bearer {token}"}) as http:
        case = http.get("/api/v1/verification").json()
    assert case["method"] == "passport_chip" and case["status"] == "confirm"


def test_qianbao_chip_read_says_why_when_the_zone_is_mistyped(
    vpcd_port: int, live_server: str, db: Database
) -> None:
    card = SimulatedPassport(chip_for(), zone_key(), pace=PACE_AES_128)
    with httpx.Client(base_url=live_server) as http:
        token = api_sign_up(http)["token"]  # type: ignore[arg-type]
    key = zone_key()
    command = [
        sys.executable, "-m", "qianbao", "chip", "read",
        "--document-number", key.document_number,
        "--birth-date", key.birth_date, "--expiry-date", "301231",
        "--server", live_server, "--reader", "1", "--token", token,
    ]  # fmt: skip
    with plugged_into_vpcd(card, vpcd_port + 1):
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert "refused the key" in done.stderr and "expiry date" in done.stderr
    assert "86" in card.log and "PACE" not in card.log  # refused at the token check
