"""Reading a passport chip: the LDS application, its files under secure messaging, and
the chip's answers to the server's challenges (ICAO Doc 9303 Parts 10 and 11).

Files are selected by file identifier and read with READ BINARY in pieces small enough
that a wrapped response fits a short APDU. Active authentication is one INTERNAL
AUTHENTICATE with the server's challenge; chip authentication runs MSE:Set AT and
GENERAL AUTHENTICATE (MSE:Set KAT for 3DES) with the server's ephemeral key, then
relays the server's wrapped command as the new session's first one: the server, not
the reader, checks the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from asn1crypto import cms, core

from qianbao.chipreader import pace
from qianbao.chipreader.apdu import SW_FILE_NOT_FOUND, ReaderError, Transport, short_apdu
from qianbao.chipreader.bac import MrzKey, SecureChannel, open_session
from qianbao.verification.chip import LdsSecurityObject

LDS_AID: Final = bytes.fromhex("A0000002471001")
SELECT_APPLICATION: Final = bytes.fromhex("00A4040C")
SELECT_FILE: Final = bytes.fromhex("00A4020C")
INTERNAL_AUTHENTICATE: Final = bytes.fromhex("00880000")
MSE_SET_AT: Final = bytes.fromhex("002241A4")
MSE_SET_KAT: Final = bytes.fromhex("002241A6")
GENERAL_AUTHENTICATE: Final = bytes.fromhex("00860000")
# Doc 9303 Part 10, 4.6: file identifiers, and EF.COM's tag for each data group.
FILES: Final = {"COM": 0x011E, "SOD": 0x011D, 1: 0x0101, 2: 0x0102, 14: 0x010E, 15: 0x010F}
GROUP_TAGS: Final = {0x61: 1, 0x75: 2, 0x6E: 14, 0x6F: 15}
CHUNK: Final = 0xDF  # 223 bytes: the wrapped answer stays under 256
CA_3DES: Final = "0.4.0.127.0.7.2.2.3.2.1"
SW_END_OF_FILE: Final = 0x6282


@dataclass
class PassportRead:
    """What was read from the chip, as raw files."""

    com: bytes
    sod: bytes
    groups: dict[int, bytes] = field(default_factory=dict)
    aa_signature: bytes | None = None


class Passport:
    """An open session (PACE or BAC) with the chip's LDS application."""

    def __init__(self, channel: SecureChannel, access: str = "BAC") -> None:
        self.channel = channel
        self.access = access  # "PACE" or "BAC": how the chip was opened

    @classmethod
    def open(cls, transport: Transport, key: MrzKey) -> Passport:
        """PACE when EF.CardAccess offers a protocol and curve this reader runs, BAC
        otherwise (Doc 9303 Part 11, 4.2: PACE first, where the chip has it)."""
        card_access = pace.read_card_access(transport)
        for info in pace.supported_pace(card_access or b""):
            channel = pace.establish(transport, key, info)
            if channel is not None:
                in_channel = channel.send(SELECT_APPLICATION, LDS_AID)
                _check(in_channel.status, "selecting the passport application")
                return cls(channel, "PACE")
        selected = transport.transmit(short_apdu(SELECT_APPLICATION, LDS_AID))
        if not selected.ok:
            raise ReaderError(f"The card is not a passport (status {selected.status:04X}).")
        return cls(open_session(transport, key))

    def read_file(self, file_id: int) -> bytes | None:
        """The whole file, or None when the chip does not have it."""
        selected = self.channel.send(SELECT_FILE, file_id.to_bytes(2, "big"))
        if selected.status == SW_FILE_NOT_FOUND:
            return None
        _check(selected.status, f"selecting file {file_id:04X}")
        head = self._read(0, 4)
        size = _tlv_size(head)
        content = bytearray(head)
        while len(content) < size:
            content += self._read(len(content), min(CHUNK, size - len(content)))
        return bytes(content[:size])

    def _read(self, offset: int, length: int) -> bytes:
        answer = self.channel.send(
            bytes((0x00, 0xB0, offset >> 8, offset & 0xFF)), expected_length=length
        )
        if answer.status != SW_END_OF_FILE:  # 6282: fewer bytes than asked, the file's end
            _check(answer.status, f"reading at offset {offset}")
        if not answer.data:
            raise ReaderError(f"The chip returned nothing at offset {offset}.")
        return answer.data

    def read_all(self) -> PassportRead:
        """EF.COM, EF.SOD and the data groups the server takes (1, 2, 14, 15) that
        EF.COM or the SOD lists: EF.COM is not signed, and the server refuses a reading
        without a DG14 or DG15 that the SOD lists."""
        com = self.read_file(FILES["COM"])
        sod = self.read_file(FILES["SOD"])
        if com is None or sod is None:
            raise ReaderError("The chip has no EF.COM or EF.SOD: it is not an ePassport.")
        read = PassportRead(com, sod)
        for number in sorted(set(listed_groups(com)) | signed_groups(sod)):
            content = self.read_file(FILES[number])
            if content is not None:
                read.groups[number] = content
        return read

    def active_authentication(self, challenge: bytes) -> bytes:
        """The chip's signature of the server's 8-byte challenge (INTERNAL AUTHENTICATE)."""
        answer = self.channel.send(INTERNAL_AUTHENTICATE, challenge, expected_length=256)
        _check(answer.status, "active authentication")
        return answer.data

    def chip_authentication(
        self, protocol: str, key_id: int | None, ephemeral_public_key: bytes, command: bytes
    ) -> bytes:
        """Run chip authentication with the server's ephemeral key, then send the
        server's wrapped command as the first of the new session: its raw answer."""
        key_ref = _data_object(0x84, _integer(key_id)) if key_id is not None else b""
        if protocol == CA_3DES:
            answer = self.channel.send(
                MSE_SET_KAT, _data_object(0x91, ephemeral_public_key) + key_ref
            )
            _check(answer.status, "chip authentication (MSE:Set KAT)")
        else:
            oid = core.ObjectIdentifier(protocol).contents
            answer = self.channel.send(MSE_SET_AT, _data_object(0x80, oid) + key_ref)
            _check(answer.status, "chip authentication (MSE:Set AT)")
            dynamic = _data_object(0x7C, _data_object(0x80, ephemeral_public_key))
            answer = self.channel.send(GENERAL_AUTHENTICATE, dynamic, expected_length=256)
            _check(answer.status, "chip authentication (GENERAL AUTHENTICATE)")
        reply = self.channel.transport.transmit(command)
        return reply.data + reply.status.to_bytes(2, "big")


