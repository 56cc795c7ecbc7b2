from collections.abc import Sequence

import networkx as nx
import pytest

from netfate.orchestrator.engine import (
    Candidate,
    NoPlacement,
    PlacementRequest,
    place,
    register_policy,
)
from netfate.orchestrator.engine.placement import POLICIES, Placement


def graph() -> "nx.Graph[str]":
    g: nx.Graph[str] = nx.Graph()
    g.add_edge("cpe1", "pe1", delay_s=0.005)
    g.add_edge("cpe2", "pe1", delay_s=0.005)
    g.add_edge("pe1", "core", delay_s=0.001)
    g.add_edge("laptop1", "cpe1", delay_s=0.0)
    g.add_edge("laptop2", "cpe2", delay_s=0.0)
    return g


def cands(**free: float) -> list[Candidate]:
    kinds = {"cpe1": "cpe", "cpe2": "cpe", "pe1": "pe", "core": "core"}
    return [Candidate(n, kinds[n], True, free.get(n, 1.0), 512) for n in kinds]


REQ = PlacementRequest(cpu=0.5, memory_mb=64)


def test_nearest_picks_the_users_cpe() -> None:
    p = place(PlacementRequest(0.5, 64, serves="laptop2"), cands(), graph())
    assert p.node == "cpe2" and p.policy == "nearest"


def test_nearest_falls_back_to_the_next_closest_when_full() -> None:
    p = place(PlacementRequest(0.5, 64, serves="laptop2"), cands(cpe2=0.2), graph())
    assert p.node == "pe1"


def test_core_nodes_never_host() -> None:
    with pytest.raises(NoPlacement):
        place(REQ, cands(cpe1=0, cpe2=0, pe1=0, core=8), graph())


def test_no_room_explains_each_node() -> None:
    with pytest.raises(NoPlacement) as e:
        place(REQ, cands(cpe1=0.1, cpe2=0.1, pe1=0.1), graph())
    assert "cpe1: 0.10 CPU free < 0.50" in str(e.value)


def test_down_nodes_are_skipped() -> None:
    cs = [Candidate("cpe2", "cpe", False, 2, 512), Candidate("cpe1", "cpe", True, 2, 512)]
    assert place(PlacementRequest(0.5, 64, serves="laptop2"), cs, graph()).node == "cpe1"


def test_unknown_policy() -> None:
    with pytest.raises(NoPlacement, match="unknown placement policy 'nope'"):
        place(REQ, cands(), graph(), "nope")


def test_policies_are_pluggable() -> None:
    @register_policy("alphabetical-last")
    def last(req, candidates, g):  # type: ignore[no-untyped-def]
        return Placement(max(c.node for c in candidates), "alphabetical-last", "test")

    try:
        assert place(REQ, cands(), graph(), "alphabetical-last").node == "pe1"
    finally:
        POLICIES.pop("alphabetical-last")


def test_a_core_node_hosts_where_the_topology_gives_it_a_lan() -> None:
    full = {"cpe1": 0.0, "cpe2": 0.0, "pe1": 0.0}
    without = [c for c in cands(**full, core=8)]
    with pytest.raises(NoPlacement):
        place(REQ, without, graph())
    given = [Candidate(c.node, c.kind, True, c.free_cpu, 512, lan=True) for c in without]
    p = place(PlacementRequest(0.5, 64, serves="laptop1"), given, graph())
    assert p.node == "core" and given[-1].hosts


def test_a_core_node_with_compute_still_needs_room() -> None:
    cs = [Candidate("core", "core", True, 0.2, 512, lan=True)]
    with pytest.raises(NoPlacement, match=r"core: 0\.20 CPU free < 0\.50"):
        place(REQ, cs, graph())


