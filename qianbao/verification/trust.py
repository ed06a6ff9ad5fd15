"""The trust store for passport chips: CSCA certificates, their CRLs and master lists.

A passport chip is trusted through a two-level PKI (ICAO Doc 9303 Part 12): each state
runs a Country Signing CA (CSCA) that certifies its Document Signers (DS), and a DS
signs the Document Security Object (EF.SOD) of each chip. The server must already
hold the CSCA certificates (a state's own publication, the ICAO PKD, or a master list,
below) and the CRLs the CSCAs publish; this module keeps them in memory and offers the
signature primitives that :mod:`qianbao.verification.chip` and master-list import share.

Parsing is left to libraries: `cryptography` for certificates, CRLs and signatures,
`asn1crypto` for CMS and for the structures `cryptography` does not expose (RSA-PSS
parameters, explicit elliptic-curve parameters). What this module adds:

- **Explicit curve parameters.** Many eMRTD certificates (the German ones among others)
  carry their EC key with the curve written out (p, a, b, G, n, h; RFC 3279, SEC 1)
  rather than a named-curve OID, which `cryptography` refuses for non-NIST curves.
  :func:`load_public_key` maps such parameters back to the named curve they describe,
  and checks every one of them against `cryptography`'s own implementation of that
  curve rather than against constants copied here: the generator is the public key of
  the private scalar 1; the public key of ``n - 1`` is ``-G`` (so its y is ``p - Gy``,
  which fixes both ``n`` and ``p``); and ``G`` and ``2G`` both lie on
  ``y^2 = x^3 + ax + b (mod p)``, which two points with different x determine ``a`` and
  ``b`` uniquely. A curve that matches none of them is refused, never guessed.
- **Signature algorithms as the structure states them** (:func:`signature_algorithm`):
  RSA PKCS#1 v1.5, RSA-PSS with its hash, MGF1 hash and salt length read from the
  parameters, ECDSA with DER or plain ``r || s`` signatures (BSI TR-03111's
  ``ecdsa-plain-*`` OIDs), SHA-1/224/256/384/512.
- **A fast path for the SOD's CMS** (:func:`read_signed_data`). Building asn1crypto's
  objects for a SignedData costs several times its two signature checks, so a
  SignedData in plain DER of the usual shape (one signer, signed attributes, the DS
  certificate) is read by :class:`DerReader`, which checks each element's tag and
  length and copies nothing it is not asked for. Anything else (BER's indefinite
  lengths, CRLs in the SignedData, several signers...) is read by asn1crypto as
  before, and the same checks (:func:`verify_signed_data`) run on either.
- **Master lists** (ICAO Doc 9303 Part 12, section 9): :func:`parse_master_list`.

A CRL is accepted into a :class:`TrustStore` only if one of its CSCAs signed it: the
constructor refuses any other, so the lead can check a CRL before saving it by building
a store with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, ClassVar, Final, Literal, Protocol, TypeVar, overload

from asn1crypto import algos, cms, core, keys
from asn1crypto import crl as asn1_crl
from asn1crypto import parser as asn1_parser
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import pkcs7

from qianbao.errors import InvalidInput
from qianbao.i18n import N_

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
HashName = Literal["sha1", "sha224", "sha256", "sha384", "sha512"]

HASH_OIDS: Final[dict[str, HashName]] = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
HASH_SIZES: Final[dict[HashName, int]] = {
    "sha1": 20,
    "sha224": 28,
    "sha256": 32,
    "sha384": 48,
    "sha512": 64,
}
# hashlib's named constructors: hashlib.new() looks the name up on every call.
_HASHLIB: Final[dict[HashName, Callable[[bytes], hashlib._Hash]]] = {
    "sha1": hashlib.sha1,
    "sha224": hashlib.sha224,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}
_HASH_CLASSES: Final[dict[HashName, type[hashes.HashAlgorithm]]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

RSA_ENCRYPTION: Final = "1.2.840.113549.1.1.1"
RSASSA_PSS: Final = "1.2.840.113549.1.1.10"
EC_PUBLIC_KEY: Final = "1.2.840.10045.2.1"
MGF1: Final = "1.2.840.113549.1.1.8"
_RSA_PKCS1_OIDS: Final[dict[str, HashName]] = {
    "1.2.840.113549.1.1.5": "sha1",
    "1.2.840.113549.1.1.14": "sha224",
    "1.2.840.113549.1.1.11": "sha256",
    "1.2.840.113549.1.1.12": "sha384",
    "1.2.840.113549.1.1.13": "sha512",
}
_ECDSA_DER_OIDS: Final[dict[str, HashName]] = {
    "1.2.840.10045.4.1": "sha1",
    "1.2.840.10045.4.3.1": "sha224",
    "1.2.840.10045.4.3.2": "sha256",
    "1.2.840.10045.4.3.3": "sha384",
    "1.2.840.10045.4.3.4": "sha512",
}
# BSI TR-03111 section 5.2.1: ecdsa-plain-signatures, r and s as fixed-length integers.
_ECDSA_PLAIN_OIDS: Final[dict[str, HashName]] = {
    "0.4.0.127.0.7.1.1.4.1.1": "sha1",
    "0.4.0.127.0.7.1.1.4.1.2": "sha224",
    "0.4.0.127.0.7.1.1.4.1.3": "sha256",
    "0.4.0.127.0.7.1.1.4.1.4": "sha384",
    "0.4.0.127.0.7.1.1.4.1.5": "sha512",
}
ECDSA_OIDS_BY_HASH: Final[dict[HashName, str]] = {
    name: oid for oid, name in _ECDSA_DER_OIDS.items()
}
ECDSA_HASH_BY_OID: Final[dict[str, HashName]] = {**_ECDSA_DER_OIDS, **_ECDSA_PLAIN_OIDS}

# id-icao-cscaMasterList (ICAO Doc 9303 Part 12, section 9).
CSCA_MASTER_LIST_OID: Final = "2.23.136.1.1.2"

# The curves explicit parameters may be mapped back to: every prime curve `cryptography`
# implements that an eMRTD may use.
_KNOWN_CURVES: Final[tuple[ec.EllipticCurve, ...]] = (
    ec.SECP224R1(),
    ec.SECP256R1(),
    ec.SECP384R1(),
    ec.SECP521R1(),
    ec.SECP256K1(),
    ec.SECP192R1(),
    ec.BrainpoolP256R1(),
    ec.BrainpoolP384R1(),
    ec.BrainpoolP512R1(),
)


class UnsupportedAlgorithmError(ValueError):
    """An algorithm, curve or parameter set this module does not verify."""


class SignedDataError(ValueError):
    """A CMS SignedData that does not verify; ``reason`` says which part failed."""

    def __init__(self, reason: Literal["structure", "signer_missing", "signature"]) -> None:
        super().__init__(reason)
        self.reason = reason


def hash_algorithm(name: HashName) -> hashes.HashAlgorithm:
    return _HASH_CLASSES[name]()


def digest(name: HashName, data: bytes) -> bytes:
    return _HASHLIB[name](data).digest()


def hash_name(oid: str) -> HashName:
    """The hash named by a digest-algorithm OID; anything but SHA-1/2 is refused."""
    try:
        return HASH_OIDS[oid]
    except KeyError:
        raise UnsupportedAlgorithmError(f"digest algorithm {oid}") from None


@dataclass(frozen=True)
class SignatureAlgorithm:
    """A signature scheme with every parameter it needs, as read from the structure."""

    kind: Literal["rsa_pkcs1", "rsa_pss", "ecdsa"]
    hash: HashName
    mgf_hash: HashName | None = None  # RSA-PSS only
    salt_length: int | None = None  # RSA-PSS only
    plain_ecdsa: bool = False  # the signature is r || s rather than a DER SEQUENCE

    def describe(self) -> str:
        hash_label = self.hash.upper().replace("SHA", "SHA-")
        if self.kind == "rsa_pkcs1":
            return f"RSA PKCS#1 v1.5 with {hash_label}"
        if self.kind == "rsa_pss":
            mgf_label = (self.mgf_hash or "").upper().replace("SHA", "SHA-")
            return f"RSA-PSS with {hash_label}, MGF1 {mgf_label}, salt {self.salt_length}"
        encoding = "plain r||s" if self.plain_ecdsa else "DER"
        return f"ECDSA with {hash_label} ({encoding})"


def signature_algorithm(
    oid: str, parameters: core.Asn1Value | None, *, digest_hint: HashName | None = None
) -> SignatureAlgorithm:
    """The scheme named by a signatureAlgorithm OID and its parameters.

    ``digest_hint`` is CMS's separate digestAlgorithm: the hash when the OID names only
    the key type (``rsaEncryption`` or ``id-ecPublicKey``, which some SODs use). When
    the OID names a hash too, the two must agree.
    """
    named: HashName | None
    if oid == RSASSA_PSS:
        result = _pss_algorithm(parameters)
        named = result.hash
    elif oid in _RSA_PKCS1_OIDS:
        named = _RSA_PKCS1_OIDS[oid]
        result = SignatureAlgorithm("rsa_pkcs1", named)
    elif oid in _ECDSA_DER_OIDS:
        named = _ECDSA_DER_OIDS[oid]
        result = SignatureAlgorithm("ecdsa", named)
    elif oid in _ECDSA_PLAIN_OIDS:
        named = _ECDSA_PLAIN_OIDS[oid]
        result = SignatureAlgorithm("ecdsa", named, plain_ecdsa=True)
    elif oid in (RSA_ENCRYPTION, EC_PUBLIC_KEY) and digest_hint is not None:
        named = None
        kind: Literal["rsa_pkcs1", "ecdsa"] = "rsa_pkcs1" if oid == RSA_ENCRYPTION else "ecdsa"
        result = SignatureAlgorithm(kind, digest_hint)
    else:
        raise UnsupportedAlgorithmError(f"signature algorithm {oid}")
    if named is not None and digest_hint is not None and named != digest_hint:
        raise UnsupportedAlgorithmError(f"signature hash {named} but digest {digest_hint}")
    return result


def _pss_algorithm(parameters: core.Asn1Value | None) -> SignatureAlgorithm:
    if not isinstance(parameters, algos.RSASSAPSSParams):
        raise UnsupportedAlgorithmError("RSA-PSS without parameters")
    # Absent fields take RFC 4055's defaults (SHA-1, MGF1 with SHA-1, salt 20): asn1crypto
    # fills them in, so a structure that leaves them out is read as the standard says.
    message_hash = hash_name(parameters["hash_algorithm"]["algorithm"].dotted)
    mask = parameters["mask_gen_algorithm"]
    if mask["algorithm"].dotted != MGF1:
        raise UnsupportedAlgorithmError("RSA-PSS mask generation other than MGF1")
    mgf_hash = hash_name(mask["parameters"]["algorithm"].dotted)
    if parameters["trailer_field"].native not in (1, "trailer_field_bc"):
        raise UnsupportedAlgorithmError("RSA-PSS trailer other than 0xBC")
    salt_length = int(parameters["salt_length"].native)
    return SignatureAlgorithm("rsa_pss", message_hash, mgf_hash=mgf_hash, salt_length=salt_length)


def verify_signature(
    key: PublicKey, algorithm: SignatureAlgorithm, signature: bytes, data: bytes
) -> bool:
    """Whether ``signature`` over ``data`` verifies; a wrong key type is an algorithm error."""
    chosen_hash = hash_algorithm(algorithm.hash)
    try:
        if algorithm.kind == "ecdsa":
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise UnsupportedAlgorithmError("ECDSA signature with a non-EC key")
            der = _ecdsa_der(key, signature, plain=algorithm.plain_ecdsa)
            if der is None:
                return False
            key.verify(der, data, ec.ECDSA(chosen_hash))
            return True
        if not isinstance(key, rsa.RSAPublicKey):
            raise UnsupportedAlgorithmError("RSA signature with a non-RSA key")
        if algorithm.kind == "rsa_pss":
            assert algorithm.mgf_hash is not None
            assert algorithm.salt_length is not None
            pss = padding.PSS(
                mgf=padding.MGF1(hash_algorithm(algorithm.mgf_hash)),
                salt_length=algorithm.salt_length,
            )
            key.verify(signature, data, pss, chosen_hash)
        else:
            key.verify(signature, data, padding.PKCS1v15(), chosen_hash)
        return True
    except InvalidSignature:
        return False


def _ecdsa_der(key: ec.EllipticCurvePublicKey, signature: bytes, *, plain: bool) -> bytes | None:
    """A DER ECDSA-Sig-Value for ``signature``, which may come as DER or as ``r || s``.

    Some issuers put plain signatures under the DER OIDs, so a signature that is not a
    DER SEQUENCE but has exactly the plain length is read as plain too.
    """
    size = (key.curve.key_size + 7) // 8
    if not plain:
        try:
            utils.decode_dss_signature(signature)
            return signature
        except ValueError:
            pass
    if len(signature) != 2 * size:
        return None
    r = int.from_bytes(signature[:size], "big")
    s = int.from_bytes(signature[size:], "big")
    return utils.encode_dss_signature(r, s)


def load_public_key(spki: bytes) -> PublicKey:
    """The RSA or EC key of a DER SubjectPublicKeyInfo, explicit curve parameters included."""
    info = keys.PublicKeyInfo.load(spki)
    algorithm = info["algorithm"]["algorithm"].dotted
    if algorithm == EC_PUBLIC_KEY and info["algorithm"]["parameters"].name == "specified":
        curve = curve_from_parameters(info["algorithm"]["parameters"].chosen)
        point = bytes(info["public_key"].native)
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
        except ValueError as error:
            raise UnsupportedAlgorithmError("EC point not on its curve") from error
    try:
        key = serialization.load_der_public_key(spki)
    except UnsupportedAlgorithm as error:
        raise UnsupportedAlgorithmError(str(error)) from error
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise UnsupportedAlgorithmError(f"key type {type(key).__name__}")
    return key


def curve_from_parameters(domain: keys.SpecifiedECDomain) -> ec.EllipticCurve:
    """The named curve that explicit EC domain parameters describe (see the module doc)."""
    if domain["field_id"]["field_type"].native != "prime_field":
        raise UnsupportedAlgorithmError("EC curve over a binary field")
    p = int(domain["field_id"]["parameters"].native)
    a = int.from_bytes(domain["curve"]["a"].native, "big")
    b = int.from_bytes(domain["curve"]["b"].native, "big")
    n = int(domain["order"].native)
    generator = bytes(domain["base"].native)
    curve = _match_curve(p, a, b, n, generator)
    if curve is None:
        raise UnsupportedAlgorithmError("explicit EC parameters of an unknown curve")
    return curve


@lru_cache(maxsize=64)
def _match_curve(p: int, a: int, b: int, n: int, generator: bytes) -> ec.EllipticCurve | None:
    for curve in _KNOWN_CURVES:
        if curve.key_size != p.bit_length() or curve.key_size != n.bit_length():
            continue
        try:
            g = ec.EllipticCurvePublicKey.from_encoded_point(curve, generator).public_numbers()
            one = ec.derive_private_key(1, curve).public_key().public_numbers()
            two = ec.derive_private_key(2, curve).public_key().public_numbers()
            minus_one = ec.derive_private_key(n - 1, curve).public_key().public_numbers()
        except ValueError:
            continue

        def on_curve(x: int, y: int) -> bool:
            return (y * y - (x * x * x + a * x + b)) % p == 0

        if (
            (g.x, g.y) == (one.x, one.y)
            and (minus_one.x, minus_one.y + g.y) == (g.x, p)
            and on_curve(g.x, g.y)
            and on_curve(two.x, two.y)
        ):
            return curve
    return None


@dataclass(frozen=True)
class Certificate:
    """One certificate: `cryptography`'s view, the raw signature algorithm, and its key."""

    der: bytes
    cert: x509.Certificate
    public_key: PublicKey
    signature_algorithm: SignatureAlgorithm
    key_identifier: bytes | None  # subjectKeyIdentifier
    authority_key_identifier: bytes | None
    subject: str  # RFC 4514
    issuer_der: bytes  # the issuer Name as encoded, for matching a CMS signer identifier
    # Read once: `cryptography` re-encodes the TBS part and rebuilds the dates on each
    # access, and a Document Signer's certificate is checked for every passport it signed.
    tbs: bytes
    not_before: datetime
    not_after: datetime

    @classmethod
    def load(cls, der: bytes) -> Certificate:
        """Raises ValueError for a malformed certificate, UnsupportedAlgorithmError for
        a key or signature algorithm that cannot be verified."""
        try:
            cert = x509.load_der_x509_certificate(der)
        except x509.InvalidVersion as error:  # a version byte no X.509 has: malformed
            raise ValueError(str(error)) from error
        raw = asn1_x509.Certificate.load(der)
        signature = raw["signature_algorithm"]
        algorithm = signature_algorithm(signature["algorithm"].dotted, signature["parameters"])
        spki = raw["tbs_certificate"]["subject_public_key_info"].dump()
        return cls(
            der=der,
            cert=cert,
            public_key=load_public_key(spki),
            signature_algorithm=algorithm,
            key_identifier=_extension_value(cert, x509.SubjectKeyIdentifier),
            authority_key_identifier=_extension_value(cert, x509.AuthorityKeyIdentifier),
            subject=cert.subject.rfc4514_string(),
            issuer_der=cert.issuer.public_bytes(),
            tbs=cert.tbs_certificate_bytes,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )

    def is_signed_by(self, issuer_key: PublicKey) -> bool:
        try:
            return verify_signature(
                issuer_key,
                self.signature_algorithm,
                self.cert.signature,
                self.tbs,
            )
        except UnsupportedAlgorithmError:
            return False

    def is_valid_on(self, day: date) -> bool:
        moment = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        return self.not_before <= moment <= self.not_after

    @property
    def country(self) -> str | None:
        """The subject's countryName, upper-case; None when it has none, or several that
        differ (Doc 9303 Part 12 requires exactly one on a CSCA and a Document Signer)."""
        values = {
            str(attribute.value).upper()
            for attribute in self.cert.subject.get_attributes_for_oid(x509.NameOID.COUNTRY_NAME)
        }
        return values.pop() if len(values) == 1 else None


