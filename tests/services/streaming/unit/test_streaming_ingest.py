"""Ingest by RTP/MPEG-TS over UDP, SRT or RTMP from the API (services/streaming/ingest.py):
a provider chooses the protocol per event (or at its start); the front-end assigns the
acquirer's port and, for SRT and RTMP, a per-flow passphrase or stream key; the
acquirer is configured for it (the secret write-only); the provider alone reads the
exact URL and ffmpeg command line; the acquirer's refusals (wrong key, wrong
passphrase) reach the flow's content only; bad input is a keyed 422."""

from __future__ import annotations

import json
import time
import urllib.parse
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
from netfate.contract import Role
from netfate.model.secrets import HIDDEN
from netfate.services.streaming.functions import INGEST_PORTS
from netfate.services.streaming.tables import ContentRow
from streaming_api import keyed, ok, streaming_api

V1 = "/api/v1/streaming"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    """pe1 (the providers') and pe2 through core c1."""
    topo = {
        "name": "ingest",
        "nodes": {"pe1": {"kind": "pe", "lan": "10.61.0.0/24", "cpu": 4},
                  "pe2": {"kind": "pe", "lan": "10.62.0.0/24", "cpu": 2}, "c1": {"kind": "core"}},
        "links": [{"a": "pe1", "b": "c1"}, {"a": "pe2", "b": "c1"}],
    }  # fmt: skip
    with streaming_api(tmp_path, topo) as c:
        for name in ("uni", "club"):
            body = {"name": name, "title": name.title(), "pe": "pe1"}
            ok(c.post(f"{V1}/providers", json=body), 201)
        yield c


def as_(c: TestClient, name: str, role: Role) -> dict[str, str]:
    return authn.bearer(authn.token(c.app, name, role))


def event(c: TestClient, provider: str = "uni", **kw: Any) -> int:
    body = {"provider": provider, "title": "Match", "start": time.time() + 60,
            "duration_s": 600, **kw}  # fmt: skip
    return int(ok(c.post(f"{V1}/events", json=body), 201)["id"])


def start(c: TestClient, eid: int, **body: Any) -> dict[str, Any]:
    got: dict[str, Any] = ok(c.post(f"{V1}/events/{eid}/start", json=body or None))
    return got


def ingest_of(c: TestClient, eid: int, provider: str = "uni") -> dict[str, Any]:
    got: dict[str, Any] = ok(
        c.get(f"{V1}/events/{eid}/ingest", headers=as_(c, provider, Role.PROVIDER))
    )
    return got


def acquirer_flows(c: TestClient) -> dict[str, dict[str, Any]]:
    """The acquirer's flows as its agent gets them (secrets in: the agent runs them)."""
    (spec,) = [
        i for i in ok(c.get("/api/v1/agents/pe1/desired"))["instances"]
        if i["name"] == "acquirer-pe1"
    ]  # fmt: skip
    return {f["id"]: f for f in spec["config"]["flows"]}


