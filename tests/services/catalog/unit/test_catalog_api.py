"""The catalog's REST API (/api/v1/catalog), through the app with only this service.

A provider publishes (422 with keyed errors when the descriptor is bad, never a
500 whatever the text), users see the catalog and subscribe (409 saying the
engine's refusal, and nothing created), the provider sees its subscriptions with
abstract locations only, a user upgrades to v2 and unsubscribes; the conduit's
loop follows a user's new login with nobody asking.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from typer.testing import CliRunner

import authn
from catalog_leases import dhcp_server, lease
from netfate.contract import Role
from netfate.orchestrator.api.errors import ErrorBody
from netfate.orchestrator.app import Settings, create_app
from netfate.services.catalog import SERVICE
from netfate.services.catalog import cli as catalog_cli
from netfate.store.events import record_event
from netfate.store.tables import DescriptorRow
from waiting import until

TOPO: dict[str, Any] = {
    "name": "fog",
    "nodes": {
        "cpe1": {"kind": "cpe", "lan": "192.168.1.0/24", "cpu": 1, "memory": "512MiB"},
        "cpe2": {"kind": "cpe", "lan": "192.168.2.0/24", "cpu": 1, "memory": "512MiB"},
        "pe1": {"kind": "pe", "lan": "10.10.0.0/24", "cpu": 4},
    },
    "links": [
        {"a": "cpe1", "b": "pe1", "delay": "5ms", "rate": "100Mbit"},
        {"a": "cpe2", "b": "pe1", "delay": "5ms", "rate": "100Mbit"},
    ],
}
V = "/api/v1/catalog"
CHAIN = """
name: sensor-archive
summary: Archive a sensor's readings near its owner.
blocks:
  - {name: collector, function: counter, cpu: 0.2}
  - {name: archive, function: forwarder, storage_mb: 100}
sla: {latency_ms: 5, availability: 0.98}
"""


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("NETFATE_RADIUS_LISTEN", "")
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600),
        services=[SERVICE],
    )
    with authn.client(app) as c:  # signed in per route
        assert c.put("/api/v1/topology", json=TOPO).status_code == 200
        for node in TOPO["nodes"]:
            r = c.post(f"/api/v1/agents/{node}/register", json={"endpoint": "127.0.0.1:1"})
            assert r.status_code == 200, r.text
        yield c


def run_all(c: TestClient) -> None:
    """Each agent's report: every live instance of its node runs."""
    for node in TOPO["nodes"]:
        live = [i["id"] for i in c.get("/api/v1/instances").json()
                if i["node"] == node and i["state"] in ("requested", "starting")]  # fmt: skip
        r = c.post(
            f"/api/v1/agents/{node}/report",
            json={"instances": [{"id": i, "status": "running", "pid": 1} for i in live],
                  "ports": []},
        )  # fmt: skip
        assert r.status_code == 200, r.text


def publish(c: TestClient, text: str = CHAIN, provider: str = "acme") -> Any:
    return c.post(f"{V}/chains", json={"provider": provider, "descriptor": text})


def test_publish_list_and_versions(api: TestClient) -> None:
    r = publish(api)
    assert r.status_code == 201, r.text
    v1 = r.json()
    assert (v1["name"], v1["version"], v1["active_subscriptions"]) == ("sensor-archive", 1, 0)
    assert [b["name"] for b in v1["templates"]["blocks"]] == ["collector", "archive"]
    assert api.get("/api/v1/instances").json() == []  # nothing allocated
    assert publish(api, CHAIN.replace("cpu: 0.2", "cpu: 0.3")).json()["version"] == 2
    assert [v["version"] for v in api.get(f"{V}/chains/sensor-archive/versions").json()] == [1, 2]
    assert api.get(f"{V}/chains/sensor-archive/versions/1").json()["templates"] == v1["templates"]
    assert api.get(f"{V}/chains/sensor-archive/versions/9").status_code == 404
    listed = api.get(f"{V}/services").json()
    assert [(s["name"], s["version"], s["blocks"]) for s in listed] == [
        ("sensor-archive", 2, ["collector", "archive"])
    ]
    assert publish(api, provider="rival").status_code == 409


