"""REST API cases, run in-process with agents played by the test.

Collected twice: by tests/unit/test_api_sqlite.py (SQLite in a temp dir) and by
tests/netns/test_api_postgres.py (a real PostgreSQL server the test starts). Each
defines the `db_url` fixture; everything else is shared.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
from netfate.orchestrator.app import Settings, create_app

TOPO: dict[str, Any] = {
    "name": "t",
    "nodes": {
        "cpe1": {"kind": "cpe", "lan": "192.168.1.0/24", "cpu": 1},
        "cpe2": {"kind": "cpe", "lan": "192.168.2.0/24", "cpu": 0.15},
        "pe1": {"kind": "pe", "cpu": 4},
        "core1": {"kind": "core"},
    },
    "hosts": {"laptop1": {"node": "cpe1"}, "laptop2": {"node": "cpe2"}},
    "links": [
        {"a": "cpe1", "b": "pe1", "delay": "5ms"},
        {"a": "cpe2", "b": "pe1", "delay": "5ms"},
        {"a": "pe1", "b": "core1"},
    ],
}


@pytest.fixture
def api(db_url: str) -> Iterator[TestClient]:
    # No heartbeats come from these test agents: a long timeout keeps the watchdog
    # from marking nodes unreachable in the middle of a slow test.
    app = create_app(Settings(database_url=db_url, heartbeat_timeout_s=3600))
    with authn.client(app) as c:
        assert c.put("/api/v1/topology", json=TOPO).status_code == 200
        for n in ("cpe1", "cpe2", "pe1", "core1"):
            r = c.post(f"/api/v1/agents/{n}/register", json={"endpoint": f"127.0.0.1:{n}0"[:20]})
            assert r.status_code == 200, r.text
        yield c


def snapshot(c: TestClient) -> tuple[Any, ...]:
    return (
        c.get("/api/v1/instances?include_gone=true").json(),
        len(c.get("/api/v1/events?limit=5000").json()),
        c.get("/api/v1/migrations").json(),
        [n["revision"] for n in c.get("/api/v1/nodes").json()],
    )


def report(c: TestClient, node: str, **body: Any) -> None:
    r = c.post(f"/api/v1/agents/{node}/report", json=body)
    assert r.status_code == 200, r.text


def running(c: TestClient, **create: Any) -> dict[str, Any]:
    r = c.post("/api/v1/instances", json={"descriptor": "counter", **create})
    assert r.status_code == 201, r.text
    inst: dict[str, Any] = r.json()
    report(c, inst["node"], instances=[{"id": inst["id"], "status": "running", "pid": 42}])
    return dict(c.get(f"/api/v1/instances/{inst['id']}").json())


def test_openapi_document(api: TestClient) -> None:
    doc = api.get("/api/v1/openapi.json").json()
    assert "/api/v1/instances" in doc["paths"]
    assert "/api/v1/instances/{iid}/migrate" in doc["paths"]


def test_topology_loaded(api: TestClient) -> None:
    t = api.get("/api/v1/topology").json()
    assert {n["name"] for n in t["nodes"]} == {"cpe1", "cpe2", "pe1", "core1"}
    assert {h["name"]: h["node"] for h in t["hosts"]} == {"laptop1": "cpe1", "laptop2": "cpe2"}
    assert all(n["status"] == "up" for n in t["nodes"])


def test_create_places_nearest_and_records_transitions(api: TestClient) -> None:
    inst = running(api, serves="laptop1")
    assert inst["node"] == "cpe1"
    assert inst["ip"].startswith("192.168.1.") and inst["mac"].startswith("02:4e:")
    states = [t["state"] for t in inst["transitions"]]
    assert states == ["requested", "starting", "running"]
    ats = [t["at"] for t in inst["transitions"]]
    assert ats == sorted(ats)


def test_full_node_sends_the_instance_to_the_next_nearest(api: TestClient) -> None:
    running(api, serves="laptop2")  # 0.1 of cpe2's 0.15 CPU
    second = running(api, serves="laptop2")
    assert second["node"] == "pe1"


def test_desired_state_lists_the_instance_with_gateway(api: TestClient) -> None:
    inst = running(api, node="cpe1")
    desired = api.get("/api/v1/agents/cpe1/desired").json()
    (spec,) = desired["instances"]
    assert spec["id"] == inst["id"] and spec["gateway"] == "192.168.1.1"
    assert spec["role"] == "active" and spec["function"] == "counter"


def test_long_poll_returns_early_on_change(api: TestClient) -> None:
    rev = api.get("/api/v1/agents/cpe1/desired").json()["revision"]
    # Without a change the poll waits and returns the same revision.
    same = api.get(f"/api/v1/agents/cpe1/desired?revision={rev}&wait=0.2").json()
    assert same["revision"] == rev
    api.post("/api/v1/instances", json={"descriptor": "counter", "node": "cpe1"})
    after = api.get(f"/api/v1/agents/cpe1/desired?revision={rev}&wait=5").json()
    assert after["revision"] > rev and len(after["instances"]) == 1


def test_migration_make_before_break_records_downtime(api: TestClient) -> None:
    inst = running(api, node="cpe1")
    r = api.post(f"/api/v1/instances/{inst['id']}/migrate", json={"node": "pe1"})
    assert r.status_code == 202, r.text
    mig = r.json()
    # The source keeps it active while the target gets a standby copy.
    src = api.get("/api/v1/agents/cpe1/desired").json()["instances"]
    dst = api.get("/api/v1/agents/pe1/desired").json()["instances"]
    assert src[0]["role"] == "active" and src[0]["migration"]["role"] == "source"
    assert dst[0]["role"] == "standby" and dst[0]["migration"]["peer_endpoint"]
    assert api.get(f"/api/v1/instances/{inst['id']}").json()["state"] == "migrating"
    done = {
        "id": mig["id"],
        "instance": inst["id"],
        "status": "done",
        "downtime_ms": 1.5,
        "state_bytes": 40,
    }
    report(
        api,
        "pe1",
        migrations=[done],
        instances=[{"id": inst["id"], "status": "running", "role": "active"}],
    )
    report(api, "pe1", migrations=[done])  # repeated reports change nothing more
    after = api.get(f"/api/v1/instances/{inst['id']}").json()
    assert after["node"] == "pe1" and after["state"] == "running"
    assert after["migrations"][0]["downtime_ms"] == 1.5
    assert [t["state"] for t in after["transitions"]][-2:] == ["migrating", "running"]
    kinds = [e["kind"] for e in api.get("/api/v1/events?limit=5000").json()]
    assert kinds.count("InstanceMigrated") == 1
    assert api.get("/api/v1/agents/cpe1/desired").json()["instances"] == []


def test_a_migrations_secret_is_in_its_two_agents_desired_states_only(api: TestClient) -> None:
    """The agents prove it to each other (agent/migration_auth.py): it is random per
    migration, and no read of the API nor any event shows it."""
    first, mig = _moving(api)
    src = api.get("/api/v1/agents/cpe1/desired").json()["instances"][0]["migration"]
    dst = api.get("/api/v1/agents/pe1/desired").json()["instances"][0]["migration"]
    secret = src["secret"]
    assert len(secret) == 64 and int(secret, 16) and dst["secret"] == secret
    assert mig["id"] == src["id"] == dst["id"]
    second = running(api, node="cpe1")
    api.post(f"/api/v1/instances/{second['id']}/migrate", json={"node": "pe1"})
    others = [
        i["migration"]["secret"]
        for i in api.get("/api/v1/agents/pe1/desired").json()["instances"]
        if i["id"] == second["id"]
    ]
    assert others and others[0] != secret
    reads = [
        "/api/v1/instances?include_gone=true",
        f"/api/v1/instances/{first['id']}",
        "/api/v1/migrations",
        "/api/v1/events?limit=5000",
        "/api/v1/nodes",
        "/api/v1/openapi.json",
    ]
    for path in reads:
        r = api.get(path)
        assert r.status_code == 200, path
        assert secret not in r.text and others[0] not in r.text, path


def test_failed_migration_keeps_the_instance_at_the_source(api: TestClient) -> None:
    inst = running(api, node="cpe1")
    mig = api.post(f"/api/v1/instances/{inst['id']}/migrate", json={"node": "pe1"}).json()
    report(
        api,
        "pe1",
        migrations=[
            {"id": mig["id"], "instance": inst["id"], "status": "failed", "reason": "target full"}
        ],
    )
    after = api.get(f"/api/v1/instances/{inst['id']}").json()
    assert after["node"] == "cpe1" and after["state"] == "running"
    assert after["migrations"][0]["phase"] == "failed"


def _moving(api: TestClient) -> tuple[dict[str, Any], dict[str, Any]]:
    inst = running(api, node="cpe1")
    r = api.post(f"/api/v1/instances/{inst['id']}/migrate", json={"node": "pe1"})
    assert r.status_code == 202, r.text
    return inst, r.json()


def _says(api: TestClient, node: str, inst: dict[str, Any], mig: dict[str, Any], **m: Any) -> None:
    report(api, node, migrations=[{"id": mig["id"], "instance": inst["id"], **m}])


def _migration(api: TestClient, inst: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = api.get(f"/api/v1/instances/{inst['id']}").json()["migrations"][0]
    return found


def _expire(api: TestClient, deadline_s: float) -> set[str]:
    from netfate.orchestrator.nfv import coordinator as nfv

    app: Any = api.app
    with app.state.db.session() as s:
        return nfv.expire_migrations(s, deadline_s)


def test_a_late_migration_is_aborted_and_rolled_back_on_an_agents_word(api: TestClient) -> None:
    inst, mig = _moving(api)
    assert _expire(api, 3600) == set()
    assert _expire(api, 0.0) == {"cpe1", "pe1"}
    assert _expire(api, 0.0) == set()  # once
    m = _migration(api, inst)
    assert m["phase"] == "aborting" and "deadline of 0 s passed" in m["reason"]
    (src,) = api.get("/api/v1/agents/cpe1/desired").json()["instances"]
    (dst,) = api.get("/api/v1/agents/pe1/desired").json()["instances"]
    assert src["migration"]["abort"] is True and dst["migration"]["abort"] is True
    # The orchestrator does not pick the outcome alone: only an agent knows it.
    assert api.get(f"/api/v1/instances/{inst['id']}").json()["state"] == "migrating"
    _says(api, "cpe1", inst, mig, status="refused", reason="not frozen yet")
    m = _migration(api, inst)
    assert m["phase"] == "failed"
    assert m["reason"] == "deadline passed, rolled back: cpe1 refused to freeze: not frozen yet"
    after = api.get(f"/api/v1/instances/{inst['id']}").json()
    assert after["node"] == "cpe1" and after["state"] == "running"
    kinds = [e["kind"] for e in api.get("/api/v1/events?limit=5000").json()]
    assert kinds.count("MigrationDeadlinePassed") == 1 and kinds.count("MigrationFailed") == 1
    assert api.get("/api/v1/agents/pe1/desired").json()["instances"] == []


def test_a_target_with_the_final_state_completes_after_the_deadline(api: TestClient) -> None:
    inst, mig = _moving(api)
    _expire(api, 0.0)
    _says(api, "pe1", inst, mig, status="done", downtime_ms=2.0, state_bytes=10)
    assert _migration(api, inst)["phase"] == "done"
    after = api.get(f"/api/v1/instances/{inst['id']}").json()
    assert after["node"] == "pe1" and after["state"] == "running"


def test_only_the_two_sides_speak_for_a_migration(api: TestClient) -> None:
    inst, mig = _moving(api)
    _says(api, "cpe2", inst, mig, status="failed", reason="not mine")  # neither side
    _says(api, "cpe1", inst, mig, status="done", downtime_ms=1.0)  # the target's word
    _says(api, "pe1", inst, mig, status="refused")  # the source's word
    assert _migration(api, inst)["phase"] == "pending"
    _says(api, "pe1", inst, mig, status="preparing")
    assert _migration(api, inst)["phase"] == "preparing"
    r = api.post(
        "/api/v1/agents/pe1/report",
        json={"migrations": [{"id": mig["id"], "instance": inst["id"], "status": "exploded"}]},
    )
    assert r.status_code == 422


def test_a_release_is_the_move_only_when_the_target_went_quiet(api: TestClient) -> None:
    from netfate.store.tables import NodeRow

    inst, mig = _moving(api)
    _says(api, "cpe1", inst, mig, status="frozen")
    assert "cpe1 froze it" in _migration(api, inst)["reason"]
    _says(api, "cpe1", inst, mig, status="released")
    assert _migration(api, inst)["phase"] == "pending"  # pe1 is up: it reports with figures
    app: Any = api.app
    with app.state.db.session() as s:
        node = s.get(NodeRow, "pe1")
        assert node is not None
        node.status = "unreachable"
    _says(api, "cpe1", inst, mig, status="released")
    m = _migration(api, inst)
    assert m["phase"] == "done" and m["downtime_ms"] is None and "has not reported" in m["reason"]
    after = api.get(f"/api/v1/instances/{inst['id']}").json()
    assert after["node"] == "pe1" and after["state"] == "running"
    _says(api, "pe1", inst, mig, status="done", downtime_ms=3.0, state_bytes=9)
    m = _migration(api, inst)
    assert (m["phase"], m["downtime_ms"], m["state_bytes"]) == ("done", 3.0, 9)


def test_destroy_then_agent_removal_makes_it_gone(api: TestClient) -> None:
    inst = running(api, node="cpe1")
    assert api.delete(f"/api/v1/instances/{inst['id']}").json()["state"] == "stopping"
    assert api.get("/api/v1/agents/cpe1/desired").json()["instances"] == []
    report(api, "cpe1", instances=[])
    assert api.get(f"/api/v1/instances/{inst['id']}").json()["state"] == "gone"
    assert api.get("/api/v1/instances").json() == []


def test_agent_failure_is_recorded(api: TestClient) -> None:
    r = api.post("/api/v1/instances", json={"descriptor": "counter", "node": "cpe1"}).json()
    report(api, "cpe1", instances=[{"id": r["id"], "status": "failed", "detail": "boom"}])
    got = api.get(f"/api/v1/instances/{r['id']}").json()
    assert got["state"] == "failed" and got["detail"] == "boom"


def test_unreachable_after_missed_heartbeats(db_url: str) -> None:
    app = create_app(Settings(database_url=db_url, heartbeat_timeout_s=0.2))
    with authn.client(app) as c:
        c.put("/api/v1/topology", json=TOPO)
        c.post("/api/v1/agents/cpe1/register", json={"endpoint": "127.0.0.1:1"})
        # Wait for the state (bounded in time, not a timing assertion).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if c.get("/api/v1/nodes/cpe1").json()["status"] == "unreachable":
                break
            c.get("/api/v1/agents/cpe2/desired?wait=0.05")
        assert c.get("/api/v1/nodes/cpe1").json()["status"] == "unreachable"
        report(c, "cpe1")
        assert c.get("/api/v1/nodes/cpe1").json()["status"] == "up"


# ------------------------------------------------------------------ bad input changes nothing


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "reason"),
    [
        ("post", "/api/v1/instances", {"descriptor": 5}, 422, "descriptor"),
        ("post", "/api/v1/instances", {"descriptor": "counter", "cpu": 2}, 422, "cpu"),
        ("post", "/api/v1/instances", {"descriptor": "nope"}, 404, "unknown descriptor"),
        (
            "post",
            "/api/v1/instances",
            {"descriptor": "counter", "node": "x"},
            404,
            "unknown node 'x'",
        ),
        (
            "post",
            "/api/v1/instances",
            {"descriptor": "counter", "node": "core1"},
            409,
            "no node has room",
        ),
        (
            "post",
            "/api/v1/instances",
            {"descriptor": "counter", "serves": "ghost"},
            404,
            "unknown host 'ghost'",
        ),
        (
            "post",
            "/api/v1/instances",
            {"descriptor": "counter", "policy": "zz"},
            409,
            "unknown placement policy",
        ),
        ("post", "/api/v1/instances", {"descriptor": "counter", "name": "Bad Name"}, 422, "name"),
        ("post", "/api/v1/instances/i-00000000/migrate", {"node": "pe1"}, 404, "unknown instance"),
        ("delete", "/api/v1/instances/i-00000000", None, 404, "unknown instance"),
        ("put", "/api/v1/topology", {"nodes": {"a": {"kind": "cpx"}}}, 422, "nodes.a.kind"),
        ("post", "/api/v1/agents/ghost/report", {}, 404, "unknown node"),
        (
            "post",
            "/api/v1/agents/cpe1/report",
            {"instances": [{"id": "x", "status": "dancing"}]},
            422,
            "status",
        ),
        ("get", "/api/v1/agents/cpe1/desired?wait=99", None, 422, "wait"),
        (
            "put",
            "/api/v1/nodes/cpe1/predeploy",
            {"storage_mb": -1, "standbys": 1},
            422,
            "storage_mb",
        ),
        ("put", "/api/v1/nodes/cpe1/predeploy", {"storage_mb": 1, "standbys": 65}, 422, "standbys"),
        ("put", "/api/v1/nodes/cpe1/predeploy", {"storage_mb": 1}, 422, "standbys"),
        (
            "put",
            "/api/v1/nodes/ghost/predeploy",
            {"storage_mb": 1, "standbys": 1},
            404,
            "unknown node",
        ),
    ],
)
def test_bad_requests_are_refused_and_change_nothing(
    api: TestClient, method: str, path: str, body: Any, status: int, reason: str
) -> None:
    before = snapshot(api)
    kw = {"json": body} if body is not None else {}
    r = api.request(method.upper(), path, **kw)
    assert r.status_code == status, r.text
    assert reason in r.text
    assert snapshot(api) == before


def test_migration_to_a_full_node_is_refused(api: TestClient) -> None:
    inst = running(api, node="pe1")
    running(api, node="cpe2")  # cpe2 now has 0.05 CPU free
    before = snapshot(api)
    r = api.post(f"/api/v1/instances/{inst['id']}/migrate", json={"node": "cpe2"})
    assert r.status_code == 409 and "cannot migrate to cpe2" in r.text
    assert snapshot(api) == before


def test_illegal_transitions_are_refused(api: TestClient) -> None:
    pending = api.post("/api/v1/instances", json={"descriptor": "counter", "node": "cpe1"}).json()
    before = snapshot(api)
    r = api.post(f"/api/v1/instances/{pending['id']}/migrate", json={"node": "pe1"})
    assert r.status_code == 409 and "cannot go from 'requested' to 'migrating'" in r.text
    assert snapshot(api) == before
    inst = running(api, node="cpe1")
    assert (
        api.post(f"/api/v1/instances/{inst['id']}/migrate", json={"node": "cpe1"}).status_code
        == 409
    )
    api.delete(f"/api/v1/instances/{inst['id']}")
    report(api, "cpe1", instances=[])
    before = snapshot(api)
    r = api.delete(f"/api/v1/instances/{inst['id']}")
    assert r.status_code == 409 and "'gone'" in r.text
    assert snapshot(api) == before


def test_removing_a_busy_node_from_the_topology_is_refused(api: TestClient) -> None:
    running(api, node="cpe2")
    smaller = {
        **TOPO,
        "nodes": {k: v for k, v in TOPO["nodes"].items() if k != "cpe2"},
        "hosts": {"laptop1": {"node": "cpe1"}},
        "links": [{"a": "cpe1", "b": "pe1"}, {"a": "pe1", "b": "core1"}],
    }
    before = snapshot(api)
    r = api.put("/api/v1/topology", json=smaller)
    assert r.status_code == 409 and "cpe2" in r.text
    assert snapshot(api) == before


def test_a_died_process_is_restarting_not_failed(api: TestClient) -> None:
    inst = running(api, node="cpe1")
    report(
        api,
        "cpe1",
        instances=[{"id": inst["id"], "status": "starting", "detail": "restarting: killed"}],
    )
    got = api.get(f"/api/v1/instances/{inst['id']}").json()
    assert got["state"] == "starting"
    assert "restarting: killed" in got["transitions"][-1]["reason"]
    assert api.get("/api/v1/agents/cpe1/desired").json()["instances"], "still desired"
    report(api, "cpe1", instances=[{"id": inst["id"], "status": "running"}])
    assert api.get(f"/api/v1/instances/{inst['id']}").json()["state"] == "running"


def test_events_tail_gives_the_newest(api: TestClient) -> None:
    all_events = api.get("/api/v1/events?limit=5000").json()
    tail = api.get("/api/v1/events?tail=2").json()
    assert [e["id"] for e in tail] == [e["id"] for e in all_events[-2:]]


def test_reconfigure_records_the_changed_keys(api: TestClient) -> None:
    inst = running(api, node="cpe1", config={"port": 7777})
    rev = api.get("/api/v1/agents/cpe1/desired").json()["revision"]
    r = api.patch(f"/api/v1/instances/{inst['id']}", json={"config": {"port": 7778}})
    assert r.status_code == 202, r.text
    (spec,) = api.get("/api/v1/agents/cpe1/desired").json()["instances"]
    assert spec["config"] == {"port": 7778}
    assert api.get("/api/v1/agents/cpe1/desired").json()["revision"] > rev
    (e,) = [
        e
        for e in api.get("/api/v1/events?limit=5000").json()
        if e["kind"] == "InstanceReconfigured"
    ]
    assert e["data"]["keys"] == ["port"]


def test_reconfigure_bad_input_changes_nothing(api: TestClient) -> None:
    inst = running(api, node="cpe1")
    before = snapshot(api)
    assert api.patch(f"/api/v1/instances/{inst['id']}", json={"config": 5}).status_code == 422
    assert api.patch("/api/v1/instances/i-00000000", json={"config": {}}).status_code == 404
    api.delete(f"/api/v1/instances/{inst['id']}")
    before = snapshot(api)
    r = api.patch(f"/api/v1/instances/{inst['id']}", json={"config": {}})
    assert r.status_code == 409 and "stopping" in r.text
    assert snapshot(api) == before


def test_agents_forward_function_stats(api: TestClient) -> None:
    inst = running(api, node="cpe1")
    report(api, "cpe1", instances=[{"id": inst["id"], "status": "running", "stats": {"total": 3}}])
    assert api.get(f"/api/v1/instances/{inst['id']}").json()["stats"] == {"total": 3}


def test_predeploy_plan_reaches_the_agent_and_a_warm_create_is_recorded(api: TestClient) -> None:
    """The operator's budget: the plan (with its reasons) is readable, the node's
    desired state carries its images and standbys, and a create its agent served
    from a warm standby says so in its transitions. Nodes without a budget get none."""
    assert api.get("/api/v1/predeploy").json() == {}
    assert "predeploy" not in api.get("/api/v1/agents/cpe1/desired").json()
    first = running(api, node="cpe1")  # demand: one counter at cpe1
    r = api.put("/api/v1/nodes/cpe1/predeploy", json={"storage_mb": 1.0, "standbys": 2})
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["standbys"] == {"counter": 2}
    assert [i["function"] for i in plan["images"] if i["kept"]] == ["counter"]
    assert "1 asked here" in plan["images"][0]["why"]
    assert len(plan["standbys_why"]) == 2
    part = api.get("/api/v1/agents/cpe1/desired").json()["predeploy"]
    assert part == {"images": ["counter"], "standbys": {"counter": 2}}
    assert "predeploy" not in api.get("/api/v1/agents/cpe2/desired").json()
    report(api, "cpe1", resources={"standbys": {"counter": 2}},
           instances=[{"id": first["id"], "status": "running"}])  # fmt: skip
    assert api.get("/api/v1/predeploy").json()["cpe1"]["standbys_ready"] == {"counter": 2}
    inst = api.post("/api/v1/instances", json={"descriptor": "counter", "node": "cpe1"}).json()
    report(api, "cpe1", instances=[
        {"id": first["id"], "status": "running"},
        {"id": inst["id"], "status": "running", "from_standby": True},
    ])  # fmt: skip
    tr = api.get(f"/api/v1/instances/{inst['id']}").json()["transitions"]
    assert [t["state"] for t in tr] == ["requested", "starting", "running"]
    assert all("from a warm standby" in t["reason"] for t in tr[1:])
    assert not any(
        "warm" in t["reason"]
        for t in api.get(f"/api/v1/instances/{first['id']}").json()["transitions"]
    )
    # A budget too small for the image: refused, with the figures, and no standby.
    small = api.put("/api/v1/nodes/cpe1/predeploy", json={"storage_mb": 0.0001, "standbys": 1})
    (img,) = small.json()["images"]
    assert not img["kept"] and "storage budget exceeded" in img["why"]
    assert small.json()["standbys"] == {}
    # 0 and 0: no pre-deployment at all; its agent hears it (the revision moved).
    rev = api.get("/api/v1/nodes/cpe1").json()["revision"]
    api.put("/api/v1/nodes/cpe1/predeploy", json={"storage_mb": 0, "standbys": 0})
    assert api.get("/api/v1/nodes/cpe1").json()["revision"] == rev + 1
    assert "predeploy" not in api.get("/api/v1/agents/cpe1/desired").json()


def test_a_topology_files_predeploy_budget_applies_and_an_operators_later_one_wins(
    api: TestClient,
) -> None:
    """A node's `predeploy:` in the topology file is its budget once loaded; a bad
    file changes nothing; a reload of the same file changes nothing either; a
    budget the operator sets through the API wins over the file on every reload."""
    import copy

    def revisions() -> dict[str, int]:
        return {n["name"]: n["revision"] for n in api.get("/api/v1/nodes").json()}

    def budgets() -> dict[str, tuple[Any, Any, Any]]:
        plans = api.get("/api/v1/predeploy").json()
        return {
            n: (p["budget"]["storage_mb"], p["budget"]["standbys"], p["set_by"])
            for n, p in plans.items()
        }

    running(api, node="cpe1")  # demand: one counter at cpe1
    doc = copy.deepcopy(TOPO)
    doc["nodes"]["cpe1"]["predeploy"] = {"storage_mb": 1.0, "standbys": 2}
    doc["nodes"]["pe1"]["predeploy"] = {"storage_mb": 2, "standbys": 1}
    before = revisions()
    assert api.put("/api/v1/topology", json=doc).status_code == 200
    assert budgets() == {"cpe1": (1.0, 2, "topology"), "pe1": (2.0, 1, "topology")}
    after = revisions()  # the two agents hear their plans; the others are untouched
    assert after == {**before, "cpe1": before["cpe1"] + 1, "pe1": before["pe1"] + 1}
    part = api.get("/api/v1/agents/cpe1/desired").json()["predeploy"]
    assert part == {"images": ["counter"], "standbys": {"counter": 2}}
    assert "predeploy" not in api.get("/api/v1/agents/cpe2/desired").json()
    document = api.get("/api/v1/topology").json()["document"]
    assert document["nodes"]["cpe1"]["predeploy"] == {"storage_mb": 1.0, "standbys": 2}

    # A bad file: a keyed error, and nothing changed (budgets, revisions, document).
    bad = copy.deepcopy(doc)
    bad["nodes"]["cpe2"]["predeploy"] = {"storage_mb": 5, "standbys": 1}
    bad["nodes"]["pe1"]["predeploy"] = {"storage_mb": -1, "standbys": 0}
    r = api.put("/api/v1/topology", json=bad)
    assert r.status_code == 422 and "nodes.pe1.predeploy.storage_mb" in r.text, r.text
    assert budgets() == {"cpe1": (1.0, 2, "topology"), "pe1": (2.0, 1, "topology")}
    assert revisions() == after
    assert api.get("/api/v1/topology").json()["document"] == document

    # The same file again: nothing to change, no agent disturbed.
    assert api.put("/api/v1/topology", json=doc).status_code == 200
    assert budgets() == {"cpe1": (1.0, 2, "topology"), "pe1": (2.0, 1, "topology")}
    assert revisions() == after

    # The operator's budgets (pe1's 0 and 0 included) win over every reload.
    api.put("/api/v1/nodes/cpe1/predeploy", json={"storage_mb": 0.0001, "standbys": 1})
    api.put("/api/v1/nodes/pe1/predeploy", json={"storage_mb": 0, "standbys": 0})
    assert budgets() == {"cpe1": (0.0001, 1, "operator")}
    assert api.put("/api/v1/topology", json=doc).status_code == 200
    assert budgets() == {"cpe1": (0.0001, 1, "operator")}
    assert "predeploy" not in api.get("/api/v1/agents/pe1/desired").json()

    # A changed file: its new budget applies where the operator set none, and a
    # budget that came from the file goes when the file drops it.
    changed = copy.deepcopy(TOPO)
    changed["nodes"]["cpe2"]["predeploy"] = {"storage_mb": 3, "standbys": 0}
    changed["nodes"]["core1"]["predeploy"] = {"storage_mb": 4, "standbys": 1}
    assert api.put("/api/v1/topology", json=changed).status_code == 200
    assert budgets() == {
        "cpe1": (0.0001, 1, "operator"),
        "cpe2": (3.0, 0, "topology"),
        "core1": (4.0, 1, "topology"),
    }
    del changed["nodes"]["core1"]["predeploy"]
    assert api.put("/api/v1/topology", json=changed).status_code == 200
    assert budgets() == {"cpe1": (0.0001, 1, "operator"), "cpe2": (3.0, 0, "topology")}


def test_an_orchestrator_restarted_on_its_topology_file_keeps_the_operators_budget(
    db_url: str, tmp_path: Any
) -> None:
    """`--topology FILE` loads the file at each start: the file's budget applies on
    the first, and an operator's budget set in between survives the next."""
    import json

    doc = {**TOPO, "nodes": {**TOPO["nodes"], "pe1": {"kind": "pe", "cpu": 4,
           "predeploy": {"storage_mb": 2, "standbys": 1}}}}  # fmt: skip
    path = tmp_path / "topo.json"  # YAML's subset: JSON parses as YAML
    path.write_text(json.dumps(doc))
    settings = Settings(database_url=db_url, heartbeat_timeout_s=3600, topology=path)

    def budget(c: TestClient) -> Any:
        p = c.get("/api/v1/predeploy").json().get("pe1")
        return p and (p["budget"], p["set_by"])

    with authn.client(create_app(settings)) as c:
        assert budget(c) == ({"storage_mb": 2.0, "standbys": 1}, "topology")
        r = c.put("/api/v1/nodes/pe1/predeploy", json={"storage_mb": 7, "standbys": 0})
        assert r.status_code == 200, r.text
    with authn.client(create_app(settings)) as c:
        assert budget(c) == ({"storage_mb": 7.0, "standbys": 0}, "operator")


def test_predeploy_demand_counts_moves_in_where_they_went_and_creates_where_made(
    api: TestClient,
) -> None:
    """A firewall that follows its user is created once, then only moves: the moves
    into a node are what was asked of it; the create counts where it was made."""
    inst = running(api, node="cpe1")
    r = api.post(f"/api/v1/instances/{inst['id']}/migrate", json={"node": "pe1"})
    assert r.status_code in (200, 202), r.text
    for node in ("cpe1", "pe1"):
        api.put(f"/api/v1/nodes/{node}/predeploy", json={"storage_mb": 1.0, "standbys": 1})
    plans = api.get("/api/v1/predeploy").json()
    assert plans["pe1"]["images"][0]["why"].startswith("rank 1: 1 asked here, 2 everywhere")
    assert plans["cpe1"]["images"][0]["why"].startswith("rank 1: 1 asked here, 2 everywhere")
    assert plans["pe1"]["standbys"] == {"counter": 1}
