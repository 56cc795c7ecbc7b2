"""Agents' control traffic against a real orchestrator, without the network.

The 1,000-node testbed's orchestrator stalled with 300 nodes registered (issue 15).
This drives the same traffic without namespaces, Open vSwitch or agent processes:
an orchestrator (`netfate orchestrator`, SQLite, the testbed's options for N nodes)
and N simulated agents in this process, each as a real agent does it
(agent/agent.py, agent/group.py): register (at most 4 of a 50-node group at once),
report, then long-poll its desired state and report every heartbeat (the testbed's
`heartbeat_for(N)`), with the agents' 10 s timeouts and retries. Groups start in
waves of `cores` groups, as testbed/control.py starts them.

Measured: `register_s` (first registration to the last node listed up), requests
and their failures by kind (timeouts, 429, 5xx), the orchestrator's log lines
about its database (the write gate's 30 s, the pool's timeouts) and its peak RSS.

Run: `netfate bench agent_storm --nodes 300 [--hold 30] [--baseline-src ../main/src]`
(the baseline: another tree's orchestrator, first, in the same run).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from netfate.host.ports import free_port
from netfate.model.topology import generate_tree
from netfate.testbed.control import (
    DEFAULT_HEARTBEAT,
    DEFAULT_MAX_LONG_POLLS,
    GROUP_SIZE,
    LONG_POLL_SPARE,
    heartbeat_for,
)

REGISTER_AT_ONCE = 4  # agent/group.py
READ_TIMEOUT_S = 10.0  # agent/poll.py
LONG_POLL_MAX_S = 30.0  # agent/agent.py


class Agent:
    def __init__(self, base: str, node: str, token: str, heartbeat: float,
                 gate: asyncio.Semaphore, counts: collections.Counter[str]) -> None:  # fmt: skip
        self.base = f"{base}/api/v1/agents/{node}"
        self.node = node
        self.heartbeat = heartbeat
        self.gate = gate
        self.counts = counts
        self.revision = -1
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(READ_TIMEOUT_S, connect=3.0),
            headers={"authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=4),
        )
        self.ports = [
            {"name": f"{node}-p{i}", "ofport": i + 1, "peer": f"node:x{i}"} for i in range(3)
        ]

    def _count(
        self, what: str, r: httpx.Response | None = None, e: Exception | None = None
    ) -> None:
        if e is not None:
            self.counts[f"{what}:{type(e).__name__}"] += 1
        elif r is not None:
            self.counts[f"{what}:{r.status_code}"] += 1

    async def register(self) -> None:
        delay = 0.1
        while True:
            try:
                async with self.gate:
                    r = await self.client.post(
                        f"{self.base}/register", json={"endpoint": "127.0.0.1:9"}
                    )
                    self._count("register", r)
                    if r.status_code == 200:
                        self.revision = int(r.json().get("revision", -1))
                        await self.report()
                        return
            except httpx.HTTPError as e:
                self._count("register", e=e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def report(self) -> None:
        body = {
            "resources": {"cpu_pct": 1.0, "loadavg_1m": 0.1, "memory_mb": 100},
            "instances": [],
            "migrations": [],
            "ports": self.ports,
        }
        try:
            r = await self.client.post(f"{self.base}/report", json=body)
            self._count("report", r)
        except httpx.HTTPError as e:
            self._count("report", e=e)

    async def poll_loop(self) -> None:
        backoff = 0.2
        wait = min(self.heartbeat, LONG_POLL_MAX_S)
        while True:
            try:
                r = await self.client.get(
                    f"{self.base}/desired",
                    params={"revision": self.revision, "wait": wait},
                    timeout=httpx.Timeout(wait + READ_TIMEOUT_S, connect=3.0),
                )
                self._count("desired", r)
                r.raise_for_status()
                self.revision = int(r.json().get("revision", -1))
                backoff = 0.2
            except httpx.HTTPError as e:
                if not isinstance(e, httpx.HTTPStatusError):
                    self._count("desired", e=e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def report_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            await self.report()

    async def run(self) -> None:
        await self.register()
        await asyncio.gather(self.poll_loop(), self.report_loop())


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def drive(base: str, tokens: dict[str, str], op: str, hold_s: float, timeout_s: float,
                log: list[str]) -> dict[str, Any]:  # fmt: skip
    names = list(tokens)
    hb = heartbeat_for(len(names))
    counts: collections.Counter[str] = collections.Counter()
    per = 1 if len(names) <= 30 else GROUP_SIZE
    groups = [names[i : i + per] for i in range(0, len(names), per)]
    wave = (os.cpu_count() or 1) if per > 1 else 16
    tasks: list[asyncio.Task[None]] = []
    agents: list[Agent] = []
    t0 = time.monotonic()
    out: dict[str, Any] = {"nodes": len(names), "heartbeat_s": hb, "waves": []}
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {op}"}, timeout=30) as c:

        async def up_count() -> int:
            try:
                r = await c.get(f"{base}/api/v1/nodes")
                return sum(1 for n in r.json() if n.get("status") == "up")
            except (httpx.HTTPError, ValueError):
                return -1

        started = 0
        deadline = t0 + timeout_s
        for first in range(0, len(groups), wave):
            for group in groups[first : first + wave]:
                gate = asyncio.Semaphore(REGISTER_AT_ONCE)
                for n in group:
                    a = Agent(base, n, tokens[n], hb, gate, counts)
                    agents.append(a)
                    tasks.append(asyncio.create_task(a.run()))
                started += len(group)
            while True:
                up = await up_count()
                if up >= started:
                    out["waves"].append([started, round(time.monotonic() - t0, 1)])
                    print(
                        f"{started} up at {time.monotonic() - t0:.1f}s {dict(counts)}",
                        file=sys.stderr,
                    )
                    break
                if time.monotonic() > deadline:
                    out["stalled"] = {"started": started, "up": up}
                    break
                await asyncio.sleep(0.5)
            if "stalled" in out:
                break
        out["register_s"] = None if "stalled" in out else round(time.monotonic() - t0, 2)
        if "stalled" not in out and hold_s > 0:
            await asyncio.sleep(hold_s)  # steady state: long polls and heartbeats
            out["up_after_hold"] = await up_count()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for a in agents:
        await a.client.aclose()
    out["requests"] = dict(sorted(counts.items()))
    return out


def run(argv: list[str]) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="netfate bench agent_storm")
    ap.add_argument("--nodes", type=int, default=300)
    ap.add_argument(
        "--hold", type=float, default=20.0, help="seconds of steady state after all are up"
    )
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument(
        "--baseline-src",
        default=None,
        help="another tree's src/ (e.g. main's worktree): its orchestrator first, same run",
    )
    ap.add_argument("--keep", action="store_true", help="keep the orchestrator running at a stall")
    a = ap.parse_args(argv)
    out: dict[str, Any] = {"benchmark": "agent_storm", "nodes": a.nodes}
    if a.baseline_src:
        out["baseline"] = _one(a, a.baseline_src)
    out["ours"] = _one(a, None)
    return out


def _one(a: argparse.Namespace, src: str | None) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=src) if src else None
    work = Path(tempfile.mkdtemp(prefix="nf-storm-"))
    topo = generate_tree(a.nodes)
    (work / "topology.yaml").write_text(topo.to_yaml())
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    n = len(topo.nodes)
    argv = [sys.executable, "-m", "netfate", "orchestrator", "--listen", f"127.0.0.1:{port}",
            "--database-url", f"sqlite:///{work / 'o.db'}",
            "--topology", str(work / "topology.yaml"),
            "--operator-file", str(work / "operator.json")]  # fmt: skip
    if heartbeat_for(n) != DEFAULT_HEARTBEAT:
        argv += ["--heartbeat-timeout", str(3 * heartbeat_for(n))]
    if n + LONG_POLL_SPARE > DEFAULT_MAX_LONG_POLLS:
        argv += ["--max-long-polls", str(n + LONG_POLL_SPARE)]
    logf = open(work / "orchestrator.log", "wb")  # noqa: SIM115
    orch = subprocess.Popen(
        argv, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    print(f"orchestrator pid {orch.pid}, {work}", file=sys.stderr)
    result: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or orch.poll() is not None:
                raise SystemExit("orchestrator did not start")
            time.sleep(0.1)
        op = json.loads((work / "operator.json").read_text())
        token = httpx.post(f"{base}/api/v1/auth/token", json=op, timeout=30).json()["token"]
        tokens = {}
        for name in topo.nodes:
            r = httpx.post(f"{base}/api/v1/accounts/agents", json={"node": name}, timeout=30,
                           headers={"authorization": f"Bearer {token}"})  # fmt: skip
            r.raise_for_status()
            tokens[name] = r.json()["token"]
        lines: list[str] = []
        result = asyncio.run(drive(base, tokens, token, a.hold, a.timeout, lines))
        result["orchestrator_peak_rss_mb"] = round(rss_mb(orch.pid), 1)
        text = (work / "orchestrator.log").read_text(errors="replace")
        result["log"] = {
            "gate_30s": text.count("held the database for"),
            "pool_timeout": text.count("QueuePool limit"),
            "tracebacks": text.count("Traceback"),
        }
        if a.keep and "stalled" in result:
            print(f"stalled; orchestrator {orch.pid} kept", file=sys.stderr)
            input("enter to stop")
    finally:
        orch.terminate()
        try:
            orch.wait(10)
        except subprocess.TimeoutExpired:
            orch.kill()
    result["run"] = secrets.token_hex(2)
    return result


def main() -> None:
    print(json.dumps(run(sys.argv[1:]), indent=1))


if __name__ == "__main__":
    main()
