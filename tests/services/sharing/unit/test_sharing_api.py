"""The sharing API in-process (SQLite), agents played by the test.

The workflow of seed III.A, the share state machine with its history, and bad
input: every refusal is a clear 4xx and changes nothing.
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

from netfate.orchestrator.app import Settings, create_app
from netfate.services.sharing import SERVICE as SHARING
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
    with TestClient(app) as c:
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
        ("recipient not an email", 400),
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
    elif case == "recipient not an email":
        r = share(to="not-an-email")
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
