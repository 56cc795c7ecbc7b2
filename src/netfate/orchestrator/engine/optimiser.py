"""The placement optimiser's entry points: batch placement, re-placement, rebalancing.

Pure functions: a `Network` (the compiled infrastructure with its monitoring
figures) and subscriptions in, a `Plan` out, or `Infeasible` naming every
chain that cannot be placed and why (then nothing is placed: no plan is
returned). A plan is never changed; each operation returns a new one.

- `place_batch`: many subscriptions at once, by the heuristic (fast, for large
  instances) or the exact solver (HiGHS, for instances it can solve in time);
  `auto` runs the heuristic and asks the exact solver when the heuristic finds
  no room on a small instance (so a refusal there is proven).
- `replace`: one subscription changed (its user moved, a new version of its
  chain) or added; every other chain stays where it is. A chain whose place still
  meets every constraint stays (`keep_valid`); otherwise the cheapest place
  wins, with `move_cost` per block that leaves its node.
- `remove`: a subscription ends; nodes left empty switch off (if the objective
  saves energy).
- `rebalance`: the loads changed (new monitoring figures, a node down): only the
  chains whose place now breaks a constraint move; then, if the objective saves
  energy, lightly used nodes are emptied where that pays for the moves (the
  night switch-off).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from netfate.orchestrator.engine import exact, heuristic
from netfate.orchestrator.engine.decisions import Decision, explain
from netfate.orchestrator.engine.model import (
    ModelError,
    Subscription,
    Usage,
    validate_subscriptions,
)
from netfate.orchestrator.engine.network import Network
from netfate.orchestrator.engine.objective import CONSOLIDATION, Objective
from netfate.orchestrator.engine.refusals import Infeasible, Refusal, diagnose, intrinsic
from netfate.orchestrator.engine.state import TOL, State, chain_info

Solver = Literal["heuristic", "exact", "auto"]
AUTO_EXACT_LIMIT = 4000
"""`auto` asks the exact solver only up to this many block x node choices."""
DEFAULT_MOVE_COST = 1.0
"""Per block leaving its node, in the objective's units (W, ms, or the mix's)."""


@dataclass(frozen=True)
class SolveStats:
    solver: str
    status: str
    """heuristic, optimal, feasible (time limit), kept, ..."""
    seconds: float
    bound: float | None = None
    """Exact solver: a proven lower bound on `Plan.value` (equal to it when optimal)."""
    moved: int = 0
    """Chains whose nodes changed from the plan this one was derived from."""


@dataclass(frozen=True, eq=False)
class Plan:
    """Where every subscribed chain runs, which nodes are on, and why."""

    network: Network
    objective: Objective
    where: Mapping[str, Mapping[str, str]]
    """Subscription -> block -> node."""
    decisions: Mapping[str, Decision]
    powered: frozenset[str]
    """Nodes on (forwarding-only nodes that are up included)."""
    switched_on: frozenset[str]
    """Off in the network's figures, on in this plan."""
    switched_off: frozenset[str]
    """On in the network's figures, off in this plan."""
    energy_w: float
    rtt_sum_ms: float
    value: float
    """The objective's value (energy and round trips as weighted; move costs excluded)."""
    stats: SolveStats
    state: State = field(repr=False)
    """The engine's working state (private: read the fields above)."""

    @property
    def subscriptions(self) -> Mapping[str, Subscription]:
        return self.state.subs

    @property
    def active_nodes(self) -> int:
        """Nodes that host at least one block."""
        return int((self.state.hosted > 0).sum())

    def usage(self) -> dict[str, Usage]:
        """What the placed blocks use on each node that hosts any."""
        net = self.network
        used = net.room - self.state.free
        return {
            net.names[n]: Usage(*(float(v) for v in used[n]))
            for n in np.flatnonzero(self.state.hosted > 0)
        }

    def link_use(self) -> dict[str, float]:
        """Traffic on each link (background and placed), Mbit/s."""
        net = self.network
        use = net.link_cap - self.state.link_free
        return {net.link_names[i]: float(use[i]) for i in range(len(use))}


