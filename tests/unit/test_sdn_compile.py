"""The intent compiler, checked by running packets through the flows it emits.

`simulate` is a tiny OpenFlow 1.3 table: highest priority match wins, actions
rewrite fields, outputs follow the port's peer. A test states where a packet
ends up (and what it looks like there), not which flows exist.
"""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from netfate.orchestrator.sdn.compile import (
    OFPP_IN_PORT,
    PRIO_DISCOVERY,
    PRIO_DROP,
    Output,
    compile_intents,
    semantic_conflict,
)
from netfate.orchestrator.sdn.intents import (
    BASE_COOKIE,
    Endpoint,
    Intent,
    NetworkView,
    SteeringIntent,
    UnknownName,
    cookie_for,
    is_netfate_cookie,
    parse_intent,
)
from sdn_fixtures import IP, MAC, arp_req, conn, ip_pkt, make_view, simulate


def test_endpoint_parse_round_trip() -> None:
    for text in [
        "host:alice",
        "instance:fw1",
        "subnet:10.1.0.0/24@pe",
        "subnet:10.1.0.0/24@pe/pel",
    ]:
        assert str(Endpoint.parse(text)) == text
    with pytest.raises(ValueError, match="unknown kind"):
        Endpoint.parse("router:r1")
    with pytest.raises(ValueError, match="needs @NODE"):
        Endpoint.parse("subnet:10.1.0.0/24")
    with pytest.raises(ValueError, match="host bits"):
        Endpoint.parse("subnet:10.1.0.1/24@pe")


def test_intent_json_round_trip_and_validation() -> None:
    it = parse_intent(
        {"kind": "steering", "id": "s1", "host": "alice", "chain": ["fw1"], "to": "host:server"}
    )
    assert isinstance(it, SteeringIntent)
    assert parse_intent(it.model_dump(mode="json")) == it
    bad = [
        {"kind": "tunnel", "id": "t", "a": "host:a", "b": "host:b", "protocol": "tcp"},
        {"kind": "tunnel", "id": "t", "a": "host:a", "b": "host:b", "protocol": "icmp", "port": 1},
        {"kind": "connectivity", "id": "c", "a": "host:a", "b": "host:a"},
        {"kind": "connectivity", "id": "bad id!", "a": "host:a", "b": "host:b"},
        {"kind": "steering", "id": "s", "host": "a", "chain": ["i", "i"], "to": "host:b"},
        {"kind": "steering", "id": "s", "host": "a", "chain": [], "to": "host:b"},
        {"kind": "replication", "id": "r", "source": "host:a", "port": 5, "targets": ["host:a"]},
        {"kind": "teleport", "id": "x"},
    ]
    for data in bad:
        with pytest.raises(pydantic.ValidationError):
            parse_intent(data)


def test_cookie_is_deterministic_and_marked() -> None:
    assert cookie_for("s1") == cookie_for("s1") != cookie_for("s2")
    assert is_netfate_cookie(cookie_for("s1"))
    assert not is_netfate_cookie(0) and not is_netfate_cookie(0x1234)


# --- the base pipeline ----------------------------------------------------


def test_base_pipeline_discovery_and_drop() -> None:
    view = make_view()
    res = compile_intents(view, [])
    # Unknown traffic from a host goes to the controller; from a link it is dropped.
    assert simulate(view, res, "cpe1", 1, ip_pkt("alice", "bob")) == [
        ("controller@cpe1", {**ip_pkt("alice", "bob")})
    ]
    assert simulate(view, res, "pe", 1, ip_pkt("alice", "bob")) == []
    assert all(f.cookie == BASE_COOKIE for fs in res.flows.values() for f in fs)
    prios = {f.priority for f in res.flows["cpe1"]}
    assert {PRIO_DROP, PRIO_DISCOVERY} <= prios


def test_instance_arp_goes_to_controller_for_proxy_arp() -> None:
    view = make_view()
    res = compile_intents(view, [])
    req = {**arp_req("fw1", IP["server"]), "eth_src": MAC["fw1"]}
    assert [p for p, _ in simulate(view, res, "cpe1", 3, req)] == ["controller@cpe1"]


# --- connectivity ---------------------------------------------------------


