"""Placement optimiser figures, on synthetic edge networks (no processes, no I/O).

1. batch: N subscriptions on M nodes by the heuristic (goal: 10,000 on 100 in
   < 2 s), against the platform's first-fit `least-loaded` policy applied one
   block at a time (same subscriptions, same run). The heuristic's plan is held
   to the independent checker; the baseline's SLA and capacity violations are
   counted the same way (it ignores SLAs, links and storage).
2. gap: small instances (seeded) solved by the exact solver (HiGHS) and the
   heuristic, under consolidation and under a mix: the heuristic's energy and
   objective gap to the optimum (distribution over the seeds), SLA violations
   of both, and the least-loaded baseline's energy gap and violations.
3. replace: one user moves to another CPE; re-placing their chain in the
   10,000-subscription plan (goal < 10 ms), against placing that chain with
   `least-loaded` and against re-running the whole batch.
4. big: 100,000 subscriptions on 1,000 nodes, in a child process that reports
   its time and peak RSS, against a child that only builds the same inputs.

    python bench/placement.py [--subs 10000] [--nodes 100] [--seeds 10]
        [--small-subs 24] [--small-nodes 10] [--moves 200] [--big-subs 100000]
        [--big-nodes 1000] [--case batch,gap,replace,big] [--time-limit 60]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import _common as c  # bench/ is on the path: as a script, or netfate.benchcli.load
import networkx as nx

from netfate.orchestrator.engine import (
    CONSOLIDATION,
    Block,
    Candidate,
    Chain,
    Infrastructure,
    Link,
    Network,
    Node,
    NodeKind,
    NoPlacement,
    PlacementRequest,
    Plan,
    Sla,
    Subscription,
    Talk,
    Usage,
    check,
    mix,
    place,
    place_batch,
    replace,
)
from netfate.orchestrator.engine.check import energy_w

KINDS = (
    NodeKind("pop", idle_w=200.0, w_per_cpu=3.0, availability=0.9999),
    NodeKind("pe", idle_w=80.0, w_per_cpu=4.0, availability=0.999),
    NodeKind("cpe", idle_w=12.0, w_per_cpu=6.0, availability=0.99),
)
BASE = {"pop": (64.0, 262144.0, 4e6), "pe": (16.0, 65536.0, 1e6), "cpe": (4.0, 8192.0, 64000.0)}

CATALOG: tuple[tuple[float, Chain], ...] = (
    (
        0.35,
        Chain("firewall", (Block("fw", 0.1, 64, 50),), user_mbps=5, sla=Sla(rtt_ms=10)),
    ),
    (
        0.30,
        Chain(
            "vhg",
            (Block("nat", 0.1, 64, 20), Block("dhcp", 0.05, 32, 10), Block("fw", 0.1, 64, 50)),
            (Talk("nat", "dhcp", 0.1), Talk("nat", "fw", 5)),
            user_mbps=5,
            sla=Sla(rtt_ms=6, availability=0.98),
        ),
    ),
    (
        0.25,
        Chain(
            "sensor-archive",
            (Block("vo", 0.2, 256, 100), Block("archive", 0.3, 512, 4096)),
            (Talk("vo", "archive", 2),),
            user_mbps=1,
            sla=Sla(rtt_ms=20, availability=0.985),
        ),
    ),
    (
        0.10,
        Chain("streamer", (Block("transcode", 1.0, 1024, 200),), user_mbps=20),
    ),
)
MEAN_CPU = sum(w * ch.total.cpu for w, ch in CATALOG) / sum(w for w, _ in CATALOG)


def shape(n_nodes: int) -> tuple[int, int, int]:
    """(PoPs, PEs, CPEs) of an n-node network: one PoP per 50 nodes, one PE per 10."""
    pops = max(1, n_nodes // 50)
    pes = max(1, n_nodes // 10)
    return pops, pes, max(1, n_nodes - pops - pes)


def synthetic(
    n_nodes: int, n_subs: int, seed: int, utilisation: float = 0.5
) -> tuple[Infrastructure, list[Subscription]]:
    """A tree edge network (PoPs in a line, PEs under PoPs, CPEs under PEs), capacities
    scaled so the subscriptions' CPU is `utilisation` of the total, background loads up
    to 15% of each node, users attached to CPEs at random."""
    rng = random.Random(seed)
    pops, pes, cpes = shape(n_nodes)
    base_cpu = pops * BASE["pop"][0] + pes * BASE["pe"][0] + cpes * BASE["cpe"][0]
    scale = n_subs * MEAN_CPU / (utilisation * base_cpu)
    per_cpe = max(1.0, n_subs / cpes)
    nodes: list[Node] = []
    links: list[Link] = []

    def node(name: str, kind: str) -> None:
        cpu, mem, sto = (v * scale for v in BASE[kind])
        bg = rng.uniform(0.0, 0.15)
        nodes.append(
            Node(name, kind, cpu, mem, sto, Usage(cpu * bg, mem * bg, 0.0), pinned=kind == "pop")
        )

    for i in range(pops):
        node(f"pop{i}", "pop")
        if i:
            links.append(Link(f"pop{i - 1}", f"pop{i}", 400 * per_cpe * 10, 5.0))
    for j in range(pes):
        node(f"pe{j}", "pe")
        links.append(Link(f"pop{j % pops}", f"pe{j}", 100 * per_cpe * 10, rng.uniform(2.0, 4.0)))
    for k in range(cpes):
        node(f"cpe{k}", "cpe")
        links.append(Link(f"pe{k % pes}", f"cpe{k}", 20 * per_cpe, rng.uniform(1.0, 3.0)))
    weights = [w for w, _ in CATALOG]
    chains = [ch for _, ch in CATALOG]
    subs = [
        Subscription(f"s{i}", f"u{i}", f"cpe{rng.randrange(cpes)}", rng.choices(chains, weights)[0])
        for i in range(n_subs)
    ]
    return Infrastructure(KINDS, tuple(nodes), tuple(links)), subs


# --------------------------------------------------------------------------- baseline


def least_loaded(infra: Infrastructure, subs: Sequence[Subscription]) -> dict[str, Any]:
    """The platform's `least-loaded` policy, one block at a time, in subscription order."""
    graph: nx.Graph[str] = nx.Graph()
    for ln in infra.links:
        graph.add_edge(ln.a, ln.b, delay_s=ln.delay_ms / 1000)
    cands = {
        n.name: Candidate(
            n.name, n.kind, n.up, n.cpu - n.load.cpu, int(n.memory_mb - n.load.memory_mb)
        )
        for n in infra.nodes
    }
    where: dict[str, dict[str, str]] = {}
    refused = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for s in subs:
        placed: dict[str, str] = {}
        for b in s.chain.blocks:
            try:
                p = place(
                    PlacementRequest(b.cpu, int(b.memory_mb), serves=s.at),
                    list(cands.values()),
                    graph,
                    "least-loaded",
                )
            except NoPlacement:
                refused += 1
                break
            old = cands[p.node]
            cands[p.node] = Candidate(
                old.node,
                old.kind,
                old.up,
                old.free_cpu - b.cpu,
                old.free_memory_mb - int(b.memory_mb),
            )
            placed[b.name] = p.node
        else:
            where[s.id] = placed
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"where": where, "seconds": seconds, "cpu_s": cpu, "refused": refused}


