"""An Infrastructure compiled to arrays: node indices, free capacity, energy figures, routes.

Routes are computed once per topology (all sources, scipy's C Dijkstra) and kept
as dense N x N tables (delay, predecessor, the link into each node), so a path
is a walk of a few steps and a whole row of round trips is one slice. Dense
tables cost 16 bytes per node pair: 16 MB at 1,000 nodes; well past a few
thousand nodes they would want a sparse scheme.

Loads change far more often than the topology: `with_loads` gives a Network
with new monitoring figures that shares the routing tables.
"""

from __future__ import annotations

import copy
from array import array
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from netfate.orchestrator.engine.model import Infrastructure, Link, ModelError, Node, Usage

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.intp]
B = npt.NDArray[np.bool_]

RESOURCES = ("cpu", "memory", "storage")
HOP_EPS_MS = 1e-7
"""Added per hop to route weights so that among equal-delay routes the one with fewest hops
wins; route delays themselves are summed from the links (no epsilon in them)."""


@dataclass(frozen=True)
class Reach:
    """What `Network.reach` finds for one user position and pair of bounds."""

    ok: B
    """Can host, reachable, within the round-trip and availability bounds."""
    rtt: F64
    """Round trip to each node (inf: unreachable)."""
    rtt_c: F64
    """The same with 0 where unreachable (to price without inf * 0)."""
    priced: B
    """A hosting kind and reachable: the nodes a cost is given for."""
    ok_l: bytes
    rtt_l: array[float]
    rtt_c_l: array[float]
    """Plain copies for one-node reads (numpy scalars are slow); the round trips are
    shared by every Reach from the same node."""


def _usage_row(u: Usage) -> list[float]:
    return [u.cpu, u.memory_mb, u.storage_mb]


