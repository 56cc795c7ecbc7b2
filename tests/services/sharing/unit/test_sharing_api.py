"""The sharing API in-process (SQLite), agents played by the test.

The workflow of seed III.A, the share state machine with its history, and bad
input: every refusal is a clear 4xx and changes nothing. Then shares made the way a
person makes them (issue 13): without typing a port, the ports VP1 learned show in
the share's details; the recipient named by an invitation code; the CLI doing what
the page does.
"""

from __future__ import annotations

import re
import types
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
from netfate.services.sharing import workflow as wf
from netfate.services.sharing.states import TRANSITIONS, ShareState, check
from waiting import share_in

TOPO: dict[str, Any] = {
    "name": "sharing",
    "nodes": {
        "cpe1": {"kind": "cpe", "lan": "192.168.1.0/24", "cpu": 2},
        "cpe2": {"kind": "cpe", "lan": "192.168.2.0/24", "cpu": 2},
        "cpe3": {"kind": "cpe", "lan": "192.168.3.0/24", "cpu": 2},
        "tiny": {"kind": "cpe", "lan": "10.9.9.0/29", "cpu": 2},
        "pe1": {"kind": "pe", "cpu": 4},
    },
    "hosts": {
        "mediaserver": {"node": "cpe1", "kind": "nas"},
        "laptop1": {"node": "cpe1"},
        "tv": {"node": "cpe2", "kind": "tv"},
        "phone": {"node": "cpe2"},
        "guest": {"node": "cpe3"},
        "t1": {"node": "tiny"},
    },
    "links": [{"a": n, "b": "pe1"} for n in ("cpe1", "cpe2", "cpe3", "tiny")],
}
ALICE, BOB, CAROL, TINY = "alice@home.example", "bob@hotel.example", "carol@x.example", "t@t.io"
V1 = "/api/v1/sharing"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600),
        services=[SHARING],
    )
    with authn.client(app) as c:
        assert c.put("/api/v1/topology", json=TOPO).status_code == 200
        for n in TOPO["nodes"]:
            assert c.post(
                f"/api/v1/agents/{n}/register", json={"endpoint": "127.0.0.1:1"}
            ).is_success
        for email, node in ((ALICE, "cpe1"), (BOB, "cpe2"), (CAROL, "cpe3"), (TINY, "tiny")):
            r = c.post(f"{V1}/pns", json={"email": email, "node": node})
            assert r.status_code == 201, r.text
        yield c


def snapshot(c: TestClient) -> Any:
    return (
        c.get(f"{V1}/shares").json(),
        c.get("/api/v1/instances?include_gone=true").json(),
        c.get(f"{V1}/pns").json(),
    )


def report_running(c: TestClient, *iids: str) -> None:
    """As an agent does: the instance runs, and its port is on the node's bridge
    (a report lists all the node's ports: those of its live instances here)."""
    for iid in iids:
        inst = c.get(f"/api/v1/instances/{iid}").json()
        dead = ("gone", "stopping", "failed")
        live = [i for i in c.get("/api/v1/instances").json()
                if i["node"] == inst["node"] and i["state"] not in dead]  # fmt: skip
        ports = [{"name": f"p{k}", "ofport": 10 + k, "peer": f"instance:{i['id']}"}
                 for k, i in enumerate(sorted(live, key=lambda i: i["id"]))]  # fmt: skip
        r = c.post(
            f"/api/v1/agents/{inst['node']}/report",
            json={"instances": [{"id": iid, "status": "running", "pid": 1}], "ports": ports},
        )
        assert r.status_code == 200, r.text


def test_inventory_lists_topology_declared_and_reported_devices(api: TestClient) -> None:
    r = api.post(f"{V1}/pns/{ALICE}/devices", json={"name": "vstb", "ip": "192.168.1.50",
                                                     "kind": "vstb"})  # fmt: skip
    assert r.status_code == 201, r.text
    r = api.put(f"{V1}/pns/{ALICE}/inventory", json={"devices": [
        {"ip": "192.168.1.100", "mac": "02:00:00:00:00:09", "name": "phone", "source": "lease"},
        {"ip": "10.0.0.1", "source": "neighbour"},  # not in the PN: ignored
    ]})  # fmt: skip
    assert r.status_code == 200 and r.json()["accepted"] == 1
    devs = {d["name"]: d for d in api.get(f"{V1}/pns/{ALICE}/devices").json()}
    assert devs["mediaserver"]["source"] == "topology"
    assert devs["vstb"]["source"] == "declared" and devs["vstb"]["kind"] == "vstb"
    assert devs["phone"]["source"] == "lease"
    assert "192.168.1.1" not in {d["ip"] for d in devs.values()}


