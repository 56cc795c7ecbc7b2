"""What the tests of functions' configuration schemas share (issue 12, section 4):
where a schema refuses a configuration, and an API with one node and one service to
create instances on (what a bad configuration gets there: 422 naming the field)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
from netfate.agent.instances import vet
from netfate.contract import Service
from netfate.orchestrator.app import Settings, create_app
from netfate.vnf import registry

IMAGES = registry.DEFAULT_IMAGE_DIR

Loc = tuple[str | int, ...]


def refusals(function: str, config: dict[str, Any]) -> list[Loc]:
    """Where the schema of `function` refuses `config` ([]: it takes it)."""
    try:
        registry.check_config(function, config, IMAGES)
    except ValidationError as e:
        return [tuple(err["loc"]) for err in e.errors()]
    return []


def assert_taken(function: str, config: dict[str, Any]) -> None:
    """The schema takes `config`, and so does the agent's own check before it spawns."""
    assert refusals(function, config) == [], config
    vet({"function": function, "config": config}, IMAGES)


def assert_refused(function: str, config: dict[str, Any], loc: Loc) -> None:
    """The schema refuses `config` at `loc` first, and the agent refuses to spawn it."""
    assert refusals(function, config)[0][: len(loc)] == loc
    with pytest.raises(ValueError):
        vet({"function": function, "config": config}, IMAGES)


@contextlib.contextmanager
def one_node_api(tmp_path: Path, service: Service, lan: str) -> Iterator[TestClient]:
    """The orchestrator with `service` alone, node cpe1 (LAN `lan`) and its agent."""
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600),
        services=[service],
    )
    with authn.client(app) as c:
        topo = {"name": "fn", "nodes": {"cpe1": {"kind": "cpe", "lan": lan}},
                "hosts": {}, "links": []}  # fmt: skip
        assert c.put("/api/v1/topology", json=topo).status_code == 200
        assert c.post("/api/v1/agents/cpe1/register", json={"endpoint": "127.0.0.1:1"}).is_success
        yield c


def assert_api_checks(
    api: TestClient,
    bad: list[tuple[str, dict[str, Any], list[str | int]]],
    good: list[tuple[str, dict[str, Any]]],
) -> None:
    """Each (descriptor, config, loc) of `bad` is a 422 naming `loc` alone and creates
    nothing; each (descriptor, config) of `good` is created."""
    for descriptor, cfg, loc in bad:
        r = api.post("/api/v1/instances", json={"descriptor": descriptor, "node": "cpe1",
                                                 "config": cfg})  # fmt: skip
        assert r.status_code == 422, r.text
        assert [e["loc"] for e in r.json()["errors"]] == [loc]
    assert api.get("/api/v1/instances").json() == []
    for descriptor, cfg in good:
        r = api.post("/api/v1/instances", json={"descriptor": descriptor, "node": "cpe1",
                                                 "config": cfg})  # fmt: skip
        assert r.status_code == 201, r.text
