"""The delivery-tree manager (seed section 3.2 and Figure 6), sans-I/O.

Given the network (nodes with the CPU and bandwidth the service may use, links
with their capacity and delay), the live contents (each rooted at its
provider's access PE, where the acquirer runs) and the viewers, it decides
which edge streamer serves each viewer, which branches carry each content,
and what every node, link and streamer carries. It reads no clock and no
database: every operation takes ``now`` and returns past-tense events; the
reconcile loop turns ``desired()`` into platform instances.

A join (client id, content X, PE id) follows the paper's rule, in this order:

    1. an edge streamer on the client's PE already processing X is reused;
    2. otherwise one on that PE with spare CPU and bandwidth takes X;
    3. only if no edge streamer is instantiated on that PE, a suitable one on a
       neighbour PE (within NEIGHBOUR_HOPS hops: PEs hang off core routers);
    4. otherwise a new one is instantiated (on the client's PE if it has room,
       else on the nearest PE that has).

The criterion picks among the candidates of a case, and the branch's path:

    consolidation  fewest nodes and functions: the busiest streamer that fits,
                   a neighbour already serving X first, a branch joined to the
                   nearest node already on X's tree (fewest new links);
    qos            delay, hops, load: the least-loaded streamer, the nearest
                   neighbour, the branch with the least delay from the root.

Every candidate is tried on a copy of the state and kept only if nothing is
over capacity afterwards (``violations()`` recomputes every load from the state),
so a join beyond capacity is refused, with each candidate's reason.

Bandwidth. Each content's branches form a tree from its root (a parent per
node). A node that can host functions duplicates (a forwarder, or the acquirer
at the root), so one copy enters it; a node that cannot (a core router without
compute) passes on one copy per streamer below it. A core router the topology
gives compute hosts forwarders only: acquirers and streamers run on PEs. A link
carries, per content, the copies that enter its lower end, plus one stream per
viewer whose streamer is on another PE (case 3). A node sends the copies on its
links down the tree plus its streamers' viewer streams.

Copies in the switches. Where every node of a content's tree has a switch the
SDN controller programs (``NodeSpec.copies``), the switches duplicate instead of
forwarders: the acquirer sends one copy to the content's group address and a
replication intent (the back-end's) copies it with a group ALL on every switch
where the tree branches, over as many levels as it has. One copy enters every
node and crosses every link of the tree; no forwarder runs. Both criteria take
that when the path allows it: QoS because a copy in the switch adds no function
hop (no relay's delay, no queue in a process), consolidation because it needs
no forwarder function at all. Forwarders remain where one switch of the tree is
not the controller's (a bridge in standalone mode, or no controller): the
replication intent compiles flows on every switch from the acquirer to the
streamers, so one switch it cannot program breaks the whole path. The switches'
tree follows the SDN's shortest paths; it is this tree on tree-shaped topologies
(the paper's: PEs hang off core routers).

Pruning. When the last viewer of a (content, streamer) pair leaves, the branch
waits ``grace_s`` (a viewer coming back keeps it); then the streamer drops the
content, the tree loses the nodes nothing below needs, and a streamer left with
no content is released.

Planning (reservations). Shortly before a reserved event starts, the back-end
pre-starts its content (the acquirer) and, on each reserving user's PE, a branch
chosen by the same rule as a join (``prestart``), its bandwidth reserved as for a
real branch; a later join from that PE is case 1 (the warm tree). A pre-started
branch nobody joined goes at its plan's ``until`` (the event's start plus the
grace period), or at once when its reservations go (``unplan``).
"""

from __future__ import annotations

import copy
import heapq
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Criterion = Literal["consolidation", "qos"]
CRITERIA: tuple[Criterion, ...] = ("consolidation", "qos")
NEIGHBOUR_HOPS = 2
"""A neighbour PE is another PE at most this many links away (PE - core - PE)."""
EPS = 1e-6


class TreeError(ValueError):
    """A request the tree cannot take (unknown node, content not live); says why."""


# ------------------------------------------------------------------ the network


@dataclass(frozen=True)
class NodeSpec:
    name: str
    kind: str
    cpu: float
    """CPU the service may reserve on the node."""
    bandwidth_bps: float
    """What the node may send for the service (tree copies and viewer streams)."""
    hosts: bool = True
    """It can run functions; else it only forwards."""
    edge: bool = True
    """An access node (a PE): providers and viewers attach to it, acquirers and edge
    streamers run there. A core node with compute (hosts, not edge) runs forwarders."""
    copies: bool = False
    """Its switch can copy a flow (the SDN controller programs it: groups ALL)."""


@dataclass(frozen=True)
class LinkSpec:
    a: str
    b: str
    capacity_bps: float
    delay_s: float = 0.0


@dataclass(frozen=True)
class Limits:
    streamer_cpu: float = 0.2
    """What an edge streamer reserves on its node, before any content."""
    content_cpu: float = 0.1
    """What each content adds to a streamer (its segmenter)."""
    acquirer_cpu: float = 0.1
    forwarder_cpu: float = 0.1
    streamer_bandwidth_bps: float = 40e6
    """What one edge streamer may send to its viewers."""
    streamer_contents: int = 4
    grace_s: float = 10.0


