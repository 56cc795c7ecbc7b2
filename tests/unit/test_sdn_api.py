"""The SDN API in-process (SQLite): intents, the controller's view, events, flow tables."""

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
from netfate.orchestrator.sdn.api import router as sdn_router
from netfate.orchestrator.sdn.intents import ViewAndIntents, cookie_for

TOPO: dict[str, Any] = {
    "name": "t",
    "nodes": {
        "cpe1": {"kind": "cpe", "lan": "192.168.1.0/24"},
        "cpe2": {"kind": "cpe", "lan": "192.168.2.0/24"},
        "pe1": {"kind": "pe"},
    },
    "hosts": {"laptop1": {"node": "cpe1"}, "laptop2": {"node": "cpe2"}},
    "links": [{"a": "cpe1", "b": "pe1"}, {"a": "cpe2", "b": "pe1"}],
}

PORTS = {
    "cpe1": [
        {"name": "c1h", "ofport": 1, "peer": "host:laptop1"},
        {"name": "c1up", "ofport": 2, "peer": "node:pe1"},
        {"name": "c1l", "ofport": 3, "peer": "local:cpe1"},
    ],
    "cpe2": [
        {"name": "c2h", "ofport": 1, "peer": "host:laptop2"},
        {"name": "c2up", "ofport": 2, "peer": "node:pe1"},
        {"name": "c2l", "ofport": 3, "peer": "local:cpe2"},
    ],
    "pe1": [
        {"name": "p1", "ofport": 1, "peer": "node:cpe1"},
        {"name": "p2", "ofport": 2, "peer": "node:cpe2"},
        {"name": "pl", "ofport": 3, "peer": "local:pe1"},
    ],
}


def _app(db_url: str) -> Any:
    app = create_app(Settings(database_url=db_url))
    # Mounted by the orchestrator's router list once wired; mount here if it is not yet.
    if not any(getattr(r, "path", "") == "/api/v1/intents" for r in app.routes):
        app.include_router(sdn_router, prefix="/api/v1")
    return app


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'o.db'}"


@pytest.fixture
def api(db_url: str) -> Iterator[TestClient]:
    with authn.client(_app(db_url)) as c:
        assert c.put("/api/v1/topology", json=TOPO).status_code == 200
        for i, n in enumerate(("cpe1", "cpe2", "pe1")):
            r = c.post(f"/api/v1/agents/{n}/register", json={"endpoint": f"127.0.0.1:{9000 + i}"})
            assert r.status_code == 200, r.text
            r = c.post(
                f"/api/v1/agents/{n}/report",
                json={"datapath_id": f"{i + 1:016x}", "ports": PORTS[n]},
            )
            assert r.status_code == 200, r.text
        yield c


def conn(iid: str = "c1", a: str = "host:laptop1", b: str = "host:laptop2") -> dict[str, Any]:
    return {"kind": "connectivity", "id": iid, "a": a, "b": b}


def test_view_has_nodes_ports_hosts_and_a_version(api: TestClient) -> None:
    r = api.get("/api/v1/sdn/view")
    assert r.status_code == 200
    data = ViewAndIntents.model_validate(r.json())
    assert {n.name: n.dpid for n in data.view.nodes} == {"cpe1": 1, "cpe2": 2, "pe1": 3}
    cpe1 = next(n for n in data.view.nodes if n.name == "cpe1")
    assert [p.peer for p in cpe1.ports] == ["host:laptop1", "node:pe1", "local:cpe1"]
    hosts = {h.name: h for h in data.view.hosts}
    assert hosts["laptop1"].mac and hosts["laptop1"].ip and "/" not in hosts["laptop1"].ip
    v1 = r.json()["version"]
    assert api.get("/api/v1/sdn/view").json()["version"] == v1
    assert api.post("/api/v1/intents", json=conn()).status_code == 201
    assert api.get("/api/v1/sdn/view").json()["version"] != v1