def test_each_protocol_gets_its_port_url_and_acquirer_flow(api: TestClient) -> None:
    rtp = event(api)
    srt = event(api, protocol="srt")
    rtmp = event(api, protocol="rtmp")
    chosen_at_start = event(api)  # scheduled as RTP, started as RTMP
    assert ok(api.get(f"{V1}/events/{srt}"))["protocol"] == "srt"
    contents = {eid: start(api, eid)["content"] for eid in (rtp, srt, rtmp)}
    contents[chosen_at_start] = start(api, chosen_at_start, protocol="rtmp")["content"]
    got = {eid: c["acquirer"]["protocol"] for eid, c in contents.items()}
    assert got == {rtp: "rtp-udp", srt: "srt", rtmp: "rtmp", chosen_at_start: "rtmp"}
    ports = [c["acquirer"]["port"] for c in contents.values()]
    assert len(set(ports)) == 4 and all(INGEST_PORTS[0] <= p <= INGEST_PORTS[1] for p in ports)
    assert ok(api.get(f"{V1}/events/{chosen_at_start}"))["protocol"] == "rtmp"

    how = {eid: ingest_of(api, eid) for eid in contents}
    for eid, g in how.items():
        assert g["address"] and g["address"] == contents[eid]["acquirer"]["address"]
        assert g["port"] == contents[eid]["acquirer"]["port"]
        assert g["url"] in g["ffmpeg"] and g["ffmpeg"].startswith("ffmpeg -re -i INPUT")
    addr, port = how[rtp]["address"], how[rtp]["port"]
    assert how[rtp]["url"] == f"rtp://{addr}:{port}?pkt_size=1316"
    assert "-f rtp_mpegts" in how[rtp]["ffmpeg"] and how[rtp]["obs"] is None

    s = urllib.parse.urlsplit(how[srt]["url"])
    q = dict(urllib.parse.parse_qsl(s.query))
    assert (s.scheme, s.hostname, s.port) == ("srt", how[srt]["address"], how[srt]["port"])
    assert q["streamid"] == contents[srt]["id"] and 10 <= len(q["passphrase"]) <= 79
    assert "-f mpegts" in how[srt]["ffmpeg"]

    keys = {}
    for eid in (rtmp, chosen_at_start):
        g = how[eid]
        key = g["obs"]["stream_key"]
        keys[eid] = key
        assert g["url"] == f"rtmp://{g['address']}:{g['port']}/live/{key}"
        assert g["obs"]["server"] == f"rtmp://{g['address']}:{g['port']}/live"
        assert "-f flv" in g["ffmpeg"]
    assert keys[rtmp] != keys[chosen_at_start]  # a key per flow

    # The acquirer's flows: each protocol, each secret given write-only.
    flows = acquirer_flows(api)
    cid = {eid: c["id"] for eid, c in contents.items()}
    assert {f["protocol"] for f in flows.values()} == {"rtp", "srt", "rtmp"}
    assert "passphrase" not in flows[cid[rtp]] and "stream_secret" not in flows[cid[rtp]]
    assert flows[cid[srt]]["passphrase"] == q["passphrase"]
    assert flows[cid[rtmp]]["stream_secret"] == keys[rtmp]
    assert flows[cid[srt]]["port"] == how[srt]["port"]
    (acq,) = [i for i in ok(api.get("/api/v1/instances")) if i["name"] == "acquirer-pe1"]
    read = {f["id"]: f for f in acq["config"]["flows"]}
    assert read[cid[srt]]["passphrase"] == HIDDEN and read[cid[rtmp]]["stream_secret"] == HIDDEN

    # No other read shows a secret: the events, contents, providers, the event log.
    secrets = [q["passphrase"], *keys.values()]
    for path in (f"{V1}/events", f"{V1}/contents", f"{V1}/providers", f"{V1}/tree",
                 "/api/v1/instances", "/api/v1/events"):  # fmt: skip
        text = json.dumps(ok(api.get(path)))
        assert not [x for x in secrets if x in text], path


def test_the_url_is_its_providers_alone(api: TestClient) -> None:
    eid = event(api, protocol="rtmp")
    start(api, eid)
    assert ingest_of(api, eid)["obs"]["stream_key"]
    path = f"{V1}/events/{eid}/ingest"
    # another provider: as if the event did not exist
    r = api.get(path, headers=as_(api, "club", Role.PROVIDER))
    assert r.status_code == 404 and "unknown event" in r.json()["detail"]
    # a user, and the operator (who reads everything else): not their route
    assert api.get(path, headers=as_(api, "alice", Role.USER)).status_code == 403
    assert api.get(path, headers=as_(api, authn.OPERATOR, Role.OPERATOR)).status_code == 403
    # a scheduled event has no flow yet, an ended one no longer
    later = event(api, protocol="srt")
    r = api.get(f"{V1}/events/{later}/ingest", headers=as_(api, "uni", Role.PROVIDER))
    assert r.status_code == 404 and "is scheduled" in r.json()["detail"]
    ok(api.post(f"{V1}/events/{eid}/stop"))
    r = api.get(path, headers=as_(api, "uni", Role.PROVIDER))
    assert r.status_code == 404 and "is ended" in r.json()["detail"]
    with api.app.state.db.session() as s:  # the ended flow's key is forgotten
        (c,) = s.scalars(select(ContentRow).where(ContentRow.event == eid))
        assert c.state == "ended" and c.ingest_secret is None
    assert (
        api.get(f"{V1}/events/999/ingest", headers=as_(api, "uni", Role.PROVIDER)).status_code
        == 404
    )


