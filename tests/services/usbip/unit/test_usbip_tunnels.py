"""The USB/IP service's tunnels, kept by its reconcile loop (services/usbip/reconcile.py).

A tunnel whose intent cannot be admitted yet (a routed end behind a node whose
port is not known) waits, the reason in its detail; the loop opens it once the
agent reports the port, with nobody asking again. The loop closes a tunnel when
a function it joins goes.
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
from netfate.orchestrator.app import Settings, create_app
from netfate.services.usbip import SERVICE as USBIP
from usbip_configs import CLIENT_CONFIG, HRH_CONFIG
from waiting import until

TOPO: dict[str, Any] = {
    "name": "home",
    "nodes": {
        "hrh1": {"kind": "hrh", "lan": "192.168.50.0/24", "cpu": 1, "memory": "512MiB"},
        "pe1": {"kind": "pe", "lan": "10.10.0.0/24", "cpu": 4},
    },
    "hosts": {"sensor": {"node": "hrh1"}, "ispvm": {"node": "pe1"}},
    "links": [{"a": "hrh1", "b": "pe1", "delay": "10ms", "rate": "50Mbit"}],
}
V1 = "/api/v1/usbip"

HRH: dict[str, Any] = {"descriptor": "hrh-usbip-host", "node": "hrh1", "config": HRH_CONFIG}
CLIMATE: dict[str, Any] = {"descriptor": "hrh-climate", "serves": "sensor", "config": CLIENT_CONFIG}


def report(c: TestClient, node: str) -> None:
    """An agent's report: its instances run, each with a port on the node's bridge."""
    live = [i for i in c.get("/api/v1/instances").json()
            if i["node"] == node and i["state"] not in ("gone", "failed", "stopping")]  # fmt: skip
    ports: list[dict[str, Any]] = [{"name": f"{node}-l", "ofport": 1, "peer": f"local:{node}"}]
    ports += [{"name": f"{node}-i{k}", "ofport": 10 + k, "peer": f"instance:{i['id']}"}
              for k, i in enumerate(live)]  # fmt: skip
    r = c.post(
        f"/api/v1/agents/{node}/report",
        json={"instances": [{"id": i["id"], "status": "running", "pid": 1} for i in live],
              "ports": ports},
    )  # fmt: skip
    assert r.status_code == 200, r.text


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600),
        services=[USBIP],
    )
    with authn.client(app) as c:
        assert c.put("/api/v1/topology", json=TOPO).status_code == 200
        for n in ("hrh1", "pe1"):
            r = c.post(f"/api/v1/agents/{n}/register", json={"endpoint": f"127.0.0.1:1{n[-1]}"})
            assert r.status_code == 200, r.text
        yield c


def tunnel(c: TestClient, name: str) -> dict[str, Any] | None:
    return next((t for t in c.get(f"{V1}/tunnels").json() if t["name"] == name), None)


def intent_ids(c: TestClient) -> set[str]:
    return {i["intent"]["id"] for i in c.get("/api/v1/intents").json()}


def test_a_tunnel_opens_once_its_functions_have_ports_and_closes_with_them(
    api: TestClient,
) -> None:
    hrh = api.post("/api/v1/instances", json=HRH)
    climate = api.post(f"{V1}/functions", json=CLIMATE)
    assert hrh.status_code == 201 and climate.status_code == 201, (hrh.text, climate.text)
    h, cl = hrh.json()["id"], climate.json()["id"]
    report(api, "hrh1")
    report(api, "pe1")
    r = api.post(f"{V1}/tunnels", json={"name": "climate", "a": f"instance:{cl}",
                                        "b": f"instance:{h}"})  # fmt: skip
    assert r.status_code == 201, r.text
    opened = r.json()
    assert opened["open"] and opened["detail"] == "" and opened["intent"] == "usbip-climate"
    spec = next(i["intent"] for i in api.get("/api/v1/intents").json()
                if i["intent"]["id"] == "usbip-climate")  # fmt: skip
    assert (spec["kind"], spec["a"], spec["b"], spec["protocol"], spec["port"]) == (
        "tunnel", f"instance:{cl}", f"instance:{h}", "tcp", 3240
    )  # fmt: skip
    # The climate function goes: the loop closes its tunnel.
    assert api.delete(f"/api/v1/instances/{cl}").status_code in (200, 202)
    assert until(lambda: tunnel(api, "climate") is None and "usbip-climate" not in intent_ids(api))
    closed = [e["data"] for e in api.get("/api/v1/events?limit=500").json()
              if e["kind"] == "UsbipTunnelClosed"]  # fmt: skip
    assert closed == [{"tunnel": "climate", "why": f"instance {cl} stopping"}]


def test_a_routed_tunnel_waits_for_its_port_and_stays_until_it_is_closed(
    api: TestClient,
) -> None:
    hrh = api.post("/api/v1/instances", json=HRH)
    h = hrh.json()["id"]
    report(api, "hrh1")
    r = api.post(f"{V1}/tunnels", json={"name": "isp", "a": "subnet:10.10.0.0/24@pe1",
                                        "b": f"instance:{h}"})  # fmt: skip
    assert r.status_code == 201, r.text
    # pe1's agent has reported no port yet: asked for, not open, and it says why.
    assert r.json()["open"] is False and "pe1/local" in r.json()["detail"]
    assert "usbip-isp" not in intent_ids(api)
    report(api, "pe1")  # the loop opens it, with nobody asking again
    assert until(lambda: (t := tunnel(api, "isp")) and t["open"] and t["detail"] == "")
    assert api.post(f"{V1}/tunnels", json={"name": "isp", "a": "subnet:10.10.0.0/24@pe1",
                                           "b": f"instance:{h}"}).status_code == 409  # fmt: skip
    assert api.delete(f"{V1}/tunnels/isp").json() == {"closed": "isp"}
    assert tunnel(api, "isp") is None and "usbip-isp" not in intent_ids(api)
    assert api.delete(f"{V1}/tunnels/isp").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "a": "nowhere", "b": "instance:i-1"},
        {"name": "x", "a": "subnet:10.10.0.0/24", "b": "instance:i-1"},  # no @NODE
        {"name": "x", "a": "instance:i-1", "b": "instance:i-1"},  # the same end
        {"name": "bad name!", "a": "instance:i-1", "b": "instance:i-2"},
    ],
)
def test_bad_tunnels_are_refused_and_change_nothing(api: TestClient, body: dict[str, Any]) -> None:
    assert api.post(f"{V1}/tunnels", json=body).status_code == 422
    assert api.get(f"{V1}/tunnels").json() == []