class Network:
    """Nodes and links; pure lookups (paths, neighbours)."""

    def __init__(self, nodes: Iterable[NodeSpec], links: Iterable[LinkSpec]) -> None:
        self.nodes: dict[str, NodeSpec] = {n.name: n for n in nodes}
        self.links: dict[frozenset[str], LinkSpec] = {}
        self.adj: dict[str, list[str]] = {n: [] for n in self.nodes}
        for lk in links:
            if lk.a not in self.nodes or lk.b not in self.nodes or lk.a == lk.b:
                raise TreeError(f"link {lk.a}-{lk.b}: unknown node")
            self.links[frozenset((lk.a, lk.b))] = lk
            self.adj[lk.a].append(lk.b)
            self.adj[lk.b].append(lk.a)
        for v in self.adj.values():
            v.sort()

    def link(self, a: str, b: str) -> LinkSpec:
        return self.links[frozenset((a, b))]

    def hops(self, src: str) -> dict[str, int]:
        out, frontier = {src: 0}, [src]
        while frontier:
            nxt = []
            for u in frontier:
                for v in self.adj[u]:
                    if v not in out:
                        out[v] = out[u] + 1
                        nxt.append(v)
            frontier = nxt
        return out

    def delay(self, path: list[str]) -> float:
        return sum(self.link(a, b).delay_s for a, b in itertools.pairwise(path))


# ------------------------------------------------------------------ the state


@dataclass
class Content:
    id: str
    root: str
    """The provider's access PE: the acquirer."""
    bitrate_bps: float
    parent: dict[str, str | None] = field(default_factory=dict)
    """The tree: node -> its parent (the root's is None)."""
    pull: bool = False
    """A recording played on demand: its root is the storage function, and each edge
    streamer pulls its own copy over HTTP (no acquirer, nothing duplicates on the way:
    every link carries one copy per streamer below it)."""


@dataclass
class Streamer:
    id: str
    node: str
    contents: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """A branch pre-started for the reservations of one PE."""

    content: str
    pe: str
    reservations: int
    streamer: str | None
    """Who took the content for them (None: refused, see ``why``)."""
    until: float
    """When it goes if nobody joined it."""
    why: str


@dataclass
class Viewer:
    client: str
    content: str
    pe: str
    streamer: str
    case: int
    leg: list[str]
    """Nodes from the streamer's node to the client's PE (one node: the same PE)."""
    since: float
    host: str | None = None
    """The client's device as a host of the topology, when the join named one (its
    portal's pinholes give that host's address)."""
    rtp_port: int | None = None
    """The RTP port it receives on (RTCP on the next one), when the join said so."""


# ------------------------------------------------------------------ events


@dataclass(frozen=True)
class ViewerAssigned:
    client: str
    """The viewer (client id)."""
    content: str
    """Content X."""
    pe: str
    """The client's access PE."""
    streamer: str
    """The edge streamer that serves it."""
    node: str
    """Where that streamer runs."""
    case: int
    """The paper's case: 1 reuse, 2 spare streamer takes X, 3 neighbour PE, 4 new."""
    why: str
    """The decision and what it passed over."""


@dataclass(frozen=True)
class JoinRefused:
    client: str
    """The viewer refused."""
    content: str
    """Content X."""
    pe: str
    """The client's access PE."""
    why: str
    """Each candidate and what it would have broken."""


@dataclass(frozen=True)
class ViewerLeft:
    client: str
    """The viewer gone."""
    content: str
    """What it watched."""
    streamer: str
    """Who served it."""
    prune_at: float | None
    """When its branch goes if nobody comes back (None: others still watch)."""


@dataclass(frozen=True)
class BranchPruned:
    content: str
    """The content the streamer no longer takes."""
    streamer: str
    """The streamer."""
    nodes: tuple[str, ...]
    """Tree nodes no longer on the content's tree."""


@dataclass(frozen=True)
class StreamerReleased:
    streamer: str
    """The streamer released (no content left)."""
    node: str
    """Where it ran."""


@dataclass(frozen=True)
class BranchPrestarted:
    content: str
    """The reserved event's content."""
    pe: str
    """The reserving users' access PE."""
    streamer: str
    """The edge streamer that took the content for them."""
    node: str
    """Where that streamer runs."""
    case: int
    """The rule's case, as for a join."""
    reservations: int
    """How many reservations from that PE."""
    until: float
    """When it goes if nobody joined it."""
    why: str
    """The decision ("pre-started for N reservations: case ...")."""


@dataclass(frozen=True)
class PrestartRefused:
    content: str
    """The reserved event's content."""
    pe: str
    """The reserving users' access PE."""
    reservations: int
    """How many reservations from that PE."""
    why: str
    """Each candidate and what it would have broken."""


Event = (
    ViewerAssigned
    | JoinRefused
    | ViewerLeft
    | BranchPruned
    | StreamerReleased
    | BranchPrestarted
    | PrestartRefused
)