def test_share_workflow_steps_1_to_8(api: TestClient) -> None:
    # 1. PN1's owner shares the media server with PN2 (by email).
    r = api.post(f"{V1}/shares", json={"owner": ALICE, "device": "mediaserver",
                                        "recipient": BOB, "http_ports": [8200]})  # fmt: skip
    assert r.status_code == 201, r.text
    sh = r.json()
    assert sh["state"] == "requested"
    # 2. PN2's owner sees it pending.
    pending = [s for s in api.get(f"{V1}/shares?pn={BOB}").json() if s["state"] == "requested"]
    assert [s["id"] for s in pending] == [sh["id"]]
    # 3-8. Accept: VP2 on cpe1 with one alias per PN2 device, VP1 on cpe2 with one alias.
    r = api.post(f"{V1}/shares/{sh['id']}/accept", json={"by": BOB})
    assert r.status_code == 200, r.text
    sh = r.json()
    assert sh["state"] == "accepted"
    att = sh["att"]
    bob_devices = {d["ip"] for d in api.get(f"{V1}/pns/{BOB}/devices").json()}
    assert {d for _, d in att["entries"]} == bob_devices
    aliases = [a for a, _ in att["entries"]]
    assert all(a.startswith("192.168.1.") for a in aliases)
    assert att["shared_device"] == next(
        d["ip"] for d in api.get(f"{V1}/pns/{ALICE}/devices").json() if d["name"] == "mediaserver"
    )
    assert att["import_alias"].startswith("192.168.2.")
    vp2 = api.get(f"/api/v1/instances/{sh['vp2_instance']}").json()
    vp1 = api.get(f"/api/v1/instances/{sh['vp1_instance']}").json()
    assert (vp2["node"], vp1["node"]) == ("cpe1", "cpe2")
    assert vp2["config"]["role"] == "vp2" and vp1["config"]["role"] == "vp1"
    assert vp1["config"]["alg"] and vp1["config"]["http_ports"] == [8200]
    assert vp2["config"]["remote_underlay"] == vp1["ip"].split("/")[0]
    # Aliases are free addresses: not a host, not an instance, not the gateway.
    used = {h["ip"] for h in api.get("/api/v1/hosts").json()} | {"192.168.1.1"}
    used |= {i["ip"].split("/")[0] for i in api.get("/api/v1/instances").json() if i["ip"]}
    assert not set(aliases) & used
    # The agents report both VPs running: the share is active.
    report_running(api, vp2["id"], vp1["id"])
    sh = share_in(api, sh["id"], "active")
    assert sh["state"] == "active"
    assert [h["state"] for h in sh["history"]] == ["requested", "accepted", "active"]
    assert [h["actor"] for h in sh["history"]][:2] == [ALICE, BOB]
    # VP aliases are not devices of the PNs.
    assert att["import_alias"] not in {d["ip"] for d in api.get(f"{V1}/pns/{BOB}/devices").json()}
    # Revocation by PN1's owner destroys both VPs.
    r = api.post(f"{V1}/shares/{sh['id']}/revoke", json={"by": ALICE})
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    for iid in (vp2["id"], vp1["id"]):
        assert api.get(f"/api/v1/instances/{iid}").json()["state"] == "stopping"


def test_recipient_may_revoke_and_decline(api: TestClient) -> None:
    s1 = api.post(f"{V1}/shares", json={"owner": ALICE, "device": "laptop1",
                                         "recipient": BOB}).json()  # fmt: skip
    assert api.post(f"{V1}/shares/{s1['id']}/decline", json={"by": BOB}).json()["state"] == (
        "declined"
    )
    s2 = api.post(f"{V1}/shares", json={"owner": ALICE, "device": "laptop1",
                                         "recipient": BOB}).json()  # fmt: skip
    api.post(f"{V1}/shares/{s2['id']}/accept", json={"by": BOB})
    r = api.post(f"{V1}/shares/{s2['id']}/revoke", json={"by": BOB})
    assert r.json()["state"] == "revoked"