def _plan(
    st: State,
    decisions: Mapping[str, Decision],
    stats: SolveStats,
    where: Mapping[str, Mapping[str, str]] | None = None,
) -> Plan:
    net = st.net
    on = st.powered()
    names = net.names
    energy = st.energy_w()
    return Plan(
        network=net,
        objective=st.objective,
        where=where if where is not None else {sid: d.nodes for sid, d in decisions.items()},
        decisions=decisions,
        powered=frozenset(names[i] for i in np.flatnonzero(on)),
        switched_on=frozenset(names[i] for i in np.flatnonzero(on & ~net.powered)),
        switched_off=frozenset(
            names[i] for i in np.flatnonzero(net.powered & ~on & net.kind_hosts)
        ),
        energy_w=energy,
        rtt_sum_ms=st.rtt_sum,
        value=st.objective.value(energy, st.rtt_sum),
        stats=stats,
        state=st,
    )


def _indices(plan: Plan, net: Network) -> dict[str, tuple[int, ...]]:
    if plan.network.names != net.names:
        raise ModelError({"network": "the plan was made for another set of nodes"})
    return dict(plan.state.where)


def _explain_all(st: State, sids: Iterable[str], action: str) -> dict[str, Decision]:
    out: dict[str, Decision] = {}
    for sid in list(sids):
        sub, nodes = st.remove(sid)
        out[sid] = explain(st, sub, nodes, st.colocate(sub), action)
        st.add(sub, nodes)
    return out


def adopt(
    network: Network,
    placed: Iterable[tuple[Subscription, Mapping[str, str]]],
    objective: Objective = CONSOLIDATION,
) -> Plan:
    """The plan of what runs now: each subscription where it is (block -> node), as a
    caller that keeps its own records (the catalog's conduit) knows it, to re-place
    from (`replace`, `remove`, `rebalance`). Nothing is checked but the names:
    a placement that now breaks a constraint is adopted as it is (`rebalance`
    moves it; `check` lists what it breaks). Each decision is explained as `kept`."""
    t0 = time.perf_counter()
    pairs = list(placed)
    validate_subscriptions(network.infra, [s for s, _ in pairs])
    st = State(network, objective)
    errors: dict[str, str] = {}
    for sub, where in pairs:
        try:
            nodes = tuple(network.index[where[b.name]] for b in sub.chain.blocks)
        except KeyError as e:
            errors[f"placed[{sub.id}]"] = f"{e.args[0]!r}: not a block with a known node"
            continue
        st.add(sub, nodes)
    if errors:
        raise ModelError(errors)
    decisions = _explain_all(st, list(st.where), "kept")
    return _plan(st, decisions, SolveStats("none", "adopted", time.perf_counter() - t0))


def place_batch(
    network: Network,
    subscriptions: Iterable[Subscription],
    objective: Objective = CONSOLIDATION,
    *,
    solver: Solver = "heuristic",
    current: Plan | None = None,
    keep: Collection[str] = (),
    move_cost: float = DEFAULT_MOVE_COST,
    time_limit_s: float = exact.DEFAULT_TIME_LIMIT_S,
) -> Plan:
    """Place every subscription; `keep` names chains of `current` that must not move.

    With `current`, moving a block off its current node costs `move_cost`.
    Raises ModelError for impossible input, Infeasible when some chain cannot
    be placed (nothing is placed then).
    """
    t0 = time.perf_counter()
    subs = list(subscriptions)
    validate_subscriptions(network.infra, subs)
    cur = _indices(current, network) if current is not None else {}
    st = State(network, objective, cur, move_cost if current is not None else 0.0)
    kept: dict[str, Decision] = {}
    refusals: list[Refusal] = []
    free: list[Subscription] = []
    for sub in subs:
        if sub.id not in keep:
            free.append(sub)
            continue
        if sub.id not in cur:
            raise ModelError({f"keep[{sub.id}]": "not in the current plan"})
        why = st.problem(sub, cur[sub.id])
        if why is not None:
            refusals.append(Refusal(sub.id, why[0], f"kept in place but {why[1]}", True))
            continue
        st.add(sub, cur[sub.id])
        if current is not None and sub.id in current.decisions:
            kept[sub.id] = current.decisions[sub.id]
    if refusals:
        raise Infeasible(refusals, "chains to keep no longer fit")
    st, decisions, stats = _solve(st, free, solver, time_limit_s, t0)
    decisions = {**kept, **decisions}
    moved = sum(1 for sid, nodes in st.where.items() if sid in cur and cur[sid] != nodes)
    stats = SolveStats(stats.solver, stats.status, time.perf_counter() - t0, stats.bound, moved)
    return _plan(st, decisions, stats)


