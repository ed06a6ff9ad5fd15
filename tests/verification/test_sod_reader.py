"""The fast DER reading of EF.SOD (``trust.DerSignedData``, ``chip._read_lds_der``) must
decide exactly as asn1crypto does: on thousands of damaged SODs, passive authentication
gives the same outcome (accepted, or the same refusal) with the fast path as with
asn1crypto alone."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from qianbao.errors import InvalidInput
from qianbao.verification import chip, trust
from qianbao.verification.chip import ChipFiles, verify_passive
from qianbao.verification.trust import TrustStore
from tests.verification import chip_vectors as vectors
from tests.verification.passport_pages import TODAY, random_passport

ALGORITHMS = ("rsa", "rsa-pss", "ecdsa", "brainpool-explicit")


def _outcome(files: ChipFiles, store: TrustStore) -> str:
    try:
        verify_passive(files.sod, files.dgs, store, today=TODAY)
    except InvalidInput as refusal:
        return refusal.code
    return "accepted"


def _damaged(sod: bytes, rng: random.Random) -> Iterator[bytes]:
    """Bit flips, cuts, insertions and deletions anywhere in the file."""
    for _ in range(60):
        at = rng.randrange(len(sod))
        flipped = bytearray(sod)
        flipped[at] ^= 1 << rng.randrange(8)
        yield bytes(flipped)
        yield sod[:at] + sod[at + 1 :]
        yield sod[:at] + bytes([rng.randrange(256)]) + sod[at:]
        yield sod[: rng.randrange(len(sod))]


def _asn1crypto_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chip, "read_signed_data", trust._read_with_asn1crypto)

    def never(_content: bytes) -> tuple[str, dict[int, bytes]]:
        raise ValueError("asn1crypto only")

    monkeypatch.setattr(chip, "_read_lds_der", never)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_fast_reader_decides_as_asn1crypto_does(
    algorithm: vectors.Algorithm, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = vectors.build_chip(
        random_passport(random.Random(3)), algorithm=algorithm, active_authentication=False
    )
    store = TrustStore(made.cscas, made.crls)
    variants = [made.files.sod, *_damaged(made.files.sod, random.Random(algorithm))]
    fast = [_outcome(ChipFiles(sod, made.files.dgs), store) for sod in variants]
    assert fast[0] == "accepted" and len(set(fast)) > 2  # the damage reaches many checks
    with monkeypatch.context() as patched:
        _asn1crypto_only(patched)
        slow = [_outcome(ChipFiles(sod, made.files.dgs), store) for sod in variants]
    differing = [i for i, (a, b) in enumerate(zip(fast, slow, strict=True)) if a != b]
    assert not differing, [(fast[i], slow[i]) for i in differing[:5]]