def test_a_failed_vp_fails_the_share_and_removes_the_other(api: TestClient) -> None:
    sh = api.post(f"{V1}/shares", json={"owner": ALICE, "device": "laptop1",
                                         "recipient": BOB}).json()  # fmt: skip
    sh = api.post(f"{V1}/shares/{sh['id']}/accept", json={"by": BOB}).json()
    inst = api.get(f"/api/v1/instances/{sh['vp1_instance']}").json()
    api.post(
        f"/api/v1/agents/{inst['node']}/report",
        json={"instances": [{"id": inst["id"], "status": "failed", "detail": "boom"}]},
    )
    sh = share_in(api, sh["id"], "failed")
    assert sh["state"] == "failed" and "boom" in sh["detail"]
    assert api.get(f"/api/v1/instances/{sh['vp2_instance']}").json()["state"] == "stopping"


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("unknown recipient PN", 404),
        ("recipient not an account name", 400),
        ("device not owned", 403),
        ("unknown owner PN", 404),
        ("share with oneself", 400),
        ("accept by the owner", 403),
        ("accept twice", 409),
        ("accept a revoked request", 409),
        ("decline by a third PN", 403),
        ("revoke by a third PN", 403),
        ("same device twice", 409),
        ("PN1 pool exhausted", 409),
        ("PN on a node without that LAN", 400),
        ("PN id twice", 409),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(api: TestClient, case: str, status: int) -> None:
    def share(owner: str = ALICE, device: str = "mediaserver", to: str = BOB) -> Any:
        return api.post(f"{V1}/shares", json={"owner": owner, "device": device, "recipient": to})

    # Set-up that the case builds on (done before the snapshot).
    sid = None
    if case in ("accept by the owner", "decline by a third PN", "revoke by a third PN",
                "same device twice"):  # fmt: skip
        sid = share().json()["id"]
    elif case == "accept twice":
        sid = share().json()["id"]
        assert api.post(f"{V1}/shares/{sid}/accept", json={"by": BOB}).status_code == 200
    elif case == "accept a revoked request":
        sid = share().json()["id"]
        assert api.post(f"{V1}/shares/{sid}/revoke", json={"by": ALICE}).status_code == 200
    elif case == "PN1 pool exhausted":
        # tiny's /29 has 6 hosts: gateway .1 and t1, so 4 free; BOB's PN has >= 2 devices.
        for i in range(3):
            api.post(f"{V1}/pns/{BOB}/devices", json={"name": f"extra{i}",
                                                       "ip": f"192.168.2.{20 + i}"})  # fmt: skip
        sid = share(owner=TINY, device="t1").json()["id"]
    before = snapshot(api)
    if case == "unknown recipient PN":
        r = share(to="nobody@nowhere.example")
    elif case == "recipient not an account name":
        r = share(to="no/such name!")  # a PN's id is an account name: none has these
    elif case == "device not owned":
        r = share(device="tv")  # bob's TV
    elif case == "unknown owner PN":
        r = share(owner="eve@evil.example")
    elif case == "share with oneself":
        r = share(to=ALICE)
    elif case == "accept by the owner":
        r = api.post(f"{V1}/shares/{sid}/accept", json={"by": ALICE})
    elif case in ("accept twice", "accept a revoked request", "PN1 pool exhausted"):
        r = api.post(f"{V1}/shares/{sid}/accept", json={"by": BOB})
    elif case == "decline by a third PN":
        r = api.post(f"{V1}/shares/{sid}/decline", json={"by": CAROL})
    elif case == "revoke by a third PN":
        r = api.post(f"{V1}/shares/{sid}/revoke", json={"by": CAROL})
    elif case == "same device twice":
        r = share()
    elif case == "PN on a node without that LAN":
        r = api.post(f"{V1}/pns", json={"email": "d@d.io", "node": "cpe1",
                                         "subnet": "10.1.0.0/24"})  # fmt: skip
    elif case == "PN id twice":
        r = api.post(f"{V1}/pns", json={"email": ALICE, "node": "cpe3"})
    assert r.status_code == status, r.text
    assert isinstance(r.json()["detail"], str) and r.json()["detail"]
    assert snapshot(api) == before


