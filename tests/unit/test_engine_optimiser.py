"""The placement optimiser on small instances whose optimum is known by hand: each
objective, both solvers, re-placement, refusals, explanations, and the night switch-off
under a simulated day/night load curve. Every plan is held to the independent checker."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

import pytest

from engine_fixtures import FW, infra
from netfate import benchcli
from netfate.orchestrator.engine import (
    CONSOLIDATION,
    LATENCY,
    Block,
    Chain,
    Infeasible,
    Infrastructure,
    Link,
    ModelError,
    Network,
    Node,
    NodeKind,
    Objective,
    Plan,
    Sla,
    Subscription,
    Talk,
    Usage,
    adopt,
    check,
    diurnal,
    mix,
    place_batch,
    rebalance,
    remove,
    replace,
)
from netfate.orchestrator.engine.check import energy_w

SOLVERS = ("heuristic", "exact")


def subs_at(chain: Chain, *ats: str) -> list[Subscription]:
    return [Subscription(f"s{i}", f"u{i}", at, chain) for i, at in enumerate(ats, 1)]


def checked(inf: Infrastructure, subs: Sequence[Subscription], plan: Plan) -> Plan:
    """The plan, once the independent checker found nothing wrong with it."""
    assert set(plan.where) == {s.id for s in subs}
    assert check(inf, list(plan.subscriptions.values()), plan.where, plan.powered) == []
    assert plan.energy_w == pytest.approx(
        energy_w(inf, list(plan.subscriptions.values()), plan.where, plan.powered)
    )
    assert set(plan.decisions) == set(plan.where)
    return plan


@pytest.mark.parametrize("solver", SOLVERS)
def test_consolidation_packs_onto_the_pe_and_switches_the_cpes_off(solver: str) -> None:
    inf = infra()
    subs = subs_at(FW, "cpe1", "cpe1", "cpe2")
    plan = checked(inf, subs, place_batch(Network(inf), subs, CONSOLIDATION, solver=solver))
    assert {n for w in plan.where.values() for n in w.values()} == {"pe1"}
    assert plan.powered == {"pe1", "core"}
    assert plan.switched_off == {"cpe1", "cpe2"}
    # pe1: 50 W idle + 2 W/core x 3 cores; the core switch: 100 W.
    assert plan.energy_w == pytest.approx(156)
    assert plan.active_nodes == 1


@pytest.mark.parametrize("solver", SOLVERS)
def test_latency_puts_each_entry_at_its_users_cpe(solver: str) -> None:
    # cpe1 holds one chain whole. The second user at cpe1 pays 4 ms on the chain's path
    # whatever it does: its entry at pe1, or its entry at cpe1 and its store at pe1 (the
    # round trip from fw to store is on the path the latency objective weighs).
    inf = infra()
    subs = subs_at(FW, "cpe1", "cpe1", "cpe2")
    plan = checked(inf, subs, place_batch(Network(inf), subs, LATENCY, solver=solver))
    assert plan.rtt_sum_ms == pytest.approx(4)
    assert set(plan.where["s3"].values()) == {"cpe2"}
    # Which of the two at cpe1 keeps it is a tie.
    rtts = sorted(plan.decisions[s].rtt_ms for s in ("s1", "s2"))
    assert rtts == [0, pytest.approx(4)]
    home = next(s for s in ("s1", "s2") if plan.decisions[s].rtt_ms == 0)
    assert set(plan.where[home].values()) == {"cpe1"}


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize(("latency_weight", "home"), [(2.0, "pe1"), (4.0, "cpe1")])
def test_the_mix_trades_watts_for_milliseconds(
    solver: str, latency_weight: float, home: str
) -> None:
    # One 0.5-core block for a user at cpe1. pe1 is on anyway (pinned): 1 W and 4 ms
    # there; cpe1 is off: 10 + 2.5 W and 0 ms. The mix prefers cpe1 beyond 11.5/4 W/ms.
    inf = infra(pe_pinned=True)
    one = Chain("one", (Block("b", 0.5, 64),))
    subs = subs_at(one, "cpe1")
    objective = mix(1.0, latency_weight)
    plan = checked(inf, subs, place_batch(Network(inf), subs, objective, solver=solver))
    assert plan.where["s1"]["b"] == home
    want = 1 + 4 * latency_weight if home == "pe1" else 12.5
    assert plan.decisions["s1"].cost == pytest.approx(want)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize(("bound", "rtt"), [(0.98, 0.0), (0.995, 4.0)])
def test_availability_bound_keeps_chains_off_weak_nodes(
    solver: str, bound: float, rtt: float
) -> None:
    # A cpe is up 99% of the time: a chain that needs 99.5% cannot use one.
    inf = infra()
    chain = Chain("c", FW.blocks, FW.talks, FW.user_mbps, Sla(rtt_ms=10, availability=bound))
    subs = subs_at(chain, "cpe1")
    plan = checked(inf, subs, place_batch(Network(inf), subs, LATENCY, solver=solver))
    assert plan.rtt_sum_ms == pytest.approx(rtt)


@pytest.mark.parametrize("solver", SOLVERS)
def test_link_bandwidth_forces_a_chain_onto_the_users_cpe(solver: str) -> None:
    # Two users at cpe1 each send 60 Mbit/s; every route from cpe1 starts with its
    # 100 Mbit/s link, and cpe1 holds one 0.6-core block. pe1 is on anyway: both there
    # would add 2.4 W; the link forces one onto cpe1 (switched on: 13 W).
    inf = infra(pe_pinned=True)
    heavy = Chain("heavy", (Block("b", 0.6, 64),), user_mbps=60)
    subs = subs_at(heavy, "cpe1", "cpe1")
    plan = checked(inf, subs, place_batch(Network(inf), subs, CONSOLIDATION, solver=solver))
    homes = sorted(w["b"] for w in plan.where.values())
    assert homes == ["cpe1", "pe1"]
    assert plan.energy_w == pytest.approx(51.2 + 13 + 100)
    wide = infra(pe_pinned=True, cpe_link=1000)
    plan = checked(wide, subs, place_batch(Network(wide), subs, CONSOLIDATION, solver=solver))
    assert sorted(w["b"] for w in plan.where.values()) == ["pe1", "pe1"]
    assert plan.energy_w == pytest.approx(52.4 + 100)


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_split_chain_counts_the_users_traffic_and_its_talk_on_a_shared_link(
    solver: str,
) -> None:
    # b0 (512 MiB) cannot go on n1, b1 (1.5 cores) not on n0 (3 of its 4 in use). The
    # user at n1 sends 30 Mbit/s to b0; b0 sends b1 20. With b1 on n1, pinned on, both
    # flows cross n0--n1, which has 45 of its 50 free: the heuristic once checked each
    # flow alone and put them there (55 on the link). Of the plans that fit, both on n2
    # needs only n2 on (10 W idle); b0 on n0 and b1 on n2 would keep n0 (60 W) on too.
    small = NodeKind("small", idle_w=10, w_per_cpu=6, availability=0.99)
    big = NodeKind("big", idle_w=60, w_per_cpu=2, availability=0.999)
    inf = Infrastructure(
        (small, big),
        (
            Node("n0", "big", 4.0, 2048.0, 1000.0, load=Usage(cpu=3.0)),
            Node("n1", "small", 2.0, 256.0, 1000.0, pinned=True),
            Node("n2", "small", 2.0, 2048.0, 1000.0, powered=False),
        ),
        (Link("n0", "n1", 50.0, 1.0, used_mbps=5.0), Link("n0", "n2", 50.0, 1.0)),
    )
    chain = Chain(
        "pair", (Block("b0", 0.1, 512), Block("b1", 1.5, 32)), (Talk("b0", "b1", 20),), 30
    )
    subs = subs_at(chain, "n1")
    net = Network(inf)
    plan = checked(inf, subs, place_batch(net, subs, CONSOLIDATION, solver=solver))
    assert dict(plan.where["s1"]) == {"b0": "n2", "b1": "n2"}
    # The re-solve the property test caught it in: nothing kept, moves priced.
    again = place_batch(net, subs, CONSOLIDATION, solver=solver, current=plan, move_cost=0.5)
    assert checked(inf, subs, again).where == plan.where


def test_decisions_name_the_binding_constraint_and_the_runner_up() -> None:
    inf = infra()
    one = Chain("one", (Block("b", 0.5, 64),), sla=Sla(rtt_ms=10))
    subs = subs_at(one, "cpe1", "cpe1", "cpe1")
    plan = checked(inf, subs, place_batch(Network(inf), subs, LATENCY))
    far = [d for d in plan.decisions.values() if d.nodes["b"] != "cpe1"]
    assert len(far) == 1
    d = far[0]
    assert d.objective == "latency" and d.nodes == {"b": "pe1"} and d.rtt_ms == 4
    assert d.binding == "capacity:cpu" and "cpe1 has 0.00 cpu free < 0.50" in d.binding_detail
    assert d.runner_up == "cpe2" and "lost by +4" in d.runner_up_lost
    assert "latency" in d.why and "binding capacity:cpu" in d.why
    near = next(d for d in plan.decisions.values() if d.nodes["b"] == "cpe1")
    assert near.binding == "none" and near.runner_up == "pe1"


def test_an_impossible_chain_is_refused_with_its_reason_and_nothing_is_placed() -> None:
    inf = infra()
    big = Chain("big", (Block("b", 9, 64),))
    tight = Chain("tight", (Block("b", 0.5, 64),), sla=Sla(rtt_ms=10, availability=0.9999))
    subs = [*subs_at(FW, "cpe1"), Subscription("big", "u", "cpe1", big)]
    subs.append(Subscription("tight", "u", "cpe1", tight))
    with pytest.raises(Infeasible) as e:
        place_batch(Network(inf), subs, CONSOLIDATION)
    by_id = {r.subscription: r for r in e.value.refusals}
    assert set(by_id) == {"big", "tight"}
    assert by_id["big"].constraint == "capacity:cpu" and by_id["big"].proven
    assert "needs 9 cpu; the largest node offers 8" in by_id["big"].detail
    assert by_id["tight"].constraint == "availability" and by_id["tight"].proven


@pytest.mark.parametrize("solver", ["heuristic", "auto", "exact"])
def test_chains_that_do_not_fit_together_are_refused(solver: str) -> None:
    # Only cpe1 is within 1 ms of its users, and it holds one of these three.
    inf = infra()
    near = Chain("near", (Block("b", 0.8, 64),), sla=Sla(rtt_ms=1))
    subs = subs_at(near, "cpe1", "cpe1", "cpe1")
    with pytest.raises(Infeasible) as e:
        place_batch(Network(inf), subs, CONSOLIDATION, solver=solver)  # type: ignore[arg-type]
    refused = e.value.refusals
    assert all(r.constraint == "capacity:cpu" for r in refused)
    assert {r.subscription for r in refused} <= {"s1", "s2", "s3"}
    if solver == "heuristic":
        assert len(refused) >= 2 and not any(r.proven for r in refused)
    else:  # the exact solver proves that exactly one fits
        assert len(refused) == 2 and all(r.proven for r in refused)
        assert "proved by the exact solver" in refused[0].detail


def test_replacement_keeps_a_chain_that_still_meets_its_sla_and_leaves_others_alone() -> None:
    inf = infra()
    one = Chain("one", (Block("b", 0.4, 64),), sla=Sla(rtt_ms=10))
    subs = subs_at(one, "cpe1", "cpe2", "cpe2")
    plan = checked(inf, subs, place_batch(Network(inf), subs, LATENCY))
    assert plan.where["s1"] == {"b": "cpe1"}
    walked = Subscription("s1", "u1", "cpe2", one)
    kept = replace(plan, walked)
    assert kept.where["s1"] == {"b": "cpe1"}  # 8 ms round trip from cpe2: within 10
    assert kept.decisions["s1"].action == "kept"
    assert kept.stats.moved == 0
    # Without keeping, it goes as near as there is room: cpe2 is full, pe1 is 4 ms.
    moved = replace(plan, walked, keep_valid=False)
    assert moved.where["s1"] == {"b": "pe1"}
    assert moved.decisions["s1"].action == "moved" and moved.stats.moved == 1
    for other in ("s2", "s3"):
        assert kept.where[other] == plan.where[other] == moved.where[other]
    checked(inf, [walked, *subs[1:]], kept)
    checked(inf, [walked, *subs[1:]], moved)


@pytest.mark.parametrize("solver", SOLVERS)
def test_replacement_follows_the_user_when_the_sla_breaks(solver: str) -> None:
    inf = infra()
    one = Chain("one", (Block("b", 0.4, 64),), sla=Sla(rtt_ms=5))
    subs = subs_at(one, "cpe1", "cpe2")
    plan = place_batch(Network(inf), subs, LATENCY)
    walked = Subscription("s1", "u1", "cpe2", one)
    after = replace(plan, walked, solver=solver)  # type: ignore[arg-type]
    assert after.where["s1"] == {"b": "cpe2"}  # room for two 0.4-core blocks
    assert after.where["s2"] == plan.where["s2"]
    checked(inf, [walked, subs[1]], after)


def test_a_replacement_that_cannot_fit_is_refused_and_the_plan_is_unchanged() -> None:
    inf = infra()
    near = Chain("near", (Block("b", 0.8, 64),), sla=Sla(rtt_ms=1))
    subs = subs_at(near, "cpe1", "cpe2")
    plan = place_batch(Network(inf), subs, CONSOLIDATION)
    before = {k: dict(v) for k, v in plan.where.items()}
    with pytest.raises(Infeasible) as e:
        replace(plan, Subscription("s1", "u1", "cpe2", near))
    assert e.value.refusals[0].subscription == "s1"
    assert e.value.refusals[0].constraint == "capacity:cpu"
    assert {k: dict(v) for k, v in plan.where.items()} == before
    checked(inf, subs, plan)


def test_a_new_subscriber_is_added_and_a_leaving_one_removed() -> None:
    inf = infra()
    subs = subs_at(FW, "cpe1")
    plan = place_batch(Network(inf), subs, CONSOLIDATION)
    extra = Subscription("s9", "u9", "cpe2", FW)
    grown = checked(inf, [*subs, extra], replace(plan, extra))
    assert grown.decisions["s9"].action == "placed"
    shrunk = checked(inf, [extra], remove(grown, "s1"))
    assert set(shrunk.where) == {"s9"}
    empty = remove(shrunk, "s9")
    assert empty.where == {} and "pe1" in empty.switched_off


def night_network() -> Infrastructure:
    """A PoP that is always on and two servers that can be switched off."""
    kinds = (NodeKind("pop", 100, 2, availability=0.9999), NodeKind("srv", 40, 4))
    return Infrastructure(
        kinds,
        (
            Node("pop", "pop", 4, 16384, pinned=True),
            Node("srv1", "srv", 2, 8192),
            Node("srv2", "srv", 2, 8192),
        ),
        (Link("pop", "srv1", 1000, 0.5), Link("pop", "srv2", 1000, 0.5)),
    )


def test_consolidation_switches_a_server_off_at_night_and_on_by_day() -> None:
    inf = night_network()
    net = Network(inf)
    chain = Chain("svc", (Block("b", 0.5, 256),))
    subs = [Subscription(f"s{i}", f"u{i}", "pop", chain) for i in range(8)]

    def at(hour: int) -> Network:
        # The PoP's own load follows the day: 3.5 of its 4 cores at 15:00, 0.5 at 03:00.
        return net.with_loads({"pop": Usage(cpu=diurnal(hour, 0.5, 3.5))})

    plan = checked(at(15).infra, subs, place_batch(at(15), subs, CONSOLIDATION))
    off_by_hour: dict[int, int] = {}
    for hour in [*range(16, 24), *range(0, 16)]:
        net_h = at(hour)
        plan = rebalance(plan, net_h)
        checked(net_h.infra, subs, plan)
        off_by_hour[hour] = sum(1 for n in ("srv1", "srv2") if n not in plan.powered)
    assert off_by_hour[3] == 1  # 7 chains fit the PoP's free 3.5 cores; one server hosts the 8th
    assert off_by_hour[15] == 0  # by day the PoP has room for one: both servers are needed
    night = [h for h, off in off_by_hour.items() if off]
    assert night and all(h not in night for h in (13, 14, 15, 16, 17))
    assert plan.stats.solver == "heuristic"


def _load_bench() -> ModuleType:
    mod: ModuleType = benchcli.load("placement")
    return mod


@pytest.mark.parametrize("objective", [CONSOLIDATION, mix(1.0, 2.0)], ids=lambda o: o.name)
@pytest.mark.parametrize("seed", [1000, 1001, 1002])
def test_heuristic_is_within_5pct_of_the_exact_optimum(objective: Objective, seed: int) -> None:
    bench = _load_bench()
    inf, subs = bench.synthetic(10, 24, seed, utilisation=0.6)
    net = Network(inf)
    exact = checked(inf, subs, place_batch(net, subs, objective, solver="exact"))
    heuristic = checked(inf, subs, place_batch(net, subs, objective))
    assert exact.stats.status == "optimal"
    assert exact.stats.bound == pytest.approx(exact.value, rel=1e-6)
    assert exact.value <= heuristic.value + 1e-6
    assert heuristic.value <= 1.05 * exact.value


def test_the_synthetic_network_is_deterministic_and_the_baseline_ignores_slas() -> None:
    bench = _load_bench()
    a = bench.synthetic(30, 200, 5)
    b = bench.synthetic(30, 200, 5)
    assert a == b
    inf, subs = a
    base = bench.least_loaded(inf, subs)
    assert base["refused"] == 0 and len(base["where"]) == 200
    figures = bench._baseline_figures(inf, subs, base)
    assert figures["violations"].get("latency", 0) > 0


def test_rebalance_moves_only_the_chains_of_a_node_that_went_down() -> None:
    inf = infra()
    one = Chain("one", (Block("b", 0.4, 64),), sla=Sla(rtt_ms=10))
    subs = subs_at(one, "cpe1", "cpe1", "cpe2")
    plan = checked(inf, subs, place_batch(Network(inf), subs, LATENCY))
    assert plan.where["s3"] == {"b": "cpe2"}
    down = plan.network.with_loads(up={"cpe1": False})
    after = checked(down.infra, subs, rebalance(plan, down))
    assert after.where["s3"] == plan.where["s3"]
    assert after.decisions["s3"] is plan.decisions["s3"]
    for sid in ("s1", "s2"):
        assert after.where[sid]["b"] != "cpe1"
        assert after.decisions[sid].action == "moved"
    assert after.stats.moved == 2
    # Nothing changed: nothing moves.
    again = rebalance(after, down)
    assert again.where == after.where and again.stats.moved == 0


def test_a_batch_re_solve_keeps_what_it_is_told_and_prices_moves() -> None:
    inf = infra(pe_pinned=True)
    one = Chain("one", (Block("b", 0.4, 64),), sla=Sla(rtt_ms=10))
    subs = subs_at(one, "cpe1", "cpe1", "cpe2")
    net = Network(inf)
    near = checked(inf, subs, place_batch(net, subs, LATENCY))
    assert {w["b"] for w in near.where.values()} == {"cpe1", "cpe2"}
    # Consolidating puts all three on pe1, which is on anyway (0.8 W per chain), and
    # switches the cpes off (26 W) ...
    packed = checked(inf, subs, place_batch(net, subs, CONSOLIDATION, current=near, move_cost=1))
    assert {w["b"] for w in packed.where.values()} == {"pe1"}
    assert packed.stats.moved == 3
    # ... but not the chain it must keep, and not when moving costs more than it saves.
    kept = checked(inf, subs, place_batch(net, subs, CONSOLIDATION, current=near, keep={"s3"}))
    assert kept.where["s3"] == near.where["s3"] and kept.stats.moved == 2
    dear = checked(inf, subs, place_batch(net, subs, CONSOLIDATION, current=near, move_cost=100))
    assert dear.where == near.where and dear.stats.moved == 0


def test_the_exact_solver_declines_an_instance_too_large_for_it() -> None:
    from netfate.orchestrator.engine.exact import MAX_CHOICES, TooLarge

    inf = infra()
    one = Chain("one", (Block("b", 0.001, 1),))
    subs = [Subscription(f"s{i}", "u", "pe1", one) for i in range(MAX_CHOICES // 3 + 1)]
    with pytest.raises(TooLarge, match="too large for the exact solver"):
        place_batch(Network(inf), subs, CONSOLIDATION, solver="exact")


def test_adopt_takes_a_placement_as_it_is_and_replace_starts_from_it() -> None:
    """What a caller keeping its own records (the catalog) knows runs where: adopted
    unchanged (even where it breaks a constraint), each decision `kept`; a
    re-placement from it moves only the subscription asked for."""
    net = Network(infra())
    a = Subscription("a", "u1", "cpe1", FW)
    b = Subscription("b", "u2", "cpe2", FW)
    plan = adopt(net, [(a, {"fw": "cpe1", "store": "pe1"}), (b, {"fw": "pe1", "store": "pe1"})])
    assert plan.where == {"a": {"fw": "cpe1", "store": "pe1"}, "b": {"fw": "pe1", "store": "pe1"}}
    assert {d.action for d in plan.decisions.values()} == {"kept"}
    # b's entry is 4 ms from its user and back: its 10 ms bound holds, so it stays
    moved = replace(plan, Subscription("b", "u2", "cpe1", FW))
    assert moved.where == plan.where and moved.decisions["b"].action == "kept"
    # without keep_valid it goes where it is cheapest for it now
    moved = replace(plan, Subscription("b", "u2", "cpe1", FW), keep_valid=False)
    assert moved.where["a"] == plan.where["a"] and moved.decisions["b"].action != "kept"
    with pytest.raises(ModelError) as e:
        adopt(net, [(a, {"fw": "nowhere", "store": "pe1"})])
    assert set(e.value.errors) == {"placed[a]"}