def test_add_list_get_delete(api: TestClient) -> None:
    r = api.post("/api/v1/intents", json=conn())
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["state"] == "active" and body["flows"] > 0
    assert body["cookie"] == f"{cookie_for('c1'):#018x}"
    assert [i["intent"]["id"] for i in api.get("/api/v1/intents").json()] == ["c1"]
    assert api.get("/api/v1/intents/c1").json()["intent"]["b"] == "host:laptop2"
    assert api.delete("/api/v1/intents/c1").json() == {"deleted": "c1"}
    assert api.get("/api/v1/intents").json() == []
    assert api.delete("/api/v1/intents/c1").status_code == 404
    assert api.get("/api/v1/intents/c1").status_code == 404
    kinds = [e["kind"] for e in api.get("/api/v1/events?limit=100").json()]
    assert "intent_added" in kinds and "intent_deleted" in kinds


def test_generated_id(api: TestClient) -> None:
    r = api.post(
        "/api/v1/intents",
        json={"kind": "connectivity", "a": "host:laptop1", "b": "subnet:0.0.0.0/0@cpe1"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["intent"]["id"].startswith("connectivity-")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (conn(b="host:nobody"), "unknown host 'nobody'"),
        (
            {
                "kind": "steering",
                "id": "s",
                "host": "laptop1",
                "chain": ["vnf9"],
                "to": "host:laptop2",
            },
            "unknown instance 'vnf9'",
        ),
        (conn(b="subnet:10.0.0.0/8@mars"), "unknown node 'mars'"),
        (conn(b="subnet:10.0.0.0/8@pe1/eth9"), "unknown port 'pe1/eth9'"),
    ],
)
def test_unknown_names_are_422_and_install_nothing(
    api: TestClient, body: dict[str, Any], needle: str
) -> None:
    before = api.get("/api/v1/sdn/view").json()
    r = api.post("/api/v1/intents", json=body)
    assert r.status_code == 422
    assert needle in r.json()["detail"]
    assert api.get("/api/v1/intents").json() == []
    assert api.get("/api/v1/sdn/view").json() == before


def test_malformed_intents_are_422(api: TestClient) -> None:
    for body in (
        {"kind": "tunnel", "id": "t", "a": "host:laptop1", "b": "host:laptop2", "protocol": "tcp"},
        {"kind": "nonsense"},
        {"kind": "connectivity", "id": "c", "a": "laptop1", "b": "host:laptop2"},
        {"kind": "connectivity", "id": "c", "a": "host:laptop1", "b": "host:laptop2", "x": 1},
    ):
        r = api.post("/api/v1/intents", json=body)
        assert r.status_code == 422, body
        assert r.json()["detail"]
    assert api.get("/api/v1/intents").json() == []


def test_conflicts_are_409_with_the_reason(api: TestClient) -> None:
    assert api.post("/api/v1/intents", json=conn()).status_code == 201
    r = api.post("/api/v1/intents", json=conn())
    assert r.status_code == 409 and "already exists" in r.json()["detail"]
    r = api.post("/api/v1/intents", json=conn("c2", "host:laptop2", "host:laptop1"))
    assert r.status_code == 409 and "already connects" in r.json()["detail"]
    tunnel = {
        "kind": "tunnel",
        "id": "t1",
        "a": "host:laptop1",
        "b": "host:laptop2",
        "protocol": "tcp",
        "port": 3240,
    }
    r = api.post("/api/v1/intents", json=tunnel)
    assert (
        r.status_code == 409 and "overlaps" in r.json()["detail"] and "'c1'" in r.json()["detail"]
    )
    assert [i["intent"]["id"] for i in api.get("/api/v1/intents").json()] == ["c1"]


def _laptop1(api: TestClient) -> tuple[str | None, int | None]:
    hosts = api.get("/api/v1/sdn/view").json()["view"]["hosts"]
    h = next(h for h in hosts if h["name"] == "laptop1")
    return h["node"], h["ofport"]


