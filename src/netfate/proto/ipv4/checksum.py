"""Internet checksum (RFC 1071) and its incremental update (RFC 1624).

The incremental update is equation 3 of RFC 1624, HC' = ~(~HC + ~m + m'),
computed the way Linux does it (`csum_replace4` / `inet_proto_csum_replace4`:
32-bit one's-complement sums folded to 16 bits), so that a packet rewritten
here carries the same checksum bytes as one rewritten by nftables.
"""

from __future__ import annotations


def _fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ones_sum(data: bytes | memoryview) -> int:
    """One's-complement sum of 16-bit big-endian words (odd length: zero-padded)."""
    b = bytes(data)
    if len(b) % 2:
        b += b"\0"
    return _fold(sum(int.from_bytes(b[i : i + 2], "big") for i in range(0, len(b), 2)))


def checksum(data: bytes | memoryview) -> int:
    """The Internet checksum of `data` (the value to store in a checksum field)."""
    return ~ones_sum(data) & 0xFFFF


def replace32(check: int, old: bytes, new: bytes) -> int:
    """RFC 1624 eq. 3 for a 32-bit field (an IPv4 address) changing from old to new."""
    if len(old) != 4 or len(new) != 4:
        raise ValueError("replace32 takes 4-byte fields")
    s = (~check) & 0xFFFF
    s += (~int.from_bytes(old[:2], "big")) & 0xFFFF
    s += (~int.from_bytes(old[2:], "big")) & 0xFFFF
    s += int.from_bytes(new[:2], "big") + int.from_bytes(new[2:], "big")
    return (~_fold(s)) & 0xFFFF


def replace16(check: int, old: int, new: int) -> int:
    """RFC 1624 eq. 3 for one 16-bit word changing from old to new."""
    s = ((~check) & 0xFFFF) + ((~old) & 0xFFFF) + (new & 0xFFFF)
    return (~_fold(s)) & 0xFFFF


def ttl_decrement(check: int) -> int:
    """Header checksum after TTL - 1, exactly as Linux `ip_decrease_ttl` computes it.

    TTL is the high byte of its 16-bit word, so the stored checksum grows by
    0x0100 with an end-around carry. (Eq. 3 gives the same value except that it
    writes zero as 0x0000 where this writes 0xffff; Linux's form is kept so the
    two paths agree byte for byte.)
    """
    c = check + 0x0100
    return (c + (c >= 0xFFFF)) & 0xFFFF