def _extension_value(
    cert: x509.Certificate,
    kind: type[x509.SubjectKeyIdentifier] | type[x509.AuthorityKeyIdentifier],
) -> bytes | None:
    try:
        extension = cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None
    except ValueError:  # a malformed extension elsewhere in the list
        return None
    value = extension.value
    if isinstance(value, x509.SubjectKeyIdentifier):
        return value.digest
    assert isinstance(value, x509.AuthorityKeyIdentifier)
    return value.key_identifier


class TrustStore:
    """CSCA certificates and their CRLs, in memory.

    Built from DER bytes as the database holds them. A CSCA certificate that cannot be
    parsed, or whose key cannot be used, is refused with ``trust.certificate``; a CRL
    that no CSCA of the store signed, with ``trust.crl_unverified``.
    """

    def __init__(self, csca_certificates: Iterable[bytes], crls: Iterable[bytes] = ()) -> None:
        self._cscas: list[Certificate] = [_load_certificate(der) for der in csca_certificates]
        self._by_subject: dict[x509.Name, list[Certificate]] = {}
        self._by_key_identifier: dict[bytes, list[Certificate]] = {}
        for csca in self._cscas:
            self._by_subject.setdefault(csca.cert.subject, []).append(csca)
            if csca.key_identifier is not None:
                self._by_key_identifier.setdefault(csca.key_identifier, []).append(csca)
        self._revoked: set[tuple[x509.Name, int]] = set()
        self._crls: list[x509.CertificateRevocationList] = []
        for crl_der in crls:
            self._add_crl(crl_der)

    @property
    def certificates(self) -> list[bytes]:
        return [csca.der for csca in self._cscas]

    def by_subject(self, name: x509.Name) -> list[Certificate]:
        return list(self._by_subject.get(name, ()))

    def by_key_identifier(self, key_identifier: bytes) -> list[Certificate]:
        return list(self._by_key_identifier.get(key_identifier, ()))

    def candidate_issuers(self, cert: Certificate) -> list[Certificate]:
        """The CSCAs that may have issued ``cert``: by authority key identifier when it
        names one the store knows, else by issuer name. Signatures are not checked here."""
        if cert.authority_key_identifier is not None:
            found = self.by_key_identifier(cert.authority_key_identifier)
            if found:
                return found
        return self.by_subject(cert.cert.issuer)

    def issuer_of(self, cert: Certificate, *, today: date) -> Certificate | None:
        """The CSCA, valid on ``today``, whose key verifies ``cert``'s signature."""
        for candidate in self.candidate_issuers(cert):
            if candidate.is_valid_on(today) and cert.is_signed_by(candidate.public_key):
                return candidate
        return None

    def is_revoked(self, cert: Certificate | x509.Certificate) -> bool:
        """Whether a CRL of the store lists ``cert`` (matched by issuer and serial)."""
        plain = cert.cert if isinstance(cert, Certificate) else cert
        return (plain.issuer, plain.serial_number) in self._revoked

    def crl_next_update(self, csca: Certificate) -> datetime | None:
        """When the newest CRL that ``csca`` issued is due to be replaced (its latest
        nextUpdate: a fresh CRL supersedes an overdue one); None when the store holds
        no CRL of it, or none that names a nextUpdate."""
        updates = [
            crl.next_update_utc
            for crl in self._crls
            if crl.issuer == csca.cert.subject and crl.next_update_utc is not None
        ]
        return max(updates, default=None)

    def _add_crl(self, der: bytes) -> None:
        try:
            crl = x509.load_der_x509_crl(der)
            signature = asn1_crl.CertificateList.load(der)["signature_algorithm"]
            algorithm = signature_algorithm(signature["algorithm"].dotted, signature["parameters"])
        except (ValueError, UnsupportedAlgorithmError) as error:
            raise _crl_error() from error
        verified = any(
            _crl_signed_by(crl, algorithm, issuer.public_key)
            for issuer in self._by_subject.get(crl.issuer, ())
        )
        if not verified:
            raise InvalidInput(
                "trust.crl_unverified",
                N_(
                    "This revocation list was not signed by any country signing "
                    "certificate in the trust store. Import the country's certificate first."
                ),
            )
        self._crls.append(crl)
        for revoked in crl:
            self._revoked.add((crl.issuer, revoked.serial_number))