def test_host_seen_event_moves_the_host_in_the_view(api: TestClient) -> None:
    view = api.get("/api/v1/sdn/view").json()["view"]
    mac = next(h["mac"] for h in view["hosts"] if h["name"] == "laptop1")
    # laptop1 plugs into a free port of cpe2 (no peer named on it).
    report = {"ports": [*PORTS["cpe2"], {"name": "c2free", "ofport": 7, "peer": None}]}
    assert api.post("/api/v1/agents/cpe2/report", json=report).status_code == 200
    ev = {
        "kind": "host_seen",
        "node": "cpe2",
        "port": "c2free",
        "ofport": 7,
        "mac": mac.upper(),
        "ip": "192.168.1.10",
        "time": 1.0,
        "known_as": "laptop1",
    }
    assert api.post("/api/v1/sdn/events", json=ev).status_code == 202
    assert _laptop1(api) == ("cpe2", 7)
    # The port goes away (unplugged): the sighting no longer says where laptop1 is.
    assert api.post("/api/v1/agents/cpe2/report", json={"ports": PORTS["cpe2"]}).status_code == 200
    assert _laptop1(api) == ("cpe1", None)
    # Seen on another host's own port (a copied MAC): that does not move laptop1.
    ev.update(port="c2h", ofport=1)
    assert api.post("/api/v1/sdn/events", json=ev).status_code == 202
    assert _laptop1(api) == ("cpe1", None)
    events = api.get("/api/v1/events?limit=100").json()
    assert any(e["kind"] == "host_seen" and e["data"]["node"] == "cpe2" for e in events)


def test_a_mac_no_host_has_is_recorded_as_an_event_only(api: TestClient, db_url: str) -> None:
    """Sightings are read for hosts' MACs only: an instance's MAC, or any address a
    device makes up, must not add a row each (they would only ever add up)."""
    from netfate.orchestrator.sdn.tables import SdnHostSightingRow
    from netfate.store.db import Database

    for i in range(3):
        ev = {
            "kind": "host_seen",
            "node": "cpe1",
            "port": "c1h",
            "ofport": 1,
            "mac": f"02:4e:00:00:00:0{i}",
            "ip": None,
            "time": 1.0,
        }
        assert api.post("/api/v1/sdn/events", json=ev).status_code == 202
    events = api.get("/api/v1/events?limit=100").json()
    assert sum(e["kind"] == "host_seen" for e in events) == 3
    db = Database(db_url)
    try:
        with db.session() as s:
            assert s.query(SdnHostSightingRow).count() == 0
    finally:
        db.dispose()


def test_bad_events_are_422(api: TestClient) -> None:
    assert api.post("/api/v1/sdn/events", json={"kind": "weird"}).status_code == 422
    assert (
        api.post("/api/v1/sdn/events", json={"kind": "host_seen", "node": "x"}).status_code == 422
    )


def test_flow_snapshot_round_trip(api: TestClient) -> None:
    assert api.get("/api/v1/nodes/cpe1/flows").json()["flows"] == []
    flows = [
        {
            "cookie": "0x4e46000000000000",
            "priority": 0,
            "match": {},
            "actions": "drop",
            "packets": 7,
            "bytes": 700,
            "table": 0,
            "duration_s": 1.0,
            "idle_timeout": 0,
        }
    ]
    snap = {
        "kind": "flows",
        "node": "cpe1",
        "dpid": "0000000000000001",
        "time": 5.0,
        "flows": flows,
        "ports": [{"port_no": 1, "rx_packets": 3}],
    }
    assert api.post("/api/v1/sdn/events", json=snap).status_code == 202
    got = api.get("/api/v1/nodes/cpe1/flows").json()
    assert got["flows"][0]["packets"] == 7 and got["ports"][0]["rx_packets"] == 3
    assert api.get("/api/v1/nodes/nowhere/flows").status_code == 404


def test_intents_survive_an_orchestrator_restart(db_url: str, api: TestClient) -> None:
    assert api.post("/api/v1/intents", json=conn()).status_code == 201
    with authn.client(_app(db_url)) as c2:
        assert [i["intent"]["id"] for i in c2.get("/api/v1/intents").json()] == ["c1"]
        assert [i["id"] for i in c2.get("/api/v1/sdn/view").json()["intents"]] == ["c1"]


