"""PACE's steps against the worked example of ICAO Doc 9303 Part 11, Appendix G.1
(id-PACE-ECDH-GM-AES-CBC-CMAC-128 over brainpoolP256r1, the zone T22000129 / 640812 /
101031): every value below is the spec's, not this code's output."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastecdsa import curve as curves

from qianbao.chipreader import pace
from qianbao.chipreader.apdu import ReaderError, Reply
from qianbao.chipreader.bac import MrzKey
from qianbao.chipreader.passport import Passport

CARD_ACCESS = bytes.fromhex("31143012060A04007F0007020204020202010202010D")
KEY = MrzKey.parse("T22000129", "640812", "101031")
INFO = pace.PaceInfo("0.4.0.127.0.7.2.2.4.2.2", 13)
K_PI = "89DED1B26624EC1E634C1989302849DD"
NONCE_Z = "95A3A016522EE98D01E76CB6B98B42C3"
NONCE_S = "3F00C4D39D153F2B2A214A078D899B22"
SK_MAP_IFD = 0x7F4EF07B9EA82FD78AD689B38D0BC78CF21F249D953BC46F4C6E19259C010F99
PK_MAP_IFD = (
    "047ACF3EFC982EC45565A4B155129EFBC74650DCBFA6362D896FC70262E0C2CC5E"
    "544552DCB6725218799115B55C9BAA6D9F6BC3A9618E70C25AF71777A9C4922D"
)
PK_MAP_IC = (
    "04824FBA91C9CBE26BEF53A0EBE7342A3BF178CEA9F45DE0B70AA601651FBA3F57"
    "30D8C879AAA9C9F73991E61B58F4D52EB87A0A0C709A49DC63719363CCD13C54"
)
H = (
    "0460332EF2450B5D247EF6D3868397D398852ED6E8CAF6FFEEF6BF85CA57057FD5"
    "0840CA7415BAF3E43BD414D35AA4608B93A2CAF3A4E3EA4E82C9C13D03EB7181"
)
G_MAPPED = (
    "048CED63C91426D4F0EB1435E7CB1D74A46723A0AF21C89634F65A9AE87A9265E2"
    "8C879506743F8611AC33645C5B985C80B5F09A0B83407C1B6A4D857AE76FE522"
)
SK_DH_IFD = 0xA73FB703AC1436A18E0CFA5ABB3F7BEC7A070E7A6788486BEE230C4A22762595
PK_DH_IFD = (
    "042DB7A64C0355044EC9DF190514C625CBA2CEA48754887122F3A5EF0D5EDD301C"
    "3556F3B3B186DF10B857B58F6A7EB80F20BA5DC7BE1D43D9BF850149FBB36462"
)
PK_DH_IC = (
    "049E880F842905B8B3181F7AF7CAA9F0EFB743847F44A306D2D28C1D9EC65DF6DB"
    "7764B22277A2EDDC3C265A9F018F9CB852E111B768B326904B59A0193776F094"
)
KS_ENC = "F5F0E35C0D7161EE6724EE513A0D9A7F"
KS_MAC = "FE251C7858B356B24514B3BD5F4297D1"
T_IFD = "C2B0BD78D94BA866"
T_IC = "3ABB9674BCE93C08"


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_ef_card_access_of_the_example_offers_ecdh_gm_aes_128_on_brainpool_p256() -> None:
    assert pace.supported_pace(CARD_ACCESS) == [INFO]
    assert INFO.curve is curves.brainpoolP256r1
    assert pace.supported_pace(b"\x31\x03junk") == []
    # id-PACE-DH-GM (4.1.2): not run here, so the reader falls back to BAC
    assert pace.supported_pace(CARD_ACCESS.replace(b"\x04\x02\x02", b"\x04\x01\x02")) == []


def test_the_password_key_and_the_nonce_are_the_example_s() -> None:
    k_pi = pace.password_key(KEY, INFO)
    assert k_pi == h(K_PI)
    assert pace.decrypt_nonce(k_pi, INFO, h(NONCE_Z)) == h(NONCE_S)


def test_generic_mapping_gives_the_example_s_generator() -> None:
    curve = INFO.curve
    assert pace.encode_point(SK_MAP_IFD * curve.G) == h(PK_MAP_IFD)
    shared = SK_MAP_IFD * pace.decode_point(curve, h(PK_MAP_IC))
    assert pace.encode_point(shared) == h(H)
    mapped = pace.generic_mapping(curve, h(NONCE_S), shared)
    assert pace.encode_point(mapped) == h(G_MAPPED)
    assert pace.encode_point(SK_DH_IFD * mapped) == h(PK_DH_IFD)


def test_the_session_keys_and_tokens_are_the_example_s() -> None:
    curve = INFO.curve
    agreed = SK_DH_IFD * pace.decode_point(curve, h(PK_DH_IC))
    keys = pace.session_keys(agreed, INFO)
    assert (keys.cipher, keys.enc, keys.mac) == ("AES", h(KS_ENC), h(KS_MAC))
    assert pace.authentication_token(keys, INFO, h(PK_DH_IC)) == h(T_IFD)
    assert pace.authentication_token(keys, INFO, h(PK_DH_IFD)) == h(T_IC)


def test_a_point_off_the_curve_is_refused() -> None:
    bad = h(PK_DH_IC)[:-1] + bytes([h(PK_DH_IC)[-1] ^ 1])
    with pytest.raises(ReaderError, match="not on the curve"):
        pace.decode_point(INFO.curve, bad)


class ScriptedChip:
    """The chip's half of Appendix G.1, answer by answer; records what it was sent."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = iter(answers)
        self.sent: list[bytes] = []

    def transmit(self, apdu: bytes) -> Reply:
        self.sent.append(apdu)
        answer = h(next(self.answers))
        return Reply(answer[:-2], int.from_bytes(answer[-2:], "big"))


