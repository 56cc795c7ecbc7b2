"""Core nodes run functions wherever the topology gives them compute (a LAN their
functions attach to); a core node without one only forwards. Through the API:
pinned and placed instances, and what placement says when nothing else fits."""

from __future__ import annotations

import ipaddress
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
from netfate.orchestrator.app import Settings, create_app

TOPO: dict[str, Any] = {
    "name": "cores",
    "nodes": {
        "pe1": {"kind": "pe", "lan": "10.61.0.0/24", "cpu": 1},
        "c1": {"kind": "core", "lan": "10.71.0.0/24", "cpu": 1},
        "c2": {"kind": "core"},
    },
    "hosts": {"laptop": {"node": "pe1"}},
    "links": [{"a": "pe1", "b": "c1"}, {"a": "c1", "b": "c2"}],
}
FN = {"name": "fwd", "function": "counter", "cpu": 0.6, "memory_mb": 32}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600))
    with authn.client(app) as c:  # signed in per route
        assert c.put("/api/v1/topology", json=TOPO).status_code == 200
        for n in TOPO["nodes"]:
            r = c.post(f"/api/v1/agents/{n}/register", json={"endpoint": f"127.0.0.1:{n}"})
            assert r.status_code == 200, r.text
        assert c.post("/api/v1/descriptors", json=FN).status_code in (200, 201)
        yield c


def test_a_core_node_with_a_lan_runs_a_pinned_function(api: TestClient) -> None:
    r = api.post("/api/v1/instances", json={"descriptor": "fwd", "node": "c1"})
    assert r.status_code in (200, 201), r.text
    inst = r.json()
    assert inst["node"] == "c1"
    assert ipaddress.ip_interface(inst["ip"]).ip in ipaddress.ip_network("10.71.0.0/24")


def test_a_core_node_without_a_lan_only_forwards(api: TestClient) -> None:
    r = api.post("/api/v1/instances", json={"descriptor": "fwd", "node": "c2"})
    assert r.status_code >= 400
    assert "c2" not in {i["node"] for i in api.get("/api/v1/instances").json()}


def test_placement_overflows_to_a_core_node_with_compute(api: TestClient) -> None:
    first = api.post("/api/v1/instances", json={"descriptor": "fwd", "serves": "laptop"})
    assert first.status_code in (200, 201), first.text
    assert first.json()["node"] == "pe1"
    # pe1 has 0.4 CPU left: the next one goes to the nearest node that hosts, c1
    second = api.post("/api/v1/instances", json={"descriptor": "fwd", "serves": "laptop"})
    assert second.status_code in (200, 201), second.text
    assert second.json()["node"] == "c1"
    # c1 has 0.4 left, c2 hosts nothing: the third is refused, c2 is not a candidate
    third = api.post("/api/v1/instances", json={"descriptor": "fwd", "serves": "laptop"})
    assert third.status_code >= 400
    assert "c2" not in third.text
