"""MPEG-2 transport stream packets (ISO/IEC 13818-1 section 2.4.3), and finding them.

A packet is 188 bytes: a 4-byte header (struct ``">BHB"``), an optional
adaptation field, then payload (section 2.4.3.2, table 2-2)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  sync = 0x47  |E|S|T|          PID            |TSC|AFC|  CC   |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    E transport_error_indicator, S payload_unit_start_indicator, T priority,
    TSC scrambling control, AFC adaptation_field_control (01 payload only,
    10 adaptation field only, 11 both, 00 reserved), CC continuity counter.

Adaptation field (section 2.4.3.4, table 2-6): a length byte (183 when there is no
payload, 0..182 otherwise), then if non-zero a flags byte ``D R P PCR OPCR SP
TP X`` (discontinuity, random access, ES priority, PCR, OPCR, splicing point,
transport private data, extension), the optional fields in that order, and 0xFF
stuffing. PCR and OPCR are 6 bytes: a 33-bit base (90 kHz), 6 reserved bits and
a 9-bit extension; the 27 MHz value is ``base * 300 + extension``::

    | base (33 bits) ...                              |rsvd(6)| ext (9) |

Finding packets in bytes that may hold garbage: a stream framer
(:class:`TsFramer`) locks onto 0x47 at three consecutive 188-byte steps and
counts what it skips; :func:`align_datagram` does the same within one datagram
(RFC 2250: an RTP/MPEG-TS payload is whole packets), where a sync byte
followed by another, or by the end of the datagram, is enough.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import MpegTsError

PACKET_SIZE = 188
SYNC = 0x47
NULL_PID = 0x1FFF
PAT_PID = 0x0000
PCR_HZ = 27_000_000
PCR_WRAP = (1 << 33) * 300
"""A PCR's 27 MHz value wraps here (the 33-bit base times 300)."""

HEADER = struct.Struct(">BHB")


def decode_pcr(six: bytes | bytearray | memoryview, off: int = 0) -> int:
    """The 27 MHz value of a 6-byte PCR/OPCR field."""
    hi = int.from_bytes(six[off : off + 6], "big")
    return (hi >> 15) * 300 + (hi & 0x1FF)


def encode_pcr(pcr: int) -> bytes:
    if not 0 <= pcr < PCR_WRAP:
        raise MpegTsError("pcr", f"{pcr} outside 0..2^33*300")
    base, ext = divmod(pcr, 300)
    return (base << 15 | 0x3F << 9 | ext).to_bytes(6, "big")


@dataclass(frozen=True, slots=True)
class AdaptationField:
    """The adaptation field of a TS packet (table 2-6)."""

    discontinuity: bool = False
    """discontinuity_indicator: CC and/or PCR are discontinuous at this packet."""
    random_access: bool = False
    """random_access_indicator: the next PES starts a random access point."""
    es_priority: bool = False
    """elementary_stream_priority_indicator."""
    pcr: int | None = None
    """Programme clock reference, 27 MHz units."""
    opcr: int | None = None
    """Original programme clock reference, 27 MHz units."""
    splice_countdown: int | None = None
    """Packets until a splicing point (signed)."""
    private_data: bytes | None = None
    """transport_private_data bytes."""
    extension: bytes | None = None
    """adaptation_field_extension bytes after its length byte, unparsed."""
    stuffing: int = 0
    """Stuffing bytes (0xFF) after the fields."""

    def body(self) -> bytes:
        """The field after its length byte (empty when the length is 0)."""
        flags = (
            (0x80 if self.discontinuity else 0)
            | (0x40 if self.random_access else 0)
            | (0x20 if self.es_priority else 0)
            | (0x10 if self.pcr is not None else 0)
            | (0x08 if self.opcr is not None else 0)
            | (0x04 if self.splice_countdown is not None else 0)
            | (0x02 if self.private_data is not None else 0)
            | (0x01 if self.extension is not None else 0)
        )
        out = bytearray()
        if self.pcr is not None:
            out += encode_pcr(self.pcr)
        if self.opcr is not None:
            out += encode_pcr(self.opcr)
        if self.splice_countdown is not None:
            if not -128 <= self.splice_countdown <= 127:
                raise MpegTsError("splice_countdown", str(self.splice_countdown))
            out += struct.pack(">b", self.splice_countdown)
        for part in (self.private_data, self.extension):
            if part is not None:
                if len(part) > 255:
                    raise MpegTsError("adaptation_field", f"{len(part)}-byte field")
                out += bytes((len(part),)) + part
        if not flags and not out and not self.stuffing:
            return b""
        return bytes((flags,)) + bytes(out) + b"\xff" * self.stuffing

    @classmethod
    def parse(cls, af: bytes) -> AdaptationField:
        """Parse the field after its length byte (``af`` is exactly that long)."""
        if not af:
            return cls()
        flags = af[0]
        at = 1
        n = len(af)

        def take(k: int, what: str) -> int:
            nonlocal at
            if at + k > n:
                raise MpegTsError("adaptation_field", f"{what} beyond the field")
            at += k
            return at - k

        pcr = decode_pcr(af, take(6, "PCR")) if flags & 0x10 else None
        opcr = decode_pcr(af, take(6, "OPCR")) if flags & 0x08 else None
        splice = None
        if flags & 0x04:
            splice = struct.unpack_from(">b", af, take(1, "splice countdown"))[0]
        private = None
        if flags & 0x02:
            k = af[take(1, "private data length")]
            start = take(k, "private data")
            private = af[start : start + k]
        ext = None
        if flags & 0x01:
            k = af[take(1, "extension length")]
            start = take(k, "extension")
            ext = af[start : start + k]
        return cls(
            discontinuity=bool(flags & 0x80),
            random_access=bool(flags & 0x40),
            es_priority=bool(flags & 0x20),
            pcr=pcr,
            opcr=opcr,
            splice_countdown=splice,
            private_data=private,
            extension=ext,
            stuffing=n - at,
        )


