"""Personal Networks in the SDN: isolation of their LANs and each share's intents.

In-process orchestrator (SQLite); the test plays the agents, reporting every
node's bridge ports (its `local:` port, its hosts, its live instances) as
agents do. What the intents do to packets is the compiler's business
(test_sdn_compile_ports.py); the testbed tier sends the packets.
"""

from __future__ import annotations

import ipaddress
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
from netfate.model.topology import Topology
from netfate.orchestrator.app import Settings, create_app
from netfate.orchestrator.sdn.fabric import fabric_intents
from netfate.orchestrator.sdn.intents import ReplicationIntent
from netfate.services.sharing import SERVICE as SHARING
from netfate.services.sharing.network import Wiring, host_intents, share_intents
from netfate.vnf.virtual_presence.att import ATT
from waiting import share_in, until

TOPO: dict[str, Any] = {
    "name": "pns",
    "nodes": {
        "home": {"kind": "cpe", "lan": "192.168.1.0/24", "cpu": 2},
        "hotel": {"kind": "cpe", "lan": "192.168.2.0/24", "cpu": 2},
        "carol": {"kind": "cpe", "lan": "192.168.3.0/24", "cpu": 2},
        "pe1": {"kind": "pe", "lan": "10.10.0.0/24", "cpu": 4},
    },
    "hosts": {
        "nas": {"node": "home"},
        "laptop": {"node": "home"},
        "tv": {"node": "hotel"},
        "phone": {"node": "hotel"},
        "carolpc": {"node": "carol"},
        "server": {"node": "pe1"},
    },
    "links": [{"a": n, "b": "pe1"} for n in ("home", "hotel", "carol")],
}
HOME, HOTEL, CAROL = "alice@home.example", "bob@hotel.example", "carol@x.example"
V1 = "/api/v1/sharing"
A = ipaddress.IPv4Address


def report(c: TestClient, node: str, running: tuple[str, ...] = ()) -> None:
    """An agent's report: its bridge's ports (local, hosts, live instances), and
    `running` instances running."""
    ports: list[dict[str, Any]] = [{"name": f"{node}-l", "ofport": 1, "peer": f"local:{node}"}]
    for k, h in enumerate(sorted(h for h, spec in TOPO["hosts"].items() if spec["node"] == node)):
        ports.append({"name": f"{node}-h{k}", "ofport": 10 + k, "peer": f"host:{h}"})
    links = [lk for lk in TOPO["links"] if node in (lk["a"], lk["b"])]
    for k, lk in enumerate(links):
        other = lk["b"] if lk["a"] == node else lk["a"]
        ports.append({"name": f"{node}-n{k}", "ofport": 20 + k, "peer": f"node:{other}"})
    live = [i for i in c.get("/api/v1/instances").json()
            if i["node"] == node and i["state"] not in ("gone", "stopping", "failed")]  # fmt: skip
    for k, i in enumerate(sorted(live, key=lambda i: i["id"])):
        ports.append({"name": f"{node}-i{k}", "ofport": 30 + k, "peer": f"instance:{i['id']}"})
    body = {"ports": ports,
            "instances": [{"id": i, "status": "running", "pid": 1} for i in running]}  # fmt: skip
    r = c.post(f"/api/v1/agents/{node}/report", json=body)
    assert r.status_code == 200, r.text


def intents(c: TestClient) -> dict[str, dict[str, Any]]:
    return {i["intent"]["id"]: i for i in c.get("/api/v1/intents").json()}


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
            report(c, n)
        r = c.post("/api/v1/sdn/fabric")
        assert r.status_code == 201 and not r.json()["refused"], r.text
        yield c


def lan_intents(c: TestClient) -> set[str]:
    return {i for i in intents(c) if i.startswith("fabric-lan-")}


def test_a_pn_lan_loses_its_lan_to_lan_intents_and_the_fabric_does_not_bring_them_back(
    api: TestClient,
) -> None:
    assert lan_intents(api) == {
        "fabric-lan-carol-0-home-0", "fabric-lan-carol-0-hotel-0", "fabric-lan-carol-0-pe1-0",
        "fabric-lan-home-0-hotel-0", "fabric-lan-home-0-pe1-0", "fabric-lan-hotel-0-pe1-0",
    }  # fmt: skip
    for email, node in ((HOME, "home"), (HOTEL, "hotel")):
        assert api.post(f"{V1}/pns", json={"email": email, "node": node}).status_code == 201
    # Only the LAN pair of two non-PN LANs is left; gateways and transit stay.
    assert lan_intents(api) == {"fabric-lan-carol-0-pe1-0"}
    assert {"fabric-gw-nas", "fabric-gw-tv", "fabric-transit-home-hotel"} <= set(intents(api))
    r = api.post("/api/v1/sdn/fabric")
    assert r.status_code == 201 and r.json()["added"] == []
    assert api.post(f"{V1}/pns", json={"email": CAROL, "node": "carol"}).status_code == 201
    assert lan_intents(api) == set()


