"""Churn benchmark (root): many create -> migrate -> destroy cycles on a real testbed,
and what the platform keeps afterwards.

1. A testbed with control and its own SDN controller (`Testbed.up(..., sdn=True)`,
   examples/demo.yaml by default: two CPEs, a PE, the orchestrator, one agent per
   node and the controller) comes up. The orchestrator's history bounds are set
   small (`--keep-gone`, `--keep-events`, `--prune-every`, through its options'
   environment variables) so that a run reaches them.
2. One cycle: a `counter` instance is created on one node of the pair (serving a
   host, so placement and the LAN allocation take the usual path), migrated to the
   other node, and destroyed; each step is waited for through the REST API. The
   pair's direction alternates from cycle to cycle, so both nodes create, receive
   and destroy alike.
3. Snapshots of what exists: before any cycle (`initial`), after the warm-up
   cycles (`start`: the processes' caches, pools, malloc arenas and lazily imported
   modules are in place by then), and at the end (`end`, after a prune of the
   history); `--sample-every` adds RSS, fd and row-count samples in between, for a
   per-cycle slope. A snapshot is taken once the controller holds the current
   flows on every switch and the platform has been idle for `--settle` seconds.
   - RSS (VmRSS), open file descriptors and their kinds of the orchestrator, each
     agent, each agent's fork server (zygote) and OVSDB monitor, the controller;
   - processes below the agents (instance processes: none should outlive a cycle);
   - the run's network namespaces beyond the testbed's own, the ports and the
     permanent OpenFlow flows of each bridge (flows with a timeout expire by
     themselves and are only counted), the nftables tables of every namespace of
     the run, the run's cgroups, the files in each agent's state directory (the
     logs of gone instances apart: an agent keeps the newest KEEP_LOGS);
   - the database: its pages in use, file and WAL sizes, each table's rows.
4. Figures: growth of RSS and fds from `start` to `end` per process (the goal:
   RSS under +10 %, fds not growing), what is left over at `end` compared with
   `initial` (the goal: nothing), rows added per cycle per table and whether the
   history stayed within its bounds, and the cycle time of the first tenth of
   the measured cycles against the last tenth (the baseline of the same run: a
   ratio near 1 says nothing slows down as cycles accumulate).

The run stops by itself after `--cycles` measured cycles or when `--time-limit`
seconds have passed since the first cycle, whichever comes first, and says how
many cycles it did. Everything started here goes with `Testbed.down()`, also on
Ctrl-C or SIGTERM.

    netfate bench churn --json [--quick] [--cycles 1000] [--warmup 100]
        [--time-limit 3600] [--topology examples/demo.yaml] [--pair cpe1,cpe2]
        [--serves laptop1] [--sample-every 100] [--settle 3] [--no-sdn]
        [--keep-gone 100] [--keep-events 2000] [--prune-every 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common as c  # bench/ is on the path: as a script, or netfate.benchcli.load

REPO = Path(__file__).resolve().parents[1]
RSS_GOAL = 0.10  # relative growth allowed from start to end
HANDED_OFF = "handed-off.json"  # netfate.agent.agent
EVENTS_SLACK = 100  # events the platform may record between a prune and the snapshot


# --------------------------------------------------------------------------- arguments


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="netfate bench churn", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small run for the test suite")
    p.add_argument("--cycles", type=int, default=None, help="measured cycles (1000)")
    p.add_argument("--warmup", type=int, default=None, help="cycles before `start` (100)")
    p.add_argument("--time-limit", type=float, default=None, help="seconds for all cycles (3600)")
    p.add_argument("--topology", default=str(REPO / "examples" / "demo.yaml"))
    p.add_argument("--pair", default="cpe1,cpe2", help="the two nodes a cycle uses")
    p.add_argument("--serves", default="laptop1", help="host the instances serve ('' none)")
    p.add_argument("--descriptor", default="counter")
    p.add_argument("--sample-every", type=int, default=None, help="cycles between samples")
    p.add_argument("--settle", type=float, default=3.0, help="idle seconds before a snapshot")
    p.add_argument("--poll", type=float, default=0.02, help="API poll interval (s)")
    p.add_argument("--max-failures", type=int, default=20, help="stop after this many")
    p.add_argument("--no-sdn", action="store_true", help="without the SDN controller")
    p.add_argument(
        "--keep-gone", type=int, default=100, help="orchestrator: gone instances kept (100)"
    )
    p.add_argument("--keep-events", type=int, default=2000, help="orchestrator: events kept")
    p.add_argument(
        "--prune-every", type=float, default=5.0, help="orchestrator: seconds between prunes"
    )
    p.add_argument("--verbose", action="store_true", help="progress on stderr")
    a = p.parse_args(argv)
    a.cycles = a.cycles if a.cycles is not None else (20 if a.quick else 1000)
    a.warmup = a.warmup if a.warmup is not None else (5 if a.quick else 100)
    a.time_limit = a.time_limit if a.time_limit is not None else (300.0 if a.quick else 3600.0)
    if a.sample_every is None:
        a.sample_every = max(1, a.cycles // 10)
    pair = [x.strip() for x in a.pair.split(",") if x.strip()]
    if len(pair) != 2 or pair[0] == pair[1]:
        p.error("--pair needs two different nodes, e.g. cpe1,cpe2")
    a.pair = pair
    a.serves = a.serves or None
    if a.cycles < 1 or a.warmup < 0 or a.sample_every < 1 or a.max_failures < 1:
        p.error("--cycles, --sample-every and --max-failures must be >= 1, --warmup >= 0")
    if a.time_limit <= 0 or a.settle < 0:
        p.error("--time-limit must be > 0 and --settle >= 0")
    if a.keep_gone < 0 or a.keep_events < 0 or a.prune_every < 0.1:
        p.error("--keep-gone and --keep-events must be >= 0, --prune-every >= 0.1")
    return a


# --------------------------------------------------------------------------- pure analysis


def status_rss_kb(status_text: str) -> int | None:
    """VmRSS of a /proc/PID/status text, in kB (None: a kernel thread or a zombie)."""
    m = re.search(r"^VmRSS:\s+(\d+)\s+kB", status_text, re.MULTILINE)
    return int(m.group(1)) if m else None


def slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of ys over xs (None with fewer than two distinct xs)."""
    n = len(xs)
    if n != len(ys) or n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def process_growth(start: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
    """Per process role present in both: RSS and fds at start and end, the relative
    RSS growth, the fd difference and the kinds of fd whose number changed. A role
    whose pid changed is marked restarted (its figures compare two processes)."""
    out: dict[str, Any] = {}
    for role in sorted(set(start) & set(end)):
        s, e = start[role], end[role]
        rss0, rss1 = s.get("rss_kb"), e.get("rss_kb")
        growth = round((rss1 - rss0) / rss0, 4) if rss0 and rss1 is not None else None
        fds0, fds1 = s.get("fds"), e.get("fds")
        k0, k1 = s.get("fd_kinds") or {}, e.get("fd_kinds") or {}
        kinds = {k: k1.get(k, 0) - k0.get(k, 0) for k in sorted(set(k0) | set(k1))}
        out[role] = {
            "fd_kinds_changed": {k: d for k, d in kinds.items() if d},
            "fd_kinds_end": k1,
            "rss_kb_start": rss0,
            "rss_kb_end": rss1,
            "rss_growth": growth,
            "fds_start": fds0,
            "fds_end": fds1,
            "fds_growth": fds1 - fds0 if fds0 is not None and fds1 is not None else None,
            "restarted": s.get("pid") != e.get("pid"),
        }
    return out


def _extra(before: Any, after: Any) -> Any:
    """What `after` has that `before` lacks: lists by element, dicts key by key."""
    if isinstance(after, dict):
        b = before if isinstance(before, dict) else {}
        diff = {k: _extra(b.get(k), v) for k, v in after.items()}
        return {k: v for k, v in diff.items() if v}
    if isinstance(after, list):
        have = set(before or [])
        return [x for x in after if x not in have]
    return None


def leftovers(initial: dict[str, Any], end: dict[str, Any], keep_logs: int) -> dict[str, Any]:
    """Objects present at `end` that were not there before any cycle, per kind
    (namespaces, ports, permanent flows, nft tables, cgroups, instance processes,
    agent files), and agents keeping more than `keep_logs` logs of gone instances;
    the kinds with nothing left are omitted."""
    kinds = ("namespaces", "ovs_ports", "flows", "nft_tables", "cgroups", "agent_files")
    out: dict[str, Any] = {}
    for kind in kinds:
        extra = _extra(initial.get(kind), end.get(kind))
        if extra:
            out[kind] = extra
    procs = end.get("instance_processes") or []
    if procs:
        out["instance_processes"] = procs
    logs = {n: len(x) for n, x in (end.get("agent_logs") or {}).items() if len(x) > keep_logs}
    if logs:
        out["agent_logs_beyond_bound"] = logs
    return out


def row_growth(
    start: dict[str, int], end: dict[str, int], cycles: int
) -> dict[str, dict[str, float | int]]:
    """Rows added from start to end per table, and per cycle."""
    out: dict[str, dict[str, float | int]] = {}
    for table in sorted(set(start) | set(end)):
        added = end.get(table, 0) - start.get(table, 0)
        out[table] = {
            "start": start.get(table, 0),
            "end": end.get(table, 0),
            "per_cycle": round(added / cycles, 3) if cycles else 0.0,
        }
    return out


def tenth_ratio(durations: Sequence[float]) -> dict[str, Any]:
    """Median cycle time of the last tenth over the first tenth (at least 1 each)."""
    if len(durations) < 2:
        return {"first_tenth_median_ms": None, "last_tenth_median_ms": None, "ratio": None}
    k = max(1, len(durations) // 10)
    first = c.percentile(durations[:k], 50)
    last = c.percentile(durations[-k:], 50)
    return {
        "first_tenth_median_ms": round(first, 1),
        "last_tenth_median_ms": round(last, 1),
        "ratio": c.ratio(last, first),
    }


def verdict(growth: dict[str, Any], left: dict[str, Any]) -> dict[str, bool]:
    """The issue's goals: nothing left over, RSS growth under 10 % and no fd growth
    in every process (a restarted process fails both: its growth is unknown)."""
    rss_ok = all(
        g["rss_growth"] is not None and g["rss_growth"] < RSS_GOAL and not g["restarted"]
        for g in growth.values()
    )
    fds_ok = all(
        g["fds_growth"] is not None and g["fds_growth"] <= 0 and not g["restarted"]
        for g in growth.values()
    )
    return {
        "goal_nothing_left_over": not left,
        "goal_rss_growth_under_10_percent": bool(growth) and rss_ok,
        "goal_no_fd_growth": bool(growth) and fds_ok,
    }


def keep_logs() -> int:
    from netfate.agent.instances import KEEP_LOGS

    return KEEP_LOGS


def history_bounded(rows: dict[str, int], a: argparse.Namespace, hosts: int) -> bool:
    """The orchestrator's history at the end is within its bounds: gone instances
    (all of them, at the end) at most --keep-gone, events at most --keep-events
    plus EVENTS_SLACK recorded since its last prune, sightings of the `hosts` only
    (none per instance)."""
    return (
        rows.get("instances", 0) <= a.keep_gone
        and rows.get("events", 0) <= a.keep_events + EVENTS_SLACK
        and rows.get("sdn_host_sightings", 0) <= hosts
    )


# --------------------------------------------------------------------------- measuring


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def fd_kind(target: str) -> str:
    """What an fd's /proc link names, without the instance: `socket`, `pipe`,
    `anon_inode:[eventfd]`, or the path of a file (a unique name per object would
    make every snapshot differ)."""
    m = re.match(r"^(socket|pipe|net):\[\d+\]$", target)
    if m:
        return m.group(1)
    return target


def proc_figures(pid: int) -> dict[str, Any]:
    """RSS (kB), open fds and their kinds (fd_kind: how many of each) of a process."""
    status = _read(f"/proc/{pid}/status")
    kinds: dict[str, int] = {}
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        names = []
        fds: int | None = None
    else:
        fds = len(names)
    for n in names:
        with contextlib.suppress(OSError):
            k = fd_kind(os.readlink(f"/proc/{pid}/fd/{n}"))
            kinds[k] = kinds.get(k, 0) + 1
    rss = status_rss_kb(status) if status else None
    return {"pid": pid, "rss_kb": rss, "fds": fds, "fd_kinds": kinds}


def children(pid: int) -> list[int]:
    """Direct children of `pid`, from every thread's /proc children list."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        text = _read(f"/proc/{pid}/task/{tid}/children") or ""
        out += [int(x) for x in text.split()]
    return out


def descendants(pid: int) -> list[int]:
    seen: list[int] = []
    todo = children(pid)
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.append(p)
            todo += children(p)
    return seen


def timed_flow(flow: str) -> bool:
    """A flow that expires by itself (the controller's short-lived ones): not a leak."""
    return "hard_timeout=" in flow or "idle_timeout=" in flow


def is_gone_log(name: str, json_names: set[str]) -> bool:
    """An instance's log (`i-….log`) with no instance file beside it."""
    return name.startswith("i-") and name.endswith(".log") and name[:-4] + ".json" not in json_names


def helper_kind(argv: Sequence[str]) -> str | None:
    """An agent's long-lived helper child from its command line: its fork server
    (`python -m netfate.vnf.zygote`) or its OVSDB monitor (`ovsdb-client monitor`);
    None for anything else (an instance process)."""
    if "netfate.vnf.zygote" in argv:
        return "zygote"
    if argv and os.path.basename(argv[0]) == "ovsdb-client":
        return "ovsdb-monitor"
    return None


def _comm(pid: int) -> str:
    return (_read(f"/proc/{pid}/comm") or "?").strip()


class Snapshotter:
    """What the run has now (see the module docstring, point 3)."""

    def __init__(self, tb: Any, api: Any) -> None:
        self.tb, self.api = tb, api
        st = tb.state
        self.base_namespaces = set(st.namespaces)
        self.db_path = st.dir / "orchestrator.db"
        self.bridges = {n: str(v["bridge"]) for n, v in st.nodes.items()}
        self.agent_dirs = {n: st.dir / "agents" / n for n in st.nodes}

    def processes(self) -> tuple[dict[str, Any], list[str]]:
        from netfate.host import proc

        figures: dict[str, Any] = {}
        instance_procs: list[str] = []
        for ref in self.tb.state.process_refs():
            role = ref.role
            if not (role in ("orchestrator", "controller") or role.startswith("agent:")):
                continue
            if not proc.alive(ref):
                figures[role] = {"pid": ref.pid, "rss_kb": None, "fds": None, "dead": True}
                continue
            figures[role] = proc_figures(ref.pid)
            if not role.startswith("agent:"):
                continue
            node = role.split(":", 1)[1]
            for child in children(ref.pid):
                kind = helper_kind((_read(f"/proc/{child}/cmdline") or "").split("\0"))
                if kind is not None:  # the agent's own helpers: measured like it
                    figures[f"{kind}:{node}"] = proc_figures(child)
                    if kind != "zygote":
                        continue
                    below = descendants(child)  # forked instances
                else:  # an instance the agent spawned itself (no zygote)
                    below = [child, *descendants(child)]
                instance_procs += [f"{node}: {p} {_comm(p)}" for p in below]
        return figures, sorted(instance_procs)

    def namespaces(self) -> list[str]:
        from netfate.host import netns

        return [
            n for n in netns.list_with_prefix(self.tb.prefix + "-") if n not in self.base_namespaces
        ]

    def ovs(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        from netfate.host.ovs import Vsctl

        st = self.tb.state
        vs = Vsctl(str(st.ovs_db), timeout=20)
        ports: dict[str, list[str]] = {}
        flows: dict[str, list[str]] = {}
        for node, br in self.bridges.items():
            ports[node] = sorted(vs.run([["list-ports", br]]).split())
            out = subprocess.run(
                [
                    "ovs-ofctl",
                    "-O",
                    "OpenFlow13",
                    "dump-flows",
                    f"{st.ovs_rundir}/{br}.mgmt",
                    "--no-stats",
                ],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
            flows[node] = sorted(ln.strip() for ln in out.stdout.splitlines() if "actions=" in ln)
        return ports, flows

    def nft_tables(self) -> dict[str, list[str]]:
        from netfate.host import netns

        out: dict[str, list[str]] = {}
        for ns in sorted(self.base_namespaces):
            r = netns.run_in(ns, ["nft", "-j", "list", "tables"], check=False, timeout=20)
            names: list[str] = []
            with contextlib.suppress(ValueError, TypeError):
                for item in json.loads(r.stdout or "{}").get("nftables", []):
                    t = item.get("table")
                    if isinstance(t, dict):
                        names.append(f"{t.get('family')} {t.get('name')}")
            out[ns] = sorted(names)
        return out

    def cgroups(self) -> list[str]:
        root = Path("/sys/fs/cgroup")
        found: list[str] = []
        for d in (root / "netfate", root / "cpu" / "netfate", root / "memory" / "netfate"):
            with contextlib.suppress(OSError):
                found += [
                    f"{d.relative_to(root)}/{x.name}"
                    for x in d.iterdir()
                    if x.is_dir() and x.name.startswith(self.tb.prefix + "-")
                ]
        return sorted(found)

    def agent_files(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """Files in each agent's state directory, and apart from them the logs of gone
        instances (KEEP_LOGS of them are kept by design). Its list of instances handed
        off to a migration target (kept for its lifetime, bounded by what is still
        desired) counts by its entries, as `handed-off.json:ID`."""
        files: dict[str, list[str]] = {}
        logs: dict[str, list[str]] = {}
        for node, d in self.agent_dirs.items():
            with contextlib.suppress(OSError):
                names, gone = [], []
                for p in d.iterdir():
                    if p.name == HANDED_OFF:
                        with contextlib.suppress(OSError, ValueError, TypeError):
                            names += [f"{HANDED_OFF}:{i}" for i in json.loads(p.read_text())]
                    elif is_gone_log(p.name, {x.name for x in d.glob("*.json")}):
                        gone.append(p.name)
                    else:
                        names.append(p.name)
                files[node], logs[node] = sorted(names), sorted(gone)
        return files, logs

    def database(self) -> dict[str, Any]:
        """The SQLite files' sizes (the WAL stays below its checkpoint threshold, so
        `bytes` is the figure that grows), its pages in use and each table's rows."""
        files = {}
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                files[suffix or "db"] = Path(str(self.db_path) + suffix).stat().st_size
        rows: dict[str, int] = {}
        # Read-only (URI mode=ro): a benchmark reading the database changes nothing.
        con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        try:
            pages = int(con.execute("PRAGMA page_count").fetchone()[0])
            free = int(con.execute("PRAGMA freelist_count").fetchone()[0])
            page_size = int(con.execute("PRAGMA page_size").fetchone()[0])
            tables = [
                r[0]
                for r in con.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
            for t in tables:
                rows[t] = int(con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0])
        finally:
            con.close()
        return {
            "bytes": (pages - free) * page_size,
            "file_bytes": files.get("db", 0),
            "wal_bytes": files.get("-wal", 0),
            "rows": rows,
        }

    def in_sync(self, timeout: float = 60.0) -> bool | None:
        """Wait (bounded) until the controller holds the current view's flows on every
        switch; None without a controller."""
        if not self.tb.state.sdn:
            return None
        deadline = time.monotonic() + timeout
        while not self.api.call("GET", "/sdn/status")["in_sync"]:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def take(self, settle: float) -> dict[str, Any]:
        synced = self.in_sync()
        time.sleep(settle)
        procs, instance_procs = self.processes()
        ports, flows = self.ovs()
        files, logs = self.agent_files()
        return {
            "at": round(time.time(), 3),
            "sdn_in_sync": synced,
            "processes": procs,
            "instance_processes": instance_procs,
            "namespaces": self.namespaces(),
            "ovs_ports": ports,
            "flows": {n: [f for f in fs if not timed_flow(f)] for n, fs in flows.items()},
            "timed_flows": {n: sum(map(timed_flow, fs)) for n, fs in flows.items()},
            "nft_tables": self.nft_tables(),
            "cgroups": self.cgroups(),
            "agent_files": files,
            "agent_logs": logs,
            "database": self.database(),
        }


# --------------------------------------------------------------------------- cycles


def one_cycle(api: Any, a: argparse.Namespace, k: int) -> dict[str, Any]:
    """create on one node of the pair, migrate to the other, destroy; times in ms."""
    src, dst = (a.pair[0], a.pair[1]) if k % 2 == 0 else (a.pair[1], a.pair[0])
    body: dict[str, Any] = {"descriptor": a.descriptor, "node": src}
    if a.serves:
        body["serves"] = a.serves
    t0 = time.perf_counter()
    inst = api.call("POST", "/instances", body)
    iid = inst["id"]
    try:
        d = api.wait_state(iid, ("running", "failed"))
        if d["state"] != "running":
            raise RuntimeError(f"{iid} failed: {str(d.get('detail'))[:200]}")
        t1 = time.perf_counter()
        m = api.call("POST", f"/instances/{iid}/migrate", {"node": dst})
        d, m = api.wait_migration(iid, m["id"])
        if m["phase"] != "done":
            raise RuntimeError(f"migration of {iid} to {dst}: {m['phase']} {m.get('reason')}")
        t2 = time.perf_counter()
    finally:
        with contextlib.suppress(RuntimeError):
            api.call("DELETE", f"/instances/{iid}")
        api.wait_state(iid, ("gone",))
    t3 = time.perf_counter()
    return {
        "create_ms": (t1 - t0) * 1e3,
        "migrate_ms": (t2 - t1) * 1e3,
        "destroy_ms": (t3 - t2) * 1e3,
        "cycle_ms": (t3 - t0) * 1e3,
    }


def run_cycles(
    api: Any,
    a: argparse.Namespace,
    n: int,
    deadline: float,
    first: int,
    on_sample: Any = None,
) -> tuple[list[dict[str, Any]], list[str], bool]:
    """Up to n cycles before `deadline`; returns records, failures, and whether the
    deadline or the failure cap stopped it early."""
    import httpx

    records: list[dict[str, Any]] = []
    failures: list[str] = []
    for i in range(n):
        if time.monotonic() >= deadline or len(failures) >= a.max_failures:
            return records, failures, True
        try:
            records.append(one_cycle(api, a, first + i))
        except (RuntimeError, OSError, httpx.HTTPError) as e:
            failures.append(f"cycle {first + i}: {e}"[:300])
        if a.verbose and (i + 1) % 50 == 0:
            print(f"churn: {i + 1}/{n} cycles", file=sys.stderr, flush=True)
        if on_sample is not None and (i + 1) % a.sample_every == 0:
            on_sample(i + 1)
    return records, failures, False


def history_env(a: argparse.Namespace) -> dict[str, str]:
    """The orchestrator's history bounds (its options' environment variables; the
    testbed starts it with this process's environment). Small, so that a run of a
    thousand cycles reaches them and shows the tables stop growing."""
    return {
        "NETFATE_KEEP_GONE_INSTANCES": str(a.keep_gone),
        "NETFATE_KEEP_EVENTS": str(a.keep_events),
        "NETFATE_HISTORY_PRUNE_S": str(a.prune_every),
    }


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _progress(a: argparse.Namespace) -> Any:
    def progress(msg: str) -> None:
        if a.verbose:
            print(f"testbed: {msg}", file=sys.stderr, flush=True)

    return progress


def run(argv: list[str]) -> dict[str, Any]:
    a = parse_args(argv)
    c.need_root("the churn benchmark (testbed)")
    lc = c.load_sibling("lifecycle")
    from netfate.testbed.builder import Testbed

    result: dict[str, Any] = {
        "benchmark": "churn",
        "topology": a.topology,
        "pair": a.pair,
        "serves": a.serves,
        "descriptor": a.descriptor,
        "sdn": not a.no_sdn,
        "cycles_asked": a.cycles,
        "warmup_cycles_asked": a.warmup,
        "time_limit_s": a.time_limit,
        "history_bounds": {"keep_gone": a.keep_gone, "keep_events": a.keep_events},
        "method": (
            "leftovers: end vs initial (before any cycle); RSS and fd growth: end vs "
            "start (after the warm-up cycles); every snapshot after "
            f"{a.settle:g} s idle"
        ),
    }
    progress = _progress(a)
    with c.sigterm_interrupts():
        t0 = time.perf_counter()
        with environment(history_env(a)):
            tb = Testbed.up(a.topology, sdn=not a.no_sdn, progress=progress)
        result["testbed_up_s"] = round(time.perf_counter() - t0, 2)
        api = None
        try:
            assert tb.api_url is not None
            api = lc.Api(tb.api_url, a.poll, tb.api_token)
            snap = Snapshotter(tb, api)
            r = Run(hosts=len(tb.topology.hosts), initial=snap.take(a.settle))
            began = time.monotonic()
            deadline = began + a.time_limit
            r.warm, r.warm_failures, _ = run_cycles(api, a, a.warmup, deadline, 0)
            r.start = snap.take(a.settle)

            def sample(done: int) -> None:
                procs, _ = snap.processes()
                db = snap.database()
                r.samples.append(
                    {"cycle": done, "processes": procs, "rows": db["rows"], "db_bytes": db["bytes"]}
                )

            sample(0)
            r.records, r.failures, stopped = run_cycles(
                api, a, a.cycles, deadline, a.warmup, sample
            )
            elapsed = time.monotonic() - began
            # After a prune of the orchestrator's history, so the tables show their bound.
            r.end = snap.take(max(a.settle, a.prune_every + 1.0))
        finally:
            if api is not None:
                api.close()
            result["teardown_problems"] = tb.down(progress=progress)
    result.update(analyse(a, r))
    result["stopped_early"] = stopped
    result["elapsed_s"] = round(elapsed, 1)
    return result


@dataclass
class Run:
    """What a run measured (see run())."""

    hosts: int
    initial: dict[str, Any]
    start: dict[str, Any] = field(default_factory=dict)
    end: dict[str, Any] = field(default_factory=dict)
    warm: list[dict[str, Any]] = field(default_factory=list)
    warm_failures: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)


def analyse(a: argparse.Namespace, r: Run) -> dict[str, Any]:
    """The figures of a run (pure: from the snapshots, samples and cycle records)."""
    initial, start, end, samples = r.initial, r.start, r.end, r.samples
    records, failures = r.records, r.failures
    done = len(records) + len(failures)
    growth = process_growth(start["processes"], end["processes"])
    left = leftovers(initial, end, keep_logs())
    per_cycle_kb: dict[str, float | None] = {}
    for role in growth:
        xs = [float(s["cycle"]) for s in samples if s["processes"].get(role, {}).get("rss_kb")]
        ys = [float(s["processes"][role]["rss_kb"]) for s in samples if float(s["cycle"]) in xs]
        k = slope(xs, ys)
        per_cycle_kb[role] = None if k is None else round(k, 3)
    cycle_ms = [r["cycle_ms"] for r in records]

    def counts(s: dict[str, Any]) -> dict[str, Any]:
        return {
            "namespaces": len(s["namespaces"]),
            "ovs_ports": {n: len(p) for n, p in s["ovs_ports"].items()},
            "flows": {n: len(f) for n, f in s["flows"].items()},
            "timed_flows": s["timed_flows"],
            "sdn_in_sync": s["sdn_in_sync"],
            "nft_tables": {n: len(t) for n, t in s["nft_tables"].items()},
            "cgroups": len(s["cgroups"]),
            "instance_processes": len(s["instance_processes"]),
            "agent_files": {n: len(f) for n, f in s["agent_files"].items()},
            "agent_logs_of_gone_instances": {n: len(f) for n, f in s["agent_logs"].items()},
            "database_bytes": s["database"]["bytes"],
        }

    return {
        "warmup_cycles_done": len(r.warm),
        "warmup_failures": r.warm_failures,
        "cycles_done": done,
        "cycles_ok": len(records),
        "failures": failures[:20],
        "processes": growth,
        "rss_kb_per_cycle_slope": per_cycle_kb,
        "rss_samples_kb": {
            role: [s["processes"].get(role, {}).get("rss_kb") for s in samples] for role in growth
        },
        "fds_samples": {
            role: [s["processes"].get(role, {}).get("fds") for s in samples] for role in growth
        },
        "sample_cycles": [s["cycle"] for s in samples],
        "counts": {"initial": counts(initial), "start": counts(start), "end": counts(end)},
        "left_over": left,
        "database": {
            "in_use_bytes_note": "pages in use x page size, read through the WAL",
            "file_bytes_end": end["database"]["file_bytes"],
            "wal_bytes_end": end["database"]["wal_bytes"],
            "bytes_initial": initial["database"]["bytes"],
            "bytes_start": start["database"]["bytes"],
            "bytes_end": end["database"]["bytes"],
            "bytes_per_cycle": (
                round((end["database"]["bytes"] - start["database"]["bytes"]) / done, 1)
                if done
                else None
            ),
            "rows": row_growth(start["database"]["rows"], end["database"]["rows"], done),
        },
        "cycle_ms": c.summary(cycle_ms, 1),
        "create_ms": c.summary([r["create_ms"] for r in records], 1),
        "migrate_ms": c.summary([r["migrate_ms"] for r in records], 1),
        "destroy_ms": c.summary([r["destroy_ms"] for r in records], 1),
        "cycle_time_last_vs_first_tenth": tenth_ratio(cycle_ms),
        "db_bytes_samples": [s.get("db_bytes") for s in samples],
        "rows_samples": {
            t: [s["rows"].get(t) for s in samples]
            for t in ("instances", "transitions", "migrations", "events", "sdn_host_sightings")
        },
        **verdict(growth, left),
        "goal_history_bounded": history_bounded(end["database"]["rows"], a, r.hosts),
    }


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:]), indent=2, sort_keys=True))
