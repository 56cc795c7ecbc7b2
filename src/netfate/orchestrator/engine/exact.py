"""The exact solver: the placement as a mixed-integer linear program, solved by HiGHS
(scipy.optimize.milp).

Variables (for the chains being placed; chains already in the state are fixed
and only take room away):

- ``x[s,b,n]`` binary: block b of chain s on node n. Only nodes that could take
  the block alone are offered (hosting, room, and for the entry: the latency
  bound and a route carrying the user's traffic).
- ``y[n]`` binary: node n is switched on. Only for nodes that are off.
- ``z[f,e]`` in [0, 1]: relation f (a talk, or two consecutive blocks) crosses
  link e. Only for links that the traffic could overload, and, where latency is
  weighed, for the chain-order hops (each crossing costs its link's round trip).
- ``u[s,n]`` in [0, 1]: chain s uses node n. Only for chains whose availability
  bound could be broken.

Constraints:

- each block on exactly one node: ``sum_n x[s,b,n] = 1``;
- capacity: ``sum x[s,b,n] * need[b,r] <= room[n,r] * y[n]`` (``<= room[n,r]`` for
  an on node), and ``x[s,b,n] <= y[n]``;
- bandwidth: user traffic on the route from the user's node to the entry's
  node, relations (model.py) through ``z``: ``z[f,e] >= x[s,i,n1] + sum x[s,j,n2] - 1``
  over the n2 whose route from n1 crosses e (or, where e parts the candidate nodes
  in two sides as on a tree, ``z[f,e] >= |x[s,i](side A) - x[s,j](side A)|``), and
  the sum of traffic on e <= its free capacity (routes are fixed, as the model says);
- availability: ``u[s,n] >= x[s,b,n]``, ``sum_n -ln(avail[n]) u[s,n] <= -ln(bound)``.

Objective: the same linear form as the heuristic (objective.py): the power of
the nodes switched on and of the placed CPU, the round trips along each chain's
path (user to entry on the entry's ``x``, each chain-order hop on its ``z``),
and the move cost of each block off its current node.

When HiGHS proves the program infeasible, a second program with one "dropped"
binary per chain maximises how many chains fit; the dropped ones are refused.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from netfate.orchestrator.engine.model import Subscription
from netfate.orchestrator.engine.network import Network
from netfate.orchestrator.engine.state import TOL, State, chain_info

DEFAULT_TIME_LIMIT_S = 60.0
MAX_CHOICES = 200_000
"""Block x node choices beyond which the program is not built (the heuristic's domain)."""


class TooLarge(ValueError):
    """The instance is beyond what the exact solver is asked to take."""


@dataclass(frozen=True)
class ExactResult:
    homes: dict[str, tuple[int, ...]]
    """Chain -> node per block; empty when no feasible placement was found."""
    status: str
    """optimal, feasible (stopped at the time limit), infeasible, or no solution found."""
    bound: float | None
    """The solver's proven lower bound on the placed chains' part of the objective."""
    seconds: float
    dropped: tuple[str, ...] = ()
    """When infeasible: chains left out of a placement that fits the most."""
    partial: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """When infeasible: where that placement put the chains it kept."""


Columns = dict[tuple[int, int], list[tuple[int, int]]]
"""(chain, block) -> the (node, x column) choices of that block."""


class _Program:
    def __init__(self) -> None:
        self.c: list[float] = []
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.integer: list[int] = []
        self.rows: list[int] = []
        self.cols: list[int] = []
        self.vals: list[float] = []
        self.row_lo: list[float] = []
        self.row_hi: list[float] = []

    def var(self, cost: float, integer: bool, lo: float = 0.0, hi: float = 1.0) -> int:
        self.c.append(cost)
        self.lb.append(lo)
        self.ub.append(hi)
        self.integer.append(1 if integer else 0)
        return len(self.c) - 1

    def row(self, terms: Sequence[tuple[int, float]], lo: float, hi: float) -> None:
        r = len(self.row_lo)
        for col, v in terms:
            self.rows.append(r)
            self.cols.append(col)
            self.vals.append(v)
        self.row_lo.append(lo)
        self.row_hi.append(hi)

    def solve(self, time_limit_s: float) -> object:
        from scipy.optimize import Bounds, LinearConstraint, milp
        from scipy.sparse import csr_matrix

        n = len(self.c)
        cons = []
        if self.row_lo:
            a = csr_matrix((self.vals, (self.rows, self.cols)), shape=(len(self.row_lo), n))
            cons.append(LinearConstraint(a, self.row_lo, self.row_hi))
        return milp(
            np.asarray(self.c),
            integrality=np.asarray(self.integer),
            bounds=Bounds(np.asarray(self.lb), np.asarray(self.ub)),
            constraints=cons,
            options={"time_limit": time_limit_s, "mip_rel_gap": 1e-9, "presolve": True},
        )


def _build(
    st: State, subs: Sequence[Subscription], elastic: bool
) -> tuple[_Program, Columns, list[int]]:
    """The program; x columns per (chain, block) as (node, column); drop columns."""
    net = st.net
    obj = st.objective
    p = _Program()
    active = st.active()
    xcols: Columns = {}
    ycol: dict[int, int] = {}
    drops: list[int] = []

    def y(n: int) -> int:
        if n not in ycol:
            ycol[n] = p.var(0.0 if elastic else obj.energy_weight * float(net.on_w[n]), True)
        return ycol[n]

    # Candidate nodes and x columns.
    for si, sub in enumerate(subs):
        info = chain_info(sub.chain)
        at = net.index[sub.at]
        rtt = net.rtt_row(at)
        cur = st.current.get(sub.id)
        base = net.hosts & np.isfinite(rtt) & (net.availability >= info.avail_bound)
        for b in range(len(info.names)):
            ok = base & (st.free >= info.demand[b] - TOL).all(axis=1)
            if b == 0:
                ok &= rtt <= info.rtt_bound + TOL
            cols: list[tuple[int, int]] = []
            for n in np.flatnonzero(ok).tolist():
                if b == 0 and info.user_mbps > 0:
                    links = net.path_links(at, n)
                    if any(st.link_free[lk] < info.user_mbps - TOL for lk in links):
                        continue
                cost = obj.energy_weight * float(net.w_per_cpu[n] * info.demand[b, 0])
                if b == 0:
                    cost += obj.latency_weight * float(rtt[n])
                if cur is not None and len(cur) == len(info.names) and cur[b] != n:
                    cost += st.move_cost
                cols.append((n, p.var(0.0 if elastic else cost, True)))
            xcols[(si, b)] = cols
        if elastic:
            drops.append(p.var(1.0, True))

    # Each block on exactly one node (or the whole chain dropped).
    for (si, _b), cols in xcols.items():
        terms = [(c, 1.0) for _n, c in cols]
        if elastic:
            terms.append((drops[si], 1.0))
        p.row(terms, 1.0, 1.0)

    # Capacity, and switching on.
    at_node: dict[int, list[tuple[int, int, int]]] = {}
    for (si, b), cols in xcols.items():
        for n, c in cols:
            at_node.setdefault(n, []).append((si, b, c))
    for n, items in at_node.items():
        if not active[n]:
            yn = y(n)
            for _si, _b, c in items:
                p.row([(c, 1.0), (yn, -1.0)], -np.inf, 0.0)
        for r in range(3):
            need = [(c, float(chain_info(subs[si].chain).demand[b, r])) for si, b, c in items]
            if sum(v for _c, v in need) <= st.free[n, r] + TOL:
                continue
            if active[n]:
                p.row(need, -np.inf, float(st.free[n, r]))
            else:
                p.row([*need, (y(n), -float(st.free[n, r]))], -np.inf, 0.0)

    _relations(st, subs, xcols, p, elastic)
    _availability(st, subs, xcols, p)
    return p, xcols, drops


def _relations(
    st: State,
    subs: Sequence[Subscription],
    xcols: Columns,
    p: _Program,
    elastic: bool,
) -> None:
    """The user's traffic and each relation's (talks and chain order) on the links, and
    the round trip of each chain-order hop (the latency objective's chain path)."""
    net = st.net
    lat_w = 0.0 if elastic else st.objective.latency_weight
    load: dict[int, list[tuple[int, float]]] = {}
    potential: dict[int, float] = {}
    crossing: list[tuple[int, int, int, float, bool, dict[int, dict[int, list[int]]]]] = []
    for si, sub in enumerate(subs):
        info = chain_info(sub.chain)
        at = net.index[sub.at]
        if info.user_mbps > 0:
            seen: set[int] = set()
            for n, c in xcols[(si, 0)]:
                for lk in net.path_links(at, n):
                    load.setdefault(lk, []).append((c, info.user_mbps))
                    seen.add(lk)
            for lk in seen:
                potential[lk] = potential.get(lk, 0.0) + info.user_mbps
        rels: dict[tuple[int, int], float] = {(i, j): m for i, j, m in info.talks}
        for i in range(len(info.names) - 1):
            rels.setdefault((i, i + 1), 0.0)
        for (i, j), mbps in rels.items():
            hop = j == i + 1 and lat_w > 0
            if mbps <= 0 and not hop:
                continue
            # per link: n1 -> the x columns of block j whose route from n1 crosses it
            by_link: dict[int, dict[int, list[int]]] = {}
            for n1, _c1 in xcols[(si, i)]:
                for n2, c2 in xcols[(si, j)]:
                    if n1 != n2:
                        for lk in net.path_links(n1, n2):
                            by_link.setdefault(lk, {}).setdefault(n1, []).append(c2)
            if mbps > 0:
                for lk in by_link:
                    potential[lk] = potential.get(lk, 0.0) + mbps
            crossing.append((si, i, j, mbps, hop, by_link))
    binding = {lk for lk, v in potential.items() if v > st.link_free[lk] + TOL}
    for si, i, j, mbps, hop, by_link in crossing:
        x1 = dict(xcols[(si, i)])
        for lk, from_n1 in by_link.items():
            bind = mbps > 0 and lk in binding
            price = 2.0 * lat_w * float(net.link_delay[lk]) if hop else 0.0
            if not bind and price <= 0:
                continue
            # z = 1 exactly when the relation crosses lk: it is bounded below by the rows
            # and, being priced or capacity-bound, never above what they force.
            z = p.var(price, False)
            if bind:
                load.setdefault(lk, []).append((z, mbps))
            cut = _cut(net, lk, x1, xcols[(si, j)], from_n1)
            if cut is not None:
                # The route crosses lk exactly when the two blocks sit on its two sides:
                # z >= |on side A (block i) - on side A (block j)|, a far tighter form.
                a1, a2 = cut
                p.row([*((c, 1.0) for c in a1), *((c, -1.0) for c in a2), (z, -1.0)], -np.inf, 0.0)
                p.row([*((c, 1.0) for c in a2), *((c, -1.0) for c in a1), (z, -1.0)], -np.inf, 0.0)
                continue
            for n1, c2s in from_n1.items():
                p.row([(x1[n1], 1.0), *((c, 1.0) for c in c2s), (z, -1.0)], -np.inf, 1.0)
    for lk in binding:
        p.row(load.get(lk, []), -np.inf, float(st.link_free[lk]))


def _cut(
    net: Network,
    lk: int,
    x1: dict[int, int],
    x2: list[tuple[int, int]],
    from_n1: dict[int, list[int]],
) -> tuple[list[int], list[int]] | None:
    """When the routes between the two blocks' candidate nodes cross link lk exactly
    between its two sides (side A: the nodes whose route to the link's end `a` does not
    take it, as on a tree), the x columns of each block on side A; else None."""
    end = int(net.link_a[lk])
    side = {n: lk not in net.path_links(n, end) for n in {*x1, *(n for n, _c in x2)}}
    cols2 = dict(x2)
    for n1 in x1:
        crossing = set(from_n1.get(n1, ()))
        for n2, c2 in x2:
            if (c2 in crossing) != (side[n1] != side[n2]):
                return None
    return [c for n, c in x1.items() if side[n]], [c for n, c in cols2.items() if side[n]]


def _availability(
    st: State,
    subs: Sequence[Subscription],
    xcols: Columns,
    p: _Program,
) -> None:
    net = st.net
    for si, sub in enumerate(subs):
        info = chain_info(sub.chain)
        nb = len(info.names)
        if info.avail_bound <= 0 or nb < 2:
            continue  # one block: the per-node filter already enforces it
        nodes = {n for b in range(nb) for n, _c in xcols[(si, b)]}
        if not nodes:
            continue
        worst = float(min(net.availability[list(nodes)])) ** nb
        if worst >= info.avail_bound:
            continue
        u = {n: p.var(0.0, False) for n in sorted(nodes)}
        for b in range(nb):
            for n, c in xcols[(si, b)]:
                p.row([(c, 1.0), (u[n], -1.0)], -np.inf, 0.0)
        p.row(
            [(u[n], -math.log(float(net.availability[n]))) for n in u],
            -np.inf,
            -math.log(info.avail_bound) + 1e-12,
        )


def _homes(
    subs: Sequence[Subscription],
    xcols: Columns,
    x: np.ndarray,
    skip: set[int],
) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for si, sub in enumerate(subs):
        if si in skip:
            continue
        nodes = []
        for b in range(len(sub.chain.blocks)):
            cols = xcols[(si, b)]
            n, _c = max(cols, key=lambda nc: x[nc[1]])
            nodes.append(n)
        out[sub.id] = tuple(nodes)
    return out


def solve(
    st: State, subs: Sequence[Subscription], time_limit_s: float = DEFAULT_TIME_LIMIT_S
) -> ExactResult:
    """Place `subs` optimally around the chains already in `st` (which is not changed).
    Raises TooLarge beyond MAX_CHOICES block x node choices."""
    t0 = time.perf_counter()
    choices = sum(len(s.chain.blocks) for s in subs) * int(st.net.hosts.sum())
    if choices > MAX_CHOICES:
        raise TooLarge(
            f"{choices} block x node choices > {MAX_CHOICES}: too large for the exact solver; "
            "use the heuristic"
        )
    p, xcols, _ = _build(st, subs, elastic=False)
    if any(not cols for cols in xcols.values()):
        return _elastic(st, subs, time_limit_s, t0)
    res = p.solve(time_limit_s)
    status = int(getattr(res, "status", 4))
    x = getattr(res, "x", None)
    bound_raw = getattr(res, "mip_dual_bound", None)
    bound = float(bound_raw) if bound_raw is not None and np.isfinite(bound_raw) else None
    if status == 0 and x is not None:
        return ExactResult(
            _homes(subs, xcols, x, set()), "optimal", bound, time.perf_counter() - t0
        )
    if x is not None:
        return ExactResult(
            _homes(subs, xcols, x, set()), "feasible", bound, time.perf_counter() - t0
        )
    if status == 2:
        return _elastic(st, subs, time_limit_s, t0)
    return ExactResult({}, "no solution found", bound, time.perf_counter() - t0)


def _elastic(
    st: State, subs: Sequence[Subscription], time_limit_s: float, t0: float
) -> ExactResult:
    """Infeasible: find the most chains that fit; the rest are the ones to refuse."""
    p, xcols, drops = _build(st, subs, elastic=True)
    res = p.solve(time_limit_s)
    x = getattr(res, "x", None)
    status = int(getattr(res, "status", 4))
    if x is None:
        return ExactResult(
            {}, "infeasible", None, time.perf_counter() - t0, tuple(s.id for s in subs)
        )
    dropped = {si for si, d in enumerate(drops) if x[d] > 0.5}
    label = "infeasible" if status == 0 else "infeasible (drop count not proven minimal)"
    return ExactResult(
        {},
        label,
        None,
        time.perf_counter() - t0,
        tuple(subs[si].id for si in sorted(dropped)),
        _homes(subs, xcols, x, dropped),
    )