def _crl_signed_by(
    crl: x509.CertificateRevocationList, algorithm: SignatureAlgorithm, key: PublicKey
) -> bool:
    try:
        return verify_signature(key, algorithm, crl.signature, crl.tbs_certlist_bytes)
    except UnsupportedAlgorithmError:
        return False


def _load_certificate(der: bytes) -> Certificate:
    try:
        return Certificate.load(der)
    except (ValueError, UnsupportedAlgorithmError) as error:
        raise _certificate_error() from error


def _certificate_error() -> InvalidInput:
    return InvalidInput(
        "trust.certificate",
        N_(
            "This file holds no certificate that can be used: it is not a PEM or DER "
            "X.509 certificate, or its key or signature algorithm is not supported."
        ),
    )


def _crl_error() -> InvalidInput:
    return InvalidInput(
        "trust.crl",
        N_("This file is not a certificate revocation list (PEM or DER). Check the file."),
    )


def parse_certificates(data: bytes) -> list[bytes]:
    """The DER certificates in ``data``: PEM (one or many), DER (one or several
    concatenated) or a PKCS#7 certificate bundle (.p7b / .p7c)."""
    try:
        if b"-----BEGIN" in data:
            loaded = x509.load_pem_x509_certificates(data)
        else:
            loaded = _der_certificates(data)
    except ValueError as error:
        raise _certificate_error() from error
    if not loaded:
        raise _certificate_error()
    return [cert.public_bytes(serialization.Encoding.DER) for cert in loaded]


