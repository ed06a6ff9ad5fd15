"""Command and response APDUs, and the PC/SC transport (pyscard) that carries them.

A :class:`Transport` is anything that sends a command APDU and returns the response's
data and status word: a contactless reader through PC/SC, or a simulated chip in tests.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Final, Protocol

try:  # pyscard is the `reader` extra: the server installs without it.
    from smartcard.CardConnection import CardConnection
    from smartcard.Exceptions import CardConnectionException, NoCardException
    from smartcard.pcsc.PCSCExceptions import BaseSCardException
    from smartcard.System import readers as pcsc_readers
except ImportError:  # pragma: no cover - exercised where pyscard is not installed
    pcsc_readers = None

SW_OK: Final = 0x9000
SW_FILE_NOT_FOUND: Final = 0x6A82


def pcsc_available() -> bool:
    """Whether pyscard is installed (the ``reader`` extra)."""
    return pcsc_readers is not None


class ReaderError(Exception):
    """The reader or the chip cannot go on; the message says why, for a person."""


@dataclass(frozen=True)
class Reply:
    data: bytes
    status: int

    @property
    def ok(self) -> bool:
        return self.status == SW_OK


class Transport(Protocol):
    def transmit(self, apdu: bytes) -> Reply: ...


def short_apdu(header: bytes, data: bytes = b"", expected_length: int | None = None) -> bytes:
    """A short (ISO/IEC 7816-4) command APDU; ``expected_length`` 256 is written 00."""
    apdu = header
    if data:
        apdu += bytes([len(data)]) + data
    if expected_length is not None:
        apdu += bytes([expected_length % 256])
    return apdu


class PcscTransport:
    """The card in a PC/SC reader (``pcscd`` on Linux), through pyscard."""

    def __init__(self, connection: object) -> None:
        self._connection = connection

    @classmethod
    def open(cls, reader_index: int = 0) -> PcscTransport:
        if pcsc_readers is None:
            raise ReaderError("pyscard is not installed: pip install 'qianbao[reader]'")
        try:
            found = pcsc_readers()
        except BaseSCardException as error:
            raise ReaderError(f"PC/SC is not available (is pcscd running?): {error}") from error
        if not 0 <= reader_index < len(found):
            raise ReaderError(f"No smart card reader number {reader_index} (found {len(found)}).")
        connection = found[reader_index].createConnection()
        try:
            connection.connect(CardConnection.T1_protocol | CardConnection.T0_protocol)
        except (NoCardException, CardConnectionException) as error:
            raise ReaderError(f"No passport on reader {found[reader_index]}: {error}") from error
        return cls(connection)

    def transmit(self, apdu: bytes) -> Reply:
        try:
            data, sw1, sw2 = self._connection.transmit(list(apdu))  # type: ignore[attr-defined]
        except CardConnectionException as error:
            raise ReaderError(f"The passport left the reader: {error}") from error
        return Reply(bytes(data), (sw1 << 8) | sw2)

    def close(self) -> None:
        with contextlib.suppress(CardConnectionException):  # the card may have left
            self._connection.disconnect()  # type: ignore[attr-defined]
