"""What the controller's core tells the orchestrator, as past-tense events.

The driver stamps each with the wall clock when it is handed over and POSTs
`to_json(at)` to /api/v1/sdn/events (api.py validates each kind: HostSeen,
FlowSnapshot, InstallError, InstanceMoved, Installed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netfate.orchestrator.sdn.reconcile import FlowEntry


@dataclass(frozen=True)
class HostSeen:
    """A switch raised a packet-in for a frame on an access port."""

    node: str
    """Node whose bridge raised it."""
    port: str
    """Port name on that bridge (its number when the view has no name for it)."""
    ofport: int
    """OpenFlow port number."""
    mac: str
    """Source MAC address of the frame."""
    ip: str | None
    """Source IPv4 address (or ARP sender address), if the frame had one."""
    known_as: str | None
    """The name the view has for this MAC, if any."""

    def to_json(self, at: float) -> dict[str, Any]:
        return {
            "kind": "host_seen",
            "node": self.node,
            "port": self.port,
            "ofport": self.ofport,
            "mac": self.mac,
            "ip": self.ip,
            "time": at,
            "known_as": self.known_as,
        }


@dataclass(frozen=True)
class TableRead:
    """A switch's table was read back (counters; changed or not posted for a while)."""

    node: str
    dpid: int
    flows: list[FlowEntry]
    """Every flow it holds, ours or not."""
    ports: list[dict[str, Any]]
    """Port counters."""
    groups: int
    """How many groups it holds."""

    def to_json(self, at: float) -> dict[str, Any]:
        return {
            "kind": "flows",
            "node": self.node,
            "dpid": f"{self.dpid:016x}",
            "time": at,
            "flows": [e.to_json() for e in self.flows],
            "ports": self.ports,
            "groups": self.groups,
        }


@dataclass(frozen=True)
class FlowsRefused:
    """A switch refused flows of these intents; they are kept off it until the view
    or the intents change (all or nothing)."""

    node: str
    intents: list[str]
    """Ids of the intents concerned, sorted."""
    errors: list[str]
    """The switch's OpenFlow errors (at most ten)."""

    def to_json(self, at: float) -> dict[str, Any]:
        return {
            "kind": "install_error",
            "node": self.node,
            "intents": self.intents,
            "errors": self.errors,
            "time": at,
        }


@dataclass(frozen=True)
class InstanceMoved:
    """An instance announced itself on another of its ports (a migration's cut-over)
    and every switch now steers to it there."""

    instance: str
    node: str
    ofport: int
    install_ms: float
    """From the announcement's packet-in to the last switch's confirmation."""

    def to_json(self, at: float) -> dict[str, Any]:
        return {
            "kind": "instance_moved",
            "instance": self.instance,
            "node": self.node,
            "ofport": self.ofport,
            "time": at,
            "install_ms": round(self.install_ms, 3),
        }


@dataclass(frozen=True)
class VersionInstalled:
    """Every switch of the view holds the flows of this view version."""

    version: str

    def to_json(self, at: float) -> dict[str, Any]:
        return {"kind": "installed", "version": self.version, "time": at}


Report = HostSeen | TableRead | FlowsRefused | InstanceMoved | VersionInstalled