def _der_certificates(data: bytes) -> list[x509.Certificate]:
    certificates: list[x509.Certificate] = []
    offset = 0
    while offset < len(data):
        _, _, _, header, contents, trailer = asn1_parser.parse(data[offset:])
        element = data[offset : offset + len(header) + len(contents) + len(trailer)]
        offset += len(element)
        try:
            certificates.append(x509.load_der_x509_certificate(element))
        except ValueError:
            certificates.extend(pkcs7.load_der_pkcs7_certificates(element))
    return certificates


def parse_crl(data: bytes) -> bytes:
    """The DER encoding of the CRL in ``data`` (PEM or DER)."""
    try:
        if b"-----BEGIN" in data:
            crl = x509.load_pem_x509_crl(data)
        else:
            crl = x509.load_der_x509_crl(data)
    except ValueError as error:
        raise _crl_error() from error
    return crl.public_bytes(serialization.Encoding.DER)


class CscaMasterList(core.Sequence):  # type: ignore[misc]
    """CscaMasterList ::= SEQUENCE { version CscaMasterListVersion, certList SET OF
    Certificate } (ICAO Doc 9303 Part 12, section 9)."""

    class _Certificates(core.SetOf):  # type: ignore[misc]
        _child_spec = asn1_x509.Certificate

    _fields: ClassVar[list[tuple[str, type[core.Asn1Value]]]] = [
        ("version", core.Integer),
        ("cert_list", _Certificates),
    ]


