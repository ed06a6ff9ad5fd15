"""The passport chip: its files, passive and active authentication (ICAO Doc 9303).

A phone reads the chip over NFC (BAC or PACE, keyed by the zone) and uploads the raw
elementary files: EF.SOD, EF.DG1 (the zone), EF.DG2 (the face), and EF.DG14 and EF.DG15
when the chip has them. This module checks them; nothing here touches a database.

**Files** (Doc 9303 Part 10). Each file is one BER-TLV with the data group's
application tag (``61`` for DG1 ... ``77`` for the SOD). DG1 holds the zone in ``5F1F``,
read with :func:`qianbao.verification.mrz.parse_td3` so every check digit is checked
again. DG2 holds a biometric information group template (``7F61`` / ``7F60`` /
``5F2E``) whose data block is an ISO/IEC 19794-5 facial record: its image, JPEG or JPEG
2000, is decoded with Pillow (openjpeg) restricted to the format the record states.
A file is hashed exactly as its TLV spans; bytes after it are ignored, never read.

**Passive authentication** (Doc 9303 Part 11 section 5, Part 12). The SOD is a CMS
SignedData over an LDSSecurityObject (the hash of each data group). Checked in order:
the signature over the signed attributes with the Document Signer (DS) certificate the
SOD carries (:func:`qianbao.verification.trust.verify_signed_data`); that the DS
certificate was signed by a CSCA of the trust store, matched by authority key
identifier or issuer name; that it is valid on the check date and not on a CRL of the
store; that every hash has the size of the SOD's stated algorithm; and that each
uploaded data group hashes, with that algorithm, to its entry. A data group the SOD
does not list is refused rather than ignored: its content would be unauthenticated.
Passive authentication proves the files are the ones the issuing state signed. It
does not prove they came from the original chip: files copy perfectly.

**The signer's country.** Passive authentication alone proves that some CSCA of the
store vouched for the chip, not that it was the issuing state's. Once DG1 is read, the
countryName of the Document Signer and of its CSCA must both be the issuing state of the
zone (:mod:`qianbao.verification.countries` maps the zone's ICAO code to ISO 3166-1
alpha-2, ``D`` to ``DE``, ``GBN`` to ``GB`` ...), or a pair the operator allowed
(``chip.signer_country`` otherwise): one state's signer never passes for another's.

**Active authentication** (Doc 9303 Part 11 section 6) is what catches such a copy.
DG15 holds the chip's public key; the chip's private key never leaves it. The server
makes a fresh 8-byte challenge, the phone has the chip sign it, and the server checks
the signature here: RSA per ISO/IEC 9796-2 digital signature scheme 1 (partial message
recovery; trailer ``BC`` for SHA-1 or ``xxCC`` naming the hash), or ECDSA with a plain
``r || s`` signature over the challenge, hashed as DG14's ActiveAuthenticationInfo
says, or by curve size when it says nothing. A clone has the files but not the key.
When DG15 is present the caller should always send a challenge; without one the
result says ``active_authentication="not_run"`` and a clone is not caught.

**Chip authentication** (BSI TR-03110, Doc 9303 Part 11 section 6.2) also proves the
chip is genuine: DG14 holds a key-agreement public key, and only a chip holding the
private half can speak secure messaging under the session keys agreed with it. The
server runs it through the phone, keeping the ephemeral key itself
(:mod:`qianbao.verification.chip_authentication`); this module reads what DG14 offers
(:func:`parse_dg14`), which passive authentication vouches for.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import ClassVar, Final, Literal

from asn1crypto import algos, core, keys
from cryptography.hazmat.primitives.asymmetric import dh, ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key
from PIL import Image

from qianbao.errors import InvalidInput
from qianbao.i18n import N_
from qianbao.verification import countries
from qianbao.verification.mrz import PassportMrz, parse_td3
from qianbao.verification.trust import (
    ECDSA_HASH_BY_OID,
    HASH_SIZES,
    Certificate,
    DerReader,
    HashName,
    PublicKey,
    SignatureAlgorithm,
    SignedContent,
    SignedDataError,
    SignedDataSource,
    TrustStore,
    UnsupportedAlgorithmError,
    algorithm_oid,
    digest,
    hash_name,
    load_public_key,
    read_signed_data,
    verify_signature,
    verify_signed_data,
)

# Doc 9303 Part 10, table 34: the application tag that opens each elementary file.
SOD_TAG: Final = 0x77
DATA_GROUP_TAGS: Final[Mapping[int, int]] = {
    1: 0x61, 2: 0x75, 3: 0x63, 4: 0x76, 5: 0x65, 6: 0x66, 7: 0x67, 8: 0x68,
    9: 0x69, 10: 0x6A, 11: 0x6B, 12: 0x6C, 13: 0x6D, 14: 0x6E, 15: 0x6F, 16: 0x70,
}  # fmt: skip
MRZ_TAG: Final = 0x5F1F
BIOMETRIC_GROUP_TAG: Final = 0x7F61
BIOMETRIC_TEMPLATE_TAG: Final = 0x7F60
BIOMETRIC_DATA_TAGS: Final = frozenset((0x5F2E, 0x7F2E))

LDS_SECURITY_OBJECT_OID: Final = "2.23.136.1.1.1"
ACTIVE_AUTHENTICATION_OID: Final = "2.23.136.1.1.5"
_PK_PREFIX: Final = "0.4.0.127.0.7.2.2.1."
_CA_PREFIX: Final = "0.4.0.127.0.7.2.2.3."
_PROTOCOL_NAMES: Final[Mapping[str, str]] = {
    "0.4.0.127.0.7.2.2.1.1": "id-PK-DH",
    "0.4.0.127.0.7.2.2.1.2": "id-PK-ECDH",
    "0.4.0.127.0.7.2.2.3.1.1": "id-CA-DH-3DES-CBC-CBC",
    "0.4.0.127.0.7.2.2.3.1.2": "id-CA-DH-AES-CBC-CMAC-128",
    "0.4.0.127.0.7.2.2.3.1.3": "id-CA-DH-AES-CBC-CMAC-192",
    "0.4.0.127.0.7.2.2.3.1.4": "id-CA-DH-AES-CBC-CMAC-256",
    "0.4.0.127.0.7.2.2.3.2.1": "id-CA-ECDH-3DES-CBC-CBC",
    "0.4.0.127.0.7.2.2.3.2.2": "id-CA-ECDH-AES-CBC-CMAC-128",
    "0.4.0.127.0.7.2.2.3.2.3": "id-CA-ECDH-AES-CBC-CMAC-192",
    "0.4.0.127.0.7.2.2.3.2.4": "id-CA-ECDH-AES-CBC-CMAC-256",
    "0.4.0.127.0.7.2.2.2": "id-TA",
    ACTIVE_AUTHENTICATION_OID: "id-icao-mrtd-security-aaProtocolObject",
}
_PACE_PREFIX: Final = "0.4.0.127.0.7.2.2.4."

# ISO/IEC 10118-3 hash identifiers, as ISO/IEC 9796-2 writes them before a CC trailer.
_ISO9796_HASH_IDS: Final[Mapping[int, HashName]] = {
    0x33: "sha1",
    0x34: "sha256",
    0x35: "sha512",
    0x36: "sha384",
    0x38: "sha224",
}
AA_CHALLENGE_LENGTH: Final = 8
# A passport portrait is about 500 x 650 pixels; far more is not a portrait (or a bomb).
MAX_FACE_PIXELS: Final = 4096 * 4096


# --- the errors a person can see ------------------------------------------------------


def _truncated(file: str) -> InvalidInput:
    return InvalidInput(
        "chip.truncated",
        N_(
            "The chip file {file} is incomplete: the reading stopped early. Hold the "
            "passport still against the phone and read the chip again."
        ),
        {"file": file},
        details={"file": file},
    )


def garbage(file: str) -> InvalidInput:
    return InvalidInput(
        "chip.garbage",
        N_(
            "The chip file {file} could not be read: it is not a valid passport chip "
            "file. Read the chip again."
        ),
        {"file": file},
        details={"file": file},
    )


def _sod_signature() -> InvalidInput:
    return InvalidInput(
        "chip.sod_signature",
        N_(
            "The passport chip's security data is not correctly signed, so its contents "
            "cannot be trusted. Verify with the passport photo page instead."
        ),
    )


def _unknown_csca() -> InvalidInput:
    return InvalidInput(
        "chip.unknown_csca",
        N_(
            "The passport chip was not signed by an authority we know for the issuing "
            "country. Verify with the passport photo page instead."
        ),
    )


def _signer_country(issuing_state: str, certificate: str) -> InvalidInput:
    return InvalidInput(
        "chip.signer_country",
        N_(
            "The passport chip was signed by an authority of another country than the "
            "one that issued this passport ({state}). Verify with the passport photo "
            "page instead."
        ),
        {"state": issuing_state},
        details={"certificate": certificate},
    )


def _algorithm_mismatch() -> InvalidInput:
    return InvalidInput(
        "chip.algorithm_mismatch",
        N_(
            "The passport chip uses a signature or hash algorithm that is not supported, "
            "or states one algorithm and uses another. Verify with the passport photo "
            "page instead."
        ),
    )


def _dg_hash(number: int) -> InvalidInput:
    return InvalidInput(
        "chip.dg_hash",
        N_(
            "Data group {number} on the passport chip does not match what the issuing "
            "country signed: it was changed or comes from another passport."
        ),
        {"number": number},
        details={"data_group": number},
    )


def _active_auth() -> InvalidInput:
    return InvalidInput(
        "chip.active_auth",
        N_(
            "The passport chip did not prove that it is the original chip: its answer "
            "to the challenge is wrong. Read the chip again; if this repeats, the chip "
            "may be a copy."
        ),
    )


# --- BER-TLV, for the LDS wrappers ----------------------------------------------------


class _TruncatedError(ValueError):
    pass


@dataclass(frozen=True)
class _Tlv:
    tag: int
    value: bytes
    end: int  # offset just past this TLV in the buffer it was read from


def _read_tlv(data: bytes, offset: int = 0) -> _Tlv:
    """One definite-length BER-TLV (Doc 9303 Part 10 uses no indefinite lengths)."""
    if offset >= len(data):
        raise _TruncatedError
    tag = data[offset]
    position = offset + 1
    if tag & 0x1F == 0x1F:  # a tag continued in the following bytes
        for _ in range(3):
            if position >= len(data):
                raise _TruncatedError
            tag = (tag << 8) | data[position]
            position += 1
            if not data[position - 1] & 0x80:
                break
        else:
            raise ValueError("tag too long")
    if position >= len(data):
        raise _TruncatedError
    first = data[position]
    position += 1
    if first < 0x80:
        length = first
    elif first == 0x80 or first > 0x84:
        raise ValueError("indefinite or oversized length")
    else:
        count = first & 0x7F
        if position + count > len(data):
            raise _TruncatedError
        length = int.from_bytes(data[position : position + count], "big")
        position += count
    if position + length > len(data):
        raise _TruncatedError
    return _Tlv(tag, data[position : position + length], position + length)


def _children(value: bytes) -> list[_Tlv]:
    found: list[_Tlv] = []
    offset = 0
    while offset < len(value):
        tlv = _read_tlv(value, offset)
        found.append(tlv)
        offset = tlv.end
    return found


def _child(value: bytes, tag: int) -> _Tlv:
    for tlv in _children(value):
        if tlv.tag == tag:
            return tlv
    raise ValueError(f"no tag {tag:X}")


def _file_name(number: int) -> str:
    return "EF.SOD" if number == 0 else f"EF.DG{number}"


def _open_file(data: bytes, number: int) -> _Tlv:
    """The outer TLV of data group ``number`` (0 for the SOD), its tag checked."""
    expected = SOD_TAG if number == 0 else DATA_GROUP_TAGS.get(number)
    if expected is None:
        raise garbage(_file_name(number))
    try:
        tlv = _read_tlv(data)
    except _TruncatedError:
        raise _truncated(_file_name(number)) from None
    except ValueError:
        raise garbage(_file_name(number)) from None
    if tlv.tag != expected:
        raise garbage(_file_name(number))
    return tlv


# --- the files ------------------------------------------------------------------------


def parse_dg1(
    data: bytes, *, today: date, extra_codes: Collection[str] = frozenset()
) -> PassportMrz:
    """The zone in DG1, every check digit checked by :func:`parse_td3`.

    A zone that is not a passport's two lines of 44 (an identity card's TD1 or TD2) is
    refused with ``chip.not_passport``; a zone that fails its own checks keeps
    :func:`parse_td3`'s ``mrz.*`` codes.
    """
    tlv = _open_file(data, 1)
    try:
        zone = _child(tlv.value, MRZ_TAG).value.decode("ascii")
    except _TruncatedError:
        raise _truncated("EF.DG1") from None
    except ValueError:  # UnicodeDecodeError included
        raise garbage("EF.DG1") from None
    if len(zone) != 88:
        raise InvalidInput(
            "chip.not_passport",
            N_(
                "This chip does not hold a passport's machine-readable zone (it may be an "
                "identity card). Use a passport."
            ),
        )
    return parse_td3(zone[:44], zone[44:], today=today, extra_codes=extra_codes)


@dataclass(frozen=True)
class FaceImage:
    image: Image.Image  # RGB
    format: Literal["JPEG", "JPEG2000"]


def parse_dg2(data: bytes) -> Image.Image:
    """The first face image in DG2, decoded to an RGB PIL image."""
    return read_dg2(data).image


def read_dg2(data: bytes) -> FaceImage:
    """The first face of DG2 and the format it was stored in."""
    tlv = _open_file(data, 2)
    try:
        group = _child(tlv.value, BIOMETRIC_GROUP_TAG)
        template = _child(group.value, BIOMETRIC_TEMPLATE_TAG)
        block = next(t for t in _children(template.value) if t.tag in BIOMETRIC_DATA_TAGS)
        image_type, image_bytes = _facial_record_image(block.value)
    except _TruncatedError:
        raise _truncated("EF.DG2") from None
    except (ValueError, StopIteration):
        raise garbage("EF.DG2") from None
    return FaceImage(_decode_face(image_bytes, image_type), image_type)


def _facial_record_image(record: bytes) -> tuple[Literal["JPEG", "JPEG2000"], bytes]:
    """The image of the first face of an ISO/IEC 19794-5:2005 facial record.

    The general header is 14 bytes ("FAC\\0", version, record length, face count);
    each face has a 20-byte information block, 8 bytes per feature point, a 12-byte
    image information block whose second byte is the image data type (0 JPEG,
    1 JPEG 2000), and then the image, up to the end of the face's block.
    """
    if len(record) < 14 + 20 + 12 or record[:4] != b"FAC\x00":
        raise ValueError("not a facial record")
    record_length = int.from_bytes(record[8:12], "big")
    if record_length > len(record):
        raise _TruncatedError
    face = record[14:]
    block_length = int.from_bytes(face[0:4], "big")
    feature_points = int.from_bytes(face[4:6], "big")
    image_info = 20 + 8 * feature_points
    image_start = image_info + 12
    if block_length > len(face):
        raise _TruncatedError
    if block_length < image_start:
        raise ValueError("facial block too short")
    data_type = face[image_info + 1]
    image = face[image_start:block_length]
    if data_type == 0 and image.startswith(b"\xff\xd8"):
        return "JPEG", image
    is_jp2 = image.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n")
    if data_type == 1 and (is_jp2 or image.startswith(b"\xff\x4f\xff\x51")):
        return "JPEG2000", image
    raise ValueError("image type and content disagree")


def _decode_face(image_bytes: bytes, image_type: Literal["JPEG", "JPEG2000"]) -> Image.Image:
    # Only the stated format's decoder ever sees the bytes, the size is checked from the
    # header before pixels are allocated, and a cut-off image fails rather than coming
    # back partly grey (Pillow's LOAD_TRUNCATED_IMAGES stays off).
    try:
        image = Image.open(io.BytesIO(image_bytes), formats=[image_type])
        width, height = image.size
        if width * height > MAX_FACE_PIXELS or min(width, height) < 1:
            raise garbage("EF.DG2")
        image.load()
        return image.convert("RGB")
    except InvalidInput:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError):
        raise garbage("EF.DG2") from None


def parse_dg15(data: bytes) -> PublicKey:
    """The active-authentication public key in DG15 (RSA or EC)."""
    tlv = _open_file(data, 15)
    try:
        return load_public_key(tlv.value)
    except UnsupportedAlgorithmError:
        raise _algorithm_mismatch() from None
    except (ValueError, TypeError):
        raise garbage("EF.DG15") from None


class _SecurityInfo(core.Sequence):  # type: ignore[misc]
    """SecurityInfo ::= SEQUENCE { protocol OID, requiredData ANY, optionalData ANY OPTIONAL }."""

    _fields: ClassVar[list[tuple[str, type[core.Asn1Value], dict[str, bool]]]] = [
        ("protocol", core.ObjectIdentifier, {}),
        ("required_data", core.Any, {}),
        ("optional_data", core.Any, {"optional": True}),
    ]


class _SecurityInfos(core.SetOf):  # type: ignore[misc]
    _child_spec = _SecurityInfo


@dataclass(frozen=True)
class ChipAuthenticationKey:
    protocol: str  # "id-PK-ECDH" or "id-PK-DH"
    key_id: int | None
    key: str  # "EC brainpoolP256r1", "DH 2048-bit", or what could not be read
    spki: bytes = field(default=b"", repr=False)  # the DER SubjectPublicKeyInfo


@dataclass(frozen=True)
class ChipAuthenticationInfo:
    protocol_oid: str  # id-CA-ECDH-AES-CBC-CMAC-128 and the like
    version: int
    key_id: int | None


@dataclass(frozen=True)
class ChipSecurityInfo:
    """What DG14 offers: the keys and protocols of chip authentication
    (:mod:`qianbao.verification.chip_authentication` runs it), the AA hash, the rest."""

    chip_authentication_keys: tuple[ChipAuthenticationKey, ...]
    chip_authentication_protocols: tuple[str, ...]  # "id-CA-ECDH-AES-CBC-CMAC-128 v1"
    chip_authentication_infos: tuple[ChipAuthenticationInfo, ...]
    active_authentication_hash: HashName | None  # from ActiveAuthenticationInfo
    other_protocols: tuple[str, ...]  # PACE, TA and the like, by name or OID


def parse_dg14(data: bytes) -> ChipSecurityInfo:
    """The SecurityInfos of DG14: chip-authentication keys and protocols, the AA hash."""
    tlv = _open_file(data, 14)
    ca_keys: list[ChipAuthenticationKey] = []
    ca_protocols: list[str] = []
    ca_infos: list[ChipAuthenticationInfo] = []
    aa_hash: HashName | None = None
    others: list[str] = []
    try:
        for info in _SecurityInfos.load(tlv.value):
            oid = info["protocol"].dotted
            name = _PROTOCOL_NAMES.get(oid, oid)
            if oid.startswith(_PK_PREFIX):
                ca_keys.append(_chip_authentication_key(name, info))
            elif oid.startswith(_CA_PREFIX):
                ca_infos.append(_chip_authentication_info(oid, info))
                ca_protocols.append(f"{name} v{ca_infos[-1].version}")
            elif oid == ACTIVE_AUTHENTICATION_OID:
                aa_hash = _active_authentication_hash(info)
            else:
                others.append("PACE " + oid if oid.startswith(_PACE_PREFIX) else name)
    except (ValueError, TypeError, KeyError):
        raise garbage("EF.DG14") from None
    return ChipSecurityInfo(
        tuple(ca_keys), tuple(ca_protocols), tuple(ca_infos), aa_hash, tuple(others)
    )


def _chip_authentication_info(oid: str, info: _SecurityInfo) -> ChipAuthenticationInfo:
    # ChipAuthenticationInfo ::= SEQUENCE { protocol, version INTEGER, keyId INTEGER OPTIONAL }
    version = int(info["required_data"].parse(core.Integer).native)
    key_id = None
    if info["optional_data"].native is not None:
        key_id = int(info["optional_data"].parse(core.Integer).native)
    return ChipAuthenticationInfo(oid, version, key_id)


def _chip_authentication_key(protocol: str, info: _SecurityInfo) -> ChipAuthenticationKey:
    spki = info["required_data"].parse(keys.PublicKeyInfo)
    key_id = None
    if info["optional_data"].native is not None:
        key_id = int(info["optional_data"].parse(core.Integer).native)
    return ChipAuthenticationKey(protocol, key_id, _describe_key(spki.dump()), spki.dump())


def _describe_key(spki: bytes) -> str:
    try:
        key = load_public_key(spki)
    except UnsupportedAlgorithmError:
        try:
            other = load_der_public_key(spki)
        except (ValueError, TypeError, UnsupportedAlgorithmError):
            return "unsupported key"
        if isinstance(other, dh.DHPublicKey):
            return f"DH {other.key_size}-bit"
        return "unsupported key"
    except (ValueError, TypeError):
        return "unsupported key"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    return f"RSA {key.key_size}-bit"


def _active_authentication_hash(info: _SecurityInfo) -> HashName:
    # ActiveAuthenticationInfo ::= SEQUENCE { protocol, version INTEGER, signatureAlgorithm OID }
    algorithm = info["optional_data"].parse(core.ObjectIdentifier).dotted
    if algorithm not in ECDSA_HASH_BY_OID:
        raise _algorithm_mismatch()
    return ECDSA_HASH_BY_OID[algorithm]


# --- passive authentication -----------------------------------------------------------

log = logging.getLogger(__name__)
# What a CRL past its nextUpdate does to a chip whose signer's CSCA issued it (setting
# ``chip_stale_crl``): "refuse" the chip, or "warn" (accept it, log a warning).
StaleCrlRule = Literal["refuse", "warn"]


class _DataGroupHash(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[tuple[str, type[core.Asn1Value]]]] = [
        ("data_group_number", core.Integer),
        ("data_group_hash_value", core.OctetString),
    ]


class _DataGroupHashes(core.SequenceOf):  # type: ignore[misc]
    _child_spec = _DataGroupHash


class _LdsVersionInfo(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[tuple[str, type[core.Asn1Value]]]] = [
        ("lds_version", core.PrintableString),
        ("unicode_version", core.PrintableString),
    ]


class LdsSecurityObject(core.Sequence):  # type: ignore[misc]
    """LDSSecurityObject (Doc 9303 Part 10, section 4.6.2)."""

    _fields: ClassVar[list[tuple[str, type[core.Asn1Value], dict[str, bool]]]] = [
        ("version", core.Integer, {}),
        ("hash_algorithm", algos.DigestAlgorithm, {}),
        ("data_group_hash_values", _DataGroupHashes, {}),
        ("lds_version_info", _LdsVersionInfo, {"optional": True}),
    ]


@dataclass(frozen=True)
class PassiveAuthentication:
    document_signer: str  # the DS certificate's subject (RFC 4514)
    country_signer: str  # the CSCA that issued it
    signature_algorithm: str  # of the SOD, e.g. "RSA-PSS with SHA-256, MGF1 SHA-256, salt 32"
    digest_algorithm: HashName  # of the data-group hashes
    data_groups: tuple[int, ...]  # uploaded, listed in the SOD and matching it
    listed: tuple[int, ...] = ()  # every data group the SOD lists, uploaded or not
    # The subjects' countryName (ISO 3166-1 alpha-2), for :func:`check_signer_country`.
    document_signer_country: str | None = None
    country_signer_country: str | None = None
    # The day the CSCA's newest CRL was due to be replaced, when that day has passed.
    crl_overdue_since: date | None = None


def verify_passive(
    sod: bytes,
    data_groups: Mapping[int, bytes],
    trust: TrustStore,
    *,
    today: date,
    stale_crl: StaleCrlRule = "warn",
) -> PassiveAuthentication:
    """Passive authentication of ``data_groups`` (number to file bytes) against ``sod``;
    a CRL of the CSCA past its nextUpdate is handled as ``stale_crl`` says (its
    revocations count either way)."""
    signed_data = _parse_sod(sod)
    files = {number: data[: _open_file(data, number).end] for number, data in data_groups.items()}
    signed, lds_hash, listed = _signed_hashes(signed_data)
    document_signer = signed.signer
    csca = trust.issuer_of(document_signer, today=today)
    if csca is None:
        raise _unknown_csca()
    if not document_signer.is_valid_on(today):
        raise InvalidInput(
            "chip.ds_expired",
            N_(
                "The certificate that signed this passport chip is not valid on {today}. "
                "Verify with the passport photo page instead."
            ),
            {"today": today.isoformat()},
        )
    if trust.is_revoked(document_signer):
        raise InvalidInput(
            "chip.ds_revoked",
            N_(
                "The issuing country has revoked the certificate that signed this passport "
                "chip. Verify with the passport photo page instead."
            ),
        )
    overdue = _crl_overdue_since(trust, csca, today, stale_crl)
    numbers = tuple(sorted(files))
    for number in numbers:
        expected = listed.get(number)
        if expected is None or digest(lds_hash, files[number]) != expected:
            raise _dg_hash(number)
    return PassiveAuthentication(
        document_signer=document_signer.subject,
        country_signer=csca.subject,
        signature_algorithm=signed.algorithm.describe(),
        digest_algorithm=lds_hash,
        data_groups=numbers,
        listed=tuple(sorted(listed)),
        document_signer_country=document_signer.country,
        country_signer_country=csca.country,
        crl_overdue_since=overdue,
    )


def _crl_overdue_since(
    trust: TrustStore, csca: Certificate, today: date, rule: StaleCrlRule
) -> date | None:
    """The nextUpdate of the CSCA's newest CRL when ``today`` is past it: refused with
    ``chip.crl_overdue`` under "refuse", logged under "warn"; None when it is current
    (or the store holds no CRL of the CSCA)."""
    next_update = trust.crl_next_update(csca)
    if next_update is None or next_update.date() >= today:
        return None
    if rule == "refuse":
        raise InvalidInput(
            "chip.crl_overdue",
            N_(
                "The issuing country's list of revoked passport certificates that we hold "
                "is out of date (a new one was due on {since}), so this passport chip "
                "cannot be checked now. Verify with the passport photo page instead, or "
                "try again later."
            ),
            {"since": next_update.date().isoformat()},
        )
    log.warning(
        "chip accepted with an overdue CRL: %s was due to issue a new CRL on %s",
        csca.subject,
        next_update.date().isoformat(),
    )
    return next_update.date()


def _parse_sod(data: bytes) -> SignedDataSource:
    tlv = _open_file(data, 0)
    try:
        return read_signed_data(tlv.value)
    except (ValueError, TypeError, KeyError):
        raise garbage("EF.SOD") from None


def _signed_hashes(
    signed_data: SignedDataSource,
) -> tuple[SignedContent, HashName, dict[int, bytes]]:
    """The verified SOD's signer and its data-group hashes (number to hash)."""
    try:
        signed = verify_signed_data(signed_data, LDS_SECURITY_OBJECT_OID)
        lds_hash, listed = _read_lds(signed.content)
    except SignedDataError as error:
        if error.reason == "signature":
            raise _sod_signature() from None
        if error.reason == "signer_missing":
            raise _unknown_csca() from None
        raise garbage("EF.SOD") from None
    except UnsupportedAlgorithmError:
        raise _algorithm_mismatch() from None
    except (ValueError, TypeError, KeyError):
        raise garbage("EF.SOD") from None
    # A hash of another size than the stated algorithm's was made with another one.
    if any(len(value) != HASH_SIZES[lds_hash] for value in listed.values()):
        raise _algorithm_mismatch()
    return signed, lds_hash, listed


