"""Encryption at rest: values open only with their key and in their own place."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qianbao.sealing import Keyring, Sealed, SealingError, new_key_entry
from qianbao.settings import Settings

PASSPORT = b"L898902C3"
CONTEXT = b"passport:number:7f0c"


def test_a_sealed_value_opens_only_in_its_context() -> None:
    ring = Keyring.parse(new_key_entry("k1"))
    sealed = ring.seal(PASSPORT, CONTEXT)
    assert PASSPORT not in sealed.blob
    assert ring.open(sealed, CONTEXT) == PASSPORT
    with pytest.raises(SealingError):
        ring.open(sealed, b"passport:number:another-record")


def test_the_same_value_seals_differently_each_time() -> None:
    ring = Keyring.parse(new_key_entry("k1"))
    assert ring.seal(PASSPORT, CONTEXT).blob != ring.seal(PASSPORT, CONTEXT).blob


def test_tampering_is_detected() -> None:
    ring = Keyring.parse(new_key_entry("k1"))
    sealed = ring.seal(PASSPORT, CONTEXT)
    flipped = bytearray(sealed.blob)
    flipped[-1] ^= 1
    with pytest.raises(SealingError):
        ring.open(Sealed(sealed.key_id, bytes(flipped)), CONTEXT)
    with pytest.raises(SealingError):
        ring.open(Sealed("k9", sealed.blob), CONTEXT)  # unknown key


def test_keys_rotate_without_losing_old_values() -> None:
    old_entry = new_key_entry("k1")
    old = Keyring.parse(old_entry).seal(PASSPORT, CONTEXT)
    rotated = Keyring.parse(f"{new_key_entry('k2')},{old_entry}")
    assert rotated.current_id == "k2"
    assert rotated.open(old, CONTEXT) == PASSPORT
    moved = rotated.reseal(old, CONTEXT)
    assert moved.key_id == "k2"
    assert rotated.open(moved, CONTEXT) == PASSPORT
    assert rotated.reseal(moved, CONTEXT) is moved
    with pytest.raises(SealingError):
        Keyring.parse(old_entry).open(moved, CONTEXT)  # the old ring cannot open k2


def test_storage_form_round_trips_and_refuses_garbage() -> None:
    ring = Keyring.parse(new_key_entry("k1"))
    sealed = ring.seal("护照 ERIKSSON".encode(), CONTEXT)
    assert Sealed.decode(sealed.encode()) == sealed
    for garbage in ("", "no-dot", ".abc", "k1.!!!"):
        with pytest.raises(SealingError):
            Sealed.decode(garbage)


def test_bad_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Keyring([("k1", b"short")])
    with pytest.raises(ValueError, match="at least one"):
        Keyring.parse("")


def test_a_key_is_made_once_per_var_dir(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    first = Keyring.from_settings(settings).seal(PASSPORT, CONTEXT)
    assert Keyring.from_settings(settings).open(first, CONTEXT) == PASSPORT
    assert (tmp_path / "sealing.keys").stat().st_mode & 0o777 == 0o600


@given(st.binary(max_size=2048), st.binary(max_size=64))
def test_anything_round_trips(value: bytes, context: bytes) -> None:
    ring = _RING
    assert ring.open(ring.seal(value, context), context) == value


_RING = Keyring.parse(new_key_entry("k1"))
