"""The optimiser's working state: what is placed where, and what room is left.

Private to the engine. A `State` is mutable so that the heuristic can add and
remove chains in O(chain) time; a Plan owns one and never changes it, and
every operation on a plan works on a `copy()`.

The checks here (`problem`) are the solvers' own; `check.py` is the
independent checker the tests hold every plan to.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from netfate.orchestrator.engine.model import Chain, Subscription
from netfate.orchestrator.engine.network import F64, I64, RESOURCES, B, Network
from netfate.orchestrator.engine.objective import Objective

TOL = 1e-6
"""Slack on capacity, bandwidth and delay comparisons (float sums of many small demands)."""

# The constraints, in the order a node is tested against them (the first that
# fails is the one named).
HOST = "host"
LATENCY = "latency"
AVAILABILITY = "availability"
CAPACITY = tuple(f"capacity:{r}" for r in RESOURCES)
BANDWIDTH = "bandwidth"


@dataclass(frozen=True)
class ChainInfo:
    """A chain as arrays (compiled once per chain object)."""

    demand: F64
    """(blocks, 3): CPU, memory, storage per block."""
    total: F64
    talks: tuple[tuple[int, int, float], ...]
    """The relations that carry traffic: (block, block, Mbit/s), talks and chain order."""
    user_mbps: float
    rtt_bound: float
    """inf without a bound."""
    avail_bound: float
    """0 without a bound."""
    names: tuple[str, ...]
    total_l: tuple[float, float, float]


_INFO: dict[int, tuple[Chain, ChainInfo]] = {}


def chain_info(chain: Chain) -> ChainInfo:
    """The chain's arrays, cached by identity (hashing a chain walks all its fields;
    the many subscriptions of one catalog entry share its Chain object)."""
    got = _INFO.get(id(chain))
    if got is not None and got[0] is chain:
        return got[1]
    if len(_INFO) >= 65536:
        _INFO.clear()
    info = _compile(chain)
    _INFO[id(chain)] = (chain, info)  # the entry keeps the chain, so its id stays its own
    return info


def _compile(chain: Chain) -> ChainInfo:
    names = tuple(b.name for b in chain.blocks)
    demand = np.array(
        [[b.cpu, b.memory_mb, b.storage_mb] for b in chain.blocks], dtype=np.float64
    ).reshape(len(names), 3)
    # Every relation that carries traffic: talks and consecutive blocks (model docstring).
    talks = tuple((i, j, mbps) for (i, j), mbps in chain.relations().items() if mbps > 0)
    total = demand.sum(axis=0)
    return ChainInfo(
        demand,
        total,
        talks,
        chain.user_mbps,
        chain.sla.rtt_ms if chain.sla.rtt_ms is not None else math.inf,
        chain.sla.availability if chain.sla.availability is not None else 0.0,
        names,
        (float(total[0]), float(total[1]), float(total[2])),
    )


@dataclass(frozen=True)
class Options:
    """Co-locating one chain on each node: which nodes pass, and what each would cost.

    The arrays may be refreshed in place for a few nodes (`write`): the heuristic
    keeps one Options per run of identical chains and updates only the nodes the
    previous placement touched.
    """

    ok: B
    """Passes every constraint except bandwidth (checked per chosen node: it needs a walk)."""
    energy: F64
    """Marginal power (W): the chain's CPU at the node's rate, plus the node's own power
    (idle and background load) if it is off."""
    rtt: F64
    moves: F64
    raw: F64
    """The objective's value of the above plus the move cost, whatever the constraints
    (inf on nodes that cannot host or are unreachable)."""
    cost: F64
    """`raw` where ok, inf elsewhere."""

    def write(self, idx: I64, part: Options) -> None:
        for name in ("ok", "energy", "rtt", "moves", "raw", "cost"):
            getattr(self, name)[idx] = getattr(part, name)


class State:
    def __init__(
        self,
        net: Network,
        objective: Objective,
        current: Mapping[str, tuple[int, ...]] | None = None,
        move_cost: float = 0.0,
    ) -> None:
        self.net = net
        self.objective = objective
        self.current: Mapping[str, tuple[int, ...]] = current or {}
        """Where each chain was before this operation: moving a block off costs move_cost."""
        self.move_cost = move_cost
        self.free: F64 = net.room.copy()
        self.link_free: F64 = net.link_cap - net.link_used
        self.hosted = np.zeros(net.size, dtype=np.int64)
        # An objective that does not weigh energy leaves on what is on.
        self.keep_on: B = net.pinned | (net.powered & (not objective.saves_energy))
        self.where: dict[str, tuple[int, ...]] = {}
        self.subs: dict[str, Subscription] = {}
        self.on_node: list[set[str]] = [set() for _ in range(net.size)]
        self.on_link: list[set[str]] = [set() for _ in range(len(net.link_cap))]
        """Chains whose traffic crosses each link."""
        # Copies share these sets until one side changes one (copy on write): a
        # re-placement copies a state of 100,000 chains in microseconds.
        self._cow_nodes: set[int] = set(range(net.size))
        self._cow_links: set[int] = set(range(len(net.link_cap)))
        self.rtt_sum = 0.0
        self.moved_blocks = 0

    def copy(self) -> State:
        out = State.__new__(State)
        out.net = self.net
        out.objective = self.objective
        out.current = self.current
        out.move_cost = self.move_cost
        out.free = self.free.copy()
        out.link_free = self.link_free.copy()
        out.hosted = self.hosted.copy()
        out.keep_on = self.keep_on
        out.where = dict(self.where)
        out.subs = dict(self.subs)
        out.on_node = list(self.on_node)
        out.on_link = list(self.on_link)
        out._cow_nodes = set()
        out._cow_links = set()
        self._cow_nodes = set()
        self._cow_links = set()
        out.rtt_sum = self.rtt_sum
        out.moved_blocks = self.moved_blocks
        return out

    def rebase(self, current: Mapping[str, tuple[int, ...]], move_cost: float) -> None:
        """Count moves from `current` from now on (the placed chains are where they are)."""
        self.current = current
        self.move_cost = move_cost
        self.moved_blocks = sum(self._moves(sid, nodes) for sid, nodes in self.where.items())

    # ------------------------------------------------------------------ bookkeeping

    def active(self) -> B:
        return (self.hosted > 0) | self.keep_on

    def rtt(self, sub: Subscription, entry_node: int) -> float:
        """The user's round trip to the entry: what the SLA bounds."""
        return float(2.0 * self.net.delay_ms[self.net.index[sub.at], entry_node])

    def path_rtt(self, sub: Subscription, nodes: tuple[int, ...]) -> float:
        """The round trip along the chain's path, user -> entry -> ... -> last: what the
        latency objective weighs (model docstring)."""
        out = self.rtt(sub, nodes[0])
        if len(nodes) > 1:
            d = self.net.delay_ms
            for a, b in itertools.pairwise(nodes):
                if a != b:
                    out += 2.0 * float(d[a, b])
        return out

    def _moves(self, sid: str, nodes: tuple[int, ...]) -> int:
        cur = self.current.get(sid)
        if cur is None or len(cur) != len(nodes):
            return 0
        return sum(1 for a, b in zip(cur, nodes, strict=True) if a != b)

    def link_load(self, sub: Subscription, nodes: tuple[int, ...]) -> dict[int, float]:
        """The traffic (Mbit/s per link) a chain placed on `nodes` puts on the links."""
        info = chain_info(sub.chain)
        out: dict[int, float] = {}
        net = self.net
        if info.user_mbps > 0:
            for lk in net.path_links(net.index[sub.at], nodes[0]):
                out[lk] = out.get(lk, 0.0) + info.user_mbps
        for i, j, mbps in info.talks:
            if nodes[i] != nodes[j]:
                for lk in net.path_links(nodes[i], nodes[j]):
                    out[lk] = out.get(lk, 0.0) + mbps
        return out

    def _node_set(self, n: int) -> set[str]:
        if n not in self._cow_nodes:
            self.on_node[n] = set(self.on_node[n])
            self._cow_nodes.add(n)
        return self.on_node[n]

    def _link_set(self, lk: int) -> set[str]:
        if lk not in self._cow_links:
            self.on_link[lk] = set(self.on_link[lk])
            self._cow_links.add(lk)
        return self.on_link[lk]

    def add(self, sub: Subscription, nodes: tuple[int, ...]) -> None:
        info = chain_info(sub.chain)
        if len(set(nodes)) == 1:
            n = nodes[0]
            self.free[n] -= info.total
            self.hosted[n] += len(nodes)
            self._node_set(n).add(sub.id)
        else:
            for b, n in enumerate(nodes):
                self.free[n] -= info.demand[b]
                self.hosted[n] += 1
                self._node_set(n).add(sub.id)
        for lk, v in self.link_load(sub, nodes).items():
            self.link_free[lk] -= v
            self._link_set(lk).add(sub.id)
        self.where[sub.id] = nodes
        self.subs[sub.id] = sub
        self.rtt_sum += self.path_rtt(sub, nodes)
        self.moved_blocks += self._moves(sub.id, nodes)

    def remove(self, sid: str) -> tuple[Subscription, tuple[int, ...]]:
        sub = self.subs.pop(sid)
        nodes = self.where.pop(sid)
        info = chain_info(sub.chain)
        if len(set(nodes)) == 1:
            n = nodes[0]
            self.free[n] += info.total
            self.hosted[n] -= len(nodes)
            self._node_set(n).discard(sid)
        else:
            for b, n in enumerate(nodes):
                self.free[n] += info.demand[b]
                self.hosted[n] -= 1
                self._node_set(n).discard(sid)
        for lk, v in self.link_load(sub, nodes).items():
            self.link_free[lk] += v
            self._link_set(lk).discard(sid)
        self.rtt_sum -= self.path_rtt(sub, nodes)
        self.moved_blocks -= self._moves(sid, nodes)
        return sub, nodes

    # ------------------------------------------------------------------ figures

    def powered(self) -> B:
        """Nodes on: hosting ones that host or must stay on; forwarding-only ones if up."""
        net = self.net
        return (net.hosts & self.active()) | (net.up & ~net.kind_hosts)

    def used_cpu(self) -> F64:
        return self.net.room[:, 0] - self.free[:, 0]

    def energy_w(self) -> float:
        net = self.net
        on = self.powered()
        watts = net.idle_w + net.w_per_cpu * (net.load[:, 0] + self.used_cpu())
        return float(watts[on].sum())

    def value(self) -> float:
        """The objective's value of this state, move costs included."""
        return (
            self.objective.value(self.energy_w(), self.rtt_sum) + self.move_cost * self.moved_blocks
        )

    # ------------------------------------------------------------------ evaluation

    def colocate(
        self,
        sub: Subscription,
        *,
        amortise: bool = False,
        idx: I64 | None = None,
        entry: bool = True,
    ) -> Options:
        """Every node (or the nodes `idx`) as the home of the whole chain, which must
        not be placed. `entry=False`: the blocks are not the chain's entry (the rest of
        a split chain), so the user's round trip is no cost of theirs.

        With `amortise`, an off node's idle power is charged in proportion to the
        share of the node the chain takes: a greedy opening nodes one chain at a
        time then prefers nodes with the least idle power per unit of room.
        """
        net = self.net
        info = chain_info(sub.chain)
        reach = net.reach(net.index[sub.at], info.rtt_bound, info.avail_bound)
        sel: I64 | slice = slice(None) if idx is None else idx
        ok = reach.ok[sel] & (self.free[sel] >= info.total - TOL).all(axis=1)
        active = (self.hosted[sel] > 0) | self.keep_on[sel]
        if amortise:
            share = np.minimum((info.total * net.inv_room[sel]).max(axis=1), 1.0)
            opening = net.on_w[sel] * share
        else:
            opening = net.on_w[sel]
        energy = net.w_per_cpu[sel] * info.total_l[0] + np.where(active, 0.0, opening)
        obj = self.objective
        raw = obj.energy_weight * energy
        if entry:
            raw = raw + obj.latency_weight * reach.rtt_c[sel]
        cur = self.current.get(sub.id)
        if cur is not None and self.move_cost > 0 and len(cur) == len(info.names):
            stay = np.bincount(np.asarray(cur), minlength=net.size).astype(np.float64)[sel]
            moves = len(cur) - stay
            raw = raw + self.move_cost * moves
        else:
            moves = np.zeros(len(energy))
        raw = np.where(reach.priced[sel], raw, np.inf)
        return Options(ok, energy, reach.rtt[sel], moves, raw, np.where(ok, raw, np.inf))

    def colocate_one(
        self, sub: Subscription, n: int, *, amortise: bool = False, entry: bool = True
    ) -> tuple[bool, float, float, float, float, float]:
        """`colocate` at one node, in plain floats: (ok, energy, rtt, moves, raw, cost).
        The heuristic's fast path when one placement changed one node."""
        net = self.net
        info = chain_info(sub.chain)
        reach = net.reach(net.index[sub.at], info.rtt_bound, info.avail_bound)
        f0, f1, f2 = self.free[n].tolist()
        t0, t1, t2 = info.total_l
        ok = reach.ok_l[n] and f0 >= t0 - TOL and f1 >= t1 - TOL and f2 >= t2 - TOL
        opening = net.on_w_l[n]
        if amortise:
            i0, i1, i2 = net.inv_room_l[n]
            opening *= min(max(t0 * i0, t1 * i1, t2 * i2), 1.0)
        active = self.hosted[n] > 0 or self.keep_on[n]
        energy = net.w_per_cpu_l[n] * t0 + (0.0 if active else opening)
        obj = self.objective
        raw = obj.energy_weight * energy
        if entry:
            raw += obj.latency_weight * reach.rtt_c_l[n]
        moves = 0.0
        cur = self.current.get(sub.id)
        if cur is not None and self.move_cost > 0 and len(cur) == len(info.names):
            moves = float(sum(1 for c in cur if c != n))
            raw += self.move_cost * moves
        if not reach.priced[n]:
            raw = math.inf
        return bool(ok), energy, reach.rtt_l[n], moves, raw, raw if ok else math.inf

    def _own_links(self, sub: Subscription, back: tuple[int, ...] | None) -> dict[int, float]:
        return self.link_load(sub, back) if back is not None else {}

    def user_path_ok(
        self, sub: Subscription, node: int, back: tuple[int, ...] | None = None
    ) -> bool:
        """Whether the route from the user to `node` carries the user's traffic.
        `back`: the nodes `sub` is placed on now, whose traffic counts as free."""
        mbps = chain_info(sub.chain).user_mbps
        if mbps <= 0:
            return True
        own = self._own_links(sub, back)
        links = self.net.path_links(self.net.index[sub.at], node)
        return all(self.link_free[lk] + own.get(lk, 0.0) >= mbps - TOL for lk in links)

    def _active_without(self, sub: Subscription, n: int, back: tuple[int, ...] | None) -> bool:
        mine = back.count(n) if back is not None else 0
        return bool(self.hosted[n] - mine > 0 or self.keep_on[n])

    def placement_cost(
        self, sub: Subscription, nodes: tuple[int, ...], back: tuple[int, ...] | None = None
    ) -> tuple[float, float]:
        """(marginal power W, round trip ms along the chain's path) of `sub` on `nodes`;
        `sub` is not placed, or placed on `back` (then counted as if taken out)."""
        info = chain_info(sub.chain)
        net = self.net
        watts = 0.0
        for n in set(nodes):
            if not self._active_without(sub, n, back):
                watts += float(net.on_w[n])
        for b, n in enumerate(nodes):
            watts += float(net.w_per_cpu[n] * info.demand[b, 0])
        return watts, self.path_rtt(sub, nodes)

    def costs(
        self, sub: Subscription, nodes: tuple[int, ...], back: tuple[int, ...] | None = None
    ) -> tuple[float, float, float]:
        """(marginal power W, round trip ms along the chain, cost in the objective with
        moves)."""
        watts, rtt = self.placement_cost(sub, nodes, back)
        cur = self.current.get(sub.id)
        moves = 0
        if cur is not None and len(cur) == len(nodes):
            moves = sum(1 for a, b in zip(cur, nodes, strict=True) if a != b)
        return watts, rtt, self.objective.value(watts, rtt) + self.move_cost * moves

    def cost_of(
        self, sub: Subscription, nodes: tuple[int, ...], back: tuple[int, ...] | None = None
    ) -> float:
        return self.costs(sub, nodes, back)[2]

    def problem(
        self, sub: Subscription, nodes: tuple[int, ...], back: tuple[int, ...] | None = None
    ) -> tuple[str, str] | None:
        """The first constraint `sub` on `nodes` breaks, or None; `sub` is not placed, or
        placed on `back` (then its room and traffic count as free)."""
        net = self.net
        info = chain_info(sub.chain)
        if len(nodes) != len(info.names):
            return HOST, f"{len(nodes)} nodes for {len(info.names)} blocks"
        for n in nodes:
            if not net.hosts[n]:
                return HOST, f"{net.names[n]} cannot host (down, or a kind that only forwards)"
        rtt = self.rtt(sub, nodes[0])
        if not math.isfinite(rtt):
            return HOST, f"{net.names[nodes[0]]} is unreachable from {sub.at}"
        pairs = [(i, j) for i, j, _mbps in info.talks]
        pairs += [(i, i + 1) for i in range(len(nodes) - 1)]
        for i, j in pairs:
            if not math.isfinite(net.delay_ms[nodes[i], nodes[j]]):
                return HOST, f"{net.names[nodes[i]]} cannot reach {net.names[nodes[j]]}"
        if not rtt <= info.rtt_bound + TOL:
            return LATENCY, (
                f"{net.names[nodes[0]]} is {rtt:.2f} ms round trip from {sub.at} "
                f"> SLA {info.rtt_bound:g} ms"
            )
        avail = math.prod(float(net.availability[n]) for n in set(nodes))
        if avail < info.avail_bound:
            return AVAILABILITY, (
                f"availability {avail:.6f} over {len(set(nodes))} node(s) "
                f"< SLA {info.avail_bound:g}"
            )
        need: dict[int, F64] = {}
        for b, n in enumerate(nodes):
            need[n] = need.get(n, np.zeros(3)) + info.demand[b]
        give: dict[int, F64] = {}
        for b, n in enumerate(back or ()):
            give[n] = give.get(n, np.zeros(3)) + info.demand[b]
        for n, d in need.items():
            free = self.free[n] + give.get(n, 0.0)
            for r in range(3):
                if free[r] < d[r] - TOL:
                    return CAPACITY[r], (
                        f"{net.names[n]} has {max(free[r], 0.0):.2f} {RESOURCES[r]} free "
                        f"< {d[r]:.2f}"
                    )
        own = self._own_links(sub, back)
        for lk, v in self.link_load(sub, nodes).items():
            free = self.link_free[lk] + own.get(lk, 0.0)
            if free < v - TOL:
                return BANDWIDTH, (
                    f"link {net.link_names[lk]} has {max(free, 0.0):.1f} Mbit/s free < {v:.1f}"
                )
        return None

    def why_not(
        self, sub: Subscription, node: int, back: tuple[int, ...] | None = None
    ) -> tuple[str, str]:
        """Why co-locating `sub` on `node` fails ("none" if it does not)."""
        got = self.problem(sub, (node,) * len(chain_info(sub.chain).names), back)
        return got if got is not None else ("none", f"{self.net.names[node]} fits")
