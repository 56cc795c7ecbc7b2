"""Night consolidation (seed section III, issue 15 section 7): under a day/night load
curve, the engine switches a node off when what it hosts fits elsewhere within the
SLAs, and on again when the load comes back.

    consolidate(session, conduit, curve, hour)      one pass, the caller commits
      anything of the catalog still moving, or a node draining -> wait (nothing)
      the plan of what runs now, each node's background CPU plus the curve's at
      `hour` -> eng.rebalance (chains that no longer fit move; then nodes are
      emptied where that saves energy, move costs included)
      -> nodes the plan switches on (the catalog had switched them off): on,
         then the chains moved there
      -> nodes the plan switches off: only where nothing but the catalog's
         instances runs, and the platform's drain would be accepted
         (power.plan_drain); else the node stays on with that reason, and its
         chains stay too; then the chains migrate off (conduit._apply, a decision
         each) and the platform switches it off once empty (nfv/power.py)
      -> each node's decision: a `why`, a NodeConsolidated event, and the last
         ones in catalog_settings

The clock and the curve are injected: tests give explicit hours (and so does
POST /consolidate); the operator may set a compressed day (PUT /night: a curve,
the wall seconds a day lasts), which the catalog's `night` loop follows
(`step`). The curve stands for what the homes and the edge do besides the
catalog's chains (a simulation: on this testbed nothing loads the nodes at night
or by day). A pass that changes nothing (wait, none, a node that again stays on)
is returned but not recorded again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.model.lifecycle import InstanceState, NodePower
from netfate.orchestrator import engine as eng
from netfate.orchestrator.nfv import power
from netfate.store.events import record
from netfate.store.tables import InstanceRow, NodeRow

from . import conduit as cd
from .events import NodeConsolidated
from .tables import CatalogSettingRow

KEEP_DECISIONS = 50
"""How many of the last decisions catalog_settings keeps (the events keep them all)."""


@dataclass(frozen=True)
class LoadCurve:
    """Each node's background CPU (cores) over a day: `low` at night, `high` at the
    peak hour, a cosine in between (eng.diurnal)."""

    nodes: Mapping[str, tuple[float, float]]
    """Node -> (low, high)."""
    peak_hour: float = 15.0

    def at(self, hour: float) -> dict[str, float]:
        return {n: eng.diurnal(hour, lo, hi, self.peak_hour) for n, (lo, hi) in self.nodes.items()}


class Clock(Protocol):
    def hour(self) -> float:
        """The hour of the (simulated) day, in [0, 24)."""
        ...


@dataclass
class CompressedDay:
    """A day of `day_s` wall seconds, starting at `start_hour`."""

    day_s: float
    start_hour: float = 12.0
    now: Callable[[], float] = time.monotonic
    t0: float = field(default=-1.0)

    def __post_init__(self) -> None:
        if self.t0 < 0:
            self.t0 = self.now()

    def hour(self) -> float:
        return (self.start_hour + 24.0 * (self.now() - self.t0) / self.day_s) % 24.0


@dataclass(frozen=True)
class PowerDecision:
    node: str
    action: str
    """off, on, stays on (its drain was refused), or wait (something still moves)."""
    hour: float
    why: str
    moved: dict[str, dict[str, str]] = field(default_factory=dict)
    """Subscription -> block -> node, for the chains this decision moved."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "action": self.action,
            "hour": round(self.hour, 3),
            "why": self.why,
            "moved": self.moved,
        }


def _hhmm(hour: float) -> str:
    m = round(hour * 60) % (24 * 60)
    return f"{m // 60:02d}:{m % 60:02d}"


def _they(sids: list[str]) -> str:
    return f"the chains of {', '.join(sids)}" if sids else "no chain"


def _loads(net: eng.Network, nodes: list[str]) -> str:
    """Each node's background CPU (the curve's included) over its capacity."""
    out = []
    for n in nodes:
        i = net.index[n]
        out.append(f"{n} {float(net.load[i, 0]):.2f}/{float(net.cap[i, 0]):g} CPU")
    return ", ".join(out) or "none"


