"""An independent checker: does a placement meet every constraint of the model?

Written apart from the solvers on purpose (the tests hold every plan to it):
it reads the `Infrastructure` itself, not the compiled `Network`, finds routes
with networkx rather than the engine's tables, and sums every demand afresh.
It assumes the lowest-delay route between two nodes is unique up to hop count
(ties of equal delay and equal hops may be routed differently by the engine).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import networkx as nx

from netfate.orchestrator.engine.model import Infrastructure, Subscription

SLACK = 1e-6


@dataclass(frozen=True)
class Violation:
    constraint: str
    where: str
    """The subscription, node or link concerned."""
    detail: str


def _graph(infra: Infrastructure) -> nx.Graph[str]:
    g: nx.Graph[str] = nx.Graph()
    g.add_nodes_from(n.name for n in infra.nodes)
    for ln in infra.links:
        g.add_edge(ln.a, ln.b, delay=ln.delay_ms)
    return g


def check(
    infra: Infrastructure,
    subscriptions: Iterable[Subscription],
    where: Mapping[str, Mapping[str, str]],
    powered: Collection[str] | None = None,
) -> list[Violation]:
    """Every broken constraint of `where` (subscription -> block -> node); empty if none."""
    out: list[Violation] = []
    nodes = {n.name: n for n in infra.nodes}
    kinds = {k.name: k for k in infra.kinds}
    g = _graph(infra)
    subs = list(subscriptions)
    paths: dict[str, dict[str, list[str]]] = {}

    def route(a: str, b: str) -> list[str] | None:
        if a not in paths:
            _d, p = nx.single_source_dijkstra(
                g, a, weight=lambda _u, _v, d: float(d["delay"]) + 1e-7
            )
            paths[a] = p
        return paths[a].get(b)

    def delay(path: list[str]) -> float:
        return sum(float(g.edges[u, v]["delay"]) for u, v in itertools.pairwise(path))

    use: dict[str, list[float]] = {n: [0.0, 0.0, 0.0] for n in nodes}
    traffic: dict[frozenset[str], float] = {}

    def carry(a: str, b: str, mbps: float, who: str) -> None:
        if a == b or mbps <= 0:
            return
        path = route(a, b)
        if path is None:
            out.append(Violation("host", who, f"no route between {a} and {b}"))
            return
        for u, v in itertools.pairwise(path):
            key = frozenset((u, v))
            traffic[key] = traffic.get(key, 0.0) + mbps

    known = {s.id for s in subs}
    for sid in where:
        if sid not in known:
            out.append(Violation("host", sid, "placed but not subscribed"))
    for s in subs:
        placed = where.get(s.id)
        names = [b.name for b in s.chain.blocks]
        if placed is None or sorted(placed) != sorted(names):
            out.append(Violation("host", s.id, f"blocks placed {sorted(placed or {})} != {names}"))
            continue
        ok = True
        for b in s.chain.blocks:
            n = nodes.get(placed[b.name])
            if n is None or not n.up or not kinds[n.kind].hosts:
                out.append(Violation("host", s.id, f"{b.name} on {placed[b.name]}: cannot host"))
                ok = False
                continue
            if powered is not None and n.name not in powered:
                out.append(Violation("host", s.id, f"{b.name} on {n.name}, which is off"))
            use[n.name][0] += b.cpu
            use[n.name][1] += b.memory_mb
            use[n.name][2] += b.storage_mb
        if not ok:
            continue
        entry = placed[s.chain.blocks[0].name]
        path = route(s.at, entry)
        if path is None:
            out.append(Violation("latency", s.id, f"{entry} unreachable from {s.at}"))
        elif s.chain.sla.rtt_ms is not None:
            rtt = 2 * delay(path)
            if rtt > s.chain.sla.rtt_ms + SLACK:
                out.append(Violation("latency", s.id, f"{rtt:.3f} ms > {s.chain.sla.rtt_ms} ms"))
        if s.chain.sla.availability is not None:
            avail = 1.0
            for name in set(placed.values()):
                n = nodes[name]
                a = n.availability if n.availability is not None else kinds[n.kind].availability
                avail *= a
            if avail < s.chain.sla.availability:
                out.append(
                    Violation("availability", s.id, f"{avail:.6f} < {s.chain.sla.availability}")
                )
        carry(s.at, entry, s.chain.user_mbps, s.id)
        # Talks and consecutive blocks; one without a bandwidth carries chain_mbps.
        related: dict[tuple[str, str], float] = {}
        for t in s.chain.talks:
            pair = (t.a, t.b) if t.a < t.b else (t.b, t.a)
            related[pair] = related.get(pair, 0.0) + t.mbps
        for u, v in itertools.pairwise(names):
            related.setdefault((u, v) if u < v else (v, u), 0.0)
        for (u, v), mbps in related.items():
            carry(placed[u], placed[v], mbps if mbps > 0 else s.chain.chain_mbps, s.id)
    for name, (cpu, mem, sto) in use.items():
        n = nodes[name]
        for label, need, cap, bg in (
            ("cpu", cpu, n.cpu, n.load.cpu),
            ("memory", mem, n.memory_mb, n.load.memory_mb),
            ("storage", sto, n.storage_mb, n.load.storage_mb),
        ):
            if need > 0 and need + bg > cap + SLACK:
                out.append(
                    Violation(f"capacity:{label}", name, f"{need:g} + {bg:g} in use > {cap:g}")
                )
    for ln in infra.links:
        extra = traffic.get(frozenset((ln.a, ln.b)), 0.0)
        if extra > 0 and ln.used_mbps + extra > ln.capacity_mbps + SLACK:
            out.append(
                Violation(
                    "bandwidth",
                    f"{ln.a}--{ln.b}",
                    f"{extra:g} + {ln.used_mbps:g} in use > {ln.capacity_mbps:g} Mbit/s",
                )
            )
    return out


def energy_w(
    infra: Infrastructure,
    subscriptions: Iterable[Subscription],
    where: Mapping[str, Mapping[str, str]],
    powered: Collection[str],
) -> float:
    """Power of the `powered` nodes: idle plus the rate per core of background and placed CPU."""
    cpu = {n.name: n.load.cpu for n in infra.nodes}
    for s in subscriptions:
        for b in s.chain.blocks:
            cpu[where[s.id][b.name]] += b.cpu
    kinds = {k.name: k for k in infra.kinds}
    total = 0.0
    for n in infra.nodes:
        if n.name in powered:
            k = kinds[n.kind]
            total += k.idle_w + k.w_per_cpu * cpu[n.name]
    return total


def rtt_ms(infra: Infrastructure, a: str, b: str) -> float:
    """Round trip between two nodes on the lowest-delay route (inf: no route)."""
    try:
        return 2 * float(nx.shortest_path_length(_graph(infra), a, b, weight="delay"))
    except nx.NetworkXNoPath:
        return math.inf