def listed_groups(com: bytes) -> list[int]:
    """The data groups among 1, 2, 14 and 15 that EF.COM's tag list (5C) names."""
    if com[:1] != b"\x60":
        raise ReaderError("EF.COM is not an EF.COM.")
    _, length, offset = _header(com, 0)
    inner = com[offset : offset + length]
    offset = 0
    while offset + 2 <= len(inner):
        tag, size, offset = _header(inner, offset)
        if tag == 0x5C:
            tags = inner[offset : offset + size]
            return sorted({GROUP_TAGS[t] for t in tags if t in GROUP_TAGS})
        offset += size
    raise ReaderError("EF.COM has no list of data groups.")


def signed_groups(sod: bytes) -> set[int]:
    """The data groups among 1, 2, 14 and 15 whose hashes EF.SOD holds; none when it
    cannot be read here (the server then says what is wrong with it)."""
    try:
        _, length, start = _header(sod, 0)
        signed = cms.ContentInfo.load(sod[start : start + length])["content"]
        content = signed["encap_content_info"]["content"].parsed.dump()
        lds = LdsSecurityObject.load(content)
        numbers = {
            int(entry["data_group_number"].native) for entry in lds["data_group_hash_values"]
        }
    except (ValueError, TypeError, KeyError, IndexError):
        return set()
    return numbers & set(GROUP_TAGS.values())


def _header(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, length, offset of the value) of the TLV at ``offset``."""
    tag = data[offset]
    offset += 1
    if tag & 0x1F == 0x1F:
        tag = (tag << 8) | data[offset]
        offset += 1
    size = data[offset]
    offset += 1
    if size & 0x80:
        width = size & 0x7F
        size = int.from_bytes(data[offset : offset + width], "big")
        offset += width
    return tag, size, offset


def _tlv_size(head: bytes) -> int:
    if len(head) < 2:
        raise ReaderError("A file on the chip is too short to be a data object.")
    _, size, start = _header(head, 0)
    return start + size


def _data_object(tag: int, value: bytes) -> bytes:
    tag_bytes = tag.to_bytes(2 if tag > 0xFF else 1, "big")
    if len(value) < 0x80:
        return tag_bytes + bytes([len(value)]) + value
    width = (len(value).bit_length() + 7) // 8
    return tag_bytes + bytes([0x80 | width]) + len(value).to_bytes(width, "big") + value


def _integer(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _check(status: int, what: str) -> None:
    if status != 0x9000:
        raise ReaderError(f"The chip refused {what} (status {status:04X}).")
