"""A real SQLite database with the catalog's tables, a topology loaded and every
node up (what the catalog's unit tests start from)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from netfate.model.topology import Topology
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.orchestrator.nfv.topology import load_topology
from netfate.services.catalog import SERVICE
from netfate.store.db import Database
from netfate.store.tables import NodeRow

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
    d = Database(f"sqlite:///{directory}/o.db")
    assert SERVICE.migrations is not None
    d.migrate([SERVICE.migrations])
    with d.session() as s:
        load_topology(s, Topology.from_dict(topology))
        for n in s.scalars(select(NodeRow)):
            n.status = "up"
        nfv.ensure_descriptors(s)
    return d
