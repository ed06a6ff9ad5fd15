"""Secure messaging (against Doc 9303's worked example) and chip authentication run by
the server through a relaying phone: genuine chips pass, clones and replays do not."""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from qianbao.errors import InvalidInput
from qianbao.verification import chip_authentication as ca
from qianbao.verification import secure_messaging as sm
from qianbao.verification.chip import parse_dg14
from tests.verification import chip_vectors as vectors
from tests.verification.passport_pages import random_passport

# ICAO Doc 9303 Part 11, Appendix D.4: the session keys and counter after BAC.
D4_KEYS = sm.SessionKeys(
    "3DES",
    bytes.fromhex("979EC13B1CBFE9DCD01AB0FED307EAE5"),
    bytes.fromhex("F1CB1F1FB5ADF208806B89DC579DC1F8"),
)
D4_SSC = 0x887022120C06C226


def test_select_ef_com_is_wrapped_as_in_the_worked_example() -> None:
    command = sm.protect_command(D4_KEYS, D4_SSC + 1, bytes.fromhex("00A4020C"), b"\x01\x1e")
    assert command.hex().upper() == "0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800"
    response = sm.unprotect_response(
        D4_KEYS, D4_SSC + 2, bytes.fromhex("990290008E08FA855A5D4C50A8ED9000")
    )
    assert response == sm.Response(b"", 0x9000)


def test_read_binary_is_wrapped_and_its_answer_decrypted_as_in_the_worked_example() -> None:
    command = sm.protect_command(D4_KEYS, D4_SSC + 3, bytes.fromhex("00B00000"), expected_length=4)
    assert command.hex().upper() == "0CB000000D9701048E08ED6705417E96BA5500"
    answer = bytes.fromhex("8709019FF0EC34F9922651990290008E08AD55CC17140B2DED9000")
    assert sm.unprotect_response(D4_KEYS, D4_SSC + 4, answer).data == bytes.fromhex("60145F01")


def test_aes_wrapping_matches_a_recorded_passport_session() -> None:
    # MSE:Set AT for chip authentication, wrapped under a PACE session with AES-128,
    # as a passport reader sent it (a public trace of a real session).
    keys = sm.SessionKeys(
        "AES",
        bytes.fromhex("cc86415f2ed7e8fd663b754265695ae1"),
        bytes.fromhex("581e84b8ee06c4d3eee30461498d7fb3"),
    )
    data = bytes.fromhex("800a04007f000702020302028401c3")
    command = sm.protect_command(keys, 0xBB, bytes.fromhex("002241a4"), data)
    assert command.hex() == (
        "0c2241a41d871101980953d37f67558690045d78a853b18a8e08929767a2cef172e200"
    )
    assert sm.unprotect_command(keys, 0xBB, command).data == data


@pytest.mark.parametrize("cipher_bits", [("3DES", 128), ("AES", 128), ("AES", 192), ("AES", 256)])
def test_each_suite_round_trips_and_refuses_a_changed_byte(
    cipher_bits: tuple[sm.CipherName, int],
) -> None:
    keys = sm.derive_keys(b"shared secret", *cipher_bits)
    answer = sm.protect_response(keys, 7, b"some file content")
    assert sm.unprotect_response(keys, 7, answer) == sm.Response(b"some file content", 0x9000)
    with pytest.raises(sm.SecureMessagingError):
        sm.unprotect_response(keys, 8, answer)  # another counter: a replay
    for index in range(len(answer) - 2):
        changed = bytearray(answer)
        changed[index] ^= 0x01
        with pytest.raises(sm.SecureMessagingError):
            sm.unprotect_response(keys, 7, bytes(changed))


def test_garbage_responses_are_refused_not_crashed_on() -> None:
    keys = sm.derive_keys(b"k", "AES", 128)
    generator = random.Random(5)
    for size in (0, 1, 2, 3, 10, 40):
        with pytest.raises(sm.SecureMessagingError):
            sm.unprotect_response(keys, 2, generator.randbytes(size))


# --- chip authentication --------------------------------------------------------------


def _ca_chip(protocol: str = vectors.CA_AES_128, curve: str = "brainpoolP256r1") -> vectors.Chip:
    passport = random_passport(random.Random(11))
    return vectors.build_chip(
        passport, active_authentication=False, chip_authentication=protocol, ca_curve=curve
    )


def _challenge(chip: vectors.Chip) -> tuple[ca.Challenge, ca.Pending]:
    offer = ca.offer_of(chip.files.dgs[14])
    assert offer is not None
    return ca.start(offer, chip.files.dgs[14], chip.files.dgs[1])


