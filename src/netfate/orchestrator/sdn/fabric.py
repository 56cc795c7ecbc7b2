"""Base connectivity for a testbed-style edge network, as intents. Pure.

With a controller in secure mode nothing passes until intents say so. In the
testbed (testbed/builder.py) every node namespace sits on the L2 fabric of
bridges through its `local:` port, holding the node's transit address and the
gateway (.1) of its LANs, and routes between LANs; hosts and instances use their
node's gateway. The intents that let that routed network work:

    fabric-gw-<host>              host:<h>      <-> subnet:0.0.0.0/0@<its node>
    fabric-gw-<instance>          instance:<i>  <-> subnet:0.0.0.0/0@<its node>
    fabric-transit-<a>-<b>        subnet:<transit a>/32@a <-> subnet:<transit b>/32@b
    fabric-lan-<a>-<i>-<b>-<j>    subnet:<LAN i of a>@a   <-> subnet:<LAN j of b>@b
    fabric-door-<b>-<j>           subnet:<door>/32@<first> <-> subnet:<LAN j of b>@b

The front door (`netfate frontdoor`) listens at the transit network's last address
behind the first node, which routes it (testbed/builder.py): every LAN of every
other node reaches it, isolated ones too (it relays only the users' pages, each
behind its sign-in); a host of the first node reaches it through its gateway.

Node pairs are all pairs (the testbed routes a LAN directly to the node that
owns it), so the count grows with the square of the nodes: meant for demo and
test networks, not for a hundred nodes.

Isolated LANs get no `fabric-lan-*` intent at all: their hosts reach their own
node (the gateway intents stay) and nothing else, until some service adds the
intents of what it allows (the sharing service: a Personal Network's LAN, and
per share the paths to its Virtual Presences). Services name their isolated
LANs in their contracts (`Service.isolates`); `isolated_lans` asks them all, so
that `POST /sdn/fabric` never brings back what a service withdrew.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Iterable
from itertools import combinations
from typing import Any

from netfate.model.topology import Topology
from netfate.orchestrator.sdn.intents import ConnectivityIntent, Endpoint

IsolationSource = Callable[[Any], Iterable[tuple[str, str]]]
"""Given a database session, the (node, LAN in CIDR form) pairs a service isolates."""


def isolated_lans(session: Any, sources: Iterable[IsolationSource]) -> set[tuple[str, str]]:
    """Every (node, LAN) one of `sources` (the services') isolates."""
    out: set[tuple[str, str]] = set()
    for source in sources:
        out |= {(n, str(ipaddress.IPv4Network(c, strict=False))) for n, c in source(session)}
    return out


def gateway(ep: Endpoint, node: str, intent_id: str | None = None) -> ConnectivityIntent:
    """`ep` <-> its node's `local:` port, which routes: what a host or an instance
    needs to reach beyond its LAN. Id `fabric-gw-<name>` unless a service names it."""
    iid = intent_id or f"fabric-gw-{ep.name}"
    return ConnectivityIntent(id=iid[:63], a=ep, b=Endpoint("subnet", "0.0.0.0/0", node))


def fabric_intents(
    topo: Topology,
    instances: Iterable[tuple[str, str]] = (),
    isolated: Collection[tuple[str, str]] = (),
) -> list[ConnectivityIntent]:
    """`instances` are (instance id, node) pairs to give their gateway too;
    `isolated` are (node, LAN) pairs that get no LAN-to-LAN intent."""
    out: list[ConnectivityIntent] = []

    def add(iid: str, a: Endpoint, b: Endpoint) -> None:
        out.append(ConnectivityIntent(id=iid[:63], a=a, b=b))

    for h in sorted(topo.hosts.values(), key=lambda h: h.name):
        out.append(gateway(Endpoint("host", h.name), h.node))
    for iid, node in sorted(instances):
        out.append(gateway(Endpoint("instance", iid), node))
    nodes = sorted(topo.nodes.values(), key=lambda n: n.name)
    first = topo.door_node
    door = Endpoint("subnet", f"{topo.door_ip}/32", first.name)
    for b in nodes:
        if b.name != first.name:
            for j, lb in enumerate(b.lans):
                add(f"fabric-door-{b.name}-{j}", door, Endpoint("subnet", str(lb), b.name))
    for a, b in combinations(nodes, 2):
        add(
            f"fabric-transit-{a.name}-{b.name}",
            Endpoint("subnet", f"{a.transit_ip}/32", a.name),
            Endpoint("subnet", f"{b.transit_ip}/32", b.name),
        )
        for i, la in enumerate(a.lans):
            for j, lb in enumerate(b.lans):
                if (a.name, str(la)) in isolated or (b.name, str(lb)) in isolated:
                    continue
                add(
                    f"fabric-lan-{a.name}-{i}-{b.name}-{j}",
                    Endpoint("subnet", str(la), a.name),
                    Endpoint("subnet", str(lb), b.name),
                )
    return out