def keyed(r: Any) -> dict[str, str]:
    """A 422's field errors (the API's one error body), by the descriptor's keys."""
    assert r.status_code == 422, r.text
    body = ErrorBody.model_validate(r.json())
    assert body.errors
    assert all(e.loc[:2] == ["body", "descriptor"] for e in body.errors), body.errors
    return {str(e.loc[2]): e.msg for e in body.errors}


def test_a_bad_descriptor_gets_keyed_errors(api: TestClient) -> None:
    bad = CHAIN.replace("function: forwarder", "function: teleporter") + "colour: red\n"
    assert set(keyed(publish(api, bad))) == {"blocks[1].function", "colour"}
    # Functions are those the registered services declare, and the platform's own:
    # a descriptor that is in no contract is unknown.
    r = publish(api, CHAIN.replace("function: counter", "function: hrh-climate"))
    assert "blocks[0].function" in keyed(r)
    r = publish(api, CHAIN.replace("availability: 0.98", "availability: 0.9999"))
    assert "above every node's availability" in keyed(r)["sla.availability"]


def test_a_block_whose_descriptor_names_an_unregistered_function_is_refused(
    api: TestClient,
) -> None:
    # The database says the platform's own descriptor runs another module (written
    # by hand, or before descriptors were checked): a chain may not use it.
    db = api.app.state.db  # type: ignore[attr-defined]
    with db.session() as s:
        s.get(DescriptorRow, "forwarder").function = "os:system"
        s.commit()
    assert set(keyed(publish(api))) == {"blocks[1].function"}
    assert api.get(f"{V}/services").json() == []


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.text(max_size=300))
def test_any_descriptor_text_is_answered_201_or_422_never_500(api: TestClient, text: str) -> None:
    r = publish(api, text)
    assert r.status_code in (201, 409, 422), r.text
    if r.status_code == 422:
        assert keyed(r)


def test_subscribe_place_and_explain_then_the_provider_sees_only_abstract_sites(
    api: TestClient,
) -> None:
    assert publish(api).status_code == 201
    r = api.post(f"{V}/subscriptions", json={"user": "alice", "chain": "sensor-archive",
                                             "at": "cpe1"})  # fmt: skip
    assert r.status_code == 201, r.text
    sub = r.json()
    assert {i["node"] for i in sub["instances"]} == {"cpe1"}
    assert sub["decisions"][0]["action"] == "placed"
    assert sub["decisions"][0]["why"].startswith("placed on cpe1 by mix")
    assert "binding" in sub["decisions"][0] and "runner_up_lost" in sub["decisions"][0]
    created = api.get("/api/v1/instances").json()
    assert {i["id"] for i in created} == {i["instance"] for i in sub["instances"]}

    view = api.get(f"{V}/providers/acme/subscriptions").json()
    assert [(v["id"], v["user"], v["state"]) for v in view] == [(sub["id"], "alice", "active")]
    assert {b["tier"] for b in view[0]["blocks"]} == {"premises"}
    text = json.dumps(view)
    for secret in [*TOPO["nodes"], *(i["ip"] for i in created if i["ip"]), "192.168."]:
        assert secret not in text, secret
    assert view[0]["why"].startswith("placed on site-")
    assert api.get(f"{V}/providers/nobody/subscriptions").status_code == 404


def test_a_refused_subscription_says_why_and_creates_nothing(api: TestClient) -> None:
    assert publish(api, CHAIN.replace("cpu: 0.2", "cpu: 1.5")).status_code == 201
    r = api.post(f"{V}/subscriptions", json={"user": "bob", "chain": "sensor-archive",
                                             "at": "cpe1"})  # fmt: skip
    assert r.status_code == 409
    detail = ErrorBody.model_validate(r.json()).detail
    assert "capacity:cpu" in detail and detail.endswith("(proven)"), detail
    assert api.get("/api/v1/instances").json() == []
    assert api.get(f"{V}/subscriptions").json() == []
    kinds = [e["kind"] for e in api.get("/api/v1/events").json()]
    assert "SubscriptionRefused" in kinds


