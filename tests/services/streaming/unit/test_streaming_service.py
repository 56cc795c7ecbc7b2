"""The streaming service through its API and its loop (services/streaming): the
front-end's tables with keyed 422s, an event started gets an acquirer at its
provider's PE, viewers joining get edge streamers by the paper's rule (case and
why), the loop keeps the platform's instances equal to the tree (created,
reconfigured with next hops, destroyed after the grace period), a join beyond
capacity is refused with the reason."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
from netfate.contract import Role
from netfate.model.topology import Topology
from netfate.orchestrator.app import Settings, create_app
from netfate.services import registered
from netfate.services.streaming import SERVICE as STREAMING
from netfate.services.streaming import backend, cli, reconcile, recordings
from streaming_api import keyed, ok
from waiting import until

V1 = "/api/v1/streaming"
# The paper's testbed: 5 PEs, 2 core routers.
TOPO: dict[str, Any] = {
    "name": "paper",
    "nodes": {
        **{f"pe{i}": {"kind": "pe", "lan": f"10.{60 + i}.0.0/24", "cpu": 2} for i in range(1, 6)},
        "c1": {"kind": "core"},
        "c2": {"kind": "core"},
    },
    "hosts": {"cam": {"node": "pe1"}, "phone": {"node": "pe2"}, "tablet": {"node": "pe4"}},
    "links": [
        {"a": "pe1", "b": "c1", "rate": "100Mbit", "delay": "1ms"},
        {"a": "pe2", "b": "c1", "rate": "100Mbit", "delay": "2ms"},
        {"a": "pe3", "b": "c1", "rate": "100Mbit", "delay": "2ms"},
        {"a": "pe4", "b": "c2", "rate": "100Mbit", "delay": "1ms"},
        {"a": "pe5", "b": "c2", "rate": "10Mbit", "delay": "1ms"},
        {"a": "c1", "b": "c2", "rate": "1Gbit", "delay": "5ms"},
    ],
}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600),
        services=[STREAMING],
    )
    with authn.client(app) as c:  # signed in per route
        assert c.put("/api/v1/topology", json=TOPO).status_code == 200
        for n in TOPO["nodes"]:
            r = c.post(f"/api/v1/agents/{n}/register", json={"endpoint": f"127.0.0.1:{n}"})
            assert r.status_code == 200, r.text
        yield c


def live_event(c: TestClient, provider: str = "uni", pe: str = "pe1", kbps: int = 4000) -> str:
    if c.get(f"{V1}/providers").json() == [] or provider not in {
        p["name"] for p in c.get(f"{V1}/providers").json()
    }:
        ok(
            c.post(f"{V1}/providers", json={"name": provider, "title": "A University", "pe": pe}),
            201,
        )
    ev = ok(
        c.post(
            f"{V1}/events",
            json={
                "provider": provider,
                "title": "Opening lecture",
                "description": "Room A",
                "start": time.time() + 60,
                "duration_s": 3600,
                "bitrate_kbps": kbps,
            },
        ),
        201,
    )
    started = ok(c.post(f"{V1}/events/{ev['id']}/start"))
    assert started["state"] == "started"
    return str(started["content"]["id"])


def instances(c: TestClient) -> dict[str, dict[str, Any]]:
    live = ("requested", "starting", "running", "migrating")
    return {i["name"]: i for i in c.get("/api/v1/instances").json() if i["state"] in live}


def test_front_end_tables_and_keyed_errors(api: TestClient) -> None:
    assert "unknown node" in keyed(
        api.post(f"{V1}/providers", json={"name": "uni", "title": "U", "pe": "pe9"}), "pe"
    )
    assert "core node" in keyed(
        api.post(f"{V1}/providers", json={"name": "uni", "title": "U", "pe": "c1"}), "pe"
    )
    assert keyed(
        api.post(f"{V1}/providers", json={"name": "Bad Name", "title": "U", "pe": "pe1"}), "name"
    )
    assert "IP address" in keyed(
        api.post(
            f"{V1}/providers", json={"name": "uni", "title": "U", "pe": "pe1", "source": "nowhere"}
        ),
        "source",
    )
    ok(api.post(f"{V1}/providers", json={"name": "uni", "title": "U", "pe": "pe1"}), 201)
    assert (
        api.post(f"{V1}/providers", json={"name": "uni", "title": "U", "pe": "pe1"}).status_code
        == 409
    )
    base = {"provider": "uni", "title": "Lecture", "start": time.time() + 600, "duration_s": 60}
    assert "unknown provider" in keyed(
        api.post(f"{V1}/events", json={**base, "provider": "x"}), "provider"
    )
    assert "over already" in keyed(
        api.post(f"{V1}/events", json={**base, "start": 1000.0}), "start"
    )
    assert keyed(api.post(f"{V1}/events", json={**base, "duration_s": -1}), "duration_s")
    assert keyed(api.post(f"{V1}/events", json={**base, "colour": "red"}), "colour")
    ev = ok(api.post(f"{V1}/events", json={**base, "description": "Room A"}), 201)
    assert ev["state"] == "scheduled" and ev["content"] is None
    (prov,) = ok(api.get(f"{V1}/providers"))
    assert [e["title"] for e in prov["events"]] == ["Lecture"]  # Discover: the schedule
    # reservations (future events only, once per user) and recordings
    r = ok(api.post(f"{V1}/reservations", json={"user": "bob", "event": ev["id"]}), 201)
    assert (
        api.post(f"{V1}/reservations", json={"user": "bob", "event": ev["id"]}).status_code == 409
    )
    assert "unknown event" in keyed(
        api.post(f"{V1}/reservations", json={"user": "bob", "event": 999}), "event"
    )
    assert [x["id"] for x in ok(api.get(f"{V1}/reservations?user=bob"))] == [r["id"]]
    assert ok(api.get(f"{V1}/reservations?user=eve")) == []
    rec = ok(api.post(f"{V1}/recordings", json={"user": "bob", "event": ev["id"]}), 201)
    assert ok(api.get(f"{V1}/recordings?user=bob"))[0]["state"] == "requested"
    ok(api.post(f"{V1}/events/{ev['id']}/start"))
    ok(api.post(f"{V1}/events/{ev['id']}/stop"))
    assert ok(api.get(f"{V1}/recordings?user=bob"))[0]["state"] == "stopped"
    assert "ended" in keyed(
        api.post(f"{V1}/reservations", json={"user": "amy", "event": ev["id"]}), "event"
    )
    assert api.post(f"{V1}/events/{ev['id']}/start").status_code == 409
    ok(api.delete(f"{V1}/reservations/{r['id']}"))
    assert ok(api.delete(f"{V1}/recordings/{rec['id']}"))["state"] == "stopped"


def test_an_event_started_gets_its_acquirer_and_viewers_get_streamers(api: TestClient) -> None:
    cid = live_event(api)
    (content,) = ok(api.get(f"{V1}/contents"))
    acq = content["acquirer"]
    assert acq["node"] == "pe1" and acq["port"] == 5000 and acq["address"].startswith("10.61.0.")
    assert instances(api)["acquirer-pe1"]["node"] == "pe1"
    # a viewer on pe2: case 4, a new streamer there; the acquirer now sends to it
    a = ok(api.post(f"{V1}/contents/{cid}/viewers", json={"user": "alice", "host": "phone"}))
    assert a["case"] == 4 and a["node"] == "pe2" and a["pe"] == "pe2", a
    assert a["address"].startswith("10.62.0.") and a["hls"].endswith(f"/hls/{cid}/index.m3u8")
    es = instances(api)[f"streamer-{a['streamer']}"]
    assert es["node"] == "pe2" and es["config"]["contents"] == [{"id": cid, "port": 6000}]
    (flow,) = instances(api)["acquirer-pe1"]["config"]["flows"]
    assert flow["port"] == 5000 and flow["next_hops"] == [{"host": a["address"], "port": 6000}]
    # case 1 on pe2, case 3 from pe3 (pe2 is its neighbour)
    b = ok(api.post(f"{V1}/contents/{cid}/viewers", json={"user": "bob", "pe": "pe2"}))
    assert b["case"] == 1 and b["streamer"] == a["streamer"], b
    c3 = ok(api.post(f"{V1}/contents/{cid}/viewers", json={"user": "carol", "pe": "pe3"}))
    assert c3["case"] == 3 and c3["node"] == "pe2" and "neighbour pe2" in c3["why"], c3
    watching = ok(api.get(f"{V1}/contents/{cid}/viewers"))
    assert [v["user"] for v in watching] == ["alice", "bob", "carol"]
    assert api.get(f"{V1}/contents/nope/viewers").status_code == 404
    # the decisions are in the platform's event log with their why
    kinds = [e["kind"] for e in api.get("/api/v1/events").json()]
    assert kinds.count("StreamingViewerAssigned") == 3
    tree = ok(api.get(f"{V1}/tree"))
    assert tree["violations"] == [] and tree["loads"]["link_bps"]["c1-pe1"] == 4e6
    assert {f["key"] for f in tree["functions"]} == {"acquirer:pe1", f"streamer:{a['streamer']}"}


def test_the_loop_prunes_after_the_grace_period_and_releases_the_streamer(
    api: TestClient,
) -> None:
    ok(api.put(f"{V1}/settings", json={"grace_s": 0.5}))
    cid = live_event(api)
    a = ok(api.post(f"{V1}/contents/{cid}/viewers", json={"user": "alice", "pe": "pe4"}))
    name = f"streamer-{a['streamer']}"
    assert name in instances(api)
    left = ok(api.delete(f"{V1}/contents/{cid}/viewers/pe4?user=alice"))
    assert left["prune_at"] is not None
    assert api.delete(f"{V1}/contents/{cid}/viewers/pe4?user=alice").status_code == 404
    # nobody asks: the loop prunes the branch and destroys the streamer
    assert until(lambda: name not in instances(api), 10.0), instances(api)
    assert ok(api.get(f"{V1}/tree"))["state"]["streamers"] == []
    (flow,) = instances(api)["acquirer-pe1"]["config"]["flows"]
    assert flow["next_hops"] == []
    # the event ends: the acquirer goes too
    (content,) = ok(api.get(f"{V1}/contents"))
    ok(api.post(f"{V1}/events/{content['event']}/stop"))
    assert "acquirer-pe1" not in instances(api)
    assert ok(api.get(f"{V1}/contents")) == []


def test_a_join_beyond_capacity_is_refused_with_the_reason(api: TestClient) -> None:
    # pe5 hangs off a 10 Mbit/s link (what it may send: its streamer's viewers): two
    # 4 Mbit/s viewers there; a third is served from pe4 (the tree's copy and its
    # stream share pe5's link: 8 Mbit/s); a fourth fits nowhere.
    cid = live_event(api, kbps=4000)
    ok(api.put(f"{V1}/settings", json={"criterion": "qos"}))
    for client in ("v1", "v2"):
        assert (
            ok(api.post(f"{V1}/contents/{cid}/viewers", json={"user": client, "pe": "pe5"}))["node"]
            == "pe5"
        )
    v3 = ok(api.post(f"{V1}/contents/{cid}/viewers", json={"user": "v3", "pe": "pe5"}))
    assert v3["case"] == 4 and v3["node"] == "pe4" and "pe5 sends 12.0 Mbit/s" in v3["why"]
    r = api.post(f"{V1}/contents/{cid}/viewers", json={"user": "v4", "pe": "pe5"})
    assert r.status_code == 503, r.text
    assert r.json()["detail"].startswith("no edge streamer can take the viewer")
    kinds = [e["kind"] for e in api.get("/api/v1/events").json()]
    assert "StreamingJoinRefused" in kinds
    assert ok(api.get(f"{V1}/tree"))["violations"] == []
    assert (
        api.post(f"{V1}/contents/nope/viewers", json={"client": "v", "pe": "pe2"}).status_code
        == 404
    )
    assert keyed(api.post(f"{V1}/contents/{cid}/viewers", json={"client": "v"}), "pe")
    assert "unknown host" in keyed(
        api.post(f"{V1}/contents/{cid}/viewers", json={"client": "v", "host": "tv"}), "host"
    )
    assert keyed(api.put(f"{V1}/settings", json={"criterion": "cheapest"}), "criterion")


def acquirer_reports(c: TestClient, node: str, items: list[dict[str, Any]]) -> None:
    """pe's agent reports its acquirer running, with these events in its stats."""
    (acq,) = [i for i in instances(c).values() if i["name"] == f"acquirer-{node}"]
    stats = {"events": {"last_seq": items[-1]["seq"], "dropped": 0, "items": items}}
    inst = {"id": acq["id"], "status": "running", "role": "active", "pid": 1, "stats": stats}
    ok(c.post(f"/api/v1/agents/{node}/report", json={"instances": [inst]}))