# --- CMS SignedData: read from plain DER, or by asn1crypto ----------------------------

CONTENT_TYPE_ATTRIBUTE: Final = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST_ATTRIBUTE: Final = "1.2.840.113549.1.9.4"
_SIGNED_DATA_OID: Final = bytes.fromhex("2a864886f70d010702")  # 1.2.840.113549.1.7.2


class NotPlainDerError(ValueError):
    """Not the plain DER that :class:`DerReader` reads (definite lengths, one-octet
    tags), or not the shape its caller expects; that caller hands it to asn1crypto."""


class DerReader:
    """The elements inside one DER element, or a whole buffer, read one after the other,
    each checked against the identifier octet the caller expects.

    Nothing is copied or built until asked for: on a passport's SOD, asn1crypto's
    objects cost several times the two signature checks.
    """

    __slots__ = ("_data", "_end", "offset")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self._data = data
        self.offset = start  # of the next element
        self._end = len(data) if end is None else end

    def read(self, tag: int) -> tuple[int, int]:
        """Where the contents of the next element lie; it must carry ``tag``."""
        data, offset, end = self._data, self.offset, self._end
        start = offset + 2
        if start > end or data[offset] != tag:
            raise NotPlainDerError(f"no element {tag:#04x} at {offset}")
        length = data[offset + 1]
        if length > 0x7F:  # the next 1 to 4 octets hold the length (0x80: indefinite)
            count = length - 0x80
            if not 1 <= count <= 4 or start + count > end:
                raise NotPlainDerError("indefinite or oversized length")
            if count == 1:  # the usual ones spelt out: int.from_bytes costs more
                length = data[start]
            elif count == 2:
                length = data[start] << 8 | data[start + 1]
            else:
                length = int.from_bytes(data[start : start + count], "big")
            start += count
        if start + length > end:
            raise NotPlainDerError("truncated")
        self.offset = start + length
        return start, self.offset

    def enter(self, tag: int) -> DerReader:
        """A reader of the next element's contents."""
        start, end = self.read(tag)
        return DerReader(self._data, start, end)

    def contents(self, tag: int) -> bytes:
        start, end = self.read(tag)
        return self._data[start:end]

    def encoded(self, tag: int) -> bytes:
        """The next element whole: identifier, length and contents."""
        offset = self.offset
        _, end = self.read(tag)
        return self._data[offset:end]

    def integer(self) -> int:
        """The next element, an INTEGER (two's complement, as asn1crypto reads it)."""
        start, end = self.read(0x02)
        if start == end:
            raise NotPlainDerError("empty INTEGER")
        return int.from_bytes(self._data[start:end], "big", signed=True)

    def oid(self) -> str:
        """The next element, an OBJECT IDENTIFIER, in dotted form."""
        return _dotted(self.contents(0x06))

    def rest(self, tag: int) -> list[bytes]:
        """The contents of every element left, each of which must carry ``tag``."""
        found = []
        while self.offset < self._end:
            found.append(self.contents(tag))
        return found

    def rest_encoded(self, tag: int) -> list[bytes]:
        """Every element left, whole, each of which must carry ``tag``."""
        found = []
        while self.offset < self._end:
            found.append(self.encoded(tag))
        return found

    def peek(self) -> int | None:
        """The identifier octet of the next element; None when none is left."""
        return self._data[self.offset] if self.offset < self._end else None

    def done(self) -> None:
        if self.offset != self._end:
            raise NotPlainDerError("more elements than expected")


@lru_cache(maxsize=256)
def _dotted(contents: bytes) -> str:
    # asn1crypto decodes, so an OID reads exactly as on the asn1crypto path; remembered
    # because SODs use a handful of OIDs, and decoding one costs some 2 us each time.
    return str(core.ObjectIdentifier(contents=contents).dotted)


