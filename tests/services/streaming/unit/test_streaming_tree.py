"""The delivery-tree manager (services/streaming/tree.py): the paper's four cases in
order, bandwidth per node and link, pruning after the grace period, refusals beyond
capacity, the two criteria with their reasons, and properties over random joins and
leaves (no viewer without a branch, nothing over capacity)."""

from __future__ import annotations

import hypothesis.strategies as hs
import pytest
from hypothesis import HealthCheck, given, settings

from netfate.services.streaming.tree import (
    BranchPruned,
    JoinRefused,
    Limits,
    LinkSpec,
    Network,
    NodeSpec,
    StreamerReleased,
    Tree,
    TreeError,
    ViewerAssigned,
    ViewerLeft,
)

MBIT = 1e6


def paper_net(pe_cpu: float = 1.0, link_mbit: float = 100.0, pe_mbit: float = 100.0) -> Network:
    """The paper's testbed: 5 PEs, 2 core routers (c1: pe1-pe3, c2: pe4-pe5, c1-c2)."""
    pes = [NodeSpec(f"pe{i}", "pe", pe_cpu, pe_mbit * MBIT) for i in range(1, 6)]
    cores = [NodeSpec(c, "core", 0.0, 10_000 * MBIT, hosts=False) for c in ("c1", "c2")]
    links = [
        LinkSpec("pe1", "c1", link_mbit * MBIT, 0.001),
        LinkSpec("pe2", "c1", link_mbit * MBIT, 0.002),
        LinkSpec("pe3", "c1", link_mbit * MBIT, 0.004),
        LinkSpec("pe4", "c2", link_mbit * MBIT, 0.001),
        LinkSpec("pe5", "c2", link_mbit * MBIT, 0.001),
        LinkSpec("c1", "c2", link_mbit * MBIT, 0.005),
    ]
    return Network(pes + cores, links)


def assigned(ev: object) -> ViewerAssigned:
    assert isinstance(ev, ViewerAssigned), ev
    return ev


def test_the_four_cases_in_the_rules_order() -> None:
    t = Tree(paper_net())
    t.publish("X", "pe1", 4 * MBIT)
    t.publish("Y", "pe1", 4 * MBIT)
    a = assigned(t.join("alice", "X", "pe2", 0.0))
    assert a.case == 4 and a.node == "pe2", a.why  # nothing yet: a new streamer on pe2
    b = assigned(t.join("bob", "X", "pe2", 1.0))
    assert b.case == 1 and b.streamer == a.streamer, b.why  # reuse: it serves X already
    c = assigned(t.join("carol", "Y", "pe2", 2.0))
    assert c.case == 2 and c.streamer == a.streamer, c.why  # room: it takes Y as well
    d = assigned(t.join("dave", "X", "pe3", 3.0))
    assert d.case == 3 and d.streamer == a.streamer and d.node == "pe2", d.why  # neighbour
    assert "no streamer on pe3" in d.why and "neighbour pe2" in d.why
    # pe4 (under the other core router) is not pe2's neighbour: a new streamer there
    e = assigned(t.join("erin", "X", "pe4", 4.0))
    assert e.case == 4 and e.node == "pe4", e.why
    assert t.violations() == []
    want = t.desired()
    assert set(want.streamers) == {a.streamer, e.streamer}
    assert set(want.acquirers["pe1"]) == {"X", "Y"}


def test_case_3_only_when_the_pe_has_no_streamer_at_all() -> None:
    # A streamer on pe3 that cannot take X (full of other contents) keeps case 3 out:
    # the paper looks at neighbours only when no streamer is instantiated on the PE.
    t = Tree(paper_net(), Limits(streamer_contents=1))
    t.publish("X", "pe1", 2 * MBIT)
    t.publish("Y", "pe1", 2 * MBIT)
    assigned(t.join("a", "X", "pe2", 0.0))  # a streamer with X on pe2
    y = assigned(t.join("b", "Y", "pe3", 0.0))  # a streamer with Y on pe3
    c = assigned(t.join("c", "X", "pe3", 0.0))
    assert c.case == 4 and c.node == "pe3" and c.streamer != y.streamer, c.why
    assert f"{y.streamer} on pe3" in c.why and "contents" in c.why  # why case 2 failed