def share_ids(c: TestClient, sid: int) -> set[str]:
    return {i for i in intents(c) if i.startswith(f"share-{sid}-")}


def test_a_share_opens_its_paths_only_while_it_lives(api: TestClient) -> None:
    for email, node in ((HOME, "home"), (HOTEL, "hotel"), (CAROL, "carol")):
        assert api.post(f"{V1}/pns", json={"email": email, "node": node}).status_code == 201
    sh = api.post(f"{V1}/shares", json={"owner": HOME, "device": "nas", "recipient": HOTEL,
                                        "http_ports": [8200]}).json()  # fmt: skip
    sh = api.post(f"{V1}/shares/{sh['id']}/accept", json={"by": HOTEL}).json()
    sid, att = sh["id"], sh["att"]
    # The agents have not reported the VPs' ports yet: no paths, and not active.
    assert share_ids(api, sid) == set()
    assert api.get(f"{V1}/shares/{sid}").json()["state"] == "accepted"
    report(api, "home", (sh["vp2_instance"],))
    report(api, "hotel", (sh["vp1_instance"],))
    got = share_in(api, sid, "active")
    assert got["state"] == "active" and got["tunnel_intent"] == f"share-{sid}-overlay"
    ids = share_ids(api, sid)
    n_aliases = len(att["entries"])
    assert {f"share-{sid}-overlay", f"share-{sid}-vp2-self", f"share-{sid}-vp1-tv",
            f"share-{sid}-vp1-phone"} <= ids  # fmt: skip
    assert {f"share-{sid}-vp2-{k}" for k in range(n_aliases)} <= ids
    everything = intents(api)
    assert all(everything[i]["state"] != "refused" for i in everything), everything
    overlay = everything[f"share-{sid}-overlay"]["intent"]
    assert (overlay["protocol"], overlay["port"]) == ("udp", 4789)
    assert {overlay["a"], overlay["b"]} == {
        f"instance:{sh['vp2_instance']}",
        f"instance:{sh['vp1_instance']}",
    }
    # The aliases sit behind VP2's own port, each reachable from the shared device only.
    aliases = {a for a, _ in att["entries"]}
    vp2_alias_ends = {
        everything[i]["intent"]["b"]
        for i in ids
        if i.startswith(f"share-{sid}-vp2-") and i != f"share-{sid}-vp2-self"
    }
    assert {e.split(":")[1].split("/")[0] for e in vp2_alias_ends} == aliases
    assert all(e.endswith("@home/home-i0") for e in vp2_alias_ends)
    assert {everything[i]["intent"]["a"] for i in ids if "-vp2-" in i} == {"host:nas"}
    # Discovery groups and broadcasts: the hosts' copies go to the VPs serving them.
    ssdp = everything["sharing-tv-ssdp"]["intent"]
    assert ssdp["targets"] == [f"instance:{sh['vp1_instance']}"] and not ssdp["rewrite"]
    assert everything["sharing-nas-lbcast"]["intent"]["dst_ip"] == "192.168.1.255"
    assert not [i for i in everything if i.startswith(("share-", "sharing-")) and "carol" in i]
    # Revocation (by either owner) removes every intent of the share.
    r = api.post(f"{V1}/shares/{sid}/revoke", json={"by": HOTEL})
    assert r.status_code == 200
    left = intents(api)
    assert share_ids(api, sid) == set()
    assert not [i for i in left if i.startswith("sharing-")]
    vps = {f"instance:{sh['vp2_instance']}", f"instance:{sh['vp1_instance']}"}
    assert not [i for i, v in left.items() if vps & set(map(str, v["intent"].values()))]


