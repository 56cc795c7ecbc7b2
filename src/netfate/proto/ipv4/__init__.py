"""Sans-I/O IPv4 (+ UDP/TCP/ICMP) parsing, building and header rewriting.

The Virtual Presence reference path rewrites addresses the way the kernel fast
path (nftables stateless `ip saddr/daddr set`) does, so both can be compared
byte for byte: RFC 1624 incremental checksum updates, UDP checksum 0 left
alone, a non-first fragment's transport header not touched.
"""

from .checksum import checksum, replace16, replace32
from .errors import IPv4Error
from .packet import (
    ICMP,
    TCP,
    UDP,
    IPv4Packet,
    build_icmp_echo,
    build_icmp_error,
    build_ipv4,
    build_tcp,
    build_udp,
    fragment,
    is_icmp_error,
    parse,
    rewrite,
    rewrite_icmp_error,
)

__all__ = [
    "ICMP",
    "TCP",
    "UDP",
    "IPv4Error",
    "IPv4Packet",
    "build_icmp_echo",
    "build_icmp_error",
    "build_ipv4",
    "build_tcp",
    "build_udp",
    "checksum",
    "fragment",
    "is_icmp_error",
    "parse",
    "replace16",
    "replace32",
    "rewrite",
    "rewrite_icmp_error",
]