@pytest.mark.parametrize(
    ("protocol", "curve"),
    [
        (vectors.CA_AES_128, "brainpoolP256r1"),
        ("0.4.0.127.0.7.2.2.3.2.4", "secp256r1"),
        (vectors.CA_3DES, "brainpoolP384r1"),
        ("v1", "brainpoolP256r1"),  # no ChipAuthenticationInfo: CA v1 with 3DES
    ],
)
def test_a_genuine_chip_answers_its_challenge(protocol: str, curve: str) -> None:
    chip = _ca_chip(protocol, curve)
    challenge, pending = _challenge(chip)
    assert challenge.protocol_oid == (ca.DEFAULT_PROTOCOL if protocol == "v1" else protocol)
    assert challenge.ephemeral_public_key[0] == 0x04
    assert chip.ca_private_key is not None
    dg1 = chip.files.dgs[1]
    answer = vectors.answer_chip_authentication(chip.ca_private_key, dg1, challenge)
    ca.finish(pending, answer, chip.files.dgs[14], dg1)  # no error: accepted


def test_each_challenge_is_fresh() -> None:
    chip = _ca_chip()
    first, _ = _challenge(chip)
    second, _ = _challenge(chip)
    assert first.ephemeral_public_key != second.ephemeral_public_key
    assert first.command != second.command


def _refused(code: str, pending: ca.Pending, answer: bytes, chip: vectors.Chip) -> None:
    with pytest.raises(InvalidInput) as caught:
        ca.finish(pending, answer, chip.files.dgs[14], chip.files.dgs[1])
    assert caught.value.code == code


def test_a_clone_without_the_private_key_is_refused() -> None:
    chip = _ca_chip()
    challenge, pending = _challenge(chip)
    assert chip.ca_private_key is not None
    clone_key = ec.generate_private_key(chip.ca_private_key.curve)
    dg1 = chip.files.dgs[1]
    with pytest.raises(sm.SecureMessagingError):  # the clone cannot even read the command
        vectors.answer_chip_authentication(clone_key, dg1, challenge)
    answer = vectors.answer_chip_authentication(clone_key, dg1, challenge, check_command=False)
    _refused("chip.chip_auth", pending, answer, chip)


def test_an_answer_to_an_earlier_challenge_is_refused() -> None:
    chip = _ca_chip()
    assert chip.ca_private_key is not None
    old_challenge, _ = _challenge(chip)
    recorded = vectors.answer_chip_authentication(
        chip.ca_private_key, chip.files.dgs[1], old_challenge
    )
    _, pending = _challenge(chip)
    _refused("chip.chip_auth", pending, recorded, chip)


def test_an_answer_with_other_data_or_status_is_refused() -> None:
    chip = _ca_chip()
    challenge, pending = _challenge(chip)
    assert chip.ca_private_key is not None
    terminal = ec.EllipticCurvePublicKey.from_encoded_point(
        chip.ca_private_key.curve, challenge.ephemeral_public_key
    )
    keys = sm.derive_keys(chip.ca_private_key.exchange(ec.ECDH(), terminal), "AES", 128)
    other_data = sm.protect_response(keys, ca.RESPONSE_SSC, b"\x61" + bytes(92))
    _refused("chip.chip_auth", pending, other_data, chip)
    error_status = sm.protect_response(keys, ca.RESPONSE_SSC, b"", status=0x6982)
    _refused("chip.chip_auth", pending, error_status, chip)
    _refused("chip.chip_auth", pending, b"\x90\x00", chip)


def test_files_other_than_the_challenged_ones_are_refused() -> None:
    chip = _ca_chip()
    other = _ca_chip()
    challenge, pending = _challenge(chip)
    assert other.ca_private_key is not None
    answer = vectors.answer_chip_authentication(
        other.ca_private_key, other.files.dgs[1], challenge, check_command=False
    )
    _refused("chip.chip_auth_files", pending, answer, other)


def test_dg14_without_an_ecdh_key_offers_nothing() -> None:
    chip = _ca_chip()
    security = parse_dg14(chip.files.dgs[14])
    assert ca.choose(security) is not None
    no_keys = security.__class__(
        (), security.chip_authentication_protocols, security.chip_authentication_infos, None, ()
    )
    assert ca.choose(no_keys) is None


def test_the_pending_state_survives_storage() -> None:
    chip = _ca_chip()
    challenge, pending = _challenge(chip)
    restored = ca.Pending.from_bytes(pending.to_bytes())
    assert chip.ca_private_key is not None
    answer = vectors.answer_chip_authentication(chip.ca_private_key, chip.files.dgs[1], challenge)
    ca.finish(restored, answer, chip.files.dgs[14], chip.files.dgs[1])
    assert "enc" not in repr(restored) and restored.keys.enc.hex() not in repr(restored)