def test_the_acquirer_recognises_the_stream_and_the_content_keeps_it(api: TestClient) -> None:
    cid = live_event(api)
    (content,) = ok(api.get(f"{V1}/contents"))
    assert content["stream"] == {"state": "waiting"}
    h264 = {"kind": "video", "codec": "h264", "pid": 256, "width": 320, "height": 240}
    started = {"kind": "StreamStarted", "flow": cid, "transport": "rtp", "source": "10.61.0.9"}
    items = [
        {"seq": 1, **started, "ssrc": 7, "at": 1.0},
        {"seq": 2, "kind": "StreamRecognised", "flow": cid, "container": "mpegts",
         "streams": [h264], "complete": True, "bitrate_bps": None, "at": 2.0},
        {"seq": 3, "kind": "StreamMeasured", "flow": cid, "bitrate_bps": 812_000.0, "at": 3.0},
    ]  # fmt: skip
    acquirer_reports(api, "pe1", items)
    acquirer_reports(api, "pe1", items)  # reported twice: handled once
    (content,) = ok(api.get(f"{V1}/contents"))
    st = content["stream"]
    assert st["state"] == "streaming" and st["starts"] == 1 and st["source"] == "10.61.0.9"
    assert st["recognised"]["container"] == "mpegts"
    assert st["recognised"]["streams"][0]["codec"] == "h264"
    assert st["bitrate_bps"] == 812_000.0
    # the provider's encoder went away and came back: the same event continues
    items += [
        {"seq": 4, "kind": "StreamStopped", "flow": cid, "reason": "timeout", "at": 4.0},
        {"seq": 5, **started, "ssrc": 8, "at": 5.0},
    ]
    acquirer_reports(api, "pe1", items)
    (content,) = ok(api.get(f"{V1}/contents"))
    assert content["id"] == cid and content["stream"]["starts"] == 2
    assert content["stream"]["state"] == "streaming"
    assert content["stream"]["stopped"]["reason"] == "timeout"


