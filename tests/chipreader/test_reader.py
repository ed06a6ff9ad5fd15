"""The chip reader against the project's chip simulator: BAC from the printed zone,
secure messaging, the files, the chip's answers, and the submission to the API as the
phone does it; the server's own checks decide. (The emulator tests are in
test_emulated_passport.py.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from asn1crypto import core
from fastapi.testclient import TestClient

from qianbao.chipreader.apdu import ReaderError
from qianbao.chipreader.bac import MrzKey
from qianbao.chipreader.client import ServerRefused, read_and_submit
from qianbao.chipreader.passport import FILES, Passport, listed_groups, signed_groups
from qianbao.db import Database
from qianbao.verification import face, liveness, trust_store
from tests.api_helpers import api_sign_up, bearer
from tests.chipreader.simulated_chip import (
    CARD_ACCESS,
    SimulatedPassport,
    ef_card_access,
    ef_com,
)
from tests.verification.chip_vectors import (
    CA_3DES,
    CA_AES_128,
    Chip,
    aa_key,
    build_chip,
    crl,
    tlv,
)
from tests.verification.flow_helpers import (
    CHALLENGE,
    TODAY,
    accept_synthetic_clips,
    page_image,
    passport,
)


def parity_free(key: bytes) -> bytes:
    """DES ignores each byte's lowest bit; Doc 9303 prints keys with it adjusted."""
    return bytes(b & 0xFE for b in key)


def test_the_bac_keys_are_icao_s_worked_example() -> None:
    # Doc 9303 Part 11, Appendix D.2: L898902C<, born 690806, expires 940623.
    key = MrzKey.parse("L898902C", "690806", "1994-06-23")
    assert key.information() == b"L898902C<369080619406236"
    keys = key.keys()
    assert parity_free(keys.enc) == parity_free(bytes.fromhex("AB94FDECF2674FDFB9B391F85D7F76F2"))
    assert parity_free(keys.mac) == parity_free(bytes.fromhex("7962D9ECE03D1ACD4C76089DCE131543"))
    assert "L898902C" not in repr(key)


@pytest.mark.parametrize(
    ("number", "birth", "expiry"),
    [
        ("L898902C!", "690806", "940623"),
        ("L898902C", "69-08-06", "940623"),
        ("", "690806", "940623"),
        ("1234567890", "690806", "940623"),
        ("L898902C", "690806", "2094-13-01"),
    ],
)
def test_a_mistyped_zone_is_refused_before_the_chip_is_touched(
    number: str, birth: str, expiry: str
) -> None:
    with pytest.raises(ValueError, match=r"document number|birth date|expiry date"):
        MrzKey.parse(number, birth, expiry)


def zone_key(seed: int = 7) -> MrzKey:
    data = passport(seed)
    line2 = data.lines()[1]
    return MrzKey.parse(line2[0:9].rstrip("<"), line2[13:19], line2[21:27])


def aa_chip(seed: int = 7) -> Chip:
    return build_chip(passport(seed), face.cut_portrait(page_image(seed)))


def ca_chip(protocol: str = CA_AES_128, seed: int = 7) -> Chip:
    portrait = face.cut_portrait(page_image(seed))
    return build_chip(
        passport(seed), portrait, active_authentication=False, chip_authentication=protocol
    )


def test_the_reader_reads_every_file_the_chip_lists_byte_for_byte() -> None:
    chip = aa_chip()
    card = SimulatedPassport(chip, zone_key())
    read = Passport.open(card, zone_key()).read_all()
    assert read.sod == chip.files.sod
    assert read.groups == chip.files.dgs  # DG2 (about 13 kB) in many READ BINARYs
    assert sorted(read.groups) == [1, 2, 14, 15] == listed_groups(read.com)
    assert card.log.count("SM B0") > len(chip.files.dgs[2]) // 223  # all under SM