@dataclass(frozen=True, slots=True)
class TsPacket:
    """One transport stream packet (table 2-2)."""

    pid: int
    """Packet identifier, 13 bits (0 PAT, 0x1FFF null)."""
    continuity_counter: int
    """4-bit counter, +1 per packet with payload on the PID."""
    payload: bytes = b""
    """Payload bytes (a PES or PSI piece)."""
    payload_unit_start: bool = False
    """PUSI: a PES packet or PSI section starts in this payload."""
    adaptation: AdaptationField | None = None
    """The adaptation field, if present."""
    transport_error: bool = False
    """transport_error_indicator: a demodulator found uncorrectable errors."""
    priority: bool = False
    """transport_priority."""
    scrambling: int = 0
    """transport_scrambling_control (0: clear)."""
    has_payload: bool = True
    """AFC bit 0; False for an adaptation-field-only packet (``payload`` empty)."""

    def build(self) -> bytes:
        """188 bytes; a short payload is completed with adaptation field stuffing."""
        if not 0 <= self.pid <= NULL_PID or not 0 <= self.continuity_counter <= 15:
            raise MpegTsError("field_range", f"PID {self.pid}, CC {self.continuity_counter}")
        if not 0 <= self.scrambling <= 3:
            raise MpegTsError("field_range", f"scrambling {self.scrambling}")
        if self.has_payload != bool(self.payload):
            # AFC 11 allows an adaptation field of at most 182 bytes: >= 1 payload byte.
            raise MpegTsError("payload", "has_payload must match a non-empty payload")
        af = self.adaptation.body() if self.adaptation is not None else None
        room = PACKET_SIZE - 4 - len(self.payload)
        if af is None and room > 0:
            af = b""  # a short payload needs an adaptation field to stuff
        if af is not None:
            if len(af) + 1 > room:
                raise MpegTsError("too_long", f"{len(af) + 1} + {len(self.payload)} > 184")
            fill = room - 1 - len(af)
            if fill and not af:
                af = b"\x00" + b"\xff" * (fill - 1)  # flags byte, then stuffing
            else:
                af += b"\xff" * fill
        elif room < 0:
            raise MpegTsError("too_long", f"{len(self.payload)}-byte payload > 184")
        afc = (2 if af is not None else 0) | (1 if self.has_payload else 0)
        head = HEADER.pack(
            SYNC,
            (0x8000 if self.transport_error else 0)
            | (0x4000 if self.payload_unit_start else 0)
            | (0x2000 if self.priority else 0)
            | self.pid,
            self.scrambling << 6 | afc << 4 | self.continuity_counter,
        )
        af_bytes = bytes((len(af),)) + af if af is not None else b""
        return head + af_bytes + self.payload


