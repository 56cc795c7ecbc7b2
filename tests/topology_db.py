"""A real SQLite database, migrated, with a topology loaded, every node up and the
platform's descriptors (what tests of placement and of the nodes start from)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from netfate.model.topology import Topology
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.orchestrator.nfv.topology import load_topology
from netfate.store.db import Database
from netfate.store.tables import NodeRow


def topology_db(
    directory: Path, topology: dict[str, Any], migrations: Iterable[Path] = ()
) -> Database:
    """`migrations`: services' Alembic folders besides the core's."""
    d = Database(f"sqlite:///{directory}/o.db")
    d.migrate(list(migrations))
    with d.session() as s:
        load_topology(s, Topology.from_dict(topology))
        for n in s.scalars(select(NodeRow)):
            n.status = "up"
        nfv.ensure_descriptors(s)
    return d
