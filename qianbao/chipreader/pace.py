"""PACE, Password Authenticated Connection Establishment (ICAO Doc 9303 Part 11, 4.4),
with the password from the printed zone and the generic mapping over elliptic curves.

The chip announces PACE in EF.CardAccess (a SecurityInfos set in the master file): a
PACEInfo names the protocol (here id-PACE-ECDH-GM with 3DES or AES-128/192/256) and the
standardized domain parameters (Part 11, 9.5.1: brainpool and NIST curves). The steps:

1. MSE:Set AT selects the protocol, the password (the MRZ, reference 1) and the curve.
2. GENERAL AUTHENTICATE (chained): the chip's nonce ``s`` encrypted under
   ``K_pi = KDF(SHA-1(MRZ information), 3)``;
3. mapping: both sides exchange ephemeral keys, ``H`` is their ECDH point and the new
   generator is ``G' = s·G + H``;
4. key agreement: ephemeral keys on ``G'``; the x-coordinate of the shared point seeds
   the session keys (KDF counters 1 and 2, as for BAC);
5. mutual authentication: each side MACs the other's ephemeral public key (a public key
   data object with the protocol OID). A wrong zone gives a different ``s``, so the
   chip's check of the terminal's token fails.

Secure messaging then runs with the session keys and a send sequence counter of zero.
The point arithmetic of the mapping is fastecdsa's (a pinned main dependency);
nonce decryption, CMAC and the retail MAC are ``cryptography``'s.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Final

from asn1crypto import core, parser
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC
from fastecdsa import curve as curves
from fastecdsa.rust import Curve, Point  # the typed classes that fastecdsa.curve builds

from qianbao.chipreader.apdu import ReaderError, Reply, Transport, short_apdu
from qianbao.chipreader.bac import MrzKey, SecureChannel, des3_cbc, retail_mac
from qianbao.verification import secure_messaging as sm

PACE_ECDH_GM: Final = "0.4.0.127.0.7.2.2.4.2"
# Part 11, 9.2.3: id-PACE-ECDH-GM-* and the session cipher and key length of each.
PROTOCOLS: Final[dict[str, tuple[sm.CipherName, int]]] = {
    f"{PACE_ECDH_GM}.1": ("3DES", 128),
    f"{PACE_ECDH_GM}.2": ("AES", 128),
    f"{PACE_ECDH_GM}.3": ("AES", 192),
    f"{PACE_ECDH_GM}.4": ("AES", 256),
}
# Part 11, 9.5.1: the standardized domain parameters over elliptic curves.
DOMAIN_PARAMETERS: Final[dict[int, Curve]] = {
    8: curves.P192,
    9: curves.brainpoolP192r1,
    10: curves.P224,
    11: curves.brainpoolP224r1,
    12: curves.P256,
    13: curves.brainpoolP256r1,
    14: curves.brainpoolP320r1,
    15: curves.P384,
    16: curves.brainpoolP384r1,
    17: curves.brainpoolP512r1,
    18: curves.P521,
}
MRZ_PASSWORD: Final = 1  # Part 11, 4.4.4.1: 1 is the MRZ, 2 the CAN
READ_CARD_ACCESS: Final = bytes.fromhex("00B09C00")  # READ BINARY, short EF identifier 1C
MSE_SET_AT: Final = bytes.fromhex("0022C1A4")
GENERAL_AUTHENTICATE: Final = bytes.fromhex("00860000")
CHAINED: Final = 0x10  # CLA bit: more commands of the chain follow
CARD_ACCESS_SIZE: Final = 0xDF  # per READ BINARY: a chip's SecurityInfos may be longer
SW_END_OF_FILE: Final = 0x6282

EphemeralKey = Callable[[Curve], int]


class _SecurityInfo(core.Sequence):  # type: ignore[misc]
    """SecurityInfo (Part 11, 9.2): a protocol OID and what that protocol needs."""

    _fields: ClassVar[list[tuple[str, type[core.Asn1Value], dict[str, bool]]]] = [
        ("protocol", core.ObjectIdentifier, {}),
        ("required_data", core.Any, {}),
        ("optional_data", core.Any, {"optional": True}),
    ]


class _SecurityInfos(core.SetOf):  # type: ignore[misc]
    _child_spec = _SecurityInfo


@dataclass(frozen=True)
class PaceInfo:
    """A PACEInfo this reader can run: the protocol and the standardized curve."""

    protocol: str
    parameter_id: int

    @property
    def curve(self) -> Curve:
        return DOMAIN_PARAMETERS[self.parameter_id]

    @property
    def cipher(self) -> tuple[sm.CipherName, int]:
        return PROTOCOLS[self.protocol]


def supported_pace(card_access: bytes) -> list[PaceInfo]:
    """The PACEInfos of EF.CardAccess that this reader can run, the chip's order kept;
    none when the file cannot be read (the reader then uses BAC)."""
    found = []
    try:
        for info in _SecurityInfos.load(card_access):
            protocol = info["protocol"].dotted
            parameter = info["optional_data"]
            if protocol not in PROTOCOLS or not isinstance(parameter, core.Any):
                continue
            parameter_id = int(core.Integer.load(parameter.dump()).native)
            if int(core.Integer.load(info["required_data"].dump()).native) != 2:
                continue  # PACE version 2 is the one Doc 9303 defines
            if parameter_id in DOMAIN_PARAMETERS:
                found.append(PaceInfo(protocol, parameter_id))
    except (ValueError, TypeError, KeyError):
        return []
    return found


def read_card_access(transport: Transport) -> bytes | None:
    """EF.CardAccess, read in the clear: by its short identifier (which selects it),
    then by offset while its length says there is more; None when the chip has none (a
    BAC-only passport answers 6A82 or refuses the command)."""
    reply = transport.transmit(short_apdu(READ_CARD_ACCESS, expected_length=CARD_ACCESS_SIZE))
    if reply.status not in (sm.SW_OK, SW_END_OF_FILE) or not reply.data:
        return None
    content = reply.data
    size = _encoded_size(content)
    while len(content) < size and reply.data:
        offset = len(content).to_bytes(2, "big")
        reply = transport.transmit(
            short_apdu(
                b"\x00\xb0" + offset, expected_length=min(CARD_ACCESS_SIZE, size - len(content))
            )
        )
        if reply.status not in (sm.SW_OK, SW_END_OF_FILE):
            return None
        content += reply.data
    return content[:size]


def _encoded_size(data: bytes) -> int:
    """The whole length of the DER object that ``data`` starts with (header included)."""
    try:
        _, _, _, header, value, trailer = parser.parse(data, strict=False)
    except ValueError:
        # A truncated first piece: the header still says how long the whole is.
        if len(data) < 2:
            return len(data)
        if data[1] < 0x80:
            return 2 + data[1]
        width = data[1] & 0x7F
        return 2 + width + int.from_bytes(data[2 : 2 + width], "big")
    return len(header) + len(value) + len(trailer)


# --- the steps, each checkable against Doc 9303 Part 11 Appendix G --------------------


def kdf(secret: bytes, counter: int, key_bits: int) -> bytes:
    """Part 11, 9.7.1: SHA-1 for 3DES and AES-128, SHA-256 for longer AES keys."""
    hash_name = "sha1" if key_bits <= 128 else "sha256"
    digest = hashlib.new(hash_name, secret + counter.to_bytes(4, "big")).digest()
    return digest[: key_bits // 8]


def password_key(key: MrzKey, info: PaceInfo) -> bytes:
    """K_pi: the KDF (counter 3) of the SHA-1 of the MRZ information."""
    digest = hashlib.sha1(key.information()).digest()  # noqa: S324 - ICAO's password
    return kdf(digest, 3, info.cipher[1])


def decrypt_nonce(k_pi: bytes, info: PaceInfo, encrypted: bytes) -> bytes:
    """The chip's nonce s: CBC with a zero IV under K_pi (3DES or AES as the OID says)."""
    if info.cipher[0] == "3DES":
        return des3_cbc(k_pi, encrypted, decrypt=True)
    decryptor = Cipher(algorithms.AES(k_pi), modes.CBC(bytes(16))).decryptor()
    return decryptor.update(encrypted) + decryptor.finalize()