def _wiring(share: int, vp1: str, device: str, pn2_hosts: tuple[str, ...]) -> Wiring:
    att = ATT(
        pn1=ipaddress.IPv4Network("192.168.1.0/24"), pn2=ipaddress.IPv4Network("192.168.2.0/24"),
        shared_device=A(device), import_alias=A(f"192.168.2.{10 + share}"),
        entries=((A(f"192.168.1.{20 + share}"), A("192.168.2.2")),),
    )  # fmt: skip
    return Wiring(
        share=share, att=att, vp2=f"vp2-{share}", vp2_node="home", vp2_port=f"p2-{share}",
        vp2_ip="192.168.1.254", vp1=vp1, vp1_node="hotel", vp1_port=f"p1-{share}",
        d2_host=None if device.endswith(".99") else f"d{share}", pn2_hosts=pn2_hosts,
        http=False,
    )  # fmt: skip


def test_a_host_served_by_two_vps_has_one_copy_intent_per_group_to_both() -> None:
    ws = [_wiring(1, "vp1-a", "192.168.1.2", ("tv",)), _wiring(2, "vp1-b", "192.168.1.3", ("tv",))]
    out = {it.id: it for it in host_intents(ws)}
    tv = out["sharing-tv-ssdp"]
    assert isinstance(tv, ReplicationIntent)
    assert [str(t) for t in tv.targets] == ["instance:vp1-a", "instance:vp1-b"]
    assert {i for i in out if i.startswith("sharing-tv-")} == {
        "sharing-tv-ssdp", "sharing-tv-mdns", "sharing-tv-bcast", "sharing-tv-lbcast"
    }  # fmt: skip
    lb = out["sharing-tv-lbcast"]
    assert isinstance(lb, ReplicationIntent) and lb.dst_ip == "192.168.2.255" and lb.port is None


def test_a_device_that_is_no_topology_host_gets_an_overlay_but_no_host_paths() -> None:
    ids = {it.id for it in share_intents(_wiring(3, "vp1-c", "192.168.1.99", ()))}
    assert ids == {"share-3-overlay"}


def test_fabric_leaves_isolated_lans_out() -> None:
    topo = Topology.from_dict(TOPO)
    every = {it.id for it in fabric_intents(topo)}
    some = {it.id for it in fabric_intents(topo, isolated={("home", "192.168.1.0/24")})}
    assert every - some == {
        "fabric-lan-carol-0-home-0", "fabric-lan-home-0-hotel-0", "fabric-lan-home-0-pe1-0"
    }  # fmt: skip


def test_the_vps_get_a_1550_underlay_only_where_every_link_on_the_path_carries_it(
    api: TestClient,
) -> None:
    """TOPO's links have no `mtu` (1500): the EI would get 1450 and clamp MSS. With
    1550 on both links of the path home - pe1 - hotel the VPs get 1550 (EI 1500)."""
    for email, node in ((HOME, "home"), (HOTEL, "hotel")):
        api.post(f"{V1}/pns", json={"email": email, "node": node})

    def share_config() -> dict[str, Any]:
        sh = api.post(f"{V1}/shares", json={"owner": HOME, "device": "nas",
                                            "recipient": HOTEL}).json()  # fmt: skip
        sh = api.post(f"{V1}/shares/{sh['id']}/accept", json={"by": HOTEL}).json()
        cfg: dict[str, Any] = api.get(f"/api/v1/instances/{sh['vp2_instance']}").json()["config"]
        api.post(f"{V1}/shares/{sh['id']}/revoke", json={"by": HOME})
        return cfg

    cfg = share_config()
    assert (cfg["underlay_mtu"], cfg["link_mtu"], cfg["underlay_onlink"]) == (1500, 1550, True)
    topo = {**TOPO, "links": [{**lk, "mtu": 1550} for lk in TOPO["links"]]}
    topo["links"][2] = TOPO["links"][2]  # carol's link (not on the path) stays 1500
    assert api.put("/api/v1/topology", json=topo).status_code == 200
    assert share_config()["underlay_mtu"] == 1550


def vhg_ids(c: TestClient) -> set[str]:
    return {i for i in intents(c) if i.startswith("sharing-vhg-")}


