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

Node pairs are all pairs (the testbed routes a LAN directly to the node that
owns it), so the count grows with the square of the nodes: meant for demo and
test networks, not for a hundred nodes.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import combinations

from netfate.model.topology import Topology
from netfate.orchestrator.sdn.intents import ConnectivityIntent, Endpoint


def fabric_intents(
    topo: Topology, instances: Iterable[tuple[str, str]] = ()
) -> list[ConnectivityIntent]:
    """`instances` are (instance id, node) pairs to give their gateway too."""
    out: list[ConnectivityIntent] = []

    def add(iid: str, a: Endpoint, b: Endpoint) -> None:
        out.append(ConnectivityIntent(id=iid[:63], a=a, b=b))

    for h in sorted(topo.hosts.values(), key=lambda h: h.name):
        add(
            f"fabric-gw-{h.name}", Endpoint("host", h.name), Endpoint("subnet", "0.0.0.0/0", h.node)
        )
    for iid, node in sorted(instances):
        add(f"fabric-gw-{iid}", Endpoint("instance", iid), Endpoint("subnet", "0.0.0.0/0", node))
    nodes = sorted(topo.nodes.values(), key=lambda n: n.name)
    for a, b in combinations(nodes, 2):
        add(
            f"fabric-transit-{a.name}-{b.name}",
            Endpoint("subnet", f"{a.transit_ip}/32", a.name),
            Endpoint("subnet", f"{b.transit_ip}/32", b.name),
        )
        for i, la in enumerate(a.lans):
            for j, lb in enumerate(b.lans):
                add(
                    f"fabric-lan-{a.name}-{i}-{b.name}-{j}",
                    Endpoint("subnet", str(la), a.name),
                    Endpoint("subnet", str(lb), b.name),
                )
    return out