def consolidate(
    session: Session, conduit: cd.Conduit, curve: LoadCurve, hour: float
) -> tuple[list[PowerDecision], set[str]]:
    """One pass (the module docstring): the decisions and the nodes to wake."""
    subs = cd._active(session)
    busy = sorted(f"{s.row.id}: {b}" for s in subs if (b := conduit._unsettled(session, s)))
    draining = session.scalars(
        select(NodeRow.name).where(NodeRow.power == NodePower.DRAINING.value)
    ).all()
    if busy or draining:
        why = "; ".join([*(f"{n} draining" for n in draining), *busy])
        return [PowerDecision("", "wait", hour, f"still moving: {why}")], set()
    figures = curve.at(hour)
    plan, source = cd._plan(session, subs, extra_cpu=figures)
    obj, move_cost = cd.objective(session)
    if not obj.saves_energy:
        why = f"the objective ({obj.name}) does not weigh energy: no node is switched off"
        return [PowerDecision("", "none", hour, why)], set()
    try:
        new = eng.rebalance(plan, move_cost=move_cost)
    except eng.Infeasible as e:
        return [PowerDecision("", "none", hour, f"the load does not fit: {e}")], set()
    net = plan.network
    asleep = cd.switched_off(session)
    by_id = {s.row.id: s for s in subs}
    ours = {i.instance for s in subs for i in s.instances.values()}
    moved = {
        sid: dict(new.where[sid])
        for sid, s in by_id.items()
        if sid in new.where and dict(new.where[sid]) != s.where
    }
    curve_nodes = sorted(n for n in figures if n in net.index)
    at = f"at {_hhmm(hour)} (load curve: {_loads(net, curve_nodes)})"
    watts = f"{plan.energy_w:.0f} W -> {new.energy_w:.0f} W"
    decisions: list[PowerDecision] = []
    touched: set[str] = set()

    for node in sorted(new.switched_on & set(asleep)):
        to_it = {sid: w for sid, w in moved.items() if node in w.values()}
        why = (
            f"{at}: {node} on: {_they(sorted(to_it))} no longer fit where they ran within "
            f"the SLAs; {watts}"
        )
        touched |= power.power_on(session, node, f"catalog: {why}")
        del asleep[node]
        decisions.append(PowerDecision(node, "on", hour, why, to_it))
    cd.set_switched_off(session, asleep)

    skipped: set[str] = set()
    off_ok: dict[str, str] = {}
    for node in sorted(new.switched_off):
        leaving = {sid: w for sid, w in moved.items() if node in by_id[sid].where.values()}
        catalog_moves = {
            by_id[sid].instances[b].instance: w[b]
            for sid, w in leaving.items()
            for b, n in by_id[sid].where.items()
            if n == node
        }
        try:
            _others(session, node, ours)
            power.plan_drain(session, node, catalog_moves)
        except power.NotDrainable as e:
            skipped |= set(leaving)
            why = f"{at}: {node} stays on: the engine would switch it off ({watts}), but {e}"
            decisions.append(PowerDecision(node, "stays on", hour, why))
            continue
        targets = sorted({n for w in leaving.values() for n in w.values()})
        fits = (
            f"{_they(sorted(leaving))} fit on {', '.join(targets)} within the SLAs"
            if leaving
            else "it hosts no chain of the catalog"
        )
        off_ok[node] = f"{at}: {node} off: {fits}; {watts}"
        decisions.append(PowerDecision(node, "off", hour, off_ok[node], leaving))

    for sid in moved:
        if sid in skipped:
            continue
        s = by_id[sid]
        d = new.decisions[sid]
        node_why = next(
            (dd.why for dd in decisions if sid in dd.moved and dd.action in ("on", "off")),
            f"{at}: rebalanced",
        )
        touched |= conduit._apply(session, s, d, None, f"consolidation: {node_why}", source)
    for node, why in off_ok.items():
        _drain, t = power.power_off(session, node, f"catalog: {why}")
        touched |= t
        asleep[node] = why
    cd.set_switched_off(session, asleep)
    _remember(session, decisions)
    return decisions, touched


