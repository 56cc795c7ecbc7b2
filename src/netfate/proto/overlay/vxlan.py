"""VXLAN encapsulation between the External Interfaces of two Virtual Presences.

The kernel fast path uses a Linux `vxlan` device; the Python reference path
builds the same UDP payload, so either side can talk to the other.

UDP payload (RFC 7348 section 5), network byte order:

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |R|R|R|R|I|R|R|R|            Reserved                           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                VXLAN Network Identifier (VNI) |   Reserved    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    | inner Ethernet frame: dst MAC (6), src MAC (6), EtherType (2), payload

    struct "!B3xI" with the VNI in the upper 24 bits of the second word; the
    I flag (0x08) must be set. Outer UDP destination port 4789 (IANA).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

VXLAN_PORT = 4789
_HDR = struct.Struct("!B3xI")
_ETH = struct.Struct("!6s6sH")
ETH_P_IP = 0x0800
FLAG_I = 0x08


class OverlayError(ValueError):
    """A UDP payload that is not a VXLAN frame we accept (the one exception type)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Frame:
    vni: int
    dst_mac: bytes
    src_mac: bytes
    ethertype: int
    payload: bytes


def encapsulate(vni: int, dst_mac: bytes, src_mac: bytes, ethertype: int, payload: bytes) -> bytes:
    if not 0 <= vni < 1 << 24:
        raise OverlayError("vni", f"{vni} does not fit 24 bits")
    if len(dst_mac) != 6 or len(src_mac) != 6:
        raise OverlayError("mac", "MAC addresses are 6 bytes")
    return _HDR.pack(FLAG_I, vni << 8) + _ETH.pack(dst_mac, src_mac, ethertype) + payload


def decapsulate(data: bytes, *, vni: int | None = None) -> Frame:
    """Parse a VXLAN UDP payload; with `vni`, frames of another network are refused."""
    if len(data) < _HDR.size + _ETH.size:
        raise OverlayError("truncated", f"{len(data)} bytes")
    flags, word = _HDR.unpack_from(data)
    if not flags & FLAG_I:
        raise OverlayError("flags", f"I flag not set (0x{flags:02x})")
    got = word >> 8
    if vni is not None and got != vni:
        raise OverlayError("vni", f"VNI {got}, expected {vni}")
    dst, src, et = _ETH.unpack_from(data, _HDR.size)
    return Frame(got, dst, src, et, data[_HDR.size + _ETH.size :])
