"""The pre-deploy policy over the database: budgets, demand, and the plan per node.

The policy itself is engine/predeploy.py (pure); this module reads its inputs
(each node's `predeploy` budget, the instances created per node and function) and
turns a node's plan into the part of its desired state its agent acts on:
`predeploy: {"images": [...], "standbys": {function: n}}`.

A budget comes from one of two places, recorded with it as `set_by`: the topology
file (a node's `predeploy:`, applied by nfv/topology.py on each load) or the
operator (`PUT /nodes/NODE/predeploy`). The operator's wins: a load, even of the
same file again, leaves it alone, and an operator's 0 and 0 is kept as such (not
erased) so that a reload does not bring the file's budget back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from netfate.orchestrator.engine import predeploy as policy
from netfate.orchestrator.nfv.errors import NotFound
from netfate.store.tables import DescriptorRow, InstanceRow, MigrationRow, NodeRow


def budget_of(row: NodeRow) -> policy.Budget | None:
    """The node's budget, or None when the operator set none (nothing pre-deployed)."""
    b = row.predeploy or {}
    mb, standbys = float(b.get("storage_mb", 0.0)), int(b.get("standbys", 0))
    if mb <= 0 and standbys <= 0:  # none, or an operator's 0 and 0
        return None
    return policy.Budget(mb, standbys)


OPERATOR = "operator"
TOPOLOGY = "topology"


def set_by(row: NodeRow) -> str | None:
    """Who set the node's budget: OPERATOR, TOPOLOGY, or None (nobody). A budget
    stored before `set_by` was recorded could only have come from the operator."""
    b = row.predeploy or {}
    if not b:
        return None
    return str(b.get("set_by", OPERATOR))


def apply_file_budget(row: NodeRow, storage_mb: float | None, standbys: int) -> bool:
    """A topology load's budget for the node (`storage_mb` None: the file sets none).
    The operator's budget stays; the file's replaces the file's. True when the
    node's budget changed (its agent must hear it)."""
    if set_by(row) == OPERATOR:
        return False
    new: dict[str, Any] = {}
    if storage_mb is not None:
        new = {"storage_mb": storage_mb, "standbys": standbys, "set_by": TOPOLOGY}
    if (row.predeploy or {}) == new:
        return False
    row.predeploy = new
    return True


def demand(session: Session) -> dict[tuple[str, str], int]:
    """What was asked of each node, per (node, function): the instances created
    there (gone ones count) and the migrations into it (a move in starts a copy
    there, as a create does: a firewall that follows its user is created once and
    then only moves). An instance counts where it was first placed: its `node` now
    may be where it moved since, so creates are counted by the node of its first
    copy, which is its node minus the moves it made."""
    out: dict[tuple[str, str], int] = {}
    fn = (
        select(InstanceRow.id, InstanceRow.node, DescriptorRow.function)
        .join(DescriptorRow, DescriptorRow.name == InstanceRow.descriptor)
        .subquery()
    )
    first = (
        select(MigrationRow.instance, func.min(MigrationRow.id).label("mid"))
        .group_by(MigrationRow.instance)
        .subquery()
    )
    origin = func.coalesce(MigrationRow.source, fn.c.node)
    created = (
        select(origin, fn.c.function, func.count())
        .select_from(fn)
        .outerjoin(first, first.c.instance == fn.c.id)
        .outerjoin(MigrationRow, MigrationRow.id == first.c.mid)
        .group_by(origin, fn.c.function)
    )
    moved_in = (
        select(MigrationRow.target, fn.c.function, func.count())
        .join(fn, fn.c.id == MigrationRow.instance)
        .group_by(MigrationRow.target, fn.c.function)
    )
    for q in (created, moved_in):
        for n, f, c in session.execute(q):
            out[(str(n), str(f))] = out.get((str(n), str(f)), 0) + int(c)
    return out


def sizes(functions: set[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for fn in functions:
        mb = policy.image_mb(fn)
        if mb is not None:
            out[fn] = mb
    return out


def plans(session: Session) -> dict[str, policy.NodePlan]:
    """The plan of every node with a budget."""
    budgets = {
        r.name: b for r in session.scalars(select(NodeRow)) if (b := budget_of(r)) is not None
    }
    if not budgets:
        return {}
    d = demand(session)
    return policy.plan(budgets, d, sizes({f for _, f in d}))


def node_part(session: Session, row: NodeRow) -> dict[str, Any] | None:
    """The `predeploy` part of a node's desired state, None without a budget."""
    budget = budget_of(row)
    if budget is None:
        return None
    d = demand(session)
    p = policy.plan_node(row.name, budget, d, sizes({f for _, f in d}))
    return {"images": p.kept, "standbys": dict(p.standbys)}


def set_budget(session: Session, node: str, storage_mb: float, standbys: int) -> set[str]:
    """Record an operator's budget for a node and bump its revision, so its agent
    hears it at once. 0 MB and 0 standbys: no pre-deployment (its agent stops its
    standbys), kept as the operator's so a topology reload does not undo it."""
    row = session.get(NodeRow, node)
    if row is None:
        raise NotFound(f"unknown node {node!r}")
    row.predeploy = {"storage_mb": storage_mb, "standbys": standbys, "set_by": OPERATOR}
    # coordinator.bump's atomic increment (imported from there it would be a circle:
    # the coordinator's desired_state calls node_part here).
    session.execute(
        update(NodeRow)
        .where(NodeRow.name == node)
        .values(revision=NodeRow.revision + 1)
        .execution_options(synchronize_session="fetch")
    )
    return {node}


def view(p: policy.NodePlan, row: NodeRow | None) -> dict[str, Any]:
    """A node's plan for the operator, with the why of each decision and what its
    agent last reported of its pool (`resources.standbys`: function -> ready)."""
    res = (row.resources or {}) if row is not None else {}
    return {
        "node": p.node,
        "budget": {"storage_mb": p.budget.storage_mb, "standbys": p.budget.standbys},
        "set_by": set_by(row) if row is not None else None,
        "used_mb": round(p.used_mb, 6),
        "images": [
            {"function": c.function, "size_mb": c.size_mb, "kept": c.kept, "why": c.reason}
            for c in p.images
        ],
        "standbys": dict(p.standbys),
        "standbys_why": list(p.standby_reasons),
        "standbys_ready": res.get("standbys", {}),
    }