def controller_programs(c: TestClient, *nodes: str) -> None:
    """The SDN controller reports each node's flow table: it programs their switches."""
    for i, n in enumerate(nodes):
        snap = {"kind": "flows", "node": n, "dpid": f"{i + 1:016x}", "time": 1.0, "flows": []}
        ok(c.post("/api/v1/sdn/events", json=snap), 202)


def test_switches_copy_a_content_where_the_controller_programs_them(api: TestClient) -> None:
    controller_programs(api, "pe1", "pe2", "pe3", "pe4", "pe5", "c1", "c2")
    ok(api.put(f"{V1}/settings", json={"grace_s": 0.5}))
    cid = live_event(api)
    a = ok(api.post(f"{V1}/contents/{cid}/viewers", json={"user": "alice", "pe": "pe2"}))
    b = ok(api.post(f"{V1}/contents/{cid}/viewers", json={"user": "bob", "pe": "pe4"}))
    # pe1 -> c1 -> {pe2, c2 -> pe4}: c1's switch copies; no forwarder anywhere.
    assert "copies in the switches (groups ALL at c1; no forwarder" in b["why"], b["why"]
    tree = ok(api.get(f"{V1}/tree"))
    assert tree["desired"]["switched"] == {cid: ["c1"]} and tree["desired"]["forwarders"] == {}
    assert tree["loads"]["link_bps"]["c1-pe1"] == 4e6  # one copy up to c1
    # The acquirer sends once, to the content's group address; the intents copy it.
    (flow,) = instances(api)["acquirer-pe1"]["config"]["flows"]
    assert flow["next_hops"] == [{"host": "239.255.23.112", "port": 6000}]  # 6000 = 23 * 256 + 112
    ids = {n: i["id"] for n, i in instances(api).items()}

    def spec(iid: str) -> dict[str, Any]:
        return dict(ok(api.get(f"/api/v1/intents/{iid}"))["intent"])

    rtp = spec(f"streaming-{cid}")
    assert rtp["kind"] == "replication" and rtp["source"] == f"instance:{ids['acquirer-pe1']}"
    assert (rtp["port"], rtp["dst_ip"], rtp["rewrite"]) == (6000, "239.255.23.112", True)
    streamers = {f"instance:{ids['streamer-' + v['streamer']]}" for v in (a, b)}
    assert set(rtp["targets"]) == streamers
    assert spec(f"streaming-{cid}-rtcp")["port"] == 6001
    # bob leaves: after the grace period his streamer goes and the intents follow.
    ok(api.delete(f"{V1}/contents/{cid}/viewers/pe4?user=bob"))
    gone = f"instance:{ids['streamer-' + b['streamer']]}"
    assert until(lambda: gone not in spec(f"streaming-{cid}")["targets"], 10.0)
    assert spec(f"streaming-{cid}")["targets"] == [f"instance:{ids['streamer-' + a['streamer']]}"]
    # The event ends: no streaming intent is left.
    (content,) = ok(api.get(f"{V1}/contents"))
    ok(api.post(f"{V1}/events/{content['event']}/stop"))

    def streaming_intents() -> list[str]:
        ids = [i["intent"]["id"] for i in ok(api.get("/api/v1/intents"))]
        return [i for i in ids if i.startswith("streaming-")]

    assert until(lambda: not streaming_intents(), 10.0), streaming_intents()