def test_connectivity_both_directions_across_three_switches() -> None:
    view = make_view()
    res = compile_intents(view, [conn("c1", "host:alice", "host:bob")])
    assert not res.errors and not res.pending
    assert simulate(view, res, "cpe1", 1, ip_pkt("alice", "bob")) == [
        ("host:bob", ip_pkt("alice", "bob"))
    ]
    assert simulate(view, res, "cpe2", 1, ip_pkt("bob", "alice")) == [
        ("host:alice", ip_pkt("bob", "alice"))
    ]
    # ARP both ways (request broadcast, reply unicast).
    assert [p for p, _ in simulate(view, res, "cpe1", 1, arp_req("alice", IP["bob"]))] == [
        "host:bob"
    ]
    reply = {**arp_req("bob", IP["alice"]), "eth_dst": MAC["alice"], "arp_op": 2}
    assert [p for p, _ in simulate(view, res, "cpe2", 1, reply)] == ["host:alice"]
    # Nobody else: carol's traffic to bob is not forwarded.
    assert [p for p, _ in simulate(view, res, "cpe1", 1, ip_pkt("server", "bob"))] == [
        "controller@cpe1"
    ]
    assert res.flow_count["c1"] == 12  # 3 switches x 2 directions x (data + ARP)
    cookies = {f.cookie for fs in res.flows.values() for f in fs} - {BASE_COOKIE}
    assert cookies == {cookie_for("c1")}


def test_connectivity_spoofed_source_port_is_dropped() -> None:
    view = make_view()
    res = compile_intents(view, [conn("c1", "host:alice", "host:bob")])
    # alice's MAC arriving from the server's port on pe does not ride alice's flows.
    assert [p for p, _ in simulate(view, res, "pe", 3, ip_pkt("alice", "bob"))] == ["controller@pe"]


def test_connectivity_host_to_subnet() -> None:
    view = make_view()
    res = compile_intents(view, [conn("c1", "host:alice", "subnet:10.9.0.0/16@pe")])
    assert not res.errors
    pkt = {**ip_pkt("alice", "server"), "ipv4_dst": "10.9.3.4"}
    assert [p for p, _ in simulate(view, res, "cpe1", 1, pkt)] == ["local:pe"]
    back = {**ip_pkt("server", "alice"), "ipv4_src": "10.9.3.4", "eth_src": "02:aa:00:00:00:01"}
    assert [p for p, _ in simulate(view, res, "pe", 4, back)] == ["host:alice"]
    outside = {**back, "ipv4_src": "10.10.0.1"}
    assert simulate(view, res, "pe", 4, outside) == []


def test_connectivity_same_switch_uses_both_access_ports() -> None:
    view = make_view()
    res = compile_intents(view, [conn("c1", "host:bob", "host:cam")])
    assert [p for p, _ in simulate(view, res, "cpe2", 1, ip_pkt("bob", "cam"))] == ["host:cam"]
    assert res.flow_count["c1"] == 4


# --- steering -------------------------------------------------------------


def steer(iid: str, host: str, chain: list[str], to: str, **kw: Any) -> Intent:
    return parse_intent(
        {"kind": "steering", "id": iid, "host": host, "chain": chain, "to": to, **kw}
    )


def test_steering_through_local_firewall_then_on() -> None:
    view = make_view()
    res = compile_intents(view, [steer("s1", "alice", ["fw1"], "host:server")])
    assert not res.errors and not res.pending
    # alice -> server goes to fw1 first, with fw1's MAC as destination (Table III).
    (where, pkt) = simulate(view, res, "cpe1", 1, ip_pkt("alice", "server"))[0]
    assert where == "instance:fw1" and pkt["eth_dst"] == MAC["fw1"]
    # fw1 forwards it (its own MAC as source, any next hop): it reaches the server.
    fwd = {**pkt, "eth_src": MAC["fw1"], "eth_dst": "02:99:99:99:99:99"}
    (where, pkt2) = simulate(view, res, "cpe1", 3, fwd)[0]
    assert where == "host:server" and pkt2["eth_dst"] == MAC["server"]
    # The reply crosses fw1 too (symmetric by default).
    (where, pkt3) = simulate(view, res, "pe", 3, ip_pkt("server", "alice"))[0]
    assert where == "instance:fw1"
    (where, _) = simulate(view, res, "cpe1", 3, {**pkt3, "eth_src": MAC["fw1"]})[0]
    assert where == "host:alice"
    # ARP between the ends goes direct.
    assert [p for p, _ in simulate(view, res, "cpe1", 1, arp_req("alice", IP["server"]))] == [
        "host:server"
    ]


