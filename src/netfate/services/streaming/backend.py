"""The back-end (seed section 3.1): the delivery tree kept in the database.

Each operation reads the network (the platform's nodes and links) and the tree's
row under its lock, applies one tree.py operation, records what it decided in
the platform's event log (each join with its ``why``) and writes the tree back.
The caller commits; the reconcile loop turns the tree into instances.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.orchestrator.engine.placement import HOSTING_KINDS, can_host
from netfate.orchestrator.sdn.tables import SdnFlowSnapshotRow
from netfate.store.events import record_event
from netfate.store.tables import LanRow, LinkRow, NodeRow

from . import portals
from .functions import LIMITS
from .tables import TreeRow
from .tree import Criterion, Event, Limits, LinkSpec, Network, NodeSpec, Tree

DEFAULT_LINK_BPS = 1_000_000_000
"""A link the topology gives no rate (an unshaped veth)."""


def network(session: Session) -> Network:
    """The platform's nodes and links as the tree sees them: a node may send what its
    links carry, hosts functions where the platform runs them (a core node with a
    LAN: forwarders), is an access PE if its kind hosts always, and its switch copies
    (groups ALL) if the SDN controller programs it: the controller has reported its
    flow table."""
    links = list(session.scalars(select(LinkRow)))
    sends: dict[str, float] = {}
    specs = []
    for lk in links:
        rate = float(lk.rate_bps or DEFAULT_LINK_BPS)
        specs.append(LinkSpec(lk.a, lk.b, rate, float(lk.delay_s or 0.0)))
        for n in (lk.a, lk.b):
            sends[n] = sends.get(n, 0.0) + rate
    with_lan = set(session.scalars(select(LanRow.node).distinct()))
    programmed = set(session.scalars(select(SdnFlowSnapshotRow.node)))
    nodes = [
        NodeSpec(
            n.name,
            n.kind,
            float(n.cpu),
            sends.get(n.name, DEFAULT_LINK_BPS),
            hosts=can_host(n.kind, n.name in with_lan),
            edge=n.kind in HOSTING_KINDS,
            copies=n.name in programmed,
        )
        for n in session.scalars(select(NodeRow))
    ]
    return Network(nodes, specs)


def _read(session: Session, lock: bool = False) -> TreeRow | None:
    q = select(TreeRow).where(TreeRow.id == 1)
    if lock:
        q = q.with_for_update()
    return session.scalars(q.execution_options(populate_existing=True)).first()


def _locked(session: Session) -> TreeRow:
    """The tree's row, locked until the transaction ends (made on first use)."""
    row = _read(session, lock=True)
    if row is None:
        row = TreeRow(
            id=1,
            state={},
            criterion="consolidation",
            grace_s=LIMITS.grace_s,
            updated_at=time.time(),
        )
        session.add(row)
        session.flush()
    return row


def limits(grace_s: float) -> Limits:
    return Limits(**{**asdict(LIMITS), "grace_s": grace_s})


def load(session: Session, *, lock: bool = True) -> Tree:
    """The tree (locked for this transaction when ``lock``)."""
    row = _locked(session) if lock else _read(session)
    reserved = portals.reserved_cpu(session)  # the viewers' portals take their PEs' CPU
    if row is None:
        return Tree(network(session), LIMITS, reserved_cpu=reserved)
    t = Tree.load(network(session), limits(row.grace_s), row.state or {}, reserved)
    t.criterion = row.criterion  # type: ignore[assignment]
    return t


SECRET = "secret"
"""The tree row's key of the service's token key (the storage's and the edge
streamers' ``secret``: playback tokens), kept beside the tree's state."""


def secret(session: Session) -> str | None:
    """The service's token key, None until it is made (reads never write)."""
    row = _read(session)
    key = (row.state or {}).get(SECRET) if row is not None else None
    return str(key) if key is not None else None


def key(session: Session) -> str:
    """The service's token key, made on first use (a write: the tree's row, locked)."""
    row = _locked(session)
    made = (row.state or {}).get(SECRET)
    if made is None:
        made = secrets.token_hex(24)
        row.state = {**(row.state or {}), SECRET: made}
        session.flush()
    return str(made)


def save(session: Session, t: Tree) -> None:
    row = _locked(session)
    key = (row.state or {}).get(SECRET)
    row.state = t.dump() | ({SECRET: key} if key else {})
    row.criterion = t.criterion
    row.updated_at = time.time()


def settings(session: Session, criterion: Criterion | None, grace_s: float | None) -> Tree:
    row = _locked(session)
    if criterion is not None:
        row.criterion = criterion
    if grace_s is not None:
        row.grace_s = grace_s
    session.flush()
    t = load(session)
    save(session, t)
    return t


def set_portals(session: Session, all_: bool, nodes: list[str]) -> dict[str, Any]:
    """Where the viewers' captive portals are kept (portals.py), as the operator puts
    it (the API checked each PE); the loop starts and releases them."""
    row = _locked(session)
    row.portals = {"all": all_, "pes": sorted(set(nodes))}
    row.updated_at = time.time()
    session.flush()
    return dict(row.portals)


def record(session: Session, events: list[Event]) -> None:
    """The tree's decisions in the platform's event log (``Streaming`` + kind)."""
    for ev in events:
        record_event(session, "Streaming" + type(ev).__name__, asdict(ev))
