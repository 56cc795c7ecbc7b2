"""Concurrent creates: throughput and faults under many concurrent clients, this tree
against a baseline commit in the same run, on SQLite and on PostgreSQL.

Each (database, version) gets a fresh database and its own
`python -m netfate orchestrator` process (one uvicorn worker). The baseline is the
netfate package of `git archive REF src`, put first on PYTHONPATH; by default REF is
main before the concurrency work of issue 10, where creates read and then insert
with no lock. Two phases:

    throughput  W closed-loop clients (httpx.AsyncClient, W connections) send
                POST /api/v1/instances {descriptor: counter, serves: HOST}, HOST
                rotating over the hosts of a generated N-node topology with room to
                spare, for D seconds after a warm-up: creates/s, answers by status.
    burst       a topology where 30 counters fit (cpe1 10 by CPU, cpe2 5 by memory,
                pe1 15 by CPU), 50 creates sent at once on 50 connections: how many
                were created, answers by status, and what the database holds that
                must never be (coordinator.violations: addresses held twice, nodes
                over capacity).

Figures: creates/s per version (median of `rounds` alternating runs) and the ratio
ours / baseline; the burst's outcome per version. Only 127.0.0.1 is used.

    netfate bench contention --json [--baseline REF] [--workers 50] [--duration 5]
        [--nodes 100] [--rounds 2] [--databases sqlite,postgresql] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _common  # bench/ is on the path: as a script, or netfate.benchcli.load

# main before the concurrency work of issue 10 (creates read, then insert, unlocked).
BASELINE = "8c2377a"
REPO = Path(__file__).resolve().parents[1]
BURST = 50
BURST_TOPOLOGY = REPO / "examples" / "contention.yaml"
BURST_CAPACITY = 30  # counters that fit (the file says how)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="netfate bench contention", description=__doc__.split("\n")[0])
    p.add_argument("--baseline", default=BASELINE, help=f"git ref to compare with ({BASELINE})")
    p.add_argument("--workers", type=int, default=50, help="concurrent clients (50)")
    p.add_argument("--duration", type=float, default=None, help="seconds measured (5)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring (1)")
    p.add_argument("--nodes", type=int, default=100, help="nodes of the throughput topology")
    p.add_argument("--rounds", type=int, default=None, help="alternating runs per version (2)")
    p.add_argument("--databases", default="sqlite,postgresql", help="sqlite, postgresql")
    p.add_argument("--quick", action="store_true", help="one short round (the test suite)")
    a = p.parse_args(argv)
    a.duration = a.duration if a.duration is not None else (1.0 if a.quick else 5.0)
    a.rounds = a.rounds if a.rounds is not None else (1 if a.quick else 2)
    a.databases = [d.strip() for d in a.databases.split(",") if d.strip()]
    for d in a.databases:
        if d not in ("sqlite", "postgresql"):
            p.error(f"unknown database {d!r}: sqlite or postgresql")
    if a.workers < 1 or a.duration <= 0 or a.rounds < 1 or a.nodes < 2:
        p.error("need --workers >= 1, --duration > 0, --rounds >= 1, --nodes >= 2")
    return a


@contextlib.contextmanager
def fresh_database(kind: str, workdir: Path, server: str | None, tag: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / f'{tag}.db'}"
        return
    from sqlalchemy import create_engine, text

    assert server is not None
    admin = create_engine(
        server.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    name = tag.replace("-", "_")
    try:
        with admin.connect() as c:
            c.execute(text(f"CREATE DATABASE {name}"))
        yield server.rsplit("/", 1)[0] + "/" + name
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    finally:
        admin.dispose()


def violations(url: str) -> list[str]:
    """coordinator.violations (this tree's), read after the burst (nothing else runs)."""
    from sqlalchemy import inspect

    from netfate.orchestrator.nfv.coordinator import violations as check
    from netfate.store import Database

    db = Database(url)
    try:
        # A baseline's database may predate the nodes' kept use (store/usage.py).
        kept = "used_cpu" in {c["name"] for c in inspect(db.engine).get_columns("nodes")}
        with db.session(write=False) as s:
            return check(s, kept_use=kept)
    finally:
        db.dispose()


async def _burst(base: str) -> Counter[int]:
    import httpx

    auth = _common.load_sibling("api").signed_in(base)

    async def one(i: int) -> int:
        async with httpx.AsyncClient(base_url=base, timeout=120.0, auth=auth) as c:
            await c.get("/api/v1/health")  # connected before the burst
            await gate.wait()
            host = ("laptop1", "laptop2", None)[i % 3]
            body = {"descriptor": "counter", **({"serves": host} if host else {})}
            try:
                return (await c.post("/api/v1/instances", json=body)).status_code
            except httpx.TransportError:
                return 0  # a reset connection (as api.drive counts it)

    gate = asyncio.Event()
    tasks = [asyncio.create_task(one(i)) for i in range(BURST)]
    await asyncio.sleep(0.5)
    gate.set()
    return Counter(await asyncio.gather(*tasks))


def burst(base: str, url: str) -> dict[str, Any]:
    import httpx

    from netfate.model.topology import Topology

    api = _common.load_sibling("api")
    topo = Topology.load(BURST_TOPOLOGY)
    r = httpx.put(
        f"{base}/api/v1/topology", json=topo.to_dict(), timeout=60, auth=api.signed_in(base)
    )
    r.raise_for_status()
    asyncio.run(api.register_all(base, list(topo.nodes), workers=1))
    statuses = asyncio.run(_burst(base))
    found = violations(url)
    return {
        "creates": BURST,
        "capacity": BURST_CAPACITY,
        "created": statuses.get(201, 0),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "server_errors": sum(v for k, v in statuses.items() if k >= 500),
        "violations": len(found),
        "violation_examples": found[:5],
    }


def throughput(base: str, url: str, a: argparse.Namespace) -> dict[str, Any]:
    api = _common.load_sibling("api")
    pop = api.populate(base, url, a.nodes, 0)
    make = api.request_maker("create_placed", pop["topology"], [])
    res = asyncio.run(
        api.drive(base, make, workers=a.workers, duration=a.duration, warmup=a.warmup)
    )
    f: dict[str, Any] = res.figures()
    f["server_errors"] = sum(v for k, v in res.statuses.items() if k >= 500)
    return f


def one_run(
    kind: str, version: str, source: Path | None, a: argparse.Namespace, workdir: Path, tag: str
) -> dict[str, Any]:
    api = _common.load_sibling("api")
    server = a.pg_url if kind == "postgresql" else None
    out: dict[str, Any] = {}
    for phase in ("throughput", "burst"):
        name = f"{kind}-{version}-{tag}-{phase}"
        with (
            fresh_database(kind, workdir, server, name) as url,
            api.orchestrator(url, workdir, name, source=source) as base,
        ):
            out[phase] = throughput(base, url, a) if phase == "throughput" else burst(base, url)
    return out


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Median creates/s per version, its ratio, and each version's bursts."""
    out: dict[str, Any] = {}
    for version, rs in runs.items():
        rates = [r["throughput"]["rps"] for r in rs if r["throughput"].get("rps") is not None]
        out[version] = {
            "creates_per_s_median": round(statistics.median(rates), 2) if rates else None,
            "creates_per_s": rates,
            "throughput_statuses": [r["throughput"]["errors"] for r in rs],
            "throughput_latency_ms": [r["throughput"]["latency_ms"] for r in rs],
            "burst": [r["burst"] for r in rs],
        }
    if "ours" in out and "baseline" in out:
        out["creates_per_s_ours_vs_baseline"] = _common.ratio(
            out["ours"]["creates_per_s_median"], out["baseline"]["creates_per_s_median"]
        )
    return out


def run(argv: list[str]) -> dict[str, Any]:
    a = parse_args(argv)
    result: dict[str, Any] = {
        "benchmark": "contention",
        "workers": a.workers,
        "duration_s": a.duration,
        "nodes": a.nodes,
        "rounds": a.rounds,
        "baseline": f"git {a.baseline} (src only), same machine, same run, alternating",
    }
    with (
        _common.sigterm_interrupts(),
        tempfile.TemporaryDirectory(prefix="nft-bench-cont-") as tmp,
    ):
        workdir = Path(tmp)
        base_src = _common.extract(a.baseline, workdir / "baseline")
        for kind in a.databases:
            with contextlib.ExitStack() as stack:
                a.pg_url = (
                    stack.enter_context(_common.postgres_server()) if kind == "postgresql" else None
                )
                runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "ours": []}
                for i in range(a.rounds):
                    for version, source in (("baseline", base_src), ("ours", None)):
                        runs[version].append(one_run(kind, version, source, a, workdir, f"r{i}"))
                result[kind] = summarize(runs)
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(sys.argv[1:]), indent=2, sort_keys=True))
