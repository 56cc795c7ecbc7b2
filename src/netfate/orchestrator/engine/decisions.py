"""Why each chain is where it is: the decision, its binding constraint, the runner-up.

A decision is explained against the others as they stood when the chain was
last decided (the heuristic's final pass, or the exact solver's result, or the
re-placement), with every other chain fixed:

- the chosen nodes and what they cost in the objective's terms (marginal power,
  round trip along the chain's path, moves);
- the binding constraint: of the nodes that would have been cheaper for the
  whole chain, the cheapest one and the first constraint it breaks ("none"
  when the choice is the unconstrained best);
- the runner-up: the cheapest other node that could have taken the whole chain,
  and what it would have cost more (or that none could);
- the traffic between its blocks: a block that followed its partner and the links
  their traffic would have crossed, or the links it crosses where they are apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from netfate.orchestrator.engine.model import Subscription
from netfate.orchestrator.engine.network import I64
from netfate.orchestrator.engine.state import TOL, Options, State, chain_info

EPS = 1e-9


@dataclass(frozen=True)
class Decision:
    subscription: str
    nodes: Mapping[str, str]
    """Block name -> node name."""
    objective: str
    action: str
    """placed, kept (still within its SLA), moved, or stayed (re-placed on the same nodes)."""
    cost: float
    """The chain's marginal cost in the objective's units (move cost included)."""
    energy_w: float
    """Marginal power: the chain's CPU at its nodes' rates, plus the power of nodes it
    alone keeps on."""
    rtt_ms: float
    binding: str
    """The constraint that kept a cheaper node out ("none": the unconstrained best)."""
    binding_detail: str
    runner_up: str | None
    """The cheapest other node that could take the whole chain, if any."""
    runner_up_lost: str
    entry_rtt_ms: float | None = None
    """The user's round trip to the entry (what the SLA bounds), when `rtt_ms`, the
    round trip along the chain's path, differs from it."""
    traffic: str = ""
    """The traffic between the chain's blocks: which block follows which and what its
    traffic would have crossed, or what it crosses where they are apart."""

    @property
    def why(self) -> str:
        where = ", ".join(f"{b}@{n}" for b, n in self.nodes.items())
        nodes = sorted(set(self.nodes.values()))
        home = nodes[0] if len(nodes) == 1 else "+".join(nodes)
        head = (
            f"{self.action} on {home} by {self.objective} "
            f"(cost {self.cost:.3g}: {self.energy_w:.3g} W, {self.rtt_ms:.3g} ms round trip"
        )
        if self.entry_rtt_ms is not None:
            head += f" along the chain, {self.entry_rtt_ms:.3g} ms to the entry"
        head += ")"
        if len(nodes) > 1:
            head += f" split as {where}"
        bind = (
            "no constraint binds"
            if self.binding == "none"
            else f"binding {self.binding}: {self.binding_detail}"
        )
        tail = f"; {self.traffic}" if self.traffic else ""
        return f"{head}; {bind}; {self.runner_up_lost}{tail}"


def _crossing(st: State, a: int, b: int, mbps: float, own: Mapping[int, float], hop: bool) -> str:
    """The links from node a to b, the round trip they add to the chain's path (`hop`:
    the two blocks are consecutive), and those that lack `mbps` (`own`: the chain's own
    traffic, free for itself)."""
    net = st.net
    route = net.path_links(a, b)
    notes = [f"+{2.0 * float(net.delay_ms[a, b]):.3g} ms round trip"] if hop else []
    for lk in route:
        free = float(st.link_free[lk]) + own.get(lk, 0.0)
        if free < mbps - TOL:
            notes.append(f"{net.link_names[lk]} has {max(free, 0.0):.3g} Mbit/s free")
    out = ", ".join(net.link_names[lk] for lk in route)
    return out + (f" ({'; '.join(notes)})" if notes else "")


