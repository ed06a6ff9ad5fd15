"""Synthetic documents for trying real-name verification on a demo server.

    .venv/bin/python tools/demo_verification.py passport-page --out var/demo
    .venv/bin/python tools/demo_verification.py frames blink,turn_left --out var/demo/frames
    .venv/bin/python tools/demo_verification.py chip --out var/demo/chip      # + trust import
    .venv/bin/python tools/demo_verification.py sign 0123456789abcdef --key var/demo/chip/aa.pem
    .venv/bin/python tools/demo_verification.py chip --chip-authentication --out var/demo/ca
    .venv/bin/python tools/demo_verification.py answer-ca OID EPHEMERAL COMMAND --dir var/demo/ca

The passport is made up (OCR-B zone with valid check digits) and its portrait is the
astronaut photo that scikit-image ships; the liveness frames are that photo warped into a
performance of the challenge the page asks for (tests/verification/liveness_clips.py).
`chip` writes EF.SOD, EF.DG1, EF.DG2, EF.DG14, EF.DG15 signed by a freshly generated
*test* CSCA, and imports that CSCA into the trust store of the configured database
(QIANBAO_DATABASE_URL): do that on a demo database only, never in production. `sign`
answers the page's chip challenge with the chip's key, as the chip itself would.
`chip --chip-authentication` makes a chip with no DG15 whose DG14 offers chip
authentication (its private key in ca.pem); `answer-ca` plays that chip: it agrees the
session keys with the page's ephemeral key, reads the wrapped command and answers it.

The browser-only demo cannot use a camera with these (they are files), so upload them
with the pages' "Or choose..." fields.
"""

from __future__ import annotations

import argparse
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from qianbao.verification.chip_authentication import Challenge  # noqa: E402
from tests.verification import liveness_clips  # noqa: E402
from tests.verification.chip_vectors import (  # noqa: E402
    CA_AES_128,
    answer_chip_authentication,
    build_chip,
    sign_aa,
)
from tests.verification.passport_pages import (  # noqa: E402
    PassportData,
    encode,
    random_passport,
    render_page,
)


def demo_passport(seed: int) -> PassportData:
    """A passport valid for years from today (the generator's dates are relative to a
    fixed day; skip seeds that would have expired)."""
    today = datetime.now(UTC).date()
    for candidate in range(seed, seed + 200):
        passport = random_passport(random.Random(candidate))
        if (passport.expiry_date - today).days > 365:
            return passport
    raise SystemExit("no generated passport is valid a year from today")


def passport_page(out: Path, seed: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    passport = demo_passport(seed)
    path = out / "passport-page.jpg"
    path.write_bytes(encode(render_page(passport), "JPEG", 92))
    print(f"{path}  (surname {passport.surname}, nationality {passport.nationality})")


def frames(challenge: str, out: Path, seed: int) -> None:
    actions = tuple(challenge.split(","))
    if len(actions) != 2:
        raise SystemExit("the challenge is two actions, e.g. blink,turn_left")
    out.mkdir(parents=True, exist_ok=True)
    clip = liveness_clips.performance("astronaut", actions, random.Random(seed))
    for index, frame in enumerate(clip):
        frame.save(out / f"frame-{index:02d}.jpg", "JPEG", quality=90)
    print(f"{len(clip)} frames in {out}: choose them all on the face step")


def chip(out: Path, seed: int, chip_authentication: bool) -> None:
    from qianbao.db import Database, Tx
    from qianbao.settings import get_settings
    from qianbao.verification import face, trust_store

    out.mkdir(parents=True, exist_ok=True)
    passport = demo_passport(seed)
    portrait = face.cut_portrait(render_page(passport))
    made = build_chip(
        passport,
        portrait,
        active_authentication=not chip_authentication,
        chip_authentication=CA_AES_128 if chip_authentication else None,
    )
    (out / "EF.SOD").write_bytes(made.files.sod)
    for number, data in made.files.dgs.items():
        (out / f"EF.DG{number}").write_bytes(data)
    key, name = (
        (made.ca_private_key, "ca.pem") if chip_authentication else (made.aa_private_key, "aa.pem")
    )
    assert key is not None
    (out / name).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    database = Database(get_settings())
    today = datetime.now(UTC).date()
    for der in made.cscas:

        def trust(tx: Tx, der: bytes = der) -> object:
            return trust_store.import_file(tx, der, "demo CSCA", today=today)

        database.run(trust)
    print(f"chip files and the chip's key ({name}) in {out}; the test CSCA is in the trust store")


def sign(challenge: str, key_path: Path) -> None:
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    print(sign_aa(key, bytes.fromhex(challenge)).hex())  # type: ignore[arg-type]


def answer_ca(protocol: str, ephemeral: str, command: str, directory: Path) -> None:
    key = serialization.load_pem_private_key((directory / "ca.pem").read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SystemExit("ca.pem is not the EC key of a chip made with --chip-authentication")
    challenge = Challenge(protocol, None, bytes.fromhex(ephemeral), bytes.fromhex(command))
    dg1 = (directory / "EF.DG1").read_bytes()
    print(answer_chip_authentication(key, dg1, challenge).hex())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    page = commands.add_parser("passport-page")
    page.add_argument("--out", type=Path, default=Path("var/demo"))
    page.add_argument("--seed", type=int, default=7)
    shot = commands.add_parser("frames")
    shot.add_argument("challenge", help="the two actions the page asks for: blink,turn_left")
    shot.add_argument("--out", type=Path, default=Path("var/demo/frames"))
    shot.add_argument("--seed", type=int, default=1)
    files = commands.add_parser("chip")
    files.add_argument("--out", type=Path, default=Path("var/demo/chip"))
    files.add_argument("--seed", type=int, default=7)
    files.add_argument(
        "--chip-authentication",
        action="store_true",
        help="no DG15; DG14 offers chip authentication",
    )
    answer = commands.add_parser("sign")
    answer.add_argument("challenge", help="the hexadecimal challenge shown on the page")
    answer.add_argument("--key", type=Path, default=Path("var/demo/chip/aa.pem"))
    relay = commands.add_parser("answer-ca")
    relay.add_argument("protocol", help="the protocol OID shown on the page")
    relay.add_argument("ephemeral", help="the ephemeral public key shown on the page (hex)")
    relay.add_argument(
        "apdu", metavar="COMMAND", help="the command for the chip shown on the page (hex)"
    )
    relay.add_argument("--dir", type=Path, default=Path("var/demo/ca"))
    args = parser.parse_args()
    if args.command == "passport-page":
        passport_page(args.out, args.seed)
    elif args.command == "frames":
        frames(args.challenge, args.out, args.seed)
    elif args.command == "chip":
        chip(args.out, args.seed, args.chip_authentication)
    elif args.command == "answer-ca":
        answer_ca(args.protocol, args.ephemeral, args.apdu, args.dir)
    else:
        sign(args.challenge, args.key)


if __name__ == "__main__":
    main()
