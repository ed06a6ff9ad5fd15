"""Alipay's RSA2 signatures: the text signed and SHA256withRSA over it.

The text is every parameter but the excluded ones (``sign``, and for notifications and
return pages ``sign_type`` too), empty values dropped, sorted by key, joined as raw
``key=value`` pairs with ``&`` (values not URL-encoded). The signature is PKCS#1 v1.5
with SHA-256, in Base64. Keys are exchanged as PEM or, as Alipay's console shows them,
as the bare Base64 of the key.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes


class KeyRefused(ValueError):
    """Not an RSA key of the size asked for."""


def sign_content(params: Mapping[str, str], exclude: Iterable[str] = ("sign",)) -> str:
    left_out = set(exclude)
    pairs = sorted((key, value) for key, value in params.items() if key not in left_out and value)
    return "&".join(f"{key}={value}" for key, value in pairs)


def sign(private_key: rsa.RSAPrivateKey, text: str) -> str:
    signature = private_key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def verify(public_key: rsa.RSAPublicKey, text: str, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        public_key.verify(raw, text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def new_private_key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def public_pem(key: rsa.RSAPublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def bare_base64(pem: str) -> str:
    """The key as Alipay's console shows it: the PEM's Base64 on one line."""
    return "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    """PKCS#1 ("BEGIN RSA PRIVATE KEY"), the form Alipay's SDKs read."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyRefused("not an RSA private key")
    return key


def load_public_key(text: str, min_bits: int) -> rsa.RSAPublicKey:
    """A public key from PEM or bare Base64 (SubjectPublicKeyInfo or PKCS#1)."""
    stripped = text.strip()
    try:
        if stripped.startswith("-----"):
            key = serialization.load_pem_public_key(stripped.encode("ascii"))
        else:
            der = base64.b64decode("".join(stripped.split()), validate=True)
            key = _der_public_key(der)
    except (ValueError, TypeError, binascii.Error, UnicodeEncodeError) as error:
        raise KeyRefused("not a public key") from error
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyRefused("not an RSA public key")
    if key.key_size < min_bits:
        raise KeyRefused(f"an RSA key of {key.key_size} bits; {min_bits} or more are needed")
    return key


def _der_public_key(der: bytes) -> PublicKeyTypes:
    try:
        return serialization.load_der_public_key(der)
    except ValueError:
        pem = b"-----BEGIN RSA PUBLIC KEY-----\n" + base64.encodebytes(der)
        return serialization.load_pem_public_key(pem + b"-----END RSA PUBLIC KEY-----\n")


def fingerprint(pem: str) -> str:
    """SHA-256 of a public key's DER (SubjectPublicKeyInfo), as colon-separated hex: what
    a shop compares with ``openssl pkey -pubin -outform DER | sha256sum``."""
    key = serialization.load_pem_public_key(pem.encode())
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return ":".join(f"{byte:02X}" for byte in digest.finalize())
