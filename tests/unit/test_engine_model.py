"""The placement optimiser's model: keyed errors for impossible input, routes, monitoring
figures, and the independent checker (which must catch each kind of violation)."""

from __future__ import annotations

import itertools
import math

import networkx as nx
import pytest

from engine_fixtures import FW, KINDS, infra
from netfate.orchestrator.engine import (
    Block,
    Chain,
    Infrastructure,
    Link,
    ModelError,
    Network,
    Node,
    NodeKind,
    NodeSeries,
    Sample,
    Sla,
    Subscription,
    Talk,
    Usage,
    check,
    diurnal,
    estimate,
    from_series,
    validate_subscriptions,
)
from netfate.orchestrator.engine.check import energy_w, rtt_ms


def test_a_sound_infrastructure_validates() -> None:
    infra().validate()
    Network(infra())


def test_impossible_infrastructure_gets_one_error_per_bad_field() -> None:
    bad = Infrastructure(
        (*KINDS, NodeKind("cpe", 1, 1), NodeKind("odd", -1, 1, availability=1.5)),
        (
            Node("a", "cpe", -1, 10),
            Node("a", "nope", 1, 10),
            Node("b", "pe", 1, 10, load=Usage(cpu=math.nan)),
        ),
        (
            Link("a", "zz", 10, 1),
            Link("a", "a", 10, 1),
            Link("a", "b", 0, -1),
            Link("b", "a", 1, 1),
        ),
    )
    with pytest.raises(ModelError) as e:
        bad.validate()
    errors = e.value.errors
    assert errors["kinds[cpe].name"] == "defined twice"
    assert "idle_w" in " ".join(k for k in errors if k.startswith("kinds[odd]"))
    assert "kinds[odd].availability" in errors
    assert "nodes[a].cpu" in errors
    assert errors["nodes[a].name"] == "defined twice"
    assert errors["nodes[a].kind"] == "unknown kind 'nope'"
    assert "nodes[b].load.cpu" in errors
    assert errors["links[0].b"] == "unknown node 'zz'"
    assert errors["links[1].b"] == "a link joins two different nodes"
    assert "links[2].capacity_mbps" in errors and "links[2].delay_ms" in errors
    assert errors["links[3]"] == "a second link between b and a"
    with pytest.raises(ModelError):
        Network(bad)


def test_impossible_chains_and_subscriptions_get_keyed_errors() -> None:
    chain = Chain(
        "c",
        (Block("x", 1, 1), Block("x", -1, 1)),
        (Talk("x", "ghost", 1), Talk("x", "x", 1)),
        user_mbps=-1,
        sla=Sla(rtt_ms=0, availability=1.2),
    )
    subs = [
        Subscription("s1", "u", "cpe9", chain),
        Subscription("s1", "u", "cpe1", FW),
        Subscription("s2", "u", "cpe1", Chain("empty", ())),
    ]
    with pytest.raises(ModelError) as e:
        validate_subscriptions(infra(), subs)
    errors = e.value.errors
    assert errors["subscriptions[s1].at"] == "unknown node 'cpe9'"
    assert errors["subscriptions[s1].chain.blocks[x].name"] == "defined twice"
    assert "subscriptions[s1].chain.blocks[x].cpu" in errors
    assert errors["subscriptions[s1].chain.talks[0].b"] == "unknown block 'ghost'"
    assert errors["subscriptions[s1].chain.talks[1].b"] == "a block does not talk to itself"
    assert "subscriptions[s1].chain.user_mbps" in errors
    assert "subscriptions[s1].chain.sla.rtt_ms" in errors
    assert "subscriptions[s1].chain.sla.availability" in errors
    assert errors["subscriptions[s1].id"] == "defined twice"
    assert errors["subscriptions[s2].chain.blocks"] == "a chain has at least one block"


def test_routes_are_the_lowest_delay_paths_and_their_delays() -> None:
    kinds = (NodeKind("n", 1, 1),)
    nodes = tuple(Node(f"n{i}", "n", 1, 1) for i in range(6))
    links = (
        Link("n0", "n1", 10, 1.0),
        Link("n1", "n2", 10, 1.5),
        Link("n0", "n3", 10, 0.7),
        Link("n3", "n2", 10, 0.9),
        Link("n2", "n4", 10, 3.1),
    )
    net = Network(Infrastructure(kinds, nodes, links))
    g: nx.Graph[str] = nx.Graph()
    for ln in links:
        g.add_edge(ln.a, ln.b, delay=ln.delay_ms)
    for a in ("n0", "n1", "n2", "n3", "n4"):
        for b in ("n0", "n1", "n2", "n3", "n4"):
            want = nx.shortest_path_length(g, a, b, weight="delay")
            assert net.delay_ms[net.index[a], net.index[b]] == pytest.approx(want)
            path = nx.shortest_path(g, a, b, weight="delay")
            got = {net.link_names[lk] for lk in net.path_links(net.index[a], net.index[b])}
            want_links = {net.link_names[net.link_index(u, v)] for u, v in itertools.pairwise(path)}
            assert got == want_links
    assert math.isinf(net.delay_ms[net.index["n0"], net.index["n5"]])
    with pytest.raises(ValueError, match="no route"):
        net.path_links(net.index["n0"], net.index["n5"])