def _solve(
    st: State, subs: list[Subscription], solver: Solver, time_limit_s: float, t0: float
) -> tuple[State, dict[str, Decision], SolveStats]:
    """Place `subs` around what `st` holds: the resulting state (`st` itself or a
    copy), the decisions and the figures; Infeasible when some cannot fit."""
    proven = [r for r in (intrinsic(st, s) for s in subs) if r is not None]
    if proven:
        raise Infeasible(proven)
    if solver in ("heuristic", "auto"):
        trial = st.copy()
        decisions, refusals = heuristic.solve(trial, subs)
        if not refusals:
            return trial, decisions, SolveStats("heuristic", "heuristic", time.perf_counter() - t0)
        size = sum(len(s.chain.blocks) for s in subs) * st.net.size
        if solver == "heuristic" or size > AUTO_EXACT_LIMIT:
            raise Infeasible(refusals)
    before = st.value()
    res = exact.solve(st, subs, time_limit_s)
    if not res.homes:
        if res.dropped:
            trial = st.copy()
            placed = {s.id for s in subs} - set(res.dropped)
            for s in subs:
                if s.id in placed and s.id in res.partial:
                    trial.add(s, res.partial[s.id])
            by_id = {s.id: s for s in subs}
            raise Infeasible(
                [
                    diagnose(trial, by_id[sid], proven=res.status == "infeasible")
                    for sid in res.dropped
                ],
                f"exact solver: {res.status}",
            )
        raise Infeasible(
            [Refusal(s.id, "time", f"exact solver: {res.status}", False) for s in subs],
            f"the exact solver found no placement in {time_limit_s:g} s",
        )
    for s in subs:
        st.add(s, res.homes[s.id])
    bound = before + res.bound if res.bound is not None else None
    status = res.status if res.status == "optimal" else "feasible (time limit)"
    return (
        st,
        _explain_all(st, [s.id for s in subs], "placed"),
        SolveStats("exact", status, time.perf_counter() - t0, bound),
    )


def replace(
    plan: Plan,
    sub: Subscription,
    *,
    keep_valid: bool = True,
    move_cost: float = DEFAULT_MOVE_COST,
    solver: Literal["heuristic", "exact"] = "heuristic",
) -> Plan:
    """Re-place one subscription (moved user, new chain version, or a new subscriber);
    every other chain stays where it is."""
    t0 = time.perf_counter()
    validate_subscriptions(plan.network.infra, [sub])
    st = plan.state.copy()
    old: tuple[int, ...] | None = None
    if sub.id in st.where:
        _, old = st.remove(sub.id)
    if old is not None and len(old) != len(sub.chain.blocks):
        old = None  # a new chain version with other blocks: nothing to keep
    st.current = {sub.id: old} if old is not None else {}
    st.move_cost = move_cost
    st.moved_blocks = 0
    refusal = intrinsic(st, sub)
    if refusal is not None:
        raise Infeasible([refusal])
    home: tuple[int, ...] | None = None
    action = "placed"
    status: str = solver
    if old is not None and keep_valid and st.problem(sub, old) is None:
        home, action, status = old, "kept", "kept"
    elif solver == "exact":
        res = exact.solve(st, [sub], exact.DEFAULT_TIME_LIMIT_S)
        home = res.homes.get(sub.id)
        status = res.status
    else:
        options = [
            h
            for h in (
                heuristic.best_home(st, sub),
                # Whole on one node too: a split's score leaves out the moves (its parts
                # are not the chain whose blocks move), the comparison here does not.
                heuristic.best_home(st, sub, split=False) if len(sub.chain.blocks) > 1 else None,
                heuristic.split_home(st, sub) if len(sub.chain.blocks) > 1 else None,
                old if old is not None and st.problem(sub, old) is None else None,
            )
            if h is not None
        ]
        if options:
            home = min(options, key=lambda h: st.cost_of(sub, h))
    if home is None:
        raise Infeasible([diagnose(st, sub, proven=solver == "exact")])
    if action != "kept" and old is not None:
        action = "stayed" if home == old else "moved"
    decision = explain(st, sub, home, st.colocate(sub), action)
    st.add(sub, home)
    decisions = dict(plan.decisions)
    decisions[sub.id] = decision
    where = dict(plan.where)
    where[sub.id] = decision.nodes
    moved = 1 if old is not None and home != old else 0
    stats = SolveStats(solver, status, time.perf_counter() - t0, None, moved)
    return _plan(st, decisions, stats, where)


