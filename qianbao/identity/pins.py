"""The payment password's hash: a keyed hash under the keyring, not argon2.

A six-digit PIN has a million values. Online, the lockout (three wrong entries lock
payments for three hours) is what stops guessing; offline, a million guesses take a few
CPU days whatever argon2's cost, so argon2 buys nothing there while costing every payment
about 180 ms of CPU at the shipped settings. What protects a PIN offline is a secret the
database does not hold, as payment HSMs treat PINs: HMAC-SHA-256 under a key derived from
the sealing keyring (kept apart from the database, backed up apart). With the database
alone an attacker learns nothing of any PIN; with the database *and* the keys, every PIN
falls in seconds, exactly as with argon2 (README, "Passwords, email and the payment
password"). Login passwords keep argon2id: they are not six digits.

The person's id is part of the hashed message, so equal PINs of two people do not have
equal hashes, and a hash copied to another person's row does not verify. Hashes made
before (argon2) or under a key rotated out of first place are replaced on the next
successful entry.
"""

from __future__ import annotations

import base64
import hmac
import uuid
from dataclasses import dataclass
from typing import Final

from qianbao.errors import Conflict
from qianbao.i18n import N_
from qianbao.identity import passwords
from qianbao.sealing import SealingError, keyring
from qianbao.settings import Settings

SCHEME: Final = "pin-hmac-sha256"
_PURPOSE: Final = b"qianbao payment password"


@dataclass(frozen=True)
class PinCheck:
    matches: bool
    # The hash to store instead, when this one is from before (argon2) or under an older
    # key: set only on a match, when the PIN itself is at hand.
    upgraded: str | None = None


def hash_pin(settings: Settings, user_id: uuid.UUID, pin: str) -> str:
    key_id, mac = keyring(settings).keyed_hash(_message(user_id, pin), _PURPOSE)
    return f"{SCHEME}${key_id}${base64.urlsafe_b64encode(mac).decode()}"


def check_pin(settings: Settings, user_id: uuid.UUID, stored: str, pin: str) -> PinCheck:
    """Whether ``pin`` is the person's payment password, in constant time."""
    scheme, _, rest = stored.partition("$")
    if scheme != SCHEME:  # an argon2 hash from before the keyed hash
        matches = passwords.verify_secret(settings, stored, pin)
        return PinCheck(matches, hash_pin(settings, user_id, pin) if matches else None)
    key_id, _, encoded = rest.partition("$")
    ring = keyring(settings)
    try:
        _, expected = ring.keyed_hash(_message(user_id, pin), _PURPOSE, key_id)
    except SealingError:
        # The key was retired before this PIN was entered again under a newer one: it
        # cannot be checked any more (nor recovered); only a reset helps.
        raise Conflict(
            "paypw.reset_needed",
            N_(
                "Your payment password can no longer be checked after a security update. "
                "Reset it with an SMS code, then pay again."
            ),
        ) from None
    matches = hmac.compare_digest(expected, base64.urlsafe_b64decode(encoded.encode()))
    stale = matches and key_id != ring.current_id
    return PinCheck(matches, hash_pin(settings, user_id, pin) if stale else None)


def _message(user_id: uuid.UUID, pin: str) -> bytes:
    return user_id.bytes + b"\x1f" + pin.encode()
