"""The service contract (netfate.contract, DESIGN.md conventions 10 and 12).

A service plugs in by one line in netfate.services.SERVICES: the fake service of
tests/fakesvc is registered that way here, and its route, roles, table, descriptor,
loop, CLI group, demo, experiment, panel and topology appear. A route without
declared roles, or roles for a route that does not exist, stops the app from
being built. Earlier names keep working as aliases.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from sqlalchemy import inspect
from typer.testing import CliRunner

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
import fakesvc
from netfate import benchcli, cli, services
from netfate.contract import ContractError, Role, Service
from netfate.demo.cli import Scenarios
from netfate.model.topology import Topology
from netfate.orchestrator.app import Settings, create_app
from netfate.services import registered
from netfate.store.db import Database
from waiting import until

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def with_fake(monkeypatch: pytest.MonkeyPatch) -> tuple[Service, ...]:
    """The registry with the fake service's one line added."""
    monkeypatch.setattr(services, "SERVICES", (*services.SERVICES, "fakesvc"))
    return registered()


def _app(tmp_path: Path, svcs: tuple[Service, ...]) -> Any:
    return create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600),
        services=svcs,
    )


def test_one_registration_line_brings_everything_the_service_declares(
    with_fake: tuple[Service, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NETFATE_RADIUS_LISTEN", "")
    assert with_fake[-1] is fakesvc.SERVICE
    with authn.client(_app(tmp_path, with_fake)) as c:
        # its route, with its roles in the OpenAPI document
        assert c.get("/api/v1/fake/ticks").status_code == 200
        op = c.get("/api/v1/openapi.json").json()["paths"]["/api/v1/fake/ticks"]["get"]
        assert op["x-roles"] == ["operator"] and op["tags"] == ["fake"]
        # its table, from its own Alembic branch
        tables = inspect(c.app.state.db.engine).get_table_names()  # type: ignore[attr-defined]
        assert "fake_ticks" in tables
        # its descriptor, seeded at start
        assert "fake-fn" in {d["name"] for d in c.get("/api/v1/descriptors").json()}
        # its loop runs with nobody asking: the table it writes fills up
        assert until(lambda: c.get("/api/v1/fake/ticks").json().get("loop", 0) >= 2)
        listed = {s["name"]: s for s in c.get("/api/v1/services").json()}
        fake = listed["fake"]
        assert fake["loops"][0]["name"] == "tick" and fake["loops"][0]["steps"] >= 2
        assert fake["demos"] == [{"name": "fake", "aliases": ["phony"]}]
        assert fake["topologies"] == ["fake.yaml"]
        # its panel on the dashboard, served from its own folder
        assert '<script src="/static/fake/panel.js" defer></script>' in c.get("/").text
        assert (
            c.get("/static/fake/panel.js").content
            == (fakesvc.SERVICE.folder / "static" / "panel.js").read_bytes()
        )
        # and the registered services are all there too
        assert {"firewall", "sharing", "usbip", "streaming", "catalog", "fake"} == set(listed)
    # its CLI group and its experiment
    runner = CliRunner()
    r = runner.invoke(cli.build(), ["fake", "hello"])
    assert r.exit_code == 0 and "hello from the fake service" in r.output
    r = runner.invoke(cli.build(), ["experiment", "fake"])
    assert r.exit_code == 0 and "the fake experiment ran" in r.output
    # its demo, by name and by alias, with its topology
    known = Scenarios.of(with_fake)
    assert known.module("fake") is known.module("phony")
    assert Topology.load(known.module("fake").TOPOLOGY).nodes
    r = runner.invoke(cli.build(), ["demo", "--help"])
    assert r.exit_code == 0 and "fake" in r.output


def test_without_the_line_nothing_of_it_is_there(tmp_path: Path) -> None:
    with authn.client(_app(tmp_path, registered())) as c:
        assert c.get("/api/v1/fake/ticks").status_code == 404
        assert "fake" not in {s["name"] for s in c.get("/api/v1/services").json()}
        assert "/static/fake/" not in c.get("/").text
    r = CliRunner().invoke(cli.build(), ["fake", "hello"])
    assert r.exit_code != 0


def test_a_route_without_declared_roles_stops_the_app(tmp_path: Path) -> None:
    extra = APIRouter()

    @extra.get("/secret")
    def secret() -> dict[str, str]:
        return {}

    extra.include_router(fakesvc.router)
    bad = replace(fakesvc.SERVICE, api=extra)
    with pytest.raises(ContractError, match=r"without declared roles: GET /api/v1/fake/secret"):
        _app(tmp_path, (bad,))


def test_roles_for_a_route_that_does_not_exist_stop_the_app(tmp_path: Path) -> None:
    bad = replace(
        fakesvc.SERVICE, roles={**fakesvc.SERVICE.roles, "DELETE /ticks": (Role.OPERATOR,)}
    )
    with pytest.raises(ContractError, match=r"routes that do not exist: DELETE /api/v1/fake"):
        _app(tmp_path, (bad,))


@pytest.mark.parametrize("name", ["firewall", "instances", "Fake", "a/b"])
def test_a_name_taken_or_malformed_stops_the_app(tmp_path: Path, name: str) -> None:
    with pytest.raises(ContractError):
        _app(tmp_path, (*registered(), replace(fakesvc.SERVICE, name=name)))


def test_every_route_of_the_registered_app_names_its_roles(tmp_path: Path) -> None:
    app = _app(tmp_path, registered())
    doc = app.openapi()
    ops = [(p, m, op) for p, ms in doc["paths"].items() for m, op in ms.items()]
    assert len(ops) > 60
    for path, method, op in ops:
        roles = op.get("x-roles")
        assert roles and set(roles) <= {r.value for r in Role}, (method, path)
    # The matrix covers the routes outside the schema too (pages, the OpenAPI itself).
    assert app.state.roles["GET /api/v1/firewall/me"] == (Role.USER,)  # behind sign-in
    assert app.state.roles["GET /api/v1/firewall/me/rules"] == (Role.PUBLIC,)
    assert app.state.roles["GET /api/v1/openapi.json"] == (Role.PUBLIC,)
    assert app.state.roles["GET /api/v1/agents/{node}/desired"] == (Role.AGENT,)


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("NETFATE_RADIUS_LISTEN", "")
    with authn.client(_app(tmp_path, registered())) as c:
        yield c


def test_earlier_api_paths_are_aliases(client: TestClient) -> None:
    r = client.post(
        "/api/v1/netfate/users", json={"name": "alice", "password": "pw", "host": "laptop1"}
    )
    assert r.status_code == 201, r.text
    assert client.get("/api/v1/firewall/users").json() == client.get("/api/v1/netfate/users").json()
    assert client.get("/api/v1/netfate/users/alice").json()["name"] == "alice"
    assert client.delete("/api/v1/netfate/radius/clients/10.0.0.0/8").status_code == 404
    # Documented once, in the OpenAPI description; the paths themselves are listed once.
    doc = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/netfate/... = /api/v1/firewall/..." in doc["info"]["description"]
    assert not [p for p in doc["paths"] if p.startswith("/api/v1/netfate")]


def test_earlier_demo_names_are_aliases() -> None:
    known = Scenarios.of(registered())
    assert known.module("netfate") is known.module("firewall")
    assert known.module("hrh") is known.module("usbip")
    r = CliRunner().invoke(cli.build(), ["experiment", "--help"])
    assert r.exit_code == 0 and "usbip" in r.output


def test_one_name_per_service_everywhere() -> None:
    """Folder, API prefix, CLI group, demo and tables carry the service's name."""
    for svc in registered():
        assert svc.folder.name == svc.name
        assert svc.folder == REPO / "src" / "netfate" / "services" / svc.name
        assert svc.cli is None or svc.cli.startswith(f"netfate.services.{svc.name}.")
        assert svc.demos and svc.demos[0].name == svc.name
        db = Database("sqlite://")
        if svc.migrations is not None:
            db.migrate()
            core = set(inspect(db.engine).get_table_names())
            db.migrate([svc.migrations])
            own = set(inspect(db.engine).get_table_names()) - core
            assert own and all(t.startswith(f"{svc.name}_") for t in own), own
        db.dispose()


def test_make_bench_runs_the_platforms_and_the_services_benches() -> None:
    listed = benchcli.listed(registered())
    owners = dict(listed)
    assert len(owners) == len(listed)  # each bench once
    assert set(owners) == set(benchcli.available())  # every file of bench/
    assert {b: o for b, o in owners.items() if o != "platform"} == {
        "radius": "firewall", "handover": "firewall", "sharing": "sharing", "usbip": "usbip",
        "streaming": "streaming", "streaming_relay": "streaming", "streaming_join": "streaming",
        "streaming_vod": "streaming",
    }  # fmt: skip
    assert {"testbed", "lifecycle", "api", "flows", "steering"} <= {
        b for b, o in owners.items() if o == "platform"
    }
    r = CliRunner().invoke(cli.build(), ["bench", "list"])
    assert r.exit_code == 0 and r.output.split() == [b for b, _ in listed]
    assert "netfate bench list" in (REPO / "Makefile").read_text()
