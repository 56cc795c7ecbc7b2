"""One scenario with a row in every service (nodes and agents, an instance, SDN
intents, a firewall user with its RADIUS client, two Personal Networks with an
active share, a USB/IP function, a catalog chain with a subscription, a live
streaming event with a viewer, a recording and a reservation), for the tests that
call every route: reads never write (tests/unit/test_reads_never_write.py) and the
role matrix (tests/role_matrix_cases.py).
"""

from __future__ import annotations

import base64
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, text

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
from netfate.orchestrator.app import Settings, create_app
from netfate.services import registered
from netfate.services.sharing.tables import ShareRow
from netfate.store.db import Database
from waiting import until

TOPO: dict[str, Any] = {
    "name": "reads",
    "nodes": {
        "cpe1": {"kind": "cpe", "lan": "192.168.1.0/24", "cpu": 2},
        "cpe2": {"kind": "cpe", "lan": "192.168.2.0/24", "cpu": 2},
        "hrh1": {"kind": "hrh", "lan": "192.168.50.0/24", "cpu": 1},
        "pe1": {"kind": "pe", "lan": "10.10.0.0/24", "cpu": 4},
    },
    "hosts": {
        "laptop1": {"node": "cpe1"},
        "nas": {"node": "cpe1"},
        "tv": {"node": "cpe2"},
        "sensor": {"node": "hrh1"},
        "server": {"node": "pe1"},
    },
    "links": [
        {"a": "cpe1", "b": "pe1", "delay": "5ms"},
        {"a": "cpe2", "b": "pe1", "delay": "5ms"},
        {"a": "hrh1", "b": "pe1", "delay": "10ms"},
    ],
}
ALICE, BOB = "alice@home.example", "bob@hotel.example"
SECRETS = {
    "radius_client": "rc-0d6f3b2a9e",
    "accounting": "acct-5c1e88f07b",
    "portal": "portal-a39b41d2c7",
    "user_password": "pw-7e2f90c4d1",
}
"""Every secret the scenario configures (write-only: tests/unit/test_secrets.py)."""


def report(c: Any, node: str, running: list[str]) -> None:
    """An agent's report: its ports (local, its hosts, its live instances) and which
    of its instances run."""
    ports: list[dict[str, Any]] = [{"name": f"{node}-l", "ofport": 1, "peer": f"local:{node}"}]
    hosts = sorted(h for h, spec in TOPO["hosts"].items() if spec["node"] == node)
    ports += [{"name": f"{node}-h{k}", "ofport": 10 + k, "peer": f"host:{h}"}
              for k, h in enumerate(hosts)]  # fmt: skip
    live = [i["id"] for i in c.get("/api/v1/instances").json() if i["node"] == node]
    ports += [{"name": f"{node}-i{k}", "ofport": 100 + k, "peer": f"instance:{iid}"}
              for k, iid in enumerate(sorted(live))]  # fmt: skip
    r = c.post(
        f"/api/v1/agents/{node}/report",
        json={"instances": [{"id": i, "status": "running", "pid": 1} for i in running],
              "ports": ports},
    )  # fmt: skip
    assert r.status_code == 200, r.text


def share_state(db: Database, sid: int) -> str | None:
    """Straight from the database: no API read is involved."""
    with db.session() as s:
        return s.scalar(select(ShareRow.state).where(ShareRow.id == sid))