# ------------------------------------------------------------------ loads


@dataclass
class Loads:
    node_cpu: dict[str, float] = field(default_factory=dict)
    node_bps: dict[str, float] = field(default_factory=dict)
    link_bps: dict[frozenset[str], float] = field(default_factory=dict)
    streamer_bps: dict[str, float] = field(default_factory=dict)
    forwarders: dict[str, set[str]] = field(default_factory=dict)
    """Node -> contents it duplicates (a forwarder runs there)."""

    def add(self, d: dict[Any, float], k: Any, v: float) -> None:
        d[k] = d.get(k, 0.0) + v


@dataclass(frozen=True)
class Candidate:
    """One way to serve a join: a case of the rule, a streamer (None: a new one on
    ``node``), the viewer's leg (None: no path to the viewer has room)."""

    case: int
    label: str
    content: str
    streamer: str | None
    node: str
    leg: tuple[str, ...] | None


Target = tuple[str, str]
"""("forwarder", NODE) or ("streamer", STREAMER_ID): a receiver of a content's copy."""


@dataclass
class Shape:
    """One content's tree, as Tree._shape reads it."""

    children: dict[str, list[str]] = field(default_factory=dict)
    at: dict[str, list[str]] = field(default_factory=dict)
    """Node -> the streamers there taking the content."""
    need: dict[str, int] = field(default_factory=dict)
    """Node -> copies that must enter it."""
    forwarders: list[str] = field(default_factory=list)
    """Nodes that duplicate for their subtree (not the root: the acquirer does)."""
    switched: bool = False
    """The switches copy (every node's switch can): no forwarders."""
    branches: list[str] = field(default_factory=list)
    """With ``switched``, the nodes whose switch copies (a group ALL): where the tree
    branches, the root included."""

    def below(self, n: str) -> list[Target]:
        """Who n sends a copy to: its streamers, then per child its forwarder, or
        (a child that does not duplicate) what that child would send to."""
        out: list[Target] = [("streamer", sid) for sid in self.at.get(n, ())]
        for c in self.children.get(n, ()):
            out += [("forwarder", c)] if c in self.forwarders else self.below(c)
        return out


