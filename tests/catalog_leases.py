"""DHCP leases as the platform stores them for the catalog's where-is service: a
running function on a node whose dnsmasq's lease file is in its stats (as the vHG
and the CPE portal report it, netfate/vnf/leasefile.py, and its agent stores it)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.orm import Session

from netfate.store.tables import InstanceRow

LEASE_S = 3600
HOMES: dict[str, Any] = {
    "name": "two-homes",
    "nodes": {
        "cpe1": {"kind": "cpe", "lan": "192.168.1.0/24"},
        "cpe2": {"kind": "cpe", "lan": "192.168.2.0/24"},
    },
    "links": [{"a": "cpe1", "b": "cpe2", "delay": "5ms"}],
}
"""Two homes 5 ms apart: a block within 5 ms of its user follows them."""


def dhcp_server(
    s: Session, iid: str, node: str, lease_file: str = "", stats: dict[str, Any] | None = None
) -> InstanceRow:
    """The function's row, running on `node`; its stats `stats` (what it reported) or
    a lease file alone."""
    now = time.time()
    if stats is None:
        stats = {"dhcp": {"running": True, "lease_file": lease_file, "lease_seconds": LEASE_S}}
    row = InstanceRow(
        id=iid, name=f"vhg-{node}", descriptor="forwarder", node=node, state="running",
        mac="02:00:00:00:99:01", config={}, cpu=0.1, memory_mb=64, created_at=now,
        updated_at=now, stats=stats,
    )  # fmt: skip
    s.add(row)
    s.flush()
    return row


def lease(mac: str, ip: str, granted: float) -> str:
    """A dnsmasq lease line granted at `granted` (expiry = granted + length)."""
    return f"{int(granted) + LEASE_S} {mac} {ip} phone *\n"