def test_pending_state_when_an_instance_has_no_port(api: TestClient) -> None:
    # A host that no access port names yet (and no sighting): pending, not refused.
    r = api.post("/api/v1/intents", json=conn("c9", "host:laptop2", "subnet:0.0.0.0/0@cpe1"))
    assert r.status_code == 201
    assert r.json()["state"] == "active"
    report = {"ports": [p for p in PORTS["cpe2"] if p["peer"] != "host:laptop2"]}
    assert api.post("/api/v1/agents/cpe2/report", json=report).status_code == 200
    got = api.get("/api/v1/intents/c9").json()
    assert got["state"] == "pending" and "laptop2" in got["reason"]


def test_fabric_adds_the_base_intents_once(api: TestClient) -> None:
    r = api.post("/api/v1/sdn/fabric")
    assert r.status_code == 201, r.text
    added = set(r.json()["added"])
    assert {"fabric-gw-laptop1", "fabric-gw-laptop2", "fabric-lan-cpe1-0-cpe2-0"} <= added
    assert {
        "fabric-transit-cpe1-cpe2",
        "fabric-transit-cpe1-pe1",
        "fabric-transit-cpe2-pe1",
    } <= added
    assert r.json()["refused"] == {}
    states = {i["intent"]["id"]: i["state"] for i in api.get("/api/v1/intents").json()}
    assert set(states) == added and set(states.values()) == {"active"}
    again = api.post("/api/v1/sdn/fabric").json()
    assert again["added"] == [] and set(again["kept"]) == added


def test_install_error_event_lands_in_the_event_log(api: TestClient) -> None:
    ev = {
        "kind": "install_error",
        "node": "cpe1",
        "intents": ["x"],
        "errors": ["OFPT_ERROR type=2 code=4 xid=9"],
        "time": 3.0,
    }
    assert api.post("/api/v1/sdn/events", json=ev).status_code == 202
    events = api.get("/api/v1/events?limit=50").json()
    assert any(e["kind"] == "sdn_install_error" and e["data"]["intents"] == ["x"] for e in events)


def test_view_long_poll_answers_when_the_version_changes(api: TestClient) -> None:
    import threading

    v0 = api.get("/api/v1/sdn/view").json()["version"]
    # Unchanged: the poll ends at its wait with the same version.
    assert api.get("/api/v1/sdn/view", params={"since": v0, "wait": 0.2}).json()["version"] == v0
    t = threading.Timer(0.3, lambda: api.post("/api/v1/intents", json=conn("c5")))
    t.start()
    try:
        got = api.get("/api/v1/sdn/view", params={"since": v0, "wait": 10}).json()
    finally:
        t.join()
    assert got["version"] != v0 and [i["id"] for i in got["intents"]] == ["c5"]


def test_status_tells_accepted_from_installed(api: TestClient) -> None:
    st = api.get("/api/v1/sdn/status").json()
    assert st["in_sync"] is False and st["installed_version"] is None
    ev = {"kind": "installed", "version": st["version"], "time": 5.0}
    assert api.post("/api/v1/sdn/events", json=ev).status_code == 202
    assert api.get("/api/v1/sdn/status").json() == {
        "version": st["version"], "installed_version": st["version"],
        "installed_at": 5.0, "in_sync": True,
    }  # fmt: skip
    assert api.post("/api/v1/intents", json=conn("c6")).status_code == 201
    assert api.get("/api/v1/sdn/status").json()["in_sync"] is False  # a new intent: not yet
    bad = api.post("/api/v1/sdn/events", json={"kind": "installed", "version": 3})
    assert bad.status_code == 422


def test_instance_moved_is_in_the_event_log(api: TestClient) -> None:
    ev = {"kind": "instance_moved", "instance": "fw1", "node": "cpe2", "ofport": 7,
          "time": 9.5, "install_ms": 4.2}  # fmt: skip
    assert api.post("/api/v1/sdn/events", json=ev).status_code == 202
    (got,) = [e for e in api.get("/api/v1/events?tail=50").json() if e["kind"] == "steering_moved"]
    assert got["data"] == {k: v for k, v in ev.items() if k != "kind"}
    bad = {**ev, "ofport": "seven"}
    assert api.post("/api/v1/sdn/events", json=bad).status_code == 422