def remove(plan: Plan, subscription: str) -> Plan:
    """The plan without one subscription (a node it alone kept on switches off)."""
    t0 = time.perf_counter()
    if subscription not in plan.state.where:
        raise ModelError({f"subscriptions[{subscription}]": "not in the plan"})
    st = plan.state.copy()
    st.remove(subscription)
    decisions = {k: v for k, v in plan.decisions.items() if k != subscription}
    return _plan(st, decisions, SolveStats("none", "removed", time.perf_counter() - t0))


def rebalance(
    plan: Plan,
    network: Network | None = None,
    *,
    move_cost: float = DEFAULT_MOVE_COST,
    consolidate: bool = True,
    passes: int = 3,
) -> Plan:
    """After the loads changed (`network`: the same topology with new figures, from
    `Network.with_loads`): move only the chains whose place now breaks a
    constraint (and others only where that is the one way to make room for them),
    then (objectives that save energy, `consolidate`) empty nodes where that pays
    for the moves. Decisions of chains that did not move stay."""
    t0 = time.perf_counter()
    net = network or plan.network
    cur = _indices(plan, net)
    st = State(net, plan.objective, cur, move_cost)
    for sid, nodes in cur.items():
        st.add(plan.state.subs[sid], nodes)
    evicted = _evict(st)
    evicted_ids = {s.id for s in evicted}
    failed = heuristic.greedy(st, evicted)
    if failed:
        # Moving chains that are fine is the last resort, but better than refusing.
        failed = heuristic.repair(st, failed, set(st.where))
    if failed:
        raise Infeasible([diagnose(st, s, proven=False) for s in failed])
    if consolidate and plan.objective.saves_energy:
        heuristic.close_nodes(st, passes)
    moved = [sid for sid, nodes in st.where.items() if cur[sid] != nodes]
    decisions = dict(plan.decisions)
    decisions.update(_explain_all(st, moved, "moved"))
    stats = SolveStats(
        "heuristic",
        f"rebalanced ({len(evicted_ids)} evicted)",
        time.perf_counter() - t0,
        None,
        len(moved),
    )
    return _plan(st, decisions, stats)


def _evict(st: State) -> list[Subscription]:
    """Take out the fewest chains (largest first) that make every node and link fit,
    and every chain that breaks its SLA or sits on a node that cannot host."""
    net = st.net
    out: list[Subscription] = []

    def take(sid: str) -> None:
        sub, _nodes = st.remove(sid)
        out.append(sub)

    for sid in sorted(st.where):
        sub = st.subs[sid]
        nodes = st.where[sid]
        info = chain_info(sub.chain)
        bad_host = any(not net.hosts[n] for n in nodes)
        rtt = st.rtt(sub, nodes[0])
        avail = float(np.prod([net.availability[n] for n in set(nodes)]))
        if bad_host or rtt > info.rtt_bound + TOL or avail < info.avail_bound:
            take(sid)
    for n in np.flatnonzero((st.free < -TOL).any(axis=1)).tolist():
        for r in range(3):
            ranked = sorted(
                st.on_node[n],
                key=lambda s: (-float(chain_info(st.subs[s].chain).demand[:, r].sum()), s),
            )
            for sid in ranked:
                if st.free[n, r] >= -TOL:
                    break
                take(sid)
    for lk in np.flatnonzero(st.link_free < -TOL).tolist():
        users = sorted(
            st.on_link[lk],
            key=lambda s: (-st.link_load(st.subs[s], st.where[s])[lk], s),
        )
        for sid in users:
            if st.link_free[lk] >= -TOL:
                break
            take(sid)
    return out