def streaming_intents(c: TestClient) -> dict[str, dict[str, Any]]:
    out = {i["intent"]["id"]: i["intent"] for i in ok(c.get("/api/v1/intents"))}
    return {k: v for k, v in out.items() if k.startswith("streaming-")}


def test_under_the_controller_the_functions_get_their_gateways_and_lan_paths(
    api: TestClient,
) -> None:
    """In secure mode nothing passes until an intent says so: the loop keeps each
    function's gateway, the provider's camera -> its acquirer (same LAN: the ingest
    port) and a viewer's device -> its streamer on the same PE (HTTP); a viewer on
    another PE is routed (no LAN path). None of them without the controller."""
    cid = live_event(api)
    phone = ok(api.post(f"{V1}/contents/{cid}/viewers", json={"user": "alice", "host": "phone"}))
    assert phone["node"] == "pe2"
    assert until(lambda: len(instances(api)) == 2, 10.0)
    assert streaming_intents(api) == {}  # no controller: the bridges pass everything
    controller_programs(api, "pe1", "pe2", "pe3", "pe4", "pe5", "c1", "c2")
    ok(api.post(f"{V1}/contents/{cid}/viewers", json={"user": "bob", "host": "tablet"}))
    ids = {n: i["id"] for n, i in instances(api).items()}
    acq, es2 = ids["acquirer-pe1"], ids[f"streamer-{phone['streamer']}"]
    es4 = next(i for n, i in ids.items() if n.startswith("streamer-") and i != es2)
    want = {
        f"streaming-gw-{i}": {"a": f"instance:{i}", "b": f"subnet:0.0.0.0/0@{n}"}
        for i, n in ((acq, "pe1"), (es2, "pe2"), (es4, "pe4"))
    }
    want |= {
        f"streaming-lan-cam-{acq}-udp-5000": {"a": "host:cam", "b": f"instance:{acq}"},
        f"streaming-lan-phone-{es2}-tcp-8080": {"a": "host:phone", "b": f"instance:{es2}"},
        f"streaming-lan-tablet-{es4}-tcp-8080": {"a": "host:tablet", "b": f"instance:{es4}"},
    }
    with api.app.state.db.session() as s:  # what the loop keeps (intents())
        t = backend.load(s, lock=False)
        got = {
            it.id: it.model_dump(mode="json")
            for it in reconcile.intents(s, t.desired(), t)
            if not it.id.startswith(f"streaming-{cid}")
        }
    assert {k: {"a": v["a"], "b": v["b"]} for k, v in got.items()} == want
    # stored as any intent is, where the view knows both ends (the unit test's view
    # has no agents' ports: the gateways, to the nodes' local ports, wait for them)
    lan = {k for k in want if k.startswith("streaming-lan-")}
    assert until(lambda: lan <= set(streaming_intents(api)), 10.0), streaming_intents(api)
    assert got[f"streaming-lan-cam-{acq}-udp-5000"]["protocol"] == "udp"
    # alice leaves: her device's path to pe2's streamer goes with her viewer
    ok(api.delete(f"{V1}/contents/{cid}/viewers/phone?user=alice"))
    assert until(lambda: f"streaming-lan-phone-{es2}-tcp-8080" not in streaming_intents(api), 10)


def signed_in(c: TestClient, name: str, role: Role = Role.USER) -> dict[str, str]:
    return authn.bearer(authn.token(c.app, name, role))