def encrypt_nonce(k_pi: bytes, info: PaceInfo, nonce: bytes) -> bytes:
    """The chip's half of :func:`decrypt_nonce` (the test chip uses it)."""
    if info.cipher[0] == "3DES":
        return des3_cbc(k_pi, nonce)
    encryptor = Cipher(algorithms.AES(k_pi), modes.CBC(bytes(16))).encryptor()
    return encryptor.update(nonce) + encryptor.finalize()


def generic_mapping(curve: Curve, nonce: bytes, shared: Point) -> Point:
    """G' = s·G + H (Part 11, 4.4.3.3.1)."""
    mapped = int.from_bytes(nonce, "big") * curve.G + shared
    if mapped.z == 0:
        raise ReaderError("PACE mapping gave the point at infinity.")
    return mapped


def encode_point(point: Point) -> bytes:
    """The uncompressed encoding 04 || x || y."""
    size = (point.curve.p.bit_length() + 7) // 8
    return b"\x04" + point.x.to_bytes(size, "big") + point.y.to_bytes(size, "big")


def decode_point(curve: Curve, encoded: bytes) -> Point:
    """An uncompressed point of ``curve``; :class:`ReaderError` if it is not one (a
    point off the curve would leak the key in the agreement)."""
    size = (curve.p.bit_length() + 7) // 8
    if len(encoded) != 1 + 2 * size or encoded[0] != 0x04:
        raise ReaderError("The chip sent a public key that is not an uncompressed point.")
    x = int.from_bytes(encoded[1 : 1 + size], "big")
    y = int.from_bytes(encoded[1 + size :], "big")
    try:
        point = Point(x, y, curve)
    except ValueError:
        raise ReaderError("The chip sent a point that is not on the curve.") from None
    return point


