"""Gratuitous ARP: how an instance that moved tells the switches where it now is.

Ethernet II + ARP (RFC 826), announcing `ip` at `mac` (RFC 5227 §3 "ARP
Announcement": a request whose sender and target protocol addresses are both ours).

    0                   6                  12     14
    +-------------------+-------------------+------+
    | dst ff:ff:ff:ff:ff:ff | src mac       | 0806 |
    +------+------+----+----+------+--------+------+------------+--------+
    | htype 1 | ptype 0800 | hlen 6 | plen 4 | oper 1 | sha | spa | tha 0 | tpa |
"""

from __future__ import annotations

import ipaddress
import struct

ETH_P_ARP = 0x0806


def mac_bytes(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6:
        raise ValueError(f"bad MAC {mac!r}")
    return bytes(int(p, 16) for p in parts)


def announcement(mac: str, ip: str) -> bytes:
    sha = mac_bytes(mac)
    spa = ipaddress.IPv4Address(ip).packed
    eth = b"\xff" * 6 + sha + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + sha + spa + b"\x00" * 6 + spa
    return eth + arp
