"""What the catalog's steering testbed tests share: a chain of three forwarders, and a
capture in a block's namespace of who sent it a user's packets (the order proof)."""

from __future__ import annotations

import socket

from netfate.host.netns import socket_in

CHAIN = """
name: sensor-path
blocks:
  - {name: collector, function: forwarder}
  - {name: index, function: forwarder}
  - {name: archive, function: forwarder}
user_mbps: 1
sla: {latency_ms: 5}
"""
"""Three one-armed routers; the entry bound to 5 ms of its user (at their home)."""
ORDER = ("collector", "index", "archive")


def raw_socket(ns: str) -> socket.socket:
    """A raw IPv4 socket on eth0 of namespace `ns`: open it before anything is sent,
    and it holds every frame from then on (no capture process to wait for)."""
    s = socket_in(ns, socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0800))
    s.bind(("eth0", 0))
    s.settimeout(10)
    return s


def echo_senders(s: socket.socket, dst_ip: str, n: int) -> list[str]:
    """The source MACs of the first `n` ICMP echo requests to `dst_ip` that arrive
    (a block that forwards a frame puts its own MAC as the source)."""
    dst = socket.inet_aton(dst_ip)
    got: list[str] = []
    while len(got) < n:
        frame, addr = s.recvfrom(2048)
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        ihl = (frame[14] & 0x0F) * 4
        if frame[23] == 1 and frame[30:34] == dst and frame[14 + ihl] == 8:
            got.append(frame[6:12].hex(":"))
    return got