def session_keys(shared: Point, info: PaceInfo) -> sm.SessionKeys:
    """KS_enc and KS_mac from the x-coordinate of the agreed point."""
    size = (shared.curve.p.bit_length() + 7) // 8
    return sm.derive_keys(shared.x.to_bytes(size, "big"), *info.cipher)


def authentication_token(keys: sm.SessionKeys, info: PaceInfo, public_key: bytes) -> bytes:
    """MAC of the other side's ephemeral public key as a public key data object (7F49:
    the protocol OID, then the point in 86): CMAC without padding for AES (Part 11,
    9.7.4), the retail MAC with padding for 3DES."""
    oid = core.ObjectIdentifier(info.protocol).dump()
    data = _data_object(0x7F49, oid + _data_object(0x86, public_key))
    if keys.cipher == "3DES":
        return retail_mac(keys.mac, data)
    cmac = CMAC(algorithms.AES(keys.mac))
    cmac.update(data)
    return cmac.finalize()[: sm.MAC_BYTES]


def random_scalar(curve: Curve) -> int:
    """An ephemeral private key in [1, n-1]."""
    return 1 + secrets.randbelow(curve.q - 1)


# --- the protocol ---------------------------------------------------------------------


def establish(
    transport: Transport,
    key: MrzKey,
    info: PaceInfo,
    ephemeral_key: EphemeralKey = random_scalar,
) -> SecureChannel | None:
    """Run PACE with the zone's password: the secure channel (SSC 0), None when the
    chip refuses MSE:Set AT (the caller then tries BAC), or :class:`ReaderError` when
    the chip refuses the key or answers out of protocol."""
    if not _set_authentication_template(transport, info):
        return None
    k_pi = password_key(key, info)
    nonce = decrypt_nonce(k_pi, info, _step(transport, 0x80, b""))
    mapped = _map_generator(transport, info, nonce, ephemeral_key(info.curve))
    agreement_key = ephemeral_key(info.curve)
    own_public = encode_point(agreement_key * mapped)
    chip_public = _step(transport, 0x84, _data_object(0x83, own_public))
    if chip_public == own_public:
        raise ReaderError("The chip echoed the reader's key: PACE stopped.")
    keys = session_keys(agreement_key * decode_point(info.curve, chip_public), info)
    _authenticate(transport, info, keys, own_public, chip_public)
    return SecureChannel(transport, keys, 0)