class Network:
    """Arrays over an Infrastructure's nodes (index order = infra.nodes) and links."""

    def __init__(self, infra: Infrastructure) -> None:
        infra.validate()
        self.infra = infra
        self.names: tuple[str, ...] = tuple(n.name for n in infra.nodes)
        self.index: dict[str, int] = {n: i for i, n in enumerate(self.names)}
        kinds = {k.name: k for k in infra.kinds}
        nodes = infra.nodes
        self.kind_hosts: B = np.array([kinds[n.kind].hosts for n in nodes], dtype=bool)
        self.idle_w: F64 = np.array([kinds[n.kind].idle_w for n in nodes], dtype=np.float64)
        self.w_per_cpu: F64 = np.array([kinds[n.kind].w_per_cpu for n in nodes], dtype=np.float64)
        self.availability: F64 = np.array(
            [
                n.availability if n.availability is not None else kinds[n.kind].availability
                for n in nodes
            ],
            dtype=np.float64,
        )
        self.cap: F64 = np.array(
            [[n.cpu, n.memory_mb, n.storage_mb] for n in nodes], dtype=np.float64
        ).reshape(len(nodes), 3)
        self._set_node_state(nodes)
        self.link_a: I32 = np.array([self.index[ln.a] for ln in infra.links], dtype=np.int32)
        self.link_b: I32 = np.array([self.index[ln.b] for ln in infra.links], dtype=np.int32)
        self.link_cap: F64 = np.array([ln.capacity_mbps for ln in infra.links], dtype=np.float64)
        self.link_delay: F64 = np.array([ln.delay_ms for ln in infra.links], dtype=np.float64)
        self.link_used: F64 = np.array([ln.used_mbps for ln in infra.links], dtype=np.float64)
        self.w_per_cpu_l: list[float] = self.w_per_cpu.tolist()
        self.link_names: tuple[str, ...] = tuple(f"{ln.a}--{ln.b}" for ln in infra.links)
        self._link_index: dict[frozenset[str], int] = {
            frozenset((ln.a, ln.b)): i for i, ln in enumerate(infra.links)
        }
        self.delay_ms, self.hops, self._pred, self._plink = _routes(
            len(nodes), self.link_a, self.link_b, self.link_delay
        )
        self._paths: dict[tuple[int, int], tuple[int, ...]] = {}

    def _set_node_state(self, nodes: tuple[Node, ...]) -> None:
        self.load: F64 = np.array([_usage_row(n.load) for n in nodes], dtype=np.float64).reshape(
            len(nodes), 3
        )
        self.up: B = np.array([n.up for n in nodes], dtype=bool)
        self.powered: B = np.array([n.powered and n.up for n in nodes], dtype=bool)
        self.pinned: B = np.array([n.pinned and n.up for n in nodes], dtype=bool)
        self.hosts: B = self.kind_hosts & self.up
        self.room: F64 = np.maximum(self.cap - self.load, 0.0)
        """What an on node offers the optimiser: capacity less background load."""
        self.on_w: F64 = self.idle_w + self.w_per_cpu * self.load[:, 0]
        """Power of an on node hosting nothing: idle plus its background load."""
        self.inv_room: F64 = 1.0 / np.maximum(self.room, 1e-12)
        # Plain-float copies for the heuristic's one-node fast path (numpy scalars are slow).
        self.on_w_l: list[float] = self.on_w.tolist()
        self.inv_room_l: list[list[float]] = self.inv_room.tolist()
        self._reach: dict[tuple[int, float, float], Reach] = {}
        self._rows: dict[int, Reach] = {}
        self.memo: dict[tuple[int, str], tuple[object, object]] = {}
        """For callers: (id of an object, name) -> (the object, a figure that depends only
        on it and this network's state). Cleared by with_loads."""

    @property
    def size(self) -> int:
        return len(self.names)

    def path_links(self, s: int, t: int) -> tuple[int, ...]:
        """Link indices on the route from node s to node t (empty when s == t)."""
        key = (s, t) if s <= t else (t, s)
        got = self._paths.get(key)
        if got is not None:
            return got
        a, b = key
        if self._pred[a, b] < 0 and a != b:
            raise ValueError(f"no route between {self.names[a]} and {self.names[b]}")
        out: list[int] = []
        cur = b
        pred = self._pred[a]
        plink = self._plink[a]
        while cur != a:
            out.append(int(plink[cur]))
            cur = int(pred[cur])
        path = tuple(out)
        self._paths[key] = path
        return path

    def rtt_row(self, s: int) -> F64:
        """Round trip (ms) from node s to every node; inf where there is no route."""
        row: F64 = 2.0 * self.delay_ms[s]
        return row

    def reach(self, s: int, rtt_bound: float, avail_bound: float) -> Reach:
        """Nodes that can host a chain whose user is at node s, before any room is
        counted: hosting, reachable, within the round-trip and availability bounds."""
        key = (s, rtt_bound, avail_bound)
        got = self._reach.get(key)
        if got is None:
            row = self._rows.get(s)
            if row is None:
                rtt = self.rtt_row(s)
                finite = np.isfinite(rtt)
                rtt_c = np.where(finite, rtt, 0.0)
                row = Reach(
                    finite,
                    rtt,
                    rtt_c,
                    self.kind_hosts & finite,
                    b"",
                    array("d", rtt.tolist()),
                    array("d", rtt_c.tolist()),
                )
                self._rows[s] = row
            mask = self.hosts & row.ok & (row.rtt <= rtt_bound + 1e-6)
            mask &= self.availability >= avail_bound
            got = Reach(
                mask, row.rtt, row.rtt_c, row.priced, mask.tobytes(), row.rtt_l, row.rtt_c_l
            )
            self._reach[key] = got
        return got

    def link_index(self, a: str, b: str) -> int:
        return self._link_index[frozenset((a, b))]

    def with_loads(
        self,
        nodes: Mapping[str, Usage] | None = None,
        links: Mapping[tuple[str, str], float] | None = None,
        *,
        up: Mapping[str, bool] | None = None,
        powered: Mapping[str, bool] | None = None,
    ) -> Network:
        """The same topology with new background loads (and up/powered states).

        Names not given keep their figures. Keyed ModelError for unknown names or
        impossible figures; the routing tables are shared, not recomputed.
        """
        errors: dict[str, str] = {}
        nodes = nodes or {}
        links = links or {}
        up = up or {}
        powered = powered or {}
        for key, m in (("nodes", nodes), ("up", up), ("powered", powered)):
            for name in m:
                if name not in self.index:
                    errors[f"{key}[{name}]"] = f"unknown node {name!r}"
        link_keys: dict[int, float] = {}
        for (a, b), used in links.items():
            i = self._link_index.get(frozenset((a, b)))
            if i is None:
                errors[f"links[{a}--{b}]"] = "no such link"
            else:
                link_keys[i] = used
        if errors:
            raise ModelError(errors)
        new_nodes = tuple(
            _replace_node(n, nodes.get(n.name), up.get(n.name), powered.get(n.name))
            for n in self.infra.nodes
        )
        new_links = tuple(
            _replace_link(ln, link_keys.get(i)) for i, ln in enumerate(self.infra.links)
        )
        infra = Infrastructure(self.infra.kinds, new_nodes, new_links)
        infra.validate()
        out = copy.copy(self)
        out.infra = infra
        out._set_node_state(new_nodes)
        out.link_used = np.array([ln.used_mbps for ln in new_links], dtype=np.float64)
        return out


