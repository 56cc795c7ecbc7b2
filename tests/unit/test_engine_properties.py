"""Property tests: whatever the network, chains and objective, every plan the optimiser
returns meets every constraint (by the independent checker), a refusal names the
chains it refuses, the heuristic never beats a proven optimum, and a re-placement
changes nobody else."""

from __future__ import annotations

import math
from typing import Any

import hypothesis.strategies as hs
import pytest
from hypothesis import HealthCheck, assume, given, settings

from netfate.orchestrator.engine import (
    CONSOLIDATION,
    LATENCY,
    Block,
    Chain,
    Infeasible,
    Infrastructure,
    Link,
    Network,
    Node,
    NodeKind,
    Objective,
    Plan,
    Sla,
    Subscription,
    Talk,
    Usage,
    check,
    mix,
    place_batch,
    replace,
)
from netfate.orchestrator.engine.check import energy_w
from netfate.orchestrator.engine.heuristic import parts_of
from netfate.orchestrator.engine.state import chain_info

CONSTRAINTS = {
    "host",
    "latency",
    "availability",
    "capacity:cpu",
    "capacity:memory",
    "capacity:storage",
    "bandwidth",
}
KINDS = (
    NodeKind("small", idle_w=10, w_per_cpu=6, availability=0.99),
    NodeKind("big", idle_w=60, w_per_cpu=2, availability=0.999),
    NodeKind("switch", idle_w=30, w_per_cpu=0, hosts=False),
)
PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@hs.composite
def networks(draw: Any) -> Infrastructure:
    """A random tree (routes are unique, as the checker assumes)."""
    n = draw(hs.integers(2, 6))
    nodes = []
    for i in range(n):
        kind = draw(hs.sampled_from(["small", "small", "big", "switch"]) if i else hs.just("big"))
        cpu = draw(hs.sampled_from([0.5, 1.0, 2.0, 4.0]))
        nodes.append(
            Node(
                f"n{i}",
                kind,
                cpu,
                draw(hs.sampled_from([512.0, 2048.0, 8192.0])),
                1000.0,
                load=Usage(cpu=draw(hs.sampled_from([0.0, 0.1, 0.3])) * cpu, memory_mb=64),
                up=draw(hs.sampled_from([True, True, True, False])) if i else True,
                powered=draw(hs.booleans()),
                pinned=draw(hs.booleans()) and draw(hs.booleans()),
            )
        )
    links = []
    for i in range(1, n):
        links.append(
            Link(
                f"n{draw(hs.integers(0, i - 1))}",
                f"n{i}",
                draw(hs.sampled_from([10.0, 50.0, 200.0])),
                draw(hs.floats(0.1, 5.0, allow_nan=False)),
                draw(hs.sampled_from([0.0, 5.0])),
            )
        )
    return Infrastructure(KINDS, tuple(nodes), tuple(links))


@hs.composite
def chains(draw: Any, max_blocks: int = 3) -> Chain:
    nb = draw(hs.integers(1, max_blocks))
    blocks = tuple(
        Block(
            f"b{i}",
            draw(hs.sampled_from([0.1, 0.25, 0.5, 1.0, 1.5])),
            draw(hs.sampled_from([32.0, 128.0, 512.0])),
            draw(hs.sampled_from([0.0, 50.0])),
        )
        for i in range(nb)
    )
    talks = []
    for i in range(nb):
        for j in range(i + 1, nb):
            if draw(hs.booleans()):
                talks.append(Talk(f"b{i}", f"b{j}", draw(hs.sampled_from([0.0, 2.0, 20.0]))))
    sla = Sla(
        rtt_ms=draw(hs.sampled_from([None, None, 2.0, 8.0, 30.0])),
        availability=draw(hs.sampled_from([None, None, 0.95, 0.985, 0.995])),
    )
    # chain_mbps: what the chain order carries where no talk gives a bandwidth.
    return Chain(
        f"c{nb}",
        blocks,
        tuple(talks),
        draw(hs.sampled_from([0.0, 5.0, 30.0])),
        sla,
        draw(hs.sampled_from([0.0, 0.0, 3.0, 12.0])),
    )


