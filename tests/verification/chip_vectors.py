"""Passport chips built from scratch, genuine and forged, for the chip tests and bench.

Everything is made here with `cryptography` (keys, certificates, CRLs, signatures) and
`asn1crypto` (the CMS SignedData of EF.SOD and of a master list): a test CSCA per
country (RSA and EC on brainpoolP384r1; a chip is signed under its issuing state's, as
:data:`ISSUING_COUNTRIES` says, unless a test chooses another), Document Signers for
RSA PKCS#1 v1.5, RSA-PSS, ECDSA P-256 (DER and plain ``r || s`` signatures),
brainpoolP256r1 with a named curve and with explicit curve parameters, the data groups
(DG1 with a TD3 zone, DG2 with an ISO/IEC 19794-5 facial record holding a JPEG or JPEG
2000 face, DG14, DG15 with an active-authentication key), CRLs and a master list.
Forgeries are built by the same functions with one thing changed (:func:`build_chip`'s
keyword arguments).

The face is scikit-image's astronaut (Eileen Collins), cut to her face.

For the lead's flow tests: :func:`genuine_chip` and :func:`sign_aa`.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Literal

from asn1crypto import algos, cms, core, keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import NameOID
from PIL import Image

from qianbao.verification.chip import ChipFiles
from qianbao.verification.chip_authentication import (
    COMMAND_SSC,
    ECDH_PROTOCOLS,
    RESPONSE_SSC,
    Challenge,
)
from qianbao.verification.secure_messaging import (
    derive_keys,
    protect_response,
    unprotect_command,
)
from qianbao.verification.trust import CSCA_MASTER_LIST_OID, CscaMasterList, HashName
from tests.verification.passport_pages import TODAY, PassportData

Algorithm = Literal["rsa", "rsa-pss", "ecdsa", "ecdsa-plain", "brainpool", "brainpool-explicit"]
ALGORITHMS: tuple[Algorithm, ...] = (
    "rsa",
    "rsa-pss",
    "ecdsa",
    "ecdsa-plain",
    "brainpool",
    "brainpool-explicit",
)
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

LDS_OID = "2.23.136.1.1.1"
_PLAIN_ECDSA_OIDS = {
    "sha1": "0.4.0.127.0.7.1.1.4.1.1",
    "sha224": "0.4.0.127.0.7.1.1.4.1.2",
    "sha256": "0.4.0.127.0.7.1.1.4.1.3",
    "sha384": "0.4.0.127.0.7.1.1.4.1.4",
    "sha512": "0.4.0.127.0.7.1.1.4.1.5",
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
# ISO/IEC 10118-3 hash identifiers for the ISO/IEC 9796-2 trailer xxCC.
_ISO9796_IDS = {"sha256": 0x34, "sha512": 0x35, "sha384": 0x36, "sha224": 0x38}

# brainpoolP256r1 (RFC 5639, section 3.4), written out for the explicit-parameter DS.
BRAINPOOL_P256R1 = {
    "p": 0xA9FB57DBA1EEA9BC3E660A909D838D726E3BF623D52620282013481D1F6E5377,
    "a": 0x7D5A0975FC2C3057EEF67530417AFFE7FB8055C126DC5C6CE94A4B44F330B5D9,
    "b": 0x26DC5C6CE94A4B44F330B5D9BBD77CBF958416295CF7E1CE6BCCDC18FF8C07B6,
    "x": 0x8BD2AEB9CB7E57CB2C4B482FFC81B7AFB9DE27E1E3BD23C23A4453BD9ACE3262,
    "y": 0x547EF835C3DAC4FD97F8461A14611DC9C27745132DED8E545C1D54C72F046997,
    "n": 0xA9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7,
}

# The certificates' countryName for each issuing state the test passports use, written
# out here rather than taken from the code under test, so a wrong mapping there fails.
ISSUING_COUNTRIES = {
    "GBR": "GB", "USA": "US", "D": "DE", "MYS": "MY", "SGP": "SG", "IDN": "ID",
    "VNM": "VN", "FRA": "FR", "UTO": "UT",
}  # fmt: skip

CSCA_VALIDITY = (date(2020, 1, 1), date(2045, 1, 1))
DS_VALIDITY = (date(2025, 1, 1), date(2036, 4, 1))
EXPIRED_DS_VALIDITY = (date(2014, 1, 1), date(2025, 1, 1))


# --- keys and certificates ------------------------------------------------------------


@cache
def rsa_key(bits: int = 2048, label: str = "") -> rsa.RSAPrivateKey:
    """An RSA key, the same one for the same label during a test run."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@cache
