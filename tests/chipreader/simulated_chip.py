"""The project's passport chip simulator: a chip built by ``chip_vectors.build_chip``
that answers APDUs as a passport does, for the reader's end-to-end tests.

It runs the chip's half of BAC (GET CHALLENGE, EXTERNAL AUTHENTICATE) and, when built
with a PACE protocol, of PACE (EF.CardAccess with its PACEInfo, MSE:Set AT and the four
GENERAL AUTHENTICATE steps of the generic mapping, a wrong zone failing at the token
check); secure messaging (3DES after BAC; 3DES or AES after PACE or chip
authentication), SELECT and READ BINARY of the LDS files, INTERNAL AUTHENTICATE (active
authentication with the chip's own key) and chip authentication (MSE:Set AT + GENERAL
AUTHENTICATE, or MSE:Set KAT), so a read of it passes every server check.
:func:`plugged_into_vpcd` plugs it into ``vpcd`` (vsmartcard's virtual reader for
``pcscd``) the way ``vicc`` does, so a PC/SC client reads it too.
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from asn1crypto import core, parser
from cryptography.hazmat.primitives.asymmetric import ec
from fastecdsa.rust import Point

from qianbao.chipreader import pace
from qianbao.chipreader.apdu import ReaderError, Reply
from qianbao.chipreader.bac import MrzKey, des3_cbc, retail_mac
from qianbao.chipreader.passport import FILES, LDS_AID
from qianbao.verification import secure_messaging as sm
from qianbao.verification.chip_authentication import ECDH_PROTOCOLS
from tests.verification.chip_vectors import Chip, PrivateKey, sign_aa, tlv

ATR: Final = bytes.fromhex("3B8880014241594B4F4E5551")
SW_OK: Final = 0x9000
SW_NOT_FOUND: Final = 0x6A82
SW_SECURITY: Final = 0x6982  # security status not satisfied
SW_SM_OBJECTS: Final = 0x6988
SW_INS: Final = 0x6D00
SW_END_OF_FILE: Final = 0x6B00
SW_WRONG_DATA: Final = 0x6A80
SW_VERIFICATION_FAILED: Final = 0x6300  # PACE: the terminal's token does not check
CARD_ACCESS: Final = 0x011C
GROUP_TAGS: Final = {1: 0x61, 2: 0x75, 14: 0x6E, 15: 0x6F}


def ef_card_access(protocol: str, parameter_id: int) -> bytes:
    """EF.CardAccess with one PACEInfo (Doc 9303 Part 11, 9.2.1): version 2."""
    oid = core.ObjectIdentifier(protocol).dump()
    integers = core.Integer(2).dump() + core.Integer(parameter_id).dump()
    return tlv(0x31, tlv(0x30, oid + integers))


@dataclass
class PaceRun:
    """The chip's side of a PACE run in progress."""

    info: pace.PaceInfo
    step: int = 1
    nonce: bytes = b""
    generator: Point | None = None
    private: int = 0
    own_public: bytes = b""
    terminal_public: bytes = b""
    keys: sm.SessionKeys | None = None


def ef_com(groups: list[int]) -> bytes:
    """EF.COM for these data groups (LDS 1.7, Unicode 4.0.0)."""
    tags = bytes(GROUP_TAGS[n] for n in sorted(groups))
    return tlv(0x60, tlv(0x5F01, b"0107") + tlv(0x5F36, b"040000") + tlv(0x5C, tags))