def example_keys() -> Iterator[int]:
    yield SK_MAP_IFD
    yield SK_DH_IFD


def example_chip(last_answer: str = "7C0A8608" + T_IC + "9000") -> ScriptedChip:
    return ScriptedChip(
        [
            CARD_ACCESS.hex() + "9000",
            "9000",
            "7C128010" + NONCE_Z + "9000",
            "7C438241" + PK_MAP_IC + "9000",
            "7C438441" + PK_DH_IC + "9000",
            last_answer,
            "990290008E08" + "00" * 8 + "9000",  # SELECT's answer: its MAC is not the spec's
        ]
    )


def test_the_reader_sends_the_example_s_general_authenticate_commands() -> None:
    chip = example_chip()
    keys = example_keys()
    info = pace.supported_pace(pace.read_card_access(chip) or b"")[0]
    channel = pace.establish(chip, KEY, info, lambda _curve: next(keys))
    assert channel is not None and channel.ssc == 0
    assert (channel.keys.enc, channel.keys.mac) == (h(KS_ENC), h(KS_MAC))
    mse, *steps = chip.sent[1:]
    assert mse.startswith(h("0022C1A4")) and h("800A04007F00070202040202") in mse
    assert h("830101") in mse  # the password is the MRZ
    assert [step.hex().upper() for step in steps] == [
        "10860000027C0000",
        "1086000045" + "7C438141" + PK_MAP_IFD + "00",
        "1086000045" + "7C438341" + PK_DH_IFD + "00",
        "008600000C7C0A8508" + T_IFD + "00",
    ]


def test_a_refused_token_is_a_refused_key_and_no_bac_is_tried() -> None:
    chip = example_chip(last_answer="6300")
    keys = example_keys()
    assert pace.read_card_access(chip) == CARD_ACCESS
    with pytest.raises(ReaderError, match="refused the key"):
        pace.establish(chip, KEY, INFO, lambda _curve: next(keys))
    assert len(chip.sent) == 6


def test_a_wrong_chip_token_ends_pace() -> None:
    chip = example_chip(last_answer="7C0A8608" + "00" * 8 + "9000")
    keys = example_keys()
    assert pace.read_card_access(chip) == CARD_ACCESS
    with pytest.raises(ReaderError, match="token does not check"):
        pace.establish(chip, KEY, INFO, lambda _curve: next(keys))


def test_a_chip_without_ef_card_access_is_opened_with_bac() -> None:
    chip = ScriptedChip(["6A82", "9000", "6D00"])  # no CardAccess; SELECT; no challenge
    with pytest.raises(ReaderError, match="no challenge"):
        Passport.open(chip, KEY)
    assert chip.sent[1] == h("00A4040C07A0000002471001")  # the application, in the clear
    assert chip.sent[2][:2] == h("0084")  # GET CHALLENGE: BAC


def test_a_chip_that_refuses_mse_set_at_is_opened_with_bac() -> None:
    chip = ScriptedChip([CARD_ACCESS.hex() + "9000", "6A80", "9000", "6D00"])
    with pytest.raises(ReaderError, match="no challenge"):
        Passport.open(chip, KEY)
    assert chip.sent[3][:2] == h("0084")
