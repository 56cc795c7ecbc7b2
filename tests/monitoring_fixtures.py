"""A node's last samples as an agent's report leaves them, on a small topology (the
monitoring tests of the platform and of the catalog share it)."""

from __future__ import annotations

import time

from netfate.store.db import Database
from netfate.store.tables import NodeRow

TOPO = {
    "name": "mon",
    "nodes": {
        "cpe1": {"kind": "cpe", "lan": "192.168.1.0/24", "cpu": 1, "memory": "512MiB"},
        "pe1": {"kind": "pe", "lan": "10.10.0.0/24", "cpu": 4, "memory": "4096MiB"},
    },
    "links": [{"a": "cpe1", "b": "pe1", "delay": "1ms", "rate": "100Mbit"}],
}


def report(db: Database, node: str, cpu_pct: float, rss_mb: float, tx_mbps: float) -> None:
    """What an agent's report leaves in the node's row (agent/report.py's resources)."""
    with db.session() as s:
        row = s.get(NodeRow, node)
        assert row is not None
        peer = "pe1" if node == "cpe1" else "cpe1"
        row.resources = {
            "instance_cpu_pct": cpu_pct, "instance_rss_mb": rss_mb, "at": time.time(),
            "links": {peer: {"rx_bytes": 1, "tx_bytes": 2, "tx_mbps": tx_mbps}},
        }  # fmt: skip
        s.commit()
