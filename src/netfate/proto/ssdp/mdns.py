"""mDNS A records (RFC 6762 over the DNS message format of RFC 1035 section 4).

Header (12 bytes, "!HHHHHH"): ID, flags, QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT.
Questions: QNAME, QTYPE (2), QCLASS (2). Resource records: NAME, TYPE (2),
CLASS (2; top bit = cache-flush in mDNS), TTL (4), RDLENGTH (2), RDATA.
Names are label sequences (length byte <= 63) ending in a zero byte, or a
compression pointer (two bytes, top bits 11, RFC 1035 section 4.1.4).

The ALG rewrites RDATA of A records (TYPE 1, RDLENGTH 4) equal to the device's
PN1 address; nothing else changes, so the message length is unchanged.
"""

from __future__ import annotations

import ipaddress
import struct

from .errors import AlgError

_HDR = struct.Struct("!HHHHHH")
TYPE_A = 1
MAX_RECORDS = 256


def _skip_name(data: bytes, off: int) -> int:
    """Offset after the name at `off` (pointers are not followed: only their size counts)."""
    for _ in range(128):
        if off >= len(data):
            raise AlgError("truncated", "in a name")
        n = data[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            if off + 2 > len(data):
                raise AlgError("truncated", "in a pointer")
            return off + 2
        if n & 0xC0:
            raise AlgError("label", f"reserved label type 0x{n:02x}")
        off += 1 + n
    raise AlgError("name_too_long")


def rewrite_a_records(data: bytes, old: str, new: str) -> tuple[bytes, int]:
    """(message with A records `old` -> `new`, how many were rewritten)."""
    if len(data) < _HDR.size:
        raise AlgError("truncated", "header")
    _, _, qd, an, ns, ar = _HDR.unpack_from(data)
    if qd + an + ns + ar > MAX_RECORDS:
        raise AlgError("too_many_records")
    o, n = ipaddress.IPv4Address(old).packed, ipaddress.IPv4Address(new).packed
    out = bytearray(data)
    off = _HDR.size
    for _ in range(qd):
        off = _skip_name(data, off) + 4
    count = 0
    for _ in range(an + ns + ar):
        off = _skip_name(data, off)
        if off + 10 > len(data):
            raise AlgError("truncated", "record header")
        rtype, _, _, rdlen = struct.unpack_from("!HHIH", data, off)
        off += 10
        if off + rdlen > len(data):
            raise AlgError("truncated", "rdata")
        if rtype == TYPE_A and rdlen == 4 and data[off : off + 4] == o:
            out[off : off + 4] = n
            count += 1
        off += rdlen
    if off > len(data):
        raise AlgError("truncated")
    return bytes(out), count