@lru_cache(maxsize=64)
def algorithm_oid(encoded: bytes) -> str:
    """The algorithm of an encoded AlgorithmIdentifier; its parameters are not read.
    Remembered: a Document Signer names the same ones in every SOD."""
    outer = DerReader(encoded)
    identifier = outer.enter(0x30)
    outer.done()
    algorithm = identifier.oid()
    if identifier.peek() == 0x05:  # NULL parameters; any others go to asn1crypto
        identifier.read(0x05)
    identifier.done()
    return algorithm


@dataclass(frozen=True)
class SignerIdentifier:
    """A CMS SignerIdentifier: issuer and serial number, or subject key identifier."""

    issuer: bytes | None = None  # the DER Name
    serial: int | None = None
    key_identifier: bytes | None = None

    def identifies(self, candidate: Certificate) -> bool:
        if self.issuer is None:
            return candidate.key_identifier == self.key_identifier
        return candidate.cert.serial_number == self.serial and (
            # Byte equality first: asn1crypto's name comparison (RFC 4518 string
            # preparation) is correct but slow, and is only needed when they differ.
            candidate.issuer_der == self.issuer
            or asn1_x509.Certificate.load(candidate.der).issuer == asn1_x509.Name.load(self.issuer)
        )


@dataclass(frozen=True)
class SignedAttributes:
    encoded: bytes  # as the signature covers them: a DER SET (RFC 5652 section 5.4)
    content_types: Sequence[str]  # the values of the content-type attribute
    message_digests: Sequence[bytes]  # the values of the message-digest attribute


_T = TypeVar("_T")


class _Converted(Sequence[_T]):
    """asn1crypto values, each converted when it is read: a malformed one fails only if
    it is read, so the checks refuse a SignedData with the same error as they always did."""

    def __init__(self, values: Sequence[Any], convert: Callable[[Any], _T]) -> None:
        self._values = values
        self._convert = convert

    def __len__(self) -> int:
        return len(self._values)

    @overload
    def __getitem__(self, index: int) -> _T: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[_T]: ...

    def __getitem__(self, index: int | slice) -> _T | Sequence[_T]:
        if isinstance(index, slice):
            return [self[position] for position in range(*index.indices(len(self)))]
        return self._convert(self._values[index])


class SignedDataSource(Protocol):
    """What :func:`verify_signed_data` reads of a SignedData and its first signer."""

    @property
    def content_type(self) -> str: ...  # eContentType, dotted

    @property
    def content(self) -> bytes | None: ...  # None when it is no OCTET STRING

    @property
    def signer_count(self) -> int: ...

    @property
    def digest_algorithm(self) -> str: ...  # the signer's, dotted

    def signature_algorithm(self, digest_hint: HashName) -> SignatureAlgorithm: ...

    def signer_certificate(self) -> Certificate: ...  # or SignedDataError("signer_missing")

    @property
    def signed_attributes(self) -> SignedAttributes | None: ...  # None when absent or empty

    @property
    def signature(self) -> bytes: ...


@dataclass(frozen=True)
class DerSignedData:
    """A SignedData read with :class:`DerReader`, without asn1crypto's objects.

    Takes only the usual shape: CMS version above 1 (asn1crypto reads a version 1
    content as PKCS#7's), encapsulated content, certificates, no CRLs, one signer with
    signed attributes and no unsigned ones. Anything else raises NotPlainDerError, and
    :func:`read_signed_data` hands it to asn1crypto instead.
    """

    content_type: str
    content: bytes
    digest_algorithm: str
    algorithm_identifier: bytes  # the signer's signatureAlgorithm, DER
    signer_id: SignerIdentifier
    certificates: tuple[bytes, ...]
    signed_attributes: SignedAttributes | None
    signature: bytes

    @property
    def signer_count(self) -> int:
        return 1

    def signature_algorithm(self, digest_hint: HashName) -> SignatureAlgorithm:
        return _algorithm_from_der(self.algorithm_identifier, digest_hint)

    def signer_certificate(self) -> Certificate:
        for der in self.certificates:
            candidate = load_certificate(der)
            if self.signer_id.identifies(candidate):
                return candidate
        raise SignedDataError("signer_missing")

    @classmethod
    def from_content_info(cls, data: bytes) -> DerSignedData:
        outer = DerReader(data)
        info = outer.enter(0x30)
        outer.done()
        if info.contents(0x06) != _SIGNED_DATA_OID:
            raise NotPlainDerError("not a SignedData")
        explicit = info.enter(0xA0)
        info.done()
        signed_data = explicit.enter(0x30)
        explicit.done()
        return cls._read(signed_data)

    @classmethod
    def _read(cls, signed_data: DerReader) -> DerSignedData:
        if signed_data.integer() == 1:
            raise NotPlainDerError("version 1")
        signed_data.read(0x31)  # digestAlgorithms: not used, as on asn1crypto's path
        encapsulated = signed_data.enter(0x30)
        certificates = signed_data.enter(0xA0)
        signer_infos = signed_data.enter(0x31)
        signed_data.done()
        content_type = encapsulated.oid()
        explicit = encapsulated.enter(0xA0)
        encapsulated.done()
        content = explicit.contents(0x04)
        explicit.done()
        signer_info = signer_infos.enter(0x30)
        signer_infos.done()
        return cls._read_signer(content_type, content, certificates.rest_encoded(0x30), signer_info)

    @classmethod
    def _read_signer(
        cls, content_type: str, content: bytes, certificates: list[bytes], signer_info: DerReader
    ) -> DerSignedData:
        signer_info.integer()  # version
        sid_tag = signer_info.peek()
        if sid_tag not in (0x30, 0x80):  # IssuerAndSerialNumber, [0] subjectKeyIdentifier
            raise NotPlainDerError("not a SignerIdentifier")
        sid = signer_info.encoded(sid_tag)
        digest_algorithm = algorithm_oid(signer_info.encoded(0x30))
        attributes = signer_info.encoded(0xA0)
        algorithm = signer_info.encoded(0x30)
        signature = signer_info.contents(0x04)
        signer_info.done()  # no unsignedAttrs
        return cls(
            content_type=content_type,
            content=content,
            digest_algorithm=digest_algorithm,
            algorithm_identifier=algorithm,
            signer_id=_signer_id(sid),
            certificates=tuple(certificates),
            signed_attributes=_signed_attributes(attributes),
            signature=signature,
        )


