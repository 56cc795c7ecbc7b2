"""What each process exports for Prometheus: the orchestrator's /metrics (requests by
route template, instances per state, loops), an agent's collector over its figures,
and the loopback-only exposition server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

import authn
from netfate.agent import metrics as agent_metrics
from netfate.metrics import exposition
from netfate.orchestrator.app import Settings, create_app

TOPO = {
    "name": "m",
    "nodes": {"cpe1": {"kind": "cpe", "lan": "192.168.1.0/24", "cpu": 2, "memory": "1GiB"}},
}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600))
    with authn.client(app) as c:  # signed in per route (the operator's for /metrics)
        yield c


def test_the_orchestrator_counts_requests_by_route_and_instances_by_state(
    api: TestClient,
) -> None:
    assert api.put("/api/v1/topology", json=TOPO).status_code == 200
    reg = api.post("/api/v1/agents/cpe1/register", json={"endpoint": "127.0.0.1:1"})
    assert reg.status_code == 200
    for name in ("a", "b"):
        r = api.post(
            "/api/v1/instances", json={"descriptor": "counter", "name": name, "node": "cpe1"}
        )
        assert r.status_code == 201, r.text
    iid = r.json()["id"]
    assert api.get(f"/api/v1/instances/{iid}").status_code == 200
    assert api.get("/api/v1/instances/nosuch").status_code == 404
    assert api.get("/nothing/here").status_code == 404
    r = api.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    got = samples(r.text)

    def req(method: str, route: str, status: str) -> float:
        key = frozenset({"method": method, "route": route, "status": status}.items())
        return got.get(("netfate_http_requests_total", key), 0.0)

    # One series per route template, not per id.
    assert req("POST", "/api/v1/instances", "201") == 2
    assert req("GET", "/api/v1/instances/{iid}", "200") == 1
    assert req("GET", "/api/v1/instances/{iid}", "404") == 1
    assert req("GET", "unmatched", "404") == 1
    assert got[("netfate_instances", frozenset({("state", "requested")}))] == 2
    assert got[("netfate_instances", frozenset({("state", "running")}))] == 0
    assert got[("netfate_nodes", frozenset({("status", "up")}))] == 1
    assert got[("netfate_migrations", frozenset({("phase", "done")}))] == 0
    # Declared for the operator, like every route (api/roles.py).
    op = api.get("/api/v1/openapi.json").json()["paths"]["/metrics"]["get"]
    assert op["x-roles"] == ["operator"]
    assert api.get("/metrics", auth=None).status_code == 401


def figures(**res: Any) -> Any:
    spec = {"id": "i1", "function": "counter"}
    sup = SimpleNamespace(instances={"i1": SimpleNamespace(spec=spec)})
    fn = {"i1": {"count": 7, "ok": True, "name": "x", "inner": {"n": 1.5, "deep": {"z": 1}},
                 "bad": float("nan"), "list": [1, 2]}}  # fmt: skip
    return SimpleNamespace(stats=([], res), fn_stats=fn, sup=sup)


def test_an_agent_exports_node_link_and_function_figures() -> None:
    res = {"instances": 1, "instance_cpu_pct": 25.0, "instance_rss_mb": 80.5, "loadavg_1m": 0.5,
           "links": {"pe1": {"rx_bytes": 1000, "tx_bytes": 2000, "rx_mbps": 0.5, "tx_mbps": 1.5}},
           "at": time.time()}  # fmt: skip
    reg = agent_metrics.registry("cpe1", figures(**res))
    server = exposition.serve(reg)
    try:
        text = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text
    finally:
        server.close()
    got = samples(text)
    node = frozenset({("node", "cpe1")})
    assert got[("netfate_node_cpu_cores", node)] == 0.25
    assert got[("netfate_node_memory_mb", node)] == 80.5
    assert got[("netfate_node_instances", node)] == 1
    link = {"node": "cpe1", "peer": "pe1"}
    assert (
        got[("netfate_link_bytes_total", frozenset((link | {"direction": "tx"}).items()))] == 2000
    )
    assert got[("netfate_link_mbps", frozenset((link | {"direction": "rx"}).items()))] == 0.5
    stats = {dict(k[1])["stat"]: v for k, v in got.items() if k[0] == "netfate_function_stat"}
    # Numbers only (booleans as 0/1), two levels deep, nothing that is not finite.
    assert stats == {"count": 7, "ok": 1, "inner.n": 1.5}


def test_an_agent_without_figures_yet_exports_no_samples_and_no_error() -> None:
    got = samples(exposition_text(agent_metrics.registry("cpe1", figures())))
    assert not any(k[0].startswith("netfate_node") for k in got)


def exposition_text(reg: Any) -> str:
    from prometheus_client import generate_latest

    return generate_latest(reg).decode()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.1", "localhost", "::"])
def test_metrics_serve_only_on_loopback(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        exposition.check_loopback(host)
    assert exposition.check_loopback("127.0.0.5") == "127.0.0.5"