def ec_key(curve_name: str, label: str = "") -> ec.EllipticCurvePrivateKey:
    curve = {
        "secp256r1": ec.SECP256R1(),
        "brainpoolP256r1": ec.BrainpoolP256R1(),
        "brainpoolP384r1": ec.BrainpoolP384R1(),
    }[curve_name]
    return ec.generate_private_key(curve)


def _name(common_name: str, country: str = "UT") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"Passport Office {country}"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _moment(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _sign_certificate(
    builder: x509.CertificateBuilder, issuer_key: PrivateKey, *, pss: bool = False
) -> x509.Certificate:
    if pss:
        assert isinstance(issuer_key, rsa.RSAPrivateKey)
        rsa_padding = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        return builder.sign(issuer_key, hashes.SHA256(), rsa_padding=rsa_padding)
    chosen = hashes.SHA384() if isinstance(issuer_key, ec.EllipticCurvePrivateKey) else None
    return builder.sign(issuer_key, chosen or hashes.SHA256())


@dataclass(frozen=True)
class Authority:
    """A key and its certificate (a CSCA, a Document Signer, a master-list signer)."""

    key: PrivateKey
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


@cache
def csca(kind: Literal["rsa", "ec"] = "rsa", label: str = "", country: str = "UT") -> Authority:
    """A self-signed CSCA of ``country`` (its countryName); another ``label`` is another
    authority of the same country (or an impostor)."""
    key: PrivateKey = (
        rsa_key(3072, f"csca-{country}{label}")
        if kind == "rsa"
        else ec_key("brainpoolP384r1", f"csca-{country}{label}")
    )
    name = _name(f"CSCA {kind}{label}", country)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_moment(CSCA_VALIDITY[0]))
        .not_valid_after(_moment(CSCA_VALIDITY[1]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    return Authority(key, _sign_certificate(builder, key))


def issue(
    issuer: Authority,
    key: PrivateKey,
    common_name: str,
    *,
    validity: tuple[date, date] = DS_VALIDITY,
    pss: bool = False,
    country: str | None = None,
) -> Authority:
    """A certificate for ``key`` signed by ``issuer`` (a DS or a master-list signer), of
    the issuer's country unless ``country`` says another."""
    issuer_key_id = x509.SubjectKeyIdentifier.from_public_key(issuer.key.public_key())
    issuer_country = issuer.cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    subject_country = country or str(issuer_country[0].value)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, subject_country))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_moment(validity[0]))
        .not_valid_after(_moment(validity[1]))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_key_id), False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    return Authority(key, _sign_certificate(builder, issuer.key, pss=pss))