def test_bandwidth_per_link_and_node_and_a_core_router_passes_one_copy_per_streamer() -> None:
    t = Tree(paper_net(), Limits(streamer_bandwidth_bps=5 * MBIT))  # one viewer each
    t.publish("X", "pe1", 5 * MBIT)
    assigned(t.join("a", "X", "pe4", 0.0))
    b = assigned(t.join("b", "X", "pe5", 0.0))  # pe4's neighbour streamer is full
    assert b.case == 4 and b.node == "pe5" and "es1-pe4" in b.why, b.why
    L = t.loads()
    link = lambda a, b: L.link_bps.get(frozenset((a, b)), 0.0)  # noqa: E731
    # c2 cannot duplicate: two streamers below it need two copies from c1 and pe1
    assert link("pe1", "c1") == link("c1", "c2") == 10 * MBIT
    assert link("c2", "pe4") == link("c2", "pe5") == 5 * MBIT
    assert L.node_bps["pe1"] == 10 * MBIT  # the acquirer sends two copies
    assert L.node_bps["pe4"] == L.node_bps["pe5"] == 5 * MBIT  # to their viewers
    assert t.desired().acquirers["pe1"]["X"] == (("streamer", "es1-pe4"), ("streamer", "es2-pe5"))


def test_a_hosting_node_at_a_branch_point_runs_a_forwarder() -> None:
    # pe2 sits between pe1 and pe3/pe4 here: a branch point that can host a forwarder.
    pes = [NodeSpec(n, "pe", 1.0, 100 * MBIT) for n in ("pe1", "pe2", "pe3", "pe4")]
    net = Network(
        pes,
        [
            LinkSpec("pe1", "pe2", 20 * MBIT),
            LinkSpec("pe2", "pe3", 20 * MBIT),
            LinkSpec("pe2", "pe4", 20 * MBIT),
        ],
    )
    t = Tree(net, Limits(streamer_bandwidth_bps=8 * MBIT))  # one viewer per streamer
    t.publish("X", "pe1", 8 * MBIT)
    assigned(t.join("a", "X", "pe3", 0.0))
    assigned(t.join("b", "X", "pe4", 0.0))
    L = t.loads()
    assert L.link_bps[frozenset(("pe1", "pe2"))] == 8 * MBIT  # one copy up to the forwarder
    assert L.forwarders == {"pe2": {"X"}}
    want = t.desired()
    assert want.acquirers["pe1"]["X"] == (("forwarder", "pe2"),)
    assert want.forwarders["pe2"]["X"] == (("streamer", "es1-pe3"), ("streamer", "es2-pe4"))


