"""A node's power switch: drained, then off; back on for placement.

    power_off(node, why)          one transaction, under the node's lock:
      every instance there must be running (it migrates away) or already
      migrating elsewhere (the catalog moves its own chains first, where its
      engine places them); anything else (starting, stopping, failed, a
      migration coming in) refuses, with the reason, and nothing changes
      -> each running instance gets a target: the least-loaded node that is up,
         on and has room (room taken by earlier picks counted); one that fits
         nowhere refuses the whole drain (NotDrainable, 409)
      -> draining (nothing new placed there), one make-before-break migration
         each (never two copies: the platform's migration), NodeDraining
    settle()                      the watchdog's pass
      draining and nothing left there          -> off (NodePoweredOff)
      draining, something left, no move open   -> a move failed: on again
                                                  (NodeDrainFailed, the reason)
    power_on(node, why)           -> on (NodePoweredOn); a drain under way is
                                     given up (its moves complete, which is fine)

Placement (coordinator.room, candidates) offers only nodes that are on. What
"off" means on the emulated testbed: see model/lifecycle.py NodePower.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from netfate.model import events as ev
from netfate.model.lifecycle import (
    OPEN_MIGRATIONS,
    POWER_TRANSITIONS,
    InstanceState,
    NodePower,
)
from netfate.orchestrator.engine import NoPlacement, PlacementRequest, place
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.orchestrator.nfv.errors import Conflict, NotFound
from netfate.store.events import record
from netfate.store.tables import InstanceRow, MigrationRow, NodeRow

S = InstanceState


class NotDrainable(Conflict):
    """The node cannot be emptied now; the message says what holds it."""


@dataclass(frozen=True)
class Drain:
    """What a power-off asked for."""

    node: str
    power: str
    """draining, or off at once (nothing was there)."""
    moves: dict[str, str]
    """Instance -> target, for the instances that migrate away now."""
    leaving: list[str]
    """Instances already migrating away."""


def _set(session: Session, row: NodeRow, target: NodePower, why: str) -> None:
    current = NodePower(row.power)
    if target not in POWER_TRANSITIONS[current]:
        raise Conflict(f"node {row.name} cannot go from {current} to {target}")
    row.power = target.value
    row.power_why = why[:2000]


def plan_drain(
    session: Session, node: str, moves: Mapping[str, str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """Where each instance on `node` would go (instance -> target; `moves`: targets
    the caller chose, checked for room) and which are already leaving; NotDrainable
    when something cannot move. Writes nothing."""
    moves = dict(moves or {})
    incoming = session.scalar(
        select(func.count())
        .select_from(MigrationRow)
        .where(
            MigrationRow.target == node,
            MigrationRow.phase.in_([p.value for p in OPEN_MIGRATIONS]),
        )
    )
    if incoming:
        raise NotDrainable(f"{node}: {incoming} migration(s) to it under way; try when they end")
    insts = session.scalars(
        select(InstanceRow)
        .where(InstanceRow.node == node, InstanceRow.state != S.GONE.value)
        .order_by(InstanceRow.id)
        .execution_options(populate_existing=True)
    ).all()
    others = {c.node: c for c in nfv.candidates(session) if c.node != node}
    out: dict[str, str] = {}
    leaving: list[str] = []
    for inst in insts:
        if inst.state == S.MIGRATING.value and any(
            m.source == node for m in nfv._open_migrations(session, inst.id)
        ):
            leaving.append(inst.id)
            continue
        if inst.state != S.RUNNING.value:
            raise NotDrainable(
                f"{node}: instance {inst.id} ({inst.descriptor}) is {inst.state}; "
                "only running instances can be moved off (destroy it, or wait until it settles)"
            )
        req = PlacementRequest(cpu=inst.cpu, memory_mb=inst.memory_mb)
        want = moves.get(inst.id)
        pool = [others[want]] if want in others else list(others.values())
        if want is not None and want not in others:
            raise NotDrainable(f"{node}: instance {inst.id}: unknown target {want!r}")
        try:
            target = place(req, pool, nfv.EMPTY_GRAPH, "least-loaded").node
        except NoPlacement as e:
            raise NotDrainable(
                f"{node}: instance {inst.id} ({inst.descriptor}, {inst.cpu:g} CPU, "
                f"{inst.memory_mb} MiB) fits on no other node: {e}"
            ) from None
        c = others[target]
        others[target] = replace(
            c, free_cpu=c.free_cpu - inst.cpu, free_memory_mb=c.free_memory_mb - inst.memory_mb
        )
        out[inst.id] = target
    return out, leaving


def power_off(session: Session, node: str, why: str) -> tuple[Drain, set[str]]:
    """Drain `node` and switch it off (the module docstring); returns what was asked
    and the nodes to wake. Refused (NotDrainable) with nothing changed."""
    row = nfv.lock_nodes(session, node).get(node)
    if row is None:
        raise NotFound(f"unknown node {node!r}")
    if row.power != NodePower.ON.value:
        return Drain(node, row.power, {}, []), set()  # asked twice: the first stands
    planned, leaving = plan_drain(session, node)
    touched: set[str] = set()
    if not planned and not leaving:
        _set(session, row, NodePower.OFF, why)
        record(session, ev.NodePoweredOff(node, why))
        return Drain(node, row.power, {}, []), touched
    _set(session, row, NodePower.DRAINING, why)
    for iid, target in planned.items():
        touched |= nfv.migrate_instance(session, iid, target)[1]
    record(session, ev.NodeDraining(node, why, planned))
    return Drain(node, row.power, planned, leaving), touched


def power_on(session: Session, node: str, why: str) -> set[str]:
    row = nfv.lock_nodes(session, node).get(node)
    if row is None:
        raise NotFound(f"unknown node {node!r}")
    if row.power == NodePower.ON.value:
        return set()
    _set(session, row, NodePower.ON, why)
    record(session, ev.NodePoweredOn(node, why))
    return {node}


def settle(session: Session) -> list[str]:
    """Draining nodes whose drain ended: off, or on again when a move failed (the
    instance kept running there: nothing lost). Returns the nodes changed."""
    changed = []
    names = session.scalars(
        select(NodeRow.name).where(NodeRow.power == NodePower.DRAINING.value).order_by(NodeRow.name)
    ).all()
    for name in names:
        row = nfv.lock_nodes(session, name).get(name)
        if row is None or row.power != NodePower.DRAINING.value:
            continue
        left = session.scalars(
            select(InstanceRow)
            .where(InstanceRow.node == name, InstanceRow.state != S.GONE.value)
            .order_by(InstanceRow.id)
        ).all()
        if not left:
            _set(session, row, NodePower.OFF, row.power_why)
            record(session, ev.NodePoweredOff(name, row.power_why))
            changed.append(name)
            continue
        if any(i.state == S.MIGRATING.value for i in left):
            continue  # still moving
        failed = session.scalars(
            select(MigrationRow)
            .where(MigrationRow.source == name, MigrationRow.instance.in_([i.id for i in left]))
            .order_by(MigrationRow.id.desc())
            .limit(1)
        ).first()
        cause = f": {failed.reason}" if failed is not None and failed.reason else ""
        reason = f"drain given up: {left[0].id} ({left[0].state}) is still there{cause}"[:2000]
        _set(session, row, NodePower.ON, reason)
        record(session, ev.NodeDrainFailed(name, reason))
        changed.append(name)
    return changed
