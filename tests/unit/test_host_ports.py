"""The port a testbed hands to a process that listens later is one the kernel never
hands out by itself (outgoing connections, bind to port 0), so nothing but another
listener can take it before that process binds."""

from __future__ import annotations

import socket
from pathlib import Path

from netfate.host.ports import free_port


def _ephemeral() -> tuple[int, int]:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return int(low), int(high)


def test_the_port_is_below_the_ephemeral_range_and_free() -> None:
    low, _ = _ephemeral()
    picks = {free_port() for _ in range(50)}
    assert all(1024 <= p < low for p in picks), sorted(picks)
    assert len(picks) > 40  # random, so two runs picking at once rarely collide
    with socket.socket() as s:
        s.bind(("127.0.0.1", picks.pop()))


def test_a_port_in_use_is_not_picked_again() -> None:
    """Hold many of the range's ports: none of the held ones comes back."""
    held: list[socket.socket] = []
    try:
        for _ in range(200):
            s = socket.socket()
            s.bind(("127.0.0.1", free_port()))
            s.listen()
            held.append(s)
        taken = {s.getsockname()[1] for s in held}
        assert len(taken) == 200
        assert free_port() not in taken
    finally:
        for s in held:
            s.close()