def _set_authentication_template(transport: Transport, info: PaceInfo) -> bool:
    """MSE:Set AT: the protocol, the MRZ as password, the domain parameters' id."""
    oid = core.ObjectIdentifier(info.protocol).contents
    template = (
        _data_object(0x80, oid)
        + _data_object(0x83, bytes([MRZ_PASSWORD]))
        + _data_object(0x84, bytes([info.parameter_id]))
    )
    return transport.transmit(short_apdu(MSE_SET_AT, template)).ok


def _map_generator(transport: Transport, info: PaceInfo, nonce: bytes, map_key: int) -> Point:
    """The mapping step: exchange mapping keys, H is their ECDH point, G' = s·G + H."""
    own = _data_object(0x81, encode_point(map_key * info.curve.G))
    chip_map = decode_point(info.curve, _step(transport, 0x82, own))
    return generic_mapping(info.curve, nonce, map_key * chip_map)


def _authenticate(
    transport: Transport, info: PaceInfo, keys: sm.SessionKeys, own: bytes, chip: bytes
) -> None:
    """Mutual authentication: the terminal's token of the chip's key, the chip's of ours.
    The chip refusing ours means the zone was wrong (the nonce decrypted otherwise)."""
    token = authentication_token(keys, info, chip)
    answer = _general_authenticate(transport, _data_object(0x85, token), chained=False)
    if not answer.ok:
        raise ReaderError(
            "The chip refused the key: check the document number, birth date and expiry "
            f"date as printed in the zone (status {answer.status:04X})."
        )
    chip_token = _dynamic_object(answer.data, 0x86)
    if not hmac.compare_digest(chip_token, authentication_token(keys, info, own)):
        raise ReaderError("The chip's authentication token does not check.")


def _step(transport: Transport, answer_tag: int, content: bytes) -> bytes:
    """One chained GENERAL AUTHENTICATE and the data object the chip answers with."""
    reply = _general_authenticate(transport, content, chained=True)
    if not reply.ok:
        raise ReaderError(f"The chip stopped PACE (status {reply.status:04X}).")
    return _dynamic_object(reply.data, answer_tag)


def _general_authenticate(transport: Transport, content: bytes, chained: bool) -> Reply:
    command_class = GENERAL_AUTHENTICATE[0] | (CHAINED if chained else 0)
    header = bytes([command_class]) + GENERAL_AUTHENTICATE[1:]
    return transport.transmit(short_apdu(header, _data_object(0x7C, content), 256))


def _dynamic_object(data: bytes, tag: int) -> bytes:
    """The value of ``tag`` inside the dynamic authentication data (7C)."""
    try:
        class_, _, number, _, inner, _ = parser.parse(data)
        if (class_, number) != (1, 0x1C):  # 7C: application class, constructed, 28
            raise ValueError("not 7C")
        offset = 0
        while offset < len(inner):
            class_, _, number, header, value, trailer = parser.parse(inner[offset:], strict=False)
            offset += len(header) + len(value) + len(trailer)
            if (class_, number) == (2, tag & 0x1F):  # context-specific
                return bytes(value)
    except ValueError:
        pass
    raise ReaderError(f"The chip's PACE answer lacks the data object {tag:02X}.")


def _data_object(tag: int, value: bytes) -> bytes:
    tag_bytes = tag.to_bytes(2 if tag > 0xFF else 1, "big")
    return tag_bytes + sm.data_object(0, value)[1:]