def test_a_viewer_is_the_signed_in_user_on_one_of_its_devices(api: TestClient) -> None:
    """A user joins, leaves and reads only as itself (its devices are labels: one user
    on two devices is two viewers); the operator sees and acts for everyone; the
    content's provider sees its viewers with abstract locations only."""
    cid = live_event(api)
    alice, bob = signed_in(api, "alice"), signed_in(api, "bob")
    viewers = f"{V1}/contents/{cid}/viewers"

    def tree_viewers() -> list[str]:
        return sorted(v["client"] for v in ok(api.get(f"{V1}/tree"))["state"]["viewers"])

    # alice joins from her phone as herself, no client id given: the device is its host
    a = ok(api.post(viewers, json={"host": "phone"}, headers=alice))
    assert (a["user"], a["client"], a["case"], a["node"]) == ("alice", "phone", 4, "pe2"), a
    # and from a second device at the same PE: the same user, another viewer (case 1)
    b = ok(api.post(viewers, json={"client": "laptop", "pe": "pe2"}, headers=alice))
    assert (b["user"], b["client"], b["case"]) == ("alice", "laptop", 1), b
    assert tree_viewers() == ["alice/laptop", "alice/phone"]
    # bob cannot join as alice: refused by the identity layer, nothing changes
    r = api.post(viewers, json={"user": "alice", "client": "tv", "pe": "pe4"}, headers=bob)
    assert r.status_code == 403, r.text
    assert tree_viewers() == ["alice/laptop", "alice/phone"]
    # nor leave one of her devices: his own "phone" does not watch (404); naming her, 403
    assert api.delete(f"{viewers}/phone", headers=bob).status_code == 404
    assert api.delete(f"{viewers}/phone?user=alice", headers=bob).status_code == 403
    assert tree_viewers() == ["alice/laptop", "alice/phone"]
    # a provider joins nobody
    assert (
        api.post(
            viewers, json={"pe": "pe2"}, headers=signed_in(api, "uni", Role.PROVIDER)
        ).status_code
        == 403
    )
    # bob joins as himself at pe4: his own viewer (a new streamer there)
    c = ok(api.post(viewers, json={"pe": "pe4"}, headers=bob))
    assert (c["user"], c["client"], c["case"], c["node"]) == ("bob", "pe4", 4, "pe4"), c
    # each user reads its own viewers only; the operator all of them
    assert [(v["user"], v["client"]) for v in ok(api.get(viewers, headers=alice))] == [
        ("alice", "laptop"),
        ("alice", "phone"),
    ]
    assert [(v["user"], v["client"]) for v in ok(api.get(viewers, headers=bob))] == [("bob", "pe4")]
    # carol at pe3: pe2's streamer, a neighbour's (case 3)
    carol = ok(api.post(viewers, json={"pe": "pe3"}, headers=signed_in(api, "carol")))
    assert (carol["case"], carol["node"]) == (3, "pe2"), carol
    assert len(ok(api.get(viewers))) == 4  # the operator
    # the provider of the content: its viewers, where only as a location class
    seen = ok(api.get(viewers, headers=signed_in(api, "uni", Role.PROVIDER)))
    assert sorted((v["case"], v["location"]["served_from"]) for v in seen) == [
        (1, "its access PE"),
        (3, "another PE"),
        (4, "its access PE"),
        (4, "its access PE"),
    ]
    said = str(seen)
    for secret in (
        "alice",
        "bob",
        "carol",
        "phone",
        "laptop",
        "pe2",
        "pe3",
        "pe4",
        "10.6",
        a["streamer"],
    ):
        assert secret not in said, (secret, seen)
    assert {v["location"]["tier"] for v in seen} == {"pe"}
    # another provider: as if the content did not exist
    other = signed_in(api, "tv", Role.PROVIDER)
    assert api.get(viewers, headers=other).status_code == 404
    # alice leaves from her phone: her laptop still watches
    assert ok(api.delete(f"{viewers}/phone", headers=alice))["user"] == "alice"
    assert tree_viewers() == ["alice/laptop", "bob/pe4", "carol/pe3"]
    # the operator acts for a user it names
    ok(api.delete(f"{viewers}/pe4?user=bob"))
    assert tree_viewers() == ["alice/laptop", "carol/pe3"]
    d = ok(api.post(viewers, json={"user": "bob", "client": "tablet", "host": "tablet"}))
    assert (d["user"], d["client"], d["node"]) == ("bob", "tablet", "pe4"), d
    # a name that is no account's is refused before anything is looked at
    assert keyed(api.post(viewers, json={"user": "no/one", "pe": "pe2"}), "user")
    assert keyed(api.post(viewers, json={"client": "a/b", "pe": "pe2"}, headers=bob), "client")


def _beside_firewall(tmp_path: Path, topo: dict[str, Any]) -> Iterator[TestClient]:
    (fw,) = [replace(s, lifespan=None, loops=()) for s in registered() if s.name == "firewall"]
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600),
        services=[STREAMING, fw],
    )
    with authn.client(app) as c:
        assert c.put("/api/v1/topology", json=topo).status_code == 200
        for n in topo["nodes"]:
            r = c.post(f"/api/v1/agents/{n}/register", json={"endpoint": f"127.0.0.1:{n}"})
            assert r.status_code == 200, r.text
        yield c


@pytest.fixture
def with_portals(tmp_path: Path) -> Iterator[TestClient]:
    """The streaming service beside the firewall service (whose captive-portal
    function the platform then knows by name; its RADIUS server is not started)."""
    yield from _beside_firewall(tmp_path, TOPO)


