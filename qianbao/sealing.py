"""Encryption at rest for what must never sit in the database in clear: passport
fields, names, birth dates, face images (DESIGN.md, "Secrets").

AES-256-GCM from ``cryptography``. Every sealed value names the key that sealed it, so
keys rotate: the newest key seals, every listed key still opens, and re-sealing moves a
value to the newest key. The context (say ``b"passport:number"`` plus the record id) is
bound in as associated data, so a value copied to another column or row fails to open.

Keys come from ``QIANBAO_SEALING_KEYS`` (or the file ``QIANBAO_SEALING_KEYS_FILE``
names): ``id:base64key`` entries separated by commas or line breaks, the first one
current. Neither set, a key is generated once into ``var_dir/sealing.keys``, readable by
its owner only (development only: in production the keys must be given, see settings).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from qianbao.private_files import create_private
from qianbao.settings import Settings

NONCE_BYTES = 12  # GCM's standard nonce; random nonces are safe far below 2**32 seals a key
KEY_BYTES = 32
TAG_BYTES = 16


class SealingError(Exception):
    """A value that cannot be opened: unknown key, wrong context, or tampered with."""


@dataclass(frozen=True)
class Sealed:
    key_id: str
    blob: bytes  # nonce, then ciphertext with its 16-byte tag

    def encode(self) -> str:
        """A single text form for storage: ``key_id.base64(blob)``."""
        return f"{self.key_id}.{base64.urlsafe_b64encode(self.blob).decode()}"

    @classmethod
    def decode(cls, text: str) -> Sealed:
        key_id, dot, payload = text.partition(".")
        if not dot or not key_id:
            raise SealingError("not a sealed value")
        try:
            blob = base64.b64decode(payload.encode(), altchars=b"-_", validate=True)
        except ValueError as error:
            raise SealingError("not a sealed value") from error
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise SealingError("not a sealed value")
        return cls(key_id, blob)


class Keyring:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        for key_id, key in keys:
            if len(key) != KEY_BYTES or not key_id.isalnum():
                raise ValueError(f"key {key_id!r}: an alphanumeric id and 32 bytes are needed")
        self.current_id = keys[0][0]
        self._keys = {key_id: AESGCM(key) for key_id, key in keys}
        self._raw = dict(keys)
        self._mac_keys: dict[tuple[str, bytes], bytes] = {}

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key's id, the current one first (a keyed hash is looked up under each)."""
        return (self.current_id, *(key_id for key_id in self._raw if key_id != self.current_id))

    @classmethod
    def parse(cls, text: str) -> Keyring:
        keys = []
        for entry in filter(None, re.split(r"[,\s]+", text)):
            key_id, _, encoded = entry.partition(":")
            keys.append((key_id, base64.urlsafe_b64decode(encoded.encode())))
        return cls(keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        if settings.sealing_keys:
            return cls.parse(settings.sealing_keys)
        return cls.parse(
            create_private(Path(settings.var_dir) / "sealing.keys", new_key_entry("k1"))
        )

    def seal(self, plaintext: bytes, context: bytes) -> Sealed:
        nonce = secrets.token_bytes(NONCE_BYTES)
        cipher = self._keys[self.current_id]
        aad = _associated_data(self.current_id, context)
        return Sealed(self.current_id, nonce + cipher.encrypt(nonce, plaintext, aad))

    def open(self, sealed: Sealed, context: bytes) -> bytes:
        cipher = self._keys.get(sealed.key_id)
        if cipher is None:
            raise SealingError(f"no key {sealed.key_id!r} in the keyring")
        nonce, ciphertext = sealed.blob[:NONCE_BYTES], sealed.blob[NONCE_BYTES:]
        try:
            return cipher.decrypt(nonce, ciphertext, _associated_data(sealed.key_id, context))
        except InvalidTag as error:
            raise SealingError("the value was changed, or belongs elsewhere") from error

    def reseal(self, sealed: Sealed, context: bytes) -> Sealed:
        """The same value under the current key (a no-op when it already is)."""
        if sealed.key_id == self.current_id:
            return sealed
        return self.seal(self.open(sealed, context), context)

    def keyed_hash(
        self, data: bytes, purpose: bytes, key_id: str | None = None
    ) -> tuple[str, bytes]:
        """HMAC-SHA-256 of ``data`` under a key derived for ``purpose`` (HKDF) from the
        named key, the current one by default: a secret that stays outside the database
        (a payment PIN's hash is worthless to someone holding the database alone). The
        sealing key itself is never used twice: each purpose derives its own."""
        chosen = key_id or self.current_id
        if chosen not in self._raw:
            raise SealingError(f"no key {chosen!r} in the keyring")
        key = self._mac_keys.get((chosen, purpose))
        if key is None:
            key = HKDF(algorithm=SHA256(), length=KEY_BYTES, salt=None, info=purpose).derive(
                self._raw[chosen]
            )
            self._mac_keys[(chosen, purpose)] = key
        return chosen, hmac.new(key, data, hashlib.sha256).digest()


_keyrings: dict[tuple[str, str], Keyring] = {}


def keyring(settings: Settings) -> Keyring:
    """The process's keyring for these settings, parsed once (a payment reads it)."""
    cache_key = (settings.sealing_keys, str(settings.var_dir))
    found = _keyrings.get(cache_key)
    if found is None:
        found = _keyrings[cache_key] = Keyring.from_settings(settings)
    return found


def _associated_data(key_id: str, context: bytes) -> bytes:
    return key_id.encode() + b"\x1f" + context


def new_key_entry(key_id: str) -> str:
    """A fresh ``id:key`` entry for ``QIANBAO_SEALING_KEYS`` (put it first to rotate)."""
    return f"{key_id}:{base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"
