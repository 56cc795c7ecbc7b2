"""A Virtual Object host's configuration is checked by its schema (vnf/vo/config.py)
at the API: bounded objects and histories, ports, a known feed (issue 12, section 4)."""

from __future__ import annotations

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
from netfate.services.catalog import SERVICE

TOPO: dict[str, Any] = {
    "name": "fog",
    "nodes": {"pop1": {"kind": "pe", "lan": "10.10.0.0/24", "cpu": 4, "memory": "4GiB"}},
    "links": [],
}
GOOD: dict[str, Any] = {
    "host": 1,
    "objects": [{"vo": k, "user": "ann", "sensor": f"1-{k + 1}", "preload": 8 << 10}
                for k in range(10)],
    "feed": {"kind": "usbip", "server": "10.10.0.2", "port": 3240},
}  # fmt: skip


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("NETFATE_RADIUS_LISTEN", "")
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600),
        services=[SERVICE],
    )
    with authn.client(app) as c:
        assert c.put("/api/v1/topology", json=TOPO).status_code == 200
        r = c.post("/api/v1/agents/pop1/register", json={"endpoint": "127.0.0.1:1"})
        assert r.status_code == 200, r.text
        yield c


def create(c: TestClient, config: dict[str, Any]) -> Any:
    return c.post("/api/v1/instances", json={"descriptor": "vo-host", "node": "pop1",
                                             "config": config})  # fmt: skip


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"objects": [{"vo": 1, "preload": 1 << 40}]}, ["objects", 0, "preload"]),
        ({"objects": [{"vo": -1}]}, ["objects", 0, "vo"]),
        ({"objects": [{"vo": k} for k in range(1025)]}, ["objects"]),
        ({"objects": [{"vo": 1, "user": "u" * 65}]}, ["objects", 0, "user"]),
        ({"feed": {"kind": "ftp"}}, ["feed", "kind"]),
        ({"feed": {"kind": "usbip", "server": "10.0.0.1; rm"}}, ["feed", "server"]),
        ({"port": 0}, ["port"]),
        ({"host": 70000}, ["host"]),
    ],
)
def test_a_vo_host_config_out_of_bounds_is_refused_naming_the_field(
    api: TestClient, change: dict[str, Any], loc: list[Any]
) -> None:
    r = create(api, {**GOOD, **change})
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["errors"]] == [["body", "config", *loc]]
    assert api.get("/api/v1/instances").json() == []


def test_the_experiments_vo_host_config_is_taken(api: TestClient) -> None:
    r = create(api, GOOD)
    assert r.status_code == 201, r.text
