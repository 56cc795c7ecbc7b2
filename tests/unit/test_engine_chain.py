"""The traffic between a chain's blocks: its relations (talks and chain order) take link
capacity, and the latency objective weighs the round trip along the chain's path, so a
block follows the entry where its traffic would otherwise cross a slow or full link and
stays where moving it costs more. Both solvers; every plan held to the checker."""

from __future__ import annotations

import pytest

from netfate.orchestrator.engine import (
    Block,
    Chain,
    Infeasible,
    Infrastructure,
    Link,
    Network,
    Node,
    NodeKind,
    Plan,
    Sla,
    Subscription,
    Talk,
    check,
    mix,
    place_batch,
    replace,
)

SOLVERS = ("heuristic", "exact")
# A core costs more at the PE: nothing but the traffic draws a block there.
KINDS = (NodeKind("cpe", idle_w=10, w_per_cpu=2), NodeKind("pe", idle_w=50, w_per_cpu=5))
# The entry must sit at the user's CPE (0.1 ms round trip); the store has no bound.
CHAIN = Chain(
    "fw",
    (Block("fw", 0.5, 64), Block("store", 0.5, 64)),
    (Talk("fw", "store", 12),),
    user_mbps=5,
    sla=Sla(rtt_ms=0.1),
)


def homes(*, delay: float = 2.0, used: float = 0.0, cap: float = 100.0) -> Infrastructure:
    """cpe1 - pe1 - cpe2, `delay` ms each way; the cpe2 link carries `used` Mbit/s."""
    return Infrastructure(
        KINDS,
        (
            Node("cpe1", "cpe", 2, 1024, pinned=True),
            Node("cpe2", "cpe", 2, 1024, pinned=True),
            Node("pe1", "pe", 8, 8192, pinned=True),
        ),
        (Link("cpe1", "pe1", cap, delay), Link("cpe2", "pe1", cap, delay, used)),
    )


def checked(inf: Infrastructure, plan: Plan) -> Plan:
    subs = list(plan.subscriptions.values())
    assert check(inf, subs, plan.where, plan.powered) == []
    return plan


def walk(inf: Infrastructure, solver: str, chain: Chain = CHAIN) -> Plan:
    """The user at cpe1, then at cpe2; the plan after the re-placement."""
    net = Network(inf)
    sub = Subscription("s1", "alice", "cpe1", chain)
    plan = checked(inf, place_batch(net, [sub], mix(1.0, 1.0), solver=solver))
    assert dict(plan.where["s1"]) == {"fw": "cpe1", "store": "cpe1"}
    moved = Subscription("s1", "alice", "cpe2", chain)
    return checked(inf, replace(plan, moved, move_cost=1.0, solver=solver))


@pytest.mark.parametrize("solver", SOLVERS)
def test_the_second_block_follows_the_entry_over_a_slow_link(solver: str) -> None:
    # Left behind, the store would add 8 ms to the chain's path (cpe2 -> pe1 -> cpe1 and
    # back): more than the 1 the move costs.
    after = walk(homes(delay=2.0), solver)
    assert dict(after.where["s1"]) == {"fw": "cpe2", "store": "cpe2"}
    d = after.decisions["s1"]
    assert d.action == "moved"
    assert d.rtt_ms == pytest.approx(0)
    assert d.traffic == (
        "store follows fw: 12 Mbit/s between them would cross cpe2--pe1, cpe1--pe1 "
        "(+8 ms round trip)"
    )
    assert d.traffic in d.why


@pytest.mark.parametrize("solver", SOLVERS)
def test_the_second_block_stays_where_its_traffic_is_cheap(solver: str) -> None:
    # 0.1 ms links: leaving the store at cpe1 adds 0.4 ms to the path, less than a move.
    inf = homes(delay=0.1)
    after = walk(inf, solver)
    assert dict(after.where["s1"]) == {"fw": "cpe2", "store": "cpe1"}
    d = after.decisions["s1"]
    assert d.rtt_ms == pytest.approx(0.4)
    assert d.entry_rtt_ms == pytest.approx(0)
    assert "store apart from fw: 12 Mbit/s between them cross cpe2--pe1, cpe1--pe1" in d.why
    # The traffic between the blocks is reserved on the links it crosses.
    use = after.link_use()
    assert use["cpe1--pe1"] == pytest.approx(12)
    assert use["cpe2--pe1"] == pytest.approx(12)


