"""Basic Access Control (ICAO Doc 9303 Part 11, 4.3 and 9.7): the chip's keys from the
printed zone, and the mutual authentication that opens secure messaging.

The key seed is the SHA-1 of the document number, birth date and expiry date, each
followed by its check digit; the 3DES keys come from it through the same KDF as the
session keys (counter 1 for encryption, 2 for the MAC). Mutual authentication: GET
CHALLENGE gives the chip's nonce, EXTERNAL AUTHENTICATE carries the terminal's nonce
and key half encrypted and MACed; the chip answers with its key half, and the XOR of
the halves seeds the session keys. The send sequence counter starts from the low four
bytes of both nonces.

No maintained Python library implements this (see the README), so it is written here
on ``cryptography``'s 3DES and :mod:`qianbao.verification.secure_messaging`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import date
from typing import Final

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from qianbao.chipreader.apdu import ReaderError, Transport, short_apdu
from qianbao.verification import secure_messaging as sm
from qianbao.verification.mrz import check_digit

GET_CHALLENGE: Final = bytes.fromhex("00840000")
EXTERNAL_AUTHENTICATE: Final = bytes.fromhex("00820000")
NONCE_BYTES: Final = 8


@dataclass(frozen=True, repr=False)
class MrzKey:
    """What BAC needs from the printed zone: never logged (it opens the chip)."""

    document_number: str
    birth_date: str  # YYMMDD
    expiry_date: str  # YYMMDD

    def __repr__(self) -> str:
        return "MrzKey(...)"

    @classmethod
    def parse(cls, document_number: str, birth_date: str, expiry_date: str) -> MrzKey:
        """From what a person types: a number of up to 9 letters and digits, and dates as
        YYMMDD or YYYY-MM-DD; :class:`ValueError` says what is wrong."""
        number = document_number.strip().upper().replace(" ", "")
        if not re.fullmatch(r"[A-Z0-9<]{1,9}", number):
            raise ValueError("the document number is 1 to 9 letters and digits")
        return cls(number, _yymmdd(birth_date, "birth date"), _yymmdd(expiry_date, "expiry date"))

    def information(self) -> bytes:
        """The MRZ information: each field with its check digit (Part 11, 9.7.2)."""
        number = self.document_number.ljust(9, "<")
        fields = (number, self.birth_date, self.expiry_date)
        return "".join(field + check_digit(field) for field in fields).encode("ascii")

    def keys(self) -> sm.SessionKeys:
        seed = hashlib.sha1(self.information()).digest()[:16]  # noqa: S324 - ICAO's KDF
        return sm.derive_keys(seed, "3DES", 128)


def _yymmdd(text: str, name: str) -> str:
    text = text.strip()
    if re.fullmatch(r"\d{6}", text):
        return text
    try:
        return date.fromisoformat(text).strftime("%y%m%d")
    except ValueError:
        raise ValueError(f"the {name} is YYMMDD or YYYY-MM-DD") from None


def des3_cbc(key: bytes, data: bytes, *, decrypt: bool = False) -> bytes:
    """Two-key 3DES-CBC, zero IV, no padding: BAC's cryptograms are whole blocks."""
    cipher = Cipher(TripleDES(key[:16] + key[:8]), modes.CBC(bytes(8)))
    worker = cipher.decryptor() if decrypt else cipher.encryptor()
    return worker.update(data) + worker.finalize()


def retail_mac(key: bytes, data: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 with DES over ``data`` padded by method 2."""
    padded = sm.pad(data, 8)
    single = Cipher(TripleDES(key[:8] * 3), modes.CBC(bytes(8))).encryptor()
    chained = (single.update(padded) + single.finalize())[-16:-8] if len(padded) > 8 else bytes(8)
    last = bytes(a ^ b for a, b in zip(chained, padded[-8:], strict=True))
    return des3_cbc(key, last)


@dataclass
class SecureChannel:
    """Secure messaging with the chip: the session keys and the send sequence counter."""

    transport: Transport
    keys: sm.SessionKeys
    ssc: int

    def send(
        self, header: bytes, data: bytes = b"", expected_length: int | None = None
    ) -> sm.Response:
        """One wrapped command and its unwrapped response; a response whose MAC fails
        ends the session (the chip or the radio link cannot be trusted any more)."""
        self.ssc += 1
        apdu = sm.protect_command(self.keys, self.ssc, header, data, expected_length)
        reply = self.transport.transmit(apdu)
        self.ssc += 1
        if not reply.data:  # an error status sent in the clear ends SM on most chips
            return sm.Response(b"", reply.status)
        try:
            return sm.unprotect_response(
                self.keys, self.ssc, reply.data + reply.status.to_bytes(2, "big")
            )
        except sm.SecureMessagingError as error:
            raise ReaderError(f"The chip's answer failed secure messaging: {error}") from error


def open_session(transport: Transport, key: MrzKey) -> SecureChannel:
    """Mutual authentication with the BAC keys of ``key``: the secure channel, or
    :class:`ReaderError` when the chip refuses them (a mistyped zone, most often)."""
    bac = key.keys()
    challenge = transport.transmit(short_apdu(GET_CHALLENGE, expected_length=NONCE_BYTES))
    if not challenge.ok or len(challenge.data) != NONCE_BYTES:
        raise ReaderError(f"The chip gave no challenge (status {challenge.status:04X}).")
    rnd_ic = challenge.data
    rnd_ifd = secrets.token_bytes(NONCE_BYTES)
    k_ifd = secrets.token_bytes(16)
    cryptogram = des3_cbc(bac.enc, rnd_ifd + rnd_ic + k_ifd)
    message = cryptogram + retail_mac(bac.mac, cryptogram)
    answer = transport.transmit(short_apdu(EXTERNAL_AUTHENTICATE, message, 40))
    if not answer.ok or len(answer.data) != 40:
        raise ReaderError(
            "The chip refused the key: check the document number, birth date and expiry "
            f"date as printed in the zone (status {answer.status:04X})."
        )
    if not hmac.compare_digest(retail_mac(bac.mac, answer.data[:32]), answer.data[32:]):
        raise ReaderError("The chip's authentication answer does not check.")
    plain = des3_cbc(bac.enc, answer.data[:32], decrypt=True)
    if plain[:8] != rnd_ic or plain[8:16] != rnd_ifd:
        raise ReaderError("The chip's authentication answer is for another challenge.")
    seed = bytes(a ^ b for a, b in zip(k_ifd, plain[16:32], strict=True))
    ssc = int.from_bytes(rnd_ic[-4:] + rnd_ifd[-4:], "big")
    return SecureChannel(transport, sm.derive_keys(seed, "3DES", 128), ssc)
