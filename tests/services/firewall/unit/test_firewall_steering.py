"""NetFATE's SDN intents follow its tables (services/firewall/steering.py), in one
orchestrator process with the policy loop running; the agents' reports are applied
directly, as an agent would send them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import authn
from netfate.orchestrator.app import Settings, create_app
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.services.firewall import SERVICE as FIREWALL
from netfate.services.firewall import policy
from netfate.services.firewall.tables import FirewallUserRow
from netfate.store.db import Database

EXAMPLE = FIREWALL.topology("firewall.yaml")


class Env:
    def __init__(self, api: TestClient, db: Database) -> None:
        self.api, self.db = api, db
        self.up: dict[str, set[str]] = {}

    def intents(self) -> dict[str, dict[str, Any]]:
        return {i["intent"]["id"]: i["intent"] for i in self.api.get("/api/v1/intents").json()}

    def wait(self, what: Callable[[], Any], timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while not (v := what()):
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s")
            time.sleep(0.05)
        return v

    def running(self, node: str, iid: str, up: bool = True) -> None:
        """Report the node's instances as its agent would: all that run there."""
        here = self.up.setdefault(node, set())
        (here.add if up else here.discard)(iid)
        report = {"instances": [{"id": i, "status": "running"} for i in sorted(here)]}
        with self.db.session() as s:
            nfv.apply_report(s, node, report)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("NETFATE_RADIUS_LISTEN", "")
    db = Database(f"sqlite:///{tmp_path}/o.db")
    app = create_app(
        Settings(database_url=db.url, topology=EXAMPLE, heartbeat_timeout_s=3600),
        db,
        services=[FIREWALL],
    )
    with authn.client(app) as api:
        for node in ("cpe1", "cpe2", "pe1"):
            with db.session() as s:
                nfv.register_agent(s, node, f"127.0.0.1:{9000 + len(node)}", None)
                # The node's own port on its bridge, as its agent reports it: the
                # portals' gateway intents name it.
                local = {"name": f"{node}l", "ofport": 1, "peer": f"local:{node}"}
                nfv.apply_report(s, node, {"ports": [local]})
        r = api.post(
            "/api/v1/firewall/users",
            json={"name": "alice", "password": "wonderland", "host": "client1",
                  "ip": "192.168.1.2", "idle_timeout": 3600},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        assert api.put("/api/v1/firewall/settings", json={"steer_to": "host:server1"}).is_success
        yield Env(api, db)


def portal(env: Env, node: str) -> str:
    inst = env.api.post(
        "/api/v1/instances", json={"descriptor": "captive-portal", "node": node, "config": {}}
    ).json()
    env.running(node, inst["id"])
    return str(inst["id"])


def test_captive_before_login_firewall_after_and_captive_again_after_release(env: Env) -> None:
    assert env.intents() == {}  # nothing runs: nothing to steer through
    p1, p2 = portal(env, "cpe1"), portal(env, "cpe2")
    # The policy loop may sync between the two portals' starts: wait for both.
    got = env.wait(
        lambda: (i := env.intents()).get("firewall-alice") and f"firewall-p-alice-{p2}" in i and i
    )
    # Portals reach their node (RADIUS); alice's host reaches both login pages.
    assert got[f"fabric-gw-{p1}"]["b"] == "subnet:0.0.0.0/0@cpe1"
    assert got[f"firewall-p-alice-{p2}"] == {
        "kind": "tunnel", "id": f"firewall-p-alice-{p2}", "a": "host:client1",
        "b": f"instance:{p2}", "protocol": "tcp", "port": 80,
    }  # fmt: skip
    # Not logged in: through the portal of the CPE client1 is attached to.
    steer = got["firewall-alice"]
    assert (steer["kind"], steer["host"], steer["chain"], steer["to"]) == (
        "steering", "client1", [p1], "host:server1",
    )  # fmt: skip

    # Logged in (as the RADIUS Access-Accept does): through the firewall once it runs.
    with env.db.session() as s:
        user = s.get(FirewallUserRow, "alice")
        assert user is not None
        out = policy.on_login(s, user, "cpe1", "02:6e:66:00:00:01", "192.168.1.2")
    assert out.accept
    fw = next(i for i in env.api.get("/api/v1/instances").json() if i["name"] == "fw-alice")
    time.sleep(1.2)  # two policy steps: a firewall not yet running steers nothing
    assert env.intents()["firewall-alice"]["chain"] == [p1]
    env.running("cpe1", fw["id"])
    env.wait(lambda: env.intents()["firewall-alice"]["chain"] == [fw["id"]])
    fwd = env.api.get("/api/v1/firewall/forwarding").json()[0]
    assert fwd["intent"] == "firewall-alice" and fw["id"] in fwd["steering"]

    # Released (idle): captive again, never open.
    env.api.patch("/api/v1/firewall/users/alice", json={"idle_timeout": 1})
    env.wait(lambda: env.intents().get("firewall-alice", {}).get("chain") == [p1])
    assert "portal" in env.api.get("/api/v1/firewall/forwarding").json()[0]["steering"]

    # A portal that stops takes its intents with it.
    env.api.delete(f"/api/v1/instances/{p2}")
    env.running("cpe2", p2, up=False)
    env.wait(lambda: f"fabric-gw-{p2}" not in env.intents())
    assert f"firewall-p-alice-{p2}" not in env.intents()


def test_intent_ids_from_any_user_name_are_valid_and_distinct() -> None:
    from netfate.orchestrator.sdn.intents import INTENT_ID_RE
    from netfate.services.firewall.steering import intent_id

    assert intent_id("alice") == "firewall-alice"  # readable when it can be
    names = ["bob@example.org", "bob_example.org", "x" * 64, "x" * 63 + "y"]
    ids = [intent_id(n) for n in names] + [intent_id("p", n, "i-0123abcd") for n in names]
    assert all(INTENT_ID_RE.match(i) for i in ids), ids
    assert len(set(ids)) == len(ids)


def test_a_user_named_by_email_is_steered_too(env: Env) -> None:
    r = env.api.post(
        "/api/v1/firewall/users",
        json={"name": "carol@example.org", "password": "pw-carol-1", "host": "client2",
              "ip": "192.168.2.2", "idle_timeout": 3600},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    p2 = portal(env, "cpe2")
    from netfate.services.firewall.steering import intent_id

    steer = env.wait(lambda: env.intents().get(intent_id("carol@example.org")))
    assert steer["host"] == "client2" and steer["chain"] == [p2]
    # Alice's intents are made in the same pass: an invalid id would have stopped it.
    assert env.intents().get(intent_id("p", "alice", p2))