@pytest.fixture
def with_pe3_host(tmp_path: Path) -> Iterator[TestClient]:
    """As with_portals, a host at pe3 besides (a viewer there, no streamer)."""
    topo = {**TOPO, "hosts": {**TOPO["hosts"], "laptop": {"node": "pe3"}}}
    yield from _beside_firewall(tmp_path, topo)


def test_a_viewer_served_from_a_neighbour_pe_gets_a_pinhole_in_its_portal(
    with_pe3_host: TestClient,
) -> None:
    """Case 3 (the viewer's streamer on another PE, routed through the viewer's portal):
    its portal lets exactly its host's address reach that streamer's HTTP port; a
    viewer served on its own PE gets none; the pinhole goes when the viewer leaves."""
    api = with_pe3_host
    ok(api.put(f"{V1}/portals", json={"pes": ["pe2", "pe3"]}))
    cid = live_event(api)
    viewers = f"{V1}/contents/{cid}/viewers"
    hosts = {h["name"]: h["ip"].split("/")[0] for h in ok(api.get("/api/v1/hosts"))}

    def cfg(pe: str) -> dict[str, Any]:
        c: dict[str, Any] = instances(api)[f"portal-{pe}"]["config"]
        return c

    bob = ok(api.post(viewers, json={"user": "bob", "host": "phone"}))
    assert (bob["case"], bob["node"]) == (4, "pe2"), bob  # its own PE: no pinhole
    assert "pinholes" not in cfg("pe2") and "pinholes" not in cfg("pe3")
    carol = ok(api.post(viewers, json={"user": "carol", "host": "laptop"}))
    assert (carol["case"], carol["node"]) == (3, "pe2"), carol
    assert carol["address"] and carol["address"] != hosts["laptop"]
    holes = [{"client": hosts["laptop"], "to": carol["address"], "ports": [8080]}]
    assert cfg("pe3")["pinholes"] == holes  # at once, by the join's step
    assert "pinholes" not in cfg("pe2")  # bob's portal: nothing of carol's
    # a second device of the same user, on pe3 but no host there: no address, none
    ok(api.post(viewers, json={"user": "carol", "client": "tv", "pe": "pe3"}))
    assert cfg("pe3")["pinholes"] == holes
    # carol's laptop leaves: its pinhole goes at the loop's next step
    ok(api.delete(f"{viewers}/laptop?user=carol"))
    assert until(lambda: "pinholes" not in cfg("pe3"), 10.0), cfg("pe3")
    assert "pinholes" not in cfg("pe2")


def test_a_native_viewer_at_a_neighbour_pe_gets_its_rtp_through_its_portal(
    with_pe3_host: TestClient,
) -> None:
    """Case 3 with a native client (its RTP port given at the join): its portal lets
    that streamer's UDP reach exactly that port and the next (RTP, RTCP) of its host,
    besides the HTTP pinhole; a join again with another port moves it; it goes when
    the viewer leaves; nothing of it in another portal."""
    api = with_pe3_host
    ok(api.put(f"{V1}/portals", json={"pes": ["pe2", "pe3"]}))
    cid = live_event(api)
    viewers = f"{V1}/contents/{cid}/viewers"
    laptop = {h["name"]: h["ip"].split("/")[0] for h in ok(api.get("/api/v1/hosts"))}["laptop"]

    def cfg(pe: str) -> dict[str, Any]:
        c: dict[str, Any] = instances(api)[f"portal-{pe}"]["config"]
        return c

    def holes(to: str, rtp: int) -> list[dict[str, Any]]:
        rtp_hole = {"ports": [rtp, rtp + 1], "proto": "udp", "direction": "in"}
        return [
            {"client": laptop, "to": to, "ports": [8080]},
            {"client": laptop, "to": to, **rtp_hole},
        ]

    # bob's phone: pe2's own streamer (case 4), RTP or not: no pinhole anywhere
    ok(api.post(viewers, json={"user": "bob", "host": "phone", "rtp_port": 5004}))
    assert "pinholes" not in cfg("pe2") and "pinholes" not in cfg("pe3")
    assert keyed(api.post(viewers, json={"user": "carol", "host": "laptop", "rtp_port": 80}),
                 "rtp_port")  # fmt: skip
    carol = ok(api.post(viewers, json={"user": "carol", "host": "laptop", "rtp_port": 5004}))
    assert (carol["case"], carol["node"]) == (3, "pe2"), carol
    assert cfg("pe3")["pinholes"] == holes(carol["address"], 5004)  # at once
    assert "pinholes" not in cfg("pe2")
    # joined again on another port: that port only
    ok(api.post(viewers, json={"user": "carol", "host": "laptop", "rtp_port": 6000}))
    assert until(lambda: cfg("pe3")["pinholes"] == holes(carol["address"], 6000), 10.0), cfg("pe3")
    # it leaves: every pinhole of it goes
    ok(api.delete(f"{viewers}/laptop?user=carol"))
    assert until(lambda: "pinholes" not in cfg("pe3"), 10.0), cfg("pe3")
    assert "pinholes" not in cfg("pe2")