@pytest.mark.parametrize("solver", SOLVERS)
def test_the_second_block_follows_the_entry_off_a_full_link(solver: str) -> None:
    # Cheap links, but cpe2's has 8 Mbit/s left: the 12 between the blocks do not fit.
    after = walk(homes(delay=0.1, used=92.0), solver)
    assert dict(after.where["s1"]) == {"fw": "cpe2", "store": "cpe2"}
    assert after.decisions["s1"].traffic == (
        "store follows fw: 12 Mbit/s between them would cross cpe2--pe1, cpe1--pe1 "
        "(+0.4 ms round trip; cpe2--pe1 has 8 Mbit/s free)"
    )


@pytest.mark.parametrize("solver", SOLVERS)
def test_the_chain_orders_own_traffic_counts_without_talks(solver: str) -> None:
    # No talks: the blocks in chain order carry chain_mbps (the catalog's user_mbps).
    chain = Chain(
        "plain",
        CHAIN.blocks,
        user_mbps=5,
        sla=Sla(rtt_ms=0.1),
        chain_mbps=12,
    )
    after = walk(homes(delay=0.1, used=92.0), solver, chain)
    assert dict(after.where["s1"]) == {"fw": "cpe2", "store": "cpe2"}
    assert "store follows fw: 12 Mbit/s" in after.decisions["s1"].why


@pytest.mark.parametrize("solver", SOLVERS)
def test_bandwidth_between_blocks_is_refused_keyed_when_the_link_is_full(solver: str) -> None:
    # Each CPE takes one block only, so the chain must span cpe1 and pe1, whose link has
    # 10 Mbit/s: the user's 5 fit, the 12 between the blocks do not.
    inf = Infrastructure(
        KINDS,
        (Node("cpe1", "cpe", 0.5, 1024, pinned=True), Node("pe1", "pe", 0.5, 1024)),
        (Link("cpe1", "pe1", 10, 1),),
    )
    chain = Chain("fw", CHAIN.blocks, CHAIN.talks, user_mbps=5)
    with pytest.raises(Infeasible) as e:
        place_batch(Network(inf), [Subscription("s1", "alice", "cpe1", chain)], solver=solver)
    (refusal,) = e.value.refusals
    assert refusal.subscription == "s1"
    assert refusal.constraint == "bandwidth"
    assert "cpe1--pe1" in refusal.detail


def test_relations_are_talks_and_chain_order_with_a_default_bandwidth() -> None:
    blocks = tuple(Block(n, 0.1, 1) for n in ("a", "b", "c"))
    chain = Chain("c", blocks, (Talk("c", "a", 3), Talk("b", "c", 0)), chain_mbps=2)
    assert chain.relations() == {(0, 2): 3, (1, 2): 2, (0, 1): 2}
    assert Chain("c", blocks).relations() == {(0, 1): 0, (1, 2): 0}


@pytest.mark.parametrize("solver", SOLVERS)
def test_the_latency_objective_weighs_the_whole_chain_path(solver: str) -> None:
    # A user at cpe1; the entry must be there, but cpe1 has room for the entry only. The
    # rest goes to the nearest node on the path: pe1 (2 ms round trip), not cpe2 (4 ms),
    # although cpe2 is the cheaper node per core.
    inf = Infrastructure(
        KINDS,
        (
            Node("cpe1", "cpe", 0.5, 1024, pinned=True),
            Node("cpe2", "cpe", 2, 1024, pinned=True),
            Node("pe1", "pe", 8, 8192, pinned=True),
        ),
        (Link("cpe1", "pe1", 100, 1), Link("cpe2", "pe1", 100, 1)),
    )
    three = Chain(
        "three",
        (Block("fw", 0.5, 64), Block("x", 0.5, 64), Block("y", 0.5, 64)),
        user_mbps=1,
        sla=Sla(rtt_ms=1),
    )
    plan = checked(
        inf,
        place_batch(
            Network(inf), [Subscription("s1", "u", "cpe1", three)], mix(0.01, 1), solver=solver
        ),
    )
    assert dict(plan.where["s1"]) == {"fw": "cpe1", "x": "pe1", "y": "pe1"}
    d = plan.decisions["s1"]
    assert d.rtt_ms == pytest.approx(2)
    assert d.entry_rtt_ms == pytest.approx(0)
    assert plan.rtt_sum_ms == pytest.approx(2)
