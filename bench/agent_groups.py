"""Agents' memory: one process per node vs several nodes' agents in one process.

On the demo testbed (3 nodes), alternating `--rounds` times: up with one agent
process per node, then with the three in one process (`netfate agents`,
agent/group.py); after `--settle` seconds (fork servers up, reports sent) the
resident memory of the agent processes and of their whole process trees (each
agent's fork server and `ovsdb-client` watch) is summed. The ratio is the group's
memory per node over the per-process mode's, same run.

Run: `netfate bench agent_groups --json [--rounds 2] [--settle 15]`. Needs root and
Open vSwitch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import _common as common  # bench/ is on the path: as a script, or netfate.benchcli.load

from netfate.testbed.builder import Testbed

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.yaml"


def _tree(pid: int, kids: dict[int, list[int]]) -> list[int]:
    out = [pid]
    for c in kids.get(pid, []):
        out += _tree(c, kids)
    return out


def measure(per_process: int, settle_s: float) -> dict[str, Any]:
    tb = Testbed.up(DEMO, agents_per_process=per_process, prometheus=False)
    try:
        time.sleep(settle_s)
        kids = common.children()
        agents = [r for r in tb.state.process_refs() if r.role.startswith("agent")]
        own = sum(common.rss_kb(r.pid) for r in agents)
        total = sum(common.rss_kb(p) for r in agents for p in _tree(r.pid, kids))
        nodes = len(tb.topology.nodes)
        return {
            "per_process": per_process,
            "processes": len(agents),
            "nodes": nodes,
            "agent_rss_mb": round(own / 1024, 1),
            "with_children_mb": round(total / 1024, 1),
            "per_node_mb": round(total / 1024 / nodes, 1),
        }
    finally:
        tb.down()


def run(argv: list[str]) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="netfate bench agent_groups")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--settle", type=float, default=15.0)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench agent_groups needs root (namespaces, Open vSwitch)")
    samples = []
    for _ in range(args.rounds):
        for per in (1, 3):
            samples.append(measure(per, args.settle))
    single = [s["per_node_mb"] for s in samples if s["per_process"] == 1]
    group = [s["per_node_mb"] for s in samples if s["per_process"] == 3]
    return {
        "benchmark": "agent_groups",
        "samples": samples,
        "per_node_mb": {"one_per_process": single, "three_in_one": group},
        "ratio_group_vs_per_process": [round(g / s, 3) for g, s in zip(group, single, strict=True)],
        "loadavg": os.getloadavg(),
    }


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:]), indent=2, sort_keys=True))
