"""A storage device's image lies below the image directory (issue 12, section 4).

The HRH function opens its ``image`` read-write as root, so the API refuses (422,
naming the field) an image outside ``Settings.image_dir`` once symlinks and ``..``
are resolved, and the agent's own check (netfate.agent.instances.vet, with its
--image-dir) refuses it again; the rest of the configuration is bounded too.
"""

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
from netfate.agent.instances import vet
from netfate.orchestrator.app import Settings, create_app
from netfate.services.usbip import SERVICE as USBIP
from usbip_configs import HRH_TLS, ISP_TLS

TOPO: dict[str, Any] = {
    "name": "home",
    "nodes": {"hrh1": {"kind": "hrh", "lan": "192.168.50.0/24", "cpu": 4}},
    "hosts": {"sensor": {"node": "hrh1"}},
    "links": [],
}
TLS = HRH_TLS
FN = "netfate.vnf.usbip_host.tls:TlsUsbipHost"


def storage(image: str) -> dict[str, Any]:
    return {"devices": [{"kind": "storage", "busid": "1-2", "image": image}], "tls": TLS}


@pytest.fixture
def images(tmp_path: Path) -> Path:
    d = tmp_path / "images"
    d.mkdir()
    (d / "pen.img").write_bytes(b"\0" * 512)
    (d / "link.img").symlink_to("/etc/shadow")  # a symlink out
    (d / "etc").symlink_to("/etc")  # a directory symlink out
    (tmp_path / "outside.img").write_bytes(b"\0" * 512)
    return d


@pytest.fixture
def api(tmp_path: Path, images: Path) -> Iterator[TestClient]:
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600,
                 image_dir=images),
        services=[USBIP],
    )  # fmt: skip
    with authn.client(app) as c:
        assert c.put("/api/v1/topology", json=TOPO).status_code == 200
        r = c.post("/api/v1/agents/hrh1/register", json={"endpoint": "127.0.0.1:1"})
        assert r.status_code == 200, r.text
        yield c


def create(c: TestClient, config: dict[str, Any]) -> Any:
    return c.post("/api/v1/instances", json={"descriptor": "hrh-usbip-host", "node": "hrh1",
                                             "config": config})  # fmt: skip


def outside(images: Path) -> list[str]:
    return [
        "/etc/shadow",
        f"{images}/../outside.img",  # `..` out
        f"{images}/./../../../../etc/shadow",
        f"{images}/link.img",  # a symlink to /etc/shadow
        f"{images}/etc/shadow",  # through a directory symlink
        f"{images}",  # the directory itself
        "pen.img",  # relative: opened from wherever the function runs
    ]


def test_an_image_outside_the_image_directory_is_refused_naming_the_field(
    api: TestClient, images: Path
) -> None:
    for image in outside(images):
        r = create(api, storage(image))
        assert r.status_code == 422, (image, r.text)
        assert [e["loc"] for e in r.json()["errors"]] == [
            ["body", "config", "devices", 0, "storage", "image"]
        ], image
    assert api.get("/api/v1/instances").json() == []


def test_an_image_below_the_image_directory_is_accepted(api: TestClient, images: Path) -> None:
    for image in (f"{images}/pen.img", f"{images}/new/later.img"):
        r = create(api, storage(image))
        assert r.status_code == 201, r.text


def test_a_reconfiguration_to_an_image_outside_is_refused(api: TestClient, images: Path) -> None:
    r = create(api, storage(f"{images}/pen.img"))
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    api.post("/api/v1/agents/hrh1/report", json={"instances": [{"id": iid, "status": "running"}]})
    before = api.get("/api/v1/agents/hrh1/desired").json()
    r = api.patch(f"/api/v1/instances/{iid}", json={"config": storage("/etc/shadow")})
    assert r.status_code == 422, r.text
    assert api.get("/api/v1/agents/hrh1/desired").json() == before


@pytest.mark.parametrize(
    "config",
    [
        {"tls": TLS, "devices": [{"kind": "serial", "busid": "1" * 32}]},
        {"tls": TLS, "devices": [{"kind": "serial", "period": 0}]},
        {"tls": TLS, "devices": [{"kind": "serial", "period": 1e9}]},
        {"tls": TLS, "devices": [{"kind": "camera"}]},
        {"tls": TLS, "devices": [{"kind": "hid"}] * 33},
        {"tls": TLS, "port": 65536},
        {"tls": TLS, "host": "example.org"},
        {"tls": TLS, "allow": {"*": ["127.0.0.1"] * 65}},
        {"tls": TLS, "allow": {"1-1": ["x" * 254]}},
        {"tls": {**TLS, "key": "k" * 5000}},
        {"devices": []},  # no TLS: the function would refuse to start
    ],
)
def test_a_config_out_of_range_or_oversized_is_refused(
    api: TestClient, config: dict[str, Any]
) -> None:
    r = create(api, config)
    assert r.status_code == 422, r.text
    assert all(e["loc"][:2] == ["body", "config"] for e in r.json()["errors"])


def test_the_agent_refuses_an_image_outside_its_own_directory(images: Path) -> None:
    for image in outside(images):
        with pytest.raises(ValueError, match="below"):
            vet({"function": FN, "config": storage(image)}, images)
    vet({"function": FN, "config": storage(f"{images}/pen.img")}, images)
    # The agent's directory, not the orchestrator's: another one refuses the same path.
    with pytest.raises(ValueError, match="below"):
        vet({"function": FN, "config": storage(f"{images}/pen.img")}, images / "other")


def climate(link: str | None = None, **more: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"server": "192.168.50.2", "tls": ISP_TLS, **more}
    if link is not None:
        cfg["link"] = link
    return {"descriptor": "hrh-climate", "serves": "sensor", "config": cfg}


def test_the_usbip_functions_route_checks_configs_as_the_core_does(
    api: TestClient, images: Path
) -> None:
    # Its own way to create a function is no way around the schema.
    r = api.post("/api/v1/usbip/functions", json={"descriptor": "hrh-usbip-host",
                                                  "serves": "sensor",
                                                  "config": storage("/etc/shadow")})  # fmt: skip
    assert r.status_code == 422, r.text
    # The importer replaces its pty's link as root: below the directory too.
    for link in outside(images):
        r = api.post("/api/v1/usbip/functions", json=climate(link))
        assert r.status_code == 422, (link, r.text)
        assert [e["loc"] for e in r.json()["errors"]] == [["body", "config", "link"]]
    for bad in ({"retry_seconds": 0}, {"port": 0}, {"server_name": "x" * 300}, {"junk": 1}):
        r = api.post("/api/v1/usbip/functions", json=climate(**bad))
        assert r.status_code == 422, (bad, r.text)
    assert api.get("/api/v1/instances").json() == []
    r = api.post("/api/v1/usbip/functions", json=climate(f"{images}/ttyHRH"))
    assert r.status_code == 201, r.text
