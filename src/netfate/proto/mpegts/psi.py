"""Programme-specific information (ISO/IEC 13818-1 section 2.4.4): PAT and PMT.

A PSI section with the long form header (section_syntax_indicator 1), struct
``">BHHBBB"`` for its first 8 bytes, ends with a CRC-32/MPEG-2 over everything
before it (annex A: polynomial 0x04C11DB7, initial 0xFFFFFFFF, not reflected, no
final XOR; the CRC of a whole section, CRC included, is 0)::

    | table_id (8) |S|0|rsv| section_length (12) |   (length counts what follows)
    | table_id_extension (16)                    |   (TS id in the PAT, programme in a PMT)
    |rsv| version (5) |C| section_number (8) | last_section_number (8) |
    | ... table body ...                         |
    | CRC_32 (32)                                |

PAT (table_id 0x00, table 2-30): body entries of 4 bytes, ``program_number(16)
rsv(3) PID(13)``; programme 0 names the network PID. PMT (table_id 0x02, table
2-33)::

    | rsv(3) | PCR_PID (13) | rsv(4) | program_info_length (12) | descriptors ... |
    then per elementary stream:
    | stream_type (8) | rsv(3) | elementary_PID (13) | rsv(4) | ES_info_length (12) |
    | descriptors ... |

Descriptors are ``tag(8) length(8) data`` (section 2.6). PAT and PMT sections are
at most 1024 bytes (section_length <= 1021), other sections 4096.

Sections ride in TS packets (section 2.4.4.2): in a packet with PUSI set, the
first payload byte is a pointer_field, the number of bytes that still belong to
the previous section before a new one starts; after a section, 0xFF bytes are
stuffing to the end of the packet. :class:`SectionAssembler` puts them together.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import MpegTsError
from .packet import PACKET_SIZE, TsPacket

LONG_HEADER = struct.Struct(">BHHBBB")
TABLE_PAT = 0x00
TABLE_PMT = 0x02
MAX_PSI_SECTION = 1024
MAX_SECTION = 4096


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i << 24
        for _ in range(8):
            c = ((c << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if c & 0x80000000 else (c << 1) & 0xFFFFFFFF
        table.append(c)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32_mpeg2(data: bytes | bytearray | memoryview) -> int:
    """CRC-32/MPEG-2 (13818-1 annex A); ``crc32_mpeg2(b"123456789") == 0x0376E6E7``."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in bytes(data):
        crc = (crc << 8 & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


@dataclass(frozen=True, slots=True)
class Descriptor:
    """One descriptor (section 2.6): a tag and its data."""

    tag: int
    """descriptor_tag, e.g. 0x05 registration, 0x0A ISO 639 language."""
    data: bytes
    """The descriptor's bytes after its length byte (at most 255)."""


def parse_descriptors(b: bytes) -> tuple[Descriptor, ...]:
    out = []
    i, n = 0, len(b)
    while i < n:
        if i + 2 > n or i + 2 + b[i + 1] > n:
            raise MpegTsError("descriptor", f"descriptor at {i} overruns its loop")
        out.append(Descriptor(b[i], b[i + 2 : i + 2 + b[i + 1]]))
        i += 2 + b[i + 1]
    return tuple(out)


def build_descriptors(ds: tuple[Descriptor, ...]) -> bytes:
    out = bytearray()
    for d in ds:
        if not 0 <= d.tag <= 255 or len(d.data) > 255:
            raise MpegTsError("descriptor", f"tag {d.tag}, {len(d.data)} bytes")
        out += bytes((d.tag, len(d.data))) + d.data
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Section:
    """A long-form PSI section, CRC checked."""

    table_id: int
    """0x00 PAT, 0x02 PMT, ..."""
    table_id_extension: int
    """transport_stream_id (PAT), program_number (PMT)."""
    version: int
    """version_number, 5 bits; a change means new contents."""
    current_next: bool
    """current_next_indicator: True if applicable now (False: the next version)."""
    section_number: int
    """This section's number within the table."""
    last_section_number: int
    """The table's last section number."""
    body: bytes
    """Bytes between the 8-byte header and the CRC."""


def parse_section(data: bytes, max_length: int = MAX_SECTION) -> Section:
    """Parse and CRC-check one complete long-form section (exactly its bytes)."""
    n = len(data)
    if n < LONG_HEADER.size + 4:
        raise MpegTsError("truncated", f"section of {n} bytes")
    table_id, word, ext, vbyte, num, last = LONG_HEADER.unpack_from(data)
    length = word & 0x0FFF
    if 3 + length != n or n > max_length:
        raise MpegTsError("section_length", f"section_length {length} for {n} bytes")
    if not word & 0x8000:
        raise MpegTsError("section_syntax", f"table {table_id:#04x} in the short form")
    if crc32_mpeg2(data) != 0:
        raise MpegTsError("crc", f"table {table_id:#04x}")
    if num > last:
        raise MpegTsError("section_number", f"section {num} of last {last}")
    return Section(table_id, ext, vbyte >> 1 & 0x1F, bool(vbyte & 1), num, last, data[8 : n - 4])


def build_section(
    table_id: int, extension: int, version: int, body: bytes, number: int = 0, last: int = 0
) -> bytes:
    """A long-form section with its CRC (current_next set)."""
    length = 5 + len(body) + 4
    if 3 + length > MAX_SECTION:
        raise MpegTsError("section_length", f"{3 + length} bytes")
    if not (0 <= table_id <= 255 and 0 <= extension <= 0xFFFF and 0 <= version <= 31):
        raise MpegTsError("field_range", f"table {table_id}, ext {extension}, v {version}")
    if not 0 <= number <= last <= 255:
        raise MpegTsError("section_number", f"{number} of {last}")
    head = LONG_HEADER.pack(table_id, 0xB000 | length, extension, 0xC1 | version << 1, number, last)
    data = head + body
    return data + crc32_mpeg2(data).to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class Pat:
    """Programme association table: programme number -> PMT PID (table 2-30)."""

    transport_stream_id: int
    """The multiplex's id."""
    programs: tuple[tuple[int, int], ...]
    """(program_number, PMT PID) pairs; programme 0 (the network PID) excluded."""
    version: int = 0
    """version_number of the section."""
    network_pid: int | None = None
    """The network information PID, if programme 0 is listed."""

    def build(self) -> bytes:
        entries = list(self.programs)
        if self.network_pid is not None:
            entries.insert(0, (0, self.network_pid))
        body = b"".join(struct.pack(">HH", p, 0xE000 | pid) for p, pid in entries)
        return build_section(TABLE_PAT, self.transport_stream_id, self.version, body)


def parse_pat(section: bytes | Section) -> Pat:
    s = section if isinstance(section, Section) else parse_section(section, MAX_PSI_SECTION)
    if s.table_id != TABLE_PAT:
        raise MpegTsError("table_id", f"{s.table_id:#04x} is not a PAT")
    if len(s.body) % 4:
        raise MpegTsError("section_length", f"PAT body of {len(s.body)} bytes")
    programs = []
    network = None
    for off in range(0, len(s.body), 4):
        number, pid = struct.unpack_from(">HH", s.body, off)
        if number == 0:
            network = pid & 0x1FFF
        else:
            programs.append((number, pid & 0x1FFF))
    return Pat(s.table_id_extension, tuple(programs), s.version, network)


@dataclass(frozen=True, slots=True)
class PmtStream:
    """One elementary stream of a programme (a PMT loop entry)."""

    stream_type: int
    """Table 2-34 (0x1B H.264, 0x24 HEVC, 0x0F AAC, 0x03/0x04 MPEG audio, 0x81 AC-3 ...)."""
    pid: int
    """The PID carrying it."""
    descriptors: tuple[Descriptor, ...] = ()
    """Its ES_info descriptors."""


@dataclass(frozen=True, slots=True)
class Pmt:
    """Programme map table: one programme's streams (table 2-33)."""

    program_number: int
    """The programme this maps."""
    pcr_pid: int
    """PID whose adaptation fields carry the programme's PCR (0x1FFF: none)."""
    streams: tuple[PmtStream, ...]
    """The elementary streams, in PMT order."""
    version: int = 0
    """version_number of the section."""
    descriptors: tuple[Descriptor, ...] = ()
    """program_info descriptors."""

    def build(self) -> bytes:
        info = build_descriptors(self.descriptors)
        if not 0 <= self.pcr_pid <= 0x1FFF or len(info) > 0x3FF:
            raise MpegTsError("field_range", f"PCR PID {self.pcr_pid}, info {len(info)}")
        body = bytearray(struct.pack(">HH", 0xE000 | self.pcr_pid, 0xF000 | len(info)) + info)
        for st in self.streams:
            es = build_descriptors(st.descriptors)
            if not (0 <= st.stream_type <= 255 and 0 <= st.pid <= 0x1FFF and len(es) <= 0x3FF):
                raise MpegTsError("field_range", f"stream type {st.stream_type} PID {st.pid}")
            body += struct.pack(">BHH", st.stream_type, 0xE000 | st.pid, 0xF000 | len(es)) + es
        section = build_section(TABLE_PMT, self.program_number, self.version, bytes(body))
        if len(section) > MAX_PSI_SECTION:
            raise MpegTsError("section_length", f"PMT of {len(section)} bytes")
        return section


def parse_pmt(section: bytes | Section) -> Pmt:
    s = section if isinstance(section, Section) else parse_section(section, MAX_PSI_SECTION)
    if s.table_id != TABLE_PMT:
        raise MpegTsError("table_id", f"{s.table_id:#04x} is not a PMT")
    b = s.body
    if len(b) < 4:
        raise MpegTsError("truncated", "PMT body without PCR PID and info length")
    pcr, info_len = struct.unpack_from(">HH", b)
    info_len &= 0x0FFF
    at = 4 + info_len
    if at > len(b):
        raise MpegTsError("descriptor", f"program_info_length {info_len} overruns the PMT")
    descriptors = parse_descriptors(b[4:at])
    streams = []
    while at < len(b):
        if at + 5 > len(b):
            raise MpegTsError("truncated", "PMT stream entry cut short")
        stype, pid, es_len = struct.unpack_from(">BHH", b, at)
        es_len &= 0x0FFF
        if at + 5 + es_len > len(b):
            raise MpegTsError("descriptor", f"ES_info_length {es_len} overruns the PMT")
        streams.append(
            PmtStream(stype, pid & 0x1FFF, parse_descriptors(b[at + 5 : at + 5 + es_len]))
        )
        at += 5 + es_len
    return Pmt(s.table_id_extension, pcr & 0x1FFF, tuple(streams), s.version, descriptors)


class SectionAssembler:
    """Sections of one PID out of its TS packet payloads (section 2.4.4.2).

    ``push`` returns the sections completed by a payload; what went wrong (a
    pointer_field beyond the payload, a section_length over ``max_length``, a
    continuation with no section started) is counted in ``errors`` by reason and
    the partial section is dropped, never raised.
    """

    __slots__ = ("_buf", "_open", "errors", "max_length")

    def __init__(self, max_length: int = MAX_PSI_SECTION) -> None:
        self.max_length = max_length
        self._buf = bytearray()
        self._open = False
        self.errors: dict[str, int] = {}

    def _error(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1
        self._buf.clear()
        self._open = False

    def reset(self) -> None:
        """Drop a partial section (after a continuity error on the PID)."""
        self._buf.clear()
        self._open = False

    def push(self, payload: bytes, unit_start: bool) -> list[bytes]:
        out: list[bytes] = []
        if unit_start:
            if not payload or 1 + payload[0] > len(payload):
                self._error("pointer_field")
                return out
            ptr = payload[0]
            if self._open:
                if ptr:
                    self._buf += payload[1 : 1 + ptr]
                    self._complete(out, final=True)
                else:
                    self._error("section_truncated")
            self.reset()
            self._sections(payload, 1 + ptr, out)
        elif self._open:
            self._buf += payload
            self._complete(out, final=False)
        return out

    def _complete(self, out: list[bytes], final: bool) -> None:
        """Take the open section if whole; ``final``: no more bytes will come for it."""
        buf = self._buf
        if len(buf) >= 3:
            need = 3 + ((buf[1] & 0x0F) << 8 | buf[2])
            if need > self.max_length:
                self._error("section_length")
                return
            if len(buf) >= need:
                out.append(bytes(buf[:need]))
                rest = bytes(buf[need:])
                self.reset()
                # A section may follow in the same payload (0xFF is stuffing).
                self._sections(rest, 0, out)
                return
        if final:
            self._error("section_truncated")

    def _sections(self, payload: bytes, at: int, out: list[bytes]) -> None:
        if at < len(payload) and payload[at] != 0xFF:
            self._buf += payload[at:]
            self._open = True
            self._complete(out, final=False)


def packetize_section(pid: int, section: bytes, cc: int = 0) -> list[bytes]:
    """A section as TS packets (pointer_field 0 in the first; 0xFF stuffing in the last)."""
    data = b"\x00" + section
    out = []
    for k, i in enumerate(range(0, len(data), PACKET_SIZE - 4)):
        chunk = data[i : i + PACKET_SIZE - 4]
        chunk += b"\xff" * (PACKET_SIZE - 4 - len(chunk))
        out.append(
            TsPacket(
                pid=pid, continuity_counter=(cc + k) & 0xF, payload=chunk, payload_unit_start=k == 0
            ).build()
        )
    return out