def test_a_group_the_sod_signs_is_read_even_when_ef_com_leaves_it_out(api: TestClient) -> None:
    chip = aa_chip()
    trust(api, chip)
    card = SimulatedPassport(chip, zone_key())
    card.files[FILES["COM"]] = ef_com([1, 2])  # EF.COM is not signed: a sloppy chip
    done = read_and_submit(api, card, zone_key())
    assert done.groups == (1, 2, 14, 15) and done.case["status"] == "confirm"
    assert signed_groups(b"\x77\x03junk") == set()


def test_a_wrong_date_of_birth_does_not_open_the_chip() -> None:
    right = zone_key()
    wrong = MrzKey(right.document_number, "010101", right.expiry_date)
    card = SimulatedPassport(aa_chip(), right)
    with pytest.raises(ReaderError, match="refused the key"):
        Passport.open(card, wrong)
    assert "SM B0" not in card.log


def test_a_chip_answer_altered_on_the_air_ends_the_read() -> None:
    card = SimulatedPassport(aa_chip(), zone_key())
    opened = Passport.open(card, zone_key())
    original = card.transmit

    def flip_a_bit(apdu: bytes):  # type: ignore[no-untyped-def]
        reply = original(apdu)
        return type(reply)(bytes([reply.data[0] ^ 1]) + reply.data[1:], reply.status)

    card.transmit = flip_a_bit  # type: ignore[method-assign]
    with pytest.raises(ReaderError, match="secure messaging"):
        opened.read_all()


# --- read and submit to the API -------------------------------------------------------