def test_without_a_position_the_user_must_say_where_they_are(api: TestClient) -> None:
    assert publish(api).status_code == 201
    r = api.post(f"{V}/subscriptions", json={"user": "carol", "chain": "sensor-archive"})
    assert r.status_code == 422, r.text
    (err,) = ErrorBody.model_validate(r.json()).errors or []
    assert err.loc == ["body", "at"] and err.msg.startswith("required")
    r = api.post(f"{V}/subscriptions", json={"user": "carol", "chain": "sensor-archive",
                                             "at": "nowhere"})  # fmt: skip
    (err,) = ErrorBody.model_validate(r.json()).errors or []
    assert r.status_code == 422 and err.loc == ["body", "at"] and "unknown node" in err.msg


def test_upgrade_to_v2_and_unsubscribe(api: TestClient) -> None:
    assert publish(api).status_code == 201
    sid = api.post(f"{V}/subscriptions", json={"user": "alice", "chain": "sensor-archive",
                                               "at": "cpe1"}).json()["id"]  # fmt: skip
    assert publish(api, CHAIN.replace("storage_mb: 100", "storage_mb: 200")).status_code == 201
    assert api.get(f"{V}/subscriptions/{sid}").json()["version"] == 1  # v1 keeps running
    alice = authn.bearer(authn.token(api.app, "alice", Role.USER))  # upgrading is hers
    r = api.post(f"{V}/subscriptions/{sid}/upgrade", json={}, headers=alice)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["decisions"][-1]["action"] == "upgraded"
    assert api.post(f"{V}/subscriptions/{sid}/upgrade", json={}, headers=alice).status_code == 409
    r = api.delete(f"{V}/subscriptions/{sid}")
    assert r.status_code == 200 and r.json()["state"] == "ended"
    states = {i["state"] for i in api.get("/api/v1/instances").json()}
    assert states <= {"stopping", "gone"}
    assert api.delete(f"{V}/subscriptions/{sid}").status_code == 409


def test_the_loop_follows_a_new_login_with_nobody_asking(api: TestClient) -> None:
    assert publish(api).status_code == 201
    sid = api.post(f"{V}/subscriptions", json={"user": "alice", "chain": "sensor-archive",
                                               "at": "cpe1"}).json()["id"]  # fmt: skip
    run_all(api)
    db = api.app.state.db  # type: ignore[attr-defined]
    with db.session() as s:  # what the firewall's RADIUS server records on a login
        record_event(s, "UserLoggedIn", {"user": "alice", "node": "cpe2"})
    api.app.state.notifier.notify({"cpe2"})  # type: ignore[attr-defined]
    moved = until(lambda: api.get(f"{V}/subscriptions/{sid}").json()["at"] == "cpe2")
    assert moved
    sub = api.get(f"{V}/subscriptions/{sid}").json()
    assert sub["decisions"][-1]["action"] == "moved"
    # The whole chain follows: left at cpe1, the archive would add the round trip
    # cpe2 -> pe1 -> cpe1 (20 ms) to the chain's path, more than a move costs.
    assert sub["decisions"][-1]["nodes"] == {"collector": "cpe2", "archive": "cpe2"}
    assert "archive follows collector" in sub["decisions"][-1]["why"]
    assert {i["state"] for i in sub["instances"]} == {"migrating"}  # the platform's migration
    migrations = api.get("/api/v1/migrations").json()
    assert sorted((m["instance"], m["target"]) for m in migrations) == sorted(
        (i["instance"], "cpe2") for i in sub["instances"]
    )
    pos = api.get(f"{V}/positions/alice").json()
    assert pos["now"]["node"] == "cpe2" and pos["now"]["source"] == "login"
    assert pos["history"][0]["node"] == "cpe2"
    assert api.get(f"{V}/positions/nobody").status_code == 404


PHONE = "02:aa:00:00:00:01"