@lru_cache(maxsize=64)
def _algorithm_from_der(encoded: bytes, digest_hint: HashName) -> SignatureAlgorithm:
    # Remembered by its bytes: asn1crypto takes a while over RSA-PSS parameters, and a
    # Document Signer writes the same ones in every SOD. Only the reading is remembered.
    raw = algos.SignedDigestAlgorithm.load(encoded)
    return signature_algorithm(raw["algorithm"].dotted, raw["parameters"], digest_hint=digest_hint)


@lru_cache(maxsize=256)
def _signer_id(encoded: bytes) -> SignerIdentifier:
    # Remembered by its bytes, like the certificate it names: the same in every SOD
    # of one Document Signer.
    outer = DerReader(encoded)
    if outer.peek() == 0x80:
        return SignerIdentifier(key_identifier=outer.contents(0x80))
    sid = outer.enter(0x30)
    issuer = sid.encoded(0x30)
    serial = sid.integer()
    sid.done()
    return SignerIdentifier(issuer=issuer, serial=serial)


def _signed_attributes(encoded: bytes) -> SignedAttributes | None:
    attributes = DerReader(encoded).enter(0xA0)
    if attributes.peek() is None:
        return None
    content_types: list[str] = []
    digests: list[bytes] = []
    while attributes.peek() is not None:  # a type given twice: the last counts, as before
        attribute = attributes.enter(0x30)
        kind = attribute.oid()
        values = attribute.enter(0x31)
        attribute.done()
        if kind == CONTENT_TYPE_ATTRIBUTE:
            content_types = [_dotted(value) for value in values.rest(0x06)]
        elif kind == MESSAGE_DIGEST_ATTRIBUTE:
            digests = values.rest(0x04)
    # RFC 5652 section 5.4: signed as a SET, the [0] IMPLICIT tag replaced.
    return SignedAttributes(b"\x31" + encoded[1:], tuple(content_types), tuple(digests))


class _Asn1SignedData:
    """A SignedData as asn1crypto parsed it: BER, the shapes :class:`DerSignedData`
    leaves out, master lists. Each part is read when asked for, as before."""

    def __init__(self, signed_data: cms.SignedData) -> None:
        self._signed_data = signed_data

    @property
    def content_type(self) -> str:
        return str(self._signed_data["encap_content_info"]["content_type"].dotted)

    @property
    def content(self) -> bytes | None:
        content = self._signed_data["encap_content_info"]["content"]
        if not isinstance(content, core.OctetString | core.ParsableOctetString):
            return None
        return bytes(content.contents)

    @property
    def signer_count(self) -> int:
        return len(self._signed_data["signer_infos"])

    @property
    def _signer_info(self) -> cms.SignerInfo:
        return self._signed_data["signer_infos"][0]

    @property
    def digest_algorithm(self) -> str:
        return str(self._signer_info["digest_algorithm"]["algorithm"].dotted)

    def signature_algorithm(self, digest_hint: HashName) -> SignatureAlgorithm:
        raw = self._signer_info["signature_algorithm"]
        return signature_algorithm(
            raw["algorithm"].dotted, raw["parameters"], digest_hint=digest_hint
        )

    def signer_certificate(self) -> Certificate:
        sid = self._signer_info["sid"]
        for choice in self._signed_data["certificates"] or ():
            if choice.name != "certificate":
                continue
            candidate = load_certificate(choice.chosen.dump())
            if sid.name == "issuer_and_serial_number":
                wanted = sid.chosen
                matches = candidate.cert.serial_number == wanted["serial_number"].native and (
                    # As in SignerIdentifier.identifies: bytes first, names when they differ.
                    candidate.issuer_der == wanted["issuer"].dump()
                    or choice.chosen.issuer == wanted["issuer"]
                )
            else:
                matches = candidate.key_identifier == sid.chosen.native
            if matches:
                return candidate
        raise SignedDataError("signer_missing")

    @property
    def signed_attributes(self) -> SignedAttributes | None:
        signed = self._signer_info["signed_attrs"]
        if not signed:
            return None
        values = {attribute["type"].dotted: attribute["values"] for attribute in signed}
        return SignedAttributes(
            encoded=b"\x31" + signed.dump()[1:],
            content_types=_Converted(
                values.get(CONTENT_TYPE_ATTRIBUTE) or (), lambda value: str(value.dotted)
            ),
            message_digests=_Converted(
                values.get(MESSAGE_DIGEST_ATTRIBUTE) or (), lambda value: bytes(value.native)
            ),
        )

    @property
    def signature(self) -> bytes:
        return bytes(self._signer_info["signature"].native)


def read_signed_data(content_info: bytes) -> SignedDataSource:
    """The SignedData of an encoded ContentInfo (RFC 5652) with nothing after it.

    Plain DER of the usual shape is read by :class:`DerSignedData`; anything else by
    asn1crypto, which then also decides what is malformed. Raises ValueError (from
    asn1crypto also TypeError or KeyError) when it holds no SignedData.
    """
    try:
        return DerSignedData.from_content_info(content_info)
    except ValueError:
        return _read_with_asn1crypto(content_info)


def _read_with_asn1crypto(content_info: bytes) -> _Asn1SignedData:
    info = cms.ContentInfo.load(content_info, strict=True)
    if info["content_type"].native != "signed_data":
        raise ValueError("not a SignedData")
    return _Asn1SignedData(info["content"])


