"""Compiler additions for addresses behind an instance's port (the sharing service's VPs).

Checked like test_sdn_compile.py: packets run through the emitted flows by the
simulator, which also fails on two different flows tying at one priority.
"""

from __future__ import annotations

import pydantic
import pytest

from netfate.orchestrator.sdn.compile import compile_intents
from netfate.orchestrator.sdn.intents import Intent, parse_intent
from sdn_fixtures import IP, MAC, arp_req, conn, ip_pkt, make_view, simulate

ALIAS = "10.0.0.201"  # an extra address held by instance fw1 (cpe1, port c1fw = 3)
GROUP = "239.255.255.250"


def _to(src: str, dst_ip: str, dst_mac: str, **extra: object) -> dict[str, object]:
    return {**ip_pkt(src, src), "ipv4_dst": dst_ip, "eth_dst": dst_mac, **extra}


def test_a_subnet_behind_an_instance_port_wins_over_the_hosts_gateway() -> None:
    view = make_view()
    res = compile_intents(
        view,
        [
            conn("fabric-gw-alice", "host:alice", "subnet:0.0.0.0/0@cpe1"),
            conn("fabric-gw-fw1", "instance:fw1", "subnet:0.0.0.0/0@cpe1"),
            conn("alias", "host:alice", f"subnet:{ALIAS}/32@cpe1/c1fw"),
        ],
    )
    assert not res.errors and not res.pending
    # To the alias: to the instance's port; anything else still to the node.
    assert simulate(view, res, "cpe1", 1, _to("alice", ALIAS, MAC["fw1"])) == [
        ("instance:fw1", _to("alice", ALIAS, MAC["fw1"]))
    ]
    assert [p for p, _ in simulate(view, res, "cpe1", 1, _to("alice", "8.8.8.8", "x"))] == [
        "local:cpe1"
    ]
    # From the alias back to alice; the instance's own traffic still to the node.
    back = {**ip_pkt("fw1", "alice"), "ipv4_src": ALIAS}
    assert simulate(view, res, "cpe1", 3, back) == [("host:alice", back)]
    assert [p for p, _ in simulate(view, res, "cpe1", 3, ip_pkt("fw1", "alice"))] == ["local:cpe1"]
    # A frame with the MAC of whatever held the alias before reaches the instance
    # with the instance's own MAC; so does a broadcast ARP request for the alias.
    stale = _to("alice", ALIAS, "02:00:00:00:99:99")
    assert simulate(view, res, "cpe1", 1, stale) == [
        ("instance:fw1", {**stale, "eth_dst": MAC["fw1"]})
    ]
    assert simulate(view, res, "cpe1", 1, arp_req("alice", ALIAS)) == [
        ("instance:fw1", {**arp_req("alice", ALIAS), "eth_dst": MAC["fw1"]})
    ]
    reply = {**arp_req("fw1", IP["alice"]), "arp_spa": ALIAS, "eth_dst": MAC["alice"], "arp_op": 2}
    assert [p for p, _ in simulate(view, res, "cpe1", 3, reply)] == ["host:alice"]


def test_the_alias_is_not_reachable_from_another_host() -> None:
    view = make_view()
    res = compile_intents(
        view,
        [
            conn("fabric-gw-alice", "host:alice", "subnet:0.0.0.0/0@cpe1"),
            conn("alias", "host:alice", f"subnet:{ALIAS}/32@cpe1/c1fw"),
        ],
    )
    assert simulate(view, res, "cpe2", 1, _to("bob", ALIAS, MAC["fw1"])) == [
        ("controller@cpe2", _to("bob", ALIAS, MAC["fw1"]))
    ]


def _copy(iid: str, source: str, targets: list[str], **more: object) -> Intent:
    return parse_intent(
        {
            "kind": "replication",
            "id": iid,
            "source": source,
            "dst_ip": GROUP,
            "targets": targets,
            "rewrite": False,
            **more,
        }
    )


def test_unchanged_copies_of_multicast_to_several_hosts() -> None:
    view = make_view(carol_attached=True)
    res = compile_intents(
        view,
        [
            # What arrives on bob's port for the group: to cam and carol, as it is.
            _copy("m1", "subnet:0.0.0.0/0@cpe2/c2h", ["host:cam", "host:carol"], port=1900),
            # From cam (a host source), any UDP port.
            _copy("m2", "host:cam", ["host:bob"]),
        ],
    )
    assert not res.errors and not res.pending
    pkt = {**_to("bob", GROUP, "01:00:5e:7f:ff:fa"), "ip_proto": 17, "udp_dst": 1900}
    got = simulate(view, res, "cpe2", 1, pkt)
    assert sorted(p for p, _ in got) == ["host:cam", "host:carol"]
    assert all(p == pkt for _, p in got)
    other = {**pkt, "udp_dst": 1901}
    assert [p for p, _ in simulate(view, res, "cpe2", 1, other)] == ["controller@cpe2"]
    from_cam = {**_to("cam", GROUP, "01:00:5e:7f:ff:fa"), "ip_proto": 17, "udp_dst": 5353}
    assert simulate(view, res, "cpe2", 4, from_cam) == [("host:bob", from_cam)]


def test_unchanged_copies_leave_only_the_branch_node() -> None:
    view = make_view()
    res = compile_intents(view, [_copy("m", "host:bob", ["host:cam", "host:alice"], port=1900)])
    assert "not on node cpe2" in res.pending["m"]
    pkt = {**_to("bob", GROUP, "01:00:5e:7f:ff:fa"), "ip_proto": 17, "udp_dst": 1900}
    assert [p for p, _ in simulate(view, res, "cpe2", 1, pkt)] == ["host:cam"]


@pytest.mark.parametrize(
    "data",
    [
        # a subnet source only with unchanged copies and a named port
        {"source": "subnet:0.0.0.0/0@cpe2/c2h", "port": 1900, "targets": ["host:cam"]},
        {"source": "subnet:0.0.0.0/0@cpe2", "rewrite": False, "targets": ["host:cam"]},
        # rewritten copies need a port; targets are never subnets
        {"source": "host:bob", "targets": ["host:cam"]},
        {"source": "host:bob", "rewrite": False, "targets": ["subnet:10.0.0.0/8@cpe2"]},
    ],
)
def test_replication_validation(data: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        parse_intent({"kind": "replication", "id": "r", **data})
