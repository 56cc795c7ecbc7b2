"""Each node's used CPU and memory, kept in its row (`nodes.used_cpu`,
`nodes.used_memory_mb`) by the transaction that changes them.

What a node uses: the CPU and memory of its live instances (model/lifecycle.py
LIVE), plus what each open migration to it reserves (its instance's figures) until
the migration ends. Placement reads every node's room at each create; summing
10,000 instances for it cost more than the rest of a create (issue 15), so the sums
are kept instead of recomputed.

How they are kept: before each ORM flush, `_before_flush` looks at the instances and
migrations the flush adds, changes or deletes, computes what each one counted where
before (its values at the last flush or load) and what it counts now, and adds the
difference to each node with one atomic `UPDATE nodes SET used_cpu = used_cpu + d`
per node, in node-name order, in the same transaction. The columns that decide it
(an instance's node, state, cpu and memory; a migration's target and phase) have
`active_history`, so their old values are known even when they were not loaded.
Every such change is already made holding the node's row lock (nfv/coordinator.py),
so the UPDATE waits for no one new.

Writes that bypass the ORM (a benchmark's bulk INSERT, a migration's plain SQL) are
not seen: call `recount` afterwards. `recompute` is the ground truth; the
coordinator's `violations` reports any node whose kept figures differ from it.
CPU is a float: the kept sum and the recomputed one may differ in the last bits
(`CPU_SLACK`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, event, func, inspect, select, union_all, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from netfate.model.lifecycle import LIVE, OPEN_MIGRATIONS
from netfate.store.tables import InstanceRow, MigrationRow, NodeRow

LIVE_STATES = frozenset(s.value for s in LIVE)
OPEN_PHASES = frozenset(p.value for p in OPEN_MIGRATIONS)
CPU_SLACK = 1e-6
"""How far the kept CPU may be from the recomputed sum (float rounding) and be equal."""

Deltas = dict[str, list[float]]  # node -> [cpu, memory_mb]
_INSTANCE_KEYS = ("node", "state", "cpu", "memory_mb")
_MIGRATION_KEYS = ("target", "phase")


def _before(obj: Any, key: str) -> Any:
    """The attribute's value at the last flush or load (None for a new object)."""
    hist = inspect(obj).attrs[key].history
    if hist.deleted:
        return hist.deleted[0]
    if hist.unchanged:
        return hist.unchanged[0]
    return None


def _changed(obj: Any, keys: tuple[str, ...]) -> bool:
    attrs = inspect(obj).attrs
    return any(attrs[k].history.has_changes() for k in keys)


def _add(d: Deltas, node: str | None, cpu: float | None, mem: int | None, sign: int) -> None:
    if node is None:
        return
    cell = d.setdefault(node, [0.0, 0.0])
    cell[0] += sign * float(cpu or 0.0)
    cell[1] += sign * int(mem or 0)


def _instance(d: Deltas, inst: InstanceRow, *, new: bool, deleted: bool) -> None:
    if not new and _before(inst, "state") in LIVE_STATES:
        b = _before
        _add(d, b(inst, "node"), b(inst, "cpu"), b(inst, "memory_mb"), -1)
    if not deleted and inst.state in LIVE_STATES:
        _add(d, inst.node, inst.cpu, inst.memory_mb, +1)


def _migration(
    session: Session, d: Deltas, m: MigrationRow, pending: dict[str, InstanceRow], *, new: bool,
    deleted: bool,
) -> None:  # fmt: skip
    # An instance's cpu and memory never change once it is created: the reservation
    # is its current figures, before and after.
    inst = pending.get(m.instance) or session.get(InstanceRow, m.instance)
    if inst is None:
        return
    if not new and _before(m, "phase") in OPEN_PHASES:
        _add(d, _before(m, "target"), inst.cpu, inst.memory_mb, -1)
    if not deleted and m.phase in OPEN_PHASES:
        _add(d, m.target, inst.cpu, inst.memory_mb, +1)


