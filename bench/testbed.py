"""Testbed benchmark: time and peak memory to bring up and tear down N-node networks.

For each size N (default 10, 50, 100) it builds `generate_tree(N)` (a tree of
PEs with 9 CPEs each, one host per CPE, 100 Mbit/s access links) with
`Testbed.up(..., control=False)`, checks that the first host reaches the
last one (correctness, not timed), and takes it down again.

Measured:
- `up_s`, `down_s`: wall time of `Testbed.up` / `Testbed.down` (network part:
  namespaces, veths, addresses and routes, tc, OVS daemons and bridges, the
  link emulator when --delay is given). With --control the orchestrator and
  one agent per node are included and the result says so.
- `peak_rss_mb`: the largest sum of resident memory of our processes, sampled
  every 20 ms during up and down: this Python process (the builder), the
  run's ovsdb-server, ovs-vswitchd, link emulator (and control processes).
  `peak_rss_by_role_mb` gives each process's own high-water mark (VmHWM).
- baseline, same sizes, same run: the same number of namespaces and veth
  pairs made and removed with bare `ip netns add` / `ip link add ... netns`
  / `ip netns del` commands (one process each, no addresses, no OVS). The
  ratio `up_vs_baseline` is our up time over the baseline's build time.

Also (skip with --no-throughput): TCP throughput (iperf3, 3 s) between two
hosts across one unshaped link with 1 ms delay through the userspace link
emulator (or netem), against the same topology without delay (a plain veth
between the bridges), as the median of 3 alternating pairs in the same run.

Agents at scale (`--control --agents-per-process K`, 0: the testbed's default):
the agents of K nodes share one process (`netfate agents`, agent/group.py). With
`--check-agents` each size also checks that the orchestrator lists every node up
(`nodes_up`) and that a pinned create of the counter on three nodes (first, middle,
last) runs there (`pinned_creates`), and reports memory per node: `peak_rss_mb`
(whole process trees now: agents' fork servers and ovsdb-client watches included),
`peak_rss_mb_per_node`, and each kind's share (`peak_rss_by_kind_mb`: orchestrator,
agents, ovs, other, summed at the sample where the total peaked). With
`--per-process-baseline N` the same is measured at N nodes with one agent process
per node, in the same run, and `mb_per_node_vs_per_process` is the ratio.

Run: `netfate bench testbed --json [--sizes 10,50,100] [--delay 1ms] [--control]
[--agents-per-process 50 --check-agents --per-process-baseline 100]`
or `python bench/testbed.py`. Needs root and Open vSwitch.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from typing import Any

import _common as common  # bench/ is on the path: as a script, or netfate.benchcli.load

from netfate.host import netns as _netns
from netfate.model.topology import Topology, generate_tree
from netfate.testbed.builder import Testbed
from netfate.testbed.state import RunState, run_root

GOAL_100_NODES_UP_S = 60.0


def _kind(role: str) -> str:
    if role.startswith("agent"):
        return "agents"
    if role.startswith("ovs"):
        return "ovs"
    return role if role in ("orchestrator", "builder") else "other"


class _Sampler:
    """Sums the RSS of this process and of the run's recorded processes (with
    `trees`, of their descendants too: fork servers, watches, instances)."""

    def __init__(self, prefix: str, *, trees: bool = False) -> None:
        self.prefix = prefix
        self.trees = trees
        self.every_s = 0.25 if trees else 0.02  # a /proc walk costs more
        self.peak_kb = 0
        self.peak_by_kind_kb: dict[str, int] = {}
        self.processes_at_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _pids(self) -> list[tuple[int, str]]:
        pids = [(os.getpid(), "builder")]
        try:
            doc = json.loads((run_root() / self.prefix / "state.json").read_text())
            pids += [(int(p["pid"]), str(p.get("role", ""))) for p in doc.get("processes", [])]
        except (OSError, ValueError):
            pass
        if not self.trees:
            return pids
        kids = common.children()
        out, seen = [], set()
        todo = list(pids)
        while todo:
            pid, role = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            out.append((pid, role))
            todo += [(k, role) for k in kids.get(pid, [])]
        return out

    def _loop(self) -> None:
        while not self._stop.is_set():
            by_kind: dict[str, int] = {}
            pids = self._pids()
            for pid, role in pids:
                kind = _kind(role)
                by_kind[kind] = by_kind.get(kind, 0) + common.rss_kb(pid)
            total = sum(by_kind.values())
            if total > self.peak_kb:
                self.peak_kb, self.peak_by_kind_kb = total, by_kind
                self.processes_at_peak = len(pids)
            self._stop.wait(self.every_s)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _counts(topo: Topology) -> tuple[int, int]:
    """Namespaces and veth pairs the testbed makes for `topo` (without the emulator's)."""
    namespaces = 1 + len(topo.nodes) + len(topo.hosts)
    veths = len(topo.nodes) + len(topo.hosts) + len(topo.links)
    return namespaces, veths


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def baseline(namespaces: int, veths: int) -> dict[str, float]:
    """Bare iproute2: `ip netns add` each namespace, one veth pair per link, then delete."""
    prefix = "nb" + secrets.token_hex(2)
    names = [f"{prefix}-{i}" for i in range(namespaces)]
    t0 = time.monotonic()
    try:
        for n in names:
            _ip("netns", "add", n)
        sw = names[0]
        for i in range(veths):
            # Like the testbed: one end in the switch namespace, the other in another one.
            other = names[1 + i % (namespaces - 1)] if namespaces > 1 else sw
            _ip(
                "link",
                "add",
                f"{prefix}v{i}",
                "netns",
                sw,
                "type",
                "veth",
                "peer",
                "name",
                f"{prefix}p{i}",
                "netns",
                other,
            )
        up_s = time.monotonic() - t0
    finally:
        t1 = time.monotonic()
        for n in names:
            subprocess.run(["ip", "netns", "del", n], capture_output=True, check=False)
        down_s = time.monotonic() - t1
    leftover = _netns.list_with_prefix(prefix + "-")
    if leftover:
        raise RuntimeError(f"baseline left namespaces: {leftover[:3]}")
    return {"up_s": round(up_s, 3), "down_s": round(down_s, 3)}


def check_agents(tb: Testbed, topo: Topology) -> dict[str, Any]:
    """Every node up at the orchestrator, and a pinned create on three nodes runs."""
    import httpx

    from netfate.demo import platform

    assert tb.api_url is not None
    api = platform.Api(tb.api_url, tb.api_token)
    status = {n["name"]: n["status"] for n in api("GET", "/nodes")}
    names = list(topo.nodes)
    pinned = [names[0], names[len(names) // 2], names[-1]]
    created: dict[str, str] = {}
    for node in pinned:
        try:
            inst = api("POST", "/instances", {"descriptor": "counter", "node": node})
            inst = api.wait_state(inst["id"], "running", timeout=120.0)
            created[node] = "running" if inst["node"] == node else f"on {inst['node']}"
            api("DELETE", f"/instances/{inst['id']}")
            api.wait_state(inst["id"], "gone", timeout=120.0)
        except (platform.DemoFailed, httpx.HTTPError, KeyError) as e:
            created[node] = f"failed: {e}"[:300]
    return {
        "nodes_listed": len(status),
        "nodes_up": sum(1 for v in status.values() if v == "up"),
        "pinned_creates": created,
        "all_ok": len(status) == len(names)
        and all(v == "up" for v in status.values())
        and all(v == "running" for v in created.values()),
    }


def measure(
    n: int,
    *,
    delay: str | None,
    control: bool,
    agents_per_process: int | None = None,
    check: bool = False,
) -> dict[str, Any]:
    topo = generate_tree(n, access_delay=delay)
    prefix = "nb" + secrets.token_hex(2)
    by_role: dict[str, float] = {}
    agents_check = None
    with _Sampler(prefix, trees=check) as sampler:
        t0 = time.monotonic()
        tb = Testbed.up(topo, prefix=prefix, control=control,
                        agents_per_process=agents_per_process)  # fmt: skip
        up_s = time.monotonic() - t0
        try:
            if check and control:
                agents_check = check_agents(tb, topo)
            hosts = list(topo.hosts.values())
            reach = None
            if len(hosts) >= 2:
                r = tb.exec(
                    hosts[0].name,
                    ["ping", "-c", "1", "-w", "30", str(hosts[-1].ip)],
                    check=False,
                    timeout=60,
                )
                reach = r.returncode == 0
            st = RunState.load(prefix)
            for p in st.processes:
                by_role[str(p["role"])] = round(common.rss_kb(int(p["pid"]), "VmHWM") / 1024, 1)
            agent_processes = sum(1 for p in st.processes if str(p["role"]).startswith("agent"))
            timings = dict(st.timings)
            emulator = st.emulator
        finally:
            t1 = time.monotonic()
            problems = tb.down()
            down_s = time.monotonic() - t1
    namespaces, veths = _counts(topo)
    return {
        "nodes": len(topo.nodes),
        "hosts": len(topo.hosts),
        "links": len(topo.links),
        "namespaces": namespaces,
        "veth_pairs": veths,
        "emulator": emulator,
        "up_s": round(up_s, 3),
        "down_s": round(down_s, 3),
        "steps_s": timings,
        "peak_rss_mb": round(sampler.peak_kb / 1024, 1),
        "peak_rss_mb_per_node": round(sampler.peak_kb / 1024 / len(topo.nodes), 2),
        "peak_rss_by_kind_mb": {k: round(v / 1024, 1) for k, v in sampler.peak_by_kind_kb.items()},
        "processes_at_peak": sampler.processes_at_peak,
        "process_trees_sampled": sampler.trees,
        "agent_processes": agent_processes,
        "agents_check": agents_check,
        "peak_rss_by_role_mb": by_role if len(by_role) <= 40 else "left out: over 40 processes",
        "first_host_reaches_last": reach,
        "teardown_problems": problems,
    }


PAIR = """
nodes:
  cpe1: {kind: cpe, lan: 192.168.1.0/24}
  cpe2: {kind: cpe, lan: 192.168.2.0/24}
hosts:
  h1: {node: cpe1}
  h2: {node: cpe2}
links:
  - {a: cpe1, b: cpe2%s}
"""


def _iperf(tb: Testbed, seconds: int = 3) -> float:
    """TCP goodput h1 -> h2; (re)starts the one-shot server until a run completes."""
    server: subprocess.Popen[bytes] | None = None
    try:
        for _ in range(100):
            if server is None or server.poll() is not None:
                server = _netns.popen_in(
                    tb.netns_of("h2"),
                    ["iperf3", "-s", "-1", "-B", "192.168.2.2"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            r = tb.exec(
                "h1",
                ["iperf3", "-c", "192.168.2.2", "-t", str(seconds), "-J"],
                check=False,
                timeout=seconds + 30,
            )
            try:
                return float(json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"])
            except (ValueError, KeyError):
                time.sleep(0.05)
        raise RuntimeError("iperf3 never completed a run")
    finally:
        if server is not None:
            server.kill()
            server.wait()


def throughput(pairs: int = 3) -> dict[str, Any]:
    emulated: list[float] = []
    plain: list[float] = []
    lateness: list[Any] = []
    kind = "none"
    for _ in range(pairs):
        for delay, sink in ((", delay: 1ms", emulated), ("", plain)):
            topo = Topology.from_yaml(PAIR % delay)
            with Testbed.up(topo, prefix="nb" + secrets.token_hex(2), control=False) as tb:
                if delay:
                    kind = tb.emulator
                sink.append(_iperf(tb))
                stats = tb.state.dir / "linkemu.json"
                if delay and kind == "userspace":
                    time.sleep(1.2)  # the driver rewrites its stats every second
                    lateness.append(json.loads(stats.read_text()).get("lateness"))
    med_e, med_p = sorted(emulated)[len(emulated) // 2], sorted(plain)[len(plain) // 2]
    return {
        "emulator": kind,
        "emulated_1ms_link_mbit_s": round(med_e / 1e6, 1),
        "plain_link_mbit_s": round(med_p / 1e6, 1),
        "ratio": round(med_e / med_p, 2) if med_p else None,
        "pairs": pairs,
        "userspace_lateness_under_load": lateness,
        "samples_mbit_s": {
            "emulated": [round(x / 1e6) for x in emulated],
            "plain": [round(x / 1e6) for x in plain],
        },
    }


def _attempt(n: int, **how: Any) -> dict[str, Any]:
    """`measure`, or where it failed and how long it took (the build rolled back)."""
    t0 = time.monotonic()
    try:
        return measure(n, **how)
    except Exception as e:  # a size that does not come up is a figure too
        return {"nodes": n, "error": f"{type(e).__name__}: {e}"[:2000],
                "failed_after_s": round(time.monotonic() - t0, 1), **how}  # fmt: skip


def run(argv: list[str]) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="netfate bench testbed", description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10,50,100", help="comma-separated node counts")
    ap.add_argument("--delay", default=None, help="access-link delay, e.g. 1ms (linkemu/netem)")
    ap.add_argument("--control", action="store_true", help="include orchestrator and agents")
    ap.add_argument("--no-throughput", action="store_true", help="skip the link emulator figure")
    ap.add_argument(
        "--agents-per-process",
        type=int,
        default=None,
        help="nodes per agent process (0: the testbed's default for the size)",
    )
    ap.add_argument(
        "--check-agents",
        action="store_true",
        help="check every node up and pinned creates; whole process trees' RSS",
    )
    ap.add_argument(
        "--per-process-baseline",
        type=int,
        default=None,
        metavar="N",
        help="also measure N nodes with one agent process per node (a ratio)",
    )
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench testbed needs root (namespaces, Open vSwitch)")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results: dict[str, Any] = {}
    per_process = None
    if args.per_process_baseline:
        per_process = _attempt(args.per_process_baseline, delay=args.delay, control=True,
                               agents_per_process=1, check=args.check_agents)  # fmt: skip
    for n in sizes:
        ours = _attempt(n, delay=args.delay, control=args.control,
                        agents_per_process=args.agents_per_process or None,
                        check=args.check_agents)  # fmt: skip
        results[str(n)] = ours
        if "error" in ours:
            continue
        if per_process is not None and per_process.get("peak_rss_mb_per_node"):
            ours["mb_per_node_vs_per_process"] = round(
                ours["peak_rss_mb_per_node"] / per_process["peak_rss_mb_per_node"], 3
            )
        base = baseline(ours["namespaces"], ours["veth_pairs"])
        ours["baseline_ip_commands"] = base
        ours["up_vs_baseline"] = round(ours["up_s"] / base["up_s"], 2) if base["up_s"] else None
        ours["down_vs_baseline"] = (
            round(ours["down_s"] / base["down_s"], 2) if base["down_s"] else None
        )
        results[str(n)] = ours
    largest = results.get("100")
    link = None if args.no_throughput else throughput()
    return {
        "link_throughput": link,
        "benchmark": "testbed",
        "cpus": os.cpu_count(),
        "control_included": args.control,
        "agents_per_process": args.agents_per_process,
        "per_process_baseline": per_process,
        "access_delay": args.delay,
        "sizes": results,
        "goal": {
            "100_nodes_up_under_s": GOAL_100_NODES_UP_S,
            "met": (largest["up_s"] < GOAL_100_NODES_UP_S)
            if largest and "up_s" in largest
            else None,
        },
        "baseline": "bare `ip netns add` + `ip link add type veth` (one process each), same "
        "namespace and veth counts, no addresses, routes, tc or OVS",
    }


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:]), indent=2, sort_keys=True))
