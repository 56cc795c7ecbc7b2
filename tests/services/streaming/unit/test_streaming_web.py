"""The streaming service's web apps (services/streaming/web.py): the pages and the
player library (hls.js from the build's node_modules) are served; who the page
speaks for; MyShare lists a user's recordings with the storage function's VoD
playlist; a recording drives the storage function (it joins the acquirer's next
hops only while a recording is requested); deletion; the events a user watched."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
from netfate.contract import Role
from netfate.services.streaming import backend, reconcile, recordings
from netfate.services.streaming.web import LIBRARY
from netfate.vnf.streaming import tokens
from streaming_api import ok, streaming_api
from waiting import until

V1 = "/api/v1/streaming"


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """pe1 (the provider's) and pe2 (a viewer's phone) through core c1."""
    monkeypatch.setenv(recordings.VOLUME_ENV, str(tmp_path / "volume"))
    monkeypatch.setenv(recordings.QUOTA_ENV, "5000000")
    topo = {
        "name": "web",
        "nodes": {"pe1": {"kind": "pe", "lan": "10.61.0.0/24", "cpu": 2},
                  "pe2": {"kind": "pe", "lan": "10.62.0.0/24", "cpu": 2}, "c1": {"kind": "core"}},
        "hosts": {"cam": {"node": "pe1"}, "phone": {"node": "pe2"}},
        "links": [{"a": "pe1", "b": "c1"}, {"a": "pe2", "b": "c1"}],
    }  # fmt: skip
    with streaming_api(tmp_path, topo) as c:  # signed in per route
        yield c


def scheduled(c: TestClient) -> int:
    """A provider at pe1 and an event of it, scheduled."""
    ok(c.post(f"{V1}/providers", json={"name": "uni", "title": "A University", "pe": "pe1"}), 201)
    body = {"provider": "uni", "title": "Lecture", "start": time.time() + 60, "duration_s": 600}
    return int(ok(c.post(f"{V1}/events", json=body), 201)["id"])


def named(c: TestClient) -> dict[str, dict[str, Any]]:
    """The live instances by name."""
    gone = ("gone", "failed", "stopping")
    return {i["name"]: i for i in c.get("/api/v1/instances").json() if i["state"] not in gone}


def _report(c: TestClient, node: str, stats: dict[str, dict[str, Any]]) -> None:
    """An agent's report: every instance of ``node`` running, with ``stats`` by name."""
    mine = [i for i in c.get("/api/v1/instances").json() if i["node"] == node]
    body = {
        "instances": [
            {"id": i["id"], "status": "running", "pid": 1, "stats": stats.get(i["name"], {})}
            for i in mine
        ]
    }
    ok(c.post(f"/api/v1/agents/{node}/report", json=body))


