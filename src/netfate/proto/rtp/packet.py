"""RTP data packets (RFC 3550 section 5.1), with RFC 8285 header extensions.

Fixed header, network byte order, struct ``"!BBHII"`` (12 bytes), then ``CC``
CSRC identifiers (``"!I"`` each)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                           timestamp                           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |           synchronization source (SSRC) identifier            |
    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
    |            contributing source (CSRC) identifiers             |
    |                             ....                              |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Header extension (X=1, section 5.3.1), right after the CSRCs, head ``"!HH"``;
``length`` counts the 32-bit words of extension data after this head::

    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |      defined by profile       |           length              |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                        header extension                       |
    |                             ....                              |

RFC 8285 gives that extension data a structure of elements, in one of two forms.
One-byte header (profile 0xBEDE, section 4.2): a byte ``ID(4) | L(4)`` then L+1
data bytes; ID 1..14; ID 0 is a padding byte (0x00); ID 15 ends processing::

    |       0xBE    |    0xDE       |           length=3            |
    |  ID   | L=0   |     data      |  ID   |  L=1  |   data...

Two-byte header (profile ``0x100`` in the top 12 bits, 4 "appbits" below,
section 4.3): a byte ID (1..255; 0x00 is padding), a byte length (0..255), data::

    |         0x100         |appbits|           length=3            |
    |      ID       |     L=0       |     ID        |     L=1       |

Padding (P=1, section 5.1): the last octet counts the padding octets, itself
included; it must be at least 1 and must not reach into the header.

Every length is checked against the datagram; nothing reads past the bytes given,
and every refusal is an :class:`RtpError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import RtpError

RTP_VERSION = 2
HEADER = struct.Struct("!BBHII")
EXT_HEAD = struct.Struct("!HH")
MAX_CSRC = 15
ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE = 0x1000
"""0x100 in the top 12 bits; the low 4 bits are the RFC 8285 "appbits"."""

PT_MP2T = 33
"""MPEG-2 transport stream over RTP (RFC 2250, RFC 3551 table 5), 90 kHz clock."""

STATIC_CLOCK_RATES: dict[int, int] = {
    0: 8000,  # PCMU
    3: 8000,  # GSM
    4: 8000,  # G723
    5: 8000,  # DVI4/8000
    6: 16000,  # DVI4/16000
    7: 8000,  # LPC
    8: 8000,  # PCMA
    9: 8000,  # G722 (RFC 3551 4.5.2: 8000 although sampled at 16 kHz)
    10: 44100,  # L16 stereo
    11: 44100,  # L16 mono
    12: 8000,  # QCELP
    13: 8000,  # CN
    14: 90000,  # MPA
    15: 8000,  # G728
    16: 11025,  # DVI4/11025
    17: 22050,  # DVI4/22050
    18: 8000,  # G729
    25: 90000,  # CelB
    26: 90000,  # JPEG
    28: 90000,  # nv
    31: 90000,  # H261
    32: 90000,  # MPV
    33: 90000,  # MP2T
    34: 90000,  # H263
}
"""RTP clock rate of each static payload type (RFC 3551 tables 4 and 5)."""


@dataclass(frozen=True, slots=True)
class ExtensionElement:
    """One RFC 8285 header extension element."""

    id: int
    """Local identifier: 1..14 in the one-byte form, 1..255 in the two-byte form."""
    data: bytes
    """Element data: 1..16 bytes in the one-byte form, 0..255 in the two-byte form."""


@dataclass(frozen=True, slots=True)
class HeaderExtension:
    """The RTP header extension (RFC 3550 section 5.3.1) as carried: profile and data."""

    profile: int
    """The 16-bit "defined by profile" field (0xBEDE, 0x100x for RFC 8285)."""
    data: bytes
    """Extension data, a multiple of 4 bytes."""

    @property
    def is_one_byte(self) -> bool:
        return self.profile == ONE_BYTE_PROFILE

    @property
    def is_two_byte(self) -> bool:
        return self.profile & 0xFFF0 == TWO_BYTE_PROFILE

    def elements(self) -> tuple[ExtensionElement, ...]:
        """The RFC 8285 elements; :class:`RtpError` if malformed or not RFC 8285."""
        if self.is_one_byte:
            return _one_byte_elements(self.data)
        if self.is_two_byte:
            return _two_byte_elements(self.data)
        raise RtpError("extension_profile", f"profile {self.profile:#06x} is not RFC 8285")

    @classmethod
    def from_elements(
        cls, elements: tuple[ExtensionElement, ...] | list[ExtensionElement], appbits: int = 0
    ) -> HeaderExtension:
        """Pack elements in the one-byte form when they all fit it, else the two-byte form
        (RFC 8285 section 4.1: one form per packet)."""
        if not 0 <= appbits <= 0xF:
            raise RtpError("extension_appbits", str(appbits))
        if all(1 <= e.id <= 14 and 1 <= len(e.data) <= 16 for e in elements) and appbits == 0:
            out = bytearray()
            for e in elements:
                out.append(e.id << 4 | (len(e.data) - 1))
                out += e.data
            return cls(ONE_BYTE_PROFILE, _pad4(out))
        out = bytearray()
        for e in elements:
            if not 1 <= e.id <= 255 or len(e.data) > 255:
                raise RtpError("extension_element", f"id {e.id}, {len(e.data)} bytes")
            out += bytes((e.id, len(e.data)))
            out += e.data
        return cls(TWO_BYTE_PROFILE | appbits, _pad4(out))


def _pad4(b: bytearray) -> bytes:
    return bytes(b) + b"\0" * (-len(b) % 4)


def _one_byte_elements(data: bytes) -> tuple[ExtensionElement, ...]:
    out: list[ExtensionElement] = []
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == 0:  # padding byte
            i += 1
            continue
        ident, length = b >> 4, (b & 0xF) + 1
        if ident == 15:  # reserved: stop here, keep what came before (section 4.2)
            break
        if ident == 0:
            raise RtpError("extension_element", f"ID 0 with length {length} at {i}")
        if i + 1 + length > n:
            raise RtpError("extension_element", f"element {ident} overruns the extension")
        out.append(ExtensionElement(ident, data[i + 1 : i + 1 + length]))
        i += 1 + length
    return tuple(out)


def _two_byte_elements(data: bytes) -> tuple[ExtensionElement, ...]:
    out: list[ExtensionElement] = []
    i, n = 0, len(data)
    while i < n:
        ident = data[i]
        if ident == 0:  # padding byte
            i += 1
            continue
        if i + 2 > n:
            raise RtpError("extension_element", f"element {ident} has no length byte")
        length = data[i + 1]
        if i + 2 + length > n:
            raise RtpError("extension_element", f"element {ident} overruns the extension")
        out.append(ExtensionElement(ident, data[i + 2 : i + 2 + length]))
        i += 2 + length
    return tuple(out)


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP data packet (RFC 3550 section 5.1); ``build()`` gives its bytes."""

    payload_type: int
    """PT, 0..127 (RFC 3551 assigns the static ones; 33 is MPEG-2 TS)."""
    sequence: int
    """Sequence number, 0..65535, +1 per packet, wrapping."""
    timestamp: int
    """Sampling instant of the first payload octet, in payload clock units, 32 bits."""
    ssrc: int
    """Synchronisation source identifier, 32 bits."""
    payload: bytes = b""
    """Payload octets, padding excluded."""
    marker: bool = False
    """M bit; its meaning is the profile's (e.g. end of a video frame)."""
    csrcs: tuple[int, ...] = ()
    """Contributing sources (a mixer's inputs), at most 15."""
    extension: HeaderExtension | None = None
    """The header extension, if X was set."""
    padding: int = 0
    """Padding octets after the payload, the count octet included (0: P clear)."""

    def build(self) -> bytes:
        if not 0 <= self.payload_type <= 127:
            raise RtpError("payload_type", str(self.payload_type))
        if not 0 <= self.sequence <= 0xFFFF:
            raise RtpError("sequence", str(self.sequence))
        if not (0 <= self.timestamp <= 0xFFFFFFFF and 0 <= self.ssrc <= 0xFFFFFFFF):
            raise RtpError("field_range", "timestamp or SSRC outside 32 bits")
        if len(self.csrcs) > MAX_CSRC or not all(0 <= c <= 0xFFFFFFFF for c in self.csrcs):
            raise RtpError("csrc", f"{len(self.csrcs)} CSRCs")
        if not 0 <= self.padding <= 255:
            raise RtpError("padding", str(self.padding))
        ext = self.extension
        b0 = RTP_VERSION << 6 | len(self.csrcs)
        if self.padding:
            b0 |= 0x20
        if ext is not None:
            b0 |= 0x10
        parts = [
            HEADER.pack(
                b0,
                self.payload_type | (0x80 if self.marker else 0),
                self.sequence,
                self.timestamp,
                self.ssrc,
            )
        ]
        parts.extend(struct.pack("!I", c) for c in self.csrcs)
        if ext is not None:
            if len(ext.data) % 4 or len(ext.data) > 0xFFFF * 4 or not 0 <= ext.profile <= 0xFFFF:
                raise RtpError("extension_length", f"{len(ext.data)} bytes")
            parts.append(EXT_HEAD.pack(ext.profile, len(ext.data) // 4))
            parts.append(ext.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(b"\0" * (self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


def is_rtcp(data: bytes | bytearray | memoryview) -> bool:
    """True when an RTP/RTCP-multiplexed datagram is RTCP (RFC 5761 section 4: the
    second octet of RTCP is 192..223, a range RTP payload types must avoid)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def payload_bounds(data: bytes | bytearray | memoryview) -> tuple[int, int]:
    """(start, end) of the payload in an RTP datagram: every length checked, nothing
    built. The relay's fast path; :func:`parse_rtp` gives the whole packet."""
    n = len(data)
    if n < 12:
        raise RtpError("truncated", f"{n} bytes, the fixed header needs 12")
    b0 = data[0]
    if b0 >> 6 != RTP_VERSION:
        raise RtpError("version", f"version {b0 >> 6}")
    start = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if start + 4 > n:
            raise RtpError("truncated", "header extension head beyond the datagram")
        words = data[start + 2] << 8 | data[start + 3]
        start += 4 + 4 * words
    if start > n:
        raise RtpError("truncated", f"header of {start} bytes in a datagram of {n}")
    end = n
    if b0 & 0x20:
        pad = data[n - 1]
        if pad == 0 or pad > n - start:
            raise RtpError("padding", f"padding count {pad} with {n - start} bytes after header")
        end = n - pad
    return start, end


def parse_rtp(data: bytes | bytearray | memoryview) -> RtpPacket:
    """Parse one RTP datagram; :class:`RtpError` on anything malformed."""
    b = bytes(data)
    start, end = payload_bounds(b)
    b0, b1, seq, ts, ssrc = HEADER.unpack_from(b)
    cc = b0 & 0x0F
    csrcs = struct.unpack_from(f"!{cc}I", b, 12) if cc else ()
    ext = None
    if b0 & 0x10:
        off = 12 + 4 * cc
        profile, words = EXT_HEAD.unpack_from(b, off)
        ext = HeaderExtension(profile, b[off + 4 : off + 4 + 4 * words])
    return RtpPacket(
        payload_type=b1 & 0x7F,
        sequence=seq,
        timestamp=ts,
        ssrc=ssrc,
        payload=b[start:end],
        marker=bool(b1 & 0x80),
        csrcs=tuple(csrcs),
        extension=ext,
        padding=len(b) - end,
    )
