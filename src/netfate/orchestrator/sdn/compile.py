"""Intent compiler: (network view, intents) -> flows and groups per switch. Pure.

Pipeline on every bridge (one table, OpenFlow 1.3):

    priority  what                                         cookie
    400       steering: rewrite eth_dst to the next stage  intent
    300       replication: along a multicast tree, a group  intent
              ALL on each switch where it branches
    200       tunnel: one protocol/port, both directions   intent
    150       connectivity with a subnet behind a named    intent
              port (an instance's extra addresses)
    120       connectivity above the gateway: a host and   intent
              the instance that is its router (by MAC)
    34-101    connectivity: A <-> B, ARP included, each    intent
              direction ranked by its destination (below)
      5       instance port, ARP request -> controller     base   (proxy ARP)
      1       access port, anything else -> controller     base   (host discovery)
      0       drop                                         base

Every flow matches its `in_port`: a packet that crosses the same switch twice
(to an instance and back) is told apart by where it came from, and a host
cannot inject traffic from another port. Flows that two intents both need
(ARP between the same pair, say) are installed once, owned by the intent
whose id sorts first; when that intent goes, the other takes the flow over.

No two intents' flows may tie: at one priority, flows whose matches overlap
but whose actions differ leave the switch free to apply either (OpenFlow 1.3,
5.3). A host's gateway (`host:H <-> subnet:0.0.0.0/0@N`, fabric.py) matches
every IPv4 frame and every ARP request of H, so at one priority with H's
connectivity to an instance on its own LAN, H's ARP for the instance went to
the node in two runs of six. Connectivity therefore ranks each direction by
how precisely it names where the frames go, as the longest prefix wins in
routing:

    to a host or an instance (its MAC; for ARP, its address)   100   ARP 101
    to a subnet of prefix length L                          34+2L   ARP +1
    to 0.0.0.0/0 (a gateway: whatever the node routes)          34   ARP  35

ARP flows sit one above the data flows of their rank: the data flows between
two MACs take any frame between them, ARP included, but it is the target
address that says where an ARP frame should go. Steering, replication and
tunnels keep a tier each, above all connectivity; tests/unit/
test_sdn_compile_ties.py compiles a set of every kind, as the services make
them, and finds no tie.

A subnet behind a named port (`subnet:CIDR@NODE/PORT`) is more specific than
what a node routes through its `local:` port: a host's gateway intent
matches every IPv4 packet of H, including those for the addresses an instance
holds besides its own (a Virtual Presence's aliases), and the host may still
send them to the MAC of another host or instance (the one that had the address
before, as when a share's alias goes to a new Virtual Presence). Such
connectivity therefore compiles in a tier of its own (150), both ways; and
frames to such a subnet leave for the instance with the instance's MAC.

A host whose router is an instance (a Personal Network's vHG) sends it frames
whatever their addresses, and the instance's frames to it (its DHCP offers,
NATed replies) carry addresses the view does not know. Connectivity marked
`above_gateway` compiles at 120 between the two, above all ranked
connectivity: by MAC, whatever the IPv4 addresses (a DHCP lease), plus ARP for
the ends' known addresses. Below 150, so that frames to a Virtual Presence's
aliases still go to the VP.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import networkx as nx

from netfate.orchestrator.sdn.intents import (
    BASE_COOKIE,
    ConnectivityIntent,
    Endpoint,
    HostView,
    InstanceView,
    Intent,
    NetworkView,
    NodeView,
    ReplicationIntent,
    SteeringIntent,
    TunnelIntent,
    UnknownName,
)

PRIO_STEERING = 400
PRIO_REPLICATION = 300
PRIO_TUNNEL = 200
PRIO_CONNECTIVITY_PORT = 150
PRIO_CONNECTIVITY_ROUTER = 120
PRIO_CONNECTIVITY = 100
"""Connectivity toward a host or an instance; toward subnets it ranks lower (`_toward`)."""
PRIO_GATEWAY = PRIO_CONNECTIVITY - 2 * 33
"""Connectivity toward 0.0.0.0/0, below every other rank."""
PRIO_PROXY_ARP = 5
PRIO_DISCOVERY = 1
PRIO_DROP = 0

OFPP_IN_PORT = 0xFFFFFFF8
OFPP_CONTROLLER = 0xFFFFFFFD
OFPCML_NO_BUFFER = 0xFFFF
ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
IP_PROTO = {"icmp": 1, "tcp": 6, "udp": 17}

MatchValue = int | str
Match = tuple[tuple[str, MatchValue], ...]


@dataclass(frozen=True)
class Output:
    port: int


@dataclass(frozen=True)
class SetField:
    field: str
    value: MatchValue


@dataclass(frozen=True)
class ToGroup:
    group_id: int


@dataclass(frozen=True)
class ToController:
    max_len: int = OFPCML_NO_BUFFER


Action = Output | SetField | ToGroup | ToController


class FlowKey(tuple):  # type: ignore[type-arg]
    """(table, priority, match) with its hash computed once (tuples recompute theirs)."""

    _h: int

    def __new__(cls, table: int, priority: int, match: Match) -> FlowKey:
        k = super().__new__(cls, (table, priority, match))
        k._h = tuple.__hash__(k)
        return k

    def __hash__(self) -> int:
        return self._h


@dataclass(frozen=True)
class FlowSpec:
    """One flow entry. Addresses are text; a masked IPv4 match is "a.b.c.d/len"."""

    priority: int
    match: Match
    actions: tuple[Action, ...]
    cookie: int
    table: int = 0
    # Computed once: tables of ten thousand flows are diffed as sets on the
    # packet-in path, and hashing the nested tuples each time cost ~100 ms.
    key: tuple[int, int, Match] = field(init=False, repr=False, compare=False)
    """What OpenFlow treats as the same entry (an add with this key replaces it)."""
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = FlowKey(self.table, self.priority, self.match)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "_hash", hash((key, self.actions, self.cookie)))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True)
class GroupSpec:
    group_id: int
    buckets: tuple[tuple[Action, ...], ...]
    cookie: int
    type: str = "all"


@dataclass
class CompileResult:
    flows: dict[str, set[FlowSpec]] = field(default_factory=dict)
    """Node name -> every flow its bridge should hold (base pipeline included)."""
    groups: dict[str, set[GroupSpec]] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)
    """Intent id -> why it is not (fully) installed yet (host not attached, no path)."""
    errors: dict[str, str] = field(default_factory=dict)
    """Intent id -> why it was refused (unknown name, conflict). It installs nothing."""
    flow_count: dict[str, int] = field(default_factory=dict)
    """Intent id -> number of flows it owns."""


class _Pending(Exception):
    """An intent cannot be compiled *yet* (e.g. its host has not been seen)."""


@dataclass(frozen=True)
class _Attach:
    endpoint: Endpoint
    node: str
    ofport: int
    mac: str | None  # None for a subnet
    ip: str  # an address, or a network for a subnet
    deliver_mac: str | None = None
    """For a subnet behind an instance's port: the instance's MAC (frames get it)."""

    @property
    def is_subnet(self) -> bool:
        return self.mac is None


@dataclass(frozen=True)
class _Hop:
    node: str
    in_port: int
    out_port: int

    def output(self) -> Output:
        # OpenFlow drops output to the ingress port unless it is named IN_PORT.
        return Output(OFPP_IN_PORT if self.out_port == self.in_port else self.out_port)


def _m(**fields: MatchValue | None) -> dict[str, MatchValue]:
    return {k: v for k, v in fields.items() if v is not None}


@functools.lru_cache(maxsize=65536)
def _net(text: str) -> str | None:
    """A subnet as a match value: None matches everything, a /32 is a plain address."""
    net = ipaddress.IPv4Network(text)
    if net.prefixlen == 0:
        return None
    if net.prefixlen == 32:
        return str(net.network_address)
    return str(net)


@functools.lru_cache(maxsize=65536)
def _prefixlen(text: str) -> int:
    return ipaddress.IPv4Network(text).prefixlen


def _freeze(match: Mapping[str, MatchValue]) -> Match:
    return tuple(sorted(match.items()))


@functools.lru_cache(maxsize=65536)
def group_id_for(intent_id: str) -> int:
    # 0x4E in the top byte marks groups the controller owns, like the cookie prefix.
    low = int.from_bytes(hashlib.sha256(b"group:" + intent_id.encode()).digest()[:3], "big")
    return 0x4E000000 | low


class _Resolver:
    """Answers "where is this endpoint" and "which ports lead from node a to b"."""

    def __init__(self, view: NetworkView, overrides: Mapping[str, tuple[str, int]]) -> None:
        self.view = view
        self.nodes: dict[str, NodeView] = {n.name: n for n in view.nodes}
        self.hosts: dict[str, HostView] = {h.name: h for h in view.hosts}
        self.instances: dict[str, InstanceView] = {i.id: i for i in view.instances}
        self.overrides = {mac.lower(): where for mac, where in overrides.items()}
        delays = {}
        for link in view.links:
            if link.delay_s is not None:
                delays[frozenset((link.a, link.b))] = link.delay_s
        toward: dict[tuple[str, str], int] = {}
        for node in view.nodes:
            for p in node.ports:
                if p.peer_kind == "node" and p.peer_name:
                    k = (node.name, p.peer_name)
                    toward[k] = min(p.ofport, toward.get(k, p.ofport))
        self.toward = toward
        self.graph = nx.Graph()
        self.graph.add_nodes_from(self.nodes)
        for a, b in toward:
            # A link carries traffic only once both of its ends are on their bridges.
            if (b, a) in toward:
                # A small constant keeps zero-delay links from making paths arbitrary.
                w = delays.get(frozenset((a, b)), 0.0) + 1e-6
                self.graph.add_edge(a, b, weight=w)

    # -- names -------------------------------------------------------------

    def check_names(self, intent: Intent) -> None:
        """Raise UnknownName for any node, port, host or instance the view lacks."""
        for ep in _endpoints(intent):
            if ep.kind == "host" and ep.name not in self.hosts:
                raise UnknownName("host", ep.name, intent.id)
            if ep.kind == "instance" and ep.name not in self.instances:
                raise UnknownName("instance", ep.name, intent.id)
            if ep.kind == "subnet":
                self._subnet_port(ep, intent.id)
        if isinstance(intent, SteeringIntent):
            for iid in intent.chain:
                if iid not in self.instances:
                    raise UnknownName("instance", iid, intent.id)
        if isinstance(intent, ReplicationIntent) and intent.at and intent.at not in self.nodes:
            raise UnknownName("node", intent.at, intent.id)

    def _subnet_port(self, ep: Endpoint, intent_id: str) -> int:
        node = self.nodes.get(ep.node or "")
        if node is None:
            raise UnknownName("node", ep.node or "", intent_id)
        for p in node.ports:
            if ep.port is not None and p.name == ep.port:
                return p.ofport
            if ep.port is None and p.peer_kind == "local":
                return p.ofport
        raise UnknownName("port", f"{node.name}/{ep.port or 'local'}", intent_id)

    # -- attachment points -------------------------------------------------

    def _port_of_peer(self, peer: str, prefer: str | None) -> tuple[str, int] | None:
        found: list[tuple[str, int]] = []
        for node in self.view.nodes:
            for p in node.ports:
                if p.peer == peer:
                    found.append((node.name, p.ofport))
        found.sort(key=lambda f: (f[0] != prefer, f))
        return found[0] if found else None

    def attach(self, ep: Endpoint, intent_id: str) -> _Attach:
        if ep.kind == "subnet":
            ofport = self._subnet_port(ep, intent_id)
            deliver = None
            if ep.port is not None:
                peer = next(
                    (p.peer for p in self.nodes[ep.node or ""].ports if p.ofport == ofport), None
                )
                if peer and peer.startswith("instance:"):
                    inst = self.instances.get(peer.partition(":")[2])
                    deliver = inst.mac if inst is not None else None
            return _Attach(ep, ep.node or "", ofport, None, ep.name, deliver)
        if ep.kind == "host":
            host = self.hosts.get(ep.name)
            if host is None:
                raise UnknownName("host", ep.name, intent_id)
            if not host.mac or not host.ip:
                raise _Pending(f"host {host.name!r} has no MAC/IPv4 address yet")
            where = self.overrides.get(host.mac)
            if where is None and host.node is not None and host.ofport is not None:
                where = (host.node, host.ofport)
            if where is None:
                where = self._port_of_peer(f"host:{host.name}", host.node)
            if where is None:
                raise _Pending(f"host {host.name!r} has not been seen on any access port")
            return _Attach(ep, where[0], where[1], host.mac, host.ip)
        inst = self.instances.get(ep.name)
        if inst is None:
            raise UnknownName("instance", ep.name, intent_id)
        if not inst.mac or not inst.ip:
            raise _Pending(f"instance {inst.id!r} has no MAC/IPv4 address yet")
        peer = f"instance:{inst.id}"
        # Where the controller saw the instance announce itself (a migrated copy's
        # gratuitous ARP at its cut-over) wins over the node the view still names,
        # if that port is one of the instance's own.
        where = self.overrides.get(inst.mac.lower())
        if where is None or self._peer_at(where) != peer:
            where = self._port_of_peer(peer, inst.node)
        if where is None:
            raise _Pending(f"instance {inst.id!r} is not attached to a bridge")
        return _Attach(ep, where[0], where[1], inst.mac, inst.ip)

    def _peer_at(self, where: tuple[str, int]) -> str | None:
        node = self.nodes.get(where[0])
        if node is None:
            return None
        return next((p.peer for p in node.ports if p.ofport == where[1]), None)

    def hops(self, src: _Attach, dst: _Attach) -> list[_Hop]:
        """Switch by switch: where the traffic enters and where it leaves."""
        for n in (src.node, dst.node):
            if n not in self.nodes:
                raise _Pending(f"node {n!r} has no bridge in the view")
        try:
            path: list[str] = nx.shortest_path(self.graph, src.node, dst.node, weight="weight")
        except nx.NetworkXNoPath:
            raise _Pending(f"no path from {src.node} to {dst.node}") from None
        return self.path_hops(path, src.ofport, dst.ofport)

    def path_hops(self, path: Sequence[str], in_port: int, out_port: int) -> list[_Hop]:
        """The hops along `path`, entering its first node at `in_port` and leaving
        its last at `out_port`."""
        hops = []
        for i, n in enumerate(path):
            inp = in_port if i == 0 else self.toward[(n, path[i - 1])]
            outp = out_port if i == len(path) - 1 else self.toward[(n, path[i + 1])]
            hops.append(_Hop(n, inp, outp))
        return hops

    def tree(self, root: str, nodes: Iterable[str]) -> dict[str, list[str]]:
        """The shortest paths from `root` to each of `nodes` it reaches, all from one
        search: they share their prefixes, so together they form a tree."""
        want = set(nodes)
        if want <= {root}:
            return {root: [root]} if want else {}  # every target here: no search
        paths: dict[str, list[str]] = nx.single_source_dijkstra_path(
            self.graph, root, weight="weight"
        )
        return {n: paths[n] for n in want if n in paths}


def _endpoints(intent: Intent) -> list[Endpoint]:
    if isinstance(intent, ConnectivityIntent | TunnelIntent):
        return [intent.a, intent.b]
    if isinstance(intent, SteeringIntent):
        return [Endpoint("host", intent.host), intent.to]
    return [intent.source, *intent.targets]


def _src_l2(a: _Attach) -> dict[str, MatchValue]:
    if a.is_subnet:
        return _m(eth_type=ETH_IPV4, ipv4_src=_net(a.ip))
    return _m(eth_src=a.mac)


def _dst_l2(a: _Attach) -> dict[str, MatchValue]:
    if a.is_subnet:
        return _m(eth_type=ETH_IPV4, ipv4_dst=_net(a.ip))
    return _m(eth_dst=a.mac)


def _src_ip(a: _Attach) -> dict[str, MatchValue]:
    if a.is_subnet:
        return _m(ipv4_src=_net(a.ip))
    return _m(eth_src=a.mac, ipv4_src=a.ip)


def _dst_ip(a: _Attach) -> dict[str, MatchValue]:
    if a.is_subnet:
        return _m(ipv4_dst=_net(a.ip))
    return _m(eth_dst=a.mac, ipv4_dst=a.ip)


def _arp(src: _Attach, dst: _Attach) -> dict[str, MatchValue]:
    m = _m(eth_type=ETH_ARP)
    m.update(_m(arp_spa=_net(src.ip)) if src.is_subnet else _m(eth_src=src.mac))
    m.update(_m(arp_tpa=_net(dst.ip)) if dst.is_subnet else _m(arp_tpa=dst.ip))
    return m


class _Emitter:
    def __init__(self, cookie: int) -> None:
        self.cookie = cookie
        self.flows: list[tuple[str, FlowSpec]] = []
        self.groups: list[tuple[str, GroupSpec]] = []

    def flow(
        self, node: str, priority: int, match: Mapping[str, MatchValue], *actions: Action
    ) -> None:
        self.flows.append((node, FlowSpec(priority, _freeze(match), tuple(actions), self.cookie)))

    def along(
        self,
        hops: Sequence[_Hop],
        priority: int,
        match: Mapping[str, MatchValue],
        deliver_mac: str | None = None,
    ) -> None:
        """The same match forwarded hop by hop along a path; with `deliver_mac`, the
        last hop sets that destination MAC."""
        for i, h in enumerate(hops):
            m = {**match, "in_port": h.in_port}
            if deliver_mac is not None and i == len(hops) - 1:
                self.flow(h.node, priority, m, SetField("eth_dst", deliver_mac), h.output())
            else:
                self.flow(h.node, priority, m, h.output())


def _compile_connectivity(r: _Resolver, it: ConnectivityIntent, e: _Emitter) -> None:
    a, b = r.attach(it.a, it.id), r.attach(it.b, it.id)
    named_port = any(ep.kind == "subnet" and ep.port is not None for ep in (it.a, it.b))
    tier = PRIO_CONNECTIVITY_PORT if named_port else None
    if it.above_gateway:
        tier = PRIO_CONNECTIVITY_ROUTER
    for x, y in ((a, b), (b, a)):
        data, arp = (tier, tier) if tier is not None else _toward(y)
        hops = r.hops(x, y)
        # To addresses behind an instance's port, frames get the instance's MAC: a
        # host may still hold the MAC of the instance that had the address before.
        e.along(hops, data, {**_src_l2(x), **_dst_l2(y)}, y.deliver_mac)
        e.along(hops, arp, _arp(x, y), y.deliver_mac)


def _toward(dst: _Attach) -> tuple[int, int]:
    """Priorities (data, ARP) of connectivity flows toward `dst`, ranked by how
    precisely it is named (the module docstring): longest prefix first."""
    rank = PRIO_GATEWAY + 2 * _prefixlen(dst.ip) if dst.is_subnet else PRIO_CONNECTIVITY
    return rank, rank + 1


def _compile_tunnel(r: _Resolver, it: TunnelIntent, e: _Emitter) -> None:
    a, b = r.attach(it.a, it.id), r.attach(it.b, it.id)
    proto = IP_PROTO[it.protocol]
    for x, y, port_field in ((a, b, "dst"), (b, a, "src")):
        hops = r.hops(x, y)
        m: dict[str, MatchValue] = {"eth_type": ETH_IPV4, "ip_proto": proto}
        m.update(_src_ip(x))
        m.update(_dst_ip(y))
        if it.port is not None:
            m[f"{it.protocol}_{port_field}"] = it.port
        e.along(hops, PRIO_TUNNEL, m)
        e.along(hops, PRIO_TUNNEL, _arp(x, y))


def _steer(
    r: _Resolver,
    e: _Emitter,
    stages: Sequence[_Attach],
    src: _Attach,
    dst: _Attach,
) -> None:
    """Traffic src -> dst entering at stages[0], visiting each stage, leaving at stages[-1]."""
    base: dict[str, MatchValue] = {
        "eth_type": ETH_IPV4,
        "ipv4_src": src.ip,
        "ipv4_dst": dst.ip,
    }
    for k in range(len(stages) - 1):
        here, there = stages[k], stages[k + 1]
        hops = r.hops(here, there)
        first = hops[0]
        m = {**base, "in_port": first.in_port}
        if k == 0:
            m["eth_src"] = src.mac or ""
        # Whatever next hop the previous stage chose, the frame goes to the next stage.
        e.flow(first.node, PRIO_STEERING, m, SetField("eth_dst", there.mac or ""), first.output())
        e.along(hops[1:], PRIO_STEERING, {**base, "eth_dst": there.mac or ""})


def _compile_steering(r: _Resolver, it: SteeringIntent, e: _Emitter) -> None:
    host = r.attach(Endpoint("host", it.host), it.id)
    chain = [r.attach(Endpoint("instance", i), it.id) for i in it.chain]
    dst = r.attach(it.to, it.id)
    _steer(r, e, [host, *chain, dst], host, dst)
    if it.symmetric:
        _steer(r, e, [dst, *reversed(chain), host], dst, host)
    else:
        hops = r.hops(dst, host)
        e.along(hops, PRIO_STEERING, {"eth_type": ETH_IPV4, **_src_ip(dst), **_dst_ip(host)})
    # Address resolution between the two ends goes direct; the instances ask the
    # controller (proxy ARP on instance ports), since they forward for others.
    for x, y in ((host, dst), (dst, host)):
        e.along(r.hops(x, y), PRIO_STEERING, _arp(x, y))


def _compile_replication(
    r: _Resolver, it: ReplicationIntent, e: _Emitter, pending: list[str]
) -> None:
    """A multicast tree. The flow is carried unreplicated to `at` (default: the
    source's node), then along the shortest-path tree from there to the targets'
    nodes. Every switch of the tree holds one flow, matched on the port the copy
    arrives on; where the tree branches (two outputs or more) it points at a
    group ALL with a bucket per output, so a copy crosses each link once. A copy
    gets its target's MAC and IPv4 address (unless `rewrite` is false) at the
    last hop, in the output to the target's port: the links carry the flow as
    the source sent it, so a target added or removed changes only the switches
    where its branch leaves the tree and below (the others' copies go on)."""
    src = r.attach(it.source, it.id)
    at = it.at or src.node
    if at not in r.nodes:
        raise UnknownName("node", at, it.id)
    proto = IP_PROTO[it.protocol]
    m = _m(eth_type=ETH_IPV4, ip_proto=proto, **_src_ip(src), ipv4_dst=it.dst_ip)
    if it.port is not None:
        m[f"{it.protocol}_dst"] = it.port
    targets: list[_Attach] = []
    for ep in it.targets:
        try:
            t = r.attach(ep, it.id)
        except _Pending as p:
            pending.append(str(p))
            continue
        if not it.rewrite and t.node != at:
            # Unchanged copies all look alike: they can only leave the branch node.
            pending.append(f"{ep} is not on node {at}, where the unchanged copies are made")
            continue
        targets.append(t)
    paths = r.tree(at, {t.node for t in targets})
    for t in [t for t in targets if t.node not in paths]:
        pending.append(f"no path from {at} to {t.node} (for {t.endpoint})")
        targets.remove(t)
    if not targets:
        raise _Pending("; ".join(pending) or "no target is attached yet")
    # Carry the flow unreplicated to the branch node.
    if at == src.node:
        in_port = src.ofport
    else:
        to_branch = r.hops(src, _Attach(Endpoint("host", "(branch)"), at, 0, None, ""))
        e.along(to_branch[:-1], PRIO_REPLICATION, m)
        in_port = to_branch[-1].in_port
    children: dict[str, set[str]] = {}
    for path in paths.values():
        for a, b in itertools.pairwise(path):
            children.setdefault(a, set()).add(b)
    gid = group_id_for(it.id)
    todo = [(at, in_port)]
    while todo:
        node, inp = todo.pop()
        outs: list[tuple[Action, ...]] = []
        for t in targets:
            if t.node == node:
                out = _Hop(node, inp, t.ofport).output()
                if it.rewrite:
                    outs.append((SetField("eth_dst", t.mac or ""), SetField("ipv4_dst", t.ip), out))
                else:
                    outs.append((out,))
        for child in sorted(children.get(node, ())):
            # Back out of the port the flow came in on, when `at` is not the source's node.
            outs.append((_Hop(node, inp, r.toward[(node, child)]).output(),))
            todo.append((child, r.toward[(child, node)]))
        match = {**m, "in_port": inp}
        if len(outs) == 1:
            e.flow(node, PRIO_REPLICATION, match, *outs[0])
        else:
            e.flow(node, PRIO_REPLICATION, match, ToGroup(gid))
            e.groups.append((node, GroupSpec(gid, tuple(outs), e.cookie)))


def base_flows(node: NodeView) -> set[FlowSpec]:
    """The controller's own pipeline on a bridge: drop, discovery, proxy ARP."""
    flows = {FlowSpec(PRIO_DROP, (), (), BASE_COOKIE)}
    for p in node.ports:
        if p.peer_kind == "host":
            flows.add(
                FlowSpec(
                    PRIO_DISCOVERY, _freeze({"in_port": p.ofport}), (ToController(),), BASE_COOKIE
                )
            )
        elif p.peer_kind == "instance":
            m = _freeze({"in_port": p.ofport, "eth_type": ETH_ARP, "arp_op": 1})
            flows.add(FlowSpec(PRIO_PROXY_ARP, m, (ToController(),), BASE_COOKIE))
    return flows


def check_names(view: NetworkView, intent: Intent) -> None:
    """Raise UnknownName if the intent names anything the view does not have."""
    _Resolver(view, {}).check_names(intent)


def _same_pair(a1: Endpoint, b1: Endpoint, a2: Endpoint, b2: Endpoint) -> bool:
    return {a1, b1} == {a2, b2}


def semantic_conflict(new: Intent, old: Intent) -> str | None:
    """Why `new` cannot coexist with `old`, or None. Flow-level clashes are found by compiling."""
    if new.id == old.id:
        return f"an intent with id {new.id!r} already exists"
    if isinstance(new, SteeringIntent) and isinstance(old, SteeringIntent) and new.host == old.host:
        return f"host {new.host!r} is already steered by intent {old.id!r}"
    if (
        isinstance(new, ConnectivityIntent)
        and isinstance(old, ConnectivityIntent)
        and _same_pair(new.a, new.b, old.a, old.b)
    ):
        return f"intent {old.id!r} already connects {new.a} and {new.b}"
    if isinstance(new, TunnelIntent | ConnectivityIntent) and isinstance(
        old, TunnelIntent | ConnectivityIntent
    ):
        if type(new) is not type(old) and _same_pair(new.a, new.b, old.a, old.b):
            # A tunnel means "this protocol/port and nothing else"; full
            # connectivity between the same ends would silently void it.
            return f"{new.kind} between {new.a} and {new.b} overlaps {old.kind} intent {old.id!r}"
        if (
            isinstance(new, TunnelIntent)
            and isinstance(old, TunnelIntent)
            and _same_pair(new.a, new.b, old.a, old.b)
            and (new.protocol, new.port) == (old.protocol, old.port)
        ):
            return f"tunnel intent {old.id!r} already opens {new.protocol}/{new.port}"
    if isinstance(new, ReplicationIntent) and isinstance(old, ReplicationIntent):
        if (new.source, new.protocol, new.port, new.dst_ip) == (
            old.source,
            old.protocol,
            old.port,
            old.dst_ip,
        ):
            return f"intent {old.id!r} already replicates this flow from {new.source}"
        if group_id_for(new.id) == group_id_for(old.id):
            return f"group id of {new.id!r} collides with intent {old.id!r}; choose another id"
    if new.cookie == old.cookie:
        return f"cookie of {new.id!r} collides with intent {old.id!r}; choose another id"
    return None


class ConflictIndex:
    """Finds the accepted intents a new one could conflict with, without comparing all pairs."""

    def __init__(self) -> None:
        self._buckets: dict[object, list[Intent]] = {}

    @staticmethod
    def _keys(it: Intent) -> list[object]:
        keys: list[object] = [("id", it.id), ("cookie", it.cookie)]
        if isinstance(it, ConnectivityIntent | TunnelIntent):
            keys.append(("pair", frozenset((it.a, it.b))))
        elif isinstance(it, SteeringIntent):
            keys.append(("steer", it.host))
        else:
            keys.append(("repl", it.source, it.protocol, it.port, it.dst_ip))
            keys.append(("group", group_id_for(it.id)))
        return keys

    def conflict(self, it: Intent) -> str | None:
        seen: set[int] = set()
        for k in self._keys(it):
            for old in self._buckets.get(k, ()):
                if id(old) in seen:
                    continue
                seen.add(id(old))
                reason = semantic_conflict(it, old)
                if reason:
                    return reason
        return None

    def add(self, it: Intent) -> None:
        for k in self._keys(it):
            self._buckets.setdefault(k, []).append(it)


def compile_intents(
    view: NetworkView,
    intents: Iterable[Intent],
    overrides: Mapping[str, tuple[str, int]] | None = None,
) -> CompileResult:
    """Compile all intents against the view.

    Intents are taken in the order given (oldest first): one that clashes with
    an earlier one is refused whole and reported in `errors`; one that cannot
    be placed yet is reported in `pending`. `overrides` maps a MAC address to
    (node, ofport) where the controller has just seen it, ahead of the view.
    """
    r = _Resolver(view, overrides or {})
    res = CompileResult()
    owner: dict[tuple[str, tuple[int, int, Match]], FlowSpec] = {}
    owner_id: dict[int, str] = {}
    group_owner: dict[tuple[str, int], str] = {}
    index = ConflictIndex()
    for nv in view.nodes:
        res.flows[nv.name] = set()
        res.groups[nv.name] = set()
        for f in base_flows(nv):
            owner[(nv.name, f.key)] = f
    for it in intents:
        clash = index.conflict(it)
        if clash:
            res.errors[it.id] = clash
            continue
        e = _Emitter(it.cookie)
        partial: list[str] = []
        try:
            r.check_names(it)
            if isinstance(it, ConnectivityIntent):
                _compile_connectivity(r, it, e)
            elif isinstance(it, TunnelIntent):
                _compile_tunnel(r, it, e)
            elif isinstance(it, SteeringIntent):
                _compile_steering(r, it, e)
            else:
                _compile_replication(r, it, e, partial)
        except UnknownName as err:
            res.errors[it.id] = err.reason
            continue
        except _Pending as p:
            res.pending[it.id] = str(p)
            index.add(it)
            continue
        if partial:
            res.pending[it.id] = "; ".join(partial)
        reason = _merge_check(e, owner, owner_id, group_owner)
        if reason:
            res.errors[it.id] = reason
            continue
        index.add(it)
        owner_id[it.cookie] = it.id
        for node, f in e.flows:
            prev = owner.get((node, f.key))
            if prev is not None and owner_id.get(prev.cookie, "") <= it.id:
                continue  # shared flow: the intent whose id sorts first keeps it
            owner[(node, f.key)] = f
        for node, g in e.groups:
            group_owner[(node, g.group_id)] = it.id
            res.groups.setdefault(node, set()).add(g)
    for (node, _key), f in owner.items():
        res.flows.setdefault(node, set()).add(f)
        iid = owner_id.get(f.cookie)
        if iid is not None:
            res.flow_count[iid] = res.flow_count.get(iid, 0) + 1
    return res


def _merge_check(
    e: _Emitter,
    owner: Mapping[tuple[str, tuple[int, int, Match]], FlowSpec],
    owner_id: Mapping[int, str],
    group_owner: Mapping[tuple[str, int], str],
) -> str | None:
    """A flow with the same match and priority but other actions is a conflict."""
    mine: dict[tuple[str, tuple[int, int, Match]], FlowSpec] = {}
    for node, f in e.flows:
        key = (node, f.key)
        prev = owner.get(key)
        if prev is not None and prev.actions != f.actions:
            who = owner_id.get(prev.cookie)
            what = f"intent {who!r}" if who else "the controller's base pipeline"
            return (
                f"on node {node}, flow {dict(f.match)} at priority {f.priority} "
                f"would contradict {what}"
            )
        own = mine.get(key)
        if own is not None and own.actions != f.actions:
            return (
                f"on node {node}, the intent's own flows contradict each other at {dict(f.match)}"
            )
        mine[key] = f
    for node, g in e.groups:
        other = group_owner.get((node, g.group_id))
        if other is not None:
            return f"group {g.group_id:#x} on node {node} is already used by intent {other!r}"
    return None
