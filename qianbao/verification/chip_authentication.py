"""Chip authentication run by the server through the phone (ICAO Doc 9303 Part 11, 6.2).

A chip that has DG14 holds a static key pair for chip authentication; DG14, vouched for
by passive authentication, carries the public half. Whoever holds an ephemeral key pair
on the same domain parameters can agree session keys with the chip; only a chip holding
the private static key can then speak secure messaging with them. A copy of the files
cannot: files copy perfectly, private keys do not leave the chip.

The phone cannot be trusted to say that chip authentication succeeded, so the server
keeps the ephemeral private key and the phone only relays:

1. :func:`start`: the server picks a protocol and key that DG14 offers, makes an
   ephemeral key pair, agrees the session keys itself (it has the chip's public key),
   and wraps one command for the chip: READ BINARY of DG1 by its short file identifier,
   at send sequence counter 1. The phone gets the protocol OID, the key id, the
   ephemeral public key and that command; the server keeps the session keys, sealed.
2. The phone runs chip authentication with the ephemeral public key (MSE:Set AT and
   GENERAL AUTHENTICATE, or MSE:Set KAT for 3DES) inside its BAC or PACE session, sends
   the wrapped command as the first one of the new session, and uploads the chip's
   response with the files.
3. :func:`finish`: the response must be wrapped at counter 2 under the session keys (its
   MAC checks), say 9000, and carry DG1 exactly as uploaded. Nobody but the chip could
   have made it, and it is good for this one challenge only.

Supported: ECDH keys (named or explicit curves) with 3DES or AES-128/192/256. Chips
with only a DH key (rare) fall back to passive authentication and active authentication
if they have DG15.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from qianbao.errors import InvalidInput
from qianbao.i18n import N_
from qianbao.verification import secure_messaging as sm
from qianbao.verification.chip import ChipSecurityInfo, garbage, parse_dg14
from qianbao.verification.trust import UnsupportedAlgorithmError, load_public_key

# Doc 9303 Part 11, 9.2.6: the ECDH chip-authentication protocols and their suites.
ECDH_PROTOCOLS: Final[dict[str, tuple[sm.CipherName, int]]] = {
    "0.4.0.127.0.7.2.2.3.2.1": ("3DES", 128),  # id-CA-ECDH-3DES-CBC-CBC
    "0.4.0.127.0.7.2.2.3.2.2": ("AES", 128),  # id-CA-ECDH-AES-CBC-CMAC-128
    "0.4.0.127.0.7.2.2.3.2.3": ("AES", 192),
    "0.4.0.127.0.7.2.2.3.2.4": ("AES", 256),
}
# Without a ChipAuthenticationInfo, a chip offers CA version 1 with 3DES (Part 11, 9.2.6).
DEFAULT_PROTOCOL: Final = "0.4.0.127.0.7.2.2.3.2.1"
_PREFERENCE: Final = (
    "0.4.0.127.0.7.2.2.3.2.4",
    "0.4.0.127.0.7.2.2.3.2.3",
    "0.4.0.127.0.7.2.2.3.2.2",
    DEFAULT_PROTOCOL,
)
# READ BINARY (B0) of the file with short EF identifier 1 (DG1): P1 = 0x80 | SFI.
READ_DG1_HEADER: Final = bytes((0x00, 0xB0, 0x81, 0x00))
COMMAND_SSC: Final = 1  # the counter is reset to 0 by chip authentication
RESPONSE_SSC: Final = 2


@dataclass(frozen=True)
class Offer:
    """A chip-authentication protocol and key that DG14 offers and Qianbao can run."""

    protocol_oid: str
    key_id: int | None
    public_key: ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class Challenge:
    """What the phone needs: run CA with this key, then send ``command`` to the chip."""

    protocol_oid: str
    key_id: int | None
    ephemeral_public_key: bytes  # an uncompressed point
    command: bytes


@dataclass(frozen=True, repr=False)
class Pending:
    """What the server keeps until the answer arrives (sealed, it holds session keys)."""

    keys: sm.SessionKeys
    dg1_sha256: bytes
    dg14_sha256: bytes

    def __repr__(self) -> str:
        return f"Pending({self.keys!r})"

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "cipher": self.keys.cipher,
                "enc": self.keys.enc.hex(),
                "mac": self.keys.mac.hex(),
                "dg1": self.dg1_sha256.hex(),
                "dg14": self.dg14_sha256.hex(),
            }
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Pending:
        fields = json.loads(data)
        keys = sm.SessionKeys(
            fields["cipher"], bytes.fromhex(fields["enc"]), bytes.fromhex(fields["mac"])
        )
        return cls(keys, bytes.fromhex(fields["dg1"]), bytes.fromhex(fields["dg14"]))


# --- the errors a person can see ------------------------------------------------------


def failed() -> InvalidInput:
    return InvalidInput(
        "chip.chip_auth",
        N_(
            "The passport chip did not prove that it is the original chip: its answer to "
            "the chip-authentication challenge is wrong. Read the chip again; if this "
            "repeats, the chip may be a copy."
        ),
    )


def missing() -> InvalidInput:
    return InvalidInput(
        "chip.chip_auth_missing",
        N_(
            "This passport chip can prove that it is the original, but it was not asked "
            "to. Ask for a chip-authentication challenge, let the chip answer it, and "
            "send its answer with the files."
        ),
    )


def files_changed() -> InvalidInput:
    return InvalidInput(
        "chip.chip_auth_files",
        N_(
            "The files sent are not the ones the chip-authentication challenge was made "
            "for. Read the chip again and send what was read in that same session."
        ),
    )


def expired() -> InvalidInput:
    return InvalidInput(
        "chip.chip_auth_expired",
        N_(
            "The chip-authentication challenge has expired or was already answered. Ask "
            "for a new one and let the chip answer it."
        ),
    )


def unsupported() -> InvalidInput:
    return InvalidInput(
        "chip.chip_auth_unsupported",
        N_("This passport chip offers no kind of chip authentication that Qianbao can run."),
    )


# --- choosing, starting, finishing ------------------------------------------------------


def choose(security: ChipSecurityInfo) -> Offer | None:
    """The strongest ECDH protocol DG14 offers with a key Qianbao can read, if any."""
    infos = security.chip_authentication_infos
    offered = [(info.protocol_oid, info.key_id) for info in infos] or [(DEFAULT_PROTOCOL, None)]
    offered = [entry for entry in offered if entry[0] in ECDH_PROTOCOLS]
    offered.sort(key=lambda entry: _PREFERENCE.index(entry[0]))
    for protocol_oid, key_id in offered:
        for key in security.chip_authentication_keys:
            if key.protocol != "id-PK-ECDH" or (key_id is not None and key.key_id != key_id):
                continue
            public_key = _ec_key(key.spki)
            if public_key is not None:
                return Offer(protocol_oid, key.key_id, public_key)
    return None


def _ec_key(spki: bytes) -> ec.EllipticCurvePublicKey | None:
    try:
        key = load_public_key(spki)
    except (UnsupportedAlgorithmError, ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePublicKey) else None


def offer_of(dg14: bytes) -> Offer | None:
    return choose(parse_dg14(dg14))


def start(offer: Offer, dg14: bytes, dg1: bytes) -> tuple[Challenge, Pending]:
    """A fresh challenge for the chip whose DG14 and DG1 these are."""
    if not 0 < len(dg1) <= 256:  # one short READ BINARY; a TD3 DG1 is 93 bytes
        raise garbage("EF.DG1")
    ephemeral = ec.generate_private_key(offer.public_key.curve)
    shared_secret = ephemeral.exchange(ec.ECDH(), offer.public_key)  # the x-coordinate
    cipher, bits = ECDH_PROTOCOLS[offer.protocol_oid]
    keys = sm.derive_keys(shared_secret, cipher, bits)
    command = sm.protect_command(keys, COMMAND_SSC, READ_DG1_HEADER, expected_length=len(dg1))
    point = ephemeral.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    challenge = Challenge(offer.protocol_oid, offer.key_id, point, command)
    return challenge, Pending(keys, _sha256(dg1), _sha256(dg14))


def finish(pending: Pending, response: bytes, dg14: bytes, dg1: bytes) -> None:
    """Accept the chip's answer, or refuse: ``chip.chip_auth_files`` when the files are
    not the ones challenged, ``chip.chip_auth`` when the answer is wrong."""
    if not (
        hmac.compare_digest(_sha256(dg14), pending.dg14_sha256)
        and hmac.compare_digest(_sha256(dg1), pending.dg1_sha256)
    ):
        raise files_changed()
    try:
        answer = sm.unprotect_response(pending.keys, RESPONSE_SSC, response)
    except sm.SecureMessagingError:
        raise failed() from None
    if answer.status != sm.SW_OK or not hmac.compare_digest(answer.data, dg1):
        raise failed()


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
