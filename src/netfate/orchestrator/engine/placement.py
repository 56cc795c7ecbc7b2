"""Where should an instance run?

A policy is a pure function `(request, candidates, graph) -> Placement`; policies
are registered by name so services can add their own (the HRH's delay-bound
policy, the streaming tree's). Candidates already carry free capacity, so a
policy never needs the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from heapq import heappop, heappush
from itertools import count, islice
from math import inf

import networkx as nx

HOSTING_KINDS = frozenset({"cpe", "pe", "pop", "hrh"})
"""Node kinds that always host functions."""
COMPUTE_KINDS = frozenset({"core"})
"""Kinds that forward, and host functions only where the topology gives them compute:
a LAN their functions attach to (and take their addresses from)."""


def can_host(kind: str, lan: bool) -> bool:
    """Whether a node of ``kind`` (with a LAN or not) runs functions."""
    return kind in HOSTING_KINDS or (kind in COMPUTE_KINDS and lan)


@dataclass(frozen=True)
class Candidate:
    node: str
    kind: str
    up: bool
    free_cpu: float
    free_memory_mb: int
    lan: bool = False
    """The node has a LAN for its functions (a core node hosts only then)."""
    power: str = "on"
    """The node's power switch (on, draining, off): only an on node takes anything."""
    standbys: tuple[tuple[str, int], ...] = ()
    """The warm standbys the node keeps, as (function, MiB one holds): their memory is
    already out of `free_memory_mb` (they hold it whether or not anything comes); a
    create of one of these functions takes a standby and gets its memory back
    (`take_mb`), so it is counted once, not twice (engine/predeploy.fit_standbys)."""

    @property
    def hosts(self) -> bool:
        return can_host(self.kind, self.lan)


@dataclass(frozen=True)
class PlacementRequest:
    cpu: float
    memory_mb: int
    serves: str | None = None
    """Host (or node) the instance serves; `nearest` measures distance from it."""
    delay_bound_ms: float | None = None
    """The function's declared round-trip bound (descriptor), for delay-aware policies."""
    measured_rtt_ms: float | None = None
    """A measured round trip to use instead of the topology's link delays."""
    function: str | None = None
    """The function it runs: a node keeping a warm standby of it lends it that
    standby's memory (`Candidate.standbys`)."""


@dataclass(frozen=True)
class Placement:
    node: str
    policy: str
    why: str


class NoPlacement(Exception):
    """No node can take the instance; the message says why."""


Policy = Callable[[PlacementRequest, Sequence[Candidate], "nx.Graph[str]"], Placement]
POLICIES: dict[str, Policy] = {}


def register_policy(name: str) -> Callable[[Policy], Policy]:
    def deco(fn: Policy) -> Policy:
        POLICIES[name] = fn
        return fn

    return deco


def take_mb(req: PlacementRequest, c: Candidate) -> int:
    """The memory a warm standby of the request's function holds at the node (0: the
    node keeps none): the create takes that standby, and its memory with it."""
    if req.function is None:
        return 0
    for fn, mb in c.standbys:
        if fn == req.function:
            return mb
    return 0


def fits(req: PlacementRequest, c: Candidate) -> bool:
    return (
        c.up
        and c.power == "on"
        and c.hosts
        and c.free_cpu + 1e-9 >= req.cpu
        and c.free_memory_mb + take_mb(req, c) >= req.memory_mb
    )


def _explain_none(req: PlacementRequest, candidates: Sequence[Candidate]) -> str:
    if not candidates:
        return "no nodes are known"
    reasons = []
    for c in candidates:
        if not c.hosts:
            continue
        if not c.up:
            reasons.append(f"{c.node}: not up")
        elif c.power != "on":
            reasons.append(f"{c.node}: switched {c.power}")
        elif c.free_cpu + 1e-9 < req.cpu:
            reasons.append(f"{c.node}: {c.free_cpu:.2f} CPU free < {req.cpu:.2f}")
        elif c.free_memory_mb + take_mb(req, c) < req.memory_mb:
            kinds = ", ".join(fn for fn, _ in c.standbys)
            pool = f" beside its warm standbys of {kinds}" if kinds else ""
            reasons.append(f"{c.node}: {c.free_memory_mb} MiB free{pool} < {req.memory_mb}")
    return "no node has room: " + ("; ".join(reasons) or "no node can host functions")


