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

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, String, cast, event, func, select, update
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
    forget_budgets(Session.object_session(row))
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


@dataclass(frozen=True)
class Pool:
    """A node's planned warm standbys and the memory each holds."""

    standbys: tuple[tuple[str, int], ...]
    """(function, n) as the plan gives them, in its order."""
    memory_mb: tuple[tuple[str, int], ...]
    """(function, MiB one standby holds): the most any descriptor of it reserves, as
    a take may become any of them."""

    def fit(self, free_mb: int) -> tuple[int, tuple[tuple[str, int], ...]]:
        """With `free_mb` left by the node's instances: (MiB the standbys that fit
        hold, (function, MiB one holds) for each function kept), for placement's
        Candidate (its `free_memory_mb` minus the first, its `standbys` the second)."""
        mem = dict(self.memory_mb)
        kept = policy.fit_standbys(dict(self.standbys), mem, free_mb)
        held = sum(n * mem.get(fn, 0) for fn, n in kept.items())
        return held, tuple((fn, mem.get(fn, 0)) for fn in kept)


def standby_memory(session: Session, functions: set[str]) -> dict[str, int]:
    """Function -> the memory one standby of it holds (the largest a descriptor of it
    reserves)."""
    if not functions:
        return {}
    q = (
        select(DescriptorRow.function, func.max(DescriptorRow.memory_mb))
        .where(DescriptorRow.function.in_(sorted(functions)))
        .group_by(DescriptorRow.function)
    )
    return {str(f): int(m or 0) for f, m in session.execute(q)}


# The nodes with a budget that plans standbys, per database: read once, forgotten
# whenever a budget is written here (set_budget, apply_file_budget: the only
# writers) and again when that transaction ends, so a read between the write and
# its commit is not kept. Placement asks on every create; a query each time cost
# ~0.45 ms on this machine with no budget anywhere.
_BUDGETS: weakref.WeakKeyDictionary[Engine, dict[str, policy.Budget]] = weakref.WeakKeyDictionary()
"""Keyed by the engine itself: two in-memory databases share a URL."""


def _engine(session: Session) -> Engine:
    return session.get_bind().engine


def forget_budgets(session: Session | None) -> None:
    """A budget changes in `session`'s transaction: forget the database's, now and
    when the transaction ends (committed or not)."""
    if session is None:
        _BUDGETS.clear()
        return
    engine = _engine(session)
    _BUDGETS.pop(engine, None)
    for when in ("after_commit", "after_rollback"):
        event.listen(session, when, lambda _s: _BUDGETS.pop(engine, None), once=True)


def _budgets(session: Session) -> dict[str, policy.Budget]:
    engine = _engine(session)
    got = _BUDGETS.get(engine)
    if got is None:
        q = select(NodeRow.name, NodeRow.predeploy).where(cast(NodeRow.predeploy, String) != "{}")
        got = {}
        for name, raw in session.connection().execute(q):
            b = raw or {}
            mb, n = float(b.get("storage_mb", 0.0)), int(b.get("standbys", 0))
            if n > 0 and mb > 0:
                got[str(name)] = policy.Budget(mb, n)
        _BUDGETS[engine] = got
    return got


_POOLS: weakref.WeakKeyDictionary[Engine, tuple[tuple[object, ...], dict[str, Pool]]] = (
    weakref.WeakKeyDictionary()
)


