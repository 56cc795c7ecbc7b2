"""What the controller's core tells the orchestrator, as past-tense events.

The driver stamps each with the wall clock when it is handed over and POSTs
`to_json(at)` to /api/v1/sdn/events (api.py validates each kind: HostSeen,
FlowSnapshot, InstallError, InstanceMoved, Installed).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from netfate.orchestrator.sdn.reconcile import FlowEntry


def _event(kind: str, report: Any, at: float) -> dict[str, Any]:
    """A report's fields as they are, with its kind and the time it was handed over."""
    return {"kind": kind, **{f.name: getattr(report, f.name) for f in fields(report)}, "time": at}


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
        return _event("host_seen", self, at)


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
        return _event("install_error", self, at)


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
        return {**_event("instance_moved", self, at), "install_ms": round(self.install_ms, 3)}


@dataclass(frozen=True)
class VersionInstalled:
    """Every switch of the view holds the flows of this view version."""

    version: str

    def to_json(self, at: float) -> dict[str, Any]:
        return _event("installed", self, at)


Report = HostSeen | TableRead | FlowsRefused | InstanceMoved | VersionInstalled