def test_core_nodes_with_compute_run_the_forwarders_and_nothing_else() -> None:
    # The paper's testbed with compute on both core routers: the branch points are
    # there, while edge streamers and acquirers stay on PEs.
    pes = [NodeSpec(f"pe{i}", "pe", 1.0, 100 * MBIT) for i in range(1, 6)]
    cores = [NodeSpec(c, "core", 1.0, 10_000 * MBIT, edge=False) for c in ("c1", "c2")]
    net = Network(pes + cores, list(paper_net().links.values()))
    t = Tree(net)
    with pytest.raises(TreeError, match="not a PE"):
        t.publish("Z", "c1", MBIT)
    t.publish("X", "pe1", 4 * MBIT)
    t.publish("Y", "pe4", 4 * MBIT)
    refused = t.join("z", "X", "c1", 0.0)
    assert isinstance(refused, JoinRefused) and "not an access PE" in refused.why
    a = assigned(t.join("alice", "X", "pe2", 0.0))
    assert a.case == 4 and a.node == "pe2"
    e = assigned(t.join("erin", "X", "pe5", 0.0))
    assert e.case == 4 and e.node == "pe5", e.why  # pe2 is 4 hops away: not a neighbour
    f = assigned(t.join("frank", "Y", "pe4", 0.0))
    assert f.case == 3 and f.streamer == e.streamer, f.why  # pe5's, next door
    c = assigned(t.join("carol", "Y", "pe2", 0.0))
    assert c.case == 2 and c.streamer == a.streamer, c.why
    want = t.desired()
    assert {s[0] for s in want.streamers.values()} == {"pe2", "pe5"}
    # X: pe1 -> c1 -> {pe2, c2 -> pe5}: c1 branches; Y: pe4 -> c2 -> {pe5, c1 -> pe2}
    assert want.acquirers["pe1"]["X"] == (("forwarder", "c1"),)
    both = {("streamer", a.streamer), ("streamer", e.streamer)}
    assert set(want.forwarders["c1"]["X"]) == both
    assert want.acquirers["pe4"]["Y"] == (("forwarder", "c2"),)
    assert set(want.forwarders["c2"]["Y"]) == both
    L = t.loads()
    assert L.link_bps[frozenset(("c1", "c2"))] == 8 * MBIT  # one copy of each, each way
    assert L.node_cpu["c1"] == pytest.approx(t.limits.forwarder_cpu)
    assert t.violations() == []


def test_pruned_after_the_grace_period_unless_a_viewer_comes_back() -> None:
    t = Tree(paper_net(), Limits(grace_s=10.0))
    t.publish("X", "pe1", 4 * MBIT)
    s = assigned(t.join("a", "X", "pe2", 0.0)).streamer
    (left,) = t.leave("a", 100.0)
    assert isinstance(left, ViewerLeft) and left.prune_at == 110.0
    assert t.tick(109.0) == [] and s in t.streamers  # within the grace period
    assert assigned(t.join("b", "X", "pe2", 105.0)).case == 1  # back in time: reused
    assert t.tick(200.0) == [] and s in t.streamers  # the pending prune was cancelled
    t.leave("b", 300.0)
    evs = t.tick(310.0)
    assert [type(e) for e in evs] == [BranchPruned, StreamerReleased]
    assert isinstance(evs[0], BranchPruned) and set(evs[0].nodes) == {"c1", "pe2"}
    assert t.streamers == {} and t.contents["X"].parent == {"pe1": None}
    assert t.loads().link_bps == {} and t.desired().acquirers["pe1"]["X"] == ()


def test_a_branch_goes_but_a_shared_one_stays() -> None:
    t = Tree(paper_net(), Limits(grace_s=0.0))
    t.publish("X", "pe1", 4 * MBIT)
    t.publish("Y", "pe1", 4 * MBIT)
    s = assigned(t.join("a", "X", "pe2", 0.0)).streamer
    assigned(t.join("b", "Y", "pe2", 0.0))
    t.leave("a", 1.0)
    (pruned,) = t.tick(1.0)
    assert isinstance(pruned, BranchPruned) and pruned.content == "X"
    assert t.streamers[s].contents == ["Y"]  # the streamer stays for Y