@dataclass
class SimulatedPassport:
    """A passport chip. ``aa_key`` replaces the chip's AA key (a clone signs with its
    own); the BAC key is the printed zone's. With ``pace`` (a PACE protocol OID) the chip
    offers PACE over the standardized curve ``pace_parameter_id`` in EF.CardAccess, and
    still answers BAC."""

    chip: Chip
    mrz: MrzKey
    aa_key: PrivateKey | None = None
    pace: str | None = None
    pace_parameter_id: int = 13
    files: dict[int, bytes] = field(init=False)
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.files = {
            FILES["COM"]: ef_com(list(self.chip.files.dgs)),
            FILES["SOD"]: self.chip.files.sod,
        }
        self.files |= {FILES[n]: content for n, content in self.chip.files.dgs.items()}
        if self.pace is not None:
            self.files[CARD_ACCESS] = ef_card_access(self.pace, self.pace_parameter_id)
        self.aa_key = self.aa_key or self.chip.aa_private_key
        self.reset()

    def reset(self) -> None:
        self.application = False
        self.rnd_ic = b""
        self.keys: sm.SessionKeys | None = None
        self.ssc = 0
        self.selected: bytes | None = None
        self.ca_protocol: str | None = None
        self.pace_run: PaceRun | None = None
        self.card_access: bytes | None = None  # selected in the clear

    # --- the APDU loop ------------------------------------------------------------------

    def transmit(self, apdu: bytes) -> Reply:
        if apdu[0] & 0x0C:
            return self._secured(apdu)
        if self.keys is not None:
            self.keys = None  # a plain command ends secure messaging, as on a chip
        data, status = self._plain(apdu)
        return Reply(data, status)

    def _plain(self, apdu: bytes) -> tuple[bytes, int]:
        ins = apdu[1]
        self.log.append(f"{ins:02X}")
        if ins == 0xA4 and apdu[2] == 0x04:
            self.application = apdu[5 : 5 + apdu[4]] == LDS_AID
            return b"", SW_OK if self.application else SW_NOT_FOUND
        if ins == 0x84 and self.application:
            self.rnd_ic = secrets.token_bytes(8)
            return self.rnd_ic, SW_OK
        if ins == 0x82 and self.rnd_ic:
            return self._external_authenticate(apdu[5 : 5 + apdu[4]])
        if ins == 0xB0 and apdu[2] == 0x80 | (CARD_ACCESS & 0x1F):  # by short EF id
            self.card_access = self.files.get(CARD_ACCESS)
            return self._read_card_access(apdu[3], apdu[4] or 256)
        if ins == 0xB0 and self.card_access is not None and not apdu[2] & 0x80:
            return self._read_card_access((apdu[2] << 8) | apdu[3], apdu[4] or 256)
        if ins == 0x22 and apdu[2:4] == b"\xc1\xa4":
            return self._set_pace(apdu[5 : 5 + apdu[4]])
        if ins == 0x86 and self.pace_run is not None:
            return self._pace_step(apdu[5 : 5 + apdu[4]])
        if ins in (0xB0, 0xA4, 0x88):
            return b"", SW_SECURITY  # the files only under secure messaging
        return b"", SW_INS

    def _external_authenticate(self, message: bytes) -> tuple[bytes, int]:
        bac = self.mrz.keys()
        if len(message) != 40 or not hmac.compare_digest(
            retail_mac(bac.mac, message[:32]), message[32:]
        ):
            return b"", SW_SECURITY
        plain = des3_cbc(bac.enc, message[:32], decrypt=True)
        if plain[8:16] != self.rnd_ic:
            return b"", SW_SECURITY
        rnd_ifd, k_ifd = plain[:8], plain[16:32]
        k_ic = secrets.token_bytes(16)
        cryptogram = des3_cbc(bac.enc, self.rnd_ic + rnd_ifd + k_ic)
        seed = bytes(a ^ b for a, b in zip(k_ifd, k_ic, strict=True))
        self.keys = sm.derive_keys(seed, "3DES", 128)
        self.ssc = int.from_bytes(self.rnd_ic[-4:] + rnd_ifd[-4:], "big")
        self.rnd_ic = b""
        return cryptogram + retail_mac(bac.mac, cryptogram), SW_OK

    def _read_card_access(self, offset: int, length: int) -> tuple[bytes, int]:
        """EF.CardAccess is readable in the clear (it says how to open the chip)."""
        if self.card_access is None:
            return b"", SW_NOT_FOUND
        if offset >= len(self.card_access):
            return b"", SW_END_OF_FILE
        return self.card_access[offset : offset + length], SW_OK

    def _set_pace(self, data: bytes) -> tuple[bytes, int]:
        objects = _objects(data)
        if self.pace is None or 0x80 not in objects or objects.get(0x83) != b"\x01":
            return b"", SW_WRONG_DATA
        protocol = core.ObjectIdentifier.load(tlv(0x06, objects[0x80])).dotted
        parameter_id = objects.get(0x84, bytes([self.pace_parameter_id]))[0]
        if (protocol, parameter_id) != (self.pace, self.pace_parameter_id):
            return b"", SW_WRONG_DATA
        self.pace_run = PaceRun(pace.PaceInfo(protocol, parameter_id))
        return b"", SW_OK

    def _pace_step(self, data: bytes) -> tuple[bytes, int]:
        """One GENERAL AUTHENTICATE of PACE; any failure ends the run, as on a chip."""
        run, self.pace_run = self.pace_run, None
        assert run is not None
        try:
            objects = _objects(_objects(data)[0x7C])
            answer = self._pace_answer(run, objects)
        except (KeyError, ValueError, ReaderError):
            return b"", SW_WRONG_DATA
        if answer is None:
            return b"", SW_VERIFICATION_FAILED
        run.step += 1
        self.pace_run = run if run.step <= 4 else None
        return tlv(0x7C, answer), SW_OK

    def _pace_answer(self, run: PaceRun, objects: dict[int, bytes]) -> bytes | None:
        curve = run.info.curve
        if run.step == 1:  # the nonce, encrypted under the zone's key
            run.nonce = secrets.token_bytes(8 if run.info.cipher[0] == "3DES" else 16)
            k_pi = pace.password_key(self.mrz, run.info)
            return tlv(0x80, pace.encrypt_nonce(k_pi, run.info, run.nonce))
        if run.step == 2:  # generic mapping: G' = s·G + H
            terminal = pace.decode_point(curve, objects[0x81])
            private = pace.random_scalar(curve)
            run.generator = pace.generic_mapping(curve, run.nonce, private * terminal)
            return tlv(0x82, pace.encode_point(private * curve.G))
        if run.step == 3:  # key agreement on G'
            assert run.generator is not None
            run.terminal_public = objects[0x83]
            terminal = pace.decode_point(curve, run.terminal_public)
            run.private = pace.random_scalar(curve)
            run.own_public = pace.encode_point(run.private * run.generator)
            run.keys = pace.session_keys(run.private * terminal, run.info)
            return tlv(0x84, run.own_public)
        assert run.keys is not None  # mutual authentication
        expected = pace.authentication_token(run.keys, run.info, run.own_public)
        if not hmac.compare_digest(objects[0x85], expected):
            return None
        self.keys, self.ssc = run.keys, 0
        self.log.append("PACE")
        return tlv(0x86, pace.authentication_token(run.keys, run.info, run.terminal_public))

    def _secured(self, apdu: bytes) -> Reply:
        if self.keys is None:
            return Reply(b"", SW_SECURITY)
        keys = self.keys
        try:
            command = sm.unprotect_command(keys, self.ssc + 1, apdu)
        except sm.SecureMessagingError:
            self.keys = None  # a wrong MAC ends the session
            return Reply(b"", SW_SM_OBJECTS)
        self.ssc += 2
        self.log.append(f"SM {command.header[1]:02X}")
        data, status, next_keys = self._command(command)
        wrapped = sm.protect_response(keys, self.ssc, data, status)
        if next_keys is not None:  # chip authentication: the new session starts now
            self.keys, self.ssc = next_keys, 0
        return Reply(wrapped[:-2], status)

    def _command(self, command: sm.Command) -> tuple[bytes, int, sm.SessionKeys | None]:
        ins, p1, p2 = command.header[1], command.header[2], command.header[3]
        if ins == 0xA4 and p1 == 0x04:  # the application, after PACE
            self.application = command.data == LDS_AID
            return b"", SW_OK if self.application else SW_NOT_FOUND, None
        if ins == 0xA4 and p1 == 0x02:
            self.selected = self.files.get(int.from_bytes(command.data, "big"))
            return b"", SW_OK if self.selected is not None else SW_NOT_FOUND, None
        if ins == 0xB0:
            return *self._read_binary(p1, p2, command.expected_length or 256), None
        if ins == 0x88 and self.aa_key is not None:
            return sign_aa(self.aa_key, command.data), SW_OK, None
        if ins == 0x22 and (p1, p2) == (0x41, 0xA4):
            self.ca_protocol = core.ObjectIdentifier.load(
                b"\x06" + command.data[1:2] + command.data[2 : 2 + command.data[1]]
            ).dotted
            return b"", SW_OK, None
        if ins == 0x86 and self.ca_protocol is not None:
            point = command.data[4:]  # 7C L 80 L point
            return b"\x7c\x00", SW_OK, self._ca_keys(self.ca_protocol, point)
        if ins == 0x22 and (p1, p2) == (0x41, 0xA6):
            point = command.data[2 : 2 + command.data[1]]  # 91 L point
            return b"", SW_OK, self._ca_keys("0.4.0.127.0.7.2.2.3.2.1", point)
        return b"", SW_INS, None

    def _read_binary(self, p1: int, p2: int, length: int) -> tuple[bytes, int]:
        if p1 & 0x80:  # by short EF identifier
            self.selected = self.files.get(0x0100 | (p1 & 0x1F))
            offset = p2
        else:
            offset = (p1 << 8) | p2
        if self.selected is None:
            return b"", SW_NOT_FOUND
        if offset >= len(self.selected):
            return b"", SW_END_OF_FILE
        return self.selected[offset : offset + length], SW_OK

    def _ca_keys(self, protocol: str, point: bytes) -> sm.SessionKeys | None:
        private_key = self.chip.ca_private_key
        if private_key is None:
            return None
        terminal = ec.EllipticCurvePublicKey.from_encoded_point(private_key.curve, point)
        cipher, bits = ECDH_PROTOCOLS[protocol]
        return sm.derive_keys(private_key.exchange(ec.ECDH(), terminal), cipher, bits)