def _others(session: Session, node: str, ours: set[str]) -> None:
    """NotDrainable when something not the catalog's runs on `node`: the consolidation
    moves its own chains only (another service keeps its own records of where its
    functions run; the operator's `netfate node power` drains anything)."""
    there = session.execute(
        select(InstanceRow.id, InstanceRow.descriptor)
        .where(InstanceRow.node == node, InstanceRow.state != InstanceState.GONE.value)
        .order_by(InstanceRow.id)
    ).all()
    others = [f"{iid} ({desc})" for iid, desc in there if iid not in ours]
    if others:
        raise power.NotDrainable(
            f"{node} runs {', '.join(others[:5])}{' ...' if len(others) > 5 else ''}, "
            "not the catalog's: the consolidation moves only its own chains"
        )


def _remember(session: Session, decisions: list[PowerDecision]) -> None:
    """Record the decisions that change something: not wait or none, nor a node
    staying on again (the loop would record it every pass)."""
    row = session.get(CatalogSettingRow, cd.CONSOLIDATION)
    if row is None:
        row = CatalogSettingRow(key=cd.CONSOLIDATION, value={})
        session.add(row)
    last = list(row.value.get("decisions", []))
    before = {d.get("node"): d.get("action") for d in last}
    new = [
        d
        for d in decisions
        if d.node and not (d.action == "stays on" and before.get(d.node) == "stays on")
    ]
    for pd in new:
        record(session, NodeConsolidated(pd.node, pd.action, round(pd.hour, 3), pd.why))
    if new:
        last += [d.to_dict() for d in new]
        row.value = {**row.value, "decisions": last[-KEEP_DECISIONS:]}


def state(session: Session) -> dict[str, Any]:
    """What the consolidation switched off, its last decisions, and the simulated
    day the loop follows (reads only)."""
    row = session.get(CatalogSettingRow, cd.CONSOLIDATION)
    value = row.value if row is not None and isinstance(row.value, dict) else {}
    day = value.get("day")
    if isinstance(day, dict):
        day = {**day, "hour": round(_clock(day).hour(), 3)}
    return {
        "switched_off": cd.switched_off(session),
        "recent": list(value.get("decisions", [])),
        "day": day,
    }


# ------------------------------------------------------------------ the loop's day


def set_day(
    session: Session, curve: LoadCurve | None, day_s: float = 240.0, start_hour: float = 12.0
) -> None:
    """The compressed day the `night` loop follows from now (None: no day, the loop
    does nothing)."""
    row = session.get(CatalogSettingRow, cd.CONSOLIDATION)
    if row is None:
        row = CatalogSettingRow(key=cd.CONSOLIDATION, value={})
        session.add(row)
    day = None
    if curve is not None:
        day = {
            "curve": {n: list(lh) for n, lh in curve.nodes.items()},
            "peak_hour": curve.peak_hour,
            "day_s": day_s,
            "start_hour": start_hour,
            "started_at": time.time(),
        }
    row.value = {**row.value, "day": day}


def _clock(day: Mapping[str, Any]) -> CompressedDay:
    return CompressedDay(
        float(day["day_s"]), float(day["start_hour"]), time.time, float(day["started_at"])
    )


@dataclass
class NightLoop:
    """The catalog's `night` loop: a pass at the hour of the operator's compressed
    day, when one is set."""

    conduit: cd.Conduit

    def step(self, session: Session) -> set[str]:
        row = session.get(CatalogSettingRow, cd.CONSOLIDATION)
        day = row.value.get("day") if row is not None and isinstance(row.value, dict) else None
        if not isinstance(day, dict):
            return set()
        curve = LoadCurve(
            {str(n): (float(lh[0]), float(lh[1])) for n, lh in day["curve"].items()},
            float(day["peak_hour"]),
        )
        return consolidate(session, self.conduit, curve, _clock(day).hour())[1]
