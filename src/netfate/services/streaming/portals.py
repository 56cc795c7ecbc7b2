"""The viewers' captive portals: a new client signs in at the front-end first.

As in the paper, a new client's web traffic is first re-routed to the front-end for
authentication. The service starts, through the platform's coordinator (as it
starts its own functions, reconcile.py), the firewall service's captive portal
(``captive-portal``) at each viewers' PE the operator names in
``NETFATE_STREAMING_PORTALS`` (``pe2,pe3``; ``all``: every PE a host is attached
to; unset or empty: none): its walled garden the run's front door, its ``signin``
the front-end's sign-in through the door with the user's app as where to go next.

Each is the loop's function ``portal:NODE`` (a FunctionRow, like the tree's):
created when named, configured again when the door moves, destroyed when no longer
named, created again when the platform lost it. A name that is no PE is skipped
(logged once per step). Making a portal its clients' gateway (what the PE's DHCP
would say) is the network's part, not the service's.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.model.topology import Topology, TopologyError
from netfate.orchestrator.engine.placement import HOSTING_KINDS
from netfate.store.tables import HostRow, NodeRow, TopologyRow

log = logging.getLogger("netfate.streaming")

PORTALS_ENV = "NETFATE_STREAMING_PORTALS"
PORTAL = "captive-portal"
"""The firewall service's function, requested by name through the platform."""
PORT = 80
APP = "/api/v1/streaming/app"
"""Where a client goes once signed in: the user's app (its Discover)."""


def named() -> str:
    """The environment's list of PEs, as given ("" when none)."""
    return os.environ.get(PORTALS_ENV, "").strip()


def pes(session: Session) -> list[str]:
    """The PEs that get a portal: those named that can host it (``all``: every
    hosting node a host is attached to)."""
    raw = named()
    if not raw:
        return []
    hosting = {
        n.name for n in session.scalars(select(NodeRow).where(NodeRow.kind.in_(HOSTING_KINDS)))
    }
    if raw == "all":
        attached = set(session.scalars(select(HostRow.node)))
        return sorted(hosting & attached)
    want = [p.strip() for p in raw.split(",") if p.strip()]
    if unknown := [p for p in want if p not in hosting]:
        log.warning("%s: %s not a PE that can host a portal: skipped", PORTALS_ENV, unknown)
    return sorted({p for p in want if p in hosting})


def door(session: Session) -> str | None:
    """The front door's address, from the loaded topology (None without one)."""
    row = session.get(TopologyRow, 1)
    if row is None:
        return None
    try:
        return str(Topology.from_dict(row.document).door_ip)
    except TopologyError as e:
        log.warning("streaming portals: the stored topology is unreadable: %s", e)
        return None


def configs(session: Session) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """key -> (descriptor, node, config) of the portals wanted now."""
    nodes = pes(session)
    ip = door(session) if nodes else None
    if ip is None:
        return {}
    cfg = {"port": PORT, "garden": [ip], "signin": f"http://{ip}/signin?next={APP}"}
    return {f"portal:{n}": (PORTAL, n, {"node": n, **cfg}) for n in nodes}
