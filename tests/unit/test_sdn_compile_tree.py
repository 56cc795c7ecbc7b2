"""Replication as a multicast tree: a group ALL on every switch where the tree
branches, over several levels, a copy per link, targets added and removed.

Topology (a tree of switches, the source's copies branch twice below it):

    s0 (src) -- s1 (r1) -- s2 (r2)
                  |
                  s3 -- s4 (r4, r4b)
                  |
                  s5 (r5)

r1 sits on the first branch switch itself; s4 has two receivers, so it branches
toward its own ports.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from netfate.orchestrator.sdn.compile import (
    Output,
    SetField,
    ToGroup,
    compile_intents,
    group_id_for,
)
from netfate.orchestrator.sdn.intents import (
    NetworkView,
    ReplicationIntent,
    cookie_for,
    parse_intent,
)
from netfate.orchestrator.sdn.reconcile import as_entries, plan
from sdn_fixtures import simulate

HOSTS = {"src": "s0", "r1": "s1", "r2": "s2", "r4": "s4", "r4b": "s4", "r5": "s5"}
LINKS = [("s0", "s1"), ("s1", "s2"), ("s1", "s3"), ("s3", "s4"), ("s3", "s5")]


def mac(h: str) -> str:
    return f"02:00:00:00:{list(HOSTS).index(h) + 1:02x}:00"


def ip(h: str) -> str:
    return f"10.1.0.{list(HOSTS).index(h) + 1}"


def view() -> NetworkView:
    ports: dict[str, list[dict[str, Any]]] = {f"s{i}": [] for i in range(6)}
    for a, b in LINKS:
        for x, y in ((a, b), (b, a)):
            ports[x].append({"name": f"{x}-{y}", "ofport": len(ports[x]) + 1, "peer": f"node:{y}"})
    for h, n in HOSTS.items():
        ports[n].append({"name": f"{n}-{h}", "ofport": len(ports[n]) + 1, "peer": f"host:{h}"})
    return NetworkView.model_validate(
        {
            "nodes": [
                {"name": n, "dpid": i + 1, "ports": ps} for i, (n, ps) in enumerate(ports.items())
            ],
            "hosts": [{"name": h, "mac": mac(h), "ip": ip(h), "node": n} for h, n in HOSTS.items()],
            "links": [{"a": a, "b": b} for a, b in LINKS],
        }
    )


def port(v: NetworkView, node: str, peer: str) -> int:
    n = next(n for n in v.nodes if n.name == node)
    return next(p.ofport for p in n.ports if p.peer == peer)


def tv(*targets: str, **extra: Any) -> ReplicationIntent:
    it = parse_intent(
        {
            "kind": "replication",
            "id": "tv",
            "source": "host:src",
            "port": 5004,
            "dst_ip": "239.1.2.3",
            "targets": [f"host:{t}" for t in targets],
            **extra,
        }
    )
    assert isinstance(it, ReplicationIntent)
    return it


def datagram() -> dict[str, Any]:
    return {
        "eth_src": mac("src"),
        "eth_dst": "01:00:5e:01:02:03",
        "eth_type": 0x0800,
        "ipv4_src": ip("src"),
        "ipv4_dst": "239.1.2.3",
        "ip_proto": 17,
        "udp_dst": 5004,
    }


def send(v: NetworkView, res: Any) -> tuple[list[tuple[str, dict[str, Any]]], Counter[Any]]:
    crossed: list[tuple[str, str]] = []
    got = simulate(v, res, "s0", port(v, "s0", "host:src"), datagram(), crossed)
    return got, Counter(crossed)


def test_groups_on_every_branch_switch_over_two_levels_and_one_copy_per_link() -> None:
    v = view()
    res = compile_intents(v, [tv("r1", "r2", "r4", "r4b", "r5")])
    assert not res.errors and not res.pending
    got, crossed = send(v, res)
    # Each receiver gets the datagram once, addressed to it.
    assert sorted(w for w, _ in got) == ["host:r1", "host:r2", "host:r4", "host:r4b", "host:r5"]
    for where, copy in got:
        h = where.split(":")[1]
        assert (copy["eth_dst"], copy["ipv4_dst"]) == (mac(h), ip(h))
    # Each link of the tree carries one copy, downward only.
    assert crossed == Counter({link: 1 for link in LINKS})
    # Groups exactly where the tree branches: s1 (r1, s2, s3), s3 (s4, s5), s4 (r4, r4b).
    assert {n for n, gs in res.groups.items() if gs} == {"s1", "s3", "s4"}
    gid = group_id_for("tv")

    def buckets(node: str) -> set[tuple[Any, ...]]:
        (g,) = res.groups[node]
        assert g.group_id == gid and g.type == "all"
        return set(g.buckets)

    def rewrite(h: str, node: str) -> tuple[Any, ...]:
        return (
            SetField("eth_dst", mac(h)),
            SetField("ipv4_dst", ip(h)),
            Output(port(v, node, f"host:{h}")),
        )

    assert buckets("s1") == {
        rewrite("r1", "s1"),
        (Output(port(v, "s1", "node:s2")),),
        (Output(port(v, "s1", "node:s3")),),
    }
    assert buckets("s3") == {
        (Output(port(v, "s3", "node:s4")),),
        (Output(port(v, "s3", "node:s5")),),
    }
    assert buckets("s4") == {rewrite("r4", "s4"), rewrite("r4b", "s4")}
    # A switch that does not branch forwards (s0) or rewrites for its one target (s2).
    (s0,) = [f for f in res.flows["s0"] if f.cookie == cookie_for("tv")]
    assert s0.actions == (Output(port(v, "s0", "node:s1")),)
    (s2,) = [f for f in res.flows["s2"] if f.cookie == cookie_for("tv")]
    assert s2.actions == rewrite("r2", "s2")
    assert all(
        ToGroup(gid) in f.actions
        for n in ("s1", "s3", "s4")
        for f in res.flows[n]
        if f.cookie == cookie_for("tv")
    )


def _switch_plan(v: NetworkView, before: Any, after: Any, node: str) -> Any:
    """What reconciling `node` from `before`'s table to `after`'s sends."""
    have = {g.group_id: g for g in before.groups[node]}
    return plan(after.flows[node], as_entries(before.flows[node]), after.groups[node], have)


@pytest.mark.parametrize("change", ["add", "remove"])
def test_a_target_added_or_removed_changes_only_its_branch(change: str) -> None:
    v = view()
    small = compile_intents(v, [tv("r2", "r4")])
    big = compile_intents(v, [tv("r2", "r4", "r5")])
    before, after = (small, big) if change == "add" else (big, small)
    # s3 goes from passing the flow on to s4 to a group for s4 and s5 (or back);
    # s5 gains (loses) its flow; nothing else is touched.
    touched = {n for n in before.flows if _switch_plan(v, before, after, n)}
    assert touched == {"s3", "s5"}
    p3 = _switch_plan(v, before, after, "s3")
    if change == "add":
        assert [g.group_id for g in p3.group_adds] == [group_id_for("tv")]
        assert not p3.group_dels and len(p3.flow_adds) == 1  # replaced in place
    else:
        assert p3.group_dels == [group_id_for("tv")] and len(p3.flow_adds) == 1
        assert not p3.flow_dels  # s3's flow is replaced, never missing
    got, crossed = send(v, after)
    want = ["host:r2", "host:r4", "host:r5"] if change == "add" else ["host:r2", "host:r4"]
    assert sorted(w for w, _ in got) == want
    assert set(crossed.values()) == {1}


def test_a_third_target_under_a_branch_modifies_its_group() -> None:
    v = view()
    two = compile_intents(v, [tv("r2", "r4", "r5")])
    three = compile_intents(v, [tv("r2", "r4", "r4b", "r5")])
    p4 = _switch_plan(v, two, three, "s4")
    assert p4.group_adds and not p4.group_mods  # s4 starts branching
    four = compile_intents(v, [tv("r1", "r2", "r4", "r4b", "r5")])
    p1 = _switch_plan(v, three, four, "s1")
    assert [len(g.buckets) for g in p1.group_mods] == [3] and not p1.flow_adds
    assert not _switch_plan(v, three, four, "s3") and not _switch_plan(v, three, four, "s4")


def test_removing_the_intent_removes_its_flows_and_groups() -> None:
    v = view()
    full = compile_intents(v, [tv("r1", "r2", "r4", "r4b", "r5")])
    empty = compile_intents(v, [])
    for node in full.flows:
        p = _switch_plan(v, full, empty, node)
        ours = {f.key for f in full.flows[node] if f.cookie == cookie_for("tv")}
        assert {(d.table, d.priority, d.match) for d in p.flow_dels} == ours
        assert p.group_dels == sorted(g.group_id for g in full.groups[node])
        assert not p.flow_adds and not p.group_adds
    assert not empty.groups["s1"] and not any(empty.groups.values())


def test_branching_from_another_node_and_a_target_out_of_reach() -> None:
    v = view()
    # From s3: the flow goes unreplicated s0 -> s1 -> s3, then branches there; r2's
    # copy goes back up to s1 (a different port, so its own flow) and down to s2.
    res = compile_intents(v, [tv("r2", "r4", "r5", at="s3")])
    got, crossed = send(v, res)
    assert sorted(w for w, _ in got) == ["host:r2", "host:r4", "host:r5"]
    assert crossed[("s3", "s1")] == 1 and crossed[("s1", "s3")] == 1
    assert {n for n, gs in res.groups.items() if gs} == {"s3"}
    assert len(next(iter(res.groups["s3"])).buckets) == 3
    # A target whose switch is cut off is pending; the others still get copies.
    cut = v.model_copy(update={"links": v.links, "nodes": [
        n.model_copy(update={"ports": [p for p in n.ports if p.peer != "node:s5"]})
        if n.name == "s3" else n
        for n in v.nodes
    ]})  # fmt: skip
    res = compile_intents(cut, [tv("r2", "r4", "r5")])
    assert "no path from s0 to s5" in res.pending["tv"]
    got, _ = send(cut, res)
    assert sorted(w for w, _ in got) == ["host:r2", "host:r4"]


def test_unchanged_copies_still_leave_the_branch_node_only() -> None:
    v = view()
    res = compile_intents(v, [tv("r4", "r4b", "r5", at="s4", rewrite=False)])
    assert "host:r5 is not on node s4" in res.pending["tv"]
    got, _ = send(v, res)
    assert sorted(w for w, _ in got) == ["host:r4", "host:r4b"]
    assert all(c["ipv4_dst"] == "239.1.2.3" for _, c in got)
    assert [len(g.buckets) for g in res.groups["s4"]] == [2]
    with pytest.raises(ValueError, match="a target appears twice"):
        tv("r4", "r4")