def test_steering_chain_of_two_across_nodes() -> None:
    view = make_view()
    res = compile_intents(view, [steer("s1", "bob", ["fw1", "fw2"], "host:alice")])
    assert not res.errors
    visited = []
    node, port, pkt = "cpe2", 1, ip_pkt("bob", "alice")
    at_port = {"instance:fw1": ("cpe1", 3, "fw1"), "instance:fw2": ("pe", 5, "fw2")}
    for _ in range(4):
        [(where, pkt)] = simulate(view, res, node, port, pkt)
        visited.append(where)
        if where not in at_port:
            break
        node, port, name = at_port[where]
        pkt = {**pkt, "eth_src": MAC[name]}
    assert visited == ["instance:fw1", "instance:fw2", "host:alice"]


def test_steering_not_symmetric_replies_go_direct() -> None:
    view = make_view()
    res = compile_intents(view, [steer("s1", "alice", ["fw2"], "host:bob", symmetric=False)])
    assert [p for p, _ in simulate(view, res, "cpe2", 1, ip_pkt("bob", "alice"))] == ["host:alice"]


def test_steering_wins_over_connectivity_and_deleting_it_restores_the_direct_path() -> None:
    view = make_view()
    c = conn("c1", "host:alice", "host:server")
    s = steer("s1", "alice", ["fw1"], "host:server")
    both = compile_intents(view, [c, s])
    assert [p for p, _ in simulate(view, both, "cpe1", 1, ip_pkt("alice", "server"))] == [
        "instance:fw1"
    ]
    only_c = compile_intents(view, [c])
    assert [p for p, _ in simulate(view, only_c, "cpe1", 1, ip_pkt("alice", "server"))] == [
        "host:server"
    ]
    # Deleting s1 removes exactly the flows carrying s1's cookie.
    s_cookie = cookie_for("s1")
    for node in only_c.flows:
        remaining = {f for f in both.flows[node] if f.cookie != s_cookie}
        assert {f.key for f in remaining} == {f.key for f in only_c.flows[node]}


def test_steering_of_unattached_host_is_pending_then_compiles_with_override() -> None:
    view = make_view()
    it = steer("s1", "carol", ["fw2"], "host:server")
    res = compile_intents(view, [it])
    assert "carol" in res.pending["s1"] and not res.errors
    assert "s1" not in res.flow_count
    # The controller saw carol on cpe1's access port 1 (she moved there).
    res2 = compile_intents(view, [it], overrides={MAC["carol"]: ("cpe1", 1)})
    assert "s1" not in res2.pending
    [(where, _)] = simulate(view, res2, "cpe1", 1, ip_pkt("carol", "server"))
    assert where == "instance:fw2"


# --- tunnel ---------------------------------------------------------------


def test_tunnel_allows_one_port_and_nothing_else() -> None:
    view = make_view()
    t = parse_intent(
        {
            "kind": "tunnel",
            "id": "usb",
            "a": "host:alice",
            "b": "host:server",
            "protocol": "tcp",
            "port": 3240,
        }
    )
    res = compile_intents(view, [t])
    ok = ip_pkt("alice", "server", tcp_dst=3240)
    assert [p for p, _ in simulate(view, res, "cpe1", 1, ok)] == ["host:server"]
    back = ip_pkt("server", "alice", tcp_src=3240, tcp_dst=40000)
    assert [p for p, _ in simulate(view, res, "pe", 3, back)] == ["host:alice"]
    for other in (ip_pkt("alice", "server", tcp_dst=22), ip_pkt("alice", "server", ip_proto=17)):
        assert [p for p, _ in simulate(view, res, "cpe1", 1, other)] == ["controller@cpe1"]
    # A reply from another port is not let through either.
    assert simulate(view, res, "pe", 3, ip_pkt("server", "alice", tcp_src=22))[0][0] != (
        "host:alice"
    )


def test_tunnel_icmp() -> None:
    view = make_view()
    t = parse_intent(
        {"kind": "tunnel", "id": "p", "a": "host:alice", "b": "host:bob", "protocol": "icmp"}
    )
    res = compile_intents(view, [t])
    ping = {**ip_pkt("alice", "bob"), "ip_proto": 1}
    assert [p for p, _ in simulate(view, res, "cpe1", 1, ping)] == ["host:bob"]


