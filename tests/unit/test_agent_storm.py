"""Many agents registering and reporting at once against few request threads and a
small connection pool (issue 15: the 1,000-node testbed's orchestrator stalled with
300 nodes registered, its pool exhausted and "another writer of this process held
the database for 30 s" at 18 % CPU).

The mechanism, as py-spy showed it on the stalled orchestrator: an agent route
committed, then read its answer (the desired state, the node's revision) in the
same writing session, which began a second writing transaction and took SQLite's
write gate again (store/db.py). The gate was let go only when the request's session
closed, after FastAPI had encoded the answer, and for a synchronous route that
encoding runs in a worker thread. Every worker thread was taken by requests waiting
for the gate (or for a connection held by one): the holder waited for a thread,
the threads for the holder, until the 30 s timeouts broke it, and again.

Here the same traffic runs with 4 worker threads, 4 connections and a 2 s gate
timeout: every request must be answered 200 (before the fix, some were answered
503 after the holder timed out)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import authn
from apiserver import serve
from netfate.contract import Role
from netfate.orchestrator.app import Settings, create_app
from netfate.orchestrator.identity import accounts
from netfate.store import db as dbmod
from netfate.store.db import Database
from topology_db import topology_db

NODES = [f"cpe{i}" for i in range(1, 9)]
TOPO: dict[str, Any] = {
    "name": "storm",
    "nodes": {
        **{n: {"kind": "cpe", "lan": f"192.168.{i}.0/24"} for i, n in enumerate(NODES, 1)},
        "pe1": {"kind": "pe"},
    },
    "links": [{"a": n, "b": "pe1"} for n in NODES],
}
REPORTS_PER_NODE = 6


@pytest.fixture
def small_orchestrator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, dict[str, str]]]:
    monkeypatch.setattr(dbmod, "BUSY_TIMEOUT_S", 2)  # the gate's and the pool's wait
    topology_db(tmp_path, TOPO).dispose()
    url = f"sqlite:///{tmp_path}/o.db"
    db = Database(url, pool_size=2)  # 2 kept, 2 more at busy times
    app = create_app(Settings(database_url=url, heartbeat_timeout_s=3600, worker_threads=4), db=db)
    tokens = {n: authn.token(app, accounts.agent_name(n), Role.AGENT, n) for n in NODES}
    try:
        with serve(app) as base:
            yield base, tokens
    finally:
        db.dispose()


async def _agent(base: str, node: str, token: str) -> list[int]:
    ports = [{"name": f"{node}-p1", "ofport": 1, "peer": "node:pe1"}]
    async with httpx.AsyncClient(
        base_url=f"{base}/api/v1/agents/{node}",
        headers=authn.bearer(token),
        timeout=60.0,
    ) as c:

        async def report() -> int:
            r = await c.post("/report", json={"resources": {}, "ports": ports, "instances": []})
            return r.status_code

        reg = c.post("/register", json={"endpoint": "127.0.0.1:9"})
        got = await asyncio.gather(reg, *(report() for _ in range(REPORTS_PER_NODE)))
        return [x if isinstance(x, int) else x.status_code for x in got]


def test_concurrent_registrations_and_reports_all_answered(
    small_orchestrator: tuple[str, dict[str, str]],
) -> None:
    base, tokens = small_orchestrator

    async def storm() -> list[list[int]]:
        return await asyncio.gather(*(_agent(base, n, tokens[n]) for n in NODES))

    answers = asyncio.run(storm())
    codes = [c for per_node in answers for c in per_node]
    assert len(codes) == len(NODES) * (1 + REPORTS_PER_NODE)
    assert codes == [200] * len(codes), sorted(set(codes))
    # Every node is up, and its answer came from the registration's own transaction.
    r = httpx.get(
        f"{base}/api/v1/agents/{NODES[0]}/desired", headers=authn.bearer(tokens[NODES[0]])
    )
    assert r.status_code == 200 and r.json()["revision"] >= 1