def _replace_node(n: Node, load: Usage | None, up: bool | None, powered: bool | None) -> Node:
    if load is None and up is None and powered is None:
        return n
    return Node(
        n.name,
        n.kind,
        n.cpu,
        n.memory_mb,
        n.storage_mb,
        load if load is not None else n.load,
        up if up is not None else n.up,
        powered if powered is not None else n.powered,
        n.pinned,
        n.availability,
    )


def _replace_link(ln: Link, used: float | None) -> Link:
    if used is None:
        return ln
    return Link(ln.a, ln.b, ln.capacity_mbps, ln.delay_ms, used)


def _routes(n: int, a: I32, b: I32, delay: F64) -> tuple[F64, I32, I32, I32]:
    """All-pairs lowest-delay routes: (delay_ms, hops, predecessor, link into node)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    if n == 0:
        empty = np.zeros((0, 0), dtype=np.int32)
        return np.zeros((0, 0)), empty, empty, empty
    weights = delay + HOP_EPS_MS
    graph = csr_matrix((weights, (a, b)), shape=(n, n))
    _dist, pred_raw = dijkstra(graph, directed=False, return_predecessors=True)
    pred: I32 = np.asarray(pred_raw, dtype=np.int32)
    pred[pred < 0] = -1
    link_at = np.full((n, n), -1, dtype=np.int32)
    link_at[a, b] = np.arange(len(a), dtype=np.int32)
    link_at[b, a] = np.arange(len(a), dtype=np.int32)
    rows = np.arange(n)[:, None]
    plink: I32 = np.where(pred >= 0, link_at[np.maximum(pred, 0), np.arange(n)[None, :]], -1)
    plink = plink.astype(np.int32)
    # Sum the links' own delays along each route, all routes at once, one hop per step.
    total = np.zeros((n, n), dtype=np.float64)
    hops = np.zeros((n, n), dtype=np.int32)
    cur = np.broadcast_to(np.arange(n, dtype=np.int32), (n, n)).copy()
    live = pred >= 0
    while live.any():
        lk = plink[rows, cur]
        total[live] += delay[lk[live]]
        hops[live] += 1
        cur = np.where(live, pred[rows, cur], cur)
        live = live & (pred[rows, cur] >= 0)
    reach = (pred >= 0) | np.eye(n, dtype=bool)
    total[~reach] = np.inf
    return total, hops, pred, plink