def test_where_is_a_user_by_role(api: TestClient) -> None:
    """The operator sees anyone (and the lease lines refused); a user only themself;
    a provider only its subscribers, and never a node's name."""
    assert publish(api).status_code == 201
    assert publish(api, CHAIN.replace("sensor-archive", "other"), "zeta").status_code == 201
    r = api.post(f"{V}/subscriptions", json={"user": "alice", "chain": "sensor-archive",
                                             "at": "cpe1", "devices": [PHONE]})  # fmt: skip
    assert r.status_code == 201, r.text
    db = api.app.state.db  # type: ignore[attr-defined]
    with db.session() as s:  # her phone leased at cpe2's DHCP server, a bad line too
        dhcp_server(s, "i-dhcp", "cpe2", "bad line\n" + lease(PHONE, "192.168.2.7", time.time()))
        record_event(s, "UserLoggedIn", {"user": "bob", "node": "cpe1"})
    op = api.get(f"{V}/positions/alice").json()
    assert (op["now"]["node"], op["now"]["source"]) == ("cpe2", "lease")
    assert f"{PHONE} got 192.168.2.7 from vhg-cpe2 (i-dhcp)" in op["now"]["why"]
    assert [(x["source"], x["node"]) for x in op["sources"]] == [("lease", "cpe2")]
    assert [(x["instance"], x["line"]) for x in op["refused"]] == [("i-dhcp", 1)]
    assert api.get(f"{V}/positions/bob").json()["now"]["node"] == "cpe1"

    alice = authn.bearer(authn.token(api.app, "alice", Role.USER))
    mine = api.get(f"{V}/positions/alice", headers=alice)
    assert mine.status_code == 200 and mine.json()["now"]["node"] == "cpe2"
    assert "refused" not in mine.json()
    assert api.get(f"{V}/positions/bob", headers=alice).status_code == 404

    acme = authn.bearer(authn.token(api.app, "acme", Role.PROVIDER))
    seen = api.get(f"{V}/positions/alice", headers=acme)
    assert seen.status_code == 200
    got = seen.json()
    assert got["now"]["source"] == "lease" and got["now"]["node"] not in TOPO["nodes"]
    for name in TOPO["nodes"]:
        assert name not in seen.text  # nor in a reason, a detail or the history
    assert PHONE not in seen.text and "refused" not in got
    assert api.get(f"{V}/positions/bob", headers=acme).status_code == 404  # not its subscriber
    zeta = authn.bearer(authn.token(api.app, "zeta", Role.PROVIDER))
    assert api.get(f"{V}/positions/alice", headers=zeta).status_code == 404