def test_state_table_is_closed_and_terminal_states_stay() -> None:
    for s in ShareState:
        assert s in TRANSITIONS
    for terminal in (ShareState.DECLINED, ShareState.REVOKED, ShareState.FAILED):
        for target in ShareState:
            with pytest.raises(Exception, match="cannot go"):
                check(terminal, target)
    check(ShareState.REQUESTED, ShareState.ACCEPTED)


def test_pn2_devices_that_come_and_go_get_aliases_added_and_freed(api: TestClient) -> None:
    sh = api.post(f"{V1}/shares", json={"owner": ALICE, "device": "mediaserver",
                                         "recipient": BOB}).json()  # fmt: skip
    sh = api.post(f"{V1}/shares/{sh['id']}/accept", json={"by": BOB}).json()
    report_running(api, sh["vp2_instance"], sh["vp1_instance"])
    before = share_in(api, sh["id"], "active")
    assert before["state"] == "active"
    old = dict((d, a) for a, d in before["att"]["entries"])
    # A new device joins PN2 (the vHG reports a lease).
    r = api.put(f"{V1}/pns/{BOB}/inventory", json={"devices": [
        {"ip": "192.168.2.120", "name": "laptop", "source": "lease"}]})  # fmt: skip
    assert r.status_code == 200, r.text
    after = api.get(f"{V1}/shares/{sh['id']}").json()
    new = dict((d, a) for a, d in after["att"]["entries"])
    assert set(new) == set(old) | {"192.168.2.120"}
    assert all(new[d] == old[d] for d in old)  # existing devices keep their alias
    assert new["192.168.2.120"] not in old.values()
    # Both VPs run: they keep running and get the new ATT in their configuration,
    # which their agents apply in place (VirtualPresence.configure).
    assert (after["vp2_instance"], after["vp1_instance"]) == (
        before["vp2_instance"], before["vp1_instance"]
    )  # fmt: skip
    assert after["state"] == "active"
    for iid in (before["vp2_instance"], before["vp1_instance"]):
        inst = api.get(f"/api/v1/instances/{iid}").json()
        assert inst["state"] == "running" and inst["config"]["att"] == after["att"]
    assert "applied to both VPs in place" in after["history"][-1]["reason"]
    # It leaves again: its alias is freed.
    api.put(f"{V1}/pns/{BOB}/inventory", json={"devices": []})
    gone = api.get(f"{V1}/shares/{sh['id']}").json()
    assert {d for _, d in gone["att"]["entries"]} == set(old)
    assert gone["vp2_instance"] == before["vp2_instance"]


def test_what_the_agents_are_given_passes_each_function_schema(api: TestClient) -> None:
    """The VPs' configurations the workflow writes (on accept, then with a new ATT) and
    the vHGs': each is one its function's schema takes, so the agents run them."""

    def vet_all() -> int:
        n = 0
        for node in ("cpe1", "cpe2"):
            for spec in api.get(f"/api/v1/agents/{node}/desired").json()["instances"]:
                vet(spec, Path("/var/lib/netfate/images"))  # the agent's check
                n += 1
        return n

    for email in (ALICE, BOB):
        assert api.post(f"{V1}/pns/{email}/vhg").status_code == 201
    body = {"owner": ALICE, "device": "mediaserver", "recipient": BOB, "http_ports": [8200, 8080]}
    sh = api.post(f"{V1}/shares", json=body).json()
    sh = api.post(f"{V1}/shares/{sh['id']}/accept", json={"by": BOB}).json()
    report_running(api, sh["vp2_instance"], sh["vp1_instance"])
    assert share_in(api, sh["id"], "active")["state"] == "active"
    assert vet_all() == 4  # two vHGs, two VPs
    r = api.put(f"{V1}/pns/{BOB}/inventory", json={"devices": [
        {"ip": "192.168.2.120", "name": "laptop", "source": "lease"}]})  # fmt: skip
    assert r.status_code == 200, r.text
    vp2 = api.get(f"/api/v1/instances/{sh['vp2_instance']}").json()
    assert "192.168.2.120" in {d for _, d in vp2["config"]["att"]["entries"]}
    assert vet_all() == 4