def _read_lds(content: bytes) -> tuple[HashName, dict[int, bytes]]:
    """The LDSSecurityObject's hash algorithm and hashes (a number listed twice: the
    last). Plain DER is read with :class:`DerReader`, as the SignedData around it is;
    anything else by asn1crypto, which then decides what is malformed."""
    try:
        algorithm, listed = _read_lds_der(content)
    except ValueError:
        lds = LdsSecurityObject.load(content, strict=True)
        lds_hash = hash_name(lds["hash_algorithm"]["algorithm"].dotted)
        return lds_hash, {
            int(entry["data_group_number"].native): bytes(entry["data_group_hash_value"].native)
            for entry in lds["data_group_hash_values"]
        }
    return hash_name(algorithm), listed


def _read_lds_der(content: bytes) -> tuple[str, dict[int, bytes]]:
    outer = DerReader(content)
    lds = outer.enter(0x30)
    outer.done()
    lds.integer()  # version
    algorithm = algorithm_oid(lds.encoded(0x30))
    hashes = lds.enter(0x30)
    if lds.peek() is not None:
        lds.read(0x30)  # ldsVersionInfo (LDS 1.8): not used
    lds.done()
    listed: dict[int, bytes] = {}
    while hashes.peek() is not None:
        entry = hashes.enter(0x30)
        number = entry.integer()
        listed[number] = entry.contents(0x04)
        entry.done()
    return algorithm, listed