def test_a_playback_at_a_neighbour_pe_gets_a_pinhole(
    with_pe3_host: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MyShare: a recording played through a streamer on a neighbour PE (case 3) is let
    through the player's portal as a live viewer is (its host to that streamer's HTTP
    port, the VoD); it goes when the playback stops."""
    monkeypatch.setenv(recordings.VOLUME_ENV, str(tmp_path / "volume"))
    api = with_pe3_host
    ok(api.put(f"{V1}/portals", json={"pes": ["pe2", "pe3"]}))
    carol_h = authn.bearer(authn.token(api.app, "carol", Role.USER))
    cid = live_event(api)
    eid = int(cid.removeprefix("ev"))  # a live content is its event's (recordings.py)
    rid = ok(api.post(f"{V1}/recordings", json={"event": eid}, headers=carol_h), 201)["id"]
    ok(api.post(f"{V1}/contents/{cid}/viewers", json={"user": "bob", "host": "phone"}))
    ok(api.delete(f"{V1}/recordings/{rid}"))  # stopped: a whole VoD
    laptop = {h["name"]: h["ip"].split("/")[0] for h in ok(api.get("/api/v1/hosts"))}["laptop"]

    def cfg(pe: str) -> dict[str, Any]:
        c: dict[str, Any] = instances(api)[f"portal-{pe}"]["config"]
        return c

    assert "pinholes" not in cfg("pe3")
    play = f"{V1}/recordings/{rid}/play"
    a = ok(api.post(play, json={"host": "laptop"}, headers=carol_h))
    assert (a["case"], a["node"]) == (3, "pe2"), a
    assert cfg("pe3")["pinholes"] == [{"client": laptop, "to": a["address"], "ports": [8080]}]
    assert "pinholes" not in cfg("pe2")
    ok(api.delete(play, headers=carol_h))
    assert until(lambda: "pinholes" not in cfg("pe3"), 10.0), cfg("pe3")


def test_the_service_starts_the_viewers_portals_itself(
    with_portals: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PEs the operator names get a captive portal from the service's loop (its
    garden the front door, its sign-in the front-end's), through the platform; no
    longer named, it goes; a name that is no PE is skipped."""
    api = with_portals
    monkeypatch.setenv("NETFATE_STREAMING_PORTALS", "pe2, pe3, c9")

    def portals() -> dict[str, dict[str, Any]]:
        return {k: v for k, v in instances(api).items() if k.startswith("portal-")}

    assert until(lambda: set(portals()) == {"portal-pe2", "portal-pe3"}, 10.0), instances(api)
    door = str(Topology.from_dict(TOPO).door_ip)
    p2 = portals()["portal-pe2"]
    assert p2["descriptor"] == "captive-portal" and p2["node"] == "pe2"
    assert p2["config"]["garden"] == [door]
    assert p2["config"]["signin"] == f"http://{door}/signin?next=/api/v1/streaming/app"
    keys = {f["key"] for f in ok(api.get(f"{V1}/tree"))["functions"]}
    assert {"portal:pe2", "portal:pe3"} <= keys
    # every PE a host is attached to (phone: pe2, tablet: pe4, cam: pe1)
    monkeypatch.setenv("NETFATE_STREAMING_PORTALS", "all")
    want = {"portal-pe1", "portal-pe2", "portal-pe4"}
    assert until(lambda: set(portals()) == want, 10.0), portals()
    assert portals()["portal-pe2"]["id"] == p2["id"]  # kept, not made again
    monkeypatch.delenv("NETFATE_STREAMING_PORTALS")
    assert until(lambda: portals() == {}, 10.0), portals()


def test_the_operator_stores_where_the_portals_are_kept(
    with_portals: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PUT /portals: the operator's setting, stored (the environment's default no
    longer read); each portal is its clients' DHCP server and gateway (the PE's hosts
    at their topology addresses, itself as the router); an unknown PE or a core node
    is a keyed 422 and anyone else a 403, and nothing changes."""
    api = with_portals
    url = f"{V1}/portals"

    def portals() -> dict[str, dict[str, Any]]:
        return {k: v for k, v in instances(api).items() if k.startswith("portal-")}

    got = ok(api.get(url))
    assert (got["source"], got["all"], got["pes"], got["portals"]) == (
        "environment", False, [], []
    )  # fmt: skip
    # refused, keyed to each name at fault; nothing stored, nothing started
    r = api.put(url, json={"pes": ["pe2", "c1", "pe9"]})
    assert r.status_code == 422, r.text
    errs = {tuple(e["loc"]): e["msg"] for e in r.json()["errors"]}
    assert set(errs) == {("body", "pes", 1), ("body", "pes", 2)}, errs
    assert "core node" in errs[("body", "pes", 1)] and "unknown node" in errs[("body", "pes", 2)]
    assert "either all or pes" in keyed(api.put(url, json={"all": True, "pes": ["pe2"]}), "all")
    for role in (Role.USER, Role.PROVIDER):
        r = api.put(url, json={"pes": ["pe2"]}, headers=signed_in(api, "someone", role))
        assert r.status_code == 403, r.text
        assert api.get(url, headers=signed_in(api, "someone", role)).status_code == 403
    assert ok(api.get(url)) == got and portals() == {}
    # stored: pe2 and pe3 get portals from the service's loop
    got = ok(api.put(url, json={"pes": ["pe3", "pe2"]}))
    assert (got["source"], got["pes"], got["pes_now"]) == ("stored", ["pe2", "pe3"], ["pe2", "pe3"])
    assert set(portals()) == {"portal-pe2", "portal-pe3"}  # at once, by the request's step
    p2 = portals()["portal-pe2"]
    own = p2["ip"].split("/")[0]
    (phone,) = [h for h in ok(api.get("/api/v1/hosts")) if h["name"] == "phone"]
    phone_ip = phone["ip"].split("/")[0]
    assert p2["config"]["address"] == own
    assert p2["config"]["dhcp"] == {
        "range": "10.62.0.100,10.62.0.149,255.255.255.0,1h",
        "router": own,  # the clients' gateway: the portal itself
        "hosts": [f"{phone['mac']},{phone_ip}"],  # the PE's host, at its topology address
        "known_only": True,  # the testbed's one L2 network: another PE's hosts are not ours
    }
    assert portals()["portal-pe3"]["config"]["dhcp"]["hosts"] == []
    shown = {p["pe"]: p for p in ok(api.get(url))["portals"]}
    assert shown["pe2"]["address"] == own and shown["pe2"]["dhcp"]["router"] == own
    # the environment is no longer read once the operator has stored a setting
    monkeypatch.setenv("NETFATE_STREAMING_PORTALS", "pe4")
    got = ok(api.get(url))  # pes_now: what the loop's portals.pes reads at each step
    assert (got["source"], got["pes_now"]) == ("stored", ["pe2", "pe3"]), got
    assert set(portals()) == {"portal-pe2", "portal-pe3"}
    # every PE a host is attached to (cam: pe1, phone: pe2, tablet: pe4); pe2's kept
    ok(api.put(url, json={"all": True}))
    assert set(portals()) == {"portal-pe1", "portal-pe2", "portal-pe4"}
    assert portals()["portal-pe2"]["id"] == p2["id"]
    # none: they go
    assert ok(api.put(url, json={"pes": []}))["pes_now"] == []
    assert portals() == {}


def test_a_portal_takes_its_cpu_in_the_trees_accounting(with_portals: TestClient) -> None:
    """Each portal's CPU (its descriptor's) counts at its PE in the tree's loads."""
    api = with_portals
    ok(api.put(f"{V1}/portals", json={"pes": ["pe2"]}))
    loads = ok(api.get(f"{V1}/tree"))["loads"]["node_cpu"]
    assert loads == {"pe2": pytest.approx(0.2)}, loads
    cid = live_event(api)  # the acquirer at pe1; a viewer at pe2: its new streamer there
    ok(api.post(f"{V1}/contents/{cid}/viewers", json={"user": "bob", "pe": "pe2"}))
    loads = ok(api.get(f"{V1}/tree"))["loads"]["node_cpu"]
    assert loads["pe2"] == pytest.approx(0.2 + 0.2 + 0.1), loads  # portal + streamer + X