def populate(c: Any, db: Database) -> dict[str, Any]:
    """Fill the app behind `c` with the scenario (every service has rows); the ids of
    what a path parameter names."""
    ok = lambda r: r.status_code in (200, 201, 202) or pytest.fail(r.text)  # noqa: E731
    ok(c.put("/api/v1/topology", json=TOPO))
    for n in TOPO["nodes"]:
        ok(c.post(f"/api/v1/agents/{n}/register", json={"endpoint": f"127.0.0.1:{n}"}))
        report(c, n, [])
    counter = c.post("/api/v1/instances", json={"descriptor": "counter", "node": "cpe1"})
    ok(counter)
    ok(c.post("/api/v1/sdn/fabric"))
    ok(c.post("/api/v1/intents", json={"kind": "connectivity", "id": "t-1",
                                       "a": "host:laptop1", "b": "host:server"}))  # fmt: skip
    # the firewall service
    ok(c.post("/api/v1/firewall/users", json={"name": "alice", "host": "laptop1",
                                              "password": SECRETS["user_password"]}))  # fmt: skip
    nas = {"address": "10.0.0.0/8", "secret": SECRETS["radius_client"]}
    ok(c.post("/api/v1/firewall/radius/clients", json=nas))
    acct = {"server": "10.10.0.9:1813", "secret": SECRETS["accounting"]}
    ok(c.put("/api/v1/firewall/settings", json={"steer_to": "host:server", "accounting": acct}))
    radius = {
        "server": "10.10.0.9:1812",
        "acct_server": "10.10.0.9:1813",
        "secret": SECRETS["portal"],
    }
    portal = c.post("/api/v1/instances", json={"descriptor": "captive-portal", "node": "cpe2",
                                               "config": {"radius": radius}})  # fmt: skip
    ok(portal)
    # the sharing service: two PNs and a share that becomes active
    for email, node in ((ALICE, "cpe1"), (BOB, "cpe2")):
        ok(c.post("/api/v1/sharing/pns", json={"email": email, "node": node}))
    sh = c.post("/api/v1/sharing/shares",
                json={"owner": ALICE, "device": "nas", "recipient": BOB}).json()  # fmt: skip
    sh = c.post(f"/api/v1/sharing/shares/{sh['id']}/accept", json={"by": BOB}).json()
    # the usbip service
    tls = {"ca": "/pki/ca.pem", "cert": "/pki/isp.pem", "key": "/pki/isp.key"}
    fn = c.post("/api/v1/usbip/functions", json={"descriptor": "hrh-climate", "serves": "sensor",
                "config": {"server": "192.168.50.2", "tls": tls}})  # fmt: skip
    ok(fn)
    # the catalog: a published chain and a subscription to it
    ok(c.post("/api/v1/catalog/chains", json={"provider": "acme", "descriptor":
              "name: archive\nblocks: [{name: a, function: counter}]"}))  # fmt: skip
    sub = c.post("/api/v1/catalog/subscriptions",
                 json={"user": "alice", "chain": "archive", "at": "cpe2"})  # fmt: skip
    ok(sub)
    report(c, "cpe1", [counter.json()["id"], sh["vp2_instance"]])
    report(c, "cpe2", [sh["vp1_instance"]])
    until(lambda: share_state(db, sh["id"]) == "active")
    # the streaming service: a live event with a viewer, a recording, a reservation
    st = "/api/v1/streaming"
    # the provider is the one the per-route sign-in uses (its flow's key is its own read)
    ok(c.post(f"{st}/providers", json={"name": authn.PROVIDER, "title": "U", "pe": "pe1"}))
    ev = {"provider": authn.PROVIDER, "title": "T", "start": time.time() + 60, "duration_s": 60}
    live = c.post(f"{st}/events", json={**ev, "protocol": "rtmp"}).json()
    later = c.post(f"{st}/events", json=ev).json()
    ok(c.post(f"{st}/events/{live['id']}/start"))
    bobs = {"user": "bob", "client": "c", "pe": "cpe1"}  # bob's device c, joined for him
    ok(c.post(f"{st}/contents/ev{live['id']}/viewers", json=bobs))
    rec = c.post(f"{st}/recordings", json={"user": "bob", "event": live["id"]})
    ok(rec)
    ok(c.post(f"{st}/reservations", json={"user": "bob", "event": later["id"]}))
    ids = {"share": sh["id"], "instance": counter.json()["id"], "db": db,
           "portal": portal.json()["id"], "event": live["id"],
           "subscription": sub.json()["id"], "recording": rec.json()["id"]}  # fmt: skip
    return ids


def dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    with db.engine.connect() as conn:
        for t in sorted(inspect(conn).get_table_names()):
            rows = conn.execute(text(f'SELECT * FROM "{t}"')).all()
            out[t] = sorted((tuple(r) for r in rows), key=repr)
    return out


def fill(path: str, ids: dict[str, Any]) -> str:
    """A real value for each path parameter (a route this test does not know fails)."""
    values = {
        "node": "cpe1",
        "iid": ids["instance"],
        "intent_id": "t-1",
        "email": ALICE,
        "sid": str(ids["share"]),
        "address": "10.0.0.0/8",
        "eid": str(ids["event"]),
        "cid": f"ev{ids['event']}",
        "client": "c",
        "rid": str(ids["recording"]),
    }
    if path.startswith("/api/v1/firewall/users/"):
        values["name"] = "alice"
    elif path.startswith("/api/v1/accounts/"):
        values["name"] = authn.OPERATOR
    elif path.startswith("/api/v1/nodes/"):
        values["name"] = "cpe1"
    elif path.startswith("/api/v1/usbip/tunnels/"):
        values["name"] = "t-none"
    elif path.startswith("/api/v1/catalog/"):
        values.update(name="archive", version="1", provider="acme", user="alice",
                      sid=ids["subscription"])  # fmt: skip

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in values:
            pytest.fail(f"{path}: no value for {{{name}}}: add one to this test")
        return str(values[name])

    return re.sub(r"\{(\w+)(?::\w+)?\}", one, path)


QUERIES = {
    "/api/v1/usbip/placement": "?descriptor=hrh-climate&serves=sensor",
    "/api/v1/streaming/app/recordings": "?user=alice",
    "/api/v1/streaming/app/watched": "?user=alice",
    "/api/v1/sharing/invitations": f"?pn={ALICE}",
}
HEADERS = {  # the user's own page needs the user's sign-in
    "/api/v1/firewall/me/rules": {
        "authorization": "Basic "
        + base64.b64encode(f"alice:{SECRETS['user_password']}".encode()).decode()
    },
}


@pytest.fixture
def scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    """Every registered service's app, signed in per route, filled by `populate`
    (import this fixture into a test module)."""
    monkeypatch.setenv("NETFATE_RADIUS_LISTEN", "")
    db = Database(f"sqlite:///{tmp_path}/o.db")
    app = create_app(
        Settings(database_url=db.url, heartbeat_timeout_s=3600), db, services=registered()
    )
    with authn.client(app) as c:
        yield c, populate(c, db)