def test_bad_input_is_a_keyed_422(api: TestClient) -> None:
    body = {"provider": "uni", "title": "M", "start": time.time() + 60, "duration_s": 60}
    assert "rtp-udp" in keyed(api.post(f"{V1}/events", json={**body, "protocol": "webrtc"}),
                              "protocol")  # fmt: skip
    assert keyed(api.post(f"{V1}/events", json={**body, "protocol": None}), "protocol")
    eid = event(api)
    assert "rtp-udp" in keyed(
        api.post(f"{V1}/events/{eid}/start", json={"protocol": "hls"}), "protocol"
    )
    assert keyed(api.post(f"{V1}/events/{eid}/start", json={"port": 5000}), "port")
    assert ok(api.get(f"{V1}/events/{eid}"))["state"] == "scheduled"  # nothing changed
    assert ok(api.get(f"{V1}/contents")) == []


def _report(c: TestClient, items: list[dict[str, Any]]) -> None:
    (acq,) = [i for i in ok(c.get("/api/v1/instances")) if i["name"] == "acquirer-pe1"]
    stats = {"events": {"last_seq": items[-1]["seq"], "dropped": 0, "items": items}}
    inst = {"id": acq["id"], "status": "running", "role": "active", "pid": 1, "stats": stats}
    ok(c.post("/api/v1/agents/pe1/report", json={"instances": [inst]}))


def test_a_wrong_key_or_passphrase_is_refused_on_its_flow_only(api: TestClient) -> None:
    """The acquirer's refusals of a flow's publisher (a wrong RTMP stream key, a wrong
    SRT passphrase, a stream before the event is armed) show on that flow's content,
    with the reason; another flow's content is unchanged."""
    rtmp, srt, other = event(api, protocol="rtmp"), event(api, protocol="srt"), event(api, "club")
    cid = {eid: start(api, eid)["content"]["id"] for eid in (rtmp, srt, other)}

    def refused(seq: int, eid: int, reason: str, detail: str, transport: str) -> dict[str, Any]:
        return {"seq": seq, "kind": "StreamRefused", "port": 5000, "transport": transport,
                "source": "10.61.0.9", "reason": reason, "detail": detail, "flow": cid[eid],
                "event": f"ev{eid}", "at": float(seq)}  # fmt: skip

    key_detail = f"the RTMP stream key is not event ev{rtmp}'s: use the URL your studio shows"
    pass_detail = (f"the SRT passphrase is not event ev{srt}'s: use the URL your "
                   "studio shows (Incorrect passphrase)")  # fmt: skip
    _report(api, [refused(1, rtmp, "wrong_key", key_detail, "tcp"),
                  refused(2, srt, "wrong_passphrase", pass_detail, "udp")])  # fmt: skip
    streams = {e["id"]: e["content"]["stream"] for e in ok(api.get(f"{V1}/events"))}
    (r1,) = streams[rtmp]["refused"]
    assert (r1["reason"], r1["detail"]) == ("wrong_key", key_detail)
    (r2,) = streams[srt]["refused"]
    assert (r2["reason"], r2["detail"]) == ("wrong_passphrase", pass_detail)
    assert streams[other] == {"state": "waiting"}
    assert streams[rtmp]["state"] == "waiting"  # refused: nothing started
