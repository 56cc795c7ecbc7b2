"""Load a topology into the database (nodes, LANs, links, hosts).

Loading again with a changed file updates in place: nodes keep their status and
agents; a node that still has live instances cannot be removed. A node's
`predeploy:` becomes its pre-deploy budget unless the operator set one through the
API (nfv/predeploy.py: the operator's wins, on every reload).
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from netfate.model.lifecycle import LIVE
from netfate.model.topology import Topology
from netfate.orchestrator.nfv import predeploy
from netfate.orchestrator.nfv.coordinator import lock_nodes
from netfate.orchestrator.nfv.errors import Conflict
from netfate.store.tables import (
    HostRow,
    InstanceRow,
    LanRow,
    LinkRow,
    NodeRow,
    PortRow,
    TopologyRow,
)


def load_topology(session: Session, topo: Topology) -> set[str]:
    names = list(topo.nodes)
    # Every node: none may get an instance while we decide whether it can go, and
    # LANs (whose addresses creates allocate) are replaced.
    lock_nodes(session, *session.scalars(select(NodeRow.name)).all())
    live = [s.value for s in LIVE]
    gone = [n.name for n in session.scalars(select(NodeRow)) if n.name not in topo.nodes]
    for name in gone:
        busy = session.scalars(
            select(InstanceRow.id).where(InstanceRow.node == name, InstanceRow.state.in_(live))
        ).first()
        if busy is not None:
            raise Conflict(f"node {name!r} still runs instance {busy}; destroy it first")
    session.execute(delete(HostRow))
    session.execute(delete(LinkRow))
    session.execute(delete(LanRow))
    for name in gone:
        session.execute(delete(PortRow).where(PortRow.node == name))
        session.execute(delete(NodeRow).where(NodeRow.name == name))
    for name in names:
        spec = topo.nodes[name]
        row = session.get(NodeRow, name)
        if row is None:
            row = NodeRow(name=name, status="unknown", revision=0, resources={})
            session.add(row)
        row.kind = str(spec.kind)
        row.cpu = float(spec.cpu)
        row.memory_mb = int(spec.memory_mb)
        row.datapath_id = f"{spec.datapath_id:016x}"
        pre = spec.predeploy
        changed = predeploy.apply_file_budget(
            row, pre.storage_mb if pre else None, pre.standbys if pre else 0
        )
        if changed:  # its agent hears the new plan (the lock above is held)
            row.revision = (row.revision or 0) + 1
    session.flush()
    for name in names:
        for lan in topo.nodes[name].lans:
            net = ipaddress.ip_network(lan)
            session.add(LanRow(node=name, subnet=str(net), gateway=str(next(net.hosts()))))
    for link in topo.links:
        session.add(
            LinkRow(
                a=link.a, b=link.b, rate_bps=link.rate_bps, delay_s=link.delay_s, loss=link.loss
            )
        )
    for hname, h in topo.hosts.items():
        session.add(
            HostRow(
                name=hname,
                node=h.node,
                ip=str(h.ip) if h.ip else None,
                mac=h.mac,
                kind=h.kind,
            )
        )
    doc: dict[str, Any] = topo.to_dict()
    trow = session.get(TopologyRow, 1)
    if trow is None:
        session.add(TopologyRow(id=1, name=topo.name, document=doc, loaded_at=time.time()))
    else:
        trow.name, trow.document, trow.loaded_at = topo.name, doc, time.time()
    return set(names)
