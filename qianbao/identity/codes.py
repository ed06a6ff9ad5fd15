"""One-time SMS codes and session tokens: made with ``secrets``, kept as keyed hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_sms_code(length: int) -> str:
    return f"{secrets.randbelow(10**length):0{length}d}"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def keyed_hash(key: bytes, *parts: str) -> str:
    """HMAC-SHA-256 over the parts; the key never leaves the server."""
    message = "\x1f".join(parts).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def same_hash(expected: str, candidate: str) -> bool:
    return hmac.compare_digest(expected.encode(), candidate.encode())