def test_user_and_provider_default_to_the_caller(api: TestClient) -> None:
    """A provider's event, a user's recording and reservation name their caller when
    the body names no one; the operator must name whom it acts for (keyed 422)."""
    ok(api.post(f"{V1}/providers", json={"name": "uni", "title": "U", "pe": "pe1"}), 201)
    uni, alice = signed_in(api, "uni", Role.PROVIDER), signed_in(api, "alice")
    base = {"title": "Lecture", "start": time.time() + 600, "duration_s": 60}
    ev = ok(api.post(f"{V1}/events", json=base, headers=uni), 201)
    assert ev["provider"] == "uni"
    assert "give the provider" in keyed(api.post(f"{V1}/events", json=base), "provider")
    later = ok(api.post(f"{V1}/events", json={**base, "provider": "uni"}), 201)
    rec = ok(api.post(f"{V1}/recordings", json={"event": ev["id"]}, headers=alice), 201)
    assert rec["user"] == "alice"
    res = ok(api.post(f"{V1}/reservations", json={"event": later["id"]}, headers=alice), 201)
    assert res["user"] == "alice"
    assert [r["id"] for r in ok(api.get(f"{V1}/recordings", headers=alice))] == [rec["id"]]
    # naming another is still refused by the identity layer, and nothing is made
    r = api.post(f"{V1}/recordings", json={"user": "bob", "event": ev["id"]}, headers=alice)
    assert r.status_code == 403, r.text
    assert ok(api.get(f"{V1}/recordings?user=bob")) == []


def test_the_cli_shows_and_sets_where_the_portals_are(
    with_portals: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`netfate streaming portals`: shows the setting, sets PEs, --all and --none; a
    PE the API refuses is a one-line error and exit status 1, nothing changed."""
    api = with_portals

    def through_app(method: str, url: str, **kw: Any) -> httpx.Response:
        kw.pop("timeout", None)
        kw.pop("verify", None)  # TLS settings of a real connection (apiclient.client_tls)
        return api.request(method, url, **kw)  # type: ignore[no-any-return]

    monkeypatch.setattr("netfate.apiclient.httpx.request", through_app)
    monkeypatch.setattr("netfate.apiclient.find_token", lambda base: None)
    run = CliRunner().invoke
    r = run(cli.app, ["portals"])
    assert r.exit_code == 0 and "portals at: none (environment)" in r.output, r.output
    r = run(cli.app, ["portals", "pe2", "c1"])
    assert r.exit_code == 1 and "pes.1" in r.output and "core node" in r.output, r.output
    assert ok(api.get(f"{V1}/portals"))["source"] == "environment"
    r = run(cli.app, ["portals", "pe2"])
    assert r.exit_code == 0, r.output
    assert "portals at: pe2 (stored); now at: pe2" in r.output and "  pe2: i-" in r.output
    assert "DHCP 10.62.0.100,10.62.0.149,255.255.255.0,1h via 10.62.0." in r.output
    r = run(cli.app, ["portals", "--all", "--json"])
    assert r.exit_code == 0 and '"all": true' in r.output, r.output
    r = run(cli.app, ["portals", "--none"])
    assert r.exit_code == 0 and "portals at: none (stored); now at: -" in r.output, r.output