# --- replication ----------------------------------------------------------


def test_replication_group_all_copies_to_every_target() -> None:
    view = make_view()
    r = parse_intent(
        {
            "kind": "replication",
            "id": "tv",
            "source": "host:server",
            "protocol": "udp",
            "port": 5004,
            "targets": ["host:alice", "host:bob", "instance:fw2"],
        }
    )
    res = compile_intents(view, [r])
    assert not res.errors and not res.pending
    assert len(res.groups["pe"]) == 1
    pkt = {**ip_pkt("server", "alice"), "ip_proto": 17, "udp_dst": 5004, "ipv4_dst": "10.0.0.99"}
    pkt.pop("tcp_dst")
    got = simulate(view, res, "pe", 3, pkt)
    assert sorted(p for p, _ in got) == ["host:alice", "host:bob", "instance:fw2"]
    for where, copy in got:
        name = where.split(":")[1]
        assert copy["eth_dst"] == MAC[name] and copy["ipv4_dst"] == IP[name]


def test_replication_branching_at_another_node() -> None:
    view = make_view()
    r = parse_intent(
        {
            "kind": "replication",
            "id": "tv",
            "source": "host:alice",
            "port": 5004,
            "at": "pe",
            "targets": ["host:bob", "host:server"],
        }
    )
    res = compile_intents(view, [r])
    assert not res.groups["cpe1"] and len(res.groups["pe"]) == 1
    pkt = {**ip_pkt("alice", "server"), "ip_proto": 17, "udp_dst": 5004}
    got = simulate(view, res, "cpe1", 1, pkt)
    assert sorted(p for p, _ in got) == ["host:bob", "host:server"]


def test_replication_with_an_unattached_target_is_partial() -> None:
    view = make_view()
    r = parse_intent(
        {
            "kind": "replication",
            "id": "tv",
            "source": "host:server",
            "port": 5004,
            "targets": ["host:alice", "host:carol"],
        }
    )
    res = compile_intents(view, [r])
    assert "carol" in res.pending["tv"]
    pkt = {**ip_pkt("server", "alice"), "ip_proto": 17, "udp_dst": 5004}
    assert [p for p, _ in simulate(view, res, "pe", 3, pkt)] == ["host:alice"]


# --- bad input and conflicts -----------------------------------------------


@pytest.mark.parametrize(
    ("data", "kind", "name"),
    [
        ({"kind": "connectivity", "a": "host:alice", "b": "host:mallory"}, "host", "mallory"),
        (
            {"kind": "steering", "host": "alice", "chain": ["fw9"], "to": "host:bob"},
            "instance",
            "fw9",
        ),
        ({"kind": "connectivity", "a": "host:alice", "b": "subnet:10.9.0.0/16@x"}, "node", "x"),
        (
            {"kind": "connectivity", "a": "host:alice", "b": "subnet:10.9.0.0/16@pe/nope"},
            "port",
            "pe/nope",
        ),
        (
            {
                "kind": "replication",
                "source": "host:alice",
                "port": 1,
                "at": "zz",
                "targets": ["host:bob"],
            },
            "node",
            "zz",
        ),
    ],
)
def test_unknown_names_are_refused_with_the_name(
    data: dict[str, Any], kind: str, name: str
) -> None:
    from netfate.orchestrator.sdn.compile import check_names

    view = make_view()
    it = parse_intent({"id": "x1", **data})
    with pytest.raises(UnknownName) as ei:
        check_names(view, it)
    assert ei.value.kind == kind and ei.value.name == name and name in str(ei.value)
    res = compile_intents(view, [it])
    assert "x1" in res.errors and "x1" not in res.flow_count


def test_two_steering_intents_for_one_host_conflict() -> None:
    a = steer("s1", "alice", ["fw1"], "host:server")
    b = steer("s2", "alice", ["fw2"], "host:bob")
    assert "already steered" in (semantic_conflict(b, a) or "")
    res = compile_intents(make_view(), [a, b])
    assert "s2" in res.errors and "s1" not in res.errors
    assert "s2" not in res.flow_count


