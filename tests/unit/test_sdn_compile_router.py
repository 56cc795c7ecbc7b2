"""Compiler addition for a host whose router is an instance (a Personal Network's vHG).

`above_gateway` connectivity joins a host and an instance by MAC, one tier above
the gateway flows (which take every IPv4 frame of the host to its node, and every
IPv4 frame of the instance too): the host's frames to the instance's MAC, and the
instance's to the host's MAC, whatever addresses they carry (a DHCP lease the
view does not know). Checked with the packet simulator, which also fails when
two different flows tie at one priority.
"""

from __future__ import annotations

import pydantic
import pytest

from netfate.orchestrator.sdn.compile import PRIO_CONNECTIVITY_ROUTER, compile_intents
from netfate.orchestrator.sdn.intents import ConnectivityIntent, Intent, parse_intent
from sdn_fixtures import IP, MAC, arp_req, conn, ip_pkt, make_view, simulate

LEASE = "10.0.0.150"  # what alice got from fw1's DHCP: the view still has 10.0.0.10
ALIAS = "10.0.0.201"
BCAST = "ff:ff:ff:ff:ff:ff"


def _router() -> Intent:
    return parse_intent(
        {"kind": "connectivity", "id": "router", "a": "host:alice", "b": "instance:fw1",
         "above_gateway": True}
    )  # fmt: skip


def _dhcp_copy() -> Intent:
    # A DHCP client has no address yet: what arrives on alice's port from 0.0.0.0.
    return parse_intent(
        {"kind": "replication", "id": "dhcp", "source": "subnet:0.0.0.0/32@cpe1/c1h",
         "port": 67, "dst_ip": "255.255.255.255", "targets": ["instance:fw1"], "rewrite": False}
    )  # fmt: skip


def _intents() -> list[Intent]:
    return [
        conn("fabric-gw-alice", "host:alice", "subnet:0.0.0.0/0@cpe1"),
        conn("fabric-gw-fw1", "instance:fw1", "subnet:0.0.0.0/0@cpe1"),
        _router(),
        _dhcp_copy(),
    ]


def _udp(
    src_mac: str, dst_mac: str, src: str, dst: str, sport: int, dport: int
) -> dict[str, object]:
    return {"eth_src": src_mac, "eth_dst": dst_mac, "eth_type": 0x0800, "ipv4_src": src,
            "ipv4_dst": dst, "ip_proto": 17, "udp_src": sport, "udp_dst": dport}  # fmt: skip


def test_dhcp_exchange_before_the_host_has_an_address() -> None:
    view = make_view()
    res = compile_intents(view, _intents())
    assert not res.errors and not res.pending
    discover = _udp(MAC["alice"], BCAST, "0.0.0.0", "255.255.255.255", 68, 67)
    assert simulate(view, res, "cpe1", 1, discover) == [("instance:fw1", discover)]
    # The offer goes to the client's MAC, addressed to the offered address.
    offer = _udp(MAC["fw1"], MAC["alice"], IP["fw1"], LEASE, 67, 68)
    assert simulate(view, res, "cpe1", 3, offer) == [("host:alice", offer)]
    # The node sees neither; a DHCP broadcast from another address is not copied.
    other = {**discover, "ipv4_src": "10.0.0.99"}
    assert [p for p, _ in simulate(view, res, "cpe1", 1, other)] == ["local:cpe1"]


def test_the_host_routes_through_the_instance_by_mac() -> None:
    view = make_view()
    res = compile_intents(view, _intents())
    out = {**ip_pkt("alice", "fw1"), "ipv4_src": LEASE, "ipv4_dst": "10.255.0.1"}
    assert simulate(view, res, "cpe1", 1, out) == [("instance:fw1", out)]
    back = {**ip_pkt("fw1", "alice"), "ipv4_src": "10.255.0.1", "ipv4_dst": LEASE}
    assert simulate(view, res, "cpe1", 3, back) == [("host:alice", back)]
    # ARP to the router's address goes to it; the ARP reply by MAC comes back.
    assert [p for p, _ in simulate(view, res, "cpe1", 1, arp_req("alice", IP["fw1"]))] == [
        "instance:fw1"
    ]
    reply = {**arp_req("fw1", LEASE), "eth_dst": MAC["alice"], "arp_op": 2}
    assert [p for p, _ in simulate(view, res, "cpe1", 3, reply)] == ["host:alice"]
    # Everything else keeps its ways: alice to the node, the instance to the node.
    assert [p for p, _ in simulate(view, res, "cpe1", 1, ip_pkt("alice", "server"))] == [
        "local:cpe1"
    ]
    masq = {**ip_pkt("fw1", "server"), "eth_dst": "02:00:00:00:ff:01"}
    assert [p for p, _ in simulate(view, res, "cpe1", 3, masq)] == ["local:cpe1"]
    assert {f.priority for f in res.flows["cpe1"] if f.cookie == _router().cookie} == {
        PRIO_CONNECTIVITY_ROUTER
    }


def test_an_alias_behind_another_instance_still_wins() -> None:
    view = make_view()
    res = compile_intents(
        view, [*_intents(), conn("alias", "host:alice", f"subnet:{ALIAS}/32@cpe1/c1fw")]
    )
    assert not res.errors
    pkt = {**ip_pkt("alice", "fw1"), "ipv4_dst": ALIAS}
    assert simulate(view, res, "cpe1", 1, pkt) == [("instance:fw1", pkt)]


def test_other_hosts_get_nothing_through_the_router() -> None:
    view = make_view()
    res = compile_intents(view, _intents())
    # bob (another node) sending to fw1's MAC is not alice: the controller sees it.
    pkt = {**ip_pkt("bob", "fw1"), "ipv4_dst": "10.255.0.1"}
    assert [p for p, _ in simulate(view, res, "cpe2", 1, pkt)] == ["controller@cpe2"]


def test_above_gateway_joins_hosts_and_instances_only() -> None:
    with pytest.raises(pydantic.ValidationError):
        parse_intent(
            {"kind": "connectivity", "id": "x", "a": "host:alice",
             "b": "subnet:0.0.0.0/0@cpe1", "above_gateway": True}
        )  # fmt: skip
    plain = conn("y", "host:alice", "instance:fw1")
    assert isinstance(plain, ConnectivityIntent) and not plain.above_gateway
