"""A TCP port to hand to a process that will listen on it later.

Asking the kernel for port 0 and closing the socket gives a port from the ephemeral
range, which the kernel keeps handing out: to every outgoing connection and to every
other bind(port 0). Between the pick and the listener's own bind, any of them can
take it (CI saw an agent's metrics listener fail with EADDRINUSE on a busy machine).
Ports below the ephemeral range are never handed out by the kernel, so a pick there
is only contended by another listener picking the same way.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_SPAN = 12000
"""How far below the ephemeral range to pick (default range 32768-60999 gives 20768-32767)."""


def _below_ephemeral() -> tuple[int, int]:
    try:
        low = int(_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return max(1024, low - _SPAN), max(1025, low)


def free_port(host: str = "127.0.0.1", tries: int = 64) -> int:
    """A TCP port free on `host` now, outside the kernel's ephemeral range."""
    lo, hi = _below_ephemeral()
    rng = random.SystemRandom()
    for _ in range(tries):
        port = rng.randrange(lo, hi)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    # Everything tried was taken: fall back to the kernel's pick.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
