"""Secure messaging between a terminal and a passport chip (ICAO Doc 9303 Part 11, 9.8).

After chip authentication the chip and whoever ran it share two session keys, and every
command and response is wrapped: data encrypted into ``DO87``, the expected length in
``DO97``, the status in ``DO99``, and a MAC in ``DO8E`` over a send sequence counter
(SSC) and those objects. Only someone holding the session keys can make a response
whose MAC checks, which is why a correct response proves the chip holds the chip
authentication private key (see :mod:`qianbao.verification.chip_authentication`).

Two cipher suites, as the protocol OID says:

* 3DES: two-key 3DES-CBC with a zero IV, and the ISO/IEC 9797-1 MAC algorithm 3 ("retail
  MAC") with DES; an 8-byte SSC.
* AES (128/192/256): AES-CBC whose IV is the SSC encrypted with the encryption key, and
  AES-CMAC truncated to 8 bytes; a 16-byte SSC.

Both pad with ISO/IEC 9797-1 method 2 (``80`` then zeros) before encrypting *and* before
MACing, CMAC included. The chip's half (:func:`unprotect_command`,
:func:`protect_response`) is here too: the test chip and the demo tool answer with it.

No library implements ICAO secure messaging for Python (pypassport and the like are
unmaintained), so this is written here on ``cryptography``'s ciphers; it is checked
against the worked example of Doc 9303 Part 11 Appendix D.4 and an AES trace.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Final, Literal

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

CipherName = Literal["3DES", "AES"]
MAC_BYTES: Final = 8
SW_OK: Final = 0x9000


class SecureMessagingError(ValueError):
    """A wrapped message that is malformed or whose MAC does not check."""


@dataclass(frozen=True, repr=False)
class SessionKeys:
    cipher: CipherName
    enc: bytes
    mac: bytes

    def __repr__(self) -> str:  # keys never in a log line
        return f"SessionKeys({self.cipher}, {len(self.enc) * 8}-bit)"

    @property
    def block(self) -> int:
        return 8 if self.cipher == "3DES" else 16


def derive_keys(shared_secret: bytes, cipher: CipherName, key_bits: int) -> SessionKeys:
    """KDF of Doc 9303 Part 11, 9.7.1: a hash of the secret and a 32-bit counter (1 for
    encryption, 2 for the MAC); SHA-1 for 3DES and AES-128, SHA-256 above."""
    hash_name = "sha1" if key_bits <= 128 else "sha256"
    size = key_bits // 8

    def kdf(counter: int) -> bytes:
        return hashlib.new(hash_name, shared_secret + counter.to_bytes(4, "big")).digest()[:size]

    return SessionKeys(cipher, kdf(1), kdf(2))


def ssc_bytes(keys: SessionKeys, ssc: int) -> bytes:
    return ssc.to_bytes(keys.block, "big")


# --- padding, ciphers, MAC --------------------------------------------------------------


def pad(data: bytes, block: int) -> bytes:
    padded = data + b"\x80"
    return padded + b"\x00" * (-len(padded) % block)


def unpad(data: bytes) -> bytes:
    stripped = data.rstrip(b"\x00")
    if not stripped.endswith(b"\x80"):
        raise SecureMessagingError("bad padding")
    return stripped[:-1]


def _block_cipher(keys: SessionKeys, ssc: int) -> Cipher[modes.CBC]:
    if keys.cipher == "3DES":
        return Cipher(TripleDES(_three_key(keys.enc)), modes.CBC(bytes(8)))
    ecb = Cipher(algorithms.AES(keys.enc), modes.ECB()).encryptor()  # noqa: S305 one block: the IV
    iv = ecb.update(ssc_bytes(keys, ssc)) + ecb.finalize()
    return Cipher(algorithms.AES(keys.enc), modes.CBC(iv))


def encrypt(keys: SessionKeys, ssc: int, data: bytes) -> bytes:
    encryptor = _block_cipher(keys, ssc).encryptor()
    return encryptor.update(pad(data, keys.block)) + encryptor.finalize()


def decrypt(keys: SessionKeys, ssc: int, data: bytes) -> bytes:
    if not data or len(data) % keys.block:
        raise SecureMessagingError("encrypted data is not whole blocks")
    decryptor = _block_cipher(keys, ssc).decryptor()
    return unpad(decryptor.update(data) + decryptor.finalize())


def mac(keys: SessionKeys, ssc: int, message: bytes) -> bytes:
    """The 8-byte MAC of ``SSC || message``, padded first (also for CMAC)."""
    data = pad(ssc_bytes(keys, ssc) + message, keys.block)
    if keys.cipher == "AES":
        cmac = CMAC(algorithms.AES(keys.mac))
        cmac.update(data)
        return cmac.finalize()[:MAC_BYTES]
    return _retail_mac(keys.mac, data)


def _three_key(two_key: bytes) -> bytes:
    """A two-key 3DES key (K1 K2) as the three-key form K1 K2 K1 that OpenSSL wants; a
    single DES key is K K K, the same way."""
    return two_key[:16] + two_key[:8]


def _retail_mac(key: bytes, data: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3: DES-CBC with the first key half over every block
    but the last, then two-key 3DES of the last chained block."""
    first_half = key[:8]
    chained = bytes(8)
    if len(data) > 8:
        des = Cipher(TripleDES(first_half * 3), modes.CBC(bytes(8))).encryptor()
        chained = (des.update(data[:-8]) + des.finalize())[-8:]
    last = bytes(a ^ b for a, b in zip(chained, data[-8:], strict=True))
    ede = Cipher(TripleDES(_three_key(key)), modes.ECB()).encryptor()  # noqa: S305 one block
    return ede.update(last) + ede.finalize()