@register_policy("nearest")
def nearest(
    req: PlacementRequest, candidates: Sequence[Candidate], graph: nx.Graph[str]
) -> Placement:
    """The fitting node closest to the served host, by summed link delay, then hops.

    Ties go to the node with the most free CPU, then by name, so the choice is
    deterministic. Without a served host, this is `least-loaded`.
    """
    ok = [c for c in candidates if fits(req, c)]
    if not ok:
        raise NoPlacement(_explain_none(req, candidates))
    if req.serves is None or req.serves not in graph:
        return least_loaded(req, ok, graph)
    found = _nearest_fitting(graph, req.serves, {c.node: c for c in ok})
    if found is None:
        raise NoPlacement(f"no fitting node is reachable from {req.serves}")
    best, dist = found
    return Placement(
        best.node,
        "nearest",
        f"closest fitting node to {req.serves} ({dist * 1000:.2f} ms path)",
    )


def settled(graph: nx.Graph[str], source: str) -> Iterator[tuple[float, str]]:
    """Every vertex reachable from `source` with its distance, nearest first, as
    Dijkstra settles them (a vertex's neighbours are only looked at once the caller
    asks for the next one, so stopping early costs nothing more). Weight: a link's
    delay plus 1 µs per hop, so equal-delay paths prefer fewer hops."""
    dist: dict[str, float] = {}
    seen = {source: 0.0}
    heap: list[tuple[float, int, str]] = [(0.0, 0, source)]
    tie = count(1)
    adj = graph.adj
    while heap:
        d, _, u = heappop(heap)
        if u in dist:
            continue
        dist[u] = d
        yield d, u
        for v, e in adj[u].items():
            nd = d + float(e.get("delay_s", 0.0)) + 1e-6
            if v not in dist and nd < seen.get(v, inf):
                seen[v] = nd
                heappush(heap, (nd, next(tie), v))


def _nearest_fitting(
    graph: nx.Graph[str], source: str, ok: dict[str, Candidate]
) -> tuple[Candidate, float] | None:
    """Dijkstra from `source` that stops once the nearest fitting node is settled
    (and every node as near, for the tie-break): the served host's own node usually
    fits, so a create looks at a few nodes, not the whole graph (a full search cost
    ~10 ms at 1,000 nodes)."""
    best: tuple[float, float, str] | None = None  # (dist, -free_cpu, name)
    for d, u in settled(graph, source):
        if best is not None and d > best[0]:
            break
        c = ok.get(u)
        if c is not None:
            key = (d, -c.free_cpu, c.node)
            if best is None or key < best:
                best = key
    if best is None:
        return None
    return ok[best[2]], best[0]


Lookup = Callable[[Sequence[str]], Mapping[str, Candidate]]
"""Names -> the candidates among them (a name that is no node is left out)."""


def nearest_near(
    req: PlacementRequest, graph: nx.Graph[str], lookup: Lookup, first: int = 16
) -> Placement | None:
    """What `nearest` would choose given every candidate, reading only the candidates
    of the nodes nearest the served host (`lookup`, in growing batches: `first`, then
    4x more each time) until the nearest fitting one and its ties are known. None
    when there is no served host in the graph or no fitting node is found: the
    caller then runs `nearest` over every candidate (its choice or its refusal, with
    the reasons). A create then reads a few nodes' room instead of 1,000 (issue 15)."""
    if req.serves is None or req.serves not in graph:
        return None
    order = settled(graph, req.serves)
    best: tuple[float, float, str] | None = None  # (dist, -free_cpu, name)
    want = first
    while True:
        batch = list(islice(order, want))
        if not batch:
            break
        found = lookup([u for _, u in batch])
        for d, u in batch:
            if best is not None and d > best[0]:
                break  # every vertex after it is as far or farther
            c = found.get(u)
            if c is not None and fits(req, c):
                key = (d, -c.free_cpu, c.node)
                if best is None or key < best:
                    best = key
        if best is not None and batch[-1][0] > best[0]:
            break
        want *= 4
    if best is None:
        return None
    return Placement(
        best[2], "nearest", f"closest fitting node to {req.serves} ({best[0] * 1000:.2f} ms path)"
    )


@register_policy("least-loaded")
def least_loaded(
    req: PlacementRequest, candidates: Sequence[Candidate], graph: nx.Graph[str]
) -> Placement:
    """The fitting node with the most free CPU (then memory, then name)."""
    ok = [c for c in candidates if fits(req, c)]
    if not ok:
        raise NoPlacement(_explain_none(req, candidates))
    best = min(ok, key=lambda c: (-c.free_cpu, -c.free_memory_mb, c.node))
    return Placement(best.node, "least-loaded", f"most free CPU ({best.free_cpu:.2f})")


def place(
    req: PlacementRequest,
    candidates: Sequence[Candidate],
    graph: nx.Graph[str],
    policy: str = "nearest",
) -> Placement:
    try:
        fn = POLICIES[policy]
    except KeyError:
        raise NoPlacement(
            f"unknown placement policy {policy!r}; known: {', '.join(sorted(POLICIES))}"
        ) from None
    return fn(req, candidates, graph)