def test_with_loads_keeps_routes_and_rejects_unknown_names() -> None:
    net = Network(infra())
    after = net.with_loads({"pe1": Usage(cpu=3)}, {("pe1", "cpe1"): 40.0}, up={"cpe2": False})
    assert after.room[after.index["pe1"], 0] == 5
    assert after.link_used[after.link_index("cpe1", "pe1")] == 40
    assert not after.hosts[after.index["cpe2"]]
    assert after.delay_ms is net.delay_ms
    assert net.room[net.index["pe1"], 0] == 8  # the original is unchanged
    with pytest.raises(ModelError) as e:
        net.with_loads({"ghost": Usage()}, {("cpe1", "cpe2"): 1.0})
    assert set(e.value.errors) == {"nodes[ghost]", "links[cpe1--cpe2]"}


def test_estimates_from_series() -> None:
    xs = [Sample(float(t), float(v)) for t, v in enumerate([1, 2, 3, 4, 100])]
    p95 = estimate(xs)
    assert p95 is not None and p95.value == pytest.approx(80.8) and p95.samples == 5
    mean = estimate(xs, how="mean")
    assert mean is not None and mean.value == pytest.approx(22)
    last = estimate(xs, how="last")
    assert last is not None and last.value == 100 and last.how == "last sample"
    windowed = estimate(xs, how="max", now=3, window_s=1)
    assert windowed is not None and windowed.value == 4 and windowed.samples == 2
    one = estimate([Sample(0, 7)])
    assert one is not None and one.value == 7 and one.how == "last sample (only one)"
    assert estimate(xs, now=100, window_s=1) is None
    with pytest.raises(ModelError) as e:
        estimate([Sample(0, -1)], key="nodes[x].cpu")
    assert "nodes[x].cpu" in e.value.errors


def test_monitoring_subtracts_what_the_plan_reserves_and_says_how() -> None:
    net = Network(infra())
    mon = from_series(
        net,
        {"pe1": NodeSeries(cpu=[Sample(0, 2.0), Sample(1, 3.0)])},
        {("cpe1", "pe1"): [Sample(0, 30.0)]},
        how="max",
        managed={"pe1": Usage(cpu=1.0)},
    )
    assert mon.nodes["pe1"].cpu == pytest.approx(2.0)
    assert mon.links[("cpe1", "pe1")] == 30.0
    assert "cpu: max of 2 samples" in mon.notes["nodes[pe1]"]
    assert "memory_mb: no sample, kept" in mon.notes["nodes[pe1]"]
    assert mon.notes["links[cpe1--pe1]"] == "last sample (only one)"
    after = mon.apply(net)
    assert after.room[after.index["pe1"], 0] == pytest.approx(6.0)
    with pytest.raises(ModelError) as e:
        from_series(net, {"ghost": NodeSeries()})
    assert "nodes[ghost]" in e.value.errors


def test_diurnal_curve() -> None:
    assert diurnal(15, 0.1, 0.9) == pytest.approx(0.9)
    assert diurnal(3, 0.1, 0.9) == pytest.approx(0.1)
    assert 0.1 < diurnal(9, 0.1, 0.9) < 0.9


def test_checker_finds_each_kind_of_violation() -> None:
    inf = infra()
    tight = Chain("t", (Block("b", 0.6, 64),), user_mbps=150, sla=Sla(rtt_ms=1, availability=0.995))
    subs = [Subscription("s1", "u", "cpe1", tight), Subscription("s2", "u", "cpe2", tight)]
    where = {"s1": {"b": "cpe2"}, "s2": {"b": "cpe2"}}
    got = {(v.constraint, v.where) for v in check(inf, subs, where, powered={"pe1"})}
    assert ("capacity:cpu", "cpe2") in got  # 1.2 cores on a 1-core node
    assert ("latency", "s1") in got  # cpe1 -> cpe2 is 8 ms round trip
    assert ("availability", "s1") in got  # a cpe is 0.99
    assert ("bandwidth", "cpe1--pe1") in got  # 150 Mbit/s over a 100 Mbit/s link
    assert ("host", "s1") in got  # cpe2 is off
    missing = check(inf, subs, {"s1": {"b": "core"}, "ghost": {}})
    kinds = {(v.constraint, v.where) for v in missing}
    assert ("host", "s1") in kinds and ("host", "s2") in kinds and ("host", "ghost") in kinds


def test_checker_passes_a_sound_placement_and_counts_energy() -> None:
    inf = infra()
    subs = [Subscription("s1", "u", "cpe1", FW)]
    where = {"s1": {"fw": "pe1", "store": "pe1"}}
    assert check(inf, subs, where, powered={"pe1", "core"}) == []
    # pe1: 50 W idle + 2 W/core x 1 core; core: 100 W idle.
    assert energy_w(inf, subs, where, {"pe1", "core"}) == pytest.approx(152)
    assert rtt_ms(inf, "cpe1", "cpe2") == pytest.approx(8)
