"""What functions may run (issue 12, section 4): a descriptor names a function a
registered service provides, or the API refuses it (422, the one error body); an
instance's configuration passes its function's schema; nothing is imported for a
name outside the registry, in the orchestrator or in the function runtime.

The canary (tests/canary.py) is a valid Function in an importable module that marks
its own import: each refusal here is checked to leave it unimported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
from canary import Canary, canary
from netfate.contract import ContractError, Service, registered_functions
from netfate.model.secrets import is_secret_key
from netfate.orchestrator.app import Settings, create_app
from netfate.services import registered
from netfate.store.tables import DescriptorRow
from netfate.vnf import registry, runtime

TOPO: dict[str, Any] = {
    "name": "fn",
    "nodes": {"cpe1": {"kind": "cpe", "lan": "192.168.1.0/24"}},
    "hosts": {"laptop1": {"node": "cpe1"}},
    "links": [],
}
DESC = {"name": "mine", "cpu": 0.1, "memory_mb": 64}


@pytest.fixture
def bird(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Canary:
    c = canary(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # importable: only the registry stops it
    return c


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600))
    with authn.client(app) as c:
        assert c.put("/api/v1/topology", json=TOPO).status_code == 200
        r = c.post("/api/v1/agents/cpe1/register", json={"endpoint": "127.0.0.1:1"})
        assert r.status_code == 200, r.text
        yield c


def locs(r: Any) -> list[list[str | int]]:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["detail"].startswith("invalid input: ")
    return [e["loc"] for e in body["errors"]]


def test_a_descriptor_naming_an_unregistered_function_is_refused_unimported(
    api: TestClient, bird: Canary
) -> None:
    before = api.get("/api/v1/descriptors").json()
    for fn in (bird.ref, "os:system", "subprocess:Popen", "netfate.vnf.runtime:Function",
               "netfate.vnf.counter:Counting"):  # fmt: skip
        r = api.post("/api/v1/descriptors", json={**DESC, "function": fn})
        assert locs(r) == [["body", "function"]], fn
        assert "not a registered function" in r.json()["errors"][0]["msg"]
    assert api.get("/api/v1/descriptors").json() == before
    assert not bird.imported() and bird.module not in sys.modules


def test_a_registered_function_is_accepted_by_short_or_full_name(api: TestClient) -> None:
    for name, fn in (("c1", "counter"), ("c2", "netfate.vnf.counter:Counter")):
        r = api.post("/api/v1/descriptors", json={**DESC, "name": name, "function": fn})
        assert r.status_code == 201, r.text


def test_an_instance_of_a_descriptor_whose_stored_function_is_unregistered_is_refused(
    api: TestClient, bird: Canary
) -> None:
    # A database that says so (written before this check existed, or by hand).
    db = api.app.state.db  # type: ignore[attr-defined]
    with db.session() as s:
        s.add(DescriptorRow(name="planted", function=bird.ref, cpu=0.1, memory_mb=64))
        s.commit()
    r = api.post("/api/v1/instances", json={"descriptor": "planted", "node": "cpe1"})
    assert locs(r) == [["body", "descriptor"]]
    assert api.get("/api/v1/instances").json() == []
    assert not bird.imported()


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"port": 2**63}, "port"),
        ({"port": "7777"}, "port"),  # strict: a string is not a port
        ({"port": 7777, "junk": 1}, "junk"),
    ],
)
def test_an_instance_config_outside_the_schema_is_refused_naming_the_field(
    api: TestClient, config: dict[str, Any], field: str
) -> None:
    r = api.post("/api/v1/instances", json={"descriptor": "counter", "node": "cpe1",
                                             "config": config})  # fmt: skip
    assert locs(r) == [["body", "config", field]]
    assert api.get("/api/v1/instances").json() == []


def test_an_oversized_or_malformed_interface_name_is_refused(api: TestClient) -> None:
    for name in ("x" * 16, "x" * 100_000, "eth0/../x", "eth 0", ""):
        r = api.post("/api/v1/instances", json={"descriptor": "forwarder", "node": "cpe1",
                                                 "config": {"interface": name}})  # fmt: skip
        assert locs(r) == [["body", "config", "interface"]], name
    ok = {"descriptor": "forwarder", "node": "cpe1", "config": {"interface": "eth1"}}
    assert api.post("/api/v1/instances", json=ok).status_code == 201


def test_a_descriptor_config_is_checked_by_its_function_schema(api: TestClient) -> None:
    r = api.post("/api/v1/descriptors", json={**DESC, "function": "counter",
                                               "config": {"port": -1}})  # fmt: skip
    assert locs(r) == [["body", "config", "port"]]
    r = api.post("/api/v1/descriptors", json={**DESC, "function": "counter",
                                               "config": {"port": 9000}})  # fmt: skip
    assert r.status_code == 201, r.text


def test_a_bad_reconfiguration_is_refused_and_changes_nothing(api: TestClient) -> None:
    r = api.post("/api/v1/instances", json={"descriptor": "counter", "node": "cpe1",
                                             "config": {"port": 7777}})  # fmt: skip
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    api.post("/api/v1/agents/cpe1/report", json={"instances": [{"id": iid, "status": "running"}]})
    before = api.get("/api/v1/agents/cpe1/desired").json()
    r = api.patch(f"/api/v1/instances/{iid}", json={"config": {"port": 1 << 20}})
    assert locs(r) == [["body", "config", "port"]]
    assert api.get("/api/v1/agents/cpe1/desired").json() == before
    r = api.patch(f"/api/v1/instances/{iid}", json={"config": {"port": 7778}})
    assert r.status_code == 202, r.text


def test_the_runtime_refuses_an_unregistered_function_before_importing_it(bird: Canary) -> None:
    with pytest.raises(SystemExit, match="not a registered function"):
        runtime.load_function(bird.ref)
    assert not bird.imported() and bird.module not in sys.modules


def test_python_m_netfate_vnf_never_imports_an_unregistered_function(
    bird: Canary, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    control = str(tmp_path / "c.sock")
    p = subprocess.run(
        [sys.executable, "-m", "netfate.vnf", bird.ref, "--instance", "i-1", "--control",
         control, "--config", "{}"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert p.returncode != 0 and "not a registered function" in p.stderr, p.stderr
    assert not bird.imported()


def test_every_shipped_function_is_provided_by_a_registered_service_or_the_platform() -> None:
    provided = registered_functions(registered())
    assert provided == set(registry.SCHEMAS)


def test_a_service_providing_a_function_the_project_does_not_ship_breaks_the_contract(
    tmp_path: Path,
) -> None:
    svc = Service(name="odd", summary="", folder=tmp_path, functions=("os:system",))
    with pytest.raises(ContractError, match=r"'os:system' is not in netfate\.vnf\.registry"):
        registered_functions([svc])
    with pytest.raises(ContractError):
        create_app(Settings(database_url=f"sqlite:///{tmp_path}/o.db"), services=[svc])


def test_the_openapi_shows_each_function_configuration_schema(api: TestClient) -> None:
    doc = api.get("/api/v1/openapi.json").json()
    ref = doc["x-function-configs"]["netfate.vnf.counter:Counter"]["$ref"]
    counter = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert counter["additionalProperties"] is False
    assert (counter["properties"]["port"]["minimum"], counter["properties"]["port"]["maximum"]) == (
        1, 65535
    )  # fmt: skip
    assert set(doc["x-function-configs"]) == set(api.app.state.functions)  # type: ignore[attr-defined]


def _fields(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (name, schema) of a property, at any depth of a model's JSON schema."""
    for sub in [schema, *schema.get("$defs", {}).values()]:
        yield from sub.get("properties", {}).items()


def test_a_secret_in_a_function_configuration_is_write_only_both_ways() -> None:
    # A read hides a value by its key's name (model.secrets): a field named so is marked
    # writeOnly in the OpenAPI, and a field marked so is named so (or a read shows it).
    seen = []
    for ref in registry.SCHEMAS:
        model = registry.schema(ref)
        if model is None:
            continue
        for name, prop in _fields(model.model_json_schema()):
            assert is_secret_key(name) == bool(prop.get("writeOnly")), (ref, name)
            if is_secret_key(name):
                seen.append((ref, name))
    assert ("netfate.vnf.portal:Portal", "secret") in seen
    assert ("netfate.vnf.firewall:Firewall", "secret") in seen


def test_each_function_of_the_firewall_and_sharing_services_has_a_schema() -> None:
    for ref in (
        "netfate.vnf.firewall:Firewall",
        "netfate.vnf.portal:Portal",
        "netfate.vnf.vhg:Vhg",
        "netfate.vnf.virtual_presence.function:VirtualPresence",
    ):
        model = registry.schema(ref)
        assert model is not None and model.model_config.get("extra") == "forbid", ref