# --- active authentication ------------------------------------------------------------


def verify_active_authentication(
    key: PublicKey, challenge: bytes, signature: bytes, *, ecdsa_hash: HashName | None = None
) -> str:
    """Check the chip's signature over the server's challenge; returns the scheme used.

    Raises ``chip.active_auth`` when it does not verify.
    """
    if len(challenge) != AA_CHALLENGE_LENGTH:
        raise ValueError("an active-authentication challenge is 8 bytes")
    if isinstance(key, rsa.RSAPublicKey):
        used = _verify_iso9796_2(key, challenge, signature)
        if used is None:
            raise _active_auth()
        return f"RSA ISO/IEC 9796-2 scheme 1 with {used.upper().replace('SHA', 'SHA-')}"
    chosen = ecdsa_hash or _hash_for_curve(key.curve.key_size)
    algorithm = SignatureAlgorithm("ecdsa", chosen, plain_ecdsa=True)
    if not verify_signature(key, algorithm, signature, challenge):
        # Some chips answer with a DER signature; the same check, read as DER.
        der = SignatureAlgorithm("ecdsa", chosen)
        if not verify_signature(key, der, signature, challenge):
            raise _active_auth()
    return algorithm.describe()


def _hash_for_curve(bits: int) -> HashName:
    if bits <= 224:
        return "sha224"
    if bits <= 256:
        return "sha256"
    if bits <= 384:
        return "sha384"
    return "sha512"