def test_nearest_stops_early_and_chooses_as_a_full_search_would() -> None:
    """`nearest` settles nodes only until the nearest fitting one (and its ties): on
    random trees with random delays (ties included) and random free room, its choice
    is the minimum of (path delay, -free CPU, name) over every fitting node, as a
    full single-source Dijkstra of the whole graph gives it."""
    import random

    rng = random.Random(15)
    for trial in range(200):
        n = rng.randint(2, 40)
        g: nx.Graph[str] = nx.Graph()
        names = [f"n{i}" for i in range(n)]
        for i in range(1, n):
            g.add_edge(names[i], names[rng.randrange(i)], delay_s=rng.choice([0.0, 0.001, 0.002]))
        if trial % 3 == 0:  # a few extra links: more than one path
            for _ in range(3):
                a, b = rng.sample(names, 2)
                g.add_edge(a, b, delay_s=rng.choice([0.001, 0.003]))
        g.add_edge("host", rng.choice(names), delay_s=0.0)
        free = {x: rng.choice([0.0, 0.2, 0.5, 1.0]) for x in names}
        cs = [Candidate(x, "pe", True, free[x], 512) for x in names]
        req = PlacementRequest(cpu=0.5, memory_mb=64, serves="host")
        dist = nx.single_source_dijkstra_path_length(
            g, "host", weight=lambda _u, _v, d: float(d.get("delay_s", 0.0)) + 1e-6
        )
        ok = [c for c in cs if c.free_cpu >= 0.5]
        if not ok:
            with pytest.raises(NoPlacement):
                place(req, cs, g, "nearest")
            continue
        want = min(ok, key=lambda c: (dist[c.node], -c.free_cpu, c.node))
        got = place(req, cs, g, "nearest")
        assert got.node == want.node, trial
        assert f"({dist[want.node] * 1000:.2f} ms path)" in got.why


def test_nearest_near_reads_a_few_nodes_and_chooses_as_nearest_does() -> None:
    """`nearest_near` asks for candidates in growing batches of the nodes nearest the
    served host: on random graphs with random room (ties included) it chooses what
    `nearest` chooses given every candidate, or None where `nearest` finds nothing
    (the caller then asks `nearest`, for the refusal). Where the host's own node
    fits, it reads one batch, not the whole graph."""
    import random

    from netfate.orchestrator.engine.placement import nearest_near

    rng = random.Random(1515)
    for trial in range(300):
        n = rng.randint(2, 120)
        g: nx.Graph[str] = nx.Graph()
        names = [f"n{i}" for i in range(n)]
        g.add_node(names[0])
        for i in range(1, n):
            g.add_edge(names[i], names[rng.randrange(i)], delay_s=rng.choice([0.0, 0.001, 0.002]))
        if trial % 3 == 0:
            for _ in range(3):
                a, b = rng.sample(names, 2)
                g.add_edge(a, b, delay_s=rng.choice([0.001, 0.003]))
        for k in range(rng.randint(1, 4)):  # hosts: graph vertices that are no node
            g.add_edge(f"h{k}", rng.choice(names), delay_s=0.0)
        full = rng.random() < 0.1
        free = {x: 0.0 if full else rng.choice([0.0, 0.2, 0.5, 0.5, 1.0]) for x in names}
        cs = {x: Candidate(x, rng.choice(["pe", "cpe", "core"]), True, free[x], 512) for x in names}
        req = PlacementRequest(cpu=0.5, memory_mb=64, serves="h0")
        asked: list[str] = []

        def lookup(
            batch: Sequence[str], cs: dict[str, Candidate] = cs, asked: list[str] = asked
        ) -> dict[str, Candidate]:
            asked.extend(batch)
            return {x: cs[x] for x in batch if x in cs}

        got = nearest_near(req, g, lookup, first=4)
        try:
            want = place(req, list(cs.values()), g, "nearest")
        except NoPlacement:
            assert got is None, trial
            continue
        if got is None:  # only when nothing fits at all: nearest then refuses
            pytest.fail(f"trial {trial}: nearest chose {want.node}, nearest_near nothing")
        assert (got.node, got.why, got.policy) == (want.node, want.why, want.policy), trial
        assert len(asked) == len(set(asked))  # each vertex asked for once


def test_nearest_near_stops_at_the_first_batch_when_a_near_node_fits() -> None:
    from netfate.orchestrator.engine.placement import nearest_near

    g: nx.Graph[str] = nx.Graph()
    for i in range(1, 1000):
        g.add_edge(f"n{i}", f"n{(i - 1) // 3}", delay_s=0.001)
    g.add_edge("laptop", "n500", delay_s=0.0)
    asked: list[str] = []

    def lookup(batch: Sequence[str]) -> dict[str, Candidate]:
        asked.extend(batch)
        return {x: Candidate(x, "cpe", True, 1.0, 512) for x in batch if x != "laptop"}

    p = nearest_near(PlacementRequest(0.5, 64, serves="laptop"), g, lookup, first=16)
    assert p is not None and p.node == "n500"
    assert len(asked) == 16
    assert nearest_near(PlacementRequest(0.5, 64, serves="nowhere"), g, lookup) is None