@dataclass(frozen=True)
class SignedContent:
    """What :func:`verify_signed_data` proved: ``content`` was signed by ``signer``."""

    content: bytes
    signer: Certificate
    algorithm: SignatureAlgorithm
    digest: HashName


def verify_signed_data(
    signed_data: cms.SignedData | SignedDataSource, content_type: str
) -> SignedContent:
    """Check a CMS SignedData (RFC 5652) with one signer whose certificate it carries.

    ``signed_data`` is asn1crypto's or :func:`read_signed_data`'s. The signed attributes
    must name ``content_type`` and hold the hash of the encapsulated content, and the
    signature must verify over those attributes encoded as a DER SET (RFC 5652 section
    5.4: the ``[0] IMPLICIT`` tag is replaced by the SET tag; the rest of the bytes are
    used exactly as they came). Raises :class:`SignedDataError` or
    :class:`UnsupportedAlgorithmError`; ValueError from the parser means the structure
    is malformed.
    """
    source: SignedDataSource = (
        _Asn1SignedData(signed_data) if isinstance(signed_data, cms.SignedData) else signed_data
    )
    if source.content_type != content_type:
        raise SignedDataError("structure")
    content = source.content
    if content is None or source.signer_count != 1:
        raise SignedDataError("structure")
    digest_name = hash_name(source.digest_algorithm)
    algorithm = source.signature_algorithm(digest_name)
    signer = source.signer_certificate()
    attributes = source.signed_attributes
    if attributes is None:
        raise SignedDataError("structure")  # Doc 9303 Part 10 requires signed attributes
    _check_attributes(attributes, content_type, digest(digest_name, content))
    if not verify_signature(signer.public_key, algorithm, source.signature, attributes.encoded):
        raise SignedDataError("signature")
    return SignedContent(content, signer, algorithm, digest_name)


def _check_attributes(attributes: SignedAttributes, content_type: str, content_hash: bytes) -> None:
    content_types = attributes.content_types
    message_digests = attributes.message_digests
    if not message_digests or not content_types or len(message_digests) != 1:
        raise SignedDataError("structure")
    if content_types[0] != content_type or message_digests[0] != content_hash:
        raise SignedDataError("signature")


@lru_cache(maxsize=256)
def load_certificate(der: bytes) -> Certificate:
    """:meth:`Certificate.load`, remembered: one Document Signer signs many passports.

    Only the parsing is remembered; every signature is still verified on every use.
    """
    return Certificate.load(der)


def parse_master_list(
    data: bytes,
    *,
    today: date,
    trusted_cscas: Sequence[bytes],
    anchor_fingerprints: Collection[str] = (),
) -> list[bytes]:
    """The CSCA certificates of an ICAO CSCA master list, once its signature checks out
    and its signer is trusted.

    A master list is a CMS SignedData whose content is a CscaMasterList (eContentType
    id-icao-cscaMasterList), signed by a Master List Signer (MLS) whose certificate it
    carries. This checks that signature, that the MLS certificate is valid on ``today``,
    and that the MLS is trusted: issued by one of ``trusted_cscas`` (the CSCAs already
    in the trust store), or itself one of ``anchor_fingerprints`` (SHA-256 of the DER,
    lower-case hex), or issued by a CSCA of the list whose fingerprint is one of them.

    A list merely signed by a CSCA it contains is refused: anyone can make a CSCA, put it
    in a list and sign the list with it, and every certificate of the list would then be
    trusted for every state. The operator anchors the first list on a CSCA or MLS whose
    fingerprint they checked against the publisher's; later lists chain to the store.
    """
    try:
        info = cms.ContentInfo.load(data)
        if info["content_type"].native != "signed_data":
            raise _master_list_error()
        signed = verify_signed_data(info["content"], CSCA_MASTER_LIST_OID)
        master_list = CscaMasterList.load(signed.content)
        listed = [cert.dump() for cert in master_list["cert_list"]]
        for der in listed:  # a list holding an unusable certificate is refused whole
            Certificate.load(der)
    except SignedDataError as error:
        if error.reason == "signature":
            raise InvalidInput(
                "trust.master_list_signature",
                N_(
                    "The master list's signature does not verify: it was changed after "
                    "it was signed. Download it again from its publisher."
                ),
            ) from error
        raise _master_list_error() from error
    except (ValueError, TypeError, KeyError, UnsupportedAlgorithmError) as error:
        raise _master_list_error() from error
    if not signed.signer.is_valid_on(today):
        raise InvalidInput(
            "trust.master_list_expired",
            N_(
                "The master list signer's certificate is not valid on {today}. Use a "
                "current master list."
            ),
            {"today": today.isoformat()},
        )
    if not _trusted_signer(signed.signer, listed, trusted_cscas, anchor_fingerprints, today):
        raise InvalidInput(
            "trust.master_list_signer",
            N_(
                "The master list was not signed by a signer that a trusted country signing "
                "certificate issued. Import that country's certificate first, or configure "
                "the signer's fingerprint. Nothing was imported."
            ),
        )
    return listed


def fingerprint(der: bytes) -> str:
    """A certificate's SHA-256 fingerprint, lower-case hex (as the settings hold it)."""
    return hashlib.sha256(der).hexdigest()


def _trusted_signer(
    signer: Certificate,
    listed: Sequence[bytes],
    trusted_cscas: Sequence[bytes],
    anchor_fingerprints: Collection[str],
    today: date,
) -> bool:
    if fingerprint(signer.der) in anchor_fingerprints:
        return True
    anchored = [der for der in listed if fingerprint(der) in anchor_fingerprints]
    return TrustStore([*trusted_cscas, *anchored]).issuer_of(signer, today=today) is not None


def _master_list_error() -> InvalidInput:
    return InvalidInput(
        "trust.master_list",
        N_("This file is not an ICAO CSCA master list. Check that the right file was chosen."),
    )