def _verify_iso9796_2(key: rsa.RSAPublicKey, challenge: bytes, signature: bytes) -> HashName | None:
    """ISO/IEC 9796-2 scheme 1, partial recovery: the chip's nonce M1 is recovered from
    the signature and the hash must cover M1 followed by the challenge (M2)."""
    numbers = key.public_numbers()
    size = (numbers.n.bit_length() + 7) // 8
    value = int.from_bytes(signature, "big")
    if len(signature) > size or value >= numbers.n:
        return None
    representative = pow(value, numbers.e, numbers.n)
    # The standard lets the signer pick J or n - J; the real one ends in the nibble C.
    if representative % 16 != 12:
        representative = numbers.n - representative
        if representative % 16 != 12:
            return None
    block = representative.to_bytes(size, "big")
    if block[-1] == 0xBC:
        used: HashName = "sha1"
        trailer = 1
    elif block[-1] == 0xCC and block[-2] in _ISO9796_HASH_IDS:
        used = _ISO9796_HASH_IDS[block[-2]]
        trailer = 2
    else:
        return None
    # Header: bits "01", then 1 for partial recovery; then padding nibbles B, ended by A.
    if block[0] & 0xE0 != 0x60:
        return None
    start = next((i for i, byte in enumerate(block) if byte & 0x0F == 0x0A), None)
    hash_end = size - trailer
    hash_start = hash_end - HASH_SIZES[used]
    if start is None or start + 1 > hash_start:
        return None
    recovered = block[start + 1 : hash_start]
    if digest(used, recovered + challenge) != block[hash_start:hash_end]:
        return None
    return used


