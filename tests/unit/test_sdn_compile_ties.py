"""No two intents' flows tie: at one table and priority, flows whose matches overlap
do the same thing, or the switch picks either (OpenFlow 1.3, 5.3 "Matching").

A host's gateway (host <-> 0.0.0.0/0 at its node) matches every IPv4 frame and ARP
request of the host; connectivity from the host to an instance on its own LAN
matches some of them too. At one priority, the host's ARP for the instance went
to the node in two runs of six. `ties` finds such pairs in a compile result; the
realistic set below has intents of every kind, as the services make them.
"""

from __future__ import annotations

from typing import Any

from netfate.model.topology import Topology
from netfate.orchestrator.sdn.compile import FlowSpec, Output, compile_intents
from netfate.orchestrator.sdn.fabric import fabric_intents, gateway
from netfate.orchestrator.sdn.intents import (
    Endpoint,
    Intent,
    NetworkView,
    cookie_for,
    parse_intent,
)
from sdn_fixtures import IP, MAC, arp_req, conn, ip_pkt, make_view, matches_overlap, simulate, ties


def test_the_tie_finder_sees_overlapping_prefixes_and_prerequisites() -> None:
    a = {"in_port": 1, "eth_type": 0x0800, "ipv4_dst": "10.0.0.0/8"}
    assert matches_overlap(a, {"in_port": 1, "ipv4_dst": "10.1.2.3"})
    assert not matches_overlap(a, {"in_port": 1, "ipv4_dst": "192.168.0.0/16"})
    assert not matches_overlap(a, {"in_port": 2})
    # arp_tpa implies ARP frames only, tcp_dst TCP only.
    assert not matches_overlap(a, {"in_port": 1, "arp_tpa": "10.0.0.1"})
    assert not matches_overlap({"ip_proto": 17}, {"tcp_dst": 80})
    assert matches_overlap({"eth_src": MAC["alice"]}, {"eth_dst": MAC["bob"], "tcp_dst": 80})
    # Found in a compile result: the same match, other actions, other cookies.
    view = make_view()
    res = compile_intents(view, [])
    res.flows["cpe1"] |= {
        FlowSpec(100, (("in_port", 1),), (Output(2),), cookie_for("x")),
        FlowSpec(100, (("eth_type", 0x0806), ("in_port", 1)), (Output(3),), cookie_for("y")),
    }
    assert len(ties(res)) == 1


def test_a_hosts_gateway_does_not_tie_with_its_way_to_an_instance_on_its_lan() -> None:
    view = make_view()
    gw = gateway(Endpoint("host", "alice"), "cpe1")
    probe = conn("probe", "host:alice", "instance:fw1")
    res = compile_intents(view, [gw, probe])
    assert not res.errors and not res.pending
    assert ties(res) == []
    # (the simulator fails on a tie too)
    assert [p for p, _ in simulate(view, res, "cpe1", 1, arp_req("alice", IP["fw1"]))] == [
        "instance:fw1"
    ]
    assert [p for p, _ in simulate(view, res, "cpe1", 1, ip_pkt("alice", "fw1"))] == [
        "instance:fw1"
    ]
    # The gateway still takes everything else: ARP for the node, traffic beyond it.
    assert [p for p, _ in simulate(view, res, "cpe1", 1, arp_req("alice", "10.0.0.1"))] == [
        "local:cpe1"
    ]
    assert [p for p, _ in simulate(view, res, "cpe1", 1, ip_pkt("alice", "server"))] == [
        "local:cpe1"
    ]
    # The instance answers alice directly; its other traffic goes to the node
    # when it has a gateway of its own.
    both = compile_intents(view, [gw, gateway(Endpoint("instance", "fw1"), "cpe1"), probe])
    assert ties(both) == []
    assert [p for p, _ in simulate(view, both, "cpe1", 3, ip_pkt("fw1", "alice"))] == ["host:alice"]
    assert [p for p, _ in simulate(view, both, "cpe1", 3, ip_pkt("fw1", "server"))] == [
        "local:cpe1"
    ]


