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
from netfate.orchestrator.engine.model import Chain, Sla, Subscription
from netfate.orchestrator.engine.network import F64, I64, B
from netfate.orchestrator.engine.refusals import Refusal, diagnose
from netfate.orchestrator.engine.state import BANDWIDTH, TOL, Options, State, chain_info

TIE = 1e-6
MAX_FAILURES = 8
SPLIT_HEADROOM = 0.2
"""A chain that fits whole is split only if every link the split loads keeps this share
of its capacity free: a small saving of power must not take the last bandwidth that a
chain placed later needs."""
ENTRY_TRIES = 3
"""Entry nodes a split tries (the cheapest for the entry alone first): the cheapest entry
may leave the rest of the chain far away, or with no room on the way."""
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
    run: _Run | None = None,
) -> tuple[int, ...] | None:
    """The cheapest placement of `sub` (not placed): whole on one node, or split in two
    (the entry near the user, the rest on one other node) where that may cost less,
    or block by block when nothing else fits. `opts` and `score`: what `st.colocate`
    and `_score` give, when the caller has them; `run`: the greedy's running figures."""
    if opts is None:
        opts = st.colocate(sub, amortise=amortise)
    if score is None:
        score = _score(st, sub, opts, slice(None), allowed)
    nb = len(sub.chain.blocks)
    n = _pick(st, sub, score)
    whole = (n,) * nb if n is not None else None
    if not split or nb == 1:
        return whole
    consolidating = st.objective.latency_weight == 0
    if n is not None and consolidating and not _split_may_pay(st, sub, n):
        return whole
    # Where latency counts, only the entry needs to be near the user: the rest may be
    # cheaper elsewhere. Where the whole chain would switch a node on, or runs at a
    # higher rate per core than a node that is on, the rest may be cheaper there.
    entry, rest = parts_of(sub)
    if run is not None:
        eo, es = run.entry.options(entry)
        ro, rs = run.rest.options(rest)
    else:
        eo = st.colocate(entry, amortise=amortise)
        es = _score(st, entry, eo, slice(None), allowed)
        ro = st.colocate(rest, amortise=amortise, entry=False)
        rs = _score(st, rest, ro, slice(None), allowed)
    two = _two_part(st, sub, entry, eo, es, ro, rs, whole is not None)
    if two is not None and (n is None or two[1] < float(score[n]) - 1e-12):
        return two[0]
    if whole is None:
        return split_home(st, sub, allowed=allowed)
    return whole


_PARTS: dict[int, tuple[Chain, Chain, Chain]] = {}


def parts_of(sub: Subscription) -> tuple[Subscription, Subscription]:
    """The chain's entry alone (with the user's traffic and round-trip bound) and the
    rest (no bound), as subscriptions of the same user (cached chains per chain)."""
    chain = sub.chain
    got = _PARTS.get(id(chain))
    if got is None or got[0] is not chain:
        if len(_PARTS) >= 65536:
            _PARTS.clear()
        first = chain.blocks[0].name
        entry = Chain(
            f"{chain.name}#entry",
            chain.blocks[:1],
            (),
            chain.user_mbps,
            Sla(rtt_ms=chain.sla.rtt_ms),
        )
        rest = Chain(
            f"{chain.name}#rest",
            chain.blocks[1:],
            tuple(t for t in chain.talks if first not in (t.a, t.b)),
            chain_mbps=chain.chain_mbps,
        )
        got = (chain, entry, rest)
        _PARTS[id(chain)] = got
    return (
        Subscription(sub.id, sub.user, sub.at, got[1]),
        Subscription(sub.id, sub.user, sub.at, got[2]),
    )


def _two_part(
    st: State,
    sub: Subscription,
    entry: Subscription,
    eo: Options,
    es: F64,
    ro: Options,
    rs: F64,
    optional: bool,
) -> tuple[tuple[int, ...], float] | None:
    """The entry on one of its ENTRY_TRIES best nodes, the rest on the best other node
    (priced with the round trip between the two, on the chain's path) that the traffic
    between them reaches (`optional`: keeping SPLIT_HEADROOM of each link free) and
    that keeps the chain's availability. The cheapest such pair's nodes and score (as
    `_score` ranks), or None."""
    best: tuple[tuple[int, ...], float] | None = None
    tried = 0
    for a in np.argsort(es, kind="stable")[: 4 * ENTRY_TRIES].tolist():
        if tried >= ENTRY_TRIES or not np.isfinite(es[a]):
            break
        if not st.user_path_ok(entry, a):
            continue
        tried += 1
        got = _rest_for(st, sub, a, float(es[a]), rs, optional)
        if got is not None and (best is None or got[1] < best[1]):
            best = got
    return best