# --- everything together --------------------------------------------------------------


@dataclass(frozen=True)
class ChipFiles:
    """What the phone uploaded: EF.SOD and the data groups, by number."""

    sod: bytes
    dgs: dict[int, bytes] = field(default_factory=dict)


@dataclass(frozen=True, repr=False)
class ChipVerification:
    mrz: PassportMrz
    face: Image.Image  # RGB
    face_format: Literal["JPEG", "JPEG2000"]
    passive: PassiveAuthentication
    active_authentication: Literal["passed", "not_run", "not_supported"]
    active_authentication_algorithm: str | None
    chip_security: ChipSecurityInfo | None  # DG14, when present: reported, not verified
    checks: tuple[str, ...]  # the checks that ran and passed, in order

    def __repr__(self) -> str:
        # Passport data is personal: never whole in a log line or a traceback.
        return f"ChipVerification(checks={self.checks!r}, mrz={self.mrz!r})"


def verify_chip(
    files: ChipFiles,
    trust: TrustStore,
    *,
    today: date,
    aa_challenge: bytes | None = None,
    aa_signature: bytes | None = None,
    printed_mrz: PassportMrz | None = None,
    extra_codes: Collection[str] = frozenset(),
    country_exceptions: Collection[str] = (),
    stale_crl: StaleCrlRule = "warn",
) -> ChipVerification:
    """Everything the server can check about an uploaded chip, or the first failure.

    Order: every file's structure first (``chip.missing_dg``, ``chip.truncated``,
    ``chip.garbage``), then passive authentication, the zone, the signers' country
    against the zone's issuing state (``chip.signer_country``; ``country_exceptions``
    are the ``"STATE:CC"`` pairs allowed besides), the face, active authentication when
    DG15 and a challenge are given, and the printed zone when one was read.
    """
    for number in (1, 2):
        if number not in files.dgs:
            raise InvalidInput(
                "chip.missing_dg",
                N_(
                    "The chip reading is missing data group {number} ({what}). Read the "
                    "chip again and keep the passport still until it finishes."
                ),
                {"number": number, "what": "MRZ" if number == 1 else "face"},
                details={"data_group": number},
            )
    passive = verify_passive(files.sod, files.dgs, trust, today=today, stale_crl=stale_crl)
    _require_proof_files(passive, files)
    checks = ["sod_signature", "ds_chain", "ds_validity", "ds_revocation", "dg_hashes"]
    mrz = parse_dg1(files.dgs[1], today=today, extra_codes=extra_codes)
    check_signer_country(passive, mrz.issuing_state, country_exceptions)
    checks.append("signer_country")
    face = read_dg2(files.dgs[2])
    security = parse_dg14(files.dgs[14]) if 14 in files.dgs else None
    active: Literal["passed", "not_run", "not_supported"] = "not_supported"
    active_algorithm = None
    if 15 in files.dgs:
        active = "not_run"
        key = parse_dg15(files.dgs[15])
        if aa_challenge is not None:
            if aa_signature is None:
                raise _active_auth()
            ecdsa_hash = security.active_authentication_hash if security else None
            active_algorithm = verify_active_authentication(
                key, aa_challenge, aa_signature, ecdsa_hash=ecdsa_hash
            )
            active = "passed"
            checks.append("active_authentication")
    if printed_mrz is not None:
        compare_with_printed(mrz, printed_mrz)
        checks.append("printed_mrz")
    return ChipVerification(
        mrz=mrz,
        face=face.image,
        face_format=face.format,
        passive=passive,
        active_authentication=active,
        active_authentication_algorithm=active_algorithm,
        chip_security=security,
        checks=tuple(checks),
    )