@hs.composite
def problems(draw: Any) -> tuple[Infrastructure, list[Subscription], Objective]:
    inf = draw(networks())
    names = [n.name for n in inf.nodes]
    catalog = draw(hs.lists(chains(), min_size=1, max_size=3))
    subs = [
        Subscription(f"s{i}", f"u{i}", draw(hs.sampled_from(names)), draw(hs.sampled_from(catalog)))
        for i in range(draw(hs.integers(1, 6)))
    ]
    objective = draw(hs.sampled_from([CONSOLIDATION, LATENCY, mix(1.0, 0.5), mix(1.0, 5.0)]))
    return inf, subs, objective


def holds(inf: Infrastructure, plan: Plan) -> None:
    subs = list(plan.subscriptions.values())
    assert check(inf, subs, plan.where, plan.powered) == []
    assert plan.energy_w == pytest.approx(energy_w(inf, subs, plan.where, plan.powered))
    rtt = sum(d.rtt_ms for d in plan.decisions.values())
    assert plan.rtt_sum_ms == pytest.approx(rtt, abs=1e-6)


def placed(problem: tuple[Any, ...]) -> tuple[Infrastructure, list[Subscription], Plan] | None:
    """The heuristic's plan for a drawn problem, or None when it refuses it."""
    inf, subs, objective = problem
    try:
        return inf, subs, place_batch(Network(inf), subs, objective)
    except Infeasible:
        return None


def refusals_name_inputs(e: Infeasible, subs: list[Subscription]) -> None:
    ids = {s.id for s in subs}
    assert e.refusals
    for r in e.refusals:
        assert r.subscription in ids
        assert r.constraint in CONSTRAINTS
        assert r.detail


@PROPS
@given(problems())
def test_every_plan_meets_every_constraint(problem: tuple[Any, ...]) -> None:
    inf, subs, objective = problem
    net = Network(inf)
    heuristic: Plan | None = None
    try:
        heuristic = place_batch(net, subs, objective)
        holds(inf, heuristic)
    except Infeasible as e:
        refusals_name_inputs(e, subs)
    if len(subs) <= 4:
        try:
            exact = place_batch(net, subs, objective, solver="exact", time_limit_s=20)
        except Infeasible as e:
            refusals_name_inputs(e, subs)
            proven = [r for r in e.refusals if r.proven]
            # A proven refusal means no plan exists: the heuristic cannot have one.
            assert heuristic is None or not proven
            return
        holds(inf, exact)
        if heuristic is not None and exact.stats.status == "optimal":
            assert exact.value <= heuristic.value + 1e-6 * max(1.0, abs(heuristic.value))


@PROPS
@given(problems(), hs.data())
def test_replacement_meets_every_constraint_and_moves_nobody_else(
    problem: tuple[Any, ...], data: Any
) -> None:
    got = placed(problem)
    if got is None:
        return
    inf, subs, plan = got
    who = data.draw(hs.sampled_from(subs))
    to = data.draw(hs.sampled_from([n.name for n in inf.nodes]))
    moved = Subscription(who.id, who.user, to, who.chain)
    keep = data.draw(hs.booleans())
    before = {k: dict(v) for k, v in plan.where.items()}
    try:
        after = replace(plan, moved, keep_valid=keep)
    except Infeasible as e:
        refusals_name_inputs(e, subs)
        assert {k: dict(v) for k, v in plan.where.items()} == before
        return
    holds(inf, after)
    assert after.subscriptions[who.id].at == to
    for s in subs:
        if s.id != who.id:
            assert dict(after.where[s.id]) == before[s.id]


@PROPS
@given(problems(), hs.data())
def test_the_one_node_fast_path_agrees_with_the_vector_evaluation(
    problem: tuple[Any, ...], data: Any
) -> None:
    got = placed(problem)
    if got is None:
        return
    _inf, subs, plan = got
    st = plan.state.copy()
    sub, _nodes = st.remove(data.draw(hs.sampled_from(subs)).id)
    amortise = data.draw(hs.booleans())
    candidates = [sub, *parts_of(sub)] if len(chain_info(sub.chain).names) > 1 else [sub]
    for i, s in enumerate(candidates):
        entry = i != 2
        full = st.colocate(s, amortise=amortise, entry=entry)
        for n in range(st.net.size):
            one = st.colocate_one(s, n, amortise=amortise, entry=entry)
            got = (
                full.ok[n],
                full.energy[n],
                full.rtt[n],
                full.moves[n],
                full.raw[n],
                full.cost[n],
            )
            assert one[0] == bool(got[0])
            for a, b in zip(one[1:], got[1:], strict=True):
                assert (math.isinf(a) and math.isinf(b)) or a == pytest.approx(float(b))