def _baseline_figures(
    infra: Infrastructure, subs: Sequence[Subscription], ll: dict[str, Any]
) -> dict[str, Any]:
    where = ll["where"]
    placed = [s for s in subs if s.id in where]
    violations = check(infra, placed, where)
    on = {n for w in where.values() for n in w.values()} | {n.name for n in infra.nodes if n.pinned}
    return {
        "seconds": round(ll["seconds"], 3),
        "cpu_s": round(ll["cpu_s"], 3),
        "refused": ll["refused"],
        "energy_w": round(energy_w(infra, placed, where, on), 1),
        "active_nodes": len({n for w in where.values() for n in w.values()}),
        "violations": _count(violations),
    }


def _count(violations: Sequence[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in violations:
        out[v.constraint] = out.get(v.constraint, 0) + 1
    return out


# --------------------------------------------------------------------------- cases


def case_batch(n_nodes: int, n_subs: int, seed: int) -> tuple[dict[str, Any], Network, Plan]:
    infra, subs = synthetic(n_nodes, n_subs, seed)
    Network(synthetic(10, 1, 0)[0])  # scipy's import is not the compile's cost
    t0 = time.perf_counter()
    net = Network(infra)
    t_net = time.perf_counter() - t0
    base = _baseline_figures(infra, subs, least_loaded(infra, subs))
    out: dict[str, Any] = {
        "subscriptions": n_subs,
        "nodes": n_nodes,
        "network_compile_s": round(t_net, 3),
        "least_loaded": base,
        "goal_s": 2.0,
    }
    plan: Plan | None = None
    for label, objective in (("consolidation", CONSOLIDATION), ("mix", mix(1.0, 2.0))):
        t0, c0 = time.perf_counter(), time.process_time()
        got = place_batch(net, subs, objective)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        violations = check(infra, subs, got.where, got.powered)
        out[label] = {
            "seconds": round(seconds, 3),
            "cpu_s": round(cpu, 3),
            "energy_w": round(got.energy_w, 1),
            "rtt_sum_ms": round(got.rtt_sum_ms, 1),
            "active_nodes": got.active_nodes,
            "powered": len(got.powered),
            "split_chains": sum(1 for w in got.where.values() if len(set(w.values())) > 1),
            "violations": _count(violations),
            "decisions": len(got.decisions),
            "time_ratio": c.ratio(seconds, base["seconds"]),
            "cpu_ratio": c.ratio(cpu, base["cpu_s"]),
            "energy_ratio": c.ratio(got.energy_w, base["energy_w"]),
        }
        plan = plan or got
    assert plan is not None
    return out, net, plan


def case_gap(n_nodes: int, n_subs: int, seeds: int, time_limit: float) -> dict[str, Any]:
    out: dict[str, Any] = {"nodes": n_nodes, "subscriptions": n_subs, "seeds": seeds}
    for label, obj in (("consolidation", CONSOLIDATION), ("mix", mix(1.0, 2.0))):
        energy_gaps: list[float] = []
        value_gaps: list[float] = []
        base_gaps: list[float] = []
        statuses: dict[str, int] = {}
        viol = {"heuristic": 0, "exact": 0, "least_loaded": 0}
        t_h: list[float] = []
        t_e: list[float] = []
        infeasible = 0
        for seed in range(seeds):
            infra, subs = synthetic(n_nodes, n_subs, 1000 + seed, utilisation=0.6)
            net = Network(infra)
            try:
                ex = place_batch(net, subs, obj, solver="exact", time_limit_s=time_limit)
            except Exception:  # an infeasible draw: counted, not compared
                infeasible += 1
                continue
            h = place_batch(net, subs, obj)
            t_h.append(h.stats.seconds)
            t_e.append(ex.stats.seconds)
            statuses[ex.stats.status] = statuses.get(ex.stats.status, 0) + 1
            # Against the proven bound when the solver stopped at its time limit.
            best = ex.value if ex.stats.status == "optimal" else (ex.stats.bound or ex.value)
            value_gaps.append(100 * (h.value - best) / best if best else 0.0)
            energy_gaps.append(100 * (h.energy_w - ex.energy_w) / ex.energy_w)
            viol["heuristic"] += len(check(infra, subs, h.where, h.powered))
            viol["exact"] += len(check(infra, subs, ex.where, ex.powered))
            ll = _baseline_figures(infra, subs, least_loaded(infra, subs))
            viol["least_loaded"] += sum(ll["violations"].values()) + ll["refused"]
            base_gaps.append(100 * (ll["energy_w"] - ex.energy_w) / ex.energy_w)
        out[label] = {
            "objective_gap_pct": c.summary(value_gaps, 2),
            "energy_gap_pct": c.summary(energy_gaps, 2),
            "least_loaded_energy_gap_pct": c.summary(base_gaps, 2),
            "within_5pct": sum(1 for g in value_gaps if g <= 5.0),
            "exact_status": statuses,
            "infeasible_draws": infeasible,
            "sla_and_capacity_violations": viol,
            "heuristic_s": c.summary(t_h, 4),
            "exact_s": c.summary(t_e, 3),
        }
    return out


def case_replace(net: Network, plan: Plan, moves: int, seed: int, batch_s: float) -> dict[str, Any]:
    rng = random.Random(seed)
    cpes = [n for n in net.names if n.startswith("cpe")]
    ids = sorted(plan.where)
    times: list[float] = []
    cpu: list[float] = []
    base: list[float] = []
    kept = moved = 0
    graph: nx.Graph[str] = nx.Graph()
    for ln in net.infra.links:
        graph.add_edge(ln.a, ln.b, delay_s=ln.delay_ms / 1000)
    use = plan.usage()
    cands = [
        Candidate(
            n.name,
            n.kind,
            n.up,
            n.cpu - n.load.cpu - use.get(n.name, Usage()).cpu,
            int(n.memory_mb - n.load.memory_mb - use.get(n.name, Usage()).memory_mb),
        )
        for n in net.infra.nodes
    ]
    violations = 0
    for _ in range(moves):
        sub = plan.subscriptions[rng.choice(ids)]
        to = rng.choice([x for x in cpes if x != sub.at])
        new = Subscription(sub.id, sub.user, to, sub.chain)
        t0, c0 = time.perf_counter(), time.process_time()
        after = replace(plan, new)
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        t0 = time.perf_counter()
        for b in new.chain.blocks:
            place(
                PlacementRequest(b.cpu, int(b.memory_mb), serves=to), cands, graph, "least-loaded"
            )
        base.append((time.perf_counter() - t0) * 1000)
        d = after.decisions[sub.id]
        kept += d.action == "kept"
        moved += d.action == "moved"
        if len(times) <= 5:  # the full check of a 10,000-chain plan is slow: a sample
            subs = [after.subscriptions[s] for s in after.where]
            violations += len(check(net.infra, subs, after.where, after.powered))
    med = c.percentile(times, 50)
    return {
        "moves": moves,
        "replace_ms": c.summary(times, 3),
        "replace_cpu_ms": c.summary(cpu, 3),
        "least_loaded_one_chain_ms": c.summary(base, 3),
        "ratio_vs_least_loaded": c.ratio(med, c.percentile(base, 50)),
        "ratio_vs_full_batch": c.ratio(med / 1000, batch_s),
        "kept": kept,
        "moved": moved,
        "violations_in_5_checked": violations,
        "goal_ms": 10.0,
    }


def _child(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def child_big(n_nodes: int, n_subs: int, place_too: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    infra, subs = synthetic(n_nodes, n_subs, 7)
    net = Network(infra)
    built = time.perf_counter() - t0
    out: dict[str, Any] = {"build_s": round(built, 3)}
    if place_too:
        t0, c0 = time.perf_counter(), time.process_time()
        plan = place_batch(net, subs, CONSOLIDATION)
        out["place_s"] = round(time.perf_counter() - t0, 3)
        out["place_cpu_s"] = round(time.process_time() - c0, 3)
        out["energy_w"] = round(plan.energy_w, 1)
        out["active_nodes"] = plan.active_nodes
        out["decisions"] = len(plan.decisions)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def case_big(n_nodes: int, n_subs: int) -> dict[str, Any]:
    common = ["--child-big", "--big-nodes", str(n_nodes), "--big-subs", str(n_subs)]
    inputs = _child([*common, "--inputs-only"])
    full = _child(common)
    return {
        "subscriptions": n_subs,
        "nodes": n_nodes,
        "place_s": full["place_s"],
        "place_cpu_s": full["place_cpu_s"],
        "peak_rss_mb": full["peak_rss_mb"],
        "inputs_only_peak_rss_mb": inputs["peak_rss_mb"],
        "placing_adds_mb": round(full["peak_rss_mb"] - inputs["peak_rss_mb"], 1),
        "rss_ratio": c.ratio(full["peak_rss_mb"], inputs["peak_rss_mb"]),
        "build_s": full["build_s"],
        "energy_w": full["energy_w"],
        "active_nodes": full["active_nodes"],
    }


def run(argv: list[str]) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="bench/placement.py")
    ap.add_argument("--subs", type=int, default=10000)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--small-subs", type=int, default=24)
    ap.add_argument("--small-nodes", type=int, default=10)
    ap.add_argument("--moves", type=int, default=200)
    ap.add_argument("--big-subs", type=int, default=100000)
    ap.add_argument("--big-nodes", type=int, default=1000)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--case", default="batch,gap,replace,big")
    ap.add_argument("--child-big", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--inputs-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_big:
        return child_big(args.big_nodes, args.big_subs, not args.inputs_only)
    cases = set(args.case.split(","))
    # The machine is shared: its load says how far absolute times can be trusted.
    out: dict[str, Any] = {"load_average_1m": round(os.getloadavg()[0], 2)}
    if cases & {"batch", "replace"}:
        batch, net, plan = case_batch(args.nodes, args.subs, 1)
        out["batch"] = batch
        if "replace" in cases:
            out["replace"] = case_replace(
                net, plan, args.moves, 2, batch["consolidation"]["seconds"]
            )
    if "gap" in cases:
        out["gap"] = case_gap(args.small_nodes, args.small_subs, args.seeds, args.time_limit)
    if "big" in cases:
        out["big"] = case_big(args.big_nodes, args.big_subs)
    return out


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:]), indent=2, sort_keys=True))