def check_signer_country(
    passive: PassiveAuthentication, issuing_state: str, exceptions: Collection[str] = ()
) -> None:
    """Refuse with ``chip.signer_country`` unless both the Document Signer and the CSCA
    that certified it belong to the passport's issuing state (Doc 9303 Part 12: a state
    signs its own passports). Without this, any state's signer in the trust store, and
    with a full master list imported that is every state's, could sign a passport of
    any other state."""
    allowed = countries.signer_countries(issuing_state, exceptions)
    for certificate, country in (
        ("document_signer", passive.document_signer_country),
        ("country_signer", passive.country_signer_country),
    ):
        if country is None or country not in allowed:
            raise _signer_country(issuing_state, certificate)


# The data groups by which a chip proves it is the original: DG15 (active
# authentication's key) and DG14 (chip authentication's). The SOD signs the list of the
# chip's data groups, so a reading that leaves one out is refused: otherwise a copied chip
# would pass by having its reader simply not send the files that would unmask it.
_PROOF_FILES: Final = (14, 15)


def _require_proof_files(passive: PassiveAuthentication, files: ChipFiles) -> None:
    for number in _PROOF_FILES:
        if number in passive.listed and number not in files.dgs:
            raise InvalidInput(
                "chip.missing_proof",
                N_(
                    "The chip reading is missing data group {number}, which this chip has "
                    "and which proves it is the original chip. Read the chip again and keep "
                    "the passport still until it finishes."
                ),
                {"number": number},
                details={"data_group": number},
            )


_COMPARED_FIELDS: Final = (
    "document_type",
    "issuing_state",
    "surname",
    "given_names",
    "document_number",
    "nationality",
    "birth_date",
    "sex",
    "expiry_date",
    "optional_data",
)


def compare_with_printed(dg1_mrz: PassportMrz, printed: PassportMrz) -> None:
    """Refuse with ``chip.mrz_mismatch`` unless the chip's zone says what the page says.

    The details name the fields that differ, never their values.
    """
    differing = [
        name for name in _COMPARED_FIELDS if getattr(dg1_mrz, name) != getattr(printed, name)
    ]
    if differing:
        raise InvalidInput(
            "chip.mrz_mismatch",
            N_(
                "The passport chip and the printed page do not match. Read the chip of "
                "the same passport whose photo page you scanned."
            ),
            details={"fields": differing},
        )
