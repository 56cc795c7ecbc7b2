"""Run at home or at the ISP (issue 6 item 6): the delay-bound policy, pure and via the API."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

import authn
from netfate.orchestrator.engine.placement import (
    POLICIES,
    Candidate,
    NoPlacement,
    PlacementRequest,
    place,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from netfate.orchestrator.app import Settings, create_app
from netfate.services.usbip import SERVICE as USBIP
from usbip_configs import CLIENT_CONFIG, HRH_CONFIG

# Importing the service's placement module registers its policy (as the orchestrator
# does when it mounts the usbip service).
importlib.import_module("netfate.services.usbip.placement")

HRH: dict[str, Any] = {"descriptor": "hrh-usbip-host", "node": "hrh1", "config": HRH_CONFIG}
CLIENT = CLIENT_CONFIG


def home_and_isp(one_way_ms: float) -> nx.Graph[str]:
    g: nx.Graph[str] = nx.Graph()
    g.add_edge("sensor", "hrh1", delay_s=0.0)
    g.add_edge("hrh1", "pe1", delay_s=one_way_ms / 1000)
    return g


CANDS = [Candidate("hrh1", "hrh", True, 0.5, 256), Candidate("pe1", "pe", True, 4.0, 4096)]


def test_policy_is_registered() -> None:
    assert "delay-bound" in POLICIES


def test_isp_when_the_round_trip_fits_the_bound() -> None:
    req = PlacementRequest(cpu=0.1, memory_mb=64, serves="sensor", delay_bound_ms=50)
    p = place(req, CANDS, home_and_isp(10), "delay-bound")
    assert p.node == "pe1"
    assert p.why.startswith("RTT sensor<->pe1 20.0 ms (link delays)")
    assert "<= bound 50 ms: at the ISP" in p.why


def test_hrh_when_the_isp_is_too_far() -> None:
    req = PlacementRequest(cpu=0.1, memory_mb=64, serves="sensor", delay_bound_ms=15)
    p = place(req, CANDS, home_and_isp(10), "delay-bound")
    assert p.node == "hrh1"
    assert "20.3 ms > bound 15 ms" in p.why and "on the HRH hrh1" in p.why


def test_a_measured_rtt_overrides_the_link_delays() -> None:
    req = PlacementRequest(
        cpu=0.1, memory_mb=64, serves="sensor", delay_bound_ms=50, measured_rtt_ms=74.1
    )
    p = place(req, CANDS, home_and_isp(10), "delay-bound")
    assert p.node == "hrh1"
    assert "74.1 ms (measured)" in p.why


def test_no_bound_means_the_isp() -> None:
    req = PlacementRequest(cpu=0.1, memory_mb=64, serves="sensor")
    p = place(req, CANDS, home_and_isp(200), "delay-bound")
    assert p.node == "pe1" and "no delay bound declared" in p.why


def test_full_hrh_and_far_isp_cannot_be_placed() -> None:
    req = PlacementRequest(cpu=1.0, memory_mb=64, serves="sensor", delay_bound_ms=5)
    with pytest.raises(NoPlacement, match="no HRH with room"):
        place(req, CANDS, home_and_isp(10), "delay-bound")


def test_the_requests_bound_decides_and_none_means_the_isp() -> None:
    bound = PlacementRequest(cpu=0.1, memory_mb=64, serves="sensor", delay_bound_ms=15.0)
    assert place(bound, CANDS, home_and_isp(10), "delay-bound").node == "hrh1"
    plain = PlacementRequest(cpu=0.1, memory_mb=64, serves="sensor")
    assert place(plain, CANDS, home_and_isp(10), "delay-bound").node == "pe1"


TOPO: dict[str, Any] = {
    "name": "hrh",
    "nodes": {
        "hrh1": {"kind": "hrh", "lan": "192.168.50.0/24", "cpu": 1, "memory": "512MiB"},
        "pe1": {"kind": "pe", "lan": "10.10.0.0/24", "cpu": 4},
    },
    "hosts": {"sensor": {"node": "hrh1"}},
    "links": [{"a": "hrh1", "b": "pe1", "delay": "10ms", "rate": "50Mbit"}],
}


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


def test_api_places_by_the_descriptors_bound_and_records_why(api: TestClient) -> None:
    names = {d["name"]: d for d in api.get("/api/v1/descriptors").json()}
    assert names["hrh-alarm"]["delay_bound_ms"] == 15.0
    assert names["hrh-climate"]["delay_bound_ms"] == 2000.0

    r = api.get("/api/v1/usbip/placement", params={"descriptor": "hrh-alarm", "serves": "sensor"})
    assert r.status_code == 200, r.text
    assert r.json()["node"] == "hrh1" and "> bound 15 ms" in r.json()["why"]

    alarm = api.post(
        "/api/v1/usbip/functions",
        json={"descriptor": "hrh-alarm", "serves": "sensor", "config": CLIENT},
    )
    climate = api.post(
        "/api/v1/usbip/functions",
        json={"descriptor": "hrh-climate", "serves": "sensor", "config": CLIENT},
    )
    assert alarm.status_code == 201, alarm.text
    assert climate.status_code == 201, climate.text
    assert alarm.json()["node"] == "hrh1"
    assert climate.json()["node"] == "pe1"
    placed = {
        e["data"]["instance"]: e["data"]
        for e in api.get("/api/v1/events?limit=100").json()
        if e["kind"] == "InstancePlaced"
    }
    a = placed[alarm.json()["id"]]
    assert a["policy"] == "delay-bound" and "on the HRH hrh1" in a["why"]
    assert "at the ISP (pe1)" in placed[climate.json()["id"]]["why"]

    # with a measured RTT the climate function's bound still holds; a tiny one would not
    r = api.get(
        "/api/v1/usbip/placement",
        params={"descriptor": "hrh-climate", "serves": "sensor", "measured_rtt_ms": 74.1},
    )
    assert r.json()["node"] == "pe1" and "74.1 ms (measured)" in r.json()["why"]


def test_api_refuses_when_neither_the_isp_nor_the_hrh_can_meet_the_bound(api: TestClient) -> None:
    # Fill the HRH (1 CPU, 512 MiB) with pinned HRH functions until it refuses one:
    # then the alarm (15 ms) has nowhere to go.
    made = 0
    while api.post("/api/v1/instances", json=HRH).status_code == 201:
        made += 1
    assert made == 8  # 8 x 64 MiB
    r = api.post(
        "/api/v1/usbip/functions",
        json={"descriptor": "hrh-alarm", "serves": "sensor", "config": CLIENT},
    )
    assert r.status_code == 409
    assert "delay-bound 15 ms cannot be met" in r.json()["detail"]
    assert "no HRH with room near sensor" in r.json()["detail"]
    r = api.get("/api/v1/usbip/placement", params={"descriptor": "hrh-alarm", "serves": "sensor"})
    assert r.status_code == 409
    r = api.post("/api/v1/usbip/functions", json={"descriptor": "nope", "serves": "sensor"})
    assert r.status_code == 404


def test_the_generic_instances_api_honours_the_descriptors_bound(api: TestClient) -> None:
    # Not through the HRH router: POST /instances passes the descriptor's bound to
    # whichever policy is named.
    for descriptor, node in (("hrh-alarm", "hrh1"), ("hrh-climate", "pe1")):
        r = api.post(
            "/api/v1/instances",
            json={
                "descriptor": descriptor,
                "serves": "sensor",
                "policy": "delay-bound",
                "config": CLIENT,
            },
        )
        assert r.status_code == 201, r.text
        assert r.json()["node"] == node, (descriptor, r.json())
