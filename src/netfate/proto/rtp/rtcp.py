"""RTCP (RFC 3550 section 6): SR, RR, SDES, BYE; compound packets and their checks.

Every RTCP packet starts with the same 4-byte head, struct ``"!BBH"``; ``length``
is the packet's size in 32-bit words minus one, head and padding included::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P|  count  |      PT       |             length            |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

SR (PT 200, section 6.4.1): the sender's SSRC, then sender info ``"!IQIII"``
(SSRC, 64-bit NTP timestamp, RTP timestamp, packet count, octet count), then
``count`` report blocks, then profile-specific extensions. RR (PT 201, 6.4.2): the
reporter's SSRC, then report blocks. A report block, struct ``"!IBBHIIII"`` with
the 24-bit signed cumulative loss split as a byte and a 16-bit word::

    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                 SSRC_1 (SSRC of first source)                 |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    | fraction lost |       cumulative number of packets lost       |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |           extended highest sequence number received           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                      interarrival jitter                      |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                         last SR (LSR)                         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                   delay since last SR (DLSR)                  |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

SDES (PT 202, 6.5): ``count`` chunks, each an SSRC then items ``type(8) length(8)
text``, ended by a zero octet and zero-padded to 32 bits. BYE (PT 203, 6.6):
``count`` SSRCs, then optionally ``length(8) reason``. Other types (APP, the RFC
4585 feedback messages, XR) are kept as :class:`RtcpUnknown`.

A compound packet is checked as RFC 3550 appendix A.2 says: version 2 in every
packet; the first one an SR or RR with P clear (RFC 5506 reduced-size RTCP lifts
this when asked); padding only in the last; and the lengths adding up to the
datagram exactly.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import RtpError

SR = 200
RR = 201
SDES = 202
BYE = 203
APP = 204

COMMON = struct.Struct("!BBH")
SENDER_INFO = struct.Struct("!IQIII")
REPORT_BLOCK = struct.Struct("!IBBHIIII")
MAX_REPORT_BLOCKS = 31

NTP_EPOCH_OFFSET = 2208988800
"""Seconds from the NTP epoch (1900) to the Unix epoch (1970)."""


class SdesType:
    """SDES item types (RFC 3550 section 6.5)."""

    END = 0
    CNAME = 1
    NAME = 2
    EMAIL = 3
    PHONE = 4
    LOC = 5
    TOOL = 6
    NOTE = 7
    PRIV = 8


def unix_to_ntp(t: float) -> int:
    """A Unix time as a 64-bit NTP timestamp (32.32 fixed point since 1900)."""
    return round((t + NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def ntp_to_unix(ntp: int) -> float:
    return ntp / (1 << 32) - NTP_EPOCH_OFFSET


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: what LSR carries (section 6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """Reception statistics about one source (section 6.4.1)."""

    ssrc: int
    """The source these figures are about."""
    fraction_lost: int
    """Packets lost since the previous report, over expected, as a fixed point /256."""
    cumulative_lost: int
    """Expected minus received since the start, 24-bit signed (duplicates make it < 0)."""
    highest_sequence: int
    """Extended highest sequence number received: cycles << 16 | highest seq."""
    jitter: int
    """Interarrival jitter, in RTP timestamp units (appendix A.8)."""
    last_sr: int = 0
    """Middle 32 bits of the NTP time of the last SR received from the source (0: none)."""
    delay_since_last_sr: int = 0
    """Delay since that SR, in units of 1/65536 s (0: none)."""

    def build(self) -> bytes:
        lost = max(-0x800000, min(0x7FFFFF, self.cumulative_lost)) & 0xFFFFFF
        try:
            return REPORT_BLOCK.pack(
                self.ssrc,
                self.fraction_lost,
                lost >> 16,
                lost & 0xFFFF,
                self.highest_sequence,
                self.jitter,
                self.last_sr,
                self.delay_since_last_sr,
            )
        except struct.error as e:
            raise RtpError("field_range", f"report block: {e}") from None

    @classmethod
    def parse(cls, buf: bytes, off: int) -> ReportBlock:
        ssrc, frac, lost_hi, lost_lo, high, jitter, lsr, dlsr = REPORT_BLOCK.unpack_from(buf, off)
        lost = lost_hi << 16 | lost_lo
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, frac, lost, high, jitter, lsr, dlsr)


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR: a sender's clock mapping and counts, plus its reception reports."""

    ssrc: int
    """The sender."""
    ntp_timestamp: int
    """Wallclock time of this report, 64-bit NTP format."""
    rtp_timestamp: int
    """The same instant in the stream's RTP timestamp units."""
    packet_count: int
    """RTP data packets sent since the start (mod 2^32)."""
    octet_count: int
    """RTP payload octets sent since the start (mod 2^32)."""
    reports: tuple[ReportBlock, ...] = ()
    """What the sender itself receives from other sources."""
    extension: bytes = b""
    """Profile-specific extension (a multiple of 4 bytes)."""

    def build(self, padding: int = 0) -> bytes:
        try:
            info = SENDER_INFO.pack(
                self.ssrc,
                self.ntp_timestamp,
                self.rtp_timestamp,
                self.packet_count,
                self.octet_count,
            )
        except struct.error as e:
            raise RtpError("field_range", f"sender report: {e}") from None
        return _frame(SR, len(self.reports), info + _blocks(self.reports, self.extension), padding)


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR: reception reports from a participant that does not send."""

    ssrc: int
    """The reporter."""
    reports: tuple[ReportBlock, ...] = ()
    """One block per source heard from since the last report."""
    extension: bytes = b""
    """Profile-specific extension (a multiple of 4 bytes)."""

    def build(self, padding: int = 0) -> bytes:
        if not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise RtpError("field_range", f"SSRC {self.ssrc}")
        head = struct.pack("!I", self.ssrc)
        return _frame(RR, len(self.reports), head + _blocks(self.reports, self.extension), padding)


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """The items describing one source."""

    ssrc: int
    """The source described."""
    items: tuple[tuple[int, bytes], ...]
    """(type, value) pairs, e.g. ``(SdesType.CNAME, b"user@host")``; values <= 255 bytes."""

    def value(self, item_type: int) -> bytes | None:
        for t, v in self.items:
            if t == item_type:
                return v
        return None


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES: names of sources (CNAME ties an SSRC to a participant)."""

    chunks: tuple[SdesChunk, ...]
    """One chunk per source, at most 31."""

    def build(self, padding: int = 0) -> bytes:
        body = bytearray()
        for chunk in self.chunks:
            if not 0 <= chunk.ssrc <= 0xFFFFFFFF:
                raise RtpError("field_range", f"SSRC {chunk.ssrc}")
            body += struct.pack("!I", chunk.ssrc)
            for t, v in chunk.items:
                if not 1 <= t <= 255 or len(v) > 255:
                    raise RtpError("sdes_item", f"type {t}, {len(v)} bytes")
                body += bytes((t, len(v))) + v
            body += b"\0" * (4 - len(body) % 4)  # the END item, then padding to 32 bits
        return _frame(SDES, len(self.chunks), bytes(body), padding)

    def cname(self, ssrc: int) -> bytes | None:
        for chunk in self.chunks:
            if chunk.ssrc == ssrc:
                return chunk.value(SdesType.CNAME)
        return None


