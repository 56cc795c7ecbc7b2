"""A PN's gateway settings through the API (SQLite, agents played by the test).

LAN, DHCP, port forwards and firewall rules: the defaults, settings made before the
PN has a vHG (its configuration is built from them), a change that reaches a running
vHG as its desired configuration (what its agent applies in place), the event its
owner's page hears, who may read and change them, and every bad input: 422 naming
the field, and nothing changes.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
from netfate.agent.instances import vet
from netfate.contract import Role
from netfate.orchestrator.app import Settings, create_app
from netfate.services.sharing import SERVICE as SHARING
from netfate.services.sharing import cli

TOPO: dict[str, Any] = {
    "name": "gateway",
    "nodes": {
        "cpe1": {"kind": "cpe", "lan": "192.168.1.0/24", "cpu": 2},
        "cpe2": {"kind": "cpe", "lan": "192.168.2.0/24", "cpu": 2},
        "tiny": {"kind": "cpe", "lan": "10.9.9.0/28", "cpu": 2},
        "pe1": {"kind": "pe", "cpu": 4},
    },
    "hosts": {"mediaserver": {"node": "cpe1", "kind": "nas"}, "tv": {"node": "cpe2"}},
    "links": [{"a": n, "b": "pe1"} for n in ("cpe1", "cpe2", "tiny")],
}
ALICE, BOB, TINY = "alice@home.example", "bob@hotel.example", "t@t.io"
V1 = "/api/v1/sharing"
FWD = {"proto": "tcp", "port": 8080, "to": "192.168.1.20", "to_port": 80}
STATIC = {"mac": "02:00:00:00:00:07", "ip": "192.168.1.7", "name": "nas"}
GW = f"{V1}/pns/{ALICE}/gateway"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600),
        services=[SHARING],
    )
    with authn.client(app) as c:
        assert c.put("/api/v1/topology", json=TOPO).status_code == 200
        for n in TOPO["nodes"]:
            assert c.post(f"/api/v1/agents/{n}/register", json={"endpoint": "127.0.0.1:1"})
        for email, node in ((ALICE, "cpe1"), (BOB, "cpe2"), (TINY, "tiny")):
            assert c.post(f"{V1}/pns", json={"email": email, "node": node}).status_code == 201
        yield c


def report_running(c: TestClient, iid: str) -> None:
    """As its agent does: the vHG runs."""
    node = c.get(f"/api/v1/instances/{iid}").json()["node"]
    r = c.post(f"/api/v1/agents/{node}/report", json={
        "instances": [{"id": iid, "status": "running", "pid": 1}], "ports": []})  # fmt: skip
    assert r.status_code == 200, r.text


def snapshot(c: TestClient) -> Any:
    return (
        c.get(GW).json(),
        c.get("/api/v1/instances?include_gone=true").json(),
        c.get(f"{V1}/pns").json(),
        [e["kind"] for e in c.get("/api/v1/events").json()],
    )


def vhg_spec(c: TestClient, node: str = "cpe1") -> dict[str, Any]:
    """The vHG as its agent is told to run it."""
    specs = c.get(f"/api/v1/agents/{node}/desired").json()["instances"]
    (spec,) = [s for s in specs if s["function"] == "netfate.vnf.vhg:Vhg"]
    vet(spec, Path("/var/lib/netfate/images"))  # the agent's own check passes
    return dict(spec)


def test_the_defaults_are_the_pns_lan_and_the_usual_pool(api: TestClient) -> None:
    got = api.get(GW).json()
    assert got["lan"] == {"subnet": "192.168.1.0/24", "node_gateway": "192.168.1.1"}
    assert got["dhcp"] == {"first": "192.168.1.100", "last": "192.168.1.149",
                           "lease_seconds": 3600}  # fmt: skip
    assert (got["forwards"], got["allow"], got["static"], got["vhg"]) == ([], [], [], None)


def test_settings_made_before_the_vhg_are_what_it_starts_with(api: TestClient) -> None:
    body = {"dhcp": {"first": "192.168.1.50", "last": "192.168.1.59", "lease_seconds": 600},
            "forwards": [FWD], "allow": [{"proto": "udp", "port": 9001}]}  # fmt: skip
    r = api.put(GW, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["dhcp"] == {**body["dhcp"]} and r.json()["forwards"] == [FWD]
    assert api.post(f"{V1}/pns/{ALICE}/vhg").status_code == 201
    cfg = vhg_spec(api)["config"]
    assert (cfg["dhcp_first"], cfg["dhcp_last"], cfg["lease_seconds"]) == (
        "192.168.1.50", "192.168.1.59", 600,
    )  # fmt: skip
    assert cfg["forwards"] == [FWD] and cfg["allow"] == [{"proto": "udp", "port": 9001}]


def test_a_change_reaches_the_running_vhg_and_its_owner_hears_of_it(api: TestClient) -> None:
    vhg = api.post(f"{V1}/pns/{ALICE}/vhg").json()
    report_running(api, vhg["vhg_instance"])
    # a part left out keeps what it was: the pool stays the default
    r = api.put(GW, json={"forwards": [FWD, {"proto": "udp", "port": 8080, "to": "192.168.1.21"}]})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["vhg"]["instance"] == vhg["vhg_instance"] and got["vhg"]["state"] == "running"
    assert got["dhcp"]["first"] == "192.168.1.100"
    spec = vhg_spec(api)
    assert spec["config"]["forwards"] == got["forwards"]  # the agent configures it in place
    assert spec["config"]["subnet"] == "192.168.1.0/24"
    inst = api.get(f"/api/v1/instances/{vhg['vhg_instance']}").json()
    assert inst["state"] == "running"  # reconfigured, not replaced

    def heard(who: str) -> list[dict[str, Any]]:
        tok = authn.token(api.app, who, Role.USER)
        events = api.get("/api/v1/events", headers=authn.bearer(tok)).json()
        return [e["data"] for e in events if e["kind"] == "GatewaySettingsChanged"]

    (news,) = heard(ALICE)
    assert news["pn"] == ALICE and news["forwards"] == 2 and news["vhg"] == vhg["vhg_instance"]
    assert heard(BOB) == []
    # Removing the forwards reaches it the same way.
    assert api.put(GW, json={"forwards": []}).json()["forwards"] == []
    assert vhg_spec(api)["config"]["forwards"] == []


def test_a_static_lease_reaches_the_running_vhg(api: TestClient) -> None:
    vhg = api.post(f"{V1}/pns/{ALICE}/vhg").json()
    report_running(api, vhg["vhg_instance"])
    assert api.get(GW).json()["static"] == []
    r = api.put(GW, json={"static": [STATIC]})
    assert r.status_code == 200, r.text
    assert r.json()["static"] == [STATIC] and r.json()["dhcp"]["first"] == "192.168.1.100"
    assert vhg_spec(api)["config"]["static"] == [STATIC]  # the agent configures it in place
    assert api.get(f"/api/v1/instances/{vhg['vhg_instance']}").json()["state"] == "running"
    # another part of the settings changed later leaves it as it was
    assert api.put(GW, json={"forwards": [FWD]}).json()["static"] == [STATIC]
    # an address the vHG itself holds is no device's
    own = vhg["ip"].split("/")[0]
    before = snapshot(api)
    r = api.put(GW, json={"static": [{**STATIC, "ip": own}]})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "static", 0, "ip"]
    assert snapshot(api) == before
    assert api.put(GW, json={"static": []}).json()["static"] == []
    assert vhg_spec(api)["config"]["static"] == []


def test_the_owner_and_the_operator_may_and_no_other_user(api: TestClient) -> None:
    alice = authn.bearer(authn.token(api.app, ALICE, Role.USER))
    bob = authn.bearer(authn.token(api.app, BOB, Role.USER))
    assert api.get(GW, headers=alice).status_code == 200
    r = api.put(GW, json={"forwards": [FWD]}, headers=alice)
    assert r.status_code == 200, r.text
    before = snapshot(api)
    assert api.get(GW, headers=bob).status_code == 404  # as if it did not exist
    r = api.put(GW, json={"forwards": []}, headers=bob)
    assert r.status_code == 404, r.text
    assert snapshot(api) == before
    assert api.get(GW).json()["forwards"] == [FWD]  # the operator reads it
    assert api.get(f"{V1}/pns/nobody@x.example/gateway").status_code == 404


def test_bob_sees_his_own_settings_only(api: TestClient) -> None:
    bob = authn.bearer(authn.token(api.app, BOB, Role.USER))
    got = api.get(f"{V1}/pns/{BOB}/gateway", headers=bob).json()
    assert got["pn"] == BOB and got["lan"]["subnet"] == "192.168.2.0/24"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"forwards": [{**FWD, "to": "192.168.2.20"}]}, ["body", "forwards", 0, "to"]),
        ({"forwards": [{**FWD, "to": "192.168.1.255"}]}, ["body", "forwards", 0, "to"]),
        ({"forwards": [FWD, {**FWD, "to": "192.168.1.30"}]}, ["body", "forwards", 1, "port"]),
        ({"forwards": [{**FWD, "port": 0}]}, ["body", "forwards", 0, "port"]),
        ({"forwards": [{**FWD, "port": 65536}]}, ["body", "forwards", 0, "port"]),
        ({"forwards": [{**FWD, "to_port": 70000}]}, ["body", "forwards", 0, "to_port"]),
        ({"forwards": [{**FWD, "proto": "icmp"}]}, ["body", "forwards", 0, "proto"]),
        ({"forwards": [{**FWD, "to": "nas"}]}, ["body", "forwards", 0, "to"]),
        ({"forwards": [{**FWD, "from": "x"}]}, ["body", "forwards", 0, "from"]),
        ({"allow": [{"port": 22, "to": "10.0.0.1"}]}, ["body", "allow", 0, "to"]),
        ({"static": [{**STATIC, "ip": "192.168.2.7"}]}, ["body", "static", 0, "ip"]),
        ({"static": [{**STATIC, "ip": "192.168.1.255"}]}, ["body", "static", 0, "ip"]),
        ({"static": [{**STATIC, "ip": "192.168.1.1"}]}, ["body", "static", 0, "ip"]),
        ({"static": [STATIC, {**STATIC, "ip": "192.168.1.8"}]}, ["body", "static", 1, "mac"]),
        (
            {"static": [STATIC, {**STATIC, "mac": "02:00:00:00:00:08"}]},
            ["body", "static", 1, "ip"],
        ),
        ({"static": [{**STATIC, "mac": "02:00:00:00:07"}]}, ["body", "static", 0, "mac"]),
        ({"static": [{**STATIC, "name": "a b"}]}, ["body", "static", 0, "name"]),
        ({"dhcp": {"first": "192.168.2.10", "last": "192.168.1.20"}}, ["body", "dhcp", "first"]),
        ({"dhcp": {"first": "192.168.1.30", "last": "192.168.1.20"}}, ["body", "dhcp", "last"]),
        ({"dhcp": {"first": "192.168.1.0", "last": "192.168.1.20"}}, ["body", "dhcp", "first"]),
        ({"dhcp": {"first": "192.168.1.1", "last": "192.168.1.20"}}, ["body", "dhcp", "first"]),
        ({"dhcp": {"first": "x", "last": "192.168.1.20"}}, ["body", "dhcp", "first"]),
        (
            {"dhcp": {"first": "192.168.1.10", "last": "192.168.1.20", "lease_seconds": 5}},
            ["body", "dhcp", "lease_seconds"],
        ),
    ],
)
def test_bad_settings_are_refused_naming_the_field_and_change_nothing(
    api: TestClient, body: dict[str, Any], loc: list[Any]
) -> None:
    vhg = api.post(f"{V1}/pns/{ALICE}/vhg").json()
    report_running(api, vhg["vhg_instance"])
    before = snapshot(api)
    r = api.put(GW, json=body)
    assert r.status_code == 422, r.text
    assert loc in [e["loc"] for e in r.json()["errors"]], r.json()
    assert snapshot(api) == before


def test_a_pool_over_the_vhgs_own_address_is_refused(api: TestClient) -> None:
    vhg = api.post(f"{V1}/pns/{ALICE}/vhg").json()
    ip = vhg["ip"].split("/")[0]
    before = snapshot(api)
    r = api.put(GW, json={"dhcp": {"first": "192.168.1.200", "last": "192.168.1.254"}})
    assert ip.startswith("192.168.1.2"), ip  # instances take addresses from the top down
    assert r.status_code == 422 and ["body", "dhcp", "first"] in [
        e["loc"] for e in r.json()["errors"]
    ], r.text
    assert snapshot(api) == before


def test_a_shares_alias_keeps_out_of_a_moved_pool(api: TestClient) -> None:
    r = api.put(f"{V1}/pns/{BOB}/gateway", json={"dhcp": {"first": "192.168.2.2",
                                                          "last": "192.168.2.60"}})  # fmt: skip
    assert r.status_code == 200, r.text
    sh = api.post(f"{V1}/shares", json={"owner": ALICE, "device": "mediaserver",
                                        "recipient": BOB}).json()  # fmt: skip
    sh = api.post(f"{V1}/shares/{sh['id']}/accept", json={"by": BOB}).json()
    alias = sh["address_in_recipient_pn"]
    assert int(alias.split(".")[-1]) > 60, alias
    # and a pool may not be moved over it now
    r = api.put(f"{V1}/pns/{BOB}/gateway", json={"dhcp": {"first": "192.168.2.2",
                                                          "last": "192.168.2.99"}})  # fmt: skip
    assert r.status_code == 422, r.text


def test_the_cli_shows_and_sets_them(api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def through_app(method: str, url: str, **kw: Any) -> httpx.Response:
        kw.pop("timeout", None)
        kw.pop("verify", None)
        return api.request(method, url, **kw)  # type: ignore[no-any-return]

    monkeypatch.setattr("netfate.apiclient.httpx.request", through_app)
    monkeypatch.setattr("netfate.apiclient.find_token", lambda base: None)
    run = CliRunner().invoke
    r = run(cli.app, ["gateway", ALICE])
    assert r.exit_code == 0, r.output
    assert "LAN 192.168.1.0/24" in r.output and "DHCP 192.168.1.100-192.168.1.149" in r.output
    r = run(cli.app, ["gateway", ALICE, "set", "--dhcp", "192.168.1.50-192.168.1.60",
                      "--forward", "tcp/8080=192.168.1.20:80", "--forward", "udp/53=192.168.1.21",
                      "--allow", "tcp/22=192.168.1.20"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "forward tcp/8080=192.168.1.20:80" in r.output
    assert "forward udp/53=192.168.1.21:53" in r.output
    assert "allow tcp/22=192.168.1.20" in r.output and "DHCP 192.168.1.50-192.168.1.60" in r.output
    assert api.get(GW).json()["forwards"] == [
        FWD | {"to": "192.168.1.20"},
        {"proto": "udp", "port": 53, "to": "192.168.1.21"},
    ]
    before = snapshot(api)
    for bad in (
        ["--forward", "tcp/8080=192.168.9.9"],  # outside the PN: the API's 422
        ["--forward", "icmp/1=192.168.1.20"],
        ["--forward", "tcp/80"],
        ["--allow", "udp/53=192.168.1.20:53"],
        ["--dhcp", "192.168.1.50"],
        [],
    ):
        r = run(cli.app, ["gateway", ALICE, "set", *bad])
        assert r.exit_code != 0, (bad, r.output)
    assert (
        "forwards.0.to"
        in run(cli.app, ["gateway", ALICE, "set", "--forward", "tcp/8080=192.168.9.9"]).output
    )
    assert snapshot(api) == before
    r = run(cli.app, ["gateway", ALICE, "set", "--no-forwards", "--lease-seconds", "600"])
    assert r.exit_code == 0 and "forward " not in r.output and "leases 600 s" in r.output
    assert "allow tcp/22" in r.output  # left out: kept
    # static leases: set, a bad one refused (typed, then the API's key), removed
    r = run(cli.app, ["gateway", ALICE, "set", "--static", "02:00:00:00:00:07=192.168.1.7/nas"])
    assert r.exit_code == 0 and "static 02:00:00:00:00:07=192.168.1.7/nas" in r.output, r.output
    assert api.get(GW).json()["static"] == [STATIC]
    before = snapshot(api)
    assert run(cli.app, ["gateway", ALICE, "set", "--static", "02:00:00:00:00:07"]).exit_code
    r = run(cli.app, ["gateway", ALICE, "set", "--static", "02:00:00:00:00:07=192.168.9.7"])
    assert r.exit_code != 0 and "static.0.ip" in r.output, r.output
    assert snapshot(api) == before
    r = run(cli.app, ["gateway", ALICE, "set", "--no-static"])
    assert r.exit_code == 0 and "static " not in r.output and api.get(GW).json()["static"] == []


def test_a_pn_smaller_than_a_24_gets_a_vhg_once_its_pool_fits(api: TestClient) -> None:
    """The default pool (.100-.149) does not fit a /28: its owner sets one that does,
    and the vHG started then is one its agent runs."""
    path = f"{V1}/pns/{TINY}/gateway"
    r = api.put(path, json={"forwards": []})  # the default pool is named as the problem
    assert r.status_code == 422 and ["body", "dhcp", "first"] in [
        e["loc"] for e in r.json()["errors"]
    ], r.text
    r = api.put(path, json={"dhcp": {"first": "10.9.9.5", "last": "10.9.9.10"}})
    assert r.status_code == 200, r.text
    assert api.post(f"{V1}/pns/{TINY}/vhg").status_code == 201
    cfg = vhg_spec(api, "tiny")["config"]
    assert (cfg["dhcp_first"], cfg["dhcp_last"]) == ("10.9.9.5", "10.9.9.10")