def parse_packet(data: bytes | bytearray | memoryview, off: int = 0) -> TsPacket:
    """Parse the 188-byte packet at ``off``; :class:`MpegTsError` if malformed."""
    if len(data) - off < PACKET_SIZE:
        raise MpegTsError("truncated", f"{len(data) - off} bytes, a packet is 188")
    sync, word, last = HEADER.unpack_from(data, off)
    if sync != SYNC:
        raise MpegTsError("sync", f"sync byte {sync:#04x}")
    afc = last >> 4 & 3
    if afc == 0:
        raise MpegTsError("adaptation_field_control", "reserved value 00")
    at = off + 4
    adaptation = None
    if afc & 2:
        aflen = data[at]
        if (afc == 2 and aflen != 183) or (afc == 3 and aflen > 182):
            raise MpegTsError("adaptation_field", f"length {aflen} with AFC {afc:02b}")
        adaptation = AdaptationField.parse(bytes(data[at + 1 : at + 1 + aflen]))
        at += 1 + aflen
    payload = bytes(data[at : off + PACKET_SIZE]) if afc & 1 else b""
    return TsPacket(
        pid=word & NULL_PID,
        continuity_counter=last & 0xF,
        payload=payload,
        payload_unit_start=bool(word & 0x4000),
        adaptation=adaptation,
        transport_error=bool(word & 0x8000),
        priority=bool(word & 0x2000),
        scrambling=last >> 6,
        has_payload=bool(afc & 1),
    )


def align_datagram(data: bytes | bytearray | memoryview) -> tuple[bytes, int]:
    """The whole packets in one datagram, back to back, and the octets skipped.

    Fast path: the datagram is N x 188 bytes with a sync byte at each step. Otherwise
    a packet is taken where a sync byte is followed by another 188 bytes on, or by
    the datagram's end; everything else is skipped and counted.
    """
    b = bytes(data)
    n = len(b)
    if n % PACKET_SIZE == 0 and b[::PACKET_SIZE].count(SYNC) == n // PACKET_SIZE:
        return b, 0
    out = bytearray()
    i = 0
    while i + PACKET_SIZE <= n:
        nxt = i + PACKET_SIZE
        if b[i] == SYNC and (nxt == n or b[nxt] == SYNC):
            out += b[i:nxt]
            i = nxt
            continue
        j = b.find(SYNC, i + 1)
        i = j if j >= 0 else n
    return bytes(out), n - len(out)


class TsFramer:
    """Whole TS packets out of a byte stream cut anywhere (a pipe, TCP, SRT).

    Locked, it takes 188 bytes per packet while each starts with 0x47. On a missing
    sync byte it loses lock and hunts for 0x47 at three consecutive 188-byte steps.
    Skipped octets are counted in ``garbage``; at most 3 packets' worth is held.
    Locked, it cannot tell garbage that starts with 0x47 right at a packet boundary
    from a packet: that one passes, and the lock is lost at the next step.
    """

    __slots__ = ("_buf", "garbage", "locked", "sync_losses")

    def __init__(self) -> None:
        self._buf = bytearray()
        self.locked = False
        self.garbage = 0
        """Octets skipped so far."""
        self.sync_losses = 0
        """Times the lock was lost."""

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Append bytes; return the whole packets now available, back to back."""
        buf = self._buf
        buf += data
        out = bytearray()
        i = 0
        n = len(buf)
        while True:
            if self.locked:
                if i + PACKET_SIZE > n:
                    break
                if buf[i] == SYNC:
                    out += buf[i : i + PACKET_SIZE]
                    i += PACKET_SIZE
                    continue
                self.locked = False
                self.sync_losses += 1
            j = buf.find(SYNC, i)
            if j < 0:
                self.garbage += n - i
                i = n
                break
            self.garbage += j - i
            i = j
            if i + 2 * PACKET_SIZE >= n:
                break  # not enough bytes to confirm; wait for more
            if buf[i + PACKET_SIZE] == SYNC and buf[i + 2 * PACKET_SIZE] == SYNC:
                self.locked = True
            else:
                self.garbage += 1
                i += 1
        del buf[:i]
        return bytes(out)

    def pending(self) -> int:
        """Octets held, waiting for the rest of a packet or for a lock."""
        return len(self._buf)