@PROPS
@given(problems(), hs.data())
def test_a_re_solve_keeps_the_chains_it_is_told_to(problem: tuple[Any, ...], data: Any) -> None:
    got = placed(problem)
    if got is None:
        return
    inf, subs, plan = got
    net = plan.network
    keep = set(data.draw(hs.lists(hs.sampled_from([s.id for s in subs]), unique=True)))
    other = data.draw(hs.sampled_from([CONSOLIDATION, LATENCY, mix(1.0, 2.0)]))
    try:
        again = place_batch(net, subs, other, current=plan, keep=keep, move_cost=0.5)
    except Infeasible as e:
        refusals_name_inputs(e, subs)
        return
    holds(inf, again)
    for sid in keep:
        assert dict(again.where[sid]) == dict(plan.where[sid])


@PROPS
@given(networks(), chains(max_blocks=2), hs.data())
def test_heuristic_and_exact_agree_on_one_chain(
    inf: Infrastructure, chain: Chain, data: Any
) -> None:
    """One chain of one or two blocks alone, then its user moved: both solvers refuse
    alike; the heuristic never beats the exact solver; and where the optimum keeps the
    chain whole, the heuristic finds a plan of the same value (the traffic between
    blocks and the chain's path priced alike, so it does not split a chain whose
    traffic would cost more apart). (An optimum that splits the chain may be missed:
    the heuristic tries the entry on its 3 cheapest nodes and the rest on its 8
    cheapest; with three blocks it splits only as the entry and the rest. Those are
    left out, as are chains no node takes whole.)"""
    need = chain.total
    hosts = {k.name for k in KINDS if k.hosts}
    assume(
        any(
            n.up
            and n.kind in hosts
            and n.cpu - n.load.cpu >= need.cpu
            and n.memory_mb - n.load.memory_mb >= need.memory_mb
            and n.storage_mb - n.load.storage_mb >= need.storage_mb
            for n in inf.nodes
        )
    )
    names = [n.name for n in inf.nodes]
    sub = Subscription("s1", "u", data.draw(hs.sampled_from(names)), chain)
    # Objectives that weigh the chain's path. (Under consolidation alone the heuristic's
    # choice between splits of a chain on nodes that are on may miss the optimum; the
    # property above holds it to the exact solver's bound there.)
    objective = data.draw(hs.sampled_from([LATENCY, mix(1.0, 1.0), mix(1.0, 5.0)]))
    net = Network(inf)
    plans: dict[str, Plan | None] = {}
    for solver in ("heuristic", "exact"):
        try:
            plans[solver] = place_batch(net, [sub], objective, solver=solver, time_limit_s=20)
        except Infeasible:
            plans[solver] = None
    h, x = plans["heuristic"], plans["exact"]
    assert (h is None) == (x is None)
    if h is None or x is None:
        return
    holds(inf, h)
    holds(inf, x)
    if x.stats.status == "optimal":
        assert x.value <= h.value + 1e-6 * max(1.0, abs(h.value))
        if _whole(x):
            assert h.value == pytest.approx(x.value, rel=1e-6, abs=1e-6)
    moved = Subscription("s1", "u", data.draw(hs.sampled_from(names)), chain)
    try:
        ha: Plan | None = replace(h, moved, keep_valid=False, solver="heuristic")
    except Infeasible:
        ha = None
    try:
        xa: Plan | None = replace(h, moved, keep_valid=False, solver="exact")
    except Infeasible:
        xa = None
    assert (ha is None) == (xa is None)
    if ha is None or xa is None:
        return
    holds(inf, ha)
    holds(inf, xa)
    costs = [a.decisions["s1"].cost for a in (ha, xa)]
    assert costs[1] <= costs[0] + 1e-6 * max(1.0, abs(costs[0]))
    if _whole(xa):
        assert costs[0] == pytest.approx(costs[1], rel=1e-6, abs=1e-6)


def _whole(plan: Plan) -> bool:
    """Whether the plan's one chain sits whole on one node."""
    return len(set(plan.where["s1"].values())) == 1