def test_a_longer_prefix_wins_and_a_host_wins_over_any_prefix() -> None:
    view = make_view()
    res = compile_intents(
        view,
        [
            gateway(Endpoint("host", "alice"), "cpe1"),
            conn("wide", "host:alice", "subnet:10.9.0.0/16@pe"),
            conn("narrow", "host:alice", "subnet:10.9.8.0/24@cpe2"),
            conn("server", "host:alice", "host:server"),
        ],
    )
    assert not res.errors and ties(res) == []
    to = {**ip_pkt("alice", "server"), "eth_dst": "02:99:00:00:00:01"}  # the node's MAC
    assert [p for p, _ in simulate(view, res, "cpe1", 1, {**to, "ipv4_dst": "10.9.8.7"})] == [
        "local:cpe2"
    ]
    assert [p for p, _ in simulate(view, res, "cpe1", 1, {**to, "ipv4_dst": "10.9.1.1"})] == [
        "local:pe"
    ]
    assert [p for p, _ in simulate(view, res, "cpe1", 1, {**to, "ipv4_dst": "8.8.8.8"})] == [
        "local:cpe1"
    ]
    assert [p for p, _ in simulate(view, res, "cpe1", 1, ip_pkt("alice", "server"))] == [
        "host:server"
    ]


# --- a realistic set ----------------------------------------------------------

TOPO = """
name: mixed
transit: 10.255.0.0/24
nodes:
  cpe1: {kind: cpe, lan: 192.168.1.0/24}
  cpe2: {kind: cpe, lan: 192.168.2.0/24}
  home: {kind: cpe, lan: 192.168.3.0/24}
  pe1:  {kind: pe, lans: [10.10.0.0/24, 10.20.0.0/24]}
hosts:
  laptop1: {node: cpe1}
  laptop2: {node: cpe2}
  tv: {node: cpe2}
  nas: {node: home}
  server: {node: pe1}
links:
  - {a: cpe1, b: pe1}
  - {a: cpe2, b: pe1}
  - {a: home, b: pe1}
"""
INSTANCES = {  # id -> (node, address)
    "fw-laptop1": ("cpe1", "192.168.1.200"),  # laptop1's personal firewall
    "portal-cpe1": ("cpe1", "192.168.1.152"),
    "portal-cpe2": ("cpe2", "192.168.2.152"),
    "counter1": ("cpe1", "192.168.1.150"),  # probed from laptop1, on its LAN
    "hrh1": ("cpe1", "192.168.1.160"),  # USB/IP: exports at home...
    "usbc1": ("pe1", "10.10.0.60"),  # ...imported at the ISP
    "vp1": ("cpe2", "192.168.2.250"),  # share 1: nas (home) shared into cpe2's PN
    "vp2": ("home", "192.168.3.250"),
    "vhg-home": ("home", "192.168.3.1"),  # the home PN's vHG (its router)
}


def _view(topo: Topology) -> NetworkView:
    """Bridges as the testbed builds them: hosts, links, the node's own port, instances."""
    nodes = []
    for n in topo.nodes.values():
        ports: list[dict[str, Any]] = []
        peers = [f"host:{h.name}" for h in topo.hosts_of(n.name)]
        peers += [f"node:{lk.b if lk.a == n.name else lk.a}" for lk in topo.links_of(n.name)]
        peers.append(f"local:{n.name}")
        peers += [f"instance:{i}" for i, (node, _) in INSTANCES.items() if node == n.name]
        for peer in peers:
            ports.append({"name": f"{n.name}-{peer.partition(':')[2]}", "ofport": len(ports) + 1,
                          "peer": peer})  # fmt: skip
        nodes.append({"name": n.name, "dpid": n.datapath_id, "ports": ports})
    return NetworkView.model_validate(
        {
            "nodes": nodes,
            "hosts": [
                {"name": h.name, "mac": h.mac, "ip": str(h.ip), "node": h.node}
                for h in topo.hosts.values()
            ],
            "instances": [
                {"id": i, "mac": f"02:4e:00:00:01:{k:02x}", "ip": ip, "node": node}
                for k, (i, (node, ip)) in enumerate(INSTANCES.items())
            ],
            "links": [{"a": lk.a, "b": lk.b} for lk in topo.links],
        }
    )


