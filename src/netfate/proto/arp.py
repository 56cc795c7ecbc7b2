"""ARP frames netfate builds itself (RFC 826): how an address tells the switches
and the hosts on its segment where it now is, and the SDN controller's proxy
answers to instances.

Ethernet II + ARP, here a request (oper 1), sender `mac`/`spa`, target `tpa`;
a reply (oper 2) carries the answer in the sender fields and the asker in the
target fields, sent to the asker:

    0                   6                  12     14
    +-------------------+-------------------+------+
    | dst ff:ff:ff:ff:ff:ff | src mac       | 0806 |
    +------+------+----+----+------+--------+------+------------+--------+
    | htype 1 | ptype 0800 | hlen 6 | plen 4 | oper 1 | sha | spa | tha 0 | tpa |

An "ARP Announcement" (RFC 5227 §3) is the request whose sender and target
protocol addresses are both ours; a request to one host from an address makes
that host update its entry for the address from the sender fields.
"""

from __future__ import annotations

import ipaddress
import struct

ETH_P_ARP = 0x0806
ETH_MIN_FRAME = 60
"""Without the FCS: shorter frames are padded."""


def mac_bytes(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6:
        raise ValueError(f"bad MAC {mac!r}")
    return bytes(int(p, 16) for p in parts)


def request(mac: str, spa: str, tpa: str) -> bytes:
    """A broadcast ARP request from `mac`/`spa` for `tpa`."""
    sha = mac_bytes(mac)
    sender = ipaddress.IPv4Address(spa).packed
    target = ipaddress.IPv4Address(tpa).packed
    eth = b"\xff" * 6 + sha + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + sha + sender + b"\x00" * 6 + target
    return eth + arp


def announcement(mac: str, ip: str) -> bytes:
    """Gratuitous ARP: `ip` is at `mac` (sender and target address both `ip`)."""
    return request(mac, ip, ip)


def reply(*, asker_mac: str, asker_ip: str, target_mac: str, target_ip: str) -> bytes:
    """`target_ip` is at `target_mac`, told to the asker (zero-padded to the 60-byte
    minimum frame, as os-ken builds it): the SDN controller's proxy ARP answer."""
    sha, tha = mac_bytes(target_mac), mac_bytes(asker_mac)
    sender = ipaddress.IPv4Address(target_ip).packed
    target = ipaddress.IPv4Address(asker_ip).packed
    eth = tha + sha + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + sha + sender + tha + target
    return (eth + arp).ljust(ETH_MIN_FRAME, b"\x00")