def test_beyond_capacity_a_join_is_refused_with_each_reason() -> None:
    # 10 Mbit/s links, 4 Mbit/s content, two viewers per streamer, 1 CPU per PE: pe2
    # fills (CPU), then new streamers elsewhere send across c1-pe2 until it is full.
    t = Tree(paper_net(link_mbit=10.0), Limits(streamer_bandwidth_bps=8 * MBIT))
    t.publish("X", "pe1", 4 * MBIT)
    results = [t.join(f"v{i}", "X", "pe2", 0.0) for i in range(12)]
    ok = [r for r in results if isinstance(r, ViewerAssigned)]
    refused = [r for r in results if isinstance(r, JoinRefused)]
    assert ok and refused and t.violations() == []
    assert [r.case for r in ok] == [4, 1, 4, 1, 4, 1, 4]  # the last one on pe1
    assert ok[-1].node == "pe1" and "pe2 has no room" in ok[-1].why
    why = refused[0].why
    assert why.startswith("no edge streamer can take the viewer")
    # each candidate named with what it would break
    assert "es1-pe2 serves 12.0 Mbit/s > 8.0 Mbit/s" in why and "pe2 CPU" in why
    assert "a new streamer on pe3 (pe2 has no room): no path to the viewer has room" in why
    # content not live, unknown PE: refused, nothing changes
    before = t.dump()
    assert isinstance(t.join("z", "nope", "pe2", 0.0), JoinRefused)
    assert "not an access PE" in t.join("z", "X", "c1", 0.0).why  # type: ignore[union-attr]
    assert t.dump() == before


def test_criteria_choose_differently_and_say_so() -> None:
    def two_streamers(criterion: str) -> Tree:
        t = Tree(paper_net(), Limits(streamer_bandwidth_bps=12 * MBIT), criterion)  # type: ignore[arg-type]
        t.publish("X", "pe1", 4 * MBIT)
        for i in range(4):  # three fill the first streamer, the fourth opens a second
            assigned(t.join(f"v{i}", "X", "pe2", 0.0))
        t.leave("v0", 0.0)
        return t

    cons, qos = two_streamers("consolidation"), two_streamers("qos")
    c = assigned(cons.join("w", "X", "pe2", 1.0))
    q = assigned(qos.join("w", "X", "pe2", 1.0))
    # consolidation fills the busiest (es2 has 1 viewer, es1 has 2); QoS the least loaded
    assert c.case == q.case == 1
    assert c.streamer == "es1-pe2" and "(consolidation)" in c.why
    assert q.streamer == "es2-pe2" and "(qos)" in q.why
    with pytest.raises(TreeError):
        Tree(paper_net(), criterion="cheapest")  # type: ignore[arg-type]


def test_qos_picks_the_nearest_neighbour_consolidation_the_one_serving_x() -> None:
    # pe3 has two neighbour PEs, pe1 (2 ms away) and pe2 (4 ms), not neighbours of
    # each other: pe1 - c1 - pe3 - c2 - pe2.
    nodes = [NodeSpec(n, "pe", 1.0, 100 * MBIT) for n in ("pe1", "pe2", "pe3")]
    nodes += [NodeSpec(c, "core", 0.0, 1e10, hosts=False) for c in ("c1", "c2")]
    links = [
        LinkSpec("pe1", "c1", 1e9, 0.001),
        LinkSpec("c1", "pe3", 1e9, 0.001),
        LinkSpec("pe3", "c2", 1e9, 0.001),
        LinkSpec("c2", "pe2", 1e9, 0.003),
    ]

    def setup(criterion: str) -> Tree:
        t = Tree(Network(nodes, links), criterion=criterion)  # type: ignore[arg-type]
        t.publish("X", "pe1", 2 * MBIT)
        t.publish("Y", "pe1", 2 * MBIT)
        assert assigned(t.join("b", "X", "pe2", 0.0)).node == "pe2"  # serves X
        assert assigned(t.join("a", "Y", "pe1", 0.0)).node == "pe1"  # serves Y, has room
        return t

    c = assigned(setup("consolidation").join("z", "X", "pe3", 0.0))
    q = assigned(setup("qos").join("z", "X", "pe3", 0.0))
    assert c.case == q.case == 3
    assert c.node == "pe2" and "already serves X" in c.why and "(consolidation)" in c.why
    assert q.node == "pe1" and "has room and takes X (2.0 ms away)" in q.why