def test_tunnel_overlapping_connectivity_conflicts() -> None:
    c = conn("c1", "host:alice", "host:server")
    t = parse_intent(
        {
            "kind": "tunnel",
            "id": "t1",
            "a": "host:server",
            "b": "host:alice",
            "protocol": "udp",
            "port": 9,
        }
    )
    assert "overlaps" in (semantic_conflict(t, c) or "")
    assert "overlaps" in (semantic_conflict(c, t) or "")
    t2 = t.model_copy(update={"id": "t2"})
    assert "already opens" in (semantic_conflict(t2, t) or "")
    t3 = t.model_copy(update={"id": "t3", "port": 10})
    assert semantic_conflict(t3, t) is None


def test_duplicate_id_and_duplicate_connectivity_conflict() -> None:
    c = conn("c1", "host:alice", "host:bob")
    assert "already exists" in (semantic_conflict(conn("c1", "host:x", "host:y"), c) or "")
    assert "already connects" in (semantic_conflict(conn("c2", "host:bob", "host:alice"), c) or "")


def test_flow_level_contradiction_is_a_conflict() -> None:
    # Two replications of the same flow from alice, at different branch nodes:
    # the ingress flow on cpe1 would have to go two ways.
    view = make_view()
    r1 = parse_intent(
        {
            "kind": "replication",
            "id": "r1",
            "source": "host:alice",
            "port": 5004,
            "targets": ["host:bob"],
        }
    )
    r2 = parse_intent(
        {
            "kind": "replication",
            "id": "r2",
            "source": "host:alice",
            "port": 5004,
            "dst_ip": "10.0.0.99",
            "at": "pe",
            "targets": ["host:server"],
        }
    )
    res = compile_intents(view, [r1, r2])
    assert "r1" not in res.errors
    # r2's ingress matches a subset of r1's packets but at the same priority with
    # a different match: no contradiction. A truly identical match is refused:
    r3 = r2.model_copy(update={"id": "r3", "dst_ip": None})
    assert semantic_conflict(r3, r1) is not None
    res = compile_intents(view, [r1, r3])
    assert "r3" in res.errors


def test_shared_arp_flows_survive_deleting_one_owner() -> None:
    view = make_view()
    tcp = {"kind": "tunnel", "a": "host:alice", "b": "host:server", "protocol": "tcp"}
    t1 = parse_intent({**tcp, "id": "t1", "port": 22})
    t2 = parse_intent({**tcp, "id": "t2", "port": 80})
    both = compile_intents(view, [t1, t2])
    assert not both.errors
    only2 = compile_intents(view, [t2])
    # ARP between alice and server is still there after t1 is gone, now owned by t2.
    assert [p for p, _ in simulate(view, only2, "cpe1", 1, arp_req("alice", IP["server"]))] == [
        "host:server"
    ]
    arp_flows = [
        f
        for f in only2.flows["cpe1"]
        if ("eth_type", 0x0806) in f.match and f.cookie != BASE_COOKIE
    ]
    assert arp_flows and all(f.cookie == cookie_for("t2") for f in arp_flows)


def test_no_path_is_pending() -> None:
    view = make_view()
    data = view.model_dump()
    # Drop pe's port toward cpe2: the link is down.
    data["nodes"][2]["ports"] = [p for p in data["nodes"][2]["ports"] if p["peer"] != "node:cpe2"]
    cut = NetworkView.model_validate(data)
    res = compile_intents(cut, [conn("c1", "host:alice", "host:bob")])
    assert "no path" in res.pending["c1"]


def test_compile_is_deterministic() -> None:
    view = make_view()
    intents = [
        conn("c1", "host:alice", "host:bob"),
        steer("s1", "alice", ["fw1"], "host:server"),
    ]
    assert compile_intents(view, intents).flows == compile_intents(view, intents).flows


def test_every_intent_flow_matches_in_port_and_outputs_validly() -> None:
    view = make_view()
    intents = [
        conn("c1", "host:alice", "host:bob"),
        steer("s1", "alice", ["fw1", "fw2"], "host:server"),
        parse_intent(
            {
                "kind": "replication",
                "id": "r",
                "source": "host:server",
                "port": 5,
                "targets": ["host:alice", "host:bob"],
            }
        ),
    ]
    res = compile_intents(view, intents)
    for node, flows in res.flows.items():
        ofports = {p.ofport for n in view.nodes if n.name == node for p in n.ports}
        for f in flows:
            if f.cookie == BASE_COOKIE:
                continue
            m = dict(f.match)
            assert m["in_port"] in ofports
            for a in f.actions:
                if isinstance(a, Output):
                    assert a.port in ofports or a.port == OFPP_IN_PORT
