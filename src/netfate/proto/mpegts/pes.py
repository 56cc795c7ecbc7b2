"""PES packet headers (ISO/IEC 13818-1 section 2.4.3.6, table 2-21).

A PES packet starts in the payload of a TS packet with PUSI set::

    | 0x00 0x00 0x01 | stream_id (8) | PES_packet_length (16) |   struct ">3sBH"

(length 0: unbounded, allowed for video in a TS). For every stream_id but the
few without one (program_stream_map, padding, private_stream_2, ECM, EMM,
directory, DSM-CC, H.222.1 type E), an optional header follows, struct ">BBB"::

    |1 0|PSC|P|A|C|O| PTS_DTS(2)|ESCR|ESR|DSM|ACI|CRC|EXT| PES_header_data_length (8) |

then PES_header_data_length bytes of optional fields, starting with the PTS (and
DTS), 5 bytes each, 33 bits split by marker bits::

    | prefix (4) | ts[32..30] |1| ts[29..15] |1| ts[14..0] |1|

prefix 0010 for a lone PTS, 0011 then 0001 for PTS followed by DTS.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import MpegTsError
from .packet import PACKET_SIZE, AdaptationField, TsPacket

START = struct.Struct(">3sBH")
OPTIONAL = struct.Struct(">BBB")
START_CODE = b"\x00\x00\x01"
NO_OPTIONAL_HEADER = frozenset({0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF})
TIMESTAMP_WRAP = 1 << 33


def decode_timestamp(b: bytes | bytearray | memoryview, off: int) -> int:
    """The 33-bit PTS/DTS of the 5 bytes at ``off`` (marker bits not checked)."""
    v = int.from_bytes(b[off : off + 5], "big")
    return ((v >> 33) & 0x7) << 30 | ((v >> 17) & 0x7FFF) << 15 | ((v >> 1) & 0x7FFF)


def encode_timestamp(prefix: int, ts: int) -> bytes:
    if not 0 <= ts < TIMESTAMP_WRAP:
        raise MpegTsError("timestamp", f"{ts} outside 33 bits")
    v = prefix << 36 | (ts >> 30 & 7) << 33 | 1 << 32 | (ts >> 15 & 0x7FFF) << 17 | 1 << 16
    return (v | (ts & 0x7FFF) << 1 | 1).to_bytes(5, "big")


@dataclass(frozen=True, slots=True)
class PesHeader:
    """The fixed part of a PES header and its timestamps."""

    stream_id: int
    """0xE0-0xEF video, 0xC0-0xDF MPEG audio, 0xBD private stream 1 (AC-3 ...)."""
    packet_length: int
    """PES_packet_length: bytes after this field; 0 means unbounded (video)."""
    header_length: int
    """Bytes from the start code to the first payload byte."""
    pts: int | None = None
    """Presentation time stamp, 90 kHz, 33 bits."""
    dts: int | None = None
    """Decoding time stamp, 90 kHz, 33 bits (only with a PTS)."""
    scrambling: int = 0
    """PES_scrambling_control (0: clear)."""
    data_alignment: bool = False
    """data_alignment_indicator: the payload starts with an access unit."""
    priority: bool = False
    """PES_priority."""


def parse_pes_header(data: bytes | bytearray | memoryview) -> PesHeader:
    """Parse the PES header at the start of ``data`` (the header must be whole)."""
    n = len(data)
    if n < START.size:
        raise MpegTsError("truncated", f"PES start of {n} bytes")
    prefix, stream_id, length = START.unpack_from(data)
    if prefix != START_CODE:
        raise MpegTsError("pes_start_code", bytes(prefix).hex())
    if stream_id in NO_OPTIONAL_HEADER:
        return PesHeader(stream_id, length, START.size)
    if n < START.size + OPTIONAL.size:
        raise MpegTsError("truncated", "PES optional header cut short")
    b0, b1, hlen = OPTIONAL.unpack_from(data, START.size)
    if b0 >> 6 != 0b10:
        raise MpegTsError("pes_header", f"marker bits {b0 >> 6:02b}, expected 10")
    header_length = START.size + OPTIONAL.size + hlen
    if header_length > n:
        raise MpegTsError("truncated", f"PES header of {header_length} bytes in {n}")
    if length and header_length > 6 + length:
        raise MpegTsError("pes_length", f"header of {header_length} in a packet of {6 + length}")
    flags = b1 >> 6
    pts = dts = None
    at = START.size + OPTIONAL.size
    if flags == 1:
        raise MpegTsError("pes_header", "PTS_DTS_flags 01 is forbidden")
    if flags & 2:
        if hlen < 5 * flags - 5:  # 5 bytes for a PTS, 10 with a DTS
            raise MpegTsError("pes_header", f"PES_header_data_length {hlen} without room")
        pts = decode_timestamp(data, at)
        if flags == 3:
            dts = decode_timestamp(data, at + 5)
    return PesHeader(
        stream_id=stream_id,
        packet_length=length,
        header_length=header_length,
        pts=pts,
        dts=dts,
        scrambling=b0 >> 4 & 3,
        data_alignment=bool(b0 & 0x04),
        priority=bool(b0 & 0x08),
    )


def build_pes_header(
    stream_id: int,
    payload_length: int | None = None,
    pts: int | None = None,
    dts: int | None = None,
    data_alignment: bool = False,
) -> bytes:
    """A PES header for ``payload_length`` bytes of payload (None: unbounded, 0)."""
    if not 0 <= stream_id <= 255:
        raise MpegTsError("field_range", f"stream_id {stream_id}")
    if dts is not None and pts is None:
        raise MpegTsError("pes_header", "a DTS needs a PTS")
    fields = b""
    flags = 0
    if pts is not None:
        flags = 3 if dts is not None else 2
        fields = encode_timestamp(flags, pts)
        if dts is not None:
            fields += encode_timestamp(1, dts)
    optional = b""
    if stream_id not in NO_OPTIONAL_HEADER:
        optional = OPTIONAL.pack(0x80 | (0x04 if data_alignment else 0), flags << 6, len(fields))
        optional += fields
    length = 0
    if payload_length is not None:
        length = len(optional) + payload_length
        if length > 0xFFFF:
            raise MpegTsError("pes_length", f"{length} bytes after the length field")
    return START.pack(START_CODE, stream_id, length) + optional


def packetize_pes(
    pid: int, pes: bytes, cc: int = 0, pcr: int | None = None, random_access: bool = False
) -> list[bytes]:
    """A whole PES packet as TS packets: PUSI on the first (with the PCR and the random
    access flag if given), adaptation field stuffing in the last."""
    out = []
    at = 0
    k = 0
    while at < len(pes) or k == 0:
        adaptation = None
        if k == 0 and (pcr is not None or random_access):
            adaptation = AdaptationField(random_access=random_access, pcr=pcr)
        room = PACKET_SIZE - 4 - (len(adaptation.body()) + 1 if adaptation else 0)
        chunk = pes[at : at + room]
        at += len(chunk)
        packet = TsPacket(pid, (cc + k) & 0xF, chunk, k == 0, adaptation)
        out.append(packet.build())
        k += 1
    return out
