"""SRT and RTMP ingest from the API on the paper's testbed
(services/streaming/topologies/streaming.yaml): the university (its camera at pe1)
schedules an event by SRT and one by RTMP; started, each gets its acquirer's address
and port and a per-flow passphrase or stream key, which the provider alone reads
(GET /events/{eid}/ingest: the URL and the ffmpeg command line). The camera runs that
command line as given (a test source for its input):

- SRT: the acquirer recognises the stream (mpegts, h264), a viewer at pe2 joins and
  ffprobe decodes frames of its edge streamer's HLS;
- RTMP, as OBS sends it (server rtmp://ADDR:PORT/live, the stream key): first with
  another key, refused with the reason the provider reads on its event and sees in
  its studio (Chromium, signed in as the provider: the URL, the key, the refusal);
  then with its own, recognised, and a viewer decodes frames;
- while the flows run, no passphrase or key (nor the run's credentials) is in any
  GET of the API but the provider's own ingest route, the event log and stream, a
  log, a file open to others, or a process's argument list but the camera's own
  encoder's (the provider's tool, on the provider's side).
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser import chromium, sign_in
from netfate.demo.platform import Api, DemoFailed
from netfate.host import netns
from netfate.services.streaming.demo import PROVIDERS, TOPOLOGY, Scene, appears
from netfate.testbed.builder import Testbed
from secret_scan import Leaks, credentials, scan_api, scan_files, scan_processes
from testbed_procs import until

S = "/streaming"
PROV, TITLE, PE, CAMERA, _ = PROVIDERS["lecture"]
PASSWORD = "the studio's test password"
T = 60_000
"""Milliseconds the studio gets to show a state (it polls every 2 s)."""
SOURCE = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=15", "-t", "600", "-pix_fmt", "yuv420p"]


@pytest.fixture(scope="module")
def scene() -> Iterator[Scene]:
    tb = Testbed.up(TOPOLOGY)
    try:
        assert tb.api_url
        sc = Scene(tb, Api(tb.api_url), lambda _m: None)
        sc.api("PUT", f"{S}/settings", {"criterion": "consolidation", "grace_s": 1.0})
        (src,) = [h["ip"].split("/")[0] for h in sc.api("GET", "/hosts") if h["name"] == CAMERA]
        sc.api("POST", f"{S}/providers", {"name": PROV, "title": TITLE, "pe": PE, "source": src})
        sc.api("POST", "/accounts", {"name": PROV, "role": "provider", "password": PASSWORD})
        signed = httpx.post(f"{tb.api_url}/api/v1/auth/token", timeout=30.0,
                            json={"name": PROV, "password": PASSWORD})  # fmt: skip
        PROVIDER.append(Api(tb.api_url, signed.raise_for_status().json()["token"]))
        yield sc
        sc.stop()
    finally:
        problems = tb.down()
        assert not problems, problems


PROVIDER: list[Api] = []
"""The API as the provider (its studio's calls)."""
SECRETS: dict[str, str] = {}
"""The flows' passphrase and key, by protocol, as the provider read them."""


def started(sc: Scene, key: str, protocol: str) -> dict[str, Any]:
    """An event by `protocol`, started: its ingest as its provider reads it once the
    acquirer runs with the flow armed."""
    body = {"provider": PROV, "title": f"by {protocol}", "start": time.time() + 5,
            "duration_s": 900, "bitrate_kbps": 1500, "protocol": protocol}  # fmt: skip
    ev = sc.api("POST", f"{S}/events", body)
    ev = sc.api("POST", f"{S}/events/{ev['id']}/start", None)
    sc.events[key], sc.contents[key] = ev["id"], ev["content"]
    cid = ev["content"]["id"]
    inst = until(f"the acquirer at {PE}", appears(sc.api, f"acquirer-{PE}"), 60)
    sc.api.wait_state(inst["id"], "running", timeout=60)

    def armed() -> bool:
        i = appears(sc.api, f"acquirer-{PE}")()
        flow = ((i or {}).get("stats") or {}).get("flows", {}).get(cid, {})
        return bool(flow.get("armed")) and flow.get("protocol") == protocol

    until(f"the acquirer's {protocol} flow armed", armed, 60)
    (mine,) = PROVIDER

    def url() -> dict[str, Any] | None:
        got: dict[str, Any] = mine("GET", f"{S}/events/{ev['id']}/ingest")
        return got if got["url"] else None

    g: dict[str, Any] = until("the ingest URL", url, 60)
    assert g["protocol"] == protocol and g["port"] == ev["content"]["acquirer"]["port"]
    return g


def encoder(sc: Scene, key: str, command: str, url: str | None = None) -> None:
    """The camera runs the studio's ffmpeg command line (a test source for its input;
    another URL where given)."""
    argv = shlex.split(command)
    i = argv.index("INPUT")
    argv[i - 1 : i + 1] = SOURCE
    if url is not None:
        argv[-1] = url
    argv[1:1] = ["-hide_banner", "-nostdin", "-loglevel", "error"]
    old = sc.sources.pop(key, None)
    if old is not None:
        sc.kill_source(old)
    sc.sources[key] = netns.popen_in(sc.tb.netns_of(CAMERA), argv, stderr=subprocess.DEVNULL)


def provider_sees(sc: Scene, key: str) -> dict[str, Any]:
    """The stream of the event as its provider's studio reads it."""
    (mine,) = PROVIDER
    (ev,) = [e for e in mine("GET", f"{S}/events?provider={PROV}") if e["id"] == sc.events[key]]
    return dict(ev["content"]["stream"])


def watched(sc: Scene, client: str, key: str) -> None:
    rec = sc.recognised(key)
    assert rec["container"] == "mpegts" and "h264" in {s["codec"] for s in rec["streams"]}, rec
    assert provider_sees(sc, key)["state"] == "streaming"
    sc.join(client, "phone", key)
    assert sc.decodes(client) > 0


def test_srt_from_the_studios_url(scene: Scene) -> None:
    g = started(scene, "srt", "srt")
    assert g["url"].startswith(f"srt://{g['address']}:{g['port']}?streamid=")
    SECRETS["srt"] = g["url"].rsplit("passphrase=", 1)[1]
    encoder(scene, "srt", g["ffmpeg"])
    watched(scene, "alice", "srt")
    scene.leave("alice")


def test_rtmp_like_obs_a_wrong_key_refused_then_its_own(scene: Scene) -> None:
    g = started(scene, "rtmp", "rtmp")
    key = g["obs"]["stream_key"]
    SECRETS["rtmp"] = key
    assert g["url"] == f"{g['obs']['server']}/{key}"
    # another provider does not read it
    with pytest.raises(DemoFailed, match="404"):
        scene.api.as_user("club", "provider")("GET", f"{S}/events/{scene.events['rtmp']}/ingest")
    encoder(scene, "rtmp", g["ffmpeg"], f"{g['obs']['server']}/not-the-key")

    def refused() -> dict[str, Any] | None:
        rs = provider_sees(scene, "rtmp").get("refused") or []
        return next((r for r in rs if r["reason"] == "wrong_key"), None)

    r = until("the wrong key's refusal on the provider's event", refused, 60)
    ev = scene.events["rtmp"]
    assert (
        r["detail"] == f"the RTMP stream key is not event ev{ev}'s: use the URL your studio shows"
    )
    assert provider_sees(scene, "rtmp")["state"] == "waiting"
    studio_shows(scene, ev, g["url"], key)
    encoder(scene, "rtmp", g["ffmpeg"])  # the URL as the studio gives it
    watched(scene, "bob", "rtmp")
    # the SRT flow's provider meanwhile: still streaming, nothing refused
    st = provider_sees(scene, "srt")
    assert st["state"] == "streaming" and not st.get("refused"), st


def studio_shows(sc: Scene, eid: int, url: str, key: str) -> None:
    """The provider's studio, signed in as the provider in Chromium (in the phone's
    namespace, through the front door): the event's URL, its stream key, and the
    wrong key's refusal with its reason."""
    assert sc.tb.door_url
    with chromium(netns=sc.tb.netns_of("phone")) as browser:
        page = browser.new_page()
        page.goto(f"{sc.tb.door_url}/api/v1/streaming/studio?provider={PROV}")
        sign_in(page, PROV, PASSWORD)
        page.reload()
        shown = page.locator(f'[data-url="{eid}"]')
        shown.wait_for(timeout=T)
        assert shown.inner_text() == url
        assert page.locator(f'[data-key="{eid}"]').inner_text() == key
        assert url in page.locator(f'[data-ffmpeg="{eid}"]').inner_text()
        refused = page.locator(f'[data-event="{eid}"] [data-refused="wrong_key"]').first
        refused.wait_for(timeout=T)
        assert "stream key is not event" in refused.inner_text()


def test_no_passphrase_or_key_leaks(scene: Scene) -> None:
    assert set(SECRETS) == {"srt", "rtmp"}, "the flows ran"
    tb = scene.tb
    # The provider's own encoders hold theirs on their command line (the provider's
    # side): stopped before the machine's processes are read.
    scene.stop()
    leaks = Leaks(
        {f"{p} secret": s for p, s in SECRETS.items()} | credentials(tb, controller=False)
    )
    procs = scan_processes(leaks)
    acq = appears(scene.api, f"acquirer-{PE}")()
    assert acq is not None
    values = {"node": PE, "name": PE, "iid": acq["id"], "eid": str(scene.events["rtmp"]),
              "cid": scene.contents["rtmp"]["id"]}  # fmt: skip
    events = scan_api(tb, leaks, values)
    ours = sorted(Path(tempfile.gettempdir()).glob("nf-acq-*"))
    logs = scan_files(tb.state.dir, leaks, ours)
    assert procs > 10 and events and logs
    assert leaks.found == [], "\n".join(leaks.found)