@dataclass(frozen=True, slots=True)
class Goodbye:
    """BYE: the sources are leaving the session."""

    ssrcs: tuple[int, ...]
    """The sources leaving, at most 31."""
    reason: bytes = b""
    """Why, as text (at most 255 bytes; empty: none given)."""

    def build(self, padding: int = 0) -> bytes:
        if not all(0 <= s <= 0xFFFFFFFF for s in self.ssrcs) or len(self.reason) > 255:
            raise RtpError("field_range", "BYE SSRC or reason length")
        body = b"".join(struct.pack("!I", s) for s in self.ssrcs)
        if self.reason:
            body += bytes((len(self.reason),)) + self.reason
            body += b"\0" * (-len(body) % 4)
        return _frame(BYE, len(self.ssrcs), body, padding)


@dataclass(frozen=True, slots=True)
class RtcpUnknown:
    """Any other RTCP packet type (APP, RFC 4585 feedback, XR, ...), kept as it came."""

    packet_type: int
    """PT, e.g. 204 APP, 205 RTPFB, 206 PSFB, 207 XR."""
    count: int
    """The 5-bit count/subtype field."""
    body: bytes
    """Everything after the 4-byte head, padding excluded."""

    def build(self, padding: int = 0) -> bytes:
        if not 0 <= self.packet_type <= 255:
            raise RtpError("field_range", f"packet type {self.packet_type}")
        return _frame(self.packet_type, self.count, self.body, padding)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Goodbye | RtcpUnknown


def _blocks(reports: tuple[ReportBlock, ...], extension: bytes) -> bytes:
    if len(extension) % 4:
        raise RtpError("extension_length", f"{len(extension)} bytes is not 32-bit aligned")
    return b"".join(r.build() for r in reports) + extension


def _frame(pt: int, count: int, body: bytes, padding: int) -> bytes:
    if not 0 <= count <= MAX_REPORT_BLOCKS:
        raise RtpError("count", f"{count} items in one packet (at most 31)")
    if len(body) % 4:
        raise RtpError("length", f"body of {len(body)} bytes is not 32-bit aligned")
    if padding and (padding % 4 or not 4 <= padding <= 252):
        raise RtpError("padding", f"{padding} (a multiple of 4, 4..252)")
    flags = 0x80 | count | (0x20 if padding else 0)
    words = (4 + len(body) + padding) // 4 - 1
    if words > 0xFFFF:
        raise RtpError("length", f"{len(body)} bytes")
    pad = b"\0" * (padding - 1) + bytes((padding,)) if padding else b""
    return COMMON.pack(flags, pt, words) + body + pad