def test_the_state_survives_a_dump_and_load() -> None:
    net = paper_net()
    t = Tree(net, Limits(grace_s=5.0))
    t.publish("X", "pe1", 4 * MBIT)
    for client, pe in (("a", "pe2"), ("b", "pe3"), ("c", "pe4")):
        assigned(t.join(client, "X", pe, 0.0))
    t.leave("c", 1.0)
    again = Tree.load(net, Limits(grace_s=5.0), t.dump())
    assert again.dump() == t.dump() and again.desired() == t.desired()
    assert [type(e) for e in again.tick(6.0)] == [BranchPruned, StreamerReleased]


def test_ending_a_content_releases_everything_at_once() -> None:
    t = Tree(paper_net())
    t.publish("X", "pe1", 4 * MBIT)
    assigned(t.join("a", "X", "pe2", 0.0))
    assigned(t.join("b", "X", "pe4", 0.0))
    evs = t.unpublish("X", 1.0)
    assert sum(isinstance(e, ViewerLeft) for e in evs) == 2
    assert sum(isinstance(e, StreamerReleased) for e in evs) == 2
    assert t.viewers == {} and t.streamers == {} and "X" not in t.contents


# ---------------------------------------------------------------- properties

ops = hs.lists(
    hs.tuples(
        hs.sampled_from(["join", "join", "join", "leave", "tick", "plan", "unplan"]),
        hs.integers(0, 11),  # client
        hs.sampled_from(["X", "Y", "Z"]),
        hs.sampled_from(["pe1", "pe2", "pe3", "pe4", "pe5"]),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=ops,
    criterion=hs.sampled_from(["consolidation", "qos"]),
    link=hs.sampled_from([8.0, 20.0, 100.0]),
    cpu=hs.sampled_from([0.4, 1.0]),
)
def test_no_viewer_without_a_branch_and_nothing_over_capacity(
    ops: list[tuple[str, int, str, str]], criterion: str, link: float, cpu: float
) -> None:
    t = Tree(
        paper_net(pe_cpu=cpu, link_mbit=link, pe_mbit=4 * link),
        Limits(grace_s=2.0, streamer_bandwidth_bps=12 * MBIT),
        criterion,
    )  # type: ignore[arg-type]
    roots = {"X": "pe1", "Y": "pe4", "Z": "pe1"}
    for x, r in roots.items():
        t.publish(x, r, 3 * MBIT)
    now = 0.0
    for op, client, x, pe in ops:
        now += 1.0
        if op == "join":
            ev = t.join(f"c{client}", x, pe, now)
            if isinstance(ev, JoinRefused):
                assert ev.why  # a refusal says why
        elif op == "leave":
            t.leave(f"c{client}", now)
        elif op == "plan":  # reservations from pe: a pre-started branch, held 5 s
            t.prestart(x, pe, client % 3 + 1, now + 5.0, now)
        elif op == "unplan":
            t.unplan(x, pe, now)
        else:
            t.tick(now)
        assert t.violations() == []
        for pl in t.plans.values():  # a plan's streamer takes its content
            assert pl.streamer is None or pl.content in t.streamers[pl.streamer].contents
        for v in t.viewers.values():
            s = t.streamers[v.streamer]
            xc = t.contents[v.content]
            assert v.content in s.contents
            # the streamer's node is on the content's tree, connected to its root
            path = [s.node]
            while (p := xc.parent[path[-1]]) is not None:
                path.append(p)
            assert path[-1] == roots[v.content]
            assert v.leg[0] == s.node and v.leg[-1] == v.pe
        # every streamer the acquirers and forwarders feed exists and takes the content
        want = t.desired()
        fed = {
            (x, sid)
            for hops in (*want.acquirers.values(), *want.forwarders.values())
            for x, targets in hops.items()
            for kind, sid in targets
            if kind == "streamer"
        }
        assert fed == {(x, s.id) for s in t.streamers.values() for x in s.contents}
    # everyone leaves: after the grace period the tree shrinks to its roots
    for c in list(t.viewers):
        t.leave(c, now)
    t.tick(now + 10.0)
    assert t.streamers == {} and t.loads().link_bps == {}
    assert all(x.parent == {x.root: None} for x in t.contents.values())


# ------------------------------------------------------------------ recordings on demand


def test_a_playback_follows_the_rule_and_says_why() -> None:
    """A recording (stored at pe1) played from pe2, pe3, pe2 again and pe5: the live
    rule's cases, in its order, with the decision in ``why``."""
    t = Tree(paper_net())
    t.publish("X", "pe1", 4 * MBIT)
    live = assigned(t.join("alice", "X", "pe2", 0.0))  # a live streamer on pe2
    p = assigned(t.play("play-r1", "r1", "pe1", 2 * MBIT, "pe2", 1.0))
    assert p.case == 2 and p.streamer == live.streamer, p.why  # it has room: takes r1
    assert p.why.startswith("case 2 (consolidation): ") and "takes r1" in p.why
    again = assigned(t.play("play-r1b", "r1", "pe1", 2 * MBIT, "pe2", 2.0))
    assert again.case == 1 and again.streamer == live.streamer, again.why  # serves r1
    near = assigned(t.play("play-r2", "r2", "pe1", 2 * MBIT, "pe3", 3.0))
    assert near.case == 3 and near.node == "pe2", near.why  # pe3 has none: its neighbour
    new = assigned(t.play("play-r3", "r3", "pe1", 2 * MBIT, "pe5", 4.0))
    assert new.case == 4 and new.node == "pe5", new.why  # no neighbour within 2 hops
    assert t.violations() == []


def test_a_playback_is_pulled_one_copy_per_streamer_and_needs_no_acquirer() -> None:
    t = Tree(paper_net())
    assigned(t.play("play-r1", "r1", "pe1", 3 * MBIT, "pe4", 0.0))
    t2 = assigned(t.play("play-r1x", "r1", "pe1", 3 * MBIT, "pe5", 0.0))
    assert t2.case == 3  # pe5 has none: pe4's, a neighbour, already serves r1
    assigned(t.play("play-r1y", "r1", "pe1", 3 * MBIT, "pe2", 0.0))
    L = t.loads()
    link = lambda a, b: L.link_bps.get(frozenset((a, b)), 0.0)  # noqa: E731
    # Each streamer pulls its own copy from the storage: two cross pe1-c1, nothing is
    # duplicated on the way; pe4's streamer sends the pe5 viewer's back through c2.
    assert link("pe1", "c1") == 6 * MBIT and link("c1", "c2") == 3 * MBIT
    assert link("c2", "pe4") == 6 * MBIT  # its copy in, the pe5 viewer's stream out
    assert link("c2", "pe5") == 3 * MBIT and link("c1", "pe2") == 3 * MBIT
    assert L.forwarders == {} and "pe1" not in L.node_cpu  # no acquirer, no forwarder
    want = t.desired()
    assert want.acquirers == {} and want.forwarders == {}
    assert {x for _n, xs in want.streamers.values() for x in xs} == {"r1"}
    # A pulled content never duplicates, even at a node that could host a forwarder.
    pes = [NodeSpec(n, "pe", 1.0, 100 * MBIT) for n in ("pe1", "pe2", "pe3", "pe4")]
    links = [LinkSpec("pe1", "pe2", 20 * MBIT), LinkSpec("pe2", "pe3", 20 * MBIT),
             LinkSpec("pe2", "pe4", 20 * MBIT)]  # fmt: skip
    u = Tree(Network(pes, links), Limits(streamer_bandwidth_bps=8 * MBIT))
    assigned(u.play("a", "r9", "pe1", 8 * MBIT, "pe3", 0.0))
    assigned(u.play("b", "r9", "pe1", 8 * MBIT, "pe4", 0.0))
    assert u.loads().link_bps[frozenset(("pe1", "pe2"))] == 16 * MBIT
    assert u.loads().forwarders == {}


def test_a_refused_playback_reserves_nothing_and_a_live_id_is_not_played() -> None:
    t = Tree(paper_net(link_mbit=5.0))
    refused = t.play("play-r1", "r1", "pe1", 8 * MBIT, "pe2", 0.0)
    assert isinstance(refused, JoinRefused) and "8.0 Mbit/s spare" in refused.why, refused
    assert "r1" not in t.contents and t.streamers == {} and t.loads().link_bps == {}
    t.publish("X", "pe1", MBIT)
    assert isinstance(t.play("p", "X", "pe1", MBIT, "pe2", 0.0), JoinRefused)
    assert not t.contents["X"].pull


def test_a_playback_ended_is_released_after_the_grace_period() -> None:
    t = Tree(paper_net(), Limits(grace_s=5.0))
    s = assigned(t.play("play-r1", "r1", "pe1", 3 * MBIT, "pe2", 0.0)).streamer
    assert t.loads().link_bps[frozenset(("pe1", "c1"))] == 3 * MBIT
    (left,) = t.leave("play-r1", 10.0)
    assert isinstance(left, ViewerLeft) and left.prune_at == 15.0
    assert t.tick(14.0) == [] and "r1" in t.contents  # reserved during the grace period
    evs = t.tick(15.0)
    assert [type(e) for e in evs] == [BranchPruned, StreamerReleased]
    assert s not in t.streamers and "r1" not in t.contents and t.loads().link_bps == {}
    again = Tree.load(t.net, t.limits, t.dump())  # nothing of it left in the state either
    assert again.contents == {}


def test_a_pulled_content_survives_a_dump_and_load() -> None:
    t = Tree(paper_net())
    assigned(t.play("play-r1", "r1", "pe1", 3 * MBIT, "pe2", 0.0))
    again = Tree.load(t.net, t.limits, t.dump())
    assert again.contents["r1"].pull and again.loads() == t.loads()


# ------------------------------------------------------------------ switch copies


def switch_net(copies: tuple[str, ...]) -> Network:
    """The paper's testbed with compute on the core routers (forwarders could run
    there) and the SDN controller programming the switches of `copies`."""
    pes = [
        NodeSpec(f"pe{i}", "pe", 1.0, 100 * MBIT, copies=f"pe{i}" in copies) for i in range(1, 6)
    ]
    cores = [
        NodeSpec(c, "core", 1.0, 10_000 * MBIT, edge=False, copies=c in copies)
        for c in ("c1", "c2")
    ]
    return Network(pes + cores, list(paper_net().links.values()))


def test_switches_copy_at_every_branch_point_instead_of_forwarders() -> None:
    every = ("pe1", "pe2", "pe3", "pe4", "pe5", "c1", "c2")
    t = Tree(switch_net(every), Limits(streamer_bandwidth_bps=5 * MBIT))  # one viewer each
    t.publish("X", "pe1", 5 * MBIT)
    joins = [
        assigned(t.join(c, "X", pe, 0.0))
        for c, pe in zip("abcd", ("pe2", "pe3", "pe4", "pe5"), strict=True)
    ]
    assert [j.node for j in joins] == ["pe2", "pe3", "pe4", "pe5"]
    # X: pe1 -> c1 -> {pe2, pe3, c2 -> {pe4, pe5}}: two levels of branch points, both
    # in the switches; the core routers could host forwarders but none runs.
    want = t.desired()
    assert want.switched == {"X": ("c1", "c2")}
    assert want.forwarders == {}
    assert set(want.acquirers["pe1"]["X"]) == {("streamer", j.streamer) for j in joins}
    L = t.loads()
    # One copy per link of the tree (the acquirer sends one), none per streamer.
    for a, b in [
        ("pe1", "c1"),
        ("c1", "pe2"),
        ("c1", "pe3"),
        ("c1", "c2"),
        ("c2", "pe4"),
        ("c2", "pe5"),
    ]:
        assert L.link_bps[frozenset((a, b))] == 5 * MBIT, (a, b)
    assert L.node_bps["pe1"] == 5 * MBIT and L.node_bps["c1"] == 15 * MBIT
    assert "c1" not in L.node_cpu and "c2" not in L.node_cpu  # no forwarder's CPU
    why = joins[-1].why
    assert "copies in the switches (groups ALL at c1, c2; no forwarder, no function hop" in why
    # The last viewer of pe5 leaves: c2 no longer branches, the tree says so.
    t.leave("d", 0.0)
    t.tick(100.0)
    assert t.desired().switched == {"X": ("c1",)}
    assert t.loads().link_bps.get(frozenset(("c2", "pe5")), 0.0) == 0.0


def test_a_switch_the_controller_does_not_program_keeps_the_forwarders() -> None:
    # c2's bridge is not the controller's: the path does not allow switch copies.
    t = Tree(
        switch_net(("pe1", "pe2", "pe3", "pe4", "pe5", "c1")),
        Limits(streamer_bandwidth_bps=5 * MBIT),
    )
    t.publish("X", "pe1", 5 * MBIT)
    joins = [
        assigned(t.join(c, "X", pe, 0.0))
        for c, pe in zip("abcd", ("pe2", "pe3", "pe4", "pe5"), strict=True)
    ]
    want = t.desired()
    assert want.switched == {}
    assert set(want.forwarders) == {"c1", "c2"}
    assert "copies by functions (forwarders: c1, c2; the switches of c2 are not" in joins[-1].why
    # Before the tree reaches c2, X's switches are all the controller's: switch copies.
    t2 = Tree(switch_net(("pe1", "pe2", "pe3", "c1")), Limits(streamer_bandwidth_bps=5 * MBIT))
    t2.publish("X", "pe1", 5 * MBIT)
    assigned(t2.join("a", "X", "pe2", 0.0))
    b = assigned(t2.join("b", "X", "pe3", 0.0))
    assert t2.desired().switched == {"X": ("c1",)} and "groups ALL at c1" in b.why


def test_a_portal_at_a_pe_leaves_its_streamers_less_spare_cpu() -> None:
    """The CPU a viewers' captive portal takes at its PE (reserved_cpu) counts in the
    loads: where a new streamer fits beside nothing, it does not fit beside a portal,
    and the viewer goes to the next PE out, saying why; a dump and load keeps none of
    it (the caller says it each time)."""
    net = paper_net(pe_cpu=0.45)  # a new streamer with one content: 0.2 + 0.1
    bare = Tree(net)
    bare.publish("X", "pe1", 2 * MBIT)
    assert assigned(bare.join("a", "X", "pe2", 0.0)).node == "pe2"
    t = Tree(net, reserved_cpu={"pe2": 0.2})
    assert t.loads().node_cpu == {"pe2": pytest.approx(0.2)}
    t.publish("X", "pe1", 2 * MBIT)
    a = assigned(t.join("a", "X", "pe2", 0.0))
    assert a.case == 4 and a.node != "pe2", a.why
    assert "pe2 CPU 0.50 > 0.45" in a.why, a.why
    assert t.violations() == []
    assert t.loads().node_cpu["pe2"] == pytest.approx(0.2)
    # more than the node has: the portal blocks the tree's functions there only
    full = Tree(net, reserved_cpu={"pe3": 5.0})
    full.publish("X", "pe1", 2 * MBIT)
    assert full.loads().node_cpu == {"pe1": pytest.approx(0.1), "pe3": pytest.approx(0.45)}
    assert assigned(full.join("b", "X", "pe2", 0.0)).node == "pe2"
    again = Tree.load(net, t.limits, t.dump())
    assert "pe2" not in again.loads().node_cpu