def traffic(
    st: State, sub: Subscription, nodes: tuple[int, ...], back: tuple[int, ...] | None = None
) -> str:
    """The relations between the chain's blocks (model.py) in words: two blocks apart and
    the links their traffic crosses; a block that moved to stay with its partner and
    what the traffic would have crossed had it stayed (and which link lacks the room).
    `back`: where `sub` is placed in `st`, if it is."""
    info = chain_info(sub.chain)
    own = st.link_load(sub, back) if back is not None else {}
    rels: dict[tuple[int, int], float] = {(i, j): m for i, j, m in info.talks}
    for i in range(len(nodes) - 1):
        rels.setdefault((i, i + 1), 0.0)
    cur = st.current.get(sub.id)
    if cur is not None and len(cur) != len(nodes):
        cur = None
    out: list[str] = []
    for (i, j), mbps in sorted(rels.items()):
        a, b = info.names[i], info.names[j]
        amount = f"{mbps:g} Mbit/s" if mbps > 0 else "the chain's path"
        if nodes[i] != nodes[j]:
            out.append(
                f"{b} apart from {a}: {amount} between them cross "
                f"{_crossing(st, nodes[i], nodes[j], 0.0, own, j == i + 1)}"
            )
        elif cur is not None and (cur[i] != nodes[i] or cur[j] != nodes[j]):
            # Together now and one of them moved: had the follower stayed, this crossed.
            lead, follower, left = (a, b, cur[j]) if cur[j] != nodes[j] else (b, a, cur[i])
            out.append(
                f"{follower} follows {lead}: {amount} between them would cross "
                f"{_crossing(st, nodes[i], left, mbps, own, j == i + 1)}"
            )
    return "; ".join(out)


def _describe_gap(
    st: State, opts: Options, n: int, chosen: tuple[int, ...], chosen_cost: float, cw: float
) -> str:
    """What the runner-up `n` would have cost more than the choice, in words."""
    net = st.net
    parts = []
    d_e = float(opts.energy[n]) - cw
    if st.objective.energy_weight > 0 and abs(d_e) > EPS:
        off = not (st.hosted[n] > 0 or st.keep_on[n]) and n not in chosen
        parts.append(f"{d_e:+.3g} W" + (" (powers it on)" if off else ""))
    if st.objective.latency_weight > 0:
        parts.append(f"{float(opts.rtt[n]):.3g} ms round trip")
    if opts.moves[n] > 0 and st.move_cost > 0:
        parts.append(f"{int(opts.moves[n])} block(s) moved")
    gap = float(opts.cost[n]) - chosen_cost
    if gap < 0:
        return (
            f"runner-up {net.names[n]} would cost {-gap:.3g} less ({', '.join(parts)}), "
            "but the chain's place still meets every constraint"
        )
    return f"runner-up {net.names[n]} lost by {gap:+.3g} ({', '.join(parts) or 'a tie'})"


def explain(
    st: State,
    sub: Subscription,
    nodes: tuple[int, ...],
    opts: Options,
    action: str,
    *,
    placed: bool = False,
    raw_order: I64 | None = None,
    cost_order: I64 | None = None,
    costs: tuple[float, float, float] | None = None,
) -> Decision:
    """Explain `sub` on `nodes`. `opts` is `st.colocate(sub)`, computed with `sub` out of
    `st`, or with it placed on `nodes` (`placed`: then its own nodes are not compared).
    The orders (argsorts of `opts.raw` and `opts.cost`) and `costs` (`st.costs`), when
    the caller has them."""
    net = st.net
    info = chain_info(sub.chain)
    back = nodes if placed else None
    energy, rtt, chosen_cost = costs if costs is not None else st.costs(sub, nodes, back)
    home = nodes[0] if len(set(nodes)) == 1 else -1
    skip = set(nodes) if placed else ({home} if home >= 0 else set())
    if raw_order is None:
        raw_order = np.argsort(opts.raw, kind="stable")
    if cost_order is None:
        cost_order = np.argsort(opts.cost, kind="stable")

    # Binding: the cheapest node, ignoring constraints, that would beat the choice.
    binding, detail = "none", "the choice is the cheapest node for the whole chain"
    for n in raw_order:
        n = int(n)
        if n in skip:
            continue
        gap = float(opts.raw[n]) - chosen_cost
        if gap < -EPS:
            why = st.why_not(sub, n, back)
            binding = why[0]
            detail = f"{net.names[n]} would cost {gap:+.3g}: {why[1]}"
        break

    # Runner-up: the cheapest other feasible home for the whole chain.
    runner: int | None = None
    for n in cost_order:
        n = int(n)
        if not np.isfinite(opts.cost[n]):
            break
        if n not in skip and st.user_path_ok(sub, n, back):
            runner = n
            break
    if runner is None:
        lost = "no other node could take the whole chain"
    else:
        lost = _describe_gap(st, opts, runner, nodes, chosen_cost, energy)
    entry_rtt = st.rtt(sub, nodes[0])
    return Decision(
        subscription=sub.id,
        nodes={b: net.names[n] for b, n in zip(info.names, nodes, strict=True)},
        objective=st.objective.name,
        action=action,
        cost=chosen_cost,
        energy_w=energy,
        rtt_ms=rtt,
        binding=binding,
        binding_detail=detail,
        runner_up=net.names[runner] if runner is not None else None,
        runner_up_lost=lost,
        entry_rtt_ms=entry_rtt if abs(entry_rtt - rtt) > EPS else None,
        traffic=traffic(st, sub, nodes, back),
    )