def _rest_for(
    st: State, sub: Subscription, a: int, cost_a: float, rs: F64, optional: bool
) -> tuple[tuple[int, ...], float] | None:
    """The rest of the chain on the best node other than `a` (the entry's), or None."""
    net = st.net
    info = chain_info(sub.chain)
    need = sum(m for i, j, m in info.talks if 0 in (i, j))
    # The user's traffic to the entry shares any link its route has with the talks'.
    user: dict[int, float] = {}
    if info.user_mbps > 0:
        user = dict.fromkeys(net.path_links(net.index[sub.at], a), info.user_mbps)
    room = SPLIT_HEADROOM if optional else 0.0
    # The chain's path crosses from the entry to the rest's first block: its round trip
    # is priced as the objective weighs it.
    hop = 2.0 * net.delay_ms[a]
    rs = rs + np.where(np.isfinite(hop), st.objective.latency_weight * hop, np.inf)
    for b in np.argsort(rs, kind="stable")[:8].tolist():
        if not np.isfinite(rs[b]):
            return None
        if b == a or net.availability[a] * net.availability[b] < info.avail_bound:
            continue
        if all(
            st.link_free[lk] - need - user.get(lk, 0.0) >= room * net.link_cap[lk] - TOL
            for lk in net.path_links(a, b)
        ):
            nodes = (a,) + (b,) * (len(info.names) - 1)
            return nodes, cost_a + float(rs[b])
    return None


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


class _Tracker:
    """One Options (and greedy score) kept across a run of like subscriptions, refreshed
    at the nodes changed since (`touched`)."""

    def __init__(self, st: State, amortise: bool, entry: bool = True) -> None:
        self.st = st
        self.amortise = amortise
        self.entry = entry
        self.key: RunKey = None
        self.opts: Options | None = None
        self.score: F64 | None = None
        self.touched: set[int] = set()

    def options(self, sub: Subscription) -> tuple[Options, F64]:
        st = self.st
        key = _run_key(st, sub)
        if key is None or key != self.key or self.opts is None or self.score is None:
            self.opts = st.colocate(sub, amortise=self.amortise, entry=self.entry)
            self.score = _score(st, sub, self.opts, slice(None), None)
            self.key = key
        elif len(self.touched) <= 4:
            for n in self.touched:
                self._refresh(sub, n)
        elif self.touched:
            idx = np.fromiter(self.touched, dtype=np.intp, count=len(self.touched))
            part = st.colocate(sub, amortise=self.amortise, idx=idx, entry=self.entry)
            self.opts.write(idx, part)
            self.score[idx] = _score(st, sub, part, idx, None)
        self.touched = set()
        return self.opts, self.score

    def _refresh(self, sub: Subscription, n: int) -> None:
        """`colocate` and `_score` at one node, in plain floats (a few microseconds
        where a vector call costs tens)."""
        st = self.st
        opts = self.opts
        assert opts is not None and self.score is not None  # options() set them
        ok, energy, rtt, moves, raw, cost = st.colocate_one(
            sub, n, amortise=self.amortise, entry=self.entry
        )
        opts.ok[n] = ok
        opts.energy[n] = energy
        opts.rtt[n] = rtt
        opts.moves[n] = moves
        opts.raw[n] = raw
        opts.cost[n] = cost
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


class _Run:
    """The greedy's running figures: whole chains, and their entries and rests apart."""

    def __init__(self, st: State, amortise: bool) -> None:
        self.amortise = amortise
        self.whole = _Tracker(st, amortise)
        self.entry = _Tracker(st, amortise)
        self.rest = _Tracker(st, amortise, entry=False)

    def touch(self, nodes: Iterable[int]) -> None:
        for t in (self.whole, self.entry, self.rest):
            t.touched.update(nodes)


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
        if b > 0:
            # The chain's path runs through the previous block: its round trip from there
            # is the objective's (model docstring).
            hop = 2.0 * net.delay_ms[chosen[b - 1]]
            ok &= np.isfinite(hop)
            cost = cost + obj.latency_weight * np.where(np.isfinite(hop), hop, 0.0)
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
    run = _Run(st, st.objective.saves_energy)
    for sub in greedy_order(st, subs):
        opts, score = run.whole.options(sub)
        home = best_home(st, sub, amortise=run.amortise, opts=opts, score=score, run=run)
        if home is None:
            failed.append(sub)
        else:
            st.add(sub, home)
            run.touch(home)
    return failed


