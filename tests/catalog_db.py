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
