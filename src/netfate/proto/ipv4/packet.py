"""IPv4 packets: parse, build, fragment, rewrite addresses.

Wire format (RFC 791 section 3.1), network byte order:

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |Version|  IHL  |Type of Service|          Total Length         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |         Identification        |Flags|      Fragment Offset    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  Time to Live |    Protocol   |         Header Checksum       |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                       Source Address                          |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                    Destination Address                        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                    Options (IHL > 5)          |    Padding    |

    struct "!BBHHHBBH4s4s" (20 bytes); flags: bit 1 DF (0x4000), bit 2 MF (0x2000).

Transport headers whose checksum covers the pseudo-header (src, dst, 0, proto,
length): UDP (RFC 768, checksum at offset 6; 0 means "none") and TCP (RFC 793,
checksum at offset 16). ICMP (RFC 792, checksum at offset 2) covers only itself.

Only the first fragment (offset 0) carries the transport header, so only there
is the transport checksum updated on an address rewrite; the update is still
right for the reassembled datagram because the checksum is a linear sum.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from .checksum import checksum, ones_sum, replace32, ttl_decrement
from .errors import IPv4Error

ICMP = 1
TCP = 6
UDP = 17

_HDR = struct.Struct("!BBHHHBBH4s4s")
DF = 0x4000
MF = 0x2000
OFFSET_MASK = 0x1FFF

# Where each transport keeps its checksum, and the least header that holds it.
_L4_CSUM = {TCP: (16, 20), UDP: (6, 8), ICMP: (2, 4)}

Address = ipaddress.IPv4Address


@dataclass(frozen=True)
class IPv4Packet:
    """A parsed IPv4 packet; `data` is exactly `total_length` bytes."""

    data: bytes
    ihl: int
    """Header length in bytes (20..60)."""
    tos: int
    total_length: int
    ident: int
    flags_frag: int
    ttl: int
    proto: int
    header_checksum: int
    src: Address
    dst: Address

    @property
    def frag_offset(self) -> int:
        """Fragment offset in bytes."""
        return (self.flags_frag & OFFSET_MASK) * 8

    @property
    def more_fragments(self) -> bool:
        return bool(self.flags_frag & MF)

    @property
    def is_fragment(self) -> bool:
        return self.more_fragments or self.frag_offset != 0

    @property
    def payload(self) -> bytes:
        return self.data[self.ihl :]

    def ports(self) -> tuple[int, int] | None:
        """(source, destination) port of a UDP or TCP first fragment, else None."""
        if self.proto in (UDP, TCP) and self.frag_offset == 0 and len(self.payload) >= 4:
            sp, dp = struct.unpack_from("!HH", self.payload)
            return int(sp), int(dp)
        return None


def parse(data: bytes | bytearray | memoryview, *, verify: bool = True) -> IPv4Packet:
    """Parse one IPv4 packet; trailing bytes past Total Length (link padding) are cut.

    With `verify`, a wrong header checksum is an error (the kernel drops those too).
    """
    b = bytes(data)
    if len(b) < _HDR.size:
        raise IPv4Error("truncated", f"{len(b)} bytes, a header needs 20")
    vihl, tos, total, ident, ff, ttl, proto, csum, src, dst = _HDR.unpack_from(b)
    if vihl >> 4 != 4:
        raise IPv4Error("version", f"version {vihl >> 4}")
    ihl = (vihl & 0xF) * 4
    if ihl < 20:
        raise IPv4Error("header_length", f"IHL {ihl // 4}")
    if total < ihl or total > len(b):
        raise IPv4Error("total_length", f"total length {total}, header {ihl}, have {len(b)}")
    if verify and ones_sum(b[:ihl]) != 0xFFFF:
        raise IPv4Error("header_checksum")
    if ff & 0x8000:
        raise IPv4Error("reserved_flag")
    return IPv4Packet(
        data=b[:total],
        ihl=ihl,
        tos=tos,
        total_length=total,
        ident=ident,
        flags_frag=ff,
        ttl=ttl,
        proto=proto,
        header_checksum=csum,
        src=Address(src),
        dst=Address(dst),
    )


def _pseudo(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + struct.pack("!BBH", 0, proto, length)


def rewrite(
    pkt: IPv4Packet,
    *,
    src: Address | None = None,
    dst: Address | None = None,
    decrement_ttl: bool = False,
) -> bytes:
    """The packet with new addresses (and TTL - 1 if asked), checksums updated.

    Mirrors nftables' stateless payload rewrite (nft_payload_set with checksum
    flags): IP header checksum by RFC 1624; on a first fragment of TCP/UDP the
    transport checksum too, skipped when a UDP checksum is 0 ("none"). Like
    nft_payload_l4csum_update, a result of 0 is stored as is. ICMP has no
    pseudo-header, so its checksum does not change.
    """
    b = bytearray(pkt.data)
    hcsum = pkt.header_checksum
    l4 = None
    if pkt.proto in (TCP, UDP) and pkt.frag_offset == 0:
        off, need = _L4_CSUM[pkt.proto]
        if len(b) - pkt.ihl >= need:
            l4 = pkt.ihl + off
    l4csum = int.from_bytes(b[l4 : l4 + 2], "big") if l4 is not None else 0
    if pkt.proto == UDP and l4csum == 0:
        l4 = None  # UDP without checksum stays without one
    for field_off, new in ((12, src), (16, dst)):
        if new is None:
            continue
        old = bytes(b[field_off : field_off + 4])
        nb = new.packed
        if old == nb:
            continue
        b[field_off : field_off + 4] = nb
        hcsum = replace32(hcsum, old, nb)
        if l4 is not None:
            l4csum = replace32(l4csum, old, nb)
    if decrement_ttl:
        if b[8] == 0:
            raise IPv4Error("ttl", "TTL already 0")
        b[8] -= 1
        hcsum = ttl_decrement(hcsum)
    b[10:12] = hcsum.to_bytes(2, "big")
    if l4 is not None:
        b[l4 : l4 + 2] = l4csum.to_bytes(2, "big")
    return bytes(b)


# ------------------------------------------------------------------ builders


def build_ipv4(
    src: str | Address,
    dst: str | Address,
    proto: int,
    payload: bytes,
    *,
    ttl: int = 64,
    ident: int = 0,
    flags_frag: int = 0,
    tos: int = 0,
) -> bytes:
    """An IPv4 packet without options, header checksum filled in."""
    s, d = Address(src).packed, Address(dst).packed
    hdr = _HDR.pack(0x45, tos, 20 + len(payload), ident, flags_frag, ttl, proto, 0, s, d)
    c = checksum(hdr)
    return hdr[:10] + c.to_bytes(2, "big") + hdr[12:] + payload


def build_udp(
    src: str | Address,
    dst: str | Address,
    sport: int,
    dport: int,
    data: bytes,
    *,
    with_checksum: bool = True,
    **ip: int,
) -> bytes:
    s, d = Address(src), Address(dst)
    length = 8 + len(data)
    seg = struct.pack("!HHHH", sport, dport, length, 0) + data
    if with_checksum:
        c = checksum(_pseudo(s.packed, d.packed, UDP, length) + seg) or 0xFFFF
        seg = seg[:6] + c.to_bytes(2, "big") + seg[8:]
    return build_ipv4(s, d, UDP, seg, **ip)


def build_tcp(
    src: str | Address,
    dst: str | Address,
    sport: int,
    dport: int,
    *,
    seq: int = 1,
    ack: int = 0,
    flags: int = 0x02,
    window: int = 65535,
    data: bytes = b"",
    options: bytes = b"",
    **ip: int,
) -> bytes:
    s, d = Address(src), Address(dst)
    if len(options) % 4:
        raise ValueError("TCP options must be a multiple of 4 bytes")
    doff = (20 + len(options)) // 4
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, window, 0, 0)
    seg += options + data
    c = checksum(_pseudo(s.packed, d.packed, TCP, len(seg)) + seg)
    seg = seg[:16] + c.to_bytes(2, "big") + seg[18:]
    return build_ipv4(s, d, TCP, seg, **ip)


def build_icmp_echo(
    src: str | Address,
    dst: str | Address,
    echo_id: int,
    echo_seq: int,
    data: bytes = b"",
    *,
    reply: bool = False,
    **ip: int,
) -> bytes:
    msg = struct.pack("!BBHHH", 0 if reply else 8, 0, 0, echo_id, echo_seq) + data
    c = checksum(msg)
    msg = msg[:2] + c.to_bytes(2, "big") + msg[4:]
    return build_ipv4(src, dst, ICMP, msg, **ip)


def fragment(packet: bytes, mtu: int) -> list[bytes]:
    """Split an IPv4 packet (without options) into fragments of at most `mtu` bytes.

    RFC 791 section 3.2: every fragment but the last carries a multiple of 8
    payload bytes and MF; offsets are in 8-byte units; DF forbids it.
    """
    pkt = parse(packet)
    if pkt.ihl != 20:
        raise IPv4Error("options", "fragmenting packets with options is not supported")
    if pkt.total_length <= mtu:
        return [pkt.data]
    if pkt.flags_frag & DF:
        raise IPv4Error("dont_fragment", f"{pkt.total_length} > MTU {mtu} with DF set")
    step = (mtu - 20) // 8 * 8
    if step <= 0:
        raise IPv4Error("mtu", f"MTU {mtu} too small")
    body = pkt.payload
    base = pkt.flags_frag & OFFSET_MASK
    out = []
    for start in range(0, len(body), step):
        chunk = body[start : start + step]
        last = start + step >= len(body)
        ff = (base + start // 8) | (0 if last and not pkt.more_fragments else MF)
        out.append(
            build_ipv4(
                pkt.src,
                pkt.dst,
                pkt.proto,
                chunk,
                ttl=pkt.ttl,
                ident=pkt.ident,
                flags_frag=ff,
                tos=pkt.tos,
            )
        )
    return out


# ------------------------------------------------------------------ ICMP errors

ICMP_ERRORS = frozenset({3, 11, 12})
"""Destination unreachable, time exceeded, parameter problem (RFC 792)."""


def is_icmp_error(pkt: IPv4Packet) -> bool:
    return (
        pkt.proto == ICMP
        and pkt.frag_offset == 0
        and len(pkt.payload) >= 8
        and (pkt.payload[0] in ICMP_ERRORS)
    )


def rewrite_icmp_error(
    pkt: IPv4Packet,
    *,
    src: Address | None = None,
    dst: Address | None = None,
    inner_src: Address | None = None,
    inner_dst: Address | None = None,
    decrement_ttl: bool = False,
) -> bytes:
    """An ICMP error with new outer and quoted (inner) addresses.

    RFC 792: after the 8-byte ICMP header comes the offending packet's IP header
    and at least 8 bytes of its payload. The quoted header's checksum and, when
    quoted, its UDP/TCP checksum are updated (RFC 1624), so that the sender's
    stack matches the error to its socket; the ICMP checksum, which covers the
    quoted bytes, is then recomputed.
    """
    if not is_icmp_error(pkt):
        raise IPv4Error("not_icmp_error")
    outer = bytearray(rewrite(pkt, src=src, dst=dst, decrement_ttl=decrement_ttl))
    base = pkt.ihl + 8
    if len(outer) < base + 20 or outer[base] >> 4 != 4:
        raise IPv4Error("icmp_quote", "no quoted IPv4 header")
    ihl = (outer[base] & 0xF) * 4
    if ihl < 20 or len(outer) < base + ihl:
        raise IPv4Error("icmp_quote", "quoted header truncated")
    proto = outer[base + 9]
    frag = int.from_bytes(outer[base + 6 : base + 8], "big") & OFFSET_MASK
    l4 = base + ihl
    l4sum_at = None
    if frag == 0 and proto in (TCP, UDP):
        off = _L4_CSUM[proto][0]
        if len(outer) >= l4 + off + 2:
            l4sum_at = l4 + off
    if l4sum_at is not None and proto == UDP and outer[l4sum_at : l4sum_at + 2] == b"\0\0":
        l4sum_at = None
    hsum = int.from_bytes(outer[base + 10 : base + 12], "big")
    for field_off, new in ((12, inner_src), (16, inner_dst)):
        if new is None:
            continue
        at = base + field_off
        old = bytes(outer[at : at + 4])
        outer[at : at + 4] = new.packed
        hsum = replace32(hsum, old, new.packed)
        if l4sum_at is not None:
            c = int.from_bytes(outer[l4sum_at : l4sum_at + 2], "big")
            outer[l4sum_at : l4sum_at + 2] = replace32(c, old, new.packed).to_bytes(2, "big")
    outer[base + 10 : base + 12] = hsum.to_bytes(2, "big")
    icmp = pkt.ihl
    outer[icmp + 2 : icmp + 4] = b"\0\0"
    outer[icmp + 2 : icmp + 4] = checksum(bytes(outer[icmp:])).to_bytes(2, "big")
    return bytes(outer)


def build_icmp_error(
    src: str | Address, dst: str | Address, icmp_type: int, code: int, offending: bytes, **ip: int
) -> bytes:
    """An ICMP error quoting `offending` (its header and up to 548 bytes, as Linux does)."""
    msg = struct.pack("!BBHI", icmp_type, code, 0, 0) + offending[:548]
    c = checksum(msg)
    msg = msg[:2] + c.to_bytes(2, "big") + msg[4:]
    return build_ipv4(src, dst, ICMP, msg, **ip)
