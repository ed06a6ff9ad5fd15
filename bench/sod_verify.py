"""SOD verifications per second: parse + passive authentication, on one core.

    .venv/bin/python bench/sod_verify.py [--seconds 2] [--chips 20]

For RSA-2048 (PKCS#1 v1.5), RSA-PSS and ECDSA P-256 Document Signers, builds ``--chips``
passports (tests/verification/chip_vectors.py: DG1, DG2 with a JPEG face, DG14, DG15),
then times :func:`qianbao.verification.chip.verify_passive` on them in turn: parse
EF.SOD, verify its signature and the DS certificate's chain to the CSCA, validity,
revocation (one CRL in the store), and hash the four data groups.

The reference, measured in the same run: the same two signature verifications done
directly with `cryptography` (the SOD's signature by the DS key over the signed
attributes, the DS certificate's signature by the CSCA key), keys loaded and bytes cut
out beforehand, so nothing but the verifications. The ratio says how much of the time
goes to the public-key operations themselves; the goal is >= 0.5.

The CSCAs are RSA-3072 (for both RSA signers) and ECDSA brainpoolP384r1 (for P-256),
so the reference includes that second verification with those keys.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asn1crypto import cms
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from qianbao.verification.chip import verify_passive
from qianbao.verification.trust import TrustStore
from tests.verification import chip_vectors as vectors
from tests.verification.passport_pages import TODAY, random_passport

CASES: tuple[tuple[str, vectors.Algorithm], ...] = (
    ("RSA-2048 PKCS#1 v1.5", "rsa"),
    ("RSA-2048 PSS", "rsa-pss"),
    ("ECDSA P-256", "ecdsa"),
)


def rate(work: Callable[[int], object], count: int, seconds: float) -> float:
    """Calls per second of ``work(i)`` for i = 0, 1, ... over about ``seconds``."""
    for index in range(count):  # warm-up: caches, lazy imports
        work(index)
    done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for index in range(count):
            work(index)
        done += count
    return done / elapsed


def reference_verifier(chip: vectors.Chip, algorithm: vectors.Algorithm) -> Callable[[], None]:
    """The two signature verifications of one chip, straight through `cryptography`."""
    assert chip.signer is not None
    assert chip.csca is not None
    info = cms.ContentInfo.load(chip.files.sod[4:])
    signer_info = info["content"]["signer_infos"][0]
    signed_attributes = b"\x31" + signer_info["signed_attrs"].dump()[1:]
    sod_signature = bytes(signer_info["signature"].native)
    ds_key = chip.signer.cert.public_key()
    ds_cert = chip.signer.cert
    csca_key = chip.csca.cert.public_key()

    def verify() -> None:
        if isinstance(ds_key, rsa.RSAPublicKey):
            scheme: padding.AsymmetricPadding = padding.PKCS1v15()
            if algorithm == "rsa-pss":
                scheme = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            ds_key.verify(sod_signature, signed_attributes, scheme, hashes.SHA256())
        else:
            assert isinstance(ds_key, ec.EllipticCurvePublicKey)
            ds_key.verify(sod_signature, signed_attributes, ec.ECDSA(hashes.SHA256()))
        if isinstance(csca_key, rsa.RSAPublicKey):
            cert_scheme: padding.AsymmetricPadding = padding.PKCS1v15()
            if algorithm == "rsa-pss":
                cert_scheme = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            csca_key.verify(
                ds_cert.signature, ds_cert.tbs_certificate_bytes, cert_scheme, hashes.SHA256()
            )
        else:
            assert isinstance(csca_key, ec.EllipticCurvePublicKey)
            csca_key.verify(
                ds_cert.signature, ds_cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA384())
            )

    return verify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--chips", type=int, default=20)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    rng = random.Random(1)
    print(f"one core (cpu 0), {args.chips} chips per algorithm, ~{args.seconds} s per figure")
    print(f"{'Document Signer':<22} {'ours /s':>9} {'reference /s':>13} {'ratio':>6}")
    for label, algorithm in CASES:
        chips = [vectors.build_chip(random_passport(rng), algorithm=algorithm)
                 for _ in range(args.chips)]  # fmt: skip
        # Each passport's issuing state has its own CSCA (and CRL), as in production.
        issuers = {chip.csca.der: chip.csca for chip in chips if chip.csca is not None}
        trust = TrustStore(
            list(issuers), [vectors.crl(issuer, [1, 2, 3]) for issuer in issuers.values()]
        )

        def ours(index: int, chips: list[vectors.Chip] = chips, trust: TrustStore = trust) -> None:
            chip = chips[index]
            verify_passive(chip.files.sod, chip.files.dgs, trust, today=TODAY)

        references = [reference_verifier(chip, algorithm) for chip in chips]
        ours_rate = rate(ours, len(chips), args.seconds)

        def reference(index: int, references: list[Callable[[], None]] = references) -> None:
            references[index]()

        reference_rate = rate(reference, len(chips), args.seconds)
        ratio = ours_rate / reference_rate
        print(f"{label:<22} {ours_rate:>9.0f} {reference_rate:>13.0f} {ratio:>5.2f}x")


if __name__ == "__main__":
    main()