@pytest.fixture
def api(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setattr(liveness, "new_challenge", lambda rng=None: CHALLENGE)
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    accept_synthetic_clips(db.settings)
    client.headers.update(bearer(api_sign_up(client)["token"]))
    return client


def trust(client: TestClient, chip: Chip) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    for der in chip.cscas:
        db.run(lambda tx, der=der: trust_store.import_file(tx, der, "test CSCA", today=TODAY))  # type: ignore[misc]


def test_a_chip_with_active_authentication_is_read_and_accepted(api: TestClient) -> None:
    chip = aa_chip()
    trust(api, chip)
    lines: list[str] = []
    done = read_and_submit(api, SimulatedPassport(chip, zone_key()), zone_key(), lines.append)
    assert done.proof == "active_authentication" and done.groups == (1, 2, 14, 15)
    assert done.case["status"] == "confirm"
    assert done.case["document"]["surname"] == passport().surname
    assert any("BAC" in line for line in lines)


@pytest.mark.parametrize("protocol", [CA_AES_128, CA_3DES])
def test_a_chip_without_dg15_proves_itself_by_chip_authentication(
    api: TestClient, protocol: str
) -> None:
    chip = ca_chip(protocol)
    trust(api, chip)
    card = SimulatedPassport(chip, zone_key())
    done = read_and_submit(api, card, zone_key())
    assert done.proof == "chip_authentication" and 15 not in done.groups
    assert done.case["status"] == "confirm"
    assert ("SM 86" in card.log) == (protocol == CA_AES_128)


def test_a_clone_without_the_chip_s_key_is_refused_by_the_server(api: TestClient) -> None:
    chip = aa_chip()
    trust(api, chip)
    clone = SimulatedPassport(chip, zone_key(), aa_key=aa_key("rsa"))
    with pytest.raises(ServerRefused) as refused:
        read_and_submit(api, clone, zone_key())
    assert refused.value.code == "chip.active_auth" and refused.value.status == 422


def test_a_passport_from_an_unknown_country_is_refused_with_the_server_s_reason(
    api: TestClient,
) -> None:
    with pytest.raises(ServerRefused) as refused:
        read_and_submit(api, SimulatedPassport(aa_chip(), zone_key()), zone_key())
    assert refused.value.code == "chip.unknown_csca"
    assert refused.value.message  # the localized sentence the person sees


def test_a_chip_whose_ef_com_lists_no_dg15_is_not_asked_for_it() -> None:
    assert listed_groups(ef_com([1, 2, 14])) == [1, 2, 14]


# --- PACE -----------------------------------------------------------------------------

PACE_AES_128 = "0.4.0.127.0.7.2.2.4.2.2"
PACE_AES_256 = "0.4.0.127.0.7.2.2.4.2.4"
PACE_3DES = "0.4.0.127.0.7.2.2.4.2.1"
BRAINPOOL_P256 = 13
NIST_P256 = 12


@pytest.mark.parametrize(
    ("protocol", "curve", "cipher"),
    [
        (PACE_AES_128, BRAINPOOL_P256, "AES"),
        (PACE_AES_128, NIST_P256, "AES"),
        (PACE_AES_256, NIST_P256, "AES"),
        (PACE_3DES, BRAINPOOL_P256, "3DES"),
    ],
)
def test_a_chip_that_offers_pace_is_opened_with_pace_and_read_under_its_keys(
    protocol: str, curve: int, cipher: str
) -> None:
    chip = aa_chip()
    card = SimulatedPassport(chip, zone_key(), pace=protocol, pace_parameter_id=curve)
    opened = Passport.open(card, zone_key())
    assert opened.access == "PACE" and opened.channel.keys.cipher == cipher
    assert "PACE" in card.log and "84" not in card.log  # no GET CHALLENGE: no BAC
    read = opened.read_all()
    assert read.groups == chip.files.dgs and read.sod == chip.files.sod
    assert opened.active_authentication(CHALLENGE_BYTES)  # the chip signs under PACE's SM


CHALLENGE_BYTES = bytes(range(8))


def test_a_wrong_zone_fails_pace_s_mutual_authentication() -> None:
    right = zone_key()
    wrong = MrzKey(right.document_number, right.birth_date, "301231")
    card = SimulatedPassport(aa_chip(), right, pace=PACE_AES_128)
    with pytest.raises(ReaderError, match="refused the key"):
        Passport.open(card, wrong)
    assert "PACE" not in card.log and "SM B0" not in card.log
    assert card.keys is None


def test_a_pace_chip_with_chip_authentication_is_read_and_accepted(api: TestClient) -> None:
    chip = ca_chip(CA_AES_128)
    trust(api, chip)
    card = SimulatedPassport(chip, zone_key(), pace=PACE_AES_128)
    lines: list[str] = []
    done = read_and_submit(api, card, zone_key(), lines.append)
    assert done.proof == "chip_authentication" and done.case["status"] == "confirm"
    assert "chip opened (PACE)" in lines and "SM 86" in card.log


def test_a_server_set_to_refuse_overdue_crls_says_so_to_the_reader(api: TestClient) -> None:
    chip = aa_chip()
    trust(api, chip)
    assert chip.csca is not None
    db: Database = api.app.state.db  # type: ignore[attr-defined]
    overdue = crl(chip.csca, [], day=TODAY - timedelta(days=100))  # due 20 days ago
    db.run(lambda tx: trust_store.import_file(tx, overdue, "test CRL", today=TODAY))
    db.settings.chip_stale_crl = "refuse"
    card = SimulatedPassport(chip, zone_key(), pace=PACE_AES_128)
    with pytest.raises(ServerRefused) as refused:
        read_and_submit(api, card, zone_key())
    assert refused.value.code == "chip.crl_overdue" and refused.value.status == 422
    db.settings.chip_stale_crl = "warn"
    assert read_and_submit(api, card, zone_key()).case["status"] == "confirm"


def test_a_long_ef_card_access_is_read_in_pieces_and_its_pace_info_found() -> None:
    # Other SecurityInfos first (an unknown protocol each): the PACEInfo comes after
    # the first READ BINARY's 223 bytes.
    filler = b"".join(
        tlv(0x30, core.ObjectIdentifier(f"1.2.3.{n}").dump() + core.Integer(n).dump())
        for n in range(60)
    )
    pace_info = ef_card_access(PACE_AES_128, BRAINPOOL_P256)[2:]
    card_access = tlv(0x31, filler + pace_info)
    assert len(card_access) > 2 * 223
    card = SimulatedPassport(aa_chip(), zone_key(), pace=PACE_AES_128)
    card.files[CARD_ACCESS] = card_access
    opened = Passport.open(card, zone_key())
    assert opened.access == "PACE"
    assert card.log[:3] == ["B0", "B0", "B0"]  # by short identifier, then by offset
