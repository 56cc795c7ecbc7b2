"""The fast solver: greedy placement, then a bounded local search.

1. **Greedy.** Chains go most-constrained first (fewest nodes within their
   latency and availability bounds), then largest first (dominant share of an
   average node: first-fit decreasing). Each goes whole onto the node where it
   costs least in the objective's terms; an off node is charged its idle power
   in proportion to the share of it the chain takes, so nodes with little idle
   power per unit of room are opened first. Ties go to the tightest fit.
   Only when no node can take the whole chain are its blocks placed one by one
   (entry first, each next to the blocks it talks to where it can be).
2. **Closing nodes** (objectives that weigh energy): the active nodes, least
   loaded first, are each emptied onto the other active nodes if all of their
   chains fit there and the objective improves; at most `passes` rounds.
3. **Final pass**: every chain is taken out and put back where it now costs
   least (its place, or a better one), and the decision is explained then.

Bounded by construction: each step is a fixed number of passes over the chains
or the nodes, each costing one vector evaluation over the nodes per chain.
Subscriptions to the same chain from the same node come in runs (the order
groups them): within a run only the nodes the previous placement touched are
evaluated again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from netfate.orchestrator.engine.decisions import Decision, explain
from netfate.orchestrator.engine.model import Subscription
from netfate.orchestrator.engine.network import F64, I64, B
from netfate.orchestrator.engine.refusals import Refusal, diagnose
from netfate.orchestrator.engine.state import BANDWIDTH, TOL, Options, State, chain_info

TIE = 1e-6
SPLIT_HEADROOM = 0.2
"""A chain that fits whole is split only if every link the split loads keeps this share
of its capacity free: a small saving of power must not take the last bandwidth that a
chain placed later needs."""
RunKey = tuple[str, int, str] | None


def _run_key(st: State, sub: Subscription) -> RunKey:
    """Subscriptions with the same key are scored alike (not when moves are priced:
    each has its own current nodes)."""
    if st.current and st.move_cost > 0:
        return None
    return (sub.chain.name, id(sub.chain), sub.at)


def greedy_order(st: State, subs: Iterable[Subscription]) -> list[Subscription]:
    """Most constrained first (fewest candidate nodes), then largest first; runs of
    the same chain from the same node kept together."""
    net = st.net
    mean_room = np.maximum(net.room[net.hosts].mean(axis=0), TOL) if net.hosts.any() else None
    counts: dict[tuple[str, float, float], int] = {}

    def key(sub: Subscription) -> tuple[int, float, str, int, str, str]:
        info = chain_info(sub.chain)
        k = (sub.at, info.rtt_bound, info.avail_bound)
        c = counts.get(k)
        if c is None:
            c = int(net.reach(net.index[sub.at], info.rtt_bound, info.avail_bound).ok.sum())
            counts[k] = c
        size = float((info.total / mean_room).max()) if mean_room is not None else 0.0
        return (c, -size, sub.chain.name, id(sub.chain), sub.at, sub.id)

    return sorted(subs, key=key)


def _score(st: State, sub: Subscription, opts: Options, sel: I64 | slice, allowed: B | None) -> F64:
    """What the greedy ranks nodes by: the cost, then ties (less power; for energy
    objectives the tightest fit; without latency in the objective, nearer)."""
    score = opts.cost + TIE * opts.energy
    if st.objective.latency_weight == 0:
        score = score + TIE * opts.rtt
    if st.objective.saves_energy:
        info = chain_info(sub.chain)
        left = ((st.free[sel] - info.total) * st.net.inv_room[sel]).min(axis=1)
        score = score + TIE * np.minimum(left, 1.0)
    if allowed is not None:
        score = np.where(allowed[sel], score, np.inf)
    return score


def _pick(st: State, sub: Subscription, score: F64) -> int | None:
    """The best-scored node whose route from the user carries the user's traffic;
    nodes found short of bandwidth are marked inf in `score`."""
    for _ in range(len(score)):
        n = int(np.argmin(score))
        if not np.isfinite(score[n]):
            return None
        if st.user_path_ok(sub, n):
            return n
        score[n] = np.inf
    return None


def best_home(
    st: State,
    sub: Subscription,
    *,
    amortise: bool = False,
    allowed: B | None = None,
    split: bool = True,
    opts: Options | None = None,
    score: F64 | None = None,
) -> tuple[int, ...] | None:
    """The cheapest placement of `sub` (not placed): whole on one node, else split.
    `opts` and `score`: what `st.colocate` and `_score` give, when the caller has them."""
    if opts is None:
        opts = st.colocate(sub, amortise=amortise)
    if score is None:
        score = _score(st, sub, opts, slice(None), allowed)
    nb = len(sub.chain.blocks)
    n = _pick(st, sub, score)
    whole = (n,) * nb if n is not None else None
    if not split or nb == 1:
        return whole
    if (
        whole is not None
        and st.objective.latency_weight == 0
        and not _split_may_pay(st, sub, whole[0])
    ):
        return whole
    # Where latency counts, only the entry needs to be near the user: the rest may be
    # cheaper elsewhere. Where the whole chain would switch a node on, or runs at a
    # higher rate per core than a node that is on, part of it may be cheaper there.
    parts = split_home(st, sub, allowed=allowed, headroom=0.0 if whole is None else SPLIT_HEADROOM)
    if whole is None or parts is None:
        return whole or parts
    return min((whole, parts), key=lambda h: _tied_cost(st, sub, h))


def _split_may_pay(st: State, sub: Subscription, home: int) -> bool:
    """Whether splitting a chain that fits whole on `home` could cost less power: `home`
    is off, or a node that is on has a lower rate per core and room for some block."""
    if not (st.hosted[home] > 0 or st.keep_on[home]):
        return True
    net = st.net
    smallest = float(chain_info(sub.chain).demand[1:, 0].min())
    cheaper = (
        ((st.hosted > 0) | st.keep_on)
        & net.hosts
        & (net.w_per_cpu < net.w_per_cpu[home])
        & (st.free[:, 0] >= smallest - TOL)
    )
    return bool(cheaper.any())


def _tied_cost(st: State, sub: Subscription, nodes: tuple[int, ...]) -> float:
    watts, rtt = st.placement_cost(sub, nodes)
    return st.cost_of(sub, nodes) + TIE * (watts + rtt)


class _Run:
    """One Options (and greedy score) kept across a run of like subscriptions, refreshed
    at the nodes changed since (`touch`)."""

    def __init__(self, st: State, amortise: bool, with_score: bool) -> None:
        self.st = st
        self.amortise = amortise
        self.with_score = with_score
        self.key: RunKey = None
        self.opts: Options | None = None
        self.score: F64 | None = None
        self.touched: set[int] = set()

    def touch(self, nodes: Iterable[int]) -> None:
        self.touched.update(nodes)

    def options(self, sub: Subscription) -> tuple[Options, F64 | None]:
        st = self.st
        key = _run_key(st, sub)
        if key is None or key != self.key or self.opts is None:
            self.opts = st.colocate(sub, amortise=self.amortise)
            self.score = _score(st, sub, self.opts, slice(None), None) if self.with_score else None
            self.key = key
        elif len(self.touched) <= 4:
            for n in self.touched:
                self._refresh(sub, n)
        elif self.touched:
            idx = np.fromiter(self.touched, dtype=np.intp, count=len(self.touched))
            part = st.colocate(sub, amortise=self.amortise, idx=idx)
            self.opts.write(idx, part)
            if self.score is not None:
                self.score[idx] = _score(st, sub, part, idx, None)
        self.touched = set()
        return self.opts, self.score

    def _refresh(self, sub: Subscription, n: int) -> None:
        """`colocate` and `_score` at one node, in plain floats (a few microseconds
        where a vector call costs tens)."""
        st = self.st
        opts = self.opts
        assert opts is not None  # options() sets it before any refresh
        ok, energy, rtt, moves, raw, cost = st.colocate_one(sub, n, amortise=self.amortise)
        opts.ok[n] = ok
        opts.energy[n] = energy
        opts.rtt[n] = rtt
        opts.moves[n] = moves
        opts.raw[n] = raw
        opts.cost[n] = cost
        if self.score is not None:
            score = cost + TIE * energy
            if st.objective.latency_weight == 0:
                score += TIE * rtt
            if st.objective.saves_energy:
                t = chain_info(sub.chain).total_l
                free = st.free[n].tolist()
                inv = st.net.inv_room_l[n]
                left = min((free[r] - t[r]) * inv[r] for r in range(3))
                score += TIE * min(left, 1.0)
            self.score[n] = score


def split_home(
    st: State, sub: Subscription, *, allowed: B | None = None, headroom: float = 0.0
) -> tuple[int, ...] | None:
    """Blocks one by one, entry first; each on the cheapest node that takes it with the
    traffic to the blocks already placed, preferring those blocks' nodes. Each link
    it loads keeps `headroom` (a fraction of its capacity) free."""
    net = st.net
    info = chain_info(sub.chain)
    at = net.index[sub.at]
    rtt = net.rtt_row(at)
    obj = st.objective
    extra = np.zeros_like(st.free)
    link_extra: dict[int, float] = {}
    active = st.active().copy()
    chosen: list[int] = []
    used = np.zeros(net.size, dtype=bool)
    avail = 1.0
    base_ok = net.hosts if allowed is None else (net.hosts & allowed)
    cur = st.current.get(sub.id)
    for b in range(len(info.names)):
        d = info.demand[b]
        ok = base_ok & ((st.free - extra) >= d - TOL).all(axis=1)
        ok &= used | (avail * net.availability >= info.avail_bound)
        watts = net.w_per_cpu * d[0] + np.where(active, 0.0, net.on_w)
        cost = (obj.energy_weight + TIE) * watts
        partners = [(j if i == b else i, m) for i, j, m in info.talks if b in (i, j)]
        partners = [(p, m) for p, m in partners if p < b]
        if b == 0:
            ok &= np.isfinite(rtt) & (rtt <= info.rtt_bound + TOL)
            cost = cost + obj.latency_weight * np.where(np.isfinite(rtt), rtt, 0.0)
        for p, _m in partners:
            ok &= np.isfinite(net.delay_ms[chosen[p]])
            # Near the blocks it talks to, among equals (after power: keeping room near
            # users free matters more than a shorter internal hop).
            cost = cost + TIE * 1e-3 * np.where(
                np.isfinite(net.delay_ms[chosen[p]]), net.delay_ms[chosen[p]], 0.0
            )
        if cur is not None and len(cur) == len(info.names) and st.move_cost > 0:
            cost = cost + st.move_cost * (np.arange(net.size) != cur[b])
        score = np.where(ok, cost, np.inf)
        pick = -1
        for _ in range(net.size):
            n = int(np.argmin(score))
            if not np.isfinite(score[n]):
                break
            flows: dict[int, float] = {}
            if b == 0 and info.user_mbps > 0:
                for lk in net.path_links(at, n):
                    flows[lk] = flows.get(lk, 0.0) + info.user_mbps
            for p, m in partners:
                if chosen[p] != n:
                    for lk in net.path_links(chosen[p], n):
                        flows[lk] = flows.get(lk, 0.0) + m
            if all(
                st.link_free[lk] - link_extra.get(lk, 0.0) - v >= headroom * net.link_cap[lk] - TOL
                for lk, v in flows.items()
            ):
                pick = n
                for lk, v in flows.items():
                    link_extra[lk] = link_extra.get(lk, 0.0) + v
                break
            score[n] = np.inf
        if pick < 0:
            return None
        chosen.append(pick)
        extra[pick] += d
        active[pick] = True
        if not used[pick]:
            avail *= float(net.availability[pick])
            used[pick] = True
    return tuple(chosen)


def greedy(st: State, subs: Sequence[Subscription]) -> list[Subscription]:
    """Place `subs` into `st`; return those that found no room (not placed)."""
    failed: list[Subscription] = []
    run = _Run(st, st.objective.saves_energy, with_score=True)
    for sub in greedy_order(st, subs):
        opts, score = run.options(sub)
        home = best_home(st, sub, amortise=run.amortise, opts=opts, score=score)
        if home is None:
            failed.append(sub)
        else:
            st.add(sub, home)
            run.touch(home)
    return failed


def close_nodes(st: State, passes: int = 3, budget: int | None = None) -> int:
    """Empty nodes where that improves the objective (move costs included): each node
    on (least used first) is emptied onto the other nodes that are on, or failing
    that onto any node (switching on cheaper ones instead). At most `passes` rounds
    and `budget` chain moves tried (default: twice the chains placed, at least 2,000).
    Returns how many nodes were emptied."""
    net = st.net
    emptied = 0
    left = [budget if budget is not None else max(2000, 2 * len(st.where))]
    for _ in range(passes):
        closed = 0
        cand = np.flatnonzero(st.active() & net.hosts & ~st.keep_on)
        share = ((net.room - st.free) * net.inv_room).max(axis=1)
        for n in cand[np.argsort(share[cand], kind="stable")].tolist():
            if st.hosted[n] == 0:
                continue
            on = st.active() & net.hosts
            on[n] = False
            anywhere = net.hosts.copy()
            anywhere[n] = False
            cheaper_off = bool((anywhere & ~on & (net.on_w < net.on_w[n])).any())
            for allowed in (on, anywhere) if cheaper_off else (on,):
                if left[0] <= 0:
                    return emptied + closed
                if _empty(st, n, allowed, left):
                    closed += 1
                    break
        emptied += closed
        if closed == 0:
            break
    return emptied


def _empty(st: State, n: int, allowed: B, budget: list[int]) -> bool:
    """Move every chain off node `n` onto `allowed` nodes if the objective improves;
    otherwise leave everything as it was. Each chain tried counts against `budget`."""
    used = st.net.room[n] - st.free[n]
    if (used > st.free[allowed].sum(axis=0) + TOL).any():
        return False
    budget[0] -= len(st.on_node[n])
    before = st.value()
    removed = [st.remove(sid) for sid in sorted(st.on_node[n])]
    removed.sort(key=lambda r: -float(chain_info(r[0].chain).total[0]))
    placed: list[str] = []
    for sub, _nodes in removed:
        home = best_home(st, sub, allowed=allowed)
        if home is None:
            break
        st.add(sub, home)
        placed.append(sub.id)
    else:
        if st.value() < before - 1e-9:
            return True
    for sid in placed:
        st.remove(sid)
    for sub, nodes in removed:
        st.add(sub, nodes)
    return False


def final_pass(st: State, sids: Iterable[str], action: str = "placed") -> dict[str, Decision]:
    """Put each chain where it now costs least (its place or a better one) and explain
    the decision, with every other chain where it is.

    Chains are explained in place, one co-location evaluation per run of like
    chains; a chain that moves (or, where latency counts, may split) is taken out
    and evaluated on its own.
    """
    out: dict[str, Decision] = {}
    order = sorted(sids, key=lambda sid: _run_key(st, st.subs[sid]) or ("", 0, sid))
    key: RunKey = None
    opts: Options | None = None
    raw_order = cost_order = np.zeros(0, dtype=np.intp)
    splits = st.objective.latency_weight > 0
    for sid in order:
        sub = st.subs[sid]
        nodes = st.where[sid]
        k = _run_key(st, sub)
        if splits and len(nodes) > 1:
            out[sid] = _reconsider(st, sid, action)
            opts = None
            continue
        if k is None or k != key or opts is None:
            opts = st.colocate(sub)
            raw_order = np.argsort(opts.raw, kind="stable")
            cost_order = np.argsort(opts.cost, kind="stable")
            key = k
        costs = st.costs(sub, nodes, nodes)
        chosen = costs[2]
        better = False
        for n in cost_order.tolist():
            if not opts.cost[n] < chosen - 1e-9:
                break
            if n not in nodes and st.user_path_ok(sub, n, nodes):
                better = True
                break
        if better:
            out[sid] = _reconsider(st, sid, action)
            opts = None
            continue
        out[sid] = explain(
            st,
            sub,
            nodes,
            opts,
            action,
            placed=True,
            raw_order=raw_order,
            cost_order=cost_order,
            costs=costs,
        )
    return out


def _reconsider(st: State, sid: str, action: str) -> Decision:
    """Take one chain out, put it back where it costs least, explain that."""
    sub, old = st.remove(sid)
    opts = st.colocate(sub)
    home = old
    best = best_home(st, sub, opts=opts)
    if best is not None and st.cost_of(sub, best) < st.cost_of(sub, old) - 1e-9:
        home = best
    decision = explain(st, sub, home, opts, action)
    st.add(sub, home)
    return decision


def repair(
    st: State, failed: Sequence[Subscription], movable: set[str], *, tries: int = 8, eject: int = 16
) -> list[Subscription]:
    """Make room for chains the greedy could not place, by moving other chains (of
    `movable`) out of the way: for each of the `tries` cheapest nodes that could
    hold the chain if emptied, take out what blocks it (chains on the node, or
    crossing the short link of the user's route), up to `eject` of them, largest
    first and then, if those cannot all be put back, smallest first; place the
    chain; put the others back where they fit best. Undone when they do not all
    fit again. Returns the chains still not placed."""
    still: list[Subscription] = []
    for sub in failed:
        if _make_room(st, sub, movable, tries, eject):
            movable.add(sub.id)
        else:
            still.append(sub)
    return still


def _blocker(
    st: State,
    problem: tuple[str, str],
    node: int,
    route: tuple[int, ...],
    taken: set[str],
    movable: set[str],
    need: float,
    largest: bool,
) -> str | None:
    """The next chain to take out against `problem` (capacity at `node`, or bandwidth on
    the route), or None when none can help."""
    kind = problem[0]
    weighed: list[tuple[float, str]] = []
    if kind.startswith("capacity:"):
        r = ("capacity:cpu", "capacity:memory", "capacity:storage").index(kind)
        for sid in st.on_node[node]:
            if sid in movable and sid not in taken:
                weighed.append((float(chain_info(st.subs[sid].chain).total[r]), sid))
    elif kind == BANDWIDTH:
        short = [lk for lk in route if st.link_free[lk] < need - TOL]
        crossing = set().union(*(st.on_link[lk] for lk in short)) if short else set()
        for sid in crossing:
            if sid in taken or sid not in movable:
                continue
            load = st.link_load(st.subs[sid], st.where[sid])
            v = max((load.get(lk, 0.0) for lk in short), default=0.0)
            if v > 0:
                weighed.append((v, sid))
    if not weighed:
        return None
    return (max(weighed) if largest else min(weighed))[1]


def _make_room(st: State, sub: Subscription, movable: set[str], tries: int, eject: int) -> bool:
    net = st.net
    info = chain_info(sub.chain)
    at = net.index[sub.at]
    reach = net.reach(at, info.rtt_bound, info.avail_bound)
    cand = np.flatnonzero(reach.ok & (net.room >= info.total - TOL).all(axis=1))
    raw = st.colocate(sub).raw
    for n in cand[np.argsort(raw[cand], kind="stable")][:tries].tolist():
        for largest in (True, False):
            if _eject_for(st, sub, (n,) * len(info.names), movable, eject, largest):
                return True
    return False


def _eject_for(
    st: State,
    sub: Subscription,
    target: tuple[int, ...],
    movable: set[str],
    eject: int,
    largest: bool,
) -> bool:
    """Take blockers out until `sub` fits on `target`, place it, put them back; or undo."""
    info = chain_info(sub.chain)
    n = target[0]
    route = st.net.path_links(st.net.index[sub.at], n)
    removed: list[tuple[Subscription, tuple[int, ...]]] = []
    taken: set[str] = set()
    problem = st.problem(sub, target)
    while problem is not None and len(removed) < eject:
        sid = _blocker(st, problem, n, route, taken, movable, info.user_mbps, largest)
        if sid is None:
            break
        taken.add(sid)
        removed.append(st.remove(sid))
        problem = st.problem(sub, target)
    if problem is None:
        st.add(sub, target)
        back: list[str] = []
        removed.sort(key=lambda r: -float(chain_info(r[0].chain).total[0]))
        for other, _old in removed:
            home = best_home(st, other)
            if home is None:
                break
            st.add(other, home)
            back.append(other.id)
        else:
            return True
        for sid in back:
            st.remove(sid)
        st.remove(sub.id)
    for other, old in removed:
        st.add(other, old)
    return False


def solve(
    st: State, subs: Sequence[Subscription], *, passes: int = 3
) -> tuple[dict[str, Decision], list[Refusal]]:
    """Place `subs` into `st` (which may hold fixed chains already).

    Returns the decisions, or the refusals when some chain found no room (then
    `st` holds a partial placement: the caller must discard it).
    """
    failed = greedy(st, subs)
    if failed:
        placed = {s.id for s in subs} - {s.id for s in failed}
        failed = repair(st, failed, placed)
    if failed:
        return {}, [diagnose(st, sub, proven=False) for sub in failed]
    if st.objective.saves_energy:
        close_nodes(st, passes)
    return final_pass(st, [s.id for s in subs]), []