def _inputs_key(session: Session) -> tuple[int, int, int, int]:
    """What the pools' inputs depend on, in one small query: instances are only
    added (a gone one stays) and an instance's first place changes only by a
    migration, so (instances, migrations, the last migration's id) tells when
    `demand` may have changed, and descriptors when a function's memory may have."""
    row = session.execute(
        select(
            select(func.count()).select_from(InstanceRow).scalar_subquery(),
            select(func.count()).select_from(MigrationRow).scalar_subquery(),
            select(func.coalesce(func.max(MigrationRow.id), 0)).scalar_subquery(),
            select(func.count()).select_from(DescriptorRow).scalar_subquery(),
        )
    ).one()
    return (int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def _all_pools(session: Session, budgets: dict[str, policy.Budget]) -> dict[str, Pool]:
    """Every budgeted node's pool, kept per database while its inputs are the same
    (`_inputs_key`, and the budgets). Computing them runs `demand`'s aggregates
    over every instance and migration (~7 ms at 200 instances here); the key is one
    small query. A key read inside a transaction that is then rolled back may match
    a later, different state with the same counts: the plan is then one create's
    demand behind until the next one."""
    key: tuple[object, ...] = (budgets, *_inputs_key(session))
    engine = _engine(session)
    got = _POOLS.get(engine)
    if got is not None and got[0] == key:
        return got[1]
    d = demand(session)
    planned = policy.plan(budgets, d, sizes({f for _, f in d}))
    mem = standby_memory(session, {f for p in planned.values() for f in p.standbys})
    out = {
        n: Pool(tuple(p.standbys.items()), tuple((f, mem.get(f, 0)) for f in p.standbys))
        for n, p in planned.items()
        if p.standbys
    }
    _POOLS[engine] = (key, out)
    return out


def pools(session: Session, names: Sequence[str] | None = None) -> dict[str, Pool]:
    """The planned standby pool of every node with a budget (or of those of `names`):
    what placement counts as used (coordinator.room and candidates). Where none of
    the nodes asked about has a budget (the usual case) this is a dictionary look-up;
    otherwise one small query (`_all_pools`' key), and the policy again when its
    inputs changed."""
    budgets = _budgets(session)
    if not budgets:
        return {}
    if names is not None and not any(n in budgets for n in names):
        return {}
    every = _all_pools(session, budgets)
    if names is None:
        return every
    return {n: every[n] for n in names if n in every}


def fitting_standbys(session: Session, row: NodeRow, p: policy.NodePlan) -> dict[str, int]:
    """The plan's standbys that fit in the memory the node's instances leave (their
    kept use): what its agent keeps and what placement counts (policy.fit_standbys)."""
    mem = standby_memory(session, set(p.standbys))
    return policy.fit_standbys(p.standbys, mem, row.memory_mb - row.used_memory_mb)


def node_part(session: Session, row: NodeRow) -> dict[str, Any] | None:
    """The `predeploy` part of a node's desired state, None without a budget. Its
    standbys are the plan's that fit in the node's memory beside its instances."""
    budget = budget_of(row)
    if budget is None:
        return None
    d = demand(session)
    p = policy.plan_node(row.name, budget, d, sizes({f for _, f in d}))
    return {"images": p.kept, "standbys": fitting_standbys(session, row, p)}


def set_budget(session: Session, node: str, storage_mb: float, standbys: int) -> set[str]:
    """Record an operator's budget for a node and bump its revision, so its agent
    hears it at once. 0 MB and 0 standbys: no pre-deployment (its agent stops its
    standbys), kept as the operator's so a topology reload does not undo it."""
    row = session.get(NodeRow, node)
    if row is None:
        raise NotFound(f"unknown node {node!r}")
    row.predeploy = {"storage_mb": storage_mb, "standbys": standbys, "set_by": OPERATOR}
    forget_budgets(session)
    # coordinator.bump's atomic increment (imported from there it would be a circle:
    # the coordinator's desired_state calls node_part here).
    session.execute(
        update(NodeRow)
        .where(NodeRow.name == node)
        .values(revision=NodeRow.revision + 1)
        .execution_options(synchronize_session="fetch")
    )
    return {node}


def view(session: Session, p: policy.NodePlan, row: NodeRow | None) -> dict[str, Any]:
    """A node's plan for the operator, with the why of each decision, the standbys
    that fit in its memory beside its instances (kept, and counted as used by
    placement) and what its agent last reported of its pool (`resources.standbys`:
    function -> ready)."""
    res = (row.resources or {}) if row is not None else {}
    fit = fitting_standbys(session, row, p) if row is not None else dict(p.standbys)
    why = list(p.standby_reasons)
    if fit != dict(p.standbys):
        why.append(
            f"memory: {sum(fit.values())} of {sum(p.standbys.values())} planned standby(s) "
            "fit beside the node's instances; the others are not kept"
        )
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
        "standbys_fit": fit,
        "standbys_why": why,
        "standbys_ready": res.get("standbys", {}),
    }