@dataclass(frozen=True)
class Desired:
    """What the platform must run (the reconcile loop's input)."""

    acquirers: Mapping[str, Mapping[str, tuple[Target, ...]]]
    """Root node -> content -> its next hops."""
    forwarders: Mapping[str, Mapping[str, tuple[Target, ...]]]
    """Node -> content -> its next hops."""
    streamers: Mapping[str, tuple[str, tuple[str, ...]]]
    """Streamer id -> (node, contents)."""
    switched: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Content -> the nodes whose switches copy it, for a content whose acquirer
    sends one copy that the switches duplicate (its next hops are the streamers a
    replication intent reaches)."""


class Tree:
    def __init__(
        self,
        net: Network,
        limits: Limits | None = None,
        criterion: Criterion = "consolidation",
        reserved_cpu: Mapping[str, float] | None = None,
    ) -> None:
        if criterion not in CRITERIA:
            raise TreeError(f"criterion: one of {', '.join(CRITERIA)}, not {criterion!r}")
        self.net = net
        self.limits = limits or Limits()
        self.criterion: Criterion = criterion
        self.reserved_cpu: dict[str, float] = dict(reserved_cpu or {})
        """Node -> CPU the service's other functions take there (the viewers' captive
        portals, portals.py): counted in every load, so a streamer placed there sees
        that much less spare CPU. Not part of the state (dump): the caller says it."""
        self.contents: dict[str, Content] = {}
        self.streamers: dict[str, Streamer] = {}
        self.viewers: dict[str, Viewer] = {}
        self.prune_at: dict[tuple[str, str], float] = {}
        self.plans: dict[tuple[str, str], Plan] = {}
        """(content, PE) -> the branch pre-started for that PE's reservations."""
        self.serial = 0

    # -------------------------------------------------------------- contents

    def publish(self, content: str, root: str, bitrate_bps: float, pull: bool = False) -> None:
        """A provider started an event: content X is live, rooted at ``root``; or
        (``pull``) a recording is played from the storage function at ``root``."""
        node = self.net.nodes.get(root)
        if node is None or not (node.hosts and node.edge):
            raise TreeError(f"content {content}: {root!r} is not a PE that can run the acquirer")
        if bitrate_bps <= 0:
            raise TreeError(f"content {content}: bitrate must be positive")
        old = self.contents.get(content)
        if old is not None:
            if old.root != root:
                raise TreeError(f"content {content} is already live at {old.root}")
            old.bitrate_bps = bitrate_bps  # a new estimate; the next joins see it
            return
        self.contents[content] = Content(content, root, bitrate_bps, {root: None}, pull)
        if self.violations():
            del self.contents[content]
            raise TreeError(f"content {content}: no room for the acquirer at {root}")

    def unpublish(self, content: str, now: float) -> list[Event]:
        """The event ended: its viewers go, its branches and idle streamers at once."""
        out: list[Event] = []
        for v in [v for v in self.viewers.values() if v.content == content]:
            del self.viewers[v.client]
            out.append(ViewerLeft(v.client, content, v.streamer, None))
        for s in list(self.streamers.values()):
            if content in s.contents:
                out += self._drop(content, s)
        self.contents.pop(content, None)
        self.plans = {k: p for k, p in self.plans.items() if k[0] != content}
        return out

    # -------------------------------------------------------------- viewers

    def join(
        self,
        client: str,
        content: str,
        pe: str,
        now: float,
        host: str | None = None,
        rtp_port: int | None = None,
    ) -> Event:
        """Assign an edge streamer to ``client`` watching ``content`` from ``pe``
        (``host``, ``rtp_port``: its device, kept on the viewer; a join again renews them)."""
        ev = self._join(client, content, pe, now)
        if isinstance(ev, ViewerAssigned):
            v = self.viewers[client]
            v.host, v.rtp_port = host, rtp_port
        return ev

    def _join(self, client: str, content: str, pe: str, now: float) -> Event:
        x = self.contents.get(content)
        if x is None:
            return JoinRefused(client, content, pe, f"content {content} is not live")
        node = self.net.nodes.get(pe)
        if node is None or not (node.hosts and node.edge):
            return JoinRefused(client, content, pe, f"{pe!r} is not an access PE")
        cur = self.viewers.get(client)
        if cur is not None and cur.content == content and cur.pe == pe:
            s = self.streamers[cur.streamer]
            return ViewerAssigned(client, content, pe, s.id, s.node, cur.case, "already joined")
        if cur is not None:
            self.leave(client, now)  # a viewer watches one content at a time
        c, sid, tried = self._first(x, pe, lambda trial, c: trial._apply(c, client, now))
        if c is not None:
            s = self.streamers[sid]
            self.prune_at.pop((content, s.id), None)
            passed = f"; passed over: {'; '.join(tried)}" if tried else ""
            copies = self.copies_why(content)
            why = f"case {c.case} ({self.criterion}): {c.label}{passed}; {copies}"
            return ViewerAssigned(client, content, pe, s.id, s.node, c.case, why)
        why = "no edge streamer can take the viewer: " + ("; ".join(tried) or "no candidate")
        return JoinRefused(client, content, pe, why)

    def play(
        self,
        client: str,
        content: str,
        root: str,
        bitrate_bps: float,
        pe: str,
        now: float,
        host: str | None = None,
    ) -> Event:
        """A recording played on demand (``content``, pulled from the storage at
        ``root``) through the edge streamer the rule picks for ``pe``, exactly as a
        live join; refused, it leaves no reservation behind."""
        if content in self.contents and not self.contents[content].pull:
            return JoinRefused(client, content, pe, f"{content} is a live content")
        try:
            self.publish(content, root, bitrate_bps, pull=True)
        except TreeError as e:
            return JoinRefused(client, content, pe, str(e))
        ev = self.join(client, content, pe, now, host)
        if isinstance(ev, ViewerAssigned):
            self.viewers[client].since = now  # played again: idle from now on
        elif not any(content in s.contents for s in self.streamers.values()):
            del self.contents[content]
        return ev

    def leave(self, client: str, now: float) -> list[Event]:
        v = self.viewers.pop(client, None)
        if v is None:
            return []
        at: float | None = None
        if not any(
            o.streamer == v.streamer and o.content == v.content for o in self.viewers.values()
        ):
            at = now + self.limits.grace_s
            for p in self.plans.values():  # a pre-started branch is kept for its event
                if p.content == v.content and p.streamer == v.streamer:
                    at = max(at, p.until)
            self.prune_at[(v.content, v.streamer)] = at
        return [ViewerLeft(client, v.content, v.streamer, at)]

    def tick(self, now: float) -> list[Event]:
        """Prune the branches whose grace period is over."""
        out: list[Event] = []
        for (content, sid), at in sorted(self.prune_at.items(), key=lambda kv: kv[1]):
            if at > now:
                continue
            del self.prune_at[(content, sid)]
            s = self.streamers.get(sid)
            if s is not None and content in s.contents:
                out += self._drop(content, s)
        taken = {x for s in self.streamers.values() for x in s.contents}
        for x in [x for x in self.contents.values() if x.pull and x.id not in taken]:
            del self.contents[x.id]  # a playback ended: nothing of it stays reserved
        self.plans = {k: p for k, p in self.plans.items() if p.until > now}
        return out

    # -------------------------------------------------------------- planning

    def prestart(
        self, content: str, pe: str, reservations: int, until: float, now: float
    ) -> list[Event]:
        """Reservations from ``pe`` for ``content`` (published already): a branch to
        that PE, chosen by the join rule, held until ``until`` unless someone joins.
        Done once per (content, PE); a refusal is tried again only when the number of
        reservations changes."""
        x = self.contents.get(content)
        if x is None:
            raise TreeError(f"content {content} is not published")
        old = self.plans.get((content, pe))
        if old is not None and (old.streamer is not None or old.reservations == reservations):
            old.reservations, old.until = reservations, until
            if old.streamer is not None and (content, old.streamer) in self.prune_at:
                self.prune_at[(content, old.streamer)] = max(
                    self.prune_at[(content, old.streamer)], until
                )
            return []
        node = self.net.nodes.get(pe)
        if node is None or not (node.hosts and node.edge):
            why = f"{pe!r} is not an access PE"
            self.plans[(content, pe)] = Plan(content, pe, reservations, None, until, why)
            return [PrestartRefused(content, pe, reservations, why)]
        n = f"{reservations} reservation{'s' if reservations != 1 else ''}"
        c, sid, tried = self._first(x, pe, lambda trial, c: trial._take(c))
        if c is not None:
            s = self.streamers[sid]
            if not any(v.streamer == s.id and v.content == content for v in self.viewers.values()):
                self.prune_at[(content, s.id)] = max(self.prune_at.get((content, s.id), 0.0), until)
            passed = f"; passed over: {'; '.join(tried)}" if tried else ""
            why = f"pre-started for {n}: case {c.case} ({self.criterion}): {c.label}{passed}"
            self.plans[(content, pe)] = Plan(content, pe, reservations, s.id, until, why)
            return [BranchPrestarted(content, pe, s.id, s.node, c.case, reservations, until, why)]
        why = f"nothing can be pre-started for {n}: " + ("; ".join(tried) or "no candidate")
        self.plans[(content, pe)] = Plan(content, pe, reservations, None, until, why)
        return [PrestartRefused(content, pe, reservations, why)]

    def unplan(self, content: str, pe: str, now: float) -> list[Event]:
        """``pe``'s reservations for ``content`` are gone: its pre-started branch goes
        now unless a viewer watches there or another PE's plan uses it."""
        p = self.plans.pop((content, pe), None)
        if p is None or p.streamer is None:
            return []
        s = self.streamers.get(p.streamer)
        if s is None or content not in s.contents:
            return []
        if any(v.streamer == s.id and v.content == content for v in self.viewers.values()):
            return []
        if any(o.streamer == s.id and o.content == content for o in self.plans.values()):
            return []
        return self._drop(content, s)

    # -------------------------------------------------------------- the rule

    def _candidates(self, x: Content, pe: str) -> Iterable[Candidate]:
        """The rule's candidates, in its order and the criterion's within a case."""
        qos = self.criterion == "qos"
        local = [s for s in self.streamers.values() if s.node == pe]
        # 1: reuse a streamer on the PE already processing X
        for s in self._by_load(s for s in local if x.id in s.contents):
            label = f"{s.id} on {pe} already serves {x.id} ({self._count(s)} viewers)"
            if any(p.streamer == s.id and p.content == x.id for p in self.plans.values()):
                label += ", pre-started for reservations"
            yield Candidate(1, label, x.id, s.id, pe, (pe,))
        # 2: a streamer on the PE with spare CPU and bandwidth takes X
        for s in self._by_load(s for s in local if x.id not in s.contents):
            label = f"{s.id} on {pe} ({self._count(s)} viewers) has room and takes {x.id}"
            yield Candidate(2, label, x.id, s.id, pe, (pe,))
        # 3: only if the PE has no streamer: a suitable one on a neighbour PE
        if not local:
            hops = self.net.hops(pe)
            near = [
                s
                for s in self.streamers.values()
                if 0 < hops.get(s.node, NEIGHBOUR_HOPS + 1) <= NEIGHBOUR_HOPS
            ]
            legs = {s.node: self._path(s.node, pe, x.bitrate_bps) for s in near}

            def key(s: Streamer) -> tuple[Any, ...]:
                leg = legs[s.node] or []
                delay, load = self.net.delay(leg), self._count(s)
                if qos:
                    return (delay, len(leg), load, s.id)
                return (x.id not in s.contents, -load, delay, s.id)

            for s in sorted(near, key=key):
                leg = legs[s.node]
                what = "already serves" if x.id in s.contents else "has room and takes"
                label = f"no streamer on {pe}: {s.id} on neighbour {s.node} {what} {x.id}"
                if leg is None:
                    yield Candidate(
                        3, label + ", but no path to the viewer has room", x.id, s.id, s.node, None
                    )
                    continue
                label += f" ({self.net.delay(leg) * 1000:.1f} ms away)"
                yield Candidate(3, label, x.id, s.id, s.node, tuple(leg))
        # 4: a new streamer, on the client's PE first, else the nearest PE with room
        for n in self._nearest(pe):
            leg = [pe] if n == pe else self._path(n, pe, x.bitrate_bps)
            where = f"on {pe}" if n == pe else f"on {n} ({pe} has no room)"
            yield Candidate(
                4, f"a new streamer {where}", x.id, None, n, tuple(leg) if leg is not None else None
            )

    def _first(
        self, x: Content, pe: str, take: Callable[[Tree, Candidate], Streamer]
    ) -> tuple[Candidate | None, str, list[str]]:
        """The first of the rule's candidates that ``take`` applies with nothing over
        capacity (on a trial copy, then adopted), the streamer it gave, and why each
        candidate before it was passed over."""
        tried: list[str] = []
        for c in self._candidates(x, pe):
            trial = self._clone()
            try:
                sid = take(trial, c).id
                bad = trial.violations()
            except TreeError as e:
                bad = [str(e)]
            if not bad:
                self._adopt(trial)
                return c, sid, tried
            tried.append(f"{c.label}: {', '.join(bad[:3])}")
        return None, "", tried

    def _apply(self, c: Candidate, client: str, now: float) -> Streamer:
        """Candidate ``c`` taken by a viewer (on a trial copy: violations() decides)."""
        s = self._take(c)
        assert c.leg is not None  # _take checked it
        self.viewers[client] = Viewer(client, c.content, c.leg[-1], s.id, c.case, list(c.leg), now)
        return s

    def _take(self, c: Candidate) -> Streamer:
        """The streamer of candidate ``c`` takes its content (made if new)."""
        if c.leg is None:
            raise TreeError("no path to the viewer has room")
        x = self.contents[c.content]
        if c.streamer is None:
            self.serial += 1
            s = Streamer(f"es{self.serial}-{c.node}", c.node)
            self.streamers[s.id] = s
        else:
            s = self.streamers[c.streamer]
        if x.id not in s.contents:
            self._graft(x, s.node)
            s.contents.append(x.id)
        return s

    def _clone(self) -> Tree:
        t = Tree(self.net, self.limits, self.criterion, self.reserved_cpu)
        t._adopt(self, deep=True)
        return t

    def _adopt(self, other: Tree, deep: bool = False) -> None:
        state = (other.contents, other.streamers, other.viewers, other.prune_at, other.plans)
        if deep:
            state = copy.deepcopy(state)
        self.contents, self.streamers, self.viewers, self.prune_at, self.plans = state
        self.serial = other.serial

    def _by_load(self, streamers: Iterable[Streamer]) -> list[Streamer]:
        """Consolidation fills the busiest first; QoS spreads to the least loaded."""
        sign = 1 if self.criterion == "qos" else -1
        return sorted(streamers, key=lambda s: (sign * self._count(s), s.id))

    def _nearest(self, pe: str) -> list[str]:
        """PEs that can host a streamer, from pe outwards (QoS: by delay; consolidation:
        by hops)."""
        dist, _ = self._dijkstra({pe: 0.0}, lambda _a, _b: True, self.criterion == "qos")
        nodes = self.net.nodes
        return sorted(
            (n for n in dist if nodes[n].hosts and nodes[n].edge),
            key=lambda n: (n != pe, dist[n], n),
        )

    def _count(self, s: Streamer) -> int:
        return sum(1 for v in self.viewers.values() if v.streamer == s.id)

    # -------------------------------------------------------------- branches

    def _graft(self, x: Content, node: str) -> None:
        """Put ``node`` on X's tree: a path from a tree node over links with room."""
        if node in x.parent:
            return
        tree = set(x.parent)
        qos = self.criterion == "qos"
        # QoS starts each tree node at its delay from the root; consolidation at 0
        # (the nearest tree node wins: fewest new links).
        starts = {n: (self.net.delay(self._up(x, n)) if qos else 0.0) for n in tree}
        room = self._room(x.bitrate_bps)
        dist, prev = self._dijkstra(starts, lambda a, b: b not in tree and room(a, b), qos)
        if node not in dist:
            raise TreeError(
                f"no path with {mbit(x.bitrate_bps)} spare from {x.id}'s tree to {node}"
            )
        path = [node]
        while path[-1] not in tree:
            path.append(prev[path[-1]])
        path.reverse()
        for a, b in itertools.pairwise(path):
            x.parent[b] = a

    def _up(self, x: Content, n: str) -> list[str]:
        """From n up to X's root."""
        path = [n]
        while (p := x.parent[path[-1]]) is not None:
            path.append(p)
        return path

    def _room(self, bps: float) -> Callable[[str, str], bool]:
        """Whether a link has ``bps`` spare now."""
        used = self.loads().link_bps

        def ok(a: str, b: str) -> bool:
            k = frozenset((a, b))
            return used.get(k, 0.0) + bps <= self.net.links[k].capacity_bps + EPS

        return ok

    def _path(self, src: str, dst: str, bps: float) -> list[str] | None:
        """A viewer leg from a streamer's node to the client's PE, over links with room."""
        dist, prev = self._dijkstra({src: 0.0}, self._room(bps), True)
        if dst not in dist:
            return None
        path = [dst]
        while path[-1] != src:
            path.append(prev[path[-1]])
        return path[::-1]

    def _dijkstra(
        self, starts: Mapping[str, float], usable: Callable[[str, str], bool], by_delay: bool
    ) -> tuple[dict[str, float], dict[str, str]]:
        """Distance (delay, else hops) from the nearest start and the predecessor on
        that path; ties by hops, then names (deterministic)."""
        dist: dict[str, float] = {}
        prev: dict[str, str] = {}
        heap: list[tuple[float, int, str, str]] = [(d, 0, n, "") for n, d in starts.items()]
        heapq.heapify(heap)
        while heap:
            d, h, u, via = heapq.heappop(heap)
            if u in dist:
                continue
            dist[u] = d
            if via:
                prev[u] = via
            for v in self.net.adj[u]:
                if v not in dist and usable(u, v):
                    w = self.net.link(u, v).delay_s if by_delay else 1.0
                    heapq.heappush(heap, (d + w, h + 1, v, u))
        return dist, prev

    def _drop(self, content: str, s: Streamer) -> list[Event]:
        """Streamer ``s`` no longer takes ``content``; the tree loses what nobody needs."""
        out: list[Event] = []
        s.contents.remove(content)
        self.prune_at.pop((content, s.id), None)
        self.plans = {
            k: p for k, p in self.plans.items() if not (p.content == content and p.streamer == s.id)
        }
        x = self.contents.get(content)
        gone: tuple[str, ...] = ()
        if x is not None:
            keep = {x.root}
            for o in self.streamers.values():
                if content in o.contents:
                    keep.update(self._up(x, o.node))
            gone = tuple(sorted(n for n in x.parent if n not in keep))
            for n in gone:
                del x.parent[n]
        out.append(BranchPruned(content, s.id, gone))
        if not s.contents:
            del self.streamers[s.id]
            out.append(StreamerReleased(s.id, s.node))
        return out

    # -------------------------------------------------------------- accounting

    def _shape(self, x: Content) -> Shape:
        """X's tree as the data plane sees it: children, streamers per node, and the
        copies that must enter each node (one where it duplicates)."""
        sh = Shape()
        for n, p in x.parent.items():
            if p is not None:
                sh.children.setdefault(p, []).append(n)
        for kids in sh.children.values():
            kids.sort()
        for s in sorted(self.streamers.values(), key=lambda s: s.id):
            if x.id in s.contents:
                sh.at.setdefault(s.node, []).append(s.id)
        order, i = [x.root], 0
        while i < len(order):  # breadth first; reversed, children come before parents
            order += sh.children.get(order[i], [])
            i += 1
        sh.switched = self.switched(x)
        for n in reversed(order):
            raw = len(sh.at.get(n, ())) + sum(sh.need[c] for c in sh.children.get(n, ()))
            hosts = self.net.nodes[n].hosts and not x.pull
            if sh.switched:
                sh.need[n] = min(raw, 1)
                if raw > 1:
                    sh.branches.append(n)
                continue
            sh.need[n] = min(raw, 1) if hosts else raw
            if n != x.root and hosts and raw > 1:
                sh.forwarders.append(n)
        sh.branches.sort()
        return sh

    def switched(self, x: Content) -> bool:
        """Whether X's copies are made in the switches: every node of its tree has a
        switch the controller programs (the module's docstring). Never a pulled
        content: each streamer fetches its own copy from the storage over HTTP."""
        return not x.pull and all(self.net.nodes[n].copies for n in x.parent)

    def copies_why(self, content: str) -> str:
        """How the content's copies are made now, in words (for a decision's why)."""
        x = self.contents.get(content)
        if x is None:
            return ""
        if x.pull:
            return f"{x.id} pulled from its storage at {x.root} (one copy per streamer)"
        sh = self._shape(x)
        if sh.switched:
            where = f"groups ALL at {', '.join(sh.branches)}" if sh.branches else "no branch yet"
            return (
                f"{x.id}'s copies in the switches ({where}; no forwarder, no function "
                "hop: every switch on its tree is the SDN controller's)"
            )
        manual = sorted(n for n in x.parent if not self.net.nodes[n].copies)
        fwd = ", ".join(sorted(sh.forwarders)) or "none"
        return (
            f"{x.id}'s copies by functions (forwarders: {fwd}; the switches of "
            f"{', '.join(manual)} are not the SDN controller's)"
        )

    def loads(self) -> Loads:
        """Every load, recomputed from the state (see the module's docstring)."""
        L = Loads()
        lim = self.limits
        for n, cpu in sorted(self.reserved_cpu.items()):
            if n in self.net.nodes:
                # At most the node's whole CPU: a portal over it blocks the tree's
                # functions there, not every join elsewhere (violations() is global).
                L.add(L.node_cpu, n, min(cpu, self.net.nodes[n].cpu))
        for s in self.streamers.values():
            L.add(L.node_cpu, s.node, lim.streamer_cpu + lim.content_cpu * len(s.contents))
        for root in {x.root for x in self.contents.values() if not x.pull}:
            L.add(L.node_cpu, root, lim.acquirer_cpu)
        for x in self.contents.values():
            sh = self._shape(x)
            for n in sh.forwarders:
                L.forwarders.setdefault(n, set()).add(x.id)
            for n, p in x.parent.items():
                if p is not None:
                    k = sh.need[n] * x.bitrate_bps
                    L.add(L.link_bps, frozenset((p, n)), k)
                    L.add(L.node_bps, p, k)
        for n in L.forwarders:
            L.add(L.node_cpu, n, lim.forwarder_cpu)
        for v in self.viewers.values():
            bps = self.contents[v.content].bitrate_bps
            s = self.streamers[v.streamer]
            L.add(L.streamer_bps, s.id, bps)
            L.add(L.node_bps, s.node, bps)
            for a, b in itertools.pairwise(v.leg):
                L.add(L.link_bps, frozenset((a, b)), bps)
        return L

    def violations(self) -> list[str]:
        """What is over capacity, or inconsistent (empty when all is well)."""
        L = self.loads()
        out = []
        for n, used in sorted(L.node_cpu.items()):
            if used > self.net.nodes[n].cpu + EPS:
                out.append(f"{n} CPU {used:.2f} > {self.net.nodes[n].cpu:.2f}")
        for n, used in sorted(L.node_bps.items()):
            if used > self.net.nodes[n].bandwidth_bps + EPS:
                out.append(f"{n} sends {mbit(used)} > {mbit(self.net.nodes[n].bandwidth_bps)}")
        for k, used in sorted(L.link_bps.items(), key=lambda kv: sorted(kv[0])):
            lk = self.net.links[k]
            if used > lk.capacity_bps + EPS:
                out.append(f"link {lk.a}-{lk.b} {mbit(used)} > {mbit(lk.capacity_bps)}")
        for sid, used in sorted(L.streamer_bps.items()):
            if used > self.limits.streamer_bandwidth_bps + EPS:
                out.append(
                    f"{sid} serves {mbit(used)} > {mbit(self.limits.streamer_bandwidth_bps)}"
                )
        for s in self.streamers.values():
            if len(s.contents) > self.limits.streamer_contents:
                out.append(
                    f"{s.id} takes {len(s.contents)} contents > {self.limits.streamer_contents}"
                )
        return out

    # -------------------------------------------------------------- desired state

    def desired(self) -> Desired:
        acq: dict[str, dict[str, tuple[Target, ...]]] = {}
        fwd: dict[str, dict[str, tuple[Target, ...]]] = {}
        switched: dict[str, tuple[str, ...]] = {}
        for x in self.contents.values():
            if x.pull:  # the streamers pull it from the storage: no acquirer, no forwarder
                continue
            sh = self._shape(x)
            acq.setdefault(x.root, {})[x.id] = tuple(sh.below(x.root))
            for n in sh.forwarders:
                fwd.setdefault(n, {})[x.id] = tuple(sh.below(n))
            if sh.switched:
                switched[x.id] = tuple(sh.branches)
        streamers = {s.id: (s.node, tuple(s.contents)) for s in self.streamers.values()}
        return Desired(acq, fwd, streamers, switched)

    # -------------------------------------------------------------- persistence

    def dump(self) -> dict[str, Any]:
        """The state as JSON-able data (the service keeps it in its table)."""
        return {
            "criterion": self.criterion,
            "serial": self.serial,
            "contents": [
                {"id": x.id, "root": x.root, "bitrate_bps": x.bitrate_bps, "parent": x.parent}
                | ({"pull": True} if x.pull else {})
                for x in self.contents.values()
            ],
            "streamers": [
                {"id": s.id, "node": s.node, "contents": s.contents}
                for s in self.streamers.values()
            ],
            "viewers": [vars(v) for v in self.viewers.values()],
            "prune_at": [[c, s, at] for (c, s), at in self.prune_at.items()],
            "plans": [vars(p) for p in self.plans.values()],
        }

    @classmethod
    def load(
        cls,
        net: Network,
        limits: Limits,
        data: Mapping[str, Any],
        reserved_cpu: Mapping[str, float] | None = None,
    ) -> Tree:
        """The state ``dump`` wrote, on the network as it is now: what names a node
        the network lost is dropped (its viewers join again)."""
        t = cls(net, limits, data.get("criterion", "consolidation"), reserved_cpu)
        t.serial = int(data.get("serial", 0))
        for x in data.get("contents", []):
            if x["root"] in net.nodes and all(n in net.nodes for n in x["parent"]):
                t.contents[x["id"]] = Content(
                    x["id"],
                    x["root"],
                    float(x["bitrate_bps"]),
                    dict(x["parent"]),
                    bool(x.get("pull", False)),
                )
        for s in data.get("streamers", []):
            if s["node"] in net.nodes:
                keep = [c for c in s["contents"] if c in t.contents]
                t.streamers[s["id"]] = Streamer(s["id"], s["node"], keep)
        for v in data.get("viewers", []):
            if v["streamer"] in t.streamers and v["content"] in t.contents:
                t.viewers[v["client"]] = Viewer(**v)
        for c, s, at in data.get("prune_at", []):
            t.prune_at[(c, s)] = float(at)
        for p in data.get("plans", []):
            if p["content"] in t.contents and (
                p["streamer"] is None or p["streamer"] in t.streamers
            ):
                t.plans[(p["content"], p["pe"])] = Plan(**p)
        return t


def mbit(bps: float) -> str:
    return f"{bps / 1e6:.1f} Mbit/s"