def test_pn2_devices_change_before_the_vps_run_replaces_them(api: TestClient) -> None:
    sh = api.post(f"{V1}/shares", json={"owner": ALICE, "device": "mediaserver",
                                         "recipient": BOB}).json()  # fmt: skip
    before = api.post(f"{V1}/shares/{sh['id']}/accept", json={"by": BOB}).json()
    r = api.put(f"{V1}/pns/{BOB}/inventory", json={"devices": [
        {"ip": "192.168.2.120", "name": "laptop", "source": "lease"}]})  # fmt: skip
    assert r.status_code == 200, r.text
    after = api.get(f"{V1}/shares/{sh['id']}").json()
    assert "192.168.2.120" in {d for _, d in after["att"]["entries"]}
    assert after["vp2_instance"] != before["vp2_instance"]
    for iid in (before["vp2_instance"], before["vp1_instance"]):
        assert api.get(f"/api/v1/instances/{iid}").json()["state"] in ("stopping", "gone")
    assert "VPs replaced" in after["history"][-1]["reason"]


def test_inventory_includes_what_the_vhg_reports_through_its_agent(api: TestClient) -> None:
    vhg = api.post(f"{V1}/pns/{ALICE}/vhg").json()
    iid = vhg["vhg_instance"]
    devices = [
        {"ip": "192.168.1.120", "mac": "02:00:00:00:01:20", "name": "tablet", "source": "lease"},
        {"ip": "192.168.1.121", "mac": "02:00:00:00:01:21", "source": "neighbour"},
        {"ip": "10.9.9.9", "source": "neighbour"},  # not in the PN: ignored
        "garbage",  # not an object: ignored
    ]
    r = api.post(
        f"/api/v1/agents/{vhg['node']}/report",
        json={"instances": [{"id": iid, "status": "running", "pid": 1,
                             "stats": {"devices": devices}}]},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    devs = {d["ip"]: d for d in api.get(f"{V1}/pns/{ALICE}/devices").json()}
    assert devs["192.168.1.120"]["name"] == "tablet"
    assert devs["192.168.1.120"]["source"] == "lease"
    assert devs["192.168.1.121"]["source"] == "neighbour"
    assert "10.9.9.9" not in devs


# ------------------------------------------------------------------ issue 13

CODE = re.compile(r"^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$")


def _share_to(c: Any, recipient: str = BOB, device: str = "mediaserver", **extra: Any) -> Any:
    body = {"owner": ALICE, "device": device, "recipient": recipient, **extra}
    return c.post(f"{V1}/shares", json=body)


def _vp1_reports(c: Any, sh: dict[str, Any], stats: dict[str, Any]) -> None:
    """VP1's agent reports it running with these function figures."""
    iid = sh["vp1_instance"]
    node = c.get(f"/api/v1/instances/{iid}").json()["node"]
    r = c.post(f"/api/v1/agents/{node}/report", json={
        "instances": [{"id": iid, "status": "running", "pid": 1, "stats": stats}]})  # fmt: skip
    assert r.status_code == 200, r.text


def test_learned_ports_show_in_the_share_and_http_ports_stay_an_override(api: Any) -> None:
    r = _share_to(api)
    assert r.status_code == 201, r.text
    sh = r.json()
    assert sh["ports"] == {"configured": [], "learned": [], "proxied": []}
    sh = api.post(f"{V1}/shares/{sh['id']}/accept", json={"by": BOB}).json()
    report_running(api, sh["vp2_instance"], sh["vp1_instance"])
    share_in(api, sh["id"], "active")
    # VP1's ALG learned gerbera's port from the LOCATION it rewrote.
    learned = {"configured": [], "learned": [49152], "proxied": [49152]}
    _vp1_reports(api, sh, {"role": "vp1", "ports": learned})
    got = api.get(f"{V1}/shares/{sh['id']}").json()
    assert got["ports"] == learned
    listed = {s["id"]: s for s in api.get(f"{V1}/shares?pn={BOB}").json()}
    assert listed[sh["id"]]["ports"] == learned
    # What the function reports is its own: anything that is not a port is left out.
    _vp1_reports(api, sh, {"ports": {"learned": [554, "x", 0, 70000, True, 554],
                                     "proxied": "all"}})  # fmt: skip
    got = api.get(f"{V1}/shares/{sh['id']}").json()
    assert got["ports"] == {"configured": [], "learned": [554], "proxied": []}
    _vp1_reports(api, sh, {"ports": None})
    assert api.get(f"{V1}/shares/{sh['id']}").json()["ports"]["learned"] == []
    # The override: configured from the request, learned beside it.
    r = _share_to(api, device="laptop1", http_ports=[8200, 8200])
    other = api.post(f"{V1}/shares/{r.json()['id']}/accept", json={"by": BOB}).json()
    _vp1_reports(api, other, {"ports": {"configured": [8200], "learned": [9000],
                                        "proxied": [8200, 9000]}})  # fmt: skip
    got = api.get(f"{V1}/shares/{other['id']}").json()
    assert got["ports"] == {"configured": [8200], "learned": [9000], "proxied": [8200, 9000]}
    # After revocation VP1 no longer runs: nothing is proxied any more.
    api.post(f"{V1}/shares/{other['id']}/revoke", json={"by": ALICE})
    got = api.get(f"{V1}/shares/{other['id']}").json()
    assert got["ports"] == {"configured": [8200], "learned": [], "proxied": []}


def test_learned_ports_reach_both_owners_pages_as_an_event(api: Any) -> None:
    """The owners' pages refresh on events only; VP1's figures come on its instance
    row, which raises none. VP1 tells (PortsLearned, through its agent's report):
    both owners, and nobody else, get SharePortsLearned, once per event."""
    sh = _share_to(api).json()
    sh = api.post(f"{V1}/shares/{sh['id']}/accept", json={"by": BOB}).json()
    report_running(api, sh["vp2_instance"], sh["vp1_instance"])
    share_in(api, sh["id"], "active")
    told = {"seq": 1, "kind": "PortsLearned", "learned": [49152, "x"], "proxied": [49152],
            "at": 1.0}  # fmt: skip
    stats = {"ports": {"configured": [], "learned": [49152], "proxied": [49152]},
             "events": {"last_seq": 1, "dropped": 0, "items": [told]}}  # fmt: skip
    _vp1_reports(api, sh, stats)
    _vp1_reports(api, sh, stats)  # the same outbox again: nothing new

    def seen(who: str) -> list[dict[str, Any]]:
        tok = authn.token(api.app, who, Role.USER)
        r = api.get("/api/v1/events", headers=authn.bearer(tok))
        assert r.status_code == 200, r.text
        return [e for e in r.json() if e["kind"] == "SharePortsLearned"]

    for who in (ALICE, BOB):
        got = seen(who)
        assert len(got) == 1, got
        assert got[0]["data"]["share"] == sh["id"]
        assert got[0]["data"]["learned"] == [49152] and got[0]["data"]["proxied"] == [49152]
    assert seen(CAROL) == []


def test_an_invitation_code_names_the_recipient_once(api: Any) -> None:
    r = api.post(f"{V1}/invitations", json={"by": BOB})
    assert r.status_code == 201, r.text
    inv = r.json()
    assert CODE.match(inv["code"]) and inv["pn"] == BOB and inv["state"] == "open"
    assert inv["expires_at"] > inv["created_at"] + 86400
    # Typed as a person would: lower case, spaces for dashes.
    typed = inv["code"].lower().replace("-", " ")
    r = _share_to(api, recipient=typed)
    assert r.status_code == 201, r.text
    sh = r.json()
    assert sh["recipient"] == BOB and sh["state"] == "requested"
    assert inv["code"] in sh["history"][0]["reason"]
    (used,) = api.get(f"{V1}/invitations?pn={BOB}").json()
    assert (used["state"], used["share"]) == ("used", sh["id"])
    # Bob accepts it like any request.
    assert api.post(f"{V1}/shares/{sh['id']}/accept", json={"by": BOB}).status_code == 200
    # Another PN's codes are its own.
    assert api.get(f"{V1}/invitations?pn={CAROL}").json() == []


@pytest.mark.parametrize(
    ("case", "status", "says"),
    [
        ("unknown code", 404, "unknown invitation code"),
        ("expired code", 409, "expired"),
        ("code used twice", 409, "already used"),
        # any account name may be a PN's id: a short code is a PN nobody has
        ("code that is not one", 404, "nor is it an invitation code"),
        ("code, but not the owner's device", 403, "no device"),
        ("code for oneself", 400, "itself"),
        ("invitation for an unknown PN", 404, "unknown PN"),
        ("too many open invitations", 409, "unused invitations"),
        ("invitations of an unknown PN", 404, "unknown PN"),
        ("too short a lifetime", 422, "ttl_s"),
    ],
)
def test_bad_invitations_are_refused_and_change_nothing(
    api: Any, monkeypatch: pytest.MonkeyPatch, case: str, status: int, says: str
) -> None:
    code = api.post(f"{V1}/invitations", json={"by": BOB}).json()["code"]
    own = api.post(f"{V1}/invitations", json={"by": ALICE}).json()["code"]
    if case == "code used twice":
        assert _share_to(api, recipient=code).status_code == 201
    elif case == "too many open invitations":
        for _ in range(wf.MAX_OPEN_INVITATIONS - 1):
            assert api.post(f"{V1}/invitations", json={"by": BOB}).status_code == 201
    elif case == "expired code":
        later = wf.time.time() + wf.INVITATION_TTL_S + 1
        monkeypatch.setattr(wf, "time", types.SimpleNamespace(time=lambda: later))

    def state() -> Any:
        invs = [api.get(f"{V1}/invitations?pn={p}").json() for p in (ALICE, BOB)]
        return snapshot(api), invs

    before = state()
    if case in ("unknown code", "expired code", "code used twice"):
        r = _share_to(api, recipient="ZZZZ-ZZZZ-ZZZZ" if case == "unknown code" else code)
    elif case == "code that is not one":
        r = _share_to(api, recipient="ABCD-EFGH")
    elif case == "code, but not the owner's device":
        r = _share_to(api, recipient=code, device="tv")
    elif case == "code for oneself":
        r = _share_to(api, recipient=own)
    elif case == "invitation for an unknown PN":
        r = api.post(f"{V1}/invitations", json={"by": "nobody@nowhere.example"})
    elif case == "too many open invitations":
        r = api.post(f"{V1}/invitations", json={"by": BOB})
    elif case == "invitations of an unknown PN":
        r = api.get(f"{V1}/invitations?pn=nobody@nowhere.example")
    else:
        r = api.post(f"{V1}/invitations", json={"by": BOB, "ttl_s": 1})
    assert r.status_code == status, r.text
    assert says in r.json()["detail"]
    assert state() == before
    if case == "code, but not the owner's device":  # the refused share left the code usable
        assert _share_to(api, recipient=code).status_code == 201


def test_the_cli_shares_by_code_with_a_port_and_lists_the_learned_ones(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def through_app(method: str, url: str, **kw: Any) -> httpx.Response:
        kw.pop("timeout", None)
        kw.pop("verify", None)  # TLS settings of a real connection (apiclient.client_tls)
        return api.request(method, url, **kw)  # type: ignore[no-any-return]

    monkeypatch.setattr("netfate.apiclient.httpx.request", through_app)
    # The app's client signs each request in as the one it names: no token of the
    # machine's (a login, NETFATE_TOKEN, a testbed running beside) may replace it.
    monkeypatch.setattr("netfate.apiclient.find_token", lambda base: None)
    run = CliRunner().invoke
    r = run(cli.app, ["invite", "--by", BOB])
    assert r.exit_code == 0, r.output
    code = r.output.split()[0]
    assert CODE.match(code) and BOB in r.output
    r = run(cli.app, ["share", ALICE, "mediaserver", code, "--http-port", "8200"])
    assert r.exit_code == 0, r.output
    assert f"with {BOB}; ports 8200 (set)" in r.output
    sid = int(r.output.split()[0])
    r = run(cli.app, ["invitations", BOB])
    assert r.exit_code == 0 and f"{code}  used    share {sid}" in r.output
    sh = api.post(f"{V1}/shares/{sid}/accept", json={"by": BOB}).json()
    _vp1_reports(api, sh, {"ports": {"configured": [8200], "learned": [8200, 49152],
                                     "proxied": [8200, 49152]}})  # fmt: skip
    r = run(cli.app, ["list", "--pn", ALICE])
    assert r.exit_code == 0 and "ports 8200 (set), 49152 (learned)" in r.output, r.output
    # Bad input: a clear one-line error and exit status 1.
    r = run(cli.app, ["share", ALICE, "mediaserver", code])
    assert r.exit_code == 1 and "409" in r.output and "already used" in r.output
    r = run(cli.app, ["share", ALICE, "mediaserver", BOB, "--http-port", "0"])
    assert r.exit_code == 1 and "ports are 1-65535" in r.output