def _objects(data: bytes) -> dict[int, bytes]:
    """The data objects in ``data`` by their first tag byte (80, 81 ... 7C)."""
    found = {}
    offset = 0
    while offset < len(data):
        class_, method, number, header, value, trailer = parser.parse(data[offset:], strict=False)
        found[(class_ << 6) | (method << 5) | number] = value
        offset += len(header) + len(value) + len(trailer)
    return found


# --- vpcd: the virtual reader's socket protocol ------------------------------------------

VPCD_OFF: Final = 0
VPCD_ON: Final = 1
VPCD_RESET: Final = 2
VPCD_ATR: Final = 4


def _receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        # vpcd writes a length, then the APDU: acknowledge at once, or Nagle holds the
        # APDU until the delayed ACK (40 ms a command). Linux resets the flag each time.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        piece = sock.recv(size - len(data))
        if not piece:
            raise ConnectionError("vpcd closed the connection")
        data += piece
    return data


@contextlib.contextmanager
def plugged_into_vpcd(card: SimulatedPassport, port: int) -> Iterator[None]:
    """``card`` connected to vpcd on ``port`` and answering it in a thread, until the
    block ends (then it is pulled out: vpcd waits for the next card). Each message is a
    2-byte length and its bytes; one byte is a control (power, reset, ATR request),
    anything longer an APDU, answered with the response APDU."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms per answer

    def loop() -> None:
        while True:
            try:
                (size,) = struct.unpack("!H", _receive(sock, 2))
                message = _receive(sock, size)
            except (ConnectionError, OSError):
                return
            if size == 1:
                if message[0] == VPCD_ATR:
                    sock.sendall(struct.pack("!H", len(ATR)) + ATR)
                elif message[0] in (VPCD_OFF, VPCD_ON, VPCD_RESET):
                    card.reset()
                continue
            reply = card.transmit(message)
            answer = reply.data + reply.status.to_bytes(2, "big")
            sock.sendall(struct.pack("!H", len(answer)) + answer)

    thread = threading.Thread(target=loop, daemon=True, name="simulated-passport")
    thread.start()
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        thread.join(5)
