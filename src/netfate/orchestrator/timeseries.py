"""The placement engine's monitoring input: time series from Prometheus, or the last
samples the agents reported when no Prometheus runs (or it fails), saying which.

    read(session)
      Prometheus configured (`--prometheus URL`, Settings.prometheus_url):
        query_range over the last `window_s`, one point every `step_s`, of
          netfate_node_cpu_cores{node}, netfate_node_memory_mb{node}   (agents)
          netfate_link_mbps{node,peer,direction="tx"}                  (agents; a link's
                                        use is what both of its ends send on it)
      otherwise, or when that fails: each node's last report (NodeRow.resources),
        one sample per figure
      -> Reading: per-node NodeSeries and per-link samples for engine.from_series,
         and `source`, one sentence that goes into each decision it informs

The engine itself stays pure (engine/monitoring.py turns series into loads); the
I/O is here. Answers are cached for `ttl_s` so a loop stepping every second asks
Prometheus at most that often; a failure falls back at once and is asked again
after the same interval.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.metrics.promapi import Client, PromError, Series
from netfate.orchestrator.engine.monitoring import NodeSeries, Sample
from netfate.store.tables import NodeRow

NODE_QUERIES = {
    "cpu": "netfate_node_cpu_cores",
    "memory_mb": "netfate_node_memory_mb",
}
LINK_QUERY = 'netfate_link_mbps{direction="tx"}'


@dataclass(frozen=True)
class Reading:
    nodes: dict[str, NodeSeries] = field(default_factory=dict)
    links: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)
    """(a, b) with a < b -> Mbit/s on the link, both directions summed."""
    source: str = ""
    """Where the figures come from, in one sentence (for decisions' reasons)."""
    prometheus: bool = False
    """True: time series from Prometheus; False: the agents' last samples."""


def _finite(points: Iterable[tuple[float, float]]) -> list[Sample]:
    return [Sample(t, v) for t, v in points if math.isfinite(v) and v >= 0]


def _link_series(series: Iterable[Series]) -> dict[tuple[str, str], list[Sample]]:
    """Sum what each end of a link sends on it, at each timestamp (range queries align
    every series on the same steps)."""
    sums: dict[tuple[str, str], dict[float, float]] = {}
    for s in series:
        node, peer = s.labels.get("node"), s.labels.get("peer")
        if not node or not peer or node == peer:
            continue
        key = (min(node, peer), max(node, peer))
        at = sums.setdefault(key, {})
        for p in _finite(s.points):
            at[p.t] = at.get(p.t, 0.0) + p.value
    return {k: [Sample(t, v) for t, v in sorted(pts.items())] for k, pts in sums.items()}


def from_prometheus(client: Client, *, now: float, window_s: float, step_s: float) -> Reading:
    """Series of every node and link Prometheus has figures of; PromError if it
    cannot be asked or answers nonsense."""
    start = now - window_s
    per_node: dict[str, dict[str, list[Sample]]] = {}
    for attr, query in NODE_QUERIES.items():
        for s in client.query_range(query, start, now, step_s):
            node = s.labels.get("node")
            if node:
                per_node.setdefault(node, {})[attr] = _finite(s.points)
    if not any(f.get("cpu") or f.get("memory_mb") for f in per_node.values()):
        raise PromError(f"Prometheus at {client.url} has no node series yet")
    links = _link_series(client.query_range(LINK_QUERY, start, now, step_s))
    nodes = {n: NodeSeries(cpu=f.get("cpu", ()), memory_mb=f.get("memory_mb", ()))
             for n, f in per_node.items()}  # fmt: skip
    src = (
        f"Prometheus at {client.url}: {len(nodes)} nodes' series over the last "
        f"{window_s:g} s, a point every {step_s:g} s"
    )
    return Reading(nodes, links, src, prometheus=True)


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        return None
    return float(v)


def from_last_samples(session: Session, why: str) -> Reading:
    """One sample per figure: each node's last report (its `resources`)."""
    nodes: dict[str, NodeSeries] = {}
    link_sums: dict[tuple[str, str], float] = {}
    link_at: dict[tuple[str, str], float] = {}
    for name, res in session.execute(select(NodeRow.name, NodeRow.resources)):
        if not isinstance(res, Mapping):
            continue
        at = _number(res.get("at"))
        if at is None:
            continue
        cpu_pct = _number(res.get("instance_cpu_pct"))
        mem = _number(res.get("instance_rss_mb"))
        nodes[name] = NodeSeries(
            cpu=[Sample(at, cpu_pct / 100.0)] if cpu_pct is not None else (),
            memory_mb=[Sample(at, mem)] if mem is not None else (),
        )
        use = res.get("links")
        for peer, fig in use.items() if isinstance(use, Mapping) else ():
            tx = _number(fig.get("tx_mbps")) if isinstance(fig, Mapping) else None
            if tx is None or not isinstance(peer, str) or peer == name:
                continue
            key = (min(name, peer), max(name, peer))
            link_sums[key] = link_sums.get(key, 0.0) + tx
            link_at[key] = max(link_at.get(key, 0.0), at)
    links = {k: [Sample(link_at[k], v)] for k, v in link_sums.items()}
    return Reading(nodes, links, f"the agents' last samples ({why})", prometheus=False)


class Reader:
    """The orchestrator's monitoring input (one per app): Prometheus when configured,
    else the last samples; answers cached for `ttl_s`."""

    def __init__(
        self,
        prometheus_url: str | None = None,
        *,
        window_s: float = 300.0,
        step_s: float = 5.0,
        ttl_s: float = 5.0,
        timeout_s: float = 2.0,
    ) -> None:
        self.client = Client(prometheus_url, timeout_s) if prometheus_url else None
        self.window_s = window_s
        self.step_s = step_s
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._cached: tuple[float, Reading] | None = None
        self.last_error: str | None = None

    def read(self, session: Session, now: float | None = None) -> Reading:
        if self.client is None:
            return from_last_samples(session, "no Prometheus configured")
        now = time.time() if now is None else now
        with self._lock:
            if self._cached is not None and now - self._cached[0] < self.ttl_s:
                got = self._cached[1]
                if got.prometheus:
                    return got
                return from_last_samples(session, f"Prometheus failed: {self.last_error}")
            try:
                got = from_prometheus(
                    self.client, now=now, window_s=self.window_s, step_s=self.step_s
                )
                self.last_error = None
            except PromError as e:
                self.last_error = str(e)[:300]
                got = Reading(source="failed", prometheus=False)
            self._cached = (now, got)
        if got.prometheus:
            return got
        return from_last_samples(session, f"Prometheus failed: {self.last_error}")


_current = Reader()


def configure(reader: Reader) -> None:
    """The reader the engine's callers use (set by create_app: one orchestrator per
    process; the reconcile loops, which see only a session, find it here)."""
    global _current
    _current = reader


def current() -> Reader:
    return _current