def build_compound(packets: list[RtcpPacket] | tuple[RtcpPacket, ...]) -> bytes:
    """Packets back to back in one datagram (section 6.1: start with an SR or RR)."""
    return b"".join(p.build() for p in packets)


def parse_rtcp(
    data: bytes | bytearray | memoryview, *, reduced_size: bool = False
) -> tuple[RtcpPacket, ...]:
    """Parse a compound RTCP datagram with the validity checks of RFC 3550 A.2.

    ``reduced_size`` accepts RFC 5506 packets, which need not start with SR/RR.
    """
    b = bytes(data)
    n = len(b)
    if n < 4:
        raise RtpError("truncated", f"{n} bytes")
    out: list[RtcpPacket] = []
    off = 0
    while off < n:
        if off + 4 > n:
            raise RtpError("truncated", f"{n - off} stray bytes after packet {len(out)}")
        flags, pt, words = COMMON.unpack_from(b, off)
        if flags >> 6 != 2:
            raise RtpError("version", f"version {flags >> 6} in packet {len(out)}")
        size = 4 * (words + 1)
        end = off + size
        if end > n:
            raise RtpError("length", f"packet {len(out)} claims {size} bytes, {n - off} left")
        if not out and not reduced_size and (pt not in (SR, RR) or flags & 0x20):
            raise RtpError("first_packet", f"compound starts with PT {pt}, P={flags >> 5 & 1}")
        body_end = end
        if flags & 0x20:
            if end != n:
                raise RtpError("padding", f"padding in packet {len(out)}, which is not last")
            pad = b[end - 1]
            if pad == 0 or pad > size - 4:
                raise RtpError("padding", f"padding count {pad} in a packet of {size} bytes")
            body_end = end - pad
        out.append(_parse_one(pt, flags & 0x1F, b, off + 4, body_end))
        off = end
    return tuple(out)


def _parse_one(pt: int, count: int, b: bytes, start: int, end: int) -> RtcpPacket:
    size = end - start
    if pt in (SR, RR):
        fixed = SENDER_INFO.size if pt == SR else 4
        if size < fixed + 24 * count:
            raise RtpError("length", f"PT {pt} with {count} blocks in {size} bytes")
        blocks = tuple(ReportBlock.parse(b, start + fixed + 24 * i) for i in range(count))
        ext = b[start + fixed + 24 * count : end]
        if pt == RR:
            return ReceiverReport(struct.unpack_from("!I", b, start)[0], blocks, ext)
        ssrc, ntp, rtp_ts, packets, octets = SENDER_INFO.unpack_from(b, start)
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets, blocks, ext)
    if pt == SDES:
        return SourceDescription(_parse_sdes(count, b, start, end))
    if pt == BYE:
        if size < 4 * count:
            raise RtpError("length", f"BYE of {count} sources in {size} bytes")
        ssrcs = struct.unpack_from(f"!{count}I", b, start)
        reason = b""
        at = start + 4 * count
        if at < end:
            rlen = b[at]
            if at + 1 + rlen > end:
                raise RtpError("length", f"BYE reason of {rlen} bytes overruns the packet")
            reason = b[at + 1 : at + 1 + rlen]
        return Goodbye(tuple(ssrcs), reason)
    return RtcpUnknown(pt, count, b[start:end])


def _parse_sdes(count: int, b: bytes, start: int, end: int) -> tuple[SdesChunk, ...]:
    chunks: list[SdesChunk] = []
    at = start
    for _ in range(count):
        if at + 4 > end:
            raise RtpError("sdes_chunk", f"chunk {len(chunks)} beyond the packet")
        (ssrc,) = struct.unpack_from("!I", b, at)
        at += 4
        items: list[tuple[int, bytes]] = []
        while True:
            if at >= end:
                raise RtpError("sdes_chunk", "item list without its END octet")
            t = b[at]
            if t == SdesType.END:
                at = (at - start) // 4 * 4 + 4 + start  # END, then zeros to 32 bits
                break
            if at + 2 > end or at + 2 + b[at + 1] > end:
                raise RtpError("sdes_item", f"item type {t} overruns the packet")
            items.append((t, b[at + 2 : at + 2 + b[at + 1]]))
            at += 2 + b[at + 1]
        chunks.append(SdesChunk(ssrc, tuple(items)))
    if at > end:
        raise RtpError("sdes_chunk", "chunk padding beyond the packet")
    return tuple(chunks)
