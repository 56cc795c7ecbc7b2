"""API benchmark: requests per second and latency of the orchestrator's REST API with
1,000 nodes and 10,000 instances in the database, on SQLite and on PostgreSQL.

For each database the orchestrator runs as a real process
(`python -m netfate orchestrator --listen 127.0.0.1:PORT --database-url ...`,
one uvicorn worker, as `netfate orchestrator` runs it). The database is filled the
way an operator's would be: a generated 1,000-node topology through
`PUT /api/v1/topology`, every agent registered (`POST /api/v1/agents/N/register`),
then 10,000 running instances (with their requested/starting/running transitions)
bulk-inserted through SQLAlchemy, rows as the coordinator writes them.

Load: a closed-loop generator in this process (httpx.AsyncClient, W workers over
W keep-alive connections, fixed duration after a warm-up), one phase per request
kind:

    health            GET  /api/v1/health                 the baseline: same server,
                                                          same framework, one COUNT
    instances_by_node GET  /api/v1/instances?node=N       N rotating over all nodes
    node              GET  /api/v1/nodes/N                node + its instances
    instance          GET  /api/v1/instances/ID           + transitions, migrations
    agent_desired     GET  /api/v1/agents/N/desired       an agent's poll (no wait)
    agent_report      POST /api/v1/agents/N/report        an agent's heartbeat: resources
                                                          and its instances, all running
    create_pinned     POST /api/v1/instances {node: CPE}  rotating over the CPEs
    create_placed     POST /api/v1/instances {serves: H}  placement "nearest"

The baseline runs first and last; each phase's figures are reported with its
ratio to the mean of the two (rps ratio < 1 and p99 ratio > 1 = slower than the
framework's ceiling). Only 127.0.0.1 is used.

With `--baseline REF` the same phases also run on the orchestrator of git REF's
`src` (put first on PYTHONPATH), in the same run, baseline then ours per database
and round: per phase, ours / baseline (rps and p99). This tree signs every request
in (its first operator's token, each node's agent's); a REF from before accounts
answers everyone, so against such a REF the ratio is the cost of authentication
(issue 12's goal: reads within 10%). Ours also runs a `sign_in` phase last
(POST /api/v1/auth/token with the operator's password: argon2id each time), the rate
at which people can sign in, which the per-request token check never pays.

With `--unchecked` the same phases also run on this tree's app built with
enforcement off (`create_app(enforce=False)`: every request is an operator's and
nothing is checked; no command serves it, the bench starts it itself), on its own
database filled the same way, both servers up at once: each phase is measured in
`--slices` short windows alternating between the two (the order flipped each
slice), so the machine's load falls on both alike. Per phase: signed / unchecked
(rps and p99) — the cost of checking every request's token and role, this tree
against itself.

    netfate bench api --json [--quick] [--nodes 1000] [--instances 10000]
        [--duration 3] [--create-duration 6] [--warmup 0.5] [--workers 8]
        [--databases sqlite,postgresql] [--phases health,node,...]
        [--baseline REF] [--rounds 1] [--unchecked] [--slices 6]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_common: Any = None


def _c() -> Any:
    """bench/_common.py, loaded by path (bench/ is not a package)."""
    global _common
    if _common is None:
        import importlib.util

        path = Path(__file__).resolve().with_name("_common.py")
        key = "netfate_bench__common"
        if key in sys.modules:
            _common = sys.modules[key]
        else:
            spec = importlib.util.spec_from_file_location(key, path)
            assert spec is not None and spec.loader is not None
            mod = importlib.util.module_from_spec(spec)
            sys.modules[key] = mod
            spec.loader.exec_module(mod)
            _common = mod
    return _common


PHASES = (
    "health",
    "instances_by_node",
    "node",
    "instance",
    "agent_desired",
    "agent_report",
    "create_pinned",
    "create_placed",
)
BULK_DESCRIPTOR = {
    "name": "bench-small",
    "function": "counter",
    "cpu": 0.05,
    "memory_mb": 16,
    "stateful": True,
    "description": "light counter for the API benchmark's 10,000 preloaded instances",
}


# --------------------------------------------------------------------------- arguments


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="netfate bench api", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small run for the test suite")
    p.add_argument("--nodes", type=int, default=None, help="nodes in the topology (1000)")
    p.add_argument("--instances", type=int, default=None, help="instances preloaded (10000)")
    p.add_argument("--duration", type=float, default=None, help="seconds measured per phase (3)")
    p.add_argument(
        "--create-duration",
        type=float,
        default=None,
        help="seconds measured per create phase (6; creates are slow, more samples help)",
    )
    p.add_argument("--warmup", type=float, default=None, help="seconds before measuring")
    p.add_argument("--workers", type=int, default=8, help="concurrent requests (closed loop)")
    p.add_argument(
        "--databases",
        default=None,
        help="comma-separated: sqlite, postgresql (default both; --quick: sqlite)",
    )
    p.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset")
    p.add_argument("--keep-logs", action="store_true", help="print the orchestrator log dir")
    p.add_argument("--baseline", default=None, help="also run git REF's orchestrator (ratios)")
    p.add_argument("--rounds", type=int, default=1, help="baseline/ours pairs (--baseline)")
    p.add_argument(
        "--unchecked",
        action="store_true",
        help="also this tree with enforcement off, interleaved (the cost of authentication)",
    )
    p.add_argument("--slices", type=int, default=6, help="alternating windows (--unchecked)")
    a = p.parse_args(argv)
    quick = a.quick
    a.nodes = a.nodes if a.nodes is not None else (60 if quick else 1000)
    a.instances = a.instances if a.instances is not None else (600 if quick else 10000)
    a.duration = a.duration if a.duration is not None else (1.0 if quick else 3.0)
    a.warmup = a.warmup if a.warmup is not None else (0.3 if quick else 0.5)
    if a.create_duration is None:
        a.create_duration = a.duration if quick else max(a.duration, 6.0)
    dbs = a.databases if a.databases is not None else ("sqlite" if quick else "sqlite,postgresql")
    a.databases = [d.strip() for d in dbs.split(",") if d.strip()]
    for d in a.databases:
        if d not in ("sqlite", "postgresql"):
            p.error(f"unknown database {d!r}: sqlite or postgresql")
    a.phases = [x.strip() for x in a.phases.split(",") if x.strip()]
    for ph in a.phases:
        if ph not in PHASES:
            p.error(f"unknown phase {ph!r}; known: {', '.join(PHASES)}")
    if "health" not in a.phases:
        a.phases.insert(0, "health")  # the baseline is not optional
    if a.nodes < 2 or a.instances < 0 or a.workers < 1 or a.duration <= 0 or a.slices < 2:
        p.error(
            "need --nodes >= 2, --instances >= 0, --workers >= 1, --duration > 0, --slices >= 2"
        )
    if a.unchecked and a.baseline:
        p.error("--unchecked and --baseline are two different comparisons: give one")
    return a


# --------------------------------------------------------------------------- load generator


class PhaseResult:
    # A plain class, not a dataclass: benchcli loads this file without registering it
    # in sys.modules, where @dataclass looks its module up.
    def __init__(
        self,
        latencies_s: list[float],
        statuses: Counter[int],
        window_s: float,
        completed_in_window: int | None = None,
    ) -> None:
        self.latencies_s = latencies_s
        self.statuses = statuses
        self.window_s = window_s
        self.completed = len(latencies_s) if completed_in_window is None else completed_in_window

    @classmethod
    def merged(cls, parts: list[PhaseResult]) -> PhaseResult:
        """Several windows of one phase as one (the --unchecked slices)."""
        statuses: Counter[int] = Counter()
        for r in parts:
            statuses.update(r.statuses)
        return cls(
            [x for r in parts for x in r.latencies_s],
            statuses,
            sum(r.window_s for r in parts),
            sum(r.completed for r in parts),
        )

    def figures(self) -> dict[str, Any]:
        c = _c()
        ms = [x * 1e3 for x in self.latencies_s]
        ok = sum(n for s, n in self.statuses.items() if 200 <= s < 300)
        s = c.summary(ms, 3)
        return {
            "requests": len(ms),
            "ok": ok,
            "errors": {str(k): v for k, v in sorted(self.statuses.items()) if not 200 <= k < 300},
            "completed_in_window": self.completed,
            "rps": round(self.completed / self.window_s, 2) if self.window_s > 0 else None,
            "latency_ms": {k: s[k] for k in ("median", "p95", "p99", "max") if k in s},
        }


Request = tuple[str, str, Any]  # method, path, JSON body or None


async def drive(
    base_url: str,
    make: Callable[[int], Request],
    *,
    workers: int,
    duration: float,
    warmup: float,
    auth: bool = True,
) -> PhaseResult:
    """Closed loop: `workers` tasks, each sends its next request when the last answered,
    until the window [warm-up end, warm-up end + duration) is over.

    Throughput: responses completed inside the window / its length (a reset
    connection is status 0 and not a response). Latency: every
    request started inside the window, waited for even when it ends after it (so slow
    requests are not dropped from the tail)."""
    import httpx

    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    completed_in_window = 0
    counter = iter(range(1 << 62))
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=120.0, auth=signed_in(base_url) if auth else None
    ) as client:
        t_start = time.perf_counter()
        t_measure = t_start + warmup
        t_end = t_measure + duration

        async def worker() -> None:
            nonlocal completed_in_window
            while True:
                t0 = time.perf_counter()
                if t0 >= t_end:
                    return
                method, path, body = make(next(counter))
                try:
                    r = await client.request(method, path, json=body)
                    await r.aread()
                    status = r.status_code
                except httpx.TransportError:
                    # A connection the server reset (seen on a loaded machine, with the
                    # old code and the new): counted as status 0, not the end of the run.
                    status = 0
                t1 = time.perf_counter()
                if t_measure <= t1 < t_end and status:
                    completed_in_window += 1
                if t0 >= t_measure:
                    latencies.append(t1 - t0)
                    statuses[status] += 1

        await asyncio.gather(*(worker() for _ in range(workers)))
    return PhaseResult(latencies, statuses, duration, completed_in_window)


# --------------------------------------------------------------------------- database and server


@contextlib.contextmanager
def database(kind: str, workdir: Path, tag: str = "") -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / f'api-bench{tag}.db'}"
        return
    with _c().postgres_server() as url:
        yield url


SIGN_IN_BODY: dict[str, dict[str, str]] = {}
"""Each orchestrator's first operator's name and password (the sign_in phase's body)."""
SIGNED_IN: dict[str, Any] = {}
"""Each orchestrator's credentials by its base URL (netfate.apiclient.SignedIn): its
first operator's token, and each node's agent's once `populate` made them."""
AGENT_TOKENS: dict[str, dict[str, str]] = {}


def signed_in(base: str) -> Any:
    """The httpx auth of `base`'s orchestrator (None: a tree from before accounts)."""
    return SIGNED_IN.get(base)


def _sign_in(base: str, operator_file: Path) -> None:
    import json

    import httpx

    from netfate.apiclient import SignedIn

    body = json.loads(operator_file.read_text())
    r = httpx.post(f"{base}/api/v1/auth/token", json=body)
    r.raise_for_status()
    SIGN_IN_BODY[base] = body
    agents = AGENT_TOKENS.setdefault(base, {})
    SIGNED_IN[base] = SignedIn(r.json()["token"], agents.get)


UNCHECKED_APP = """
import logging, sys
import uvicorn
from netfate.orchestrator.app import Settings, create_app
from netfate.services import registered
host, port, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
logging.basicConfig(level="WARNING", format="%(asctime)s %(name)s %(message)s")
settings = Settings(database_url=url, heartbeat_timeout_s=1e9,
                    allowed_hosts=(*Settings.allowed_hosts, host))
app = create_app(settings, services=registered(), enforce=False)
uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
"""
"""`netfate orchestrator` as its command builds it, but with enforcement off."""


@contextlib.contextmanager
def orchestrator(
    url: str, workdir: Path, tag: str, source: Path | None = None, unchecked: bool = False
) -> Iterator[str]:
    """`python -m netfate orchestrator` on `url`, signed in as its first operator;
    with `source`, the netfate package of that source tree (put first on PYTHONPATH)
    instead of the installed one (signed in as well if that tree has accounts; a
    baseline from before accounts: no credentials)."""
    import os

    import httpx

    c = _c()
    port = c.free_port()
    log = workdir / f"orchestrator-{tag}.log"
    argv = [
        sys.executable,
        "-m",
        "netfate",
        "orchestrator",
        "--listen",
        f"127.0.0.1:{port}",
        "--database-url",
        url,
        # Nodes have no real agents here: keep them "up" for placement.
        "--heartbeat-timeout",
        "1000000000",
        "--log-level",
        "warning",
    ]
    operator_file = workdir / f"operator-{tag}.json"
    accounts = source is None or (source / "netfate" / "orchestrator" / "identity").is_dir()
    if unchecked:
        argv = [sys.executable, "-c", UNCHECKED_APP, "127.0.0.1", str(port), url]
    elif accounts:
        argv += ["--operator-file", str(operator_file)]
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(source), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
    with open(log, "ab") as f:
        p = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, env=env
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if p.poll() is not None:
                raise RuntimeError(
                    f"orchestrator exited with {p.returncode}: {log.read_text()[-2000:]}"
                )
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("orchestrator did not answer within 60 s")
            time.sleep(0.1)
        if accounts and not unchecked:
            _sign_in(base, operator_file)
        yield base
    finally:
        SIGNED_IN.pop(base, None)
        SIGN_IN_BODY.pop(base, None)
        AGENT_TOKENS.pop(base, None)
        c.stop_process(p)


def bulk_rows(
    topo: Any, n_instances: int, descriptor: dict[str, Any], seed: int = 1, now: float = 0.0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Instance rows (state running) and their transitions, as the coordinator writes
    them: ids `i-<8 hex>`, MAC from the id, an address in the LAN of the host served
    (from the top of the LAN down), spread round-robin over the nodes."""
    from netfate.orchestrator.nfv.coordinator import instance_mac

    rng = random.Random(seed)
    nodes = list(topo.nodes.values())
    host_of: dict[str, Any] = {}
    for h in topo.hosts.values():
        host_of.setdefault(h.node, h)
    next_ip: dict[str, int] = {}
    ids: set[str] = set()
    insts: list[dict[str, Any]] = []
    trans: list[dict[str, Any]] = []
    for k in range(n_instances):
        node = nodes[k % len(nodes)]
        while True:
            iid = f"i-{rng.getrandbits(32):08x}"
            if iid not in ids:
                ids.add(iid)
                break
        host = host_of.get(node.name)
        ip = lan_s = gateway = None
        if host is not None:
            lan = host.lan
            used = next_ip.get(node.name, 0)
            addr = lan.broadcast_address - 1 - used
            next_ip[node.name] = used + 1
            ip = f"{addr}/{lan.prefixlen}"
            # The LAN it was taken from, as the coordinator records it: allocation
            # reads a LAN's instances by this column (without it, creates would hand
            # these addresses out again).
            lan_s, gateway = str(lan), str(next(lan.hosts()))
        at = now - (n_instances - k) * 0.01
        insts.append(
            {
                "id": iid,
                "name": f"{descriptor['name']}-{iid[2:]}",
                "descriptor": descriptor["name"],
                "node": node.name,
                "state": "running",
                "serves": host.name if host is not None else None,
                "ip": ip,
                "lan": lan_s,
                "gateway": gateway,
                "mac": instance_mac(iid),
                "config": {},
                "cpu": descriptor["cpu"],
                "memory_mb": descriptor["memory_mb"],
                "created_at": at,
                "updated_at": at + 0.15,
                "pid": 100000 + k,
                "detail": "",
            }
        )
        for prev, state, dt, why in (
            (None, "requested", 0.0, "created"),
            ("requested", "starting", 0.05, f"agent on {node.name} is starting it"),
            ("starting", "running", 0.15, f"agent on {node.name} reports it running"),
        ):
            trans.append(
                {
                    "instance": iid,
                    "previous": prev,
                    "state": state,
                    "node": node.name,
                    "at": at + dt,
                    "reason": why,
                }
            )
    return insts, trans


async def register_all(base: str, names: list[str], workers: int) -> None:
    import httpx

    queue = list(names)

    auth = signed_in(base)
    agents = AGENT_TOKENS.get(base)
    async with httpx.AsyncClient(base_url=base, timeout=60.0, auth=auth) as client:

        async def worker() -> None:
            while queue:
                n = queue.pop()
                if auth is not None and agents is not None:  # the node's agent's token
                    r = await client.post("/api/v1/accounts/agents", json={"node": n})
                    r.raise_for_status()
                    agents[n] = r.json()["token"]
                r = await client.post(
                    f"/api/v1/agents/{n}/register", json={"endpoint": "127.0.0.1:9"}
                )
                r.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(workers)))


def populate(base: str, url: str, n_nodes: int, n_instances: int) -> dict[str, Any]:
    import httpx
    from sqlalchemy import insert, inspect

    from netfate.model.topology import generate_tree
    from netfate.store import usage
    from netfate.store.db import Database
    from netfate.store.tables import InstanceRow, TransitionRow

    timings: dict[str, float] = {}
    topo = generate_tree(n_nodes)
    t0 = time.perf_counter()
    auth = signed_in(base)
    r = httpx.put(f"{base}/api/v1/topology", json=topo.to_dict(), timeout=300, auth=auth)
    r.raise_for_status()
    timings["put_topology_s"] = round(time.perf_counter() - t0, 3)
    r = httpx.post(f"{base}/api/v1/descriptors", json=BULK_DESCRIPTOR, timeout=30, auth=auth)
    r.raise_for_status()
    t0 = time.perf_counter()
    asyncio.run(register_all(base, list(topo.nodes), workers=4))
    timings["register_agents_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    insts, trans = bulk_rows(topo, n_instances, BULK_DESCRIPTOR, now=time.time())
    db = Database(url)
    try:
        with db.session() as s:
            for i in range(0, len(insts), 2000):
                s.execute(insert(InstanceRow), insts[i : i + 2000])
            for i in range(0, len(trans), 6000):
                s.execute(insert(TransitionRow), trans[i : i + 6000])
        if "used_cpu" in {c["name"] for c in inspect(db.engine).get_columns("nodes")}:
            # The bulk INSERT bypassed the ORM that keeps each node's use (a tree with
            # the kept columns; a baseline from before them sums the instances).
            with db.session() as s:
                usage.recount(s)
    finally:
        db.dispose()
    timings["insert_instances_s"] = round(time.perf_counter() - t0, 3)
    return {
        "topology": topo,
        "instance_ids": [i["id"] for i in insts],
        "by_node": instances_by_node(insts),
        "timings": timings,
    }


# --------------------------------------------------------------------------- phases


def instances_by_node(insts: list[dict[str, Any]]) -> dict[str, list[tuple[str, int]]]:
    out: dict[str, list[tuple[str, int]]] = {}
    for i in insts:
        out.setdefault(i["node"], []).append((i["id"], int(i["pid"])))
    return out


def agent_report(instances: list[tuple[str, int]]) -> dict[str, Any]:
    """What an agent reports each heartbeat when all its instances run (no change)."""
    return {
        "resources": {"instances": len(instances), "instance_cpu_pct": 1.0, "loadavg_1m": 0.1},
        "instances": [
            {"id": iid, "status": "running", "role": "active", "pid": pid, "detail": ""}
            for iid, pid in instances
        ],
        "migrations": [],
    }


def request_maker(
    phase: str,
    topo: Any,
    instance_ids: list[str],
    by_node: dict[str, list[tuple[str, int]]] | None = None,
    seed: int = 7,
) -> Callable[[int], Request]:
    rng = random.Random(seed)
    nodes = list(topo.nodes)
    rng.shuffle(nodes)
    cpes = [n for n, spec in topo.nodes.items() if str(spec.kind) == "cpe"]
    hosts = list(topo.hosts)
    ids = list(instance_ids)
    rng.shuffle(ids)
    half = len(hosts) // 2
    reports = {n: agent_report((by_node or {}).get(n, [])) for n in nodes}

    def make(i: int) -> Request:
        if phase == "health":
            return ("GET", "/api/v1/health", None)
        if phase == "instances_by_node":
            return ("GET", f"/api/v1/instances?node={nodes[i % len(nodes)]}", None)
        if phase == "node":
            return ("GET", f"/api/v1/nodes/{nodes[i % len(nodes)]}", None)
        if phase == "instance":
            return ("GET", f"/api/v1/instances/{ids[i % len(ids)]}", None)
        if phase == "agent_desired":
            return ("GET", f"/api/v1/agents/{nodes[i % len(nodes)]}/desired", None)
        if phase == "agent_report":
            n = nodes[i % len(nodes)]
            return ("POST", f"/api/v1/agents/{n}/report", reports[n])
        if phase == "create_pinned":
            return (
                "POST",
                "/api/v1/instances",
                {"descriptor": "counter", "node": cpes[i % len(cpes)]},
            )
        if phase == "create_placed":
            h = hosts[(half + i) % len(hosts)]
            return ("POST", "/api/v1/instances", {"descriptor": "counter", "serves": h})
        raise ValueError(phase)

    return make


def bench_database(
    kind: str, a: argparse.Namespace, workdir: Path, tag: str = "", source: Path | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with (
        database(kind, workdir, tag) as url,
        orchestrator(url, workdir, kind + tag, source=source) as base,
    ):
        t0 = time.perf_counter()
        pop = populate(base, url, a.nodes, a.instances)
        out["populate"] = {**pop["timings"], "total_s": round(time.perf_counter() - t0, 3)}
        topo, ids, by_node = pop["topology"], pop["instance_ids"], pop["by_node"]
        order = [*a.phases, "health"]  # the baseline first and last
        phases: dict[str, Any] = {}
        for i, ph in enumerate(order):
            make = request_maker(ph, topo, ids, by_node)
            dur = a.create_duration if ph.startswith("create") else a.duration
            res = asyncio.run(drive(base, make, workers=a.workers, duration=dur, warmup=a.warmup))
            key = ph if ph != "health" else ("health_first" if i == 0 else "health_last")
            phases[key] = res.figures()
        if base in SIGN_IN_BODY:
            phases["sign_in"] = sign_in_phase(base, a).figures()
        out["phases"] = phases
        out["ratios"] = ratios(phases)
    return out


def sign_in_phase(base: str, a: argparse.Namespace) -> PhaseResult:
    """Signing in hashes the password (argon2id) and writes a token: its rate is the
    price a person pays once, against the reads that only check a token."""
    body = SIGN_IN_BODY[base]
    return asyncio.run(
        drive(
            base,
            lambda i: ("POST", "/api/v1/auth/token", body),
            workers=a.workers,
            duration=a.duration,
            warmup=a.warmup,
            auth=False,
        )
    )


def bench_unchecked(kind: str, a: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """This tree signed in (enforced) and with enforcement off, both servers up, each
    phase in alternating slices (module doc)."""
    versions = ("signed", "unchecked")
    with (
        database(kind, workdir, "-signed") as url_s,
        database(kind, workdir, "-unchecked") as url_u,
        orchestrator(url_s, workdir, kind + "-signed") as base_s,
        orchestrator(url_u, workdir, kind + "-unchecked", unchecked=True) as base_u,
    ):
        bases = dict(zip(versions, (base_s, base_u), strict=True))
        pops = {v: populate(bases[v], url, a.nodes, a.instances)
                for v, url in zip(versions, (url_s, url_u), strict=True)}  # fmt: skip
        phases: dict[str, dict[str, Any]] = {v: {} for v in versions}
        for ph in a.phases:
            parts: dict[str, list[PhaseResult]] = {v: [] for v in versions}
            dur = (a.create_duration if ph.startswith("create") else a.duration) / a.slices
            for k in range(a.slices):
                for v in versions if k % 2 == 0 else versions[::-1]:
                    pop = pops[v]
                    make = request_maker(ph, pop["topology"], pop["instance_ids"], pop["by_node"])
                    parts[v].append(
                        asyncio.run(
                            drive(bases[v], make, workers=a.workers, duration=dur, warmup=a.warmup)
                        )
                    )
            for v in versions:
                phases[v][ph] = PhaseResult.merged(parts[v]).figures()
        phases["signed"]["sign_in"] = sign_in_phase(base_s, a).figures()
    c = _c()
    return {
        **phases,
        "populate": {v: pops[v]["timings"] for v in versions},
        "signed_vs_unchecked": {
            ph: {
                "rps": c.ratio(f.get("rps"), phases["unchecked"][ph].get("rps")),
                "p99": c.ratio(
                    f["latency_ms"].get("p99"), phases["unchecked"][ph]["latency_ms"].get("p99")
                ),
            }
            for ph, f in phases["signed"].items()
            if ph in phases["unchecked"]
        },
    }


def ratios(phases: dict[str, Any]) -> dict[str, Any]:
    """Each phase against the mean of the two health runs (the framework's ceiling):
    rps / health rps and p99 / health p99."""
    c = _c()
    hs = [phases[k] for k in ("health_first", "health_last") if k in phases]
    rps = [h["rps"] for h in hs if h.get("rps")]
    p99 = [h["latency_ms"]["p99"] for h in hs if h["latency_ms"].get("p99") is not None]
    base_rps = sum(rps) / len(rps) if rps else None
    base_p99 = sum(p99) / len(p99) if p99 else None
    out: dict[str, Any] = {}
    for name, f in phases.items():
        if name.startswith("health"):
            continue
        out[name] = {
            "rps_vs_health": c.ratio(f.get("rps"), base_rps),
            "p99_vs_health": c.ratio(f["latency_ms"].get("p99"), base_p99),
        }
    return out


def run(argv: list[str]) -> dict[str, Any]:
    a = parse_args(argv)
    c = _c()
    result: dict[str, Any] = {
        "benchmark": "api",
        "client": "httpx.AsyncClient closed loop (this process), keep-alive connections",
        "server": "python -m netfate orchestrator (uvicorn, 1 worker) on 127.0.0.1",
        "nodes": a.nodes,
        "instances": a.instances,
        "workers": a.workers,
        "duration_s": a.duration,
        "create_duration_s": a.create_duration,
        "warmup_s": a.warmup,
        "baseline": "GET /api/v1/health on the same server, first and last",
    }
    if a.baseline:
        result["versions"] = f"git {a.baseline} (src only) and this tree, same run, alternating"
    if a.unchecked:
        result["versions"] = (
            f"this tree signed in and with enforcement off, both up, {a.slices} alternating "
            "slices per phase"
        )
    with c.sigterm_interrupts(), tempfile.TemporaryDirectory(prefix="nft-bench-api-") as tmp:
        workdir = Path(tmp)
        base_src = c.extract(a.baseline, workdir / "baseline") if a.baseline else None
        for kind in a.databases:
            try:
                if a.unchecked:
                    result[kind] = bench_unchecked(kind, a, workdir)
                    continue
                if base_src is None:
                    result[kind] = bench_database(kind, a, workdir)
                    continue
                runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "ours": []}
                for i in range(a.rounds):
                    for version, source in (("baseline", base_src), ("ours", None)):
                        tag = f"-{version}-r{i}"
                        runs[version].append(bench_database(kind, a, workdir, tag, source))
                result[kind] = {**runs, "ours_vs_baseline": versus(runs)}
            except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
                log = workdir / f"orchestrator-{kind}.log"
                tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
                result[kind] = {"error": f"{type(e).__name__}: {e}", "log_tail": tail}
    return result


def versus(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per phase, the median rps and p99 of ours over the baseline's (same run)."""
    import statistics

    c = _c()

    def med(version: str, phase: str, figure: str) -> float | None:
        fs = [r["phases"][phase] for r in runs[version]]
        got = [f.get("rps") if figure == "rps" else f["latency_ms"].get("p99") for f in fs]
        vals = [v for v in got if v is not None]
        return statistics.median(vals) if vals else None

    return {
        ph: {fig: c.ratio(med("ours", ph, fig), med("baseline", ph, fig)) for fig in ("rps", "p99")}
        for ph in runs["ours"][0]["phases"]
        if all(ph in r["phases"] for r in runs["baseline"])  # sign_in: ours only
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(sys.argv[1:]), indent=2, sort_keys=True))
