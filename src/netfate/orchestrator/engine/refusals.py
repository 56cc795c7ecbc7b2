"""Why a chain cannot be placed: one refusal per chain, naming the binding constraint.

A refusal is `proven` when the chain cannot fit at all (even on an empty
network: a block larger than any node, no node within the latency bound, an
availability no node reaches) or when the exact solver proved that it cannot
fit alongside the others. A heuristic that finds no room says so without
claiming proof.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from netfate.orchestrator.engine.model import Subscription
from netfate.orchestrator.engine.network import RESOURCES
from netfate.orchestrator.engine.state import (
    AVAILABILITY,
    BANDWIDTH,
    CAPACITY,
    HOST,
    LATENCY,
    TOL,
    State,
    chain_info,
)


@dataclass(frozen=True)
class Refusal:
    subscription: str
    constraint: str
    """host, latency, availability, capacity:cpu|memory|storage or bandwidth."""
    detail: str
    proven: bool


class Infeasible(Exception):
    """Some subscriptions cannot be placed; nothing was placed. One refusal per such chain."""

    def __init__(self, refusals: Sequence[Refusal], note: str = "") -> None:
        self.refusals = tuple(refusals)
        lines = [f"{r.subscription}: {r.constraint}: {r.detail}" for r in self.refusals]
        head = f"cannot place {len(self.refusals)} subscription(s)"
        super().__init__(head + (f" ({note})" if note else "") + ": " + "; ".join(lines))


def intrinsic(st: State, sub: Subscription) -> Refusal | None:
    """A reason `sub` cannot fit even with nothing else placed, or None."""
    key = (id(sub.chain), sub.at)
    got = st.net.memo.get(key)
    if got is None or got[0] is not sub.chain:
        got = (sub.chain, _intrinsic(st, sub))
        st.net.memo[key] = got
    why = got[1]
    if not isinstance(why, Refusal) or why.subscription == sub.id:
        return why if isinstance(why, Refusal) else None
    return Refusal(sub.id, why.constraint, why.detail, why.proven)


def _intrinsic(st: State, sub: Subscription) -> Refusal | None:
    net = st.net
    info = chain_info(sub.chain)
    at = net.index[sub.at]
    hosts = net.hosts & np.isfinite(net.delay_ms[at])
    if not hosts.any():
        return Refusal(sub.id, HOST, f"no node reachable from {sub.at} can host", True)
    room = net.room
    for b, name in enumerate(info.names):
        d = info.demand[b]
        for r in range(3):
            biggest = float(room[hosts, r].max())
            if d[r] > biggest + TOL:
                return Refusal(
                    sub.id,
                    CAPACITY[r],
                    f"block {name} needs {d[r]:g} {RESOURCES[r]}; the largest node offers "
                    f"{biggest:g}",
                    True,
                )
    rtt = net.rtt_row(at)
    near = hosts & (rtt <= info.rtt_bound + TOL)
    if not near.any():
        best = float(rtt[hosts].min())
        return Refusal(
            sub.id,
            LATENCY,
            f"no node that can host is within {info.rtt_bound:g} ms round trip of {sub.at} "
            f"(the nearest is {best:.2f} ms)",
            True,
        )
    best_av = float(net.availability[hosts].max())
    if best_av < info.avail_bound:
        return Refusal(
            sub.id,
            AVAILABILITY,
            f"SLA {info.avail_bound:g} is above every node's availability (best {best_av:g})",
            True,
        )
    entry_ok = near & (room >= info.demand[0] - TOL).all(axis=1)
    if not entry_ok.any():
        return Refusal(
            sub.id,
            CAPACITY[_tightest(room[near], info.demand[0])],
            f"no node within {info.rtt_bound:g} ms of {sub.at} has room for the entry "
            f"{info.names[0]}",
            True,
        )
    if info.user_mbps > 0:
        cap = net.link_cap - net.link_used
        if not any(
            all(cap[lk] >= info.user_mbps - TOL for lk in net.path_links(at, int(n)))
            for n in np.flatnonzero(entry_ok)
        ):
            return Refusal(
                sub.id,
                BANDWIDTH,
                f"no route from {sub.at} to a node that could take the entry carries "
                f"{info.user_mbps:g} Mbit/s",
                True,
            )
    return None


def _tightest(room: np.ndarray, need: np.ndarray) -> int:
    """The resource with the largest shortfall on the best node."""
    short = (need[None, :] - room).min(axis=0)
    return int(np.argmax(short))


def diagnose(st: State, sub: Subscription, *, proven: bool) -> Refusal:
    """Why `sub` (not placed) finds no room in `st` with the others placed."""
    got = intrinsic(st, sub)
    if got is not None:
        return got
    net = st.net
    info = chain_info(sub.chain)
    at = net.index[sub.at]
    rtt = net.rtt_row(at)
    cand = np.flatnonzero(
        net.hosts & (rtt <= info.rtt_bound + TOL) & (net.availability >= info.avail_bound)
    )
    reasons: Counter[str] = Counter()
    for n in cand:
        why = st.why_not(sub, int(n))
        reasons[why[0]] += 1
    reasons.pop("none", None)
    constraint = reasons.most_common(1)[0][0] if reasons else CAPACITY[0]
    if constraint in CAPACITY and len(info.names) > 1:
        split = _split_bandwidth(st, sub, cand)
        if split is not None:
            who = "proved by the exact solver" if proven else "the heuristic found no room"
            return Refusal(sub.id, BANDWIDTH, f"{split} ({who})", proven)
    scope = (
        f"within {info.rtt_bound:g} ms of {sub.at}" if np.isfinite(info.rtt_bound) else "anywhere"
    )
    if constraint in CAPACITY:
        r = CAPACITY.index(constraint)
        most = float(st.free[cand, r].max()) if len(cand) else 0.0
        detail = (
            f"the {len(cand)} candidate node(s) {scope} have at most {max(most, 0.0):.2f} "
            f"{RESOURCES[r]} free; the chain needs {info.total[r]:g} "
            f"(entry {info.demand[0, r]:g})"
            + (", and no split fits" if len(info.names) > 1 else "")
        )
    else:
        detail = f"{reasons[constraint]} of {len(cand)} candidate node(s) {scope} fail it"
    who = "proved by the exact solver" if proven else "the heuristic found no room"
    return Refusal(sub.id, constraint, f"{detail} ({who})", proven)


def _split_bandwidth(st: State, sub: Subscription, cand: np.ndarray) -> str | None:
    """When no node takes the whole chain: a split in two (the entry on a candidate, the
    rest on another node) that only the traffic between the blocks keeps out, in words;
    None when there is none (a bounded search: 32 entries x 64 nodes)."""
    net = st.net
    info = chain_info(sub.chain)
    rest = len(info.names) - 1
    others = np.flatnonzero(net.hosts)[:64].tolist()
    for n in cand[:32].tolist():
        for m in others:
            if m == n:
                continue
            why = st.problem(sub, (n,) + (m,) * rest)
            if why is not None and why[0] == BANDWIDTH:
                return (
                    f"no node takes the whole chain, and split ({info.names[0]} on "
                    f"{net.names[n]}, the rest on {net.names[m]}) the traffic between its "
                    f"blocks does not fit: {why[1]}"
                )
    return None
