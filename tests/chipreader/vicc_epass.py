"""Starts vsmartcard's ePass emulator (``vicc -t ePass``) holding a given passport.

Run by Debian's ``/usr/bin/python3`` (where ``python3-virtualsmartcard`` lives), not by
the project's venv: ``python3 vicc_epass.py PORT FOLDER``. FOLDER holds the files to
load (``COM``, ``DG1``, ``DG2``, ``SOD``, ...: raw bytes, as on a chip).

Debian's vsmartcard 0.8 cannot start an ePass by itself under Python 3: its card
generator prompts with ``raw_input`` and packs ``str`` where Python 3 needs ``bytes``,
its modules sit outside ``sys.path`` (``/usr/lib/python3/site-packages``), and it asks
for PyCrypto's ``Crypto`` where Debian ships PyCryptodome as ``Cryptodome``. So this
builds the card's file system itself with the emulator's own classes (MF, DF,
transparent EFs, the ePass SAM that runs BAC and secure messaging) and hands it to the
emulator's ``VirtualICC``, which connects to ``vpcd`` on PORT.
"""

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, "/usr/lib/python3/site-packages/virtualsmartcard")
for _name in (
    "Cipher",
    "Cipher.DES3",
    "Cipher.DES",
    "Cipher.AES",
    "Cipher.ARC4",
    "Hash",
    "Hash.SHA",
    "Hash.HMAC",
    "Util",
    "PublicKey",
    "PublicKey.RSA",
):
    sys.modules["Crypto." + _name] = importlib.import_module("Cryptodome." + _name)
sys.modules["Crypto"] = importlib.import_module("Cryptodome")

from virtualsmartcard import CryptoUtils, VirtualSmartcard  # type: ignore[import-not-found]  # noqa: E402
from virtualsmartcard.cards.ePass import PassportSAM  # type: ignore[import-not-found]  # noqa: E402
from virtualsmartcard.SmartcardFilesystem import DF, MF, TransparentStructureEF  # type: ignore[import-not-found]  # noqa: E402

# LDS application and elementary files (Doc 9303 Part 10).
LDS_AID = b"\xa0\x00\x00\x02\x47\x10\x01"
FILE_IDS = {
    "COM": 0x011E,
    "SOD": 0x011D,
    "DG1": 0x0101,
    "DG2": 0x0102,
    "DG14": 0x010E,
    "DG15": 0x010F,
}


def _xor(first: bytes, second: bytes, op: Callable[[int, int], int]) -> bytes:
    """CryptoUtils.operation_on_string for bytes (the original indexes a Python 2 str)."""
    if len(first) != len(second):
        raise ValueError("operands of unequal length")
    return bytes(op(a, b) for a, b in zip(first, second, strict=True))


CryptoUtils.operation_on_string = _xor


def card(folder: Path) -> tuple[Any, Any]:
    mf = MF()
    df = DF(parent=mf, fid=4, dfname=LDS_AID, bertlv_data=[])
    for name, fid in FILE_IDS.items():
        path = folder / name
        if path.exists():
            df.append(
                TransparentStructureEF(parent=df, fid=fid, filedescriptor=0, data=path.read_bytes())
            )
    mf.append(df)
    return mf, PassportSAM(mf)


class _Loaded:
    def __init__(self, mf: Any, sam: Any) -> None:
        self.mf, self.sam = mf, sam

    def readDatagroups(self, _file: str) -> None:  # noqa: N802 - the emulator's name
        pass

    def getCard(self) -> tuple[Any, Any]:  # noqa: N802 - the emulator's name
        return self.mf, self.sam


def main() -> None:
    port, folder = int(sys.argv[1]), Path(sys.argv[2])
    mf, sam = card(folder)
    VirtualSmartcard.CardGenerator = lambda _type: _Loaded(mf, sam)
    icc = VirtualSmartcard.VirtualICC(None, "ePass", "localhost", port)
    icc.run()


if __name__ == "__main__":
    main()