def test_netfate_catalog_where(api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI prints the API's answer: where now and why, each source, the history."""
    publish(api)
    api.post(f"{V}/subscriptions", json={"user": "alice", "chain": "sensor-archive",
                                         "at": "cpe1", "devices": [PHONE]})  # fmt: skip
    with api.app.state.db.session() as s:  # type: ignore[attr-defined]
        record_event(s, "UserLoggedIn", {"user": "alice", "node": "cpe2"})
    assert until(lambda: api.get(f"{V}/positions/alice").json()["history"])  # the loops record

    def call(_api: str | None, method: str, path: str) -> Any:
        r = api.request(method, f"/api/v1{path}")
        assert r.status_code == 200, r.text
        return r.json()

    monkeypatch.setattr(catalog_cli, "call", call)
    out = CliRunner().invoke(catalog_cli.app, ["where", "alice"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].startswith("alice is at cpe2 (login, ")
    assert lines[1].startswith("  why: newest: login at cpe2")
    assert lines[2].startswith("  login     cpe2")
    assert "history (newest first):" in lines and lines[-1].split()[-2:] == ["cpe2", "login"]
    out = CliRunner().invoke(catalog_cli.app, ["where", "alice", "--json"])
    assert json.loads(out.output)["now"]["node"] == "cpe2"


def test_the_operator_chooses_the_objective(api: TestClient) -> None:
    assert api.get(f"{V}/settings").json()["objective"] == "mix"
    r = api.put(f"{V}/settings", json={"objective": "consolidation", "move_cost": 5})
    assert r.status_code == 200 and r.json()["objective"] == "consolidation"
    assert r.json()["move_cost"] == 5
    assert api.put(f"{V}/settings", json={"objective": "nonsense"}).status_code == 422
    r = api.put(f"{V}/settings", json={"energy_weight": 0, "latency_weight": 0})
    assert r.status_code == 422 and "weighs energy" in r.json()["detail"]


def test_the_operator_runs_a_consolidation_pass_at_an_hour(api: TestClient) -> None:
    """Nothing subscribed: the edge hosts nothing, so the engine switches it off (a
    home gateway stays on); the platform reports it off."""
    home = {"low": 0.1, "high": 0.9}
    curve = {"cpe1": home, "cpe2": home, "pe1": {"low": 0.2, "high": 0.5}}
    r = api.post(f"{V}/consolidate", json={"hour": 3, "curve": curve})
    assert r.status_code == 200, r.text
    (d,) = r.json()["decisions"]
    assert (d["node"], d["action"]) == ("pe1", "off") and "hosts no chain" in d["why"]
    assert api.get("/api/v1/nodes/pe1").json()["power"] == "off"
    state = api.get(f"{V}/consolidation").json()
    assert state["switched_off"] == {"pe1": d["why"]} and state["recent"] == [d]
    bad = api.post(f"{V}/consolidate", json={"hour": 3, "curve": {"nope": home}})
    assert bad.status_code == 422 and "unknown node" in bad.text
    bad = api.post(f"{V}/consolidate", json={"hour": 3, "curve": {"pe1": {"low": 2, "high": 1}}})
    assert bad.status_code == 422 and "low above high" in bad.text
    assert api.post(f"{V}/consolidate", json={"hour": 24, "curve": {}}).status_code == 422
    user = authn.bearer(authn.token(api.app, "u", Role.USER))
    r = api.post(f"{V}/consolidate", json={"hour": 3, "curve": {}}, headers=user)
    assert r.status_code == 403
    r = api.put(f"{V}/night", json={"curve": curve, "day_s": 60, "start_hour": 3})
    assert r.status_code == 200 and r.json()["day"]["day_s"] == 60, r.text
    assert api.put(f"{V}/night", json={"curve": curve, "day_s": 0}).status_code == 422
    assert api.delete(f"{V}/night").json()["day"] is None


# ------------------------------------------------------------------ the VO host's config

VO_HOST: dict[str, Any] = {
    "host": 1,
    "objects": [{"vo": k, "user": "ann", "sensor": f"1-{k + 1}", "preload": 8 << 10}
                for k in range(10)],
    "feed": {"kind": "usbip", "server": "10.10.0.2", "port": 3240},
}  # fmt: skip
"""As the migration experiment starts one (its ten objects of 8-78 KB)."""


def vo_host(c: TestClient, config: dict[str, Any]) -> Any:
    return c.post("/api/v1/instances", json={"descriptor": "vo-host", "node": "pe1",
                                             "config": config})  # fmt: skip


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"objects": [{"vo": 1, "preload": 1 << 40}]}, ["objects", 0, "preload"]),
        ({"objects": [{"vo": -1}]}, ["objects", 0, "vo"]),
        ({"objects": [{"vo": k} for k in range(1025)]}, ["objects"]),
        ({"objects": [{"vo": 1, "user": "u" * 65}]}, ["objects", 0, "user"]),
        ({"feed": {"kind": "ftp"}}, ["feed", "kind"]),
        ({"feed": {"kind": "usbip", "server": "10.0.0.1; rm"}}, ["feed", "server"]),
        ({"port": 0}, ["port"]),
        ({"host": 70000}, ["host"]),
    ],
)
def test_a_vo_host_config_out_of_bounds_is_refused_naming_the_field(
    api: TestClient, change: dict[str, Any], loc: list[Any]
) -> None:
    """Its schema (vnf/vo/config.py) bounds objects, histories, ports and the feed."""
    r = vo_host(api, {**VO_HOST, **change})
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["errors"]] == [["body", "config", *loc]]
    assert api.get("/api/v1/instances").json() == []
    assert vo_host(api, VO_HOST).status_code == 201