def test_pages_and_player_library(api: TestClient) -> None:
    for path, marker in (("/app", 'id="player"'), ("/studio", 'id="schedule"')):
        r = api.get(V1 + path)
        assert r.status_code == 200 and marker in r.text
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "media-src 'self' blob:" in csp
    lib = api.get(f"{V1}/app/hls.js")
    assert lib.status_code == 200, "hls.js missing: make deps runs npm ci"
    assert lib.content == LIBRARY.read_bytes() and b"MediaSource" in lib.content
    man = ok(api.get(f"{V1}/app/manifest.webmanifest"))
    assert man["start_url"] == f"{V1}/app"
    home = api.get("/").text
    assert "/static/streaming/panel.js" in home
    for f in ("app.js", "common.js", "studio.js", "app.css", "panel.js"):
        assert api.get(f"/static/streaming/{f}").status_code == 200
    # The user's app is behind sign-in: a browser without a session is sent to the
    # sign-in page with the app as next; an API client gets 401; its files stay public.
    html = {"Accept": "text/html"}
    r = api.get(f"{V1}/app", headers=html, auth=None, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/signin?next=" + quote(f"{V1}/app", safe="")
    assert api.get(f"{V1}/app", auth=None).status_code == 401
    assert api.get(f"{V1}/providers", auth=None).status_code == 401
    assert api.get("/static/streaming/app.js", auth=None).status_code == 200


def test_who(api: TestClient) -> None:
    assert ok(api.get(f"{V1}/app/me?user=alice&host=phone")) == {
        "user": "alice", "provider": None, "host": "phone", "pe": "pe2",
    }  # fmt: skip
    assert api.get(f"{V1}/app/me?host=nowhere").status_code == 404
    # A signed-in provider is who its credential says: one the service does not know
    # is a 404; a user's page never speaks for a provider.
    nobody = authn.bearer(authn.token(api.app, "nobody", Role.PROVIDER))
    assert api.get(f"{V1}/app/me", headers=nobody).status_code == 404
    assert ok(api.get(f"{V1}/app/me?user=alice&provider=uni"))["provider"] is None
    assert api.get(f"{V1}/app/me?user=").status_code == 403  # a user names only itself
    assert api.get(f"{V1}/app/recordings?user=").status_code == 422


def test_a_recording_drives_the_storage_function(api: TestClient, tmp_path: Path) -> None:
    eid = scheduled(api)
    rec = ok(api.post(f"{V1}/recordings", json={"user": "alice", "event": eid}), 201)
    # Asked for before the start: nothing runs yet (no content to record).
    assert not [n for n in named(api) if n.startswith("storage")]
    ok(api.post(f"{V1}/events/{eid}/start"))
    inst = named(api)
    sto, acq = inst["storage-pe1"], inst["acquirer-pe1"]
    assert sto["node"] == "pe1" and sto["descriptor"] == "streaming-storage"
    cfg = sto["config"]
    assert cfg["volume"] == str(tmp_path / "volume")  # the service's, not the instance's
    assert cfg["contents"] == [{"id": f"ev{eid}", "port": cfg["contents"][0]["port"]}]
    assert cfg["recordings"] == [
        {"id": f"r{rec['id']}", "user": "alice", "content": f"ev{eid}", "state": "recording"}
    ]
    assert cfg["quota"] == {"default_bytes": 5_000_000}
    # The storage joined: the acquirer sends the content to it, on the content's port.
    sto_ip = sto["ip"].split("/")[0]
    (flow,) = acq["config"]["flows"]
    assert {"host": sto_ip, "port": cfg["contents"][0]["port"]} in flow["next_hops"]

    # MyShare: the VoD playlist at the storage, the function's figures once reported.
    figs = {"state": "recording", "duration_s": 12.0, "octets": 90_000, "segments": 6}
    users = {"alice": {"used": 90_000, "quota": 5_000_000}}
    _report(api, "pe1", {"storage-pe1": {"recordings": {f"r{rec['id']}": figs}, "users": users}})
    (mine,) = ok(api.get(f"{V1}/app/recordings?user=alice"))
    assert mine["play"] == f"/recordings/{rec['id']}/play"  # through an edge streamer
    assert mine["title"] == "Lecture" and mine["state"] == "requested"
    assert mine["recorded"]["duration_s"] == 12.0 and mine["quota"]["used"] == 90_000
    assert ok(api.get(f"{V1}/app/recordings?user=bob")) == []

    # Stopping the recording: the storage leaves the tree; the function keeps serving it.
    ok(api.delete(f"{V1}/recordings/{rec['id']}"))  # the service's loop converges it
    assert until(lambda: named(api)["storage-pe1"]["config"]["recordings"][0]["state"] == "stopped")
    inst = named(api)
    (flow,) = inst["acquirer-pe1"]["config"]["flows"]
    assert all(h["host"] != sto_ip for h in flow["next_hops"])

    # Deleting it: the function is told to remove the files, and goes once it has.
    assert api.delete(f"{V1}/app/recordings/{rec['id']}?user=bob").status_code == 404
    ok(api.delete(f"{V1}/app/recordings/{rec['id']}?user=alice"))
    assert ok(api.get(f"{V1}/app/recordings?user=alice")) == []
    sto = named(api)["storage-pe1"]
    assert sto["config"]["recordings"][0]["state"] == "deleted"
    _report(api, "pe1", {"storage-pe1": {"recordings": {}}})
    assert until(lambda: "storage-pe1" not in named(api))


def test_a_recording_plays_through_the_users_edge_streamer(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MyShare's playback: the live rule picks the edge streamer (here case 2: pe2's
    streamer of a live viewer takes the recording), the bandwidth is reserved from the
    storage's PE, the streamer relays the storage's VoD with its grant there and the
    user's token alone; stopping, or the streamer saying it is idle, releases it."""
    eid = scheduled(api)
    rid = ok(api.post(f"{V1}/recordings", json={"user": "alice", "event": eid}), 201)["id"]
    content = ok(api.post(f"{V1}/events/{eid}/start"))["content"]["id"]
    live = ok(api.post(f"{V1}/contents/{content}/viewers", json={"client": "c", "host": "phone"}))
    ok(api.delete(f"{V1}/recordings/{rid}"))  # stopped: a whole VoD
    alice = authn.bearer(authn.token(api.app, "alice", Role.USER))
    bob = authn.bearer(authn.token(api.app, "bob", Role.USER))
    play = f"{V1}/recordings/{rid}/play"
    links = lambda: ok(api.get(f"{V1}/tree"))["loads"]["link_bps"]  # noqa: E731
    before = links()
    assert api.post(play, json={"host": "phone"}, headers=bob).status_code == 404  # alice's
    assert api.post(play, json={"host": "nowhere"}, headers=alice).status_code == 422
    a = ok(api.post(play, json={"host": "phone"}, headers=alice))
    assert a["case"] == 2 and a["streamer"] == live["streamer"] and a["node"] == "pe2", a
    assert a["stored_at"] == "pe1" and f"takes r{rid}" in a["why"], a["why"]
    base = f"http://{live['address']}:8080/vod/r{rid}/index.m3u8?token="
    assert a["vod"].startswith(base)
    with api.app.state.db.session() as s:
        key = backend.secret(s)
    assert key is not None
    tok = a["vod"][len(base) :]
    assert tokens.check(key, f"vod:r{rid}:alice", tok, time.time())
    assert not tokens.check(key, f"vod:r{rid}", tok, time.time())  # no grant at the storage
    # The streamer relays it from the storage, with its own grant there.
    inst = named(api)
    sto_ip = inst["storage-pe1"]["ip"].split("/")[0]
    (relayed,) = inst[f"streamer-{a['streamer']}"]["config"]["vod"]["recordings"]
    assert relayed["id"] == f"r{rid}" and relayed["user"] == "alice"
    assert relayed["origin"] == f"http://{sto_ip}:8081/vod/r{rid}/"
    # Reserved like a live branch: one more copy from pe1 to pe2.
    (bps,) = {x["bitrate_bps"] for x in ok(api.get(f"{V1}/tree"))["state"]["contents"]
              if x["id"] == f"r{rid}" and x.get("pull")}  # fmt: skip
    during = links()
    for k in ("c1-pe1", "c1-pe2"):
        assert during[k] == pytest.approx(before[k] + bps)
    # Stopped: released after the grace period (0 here); the live viewer keeps its streamer.
    ok(api.put(f"{V1}/settings", json={"grace_s": 0}))
    assert api.delete(play, headers=bob).status_code == 404
    ok(api.delete(play, headers=alice))
    assert api.delete(play, headers=alice).status_code == 404  # not being played
    streamer = f"streamer-{a['streamer']}"
    assert until(lambda: "vod" not in named(api)[streamer]["config"])
    assert links() == before
    # Played again and never asked for: the streamer reports it idle, the loop ends it.
    monkeypatch.setattr(recordings, "IDLE_S", 0.0)
    ok(api.post(play, json={"host": "phone"}, headers=alice))
    assert "vod" in named(api)[streamer]["config"]
    _report(api, "pe2", {streamer: {"vod": {"recordings": {f"r{rid}": {"idle_s": 1.0}}}}})
    assert until(lambda: "vod" not in named(api)[streamer]["config"])
    assert links() == before
    # Played, then deleted: the playback ends with its recording.
    monkeypatch.setattr(recordings, "IDLE_S", 3600.0)
    ok(api.post(play, json={"host": "phone"}, headers=alice))
    assert links() != before
    ok(api.delete(f"{V1}/app/recordings/{rid}?user=alice"))
    assert until(lambda: "vod" not in named(api)[streamer]["config"])
    assert links() == before
    assert api.post(play, json={"host": "phone"}, headers=alice).status_code == 404


def test_watched_events(api: TestClient) -> None:
    eid = scheduled(api)
    content = ok(api.post(f"{V1}/events/{eid}/start"))["content"]["id"]
    assert ok(api.get(f"{V1}/app/watched?user=alice")) == []
    alice = authn.bearer(authn.token(api.app, "alice", Role.USER))
    ok(api.post(f"{V1}/contents/{content}/viewers", json={"host": "phone"}, headers=alice))
    ok(api.delete(f"{V1}/contents/{content}/viewers/phone", headers=alice))
    ok(api.post(f"{V1}/contents/{content}/viewers", json={"host": "phone"}, headers=alice))
    # Another user's joins are not alice's past (the viewer is the signed-in user).
    carol = authn.bearer(authn.token(api.app, "carol", Role.USER))
    ok(api.post(f"{V1}/contents/{content}/viewers", json={"host": "phone"}, headers=carol))
    assert ok(api.get(f"{V1}/app/watched?user=carol", headers=carol))[0]["event"] == eid
    (seen,) = ok(api.get(f"{V1}/app/watched?user=alice"))
    assert seen["event"] == eid and seen["title"] == "Lecture" and seen["provider"] == "uni"
    assert ok(api.get(f"{V1}/app/watched?user=bob")) == []
    assert api.get(f"{V1}/app/watched").status_code == 422


def test_a_refusal_on_a_port_no_flow_owns_reaches_its_provider(api: TestClient) -> None:
    """The acquirer refuses a stream to a wrong port (no flow of its own): the
    provider whose address sent it sees the refusal on its live event; another
    provider at the same PE does not."""
    ok(api.post(f"{V1}/providers", json={"name": "uni", "title": "U", "pe": "pe1",
                                         "source": "10.61.0.9"}), 201)  # fmt: skip
    ok(api.post(f"{V1}/providers", json={"name": "club", "title": "C", "pe": "pe1"}), 201)
    cids = {}
    for prov in ("uni", "club"):
        body = {"provider": prov, "title": "E", "start": time.time() + 60, "duration_s": 600}
        eid = ok(api.post(f"{V1}/events", json=body), 201)["id"]
        cids[prov] = ok(api.post(f"{V1}/events/{eid}/start"))["content"]["id"]
    detail = "port 5010 is not assigned to any stream; your event ev1 takes RTP on port 5000"
    refused = {"seq": 1, "kind": "StreamRefused", "port": 5010, "transport": "udp",
               "source": "10.61.0.9", "reason": "wrong_port", "detail": detail, "flow": None,
               "event": None, "at": 1.0}  # fmt: skip
    events = {"last_seq": 1, "dropped": 0, "items": [refused]}
    _report(api, "pe1", {"acquirer-pe1": {"events": events}})
    _report(api, "pe1", {"acquirer-pe1": {"events": events}})  # twice: handled once
    by_id = {e["content"]["id"]: e["content"]["stream"] for e in ok(api.get(f"{V1}/events"))}
    assert by_id[cids["uni"]]["refused"] == [
        {"reason": "wrong_port", "detail": detail, "source": "10.61.0.9", "at": 1.0}
    ]
    assert "refused" not in by_id[cids["club"]]


def test_under_the_controller_a_streamer_reaches_the_storage_on_its_own_node(
    api: TestClient,
) -> None:
    """A recording played at the storage's own PE (the camera's host at pe1: a new
    streamer there, case 4): in secure mode the loop keeps the streamer -> storage
    path on that LAN (HTTP, the storage's port) and the host -> streamer one."""
    for i, n in enumerate(("pe1", "pe2", "c1")):
        snap = {"kind": "flows", "node": n, "dpid": f"{i + 1:016x}", "time": 1.0, "flows": []}
        ok(api.post("/api/v1/sdn/events", json=snap), 202)
    eid = scheduled(api)
    rid = ok(api.post(f"{V1}/recordings", json={"user": "alice", "event": eid}), 201)["id"]
    ok(api.post(f"{V1}/events/{eid}/start"))
    ok(api.delete(f"{V1}/recordings/{rid}"))
    alice = authn.bearer(authn.token(api.app, "alice", Role.USER))
    a = ok(api.post(f"{V1}/recordings/{rid}/play", json={"host": "cam"}, headers=alice))
    assert (a["case"], a["node"]) == (4, "pe1"), a
    inst = named(api)
    st, sto = inst[f"streamer-{a['streamer']}"]["id"], inst["storage-pe1"]["id"]
    with api.app.state.db.session() as s:
        t = backend.load(s, lock=False)
        got = {it.id for it in reconcile.intents(s, t.desired(), t)}
    assert f"streaming-lan-{st}-{sto}-tcp-8081" in got, got
    assert f"streaming-lan-cam-{st}-tcp-8080" in got, got