def with_explicit_curve(cert: Authority, issuer: Authority) -> Authority:
    """``cert`` again, its brainpoolP256r1 key written with explicit curve parameters
    (RFC 3279 ``specifiedCurve``) and re-signed by ``issuer``.

    `cryptography` cannot write such a certificate, so the TBS part is rebuilt with
    asn1crypto and signed here.
    """
    raw = asn1_x509.Certificate.load(cert.der)
    tbs = raw["tbs_certificate"]
    point = bytes(tbs["subject_public_key_info"]["public_key"].native)
    curve = BRAINPOOL_P256R1
    domain = keys.SpecifiedECDomain(
        {
            "version": "ecdpVer1",
            "field_id": {"field_type": "prime_field", "parameters": curve["p"]},
            "curve": {"a": curve["a"].to_bytes(32, "big"), "b": curve["b"].to_bytes(32, "big")},
            "base": b"\x04" + curve["x"].to_bytes(32, "big") + curve["y"].to_bytes(32, "big"),
            "order": curve["n"],
            "cofactor": 1,
        }
    )
    tbs["subject_public_key_info"] = keys.PublicKeyInfo(
        {
            "algorithm": {
                "algorithm": "ec",
                "parameters": keys.ECDomainParameters(name="specified", value=domain),
            },
            "public_key": point,
        }
    )
    tbs_der = tbs.dump(force=True)
    assert isinstance(issuer.key, ec.EllipticCurvePrivateKey)
    signature = issuer.key.sign(tbs_der, ec.ECDSA(hashes.SHA384()))
    rebuilt = asn1_x509.Certificate(
        {
            "tbs_certificate": asn1_x509.TbsCertificate.load(tbs_der),
            "signature_algorithm": raw["signature_algorithm"],
            "signature_value": signature,
        }
    )
    return Authority(cert.key, x509.load_der_x509_certificate(rebuilt.dump(force=True)))


def document_signer(
    algorithm: Algorithm,
    *,
    issuer: Authority | None = None,
    validity: tuple[date, date] = DS_VALIDITY,
    label: str = "",
    country: str = "UT",
) -> Authority:
    """A Document Signer for ``algorithm``, issued by the matching test CSCA of
    ``country`` (or by ``issuer``, whose country it then has)."""
    if algorithm in ("rsa", "rsa-pss"):
        issuer = issuer or csca("rsa", country=country)
        key: PrivateKey = rsa_key(2048, f"ds-{algorithm}{label}")
        return issue(issuer, key, f"DS {algorithm}{label}", validity=validity,
                     pss=algorithm == "rsa-pss")  # fmt: skip
    issuer = issuer or csca("ec", country=country)
    curve = "secp256r1" if algorithm in ("ecdsa", "ecdsa-plain") else "brainpoolP256r1"
    signer = issue(issuer, ec_key(curve, f"ds-{algorithm}{label}"), f"DS {algorithm}{label}",
                   validity=validity)  # fmt: skip
    if algorithm == "brainpool-explicit":
        return with_explicit_curve(signer, issuer)
    return signer


# --- CMS ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PssParameters:
    hash: HashName = "sha256"
    mgf_hash: HashName = "sha256"
    salt_length: int = 32


def _signature_algorithm(
    algorithm: Algorithm, hash_name: HashName, pss: PssParameters
) -> algos.SignedDigestAlgorithm:
    if algorithm == "rsa":
        return algos.SignedDigestAlgorithm({"algorithm": f"{hash_name}_rsa"})
    if algorithm == "rsa-pss":
        parameters = algos.RSASSAPSSParams(
            {
                "hash_algorithm": {"algorithm": pss.hash},
                "mask_gen_algorithm": {
                    "algorithm": "mgf1",
                    "parameters": {"algorithm": pss.mgf_hash},
                },
                "salt_length": pss.salt_length,
            }
        )
        return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pss", "parameters": parameters})
    if algorithm == "ecdsa-plain":
        return algos.SignedDigestAlgorithm({"algorithm": _PLAIN_ECDSA_OIDS[hash_name]})
    return algos.SignedDigestAlgorithm({"algorithm": f"{hash_name}_ecdsa"})


