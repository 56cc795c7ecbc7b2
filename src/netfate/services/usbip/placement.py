"""Run at home or at the ISP: the ``delay-bound`` placement policy.

The paper's point (section III.C, Table II): everything above USB runs at the
ISP, unless a function's delay requirement cannot stand the round trip to the
ISP, in which case it runs in a lightweight container on the HRH itself.  So:

- a function declares ``delay_bound_ms``: the longest round trip (sensor
  event -> function -> reply) it tolerates;
- the RTT from the served host to each ISP node is twice the summed one-way
  link delays on the path (the topology's links), or a measured RTT when one
  is given (``measured_rtt_ms``), plus what the USB/IP tunnel adds per URB
  (``TUNNEL_OVERHEAD_MS``, from ``netfate bench usbip``);
- if the nearest ISP node that fits is within the bound, the function runs
  there (the HRH is a cheap box: keep its CPU for what must be local);
  otherwise on the HRH nearest the served host (node kind ``hrh``); if
  neither can, placement fails and says why.

The decision and its numbers are returned in ``why``; the orchestrator records
it in the InstancePlaced event.

The platform's ``PlacementRequest`` carries both: the descriptor's
``delay_bound_ms`` and the caller's ``measured_rtt_ms``.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from netfate.orchestrator.engine.placement import (
    Candidate,
    NoPlacement,
    Placement,
    PlacementRequest,
    fits,
    register_policy,
)

POLICY = "delay-bound"
HOME_KINDS = frozenset({"hrh"})
ISP_KINDS = frozenset({"pe", "pop"})
TUNNEL_OVERHEAD_MS = 0.3
"""What the USB/IP tunnel may add per round trip over the network RTT (issue 6 goal;
measured about 0.05 ms median, README)."""


def _inputs(req: PlacementRequest) -> tuple[float | None, float | None]:
    return req.delay_bound_ms, req.measured_rtt_ms


def _rtt_ms(dist_s: dict[str, float], node: str) -> float:
    return 2.0 * dist_s[node] * 1000.0


@register_policy(POLICY)
def delay_bound(
    req: PlacementRequest, candidates: Sequence[Candidate], graph: nx.Graph[str]
) -> Placement:
    """At the ISP if its RTT (plus the tunnel) is within the bound, else on the HRH."""
    bound, measured = _inputs(req)
    ok = [c for c in candidates if fits(req, c)]
    isp = [c for c in ok if c.kind in ISP_KINDS]
    home = [c for c in ok if c.kind in HOME_KINDS]
    if req.serves is None or req.serves not in graph:
        if isp:
            best = min(isp, key=lambda c: (-c.free_cpu, c.node))
            return Placement(best.node, POLICY, "no served host to measure from: at the ISP")
        raise NoPlacement("delay-bound: no served host and no ISP node with room")
    dist: dict[str, float] = nx.single_source_dijkstra_path_length(
        graph, req.serves, weight=lambda _u, _v, d: float(d.get("delay_s", 0.0) or 0.0) + 1e-9
    )
    isp = [c for c in isp if c.node in dist]
    home = [c for c in home if c.node in dist]
    nearest_isp = min(isp, key=lambda c: (dist[c.node], -c.free_cpu, c.node)) if isp else None
    nearest_home = min(home, key=lambda c: (dist[c.node], c.node)) if home else None

    isp_rtt: float | None = None
    source = "topology"
    if nearest_isp is not None:
        isp_rtt = measured if measured is not None else _rtt_ms(dist, nearest_isp.node)
        source = "measured" if measured is not None else "link delays"
    if bound is None:
        if nearest_isp is not None:
            return Placement(
                nearest_isp.node,
                POLICY,
                f"no delay bound declared: at the ISP ({nearest_isp.node}, RTT {isp_rtt:.1f} ms "
                f"from {req.serves})",
            )
        raise NoPlacement(f"delay-bound: no ISP node with room reachable from {req.serves}")
    if nearest_isp is not None and isp_rtt is not None:
        total = isp_rtt + TUNNEL_OVERHEAD_MS
        if total <= bound:
            return Placement(
                nearest_isp.node,
                POLICY,
                f"RTT {req.serves}<->{nearest_isp.node} {isp_rtt:.1f} ms ({source}) + tunnel "
                f"{TUNNEL_OVERHEAD_MS} ms = {total:.1f} ms <= bound {bound:g} ms: at the ISP "
                f"({nearest_isp.node})",
            )
        reason = (
            f"RTT {req.serves}<->{nearest_isp.node} {isp_rtt:.1f} ms ({source}) + tunnel "
            f"{TUNNEL_OVERHEAD_MS} ms = {total:.1f} ms > bound {bound:g} ms"
        )
    else:
        reason = "no ISP node has room"
    if nearest_home is not None:
        home_rtt = _rtt_ms(dist, nearest_home.node)
        if home_rtt <= bound:
            return Placement(
                nearest_home.node,
                POLICY,
                f"{reason}: on the HRH {nearest_home.node} (RTT {home_rtt:.1f} ms)",
            )
        reason += f"; the HRH {nearest_home.node} is {home_rtt:.1f} ms away too"
    else:
        reason += "; no HRH with room near " + req.serves
    raise NoPlacement(f"delay-bound {bound:g} ms cannot be met: {reason}")
