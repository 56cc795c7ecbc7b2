"""A real SQLite database with the catalog's tables, a topology loaded and every
node up (what the catalog's unit tests start from), the fog topology, a chain and a fake
coordinator they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from netfate.orchestrator.nfv.errors import NoCapacity
from netfate.services.catalog import SERVICE
from netfate.services.catalog.descriptor import Function
from netfate.store.db import Database
from topology_db import topology_db

FOG: dict[str, Any] = {
    "name": "fog",
    "nodes": {
        "cpe1": {"kind": "cpe", "lan": "192.168.1.0/24", "cpu": 1, "memory": "512MiB"},
        "cpe2": {"kind": "cpe", "lan": "192.168.2.0/24", "cpu": 1, "memory": "512MiB"},
        "pe1": {"kind": "pe", "lan": "10.10.0.0/24", "cpu": 4, "memory": "4096MiB"},
    },
    "hosts": {"laptop1": {"node": "cpe1", "mac": "02:00:00:00:00:a1"}},
    "links": [
        {"a": "cpe1", "b": "pe1", "delay": "5ms", "rate": "100Mbit"},
        {"a": "cpe2", "b": "pe1", "delay": "5ms", "rate": "100Mbit"},
    ],
}
"""Two homes 5 ms from the provider edge, a laptop at the first (the steering tests)."""


def catalog_db(directory: Path, topology: dict[str, Any]) -> Database:
    assert SERVICE.migrations is not None
    return topology_db(directory, topology, [SERVICE.migrations])


TOPO: dict[str, Any] = {
    "name": "fog",
    "nodes": {
        "cpe1": {"kind": "cpe", "lan": "192.168.1.0/24", "cpu": 1, "memory": "512MiB"},
        "cpe2": {"kind": "cpe", "lan": "192.168.2.0/24", "cpu": 1, "memory": "512MiB"},
        "pe1": {"kind": "pe", "lan": "10.10.0.0/24", "cpu": 4, "memory": "4096MiB"},
    },
    "links": [
        {"a": "cpe1", "b": "pe1", "delay": "5ms", "rate": "100Mbit"},
        {"a": "cpe2", "b": "pe1", "delay": "5ms", "rate": "100Mbit"},
    ],
}
FNS = {"counter": Function("counter", 0.1, 64), "forwarder": Function("forwarder", 0.2, 64)}
V1 = """
name: sensor-archive
blocks:
  - {name: collector, function: counter, cpu: 0.2}
  - {name: archive, function: forwarder, storage_mb: 100}
talks: [{from: collector, to: archive, mbps: 1}]
user_mbps: 1
sla: {latency_ms: 5}
"""
V2 = (
    V1.replace("storage_mb: 100", "storage_mb: 200")
    .replace("  - {name: archive", "  - {name: index, function: counter}\n  - {name: archive")
    .replace("talks: [{from: collector, to: archive, mbps: 1}]", "")
)


@dataclass
class FakeCoordinator:
    """Records what the conduit asks; `fail_at` makes the n-th create raise (as the
    platform does when a node filled up meanwhile)."""

    fail_at: int | None = None
    created: list[tuple[str, str]] = field(default_factory=list)
    destroyed: list[str] = field(default_factory=list)
    migrated: list[tuple[str, str]] = field(default_factory=list)
    states: dict[str, tuple[str, str]] = field(default_factory=dict)

    def create(
        self, session: Session, *, descriptor: str, name: str, node: str, cpu: float,
        memory_mb: int,
    ) -> tuple[str, set[str]]:  # fmt: skip
        if self.fail_at is not None and len(self.created) + 1 == self.fail_at:
            raise NoCapacity(f"{node} was filled meanwhile")
        iid = f"i-{len(self.created)}"
        self.created.append((descriptor, node))
        self.states[iid] = ("running", node)
        return iid, {node}

    def destroy(self, session: Session, instance: str) -> set[str]:
        self.destroyed.append(instance)
        self.states[instance] = ("stopping", self.states[instance][1])
        return {self.states[instance][1]}

    def migrate(self, session: Session, instance: str, node: str) -> set[str]:
        self.migrated.append((instance, node))
        src = self.states[instance][1]
        self.states[instance] = ("running", node)  # as if it were already done
        return {src, node}

    def state(self, session: Session, instance: str) -> tuple[str, str] | None:
        return self.states.get(instance)