def deltas(session: Session) -> Deltas:
    """What the pending flush changes in each node's use (nothing yet written)."""
    d: Deltas = {}
    pending = {o.id: o for o in session.new if isinstance(o, InstanceRow)}
    for o in session.new:
        if isinstance(o, InstanceRow):
            _instance(d, o, new=True, deleted=False)
        elif isinstance(o, MigrationRow):
            _migration(session, d, o, pending, new=True, deleted=False)
    for o in session.dirty:
        if isinstance(o, InstanceRow) and _changed(o, _INSTANCE_KEYS):
            _instance(d, o, new=False, deleted=False)
        elif isinstance(o, MigrationRow) and _changed(o, _MIGRATION_KEYS):
            _migration(session, d, o, pending, new=False, deleted=False)
    for o in session.deleted:
        if isinstance(o, InstanceRow):
            _instance(d, o, new=False, deleted=True)
        elif isinstance(o, MigrationRow):
            _migration(session, d, o, pending, new=False, deleted=True)
    return d


_ADD = (
    update(NodeRow)
    .where(NodeRow.name == bindparam("d_name"))
    .values(
        used_cpu=NodeRow.used_cpu + bindparam("d_cpu"),
        used_memory_mb=NodeRow.used_memory_mb + bindparam("d_mem"),
    )
)
"""Run on the connection: plain SQL, the session's copies untouched."""


def _before_flush(session: Session, _ctx: Any, _instances: Any) -> None:
    d = deltas(session) if session.new or session.dirty or session.deleted else {}
    if not d:
        return
    conn = session.connection()
    mapper = inspect(NodeRow)
    for node, (cpu, mem) in sorted(d.items()):
        if cpu == 0.0 and mem == 0:
            continue
        # Plain SQL (the ORM's UPDATE with "evaluate" cost several times more); the
        # session's copy of the row, if it holds one, gets the new figures too (no
        # reload), as "evaluate" gave it.
        conn.execute(_ADD, {"d_name": node, "d_cpu": cpu, "d_mem": int(mem)})
        row = session.identity_map.get(mapper.identity_key_from_primary_key((node,)))
        if row is not None:
            loaded = row.__dict__
            for key, add in (("used_cpu", cpu), ("used_memory_mb", int(mem))):
                if key in loaded:
                    set_committed_value(row, key, loaded[key] + add)


def track(factory: Any) -> None:
    """Keep the nodes' use in every session `factory` makes (Database does it)."""
    event.listen(factory, "before_flush", _before_flush)


def recompute(session: Session, node: str | None = None) -> dict[str, tuple[float, int]]:
    """CPU and memory used per node, summed from the instances and migrations (the
    ground truth the kept columns must equal); one round trip."""
    q = select(InstanceRow.node, func.sum(InstanceRow.cpu), func.sum(InstanceRow.memory_mb)).where(
        InstanceRow.state.in_(sorted(LIVE_STATES))
    )
    # A migration reserves room at its target until it ends.
    mq = (
        select(MigrationRow.target, func.sum(InstanceRow.cpu), func.sum(InstanceRow.memory_mb))
        .join(InstanceRow, InstanceRow.id == MigrationRow.instance)
        .where(MigrationRow.phase.in_(sorted(OPEN_PHASES)))
    )
    if node is not None:
        q = q.where(InstanceRow.node == node)
        mq = mq.where(MigrationRow.target == node)
    both = union_all(q.group_by(InstanceRow.node), mq.group_by(MigrationRow.target))
    used: dict[str, tuple[float, int]] = {}
    for name, cpu, mem in session.execute(both).all():
        c, m = used.get(name, (0.0, 0))
        used[name] = (c + float(cpu or 0), m + int(mem or 0))
    return used


def recount(session: Session) -> int:
    """Set every node's kept use to the recomputed sums (after writes that bypassed the
    ORM); returns how many nodes changed."""
    used = recompute(session)
    changed = 0
    rows = session.execute(select(NodeRow.name, NodeRow.used_cpu, NodeRow.used_memory_mb)).all()
    for name, cpu, mem in rows:
        want_cpu, want_mem = used.get(name, (0.0, 0))
        if abs(cpu - want_cpu) > CPU_SLACK or mem != want_mem:
            session.execute(
                update(NodeRow)
                .where(NodeRow.name == name)
                .values(used_cpu=want_cpu, used_memory_mb=want_mem)
                .execution_options(synchronize_session="evaluate")
            )
            changed += 1
    return changed


__all__ = ["CPU_SLACK", "recompute", "recount", "track"]