# --- BER-TLV data objects ---------------------------------------------------------------


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    if size <= 0xFF:
        return bytes([0x81, size])
    return bytes([0x82]) + size.to_bytes(2, "big")


def data_object(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _length(len(value)) + value


def _data_objects(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """(tag, value, whole encoding) of each one-byte-tag object in ``data``."""
    objects = []
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise SecureMessagingError("truncated data object")
        tag, size = data[offset], data[offset + 1]
        start = offset + 2
        if size in (0x81, 0x82):
            width = size - 0x80
            size = int.from_bytes(data[start : start + width], "big")
            start += width
        elif size > 0x82:
            raise SecureMessagingError("bad data object length")
        end = start + size
        if end > len(data):
            raise SecureMessagingError("truncated data object")
        objects.append((tag, data[start:end], data[offset:end]))
        offset = end
    return objects


# --- the terminal's half --------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    data: bytes
    status: int  # SW1 SW2, as DO99 says


def protect_command(
    keys: SessionKeys,
    ssc: int,
    header: bytes,
    data: bytes = b"",
    expected_length: int | None = None,
) -> bytes:
    """A short command APDU wrapped for sending at ``ssc`` (already incremented).

    ``header`` is CLA INS P1 P2; ``expected_length`` (Le, 1 to 256) asks for data back.
    """
    masked = bytes([header[0] | 0x0C]) + header[1:4]
    body = b""
    if data:
        body += data_object(0x87, b"\x01" + encrypt(keys, ssc, data))
    if expected_length is not None:
        body += data_object(0x97, bytes([expected_length % 256]))
    checksum = mac(keys, ssc, pad(masked, keys.block) + body)
    body += data_object(0x8E, checksum)
    return masked + bytes([len(body)]) + body + b"\x00"


def unprotect_response(keys: SessionKeys, ssc: int, apdu: bytes) -> Response:
    """The data and status of a wrapped response APDU received at ``ssc``, or
    :class:`SecureMessagingError` if it is malformed or its MAC does not check."""
    if len(apdu) < 2:
        raise SecureMessagingError("response too short")
    objects = {tag: (value, whole) for tag, value, whole in _data_objects(apdu[:-2])}
    if 0x8E not in objects or 0x99 not in objects:
        raise SecureMessagingError("response without MAC or status")
    covered = b"".join(objects[tag][1] for tag in (0x87, 0x99) if tag in objects)
    if not hmac.compare_digest(mac(keys, ssc, covered), objects[0x8E][0]):
        raise SecureMessagingError("response MAC does not check")
    status = objects[0x99][0]
    if len(status) != 2:
        raise SecureMessagingError("bad status object")
    data = b""
    if 0x87 in objects:
        encrypted = objects[0x87][0]
        if encrypted[:1] != b"\x01":
            raise SecureMessagingError("unknown padding indicator")
        data = decrypt(keys, ssc, encrypted[1:])
    return Response(data, int.from_bytes(status, "big"))


# --- the chip's half (the test chip and the demo tool) ----------------------------------


@dataclass(frozen=True)
class Command:
    header: bytes  # CLA INS P1 P2 as sent (CLA with the SM bits)
    data: bytes
    expected_length: int | None


def unprotect_command(keys: SessionKeys, ssc: int, apdu: bytes) -> Command:
    """What a chip reads from a wrapped command at ``ssc``; refused if its MAC fails."""
    if len(apdu) < 6 or apdu[4] != len(apdu) - 6:
        raise SecureMessagingError("bad command APDU")
    header = apdu[:4]
    objects = {tag: (value, whole) for tag, value, whole in _data_objects(apdu[5:-1])}
    if 0x8E not in objects:
        raise SecureMessagingError("command without MAC")
    covered = b"".join(objects[tag][1] for tag in (0x87, 0x97) if tag in objects)
    expected = mac(keys, ssc, pad(header, keys.block) + covered)
    if not hmac.compare_digest(expected, objects[0x8E][0]):
        raise SecureMessagingError("command MAC does not check")
    data = decrypt(keys, ssc, objects[0x87][0][1:]) if 0x87 in objects else b""
    length = None
    if 0x97 in objects:
        length = objects[0x97][0][0] or 256
    return Command(header, data, length)


def protect_response(keys: SessionKeys, ssc: int, data: bytes, status: int = SW_OK) -> bytes:
    """A chip's wrapped response at ``ssc``."""
    body = data_object(0x87, b"\x01" + encrypt(keys, ssc, data)) if data else b""
    body += data_object(0x99, status.to_bytes(2, "big"))
    body += data_object(0x8E, mac(keys, ssc, body))
    return body + status.to_bytes(2, "big")