def close_nodes(
    st: State, passes: int = 3, budget: int | None = None, movable: set[str] | None = None
) -> int:
    """Empty nodes where that improves the objective (move costs included): each node
    on (least used first) is emptied onto the other nodes that are on, or failing
    that onto any node (switching on cheaper ones instead). At most `passes` rounds,
    `budget` chain moves tried (default: half the chains placed, at least 2,000), and
    MAX_FAILURES nodes in a row that could not be emptied. Only nodes whose chains are
    all `movable` (default: all) are emptied. Returns how many were."""
    net = st.net
    emptied = 0
    left = [budget if budget is not None else max(2000, len(st.where) // 2)]
    failures = 0
    for _ in range(passes):
        closed = 0
        cand = np.flatnonzero(st.active() & net.hosts & ~st.keep_on)
        share = ((net.room - st.free) * net.inv_room).max(axis=1)
        for n in cand[np.argsort(share[cand], kind="stable")].tolist():
            if st.hosted[n] == 0:
                continue
            if movable is not None and not st.on_node[n] <= movable:
                continue
            on = st.active() & net.hosts
            on[n] = False
            anywhere = net.hosts.copy()
            anywhere[n] = False
            cheaper_off = bool((anywhere & ~on & (net.on_w < net.on_w[n])).any())
            for allowed in (on, anywhere) if cheaper_off else (on,):
                if left[0] <= 0 or failures >= MAX_FAILURES:
                    return emptied + closed
                if _empty(st, n, allowed, left):
                    closed += 1
                    failures = 0
                    break
            else:
                failures += 1
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
    chains. A chain for which a cheaper place may exist (whole elsewhere, or, where
    latency counts, split in two below its cost) is taken out and evaluated alone.
    """
    out: dict[str, Decision] = {}
    order = sorted(sids, key=lambda sid: _run_key(st, st.subs[sid]) or ("", 0, sid))
    key: RunKey = None
    opts: Options | None = None
    halves: tuple[Options, Options] | None = None
    raw_order = cost_order = np.zeros(0, dtype=np.intp)
    splits = st.objective.latency_weight > 0
    for sid in order:
        sub = st.subs[sid]
        nodes = st.where[sid]
        k = _run_key(st, sub)
        if k is None or k != key or opts is None:
            opts = st.colocate(sub)
            raw_order = np.argsort(opts.raw, kind="stable")
            cost_order = np.argsort(opts.cost, kind="stable")
            halves = None
            key = k
        costs = st.costs(sub, nodes, nodes)
        chosen = costs[2]
        if splits and len(nodes) > 1 and halves is None:
            entry, rest = parts_of(sub)
            halves = (st.colocate(entry), st.colocate(rest, entry=False))
        if _cheaper_whole(st, sub, nodes, opts, cost_order, chosen) or (
            halves is not None and _split_below(st, sub, nodes, chosen, halves)
        ):
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


def _cheaper_whole(
    st: State,
    sub: Subscription,
    nodes: tuple[int, ...],
    opts: Options,
    cost_order: I64,
    chosen: float,
) -> bool:
    """Whether another node, or one of its own, takes the whole chain (placed on `nodes`)
    for less."""
    if len(set(nodes)) > 1:
        # Its own nodes are priced in `opts` without the room the chain holds there.
        for n in sorted(set(nodes)):
            whole = (n,) * len(nodes)
            if st.problem(sub, whole, nodes) is None and (
                st.cost_of(sub, whole, nodes) < chosen - 1e-9
            ):
                return True
    for raw_n in cost_order:
        n = int(raw_n)
        if not opts.cost[n] < chosen - 1e-9:
            return False
        if n not in nodes and st.user_path_ok(sub, n, nodes):
            return True
    return False


def _split_below(
    st: State,
    sub: Subscription,
    nodes: tuple[int, ...],
    chosen: float,
    halves: tuple[Options, Options],
) -> bool:
    """Whether the chain's entry and rest on two nodes could cost less than `chosen`: a
    lower bound from the cheapest node for each half (`halves`: their `colocate`; its
    own nodes priced without their room, which it holds now), plus the least round trip
    between two nodes on the chain's path (a split crosses at least one link)."""
    own = list(set(nodes))
    net = st.net
    lb = 0.0
    if st.objective.latency_weight > 0 and len(net.link_delay):
        lb = st.objective.latency_weight * 2.0 * float(net.link_delay.min())
    for o in halves:
        low = o.cost.copy()
        low[own] = o.raw[own]
        lb += float(low.min())
    return lb < chosen - 1e-9


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
            if _eject_for(st, sub, (n,) * len(info.names), movable, eject, largest) is not None:
                return True
    return False


Ejected = list[tuple[Subscription, tuple[int, ...]]]


def _eject_for(
    st: State,
    sub: Subscription,
    target: tuple[int, ...],
    movable: set[str],
    eject: int,
    largest: bool,
) -> Ejected | None:
    """Take blockers out until `sub` (not placed) fits on `target`, place it, put the
    blockers back where they fit best. Returns them with their old nodes (for
    `_undo`), or None after undoing everything."""
    info = chain_info(sub.chain)
    n = target[0]
    route = st.net.path_links(st.net.index[sub.at], n)
    removed: Ejected = []
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
            return removed
        for sid in back:
            st.remove(sid)
        st.remove(sub.id)
    for other, old in removed:
        st.add(other, old)
    return None


def _undo(st: State, sub: Subscription, removed: Ejected) -> None:
    """Reverse a successful `_eject_for` (`sub` comes out; the blockers go back)."""
    for other, _old in removed:
        st.remove(other.id)
    st.remove(sub.id)
    for other, old in removed:
        st.add(other, old)


def _target(st: State, sub: Subscription, old: tuple[int, ...], m: int) -> tuple[int, ...]:
    """The whole chain on node m if m has the room for it at all, else its entry alone."""
    info = chain_info(sub.chain)
    if bool((st.net.room[m] >= info.total - TOL).all()):
        return (m,) * len(old)
    return (m, *old[1:])


def improve_by_ejection(st: State, movable: set[str], attempts: int = 500, pull: int = 8) -> int:
    """Where latency counts: chains whose entry is away from the node where it would cost
    least (full of chains that gain less from being there) try that node, moving up
    to 4 of those chains elsewhere (smallest first, then largest first), then
    pulling in up to `pull` other chains that want the same node and now fit; kept
    when the objective improves. The chains with most to gain go first, at most
    `attempts` of them. Returns how many such moves were kept."""
    gains: list[tuple[float, str, int]] = []
    seen: dict[tuple[int, str], tuple[int, float]] = {}
    for sid in sorted(movable):
        sub = st.subs[sid]
        nodes = st.where[sid]
        key = (id(sub.chain), sub.at)
        best = seen.get(key)
        if best is None:
            raw = st.colocate(sub).raw
            m = int(np.argmin(raw))
            best = (m, float(raw[m]))
            seen[key] = best
        cost = st.costs(sub, nodes, nodes)[2]
        if nodes[0] != best[0] and cost > best[1] + 1e-9:
            gains.append((cost - best[1], sid, best[0]))
    gains.sort(key=lambda g: (-g[0], g[1]))
    wanting: dict[int, list[str]] = {}
    for _g, sid, m in gains:
        wanting.setdefault(m, []).append(sid)
    kept = 0
    for _gain, sid, m in gains[:attempts]:
        if st.where[sid][0] == m:
            continue
        for largest in (False, True):
            if _try_node(st, sid, m, movable, largest, wanting[m][: pull + 1]):
                kept += 1
                break
    return kept


def _try_node(
    st: State, sid: str, m: int, movable: set[str], largest: bool, others: list[str]
) -> bool:
    """One ejection move of `improve_by_ejection`; everything undone unless it pays."""
    before = st.value()
    sub, old = st.remove(sid)
    removed = _eject_for(st, sub, _target(st, sub, old, m), movable - {sid}, 4, largest)
    if removed is None:
        st.add(sub, old)
        return False
    taken = {other.id for other, _ in removed}
    pulled: Ejected = []
    for oid in others:
        if oid == sid or oid in taken or st.where[oid][0] == m:
            continue
        osub, oold = st.remove(oid)
        tgt = _target(st, osub, oold, m)
        if st.problem(osub, tgt) is None and st.cost_of(osub, tgt) < st.cost_of(osub, oold):
            st.add(osub, tgt)
            pulled.append((osub, oold))
        else:
            st.add(osub, oold)
    if st.value() < before - 1e-9:
        return True
    for osub, oold in pulled:
        st.remove(osub.id)
        st.add(osub, oold)
    _undo(st, sub, removed)
    st.add(sub, old)
    return False


def solve(
    st: State, subs: Sequence[Subscription], *, passes: int = 3
) -> tuple[dict[str, Decision], list[Refusal]]:
    """Place `subs` into `st` (which may hold fixed chains already).

    Returns the decisions, or the refusals when some chain found no room (then
    `st` holds a partial placement: the caller must discard it).
    """
    movable = {s.id for s in subs}
    failed = greedy(st, subs)
    if failed:
        failed = repair(st, failed, movable - {s.id for s in failed})
    if failed:
        return {}, [diagnose(st, sub, proven=False) for sub in failed]
    if st.objective.saves_energy:
        close_nodes(st, passes, movable=movable)
    if st.objective.latency_weight > 0:
        improve_by_ejection(st, movable)
    return final_pass(st, [s.id for s in subs]), []