def _realistic(topo: Topology) -> list[Intent]:
    """What the services ask for (services/*: steering.py, network.py, reconcile.py)."""
    pns = {("home", "192.168.3.0/24"), ("cpe2", "192.168.2.0/24")}
    gws = [(i, node) for i, (node, _) in INSTANCES.items() if i != "vhg-home"]
    out: list[Intent] = list(fabric_intents(topo, gws, pns))
    tcp80 = {"kind": "tunnel", "protocol": "tcp", "port": 80}
    udp = {"kind": "replication", "protocol": "udp"}
    copy = {**udp, "rewrite": False}
    for data in [
        # firewall: laptop1 logged in (its firewall), laptop2 captive (its portal)
        {"kind": "steering", "id": "firewall-laptop1", "host": "laptop1",
         "chain": ["fw-laptop1"], "to": "host:server"},
        {"kind": "steering", "id": "firewall-laptop2", "host": "laptop2",
         "chain": ["portal-cpe2"], "to": "host:server"},
        {**tcp80, "id": "firewall-p-laptop1", "a": "host:laptop1", "b": "instance:portal-cpe1"},
        {**tcp80, "id": "firewall-p-laptop2", "a": "host:laptop2", "b": "instance:portal-cpe2"},
        # usbip: one tunnel between the exporting and the importing function
        {"kind": "tunnel", "id": "usbip-cam", "a": "instance:hrh1", "b": "instance:usbc1",
         "protocol": "tcp", "port": 3240},
        # a probe of a function on the host's own LAN (the tie that was seen)
        {"kind": "connectivity", "id": "probe-counter1", "a": "host:laptop1",
         "b": "instance:counter1"},
        # a stream copied to two viewers
        {**udp, "id": "tv-stream", "source": "host:server", "port": 5004,
         "targets": ["host:laptop1", "host:tv"]},
        # sharing: share 1, and the home PN's vHG
        {"kind": "tunnel", "id": "share-1-overlay", "a": "instance:vp2", "b": "instance:vp1",
         "protocol": "udp", "port": 4789},
        {"kind": "connectivity", "id": "share-1-vp2-0", "a": "host:nas",
         "b": "subnet:192.168.3.201/32@home/home-vp2"},
        {"kind": "connectivity", "id": "share-1-vp1-tv", "a": "host:tv",
         "b": "subnet:192.168.2.201/32@cpe2/cpe2-vp1"},
        {**copy, "id": "share-1-vi2-ssdp", "source": "subnet:0.0.0.0/0@home/home-vp2",
         "port": 1900, "dst_ip": "239.255.255.250", "targets": ["host:nas"]},
        {**copy, "id": "share-1-vi1-bcast", "source": "subnet:0.0.0.0/0@cpe2/cpe2-vp1",
         "dst_ip": "255.255.255.255", "targets": ["host:tv"]},
        {**copy, "id": "sharing-tv-ssdp", "source": "host:tv", "port": 1900,
         "dst_ip": "239.255.255.250", "targets": ["instance:vp1"]},
        {**copy, "id": "sharing-nas-mdns", "source": "host:nas", "port": 5353,
         "dst_ip": "224.0.0.251", "targets": ["instance:vp2"]},
        {"kind": "connectivity", "id": "sharing-vhg-nas", "a": "host:nas",
         "b": "instance:vhg-home", "above_gateway": True},
        {**copy, "id": "sharing-vhg-nas-dhcp", "source": "subnet:0.0.0.0/32@home/home-nas",
         "port": 67, "dst_ip": "255.255.255.255", "targets": ["instance:vhg-home"]},
        {**copy, "id": "sharing-vhg-home-bcast",
         "source": "subnet:192.168.3.1/32@home/home-vhg-home", "port": 68,
         "dst_ip": "255.255.255.255", "targets": ["host:nas"]},
    ]:  # fmt: skip
        out.append(parse_intent(data))
    out.append(gateway(Endpoint("instance", "vhg-home"), "home", "sharing-vhg-home-gw"))
    return out


def test_a_realistic_set_of_intents_has_no_ties() -> None:
    topo = Topology.from_yaml(TOPO)
    view = _view(topo)
    intents = _realistic(topo)
    res = compile_intents(view, intents)
    assert not res.errors and not res.pending
    kinds = {it.kind for it in intents}
    assert kinds == {"connectivity", "steering", "tunnel", "replication"}
    assert all(res.flow_count.get(it.id) for it in intents)  # each installs flows
    names = {it.cookie: it.id for it in intents}
    found = [
        f"{node} prio {f.priority}: {names.get(f.cookie)} {dict(f.match)} / "
        f"{names.get(g.cookie)} {dict(g.match)}"
        for node, f, g in ties(res)
    ]
    assert found == []