def _sign(
    key: PrivateKey, algorithm: Algorithm, hash_name: HashName, pss: PssParameters, data: bytes
) -> bytes:
    chosen = _HASHES[hash_name]()
    if isinstance(key, rsa.RSAPrivateKey):
        if algorithm == "rsa-pss":
            scheme = padding.PSS(
                mgf=padding.MGF1(_HASHES[pss.mgf_hash]()), salt_length=pss.salt_length
            )
            return key.sign(data, scheme, _HASHES[pss.hash]())
        return key.sign(data, padding.PKCS1v15(), chosen)
    der = key.sign(data, ec.ECDSA(chosen))
    if algorithm != "ecdsa-plain":
        return der
    r, s = utils.decode_dss_signature(der)
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def signed_data(
    content: bytes,
    content_type: str,
    signer: Authority,
    algorithm: Algorithm,
    *,
    hash_name: HashName = "sha256",
    pss: PssParameters | None = None,
) -> bytes:
    """A DER CMS ContentInfo: SignedData over ``content`` with signed attributes."""
    pss = pss or PssParameters(hash=hash_name, mgf_hash=hash_name)
    attributes = cms.CMSAttributes(
        [
            {"type": "content_type", "values": [content_type]},
            {"type": "message_digest", "values": [hashlib.new(hash_name, content).digest()]},
        ]
    )
    # RFC 5652 5.4: the signature covers the attributes encoded as a SET (tag 31).
    to_sign = attributes.dump()
    signature = _sign(signer.key, algorithm, hash_name, pss, to_sign)
    certificate = asn1_x509.Certificate.load(signer.der)
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                name="issuer_and_serial_number",
                value={"issuer": certificate.issuer, "serial_number": certificate.serial_number},
            ),
            "digest_algorithm": {"algorithm": hash_name},
            "signed_attrs": cms.CMSAttributes.load(to_sign),
            "signature_algorithm": _signature_algorithm(algorithm, hash_name, pss),
            "signature": signature,
        }
    )
    signed = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [{"algorithm": hash_name}],
            "encap_content_info": {"content_type": content_type, "content": content},
            "certificates": [certificate],
            "signer_infos": [signer_info],
        }
    )
    info = cms.ContentInfo({"content_type": "signed_data", "content": signed})
    return bytes(info.dump())


# --- LDS files ------------------------------------------------------------------------


def tlv(tag: int, value: bytes) -> bytes:
    tag_bytes = tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big")
    if len(value) < 0x80:
        length = bytes([len(value)])
    else:
        size = (len(value).bit_length() + 7) // 8
        length = bytes([0x80 | size]) + len(value).to_bytes(size, "big")
    return tag_bytes + length + value


def dg1(passport: PassportData) -> bytes:
    line1, line2 = passport.lines()
    return tlv(0x61, tlv(0x5F1F, (line1 + line2).encode("ascii")))


@cache
def astronaut_face() -> Image.Image:
    """Eileen Collins' face from scikit-image's astronaut, as a passport portrait."""
    from skimage import data

    astronaut = Image.fromarray(data.astronaut())  # type: ignore[no-untyped-call]
    return astronaut.crop((150, 20, 330, 250)).resize((240, 306))


def encode_face(face: Image.Image, image_format: Literal["JPEG", "JPEG2000"]) -> bytes:
    buffer = io.BytesIO()
    if image_format == "JPEG":
        face.convert("RGB").save(buffer, "JPEG", quality=80)
    else:
        face.convert("RGB").save(buffer, "JPEG2000", quality_mode="rates", quality_layers=[20])
    return buffer.getvalue()


def facial_record(
    image: bytes, image_format: Literal["JPEG", "JPEG2000"], size: tuple[int, int]
) -> bytes:
    """An ISO/IEC 19794-5:2005 record with one face and no feature points."""
    data_type = 0 if image_format == "JPEG" else 1
    face_information = bytes(16)  # points, gender, eyes, hair, mask, expression, pose
    image_information = (
        bytes([1, data_type])  # full frontal; JPEG or JPEG 2000
        + size[0].to_bytes(2, "big")
        + size[1].to_bytes(2, "big")
        + bytes([1, 2])  # colour space RGB24; source: digital still camera
        + bytes(4)  # device type, quality
    )
    block_length = 4 + len(face_information) + len(image_information) + len(image)
    face = block_length.to_bytes(4, "big") + face_information + image_information + image
    header = b"FAC\x00010\x00" + (14 + len(face)).to_bytes(4, "big") + (1).to_bytes(2, "big")
    return header + face