def test_a_vhg_gets_its_dhcp_and_router_paths_while_it_runs(api: TestClient) -> None:
    for email, node in ((HOME, "home"), (HOTEL, "hotel")):
        assert api.post(f"{V1}/pns", json={"email": email, "node": node}).status_code == 201
    pn = api.post(f"{V1}/pns/{HOME}/vhg").json()
    vhg = pn["vhg_instance"]
    # Not running and not on its bridge yet: no paths.
    assert api.get(f"{V1}/pns/{HOME}").json()["vhg_paths"] is False
    assert vhg_ids(api) == set()
    report(api, "home", (vhg,))
    # The loop installs them once it runs on its port, with nobody reading.
    assert until(lambda: api.get(f"{V1}/pns/{HOME}").json()["vhg_paths"]) is True
    everything = intents(api)
    assert vhg_ids(api) == {
        f"sharing-vhg-{vhg}-gw", f"sharing-vhg-{vhg}-bcast", "sharing-vhg-nas",
        "sharing-vhg-nas-dhcp", "sharing-vhg-laptop", "sharing-vhg-laptop-dhcp",
    }  # fmt: skip
    assert all(everything[i]["state"] != "refused" for i in everything), everything
    router = everything["sharing-vhg-laptop"]["intent"]
    assert (router["a"], router["b"], router["above_gateway"]) == (
        "host:laptop",
        f"instance:{vhg}",
        True,
    )
    dhcp = everything["sharing-vhg-laptop-dhcp"]["intent"]
    assert dhcp["source"].startswith("subnet:0.0.0.0/32@home/home-h")
    assert (dhcp["port"], dhcp["dst_ip"], dhcp["targets"]) == (67, "255.255.255.255",
                                                               [f"instance:{vhg}"])  # fmt: skip
    # Nothing of it for the hotel's hosts; a share beside it installs whole.
    assert not [i for i in vhg_ids(api) if "tv" in i or "phone" in i]
    sh = api.post(f"{V1}/shares", json={"owner": HOME, "device": "nas",
                                        "recipient": HOTEL}).json()  # fmt: skip
    sh = api.post(f"{V1}/shares/{sh['id']}/accept", json={"by": HOTEL}).json()
    report(api, "home", (vhg, sh["vp2_instance"]))
    report(api, "hotel", (sh["vp1_instance"],))
    assert share_in(api, sh["id"], "active")["state"] == "active"
    everything = intents(api)
    assert all(everything[i]["state"] != "refused" for i in everything), everything
    # The vHG goes: so do its paths.
    assert api.delete(f"/api/v1/instances/{vhg}").status_code in (200, 202)
    until(lambda: not vhg_ids(api))  # the loop takes them out, with nobody reading
    assert vhg_ids(api) == set()


def test_a_host_its_owner_leaves_out_of_the_pn_loses_its_vhg_paths(api: TestClient) -> None:
    """A PN of any account (here `alice`, no email); the hosts of its LAN that join it
    are its owner's choice (the `personal-network-devices` capability, which the
    catalog calls): a host left out gets no path to the vHG and is not the PN's."""
    r = api.post(f"{V1}/pns", json={"email": "alice", "node": "home", "vhg": True})
    assert r.status_code == 201, r.text
    vhg = r.json()["vhg_instance"]
    report(api, "home", (vhg,))
    until(lambda: api.get(f"{V1}/pns/alice").json()["vhg_paths"])
    assert {"sharing-vhg-nas", "sharing-vhg-laptop"} <= vhg_ids(api)
    join = api.app.state.capabilities.get("personal-network-devices")
    with api.app.state.db.session() as s:
        view, devices, problems, _nodes = join(s, "alice", ["laptop", "tv"])
    assert problems == {1: "'tv' is on hotel's LAN, not on this Personal Network's "
                        "(home 192.168.1.0/24)"}  # fmt: skip
    assert devices[0]["name"] == "laptop" and devices[1] is None
    assert api.get(f"{V1}/pns/alice").json()["members"] is None  # refused: unchanged
    with api.app.state.db.session() as s:
        view, devices, problems, _nodes = join(s, "alice", ["laptop"])
    assert problems == {} and view["members"] == ["laptop"]
    assert [d["name"] for d in api.get(f"{V1}/pns/alice/devices").json()] == ["laptop"]
    until(lambda: "sharing-vhg-nas" not in vhg_ids(api))  # the loop takes its paths out
    assert {"sharing-vhg-laptop", "sharing-vhg-laptop-dhcp"} <= vhg_ids(api)
    assert not [i for i in vhg_ids(api) if "nas" in i]
    # the nas is no device of the PN any more: it cannot be shared from it
    assert api.post(f"{V1}/pns", json={"email": HOTEL, "node": "hotel"}).status_code == 201
    r = api.post(f"{V1}/shares", json={"owner": "alice", "device": "nas", "recipient": HOTEL})
    assert r.status_code == 403 and "has no device 'nas'" in r.json()["detail"], r.text
