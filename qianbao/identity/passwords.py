"""Password rules and hashing: login passwords (NIST SP 800-63B 5.1.1) and the
six-digit payment password. Pure functions; the use cases are in ``service.py``.

Hashing is argon2id (RFC 9106) through argon2-cffi; the cost is a setting, chosen by
``bench/passwords.py`` on the target hardware.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from functools import cache
from itertools import pairwise

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from qianbao.errors import InvalidInput
from qianbao.i18n import N_
from qianbao.settings import Settings

LOGIN_MIN, LOGIN_MAX = 8, 64
PAYMENT_LENGTH = 6


@cache
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def hasher(settings: Settings) -> PasswordHasher:
    return _hasher(
        settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
    )


def hash_secret(settings: Settings, secret: str) -> str:
    return hasher(settings).hash(secret)


def verify_secret(settings: Settings, stored: str, candidate: str) -> bool:
    """Whether ``candidate`` matches; argon2's comparison is constant-time."""
    try:
        return hasher(settings).verify(stored, candidate)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(settings: Settings, stored: str) -> bool:
    return hasher(settings).check_needs_rehash(stored)


@cache
def common_passwords() -> frozenset[str]:
    """30,000 of the most common passwords from breach corpora (shipped by zxcvbn)."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def normalize_login_password(password: str) -> str:
    # NIST SP 800-63B 5.1.1.2: apply Unicode normalization (NFKC) before hashing, so the
    # same password typed on two keyboards is the same password.
    return unicodedata.normalize("NFKC", password)


def check_login_password(password: str, phone_digits: str) -> str:
    """The normalized password if it is acceptable; raises with the reason if not."""
    normalized = normalize_login_password(password)
    length = len(normalized)
    if length < LOGIN_MIN:
        raise InvalidInput(
            "password.too_short",
            N_("Use at least {min} characters. A phrase of several words is easy to remember."),
            {"min": LOGIN_MIN},
        )
    if length > LOGIN_MAX:
        raise InvalidInput(
            "password.too_long", N_("Use at most {max} characters."), {"max": LOGIN_MAX}
        )
    if normalized.lower() in common_passwords() or normalized.strip() == "":
        raise InvalidInput(
            "password.common",
            N_("This password is among the most common ones and easy to guess. Choose another."),
        )
    national = phone_digits[-8:]
    if national and national in "".join(ch for ch in normalized if ch.isdigit()):
        raise InvalidInput(
            "password.contains_phone",
            N_("Do not use your mobile number in your password."),
        )
    return normalized


def strength(password: str, user_inputs: list[str]) -> int:
    """zxcvbn's score, 0 (guessable in seconds) to 4 (very hard), for the page's meter."""
    from zxcvbn import zxcvbn

    if not password:  # zxcvbn fails on an empty string (IndexError): nothing is weakest
        return 0
    return int(zxcvbn(password[:LOGIN_MAX], user_inputs=user_inputs)["score"])


def check_payment_password(pin: str, phone_digits: str, birth_date: date | None) -> str:
    """Six digits, not trivially guessable; raises with the reason if not."""
    if len(pin) != PAYMENT_LENGTH or not (pin.isascii() and pin.isdigit()):
        raise InvalidInput("paypw.format", N_("The payment password is exactly 6 digits."))
    digits = [int(ch) for ch in pin]
    steps = {b - a for a, b in pairwise(digits)}
    if steps == {0}:
        raise InvalidInput("paypw.repeated", N_("Do not use the same digit six times."))
    if steps in ({1}, {-1}):
        raise InvalidInput("paypw.sequence", N_("Do not use a run like 123456 or 654321."))
    if phone_digits.endswith(pin):
        raise InvalidInput("paypw.phone", N_("Do not use the last 6 digits of your mobile number."))
    if birth_date is not None and pin in _birth_date_forms(birth_date):
        raise InvalidInput("paypw.birth_date", N_("Do not use your date of birth."))
    return pin


def _birth_date_forms(born: date) -> set[str]:
    yy, mm, dd = f"{born.year % 100:02d}", f"{born.month:02d}", f"{born.day:02d}"
    return {yy + mm + dd, dd + mm + yy, mm + dd + yy}