def dg2(face: Image.Image, image_format: Literal["JPEG", "JPEG2000"] = "JPEG") -> bytes:
    record = facial_record(encode_face(face, image_format), image_format, face.size)
    header = tlv(0xA1, tlv(0x80, b"\x01\x01") + tlv(0x87, b"\x01\x01") + tlv(0x88, b"\x00\x08"))
    template = tlv(0x7F60, header + tlv(0x5F2E, record))
    return tlv(0x75, tlv(0x7F61, tlv(0x02, b"\x01") + template))


def _spki(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def dg15(public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> bytes:
    return tlv(0x6F, _spki(public_key))


CA_AES_128 = "0.4.0.127.0.7.2.2.3.2.2"
CA_3DES = "0.4.0.127.0.7.2.2.3.2.1"


def dg14(
    *,
    aa_hash: HashName | None = None,
    ca_curve: str = "brainpoolP256r1",
    ca_key: ec.EllipticCurvePrivateKey | None = None,
    ca_protocol: str | None = CA_AES_128,
) -> bytes:
    """SecurityInfos: a ChipAuthenticationPublicKeyInfo (ECDH, key id 1), its
    ChipAuthenticationInfo (none when ``ca_protocol`` is None: CA v1 with 3DES), and an
    ActiveAuthenticationInfo when ``aa_hash`` is given."""

    def oid(value: str) -> bytes:
        return bytes(core.ObjectIdentifier(value).dump())

    ca_public = (ca_key or ec_key(ca_curve, "chip-authentication")).public_key()
    infos = [tlv(0x30, oid("0.4.0.127.0.7.2.2.1.2") + _spki(ca_public) + core.Integer(1).dump())]
    if ca_protocol is not None:
        version_and_key = core.Integer(1).dump() + core.Integer(1).dump()
        infos.append(tlv(0x30, oid(ca_protocol) + version_and_key))
    if aa_hash is not None:
        ecdsa_oid = algos.SignedDigestAlgorithmId(f"{aa_hash}_ecdsa").dotted
        infos.append(tlv(0x30, oid("2.23.136.1.1.5") + core.Integer(1).dump() + oid(ecdsa_oid)))
    return tlv(0x6E, tlv(0x31, b"".join(infos)))


def lds_security_object(
    data_groups: dict[int, bytes], *, stated: HashName = "sha256", used: HashName | None = None
) -> bytes:
    """The LDSSecurityObject: ``stated`` is the algorithm it names, ``used`` the one its
    hashes are made with (the same unless a test forges a mismatch)."""
    algorithm = used or stated
    entries = b"".join(
        tlv(
            0x30,
            core.Integer(number).dump()
            + core.OctetString(hashlib.new(algorithm, content).digest()).dump(),
        )
        for number, content in sorted(data_groups.items())
    )
    digest_algorithm = algos.DigestAlgorithm({"algorithm": stated}).dump()
    return tlv(0x30, core.Integer(0).dump() + digest_algorithm + tlv(0x30, entries))


def sod(
    data_groups: dict[int, bytes],
    signer: Authority,
    algorithm: Algorithm,
    *,
    hash_name: HashName = "sha256",
    lds_used: HashName | None = None,
    pss: PssParameters | None = None,
) -> bytes:
    lds = lds_security_object(data_groups, stated=hash_name, used=lds_used)
    content = signed_data(lds, LDS_OID, signer, algorithm, hash_name=hash_name, pss=pss)
    return tlv(0x77, content)


# --- active authentication ------------------------------------------------------------


def aa_key(algorithm: Algorithm) -> PrivateKey:
    """The chip's AA key: RSA-1024 (as most chips) or EC on the DS's curve family."""
    if algorithm in ("rsa", "rsa-pss"):
        # Most chips in use carry RSA-1024 AA keys; the test mirrors them on purpose.
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    curve = "secp256r1" if algorithm in ("ecdsa", "ecdsa-plain") else "brainpoolP256r1"
    return ec.generate_private_key(ec_key(curve).curve)


def sign_aa(private_key: PrivateKey, challenge: bytes, *, hash_name: HashName = "sha1") -> bytes:
    """The chip's answer to ``challenge``.

    RSA: ISO/IEC 9796-2 scheme 1 with partial recovery, as a chip does it: a random M1
    filling the block, the hash of M1 || challenge, trailer BC (SHA-1) or xxCC.
    EC: ECDSA over the challenge with the hash for the curve size, plain ``r || s``.
    """
    if isinstance(private_key, rsa.RSAPrivateKey):
        numbers = private_key.private_numbers()
        n = numbers.public_numbers.n
        size = (n.bit_length() + 7) // 8
        trailer = b"\xbc" if hash_name == "sha1" else bytes([_ISO9796_IDS[hash_name], 0xCC])
        hash_size = hashlib.new(hash_name).digest_size
        nonce = secrets.token_bytes(size - 1 - hash_size - len(trailer))
        block = b"\x6a" + nonce + hashlib.new(hash_name, nonce + challenge).digest() + trailer
        return pow(int.from_bytes(block, "big"), numbers.d, n).to_bytes(size, "big")
    bits = private_key.curve.key_size
    chosen = "sha224" if bits <= 224 else "sha256" if bits <= 256 else "sha384"
    der = private_key.sign(challenge, ec.ECDSA(_HASHES[chosen]()))
    r, s = utils.decode_dss_signature(der)
    size = (bits + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


# --- chip authentication: the chip's side ----------------------------------------------


def answer_chip_authentication(
    private_key: ec.EllipticCurvePrivateKey,
    dg1_file: bytes,
    challenge: Challenge,
    *,
    check_command: bool = True,
) -> bytes:
    """What a chip holding ``private_key`` answers: session keys from the terminal's
    ephemeral key, the wrapped READ BINARY unwrapped (counter 1), DG1's bytes wrapped
    back (counter 2). A clone runs this with a key of its own and ``check_command=False``
    (it cannot check the command's MAC, so it answers blindly)."""
    terminal = ec.EllipticCurvePublicKey.from_encoded_point(
        private_key.curve, challenge.ephemeral_public_key
    )
    cipher, bits = ECDH_PROTOCOLS[challenge.protocol_oid]
    keys_ = derive_keys(private_key.exchange(ec.ECDH(), terminal), cipher, bits)
    length = len(dg1_file)
    if check_command:
        command = unprotect_command(keys_, COMMAND_SSC, challenge.command)
        assert command.header[1:3] == bytes((0xB0, 0x81)), "READ BINARY of DG1 by SFI"
        assert command.expected_length is not None
        offset, length = command.header[3], command.expected_length
        return protect_response(keys_, RESPONSE_SSC, dg1_file[offset : offset + length])
    return protect_response(keys_, RESPONSE_SSC, dg1_file[:length])


# --- whole chips ----------------------------------------------------------------------


@dataclass
class Chip:
    files: ChipFiles
    cscas: list[bytes]  # what the trust store should hold
    crls: list[bytes] = field(default_factory=list)
    aa_private_key: PrivateKey | None = None
    signer: Authority | None = None
    ca_private_key: ec.EllipticCurvePrivateKey | None = None
    csca: Authority | None = None  # the CSCA in ``cscas``: the issuing state's


def build_chip(
    passport: PassportData,
    face: Image.Image | None = None,
    *,
    algorithm: Algorithm = "rsa",
    hash_name: HashName = "sha256",
    lds_used: HashName | None = None,
    pss: PssParameters | None = None,
    face_format: Literal["JPEG", "JPEG2000"] = "JPEG",
    signer: Authority | None = None,
    active_authentication: bool = True,
    chip_authentication: str | None = None,
    ca_curve: str = "brainpoolP256r1",
    country: str | None = None,
) -> Chip:
    """A chip with every file signed. Forgeries change one argument (or one file after).

    The trust store gets the CSCA of ``country`` (by default the passport's issuing
    state's, from :data:`ISSUING_COUNTRIES`), and the SOD is signed by a Document Signer
    it issued unless ``signer`` is given.

    ``chip_authentication`` (a protocol OID, or "v1" for a DG14 without
    ChipAuthenticationInfo) gives the chip its own CA key in DG14; with
    ``active_authentication=False`` it then has no DG15, so CA is its only proof.
    """
    face = face if face is not None else astronaut_face()
    country = country or ISSUING_COUNTRIES[passport.nationality]
    signer = signer or document_signer(algorithm, country=country)
    groups = {1: dg1(passport), 2: dg2(face, face_format)}
    private_key = None
    ca_private = None
    aa_hash: HashName | None = None
    if active_authentication:
        private_key = aa_key(algorithm)
        groups[15] = dg15(private_key.public_key())
        aa_hash = "sha256" if isinstance(private_key, ec.EllipticCurvePrivateKey) else None
        groups[14] = dg14(aa_hash=aa_hash)
    if chip_authentication is not None:
        ca_private = ec.generate_private_key(ec_key(ca_curve).curve)
        protocol = None if chip_authentication == "v1" else chip_authentication
        groups[14] = dg14(aa_hash=aa_hash, ca_key=ca_private, ca_protocol=protocol)
    sod_bytes = sod(groups, signer, algorithm, hash_name=hash_name, lds_used=lds_used, pss=pss)
    issuer = csca("rsa" if algorithm in ("rsa", "rsa-pss") else "ec", country=country)
    files = ChipFiles(sod_bytes, groups)
    return Chip(files, [issuer.der], [], private_key, signer, ca_private, issuer)


def genuine_chip(
    passport_data: PassportData, face_image: Image.Image, *, algorithm: Algorithm = "rsa"
) -> tuple[ChipFiles, list[bytes], PrivateKey]:
    """A genuine chip for ``passport_data`` with ``face_image`` in DG2, the CSCA
    certificates to build the TrustStore from, and the chip's AA private key (for
    :func:`sign_aa`)."""
    chip = build_chip(passport_data, face_image, algorithm=algorithm)
    assert chip.aa_private_key is not None
    return chip.files, chip.cscas, chip.aa_private_key


def crl(issuer: Authority, revoked_serials: list[int], *, day: date = TODAY) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(_moment(day - timedelta(days=10)))
        .next_update(_moment(day + timedelta(days=80)))
    )
    for serial in revoked_serials:
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(_moment(day - timedelta(days=20)))
            .build()
        )
        builder = builder.add_revoked_certificate(revoked)
    chosen = (
        hashes.SHA384() if isinstance(issuer.key, ec.EllipticCurvePrivateKey) else hashes.SHA256()
    )
    return builder.sign(issuer.key, chosen).public_bytes(serialization.Encoding.DER)


def master_list_signer(signing_csca: Authority) -> Authority:
    return issue(signing_csca, rsa_key(2048, "mls"), "Master List Signer")


def master_list(
    cscas: list[Authority],
    signing_csca: Authority,
    *,
    tamper: bool = False,
    signer: Authority | None = None,
) -> bytes:
    """A CSCA master list of ``cscas``, signed by a master-list signer that
    ``signing_csca`` issued (or by ``signer``). ``tamper`` swaps a list entry after
    signing."""
    signer = signer or master_list_signer(signing_csca)
    content = CscaMasterList(
        {"version": 0, "cert_list": [asn1_x509.Certificate.load(c.der) for c in cscas]}
    ).dump()
    signed = signed_data(content, CSCA_MASTER_LIST_OID, signer, "rsa")
    if tamper:
        other = asn1_x509.Certificate.load(csca("rsa", "-tamper").der).dump()
        info = cms.ContentInfo.load(signed)
        encapsulated = info["content"]["encap_content_info"]
        encapsulated["content"] = CscaMasterList(
            {"version": 0, "cert_list": [asn1_x509.Certificate.load(other)]}
        ).dump()
        signed = info.dump(force=True)
    return signed
