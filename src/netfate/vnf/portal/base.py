"""What the captive portal's parts share: its sessions, counters and configuration.

The portal (function.py) is three parts over this state: the HTTP front
(front.py: login page, RFC 8908 API, logout), the RADIUS client side (radius.py:
Access-Request, accounting, RFC 5176 Disconnect server) and the nftables set-up
(gate.py). `PortalBase` names what each part may use of the others.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from netfate.proto.radius import AcctStatus, TerminateCause
from netfate.vnf.portal.gate import Gate
from netfate.vnf.portal.radius_client import RadiusClient
from netfate.vnf.runtime import Function


@dataclass
class Session:
    user: str
    ip: str
    mac: str
    session_id: str
    started: float
    timeout: int
    idle_timeout: int


def station(text: str) -> str:
    """A MAC as Calling-Station-Id compares: hex digits only, upper case."""
    return "".join(ch for ch in text.upper() if ch in "0123456789ABCDEF")


def neighbour_mac(ip: str) -> str:
    """The client's MAC from this namespace's ARP table ("" if unknown)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/arp").read_text().splitlines()[1:]:
            f = line.split()
            if len(f) >= 4 and f[0] == ip and f[3] != "00:00:00:00:00:00":
                return f[3]
    return ""


class PortalBase(Function):
    """The state the parts share (set by Portal.__init__)."""

    node: str
    port: int
    address: str
    sessions: dict[str, Session]
    counts: dict[str, int]
    gate: Gate
    auth: RadiusClient | None
    acct: RadiusClient | None

    async def _account(
        self, s: Session, status: AcctStatus, cause: TerminateCause | None = None
    ) -> None:
        """Accounting for `s` (the RADIUS side's)."""
        raise NotImplementedError
