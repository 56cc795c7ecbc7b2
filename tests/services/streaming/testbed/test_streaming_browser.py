"""The streaming apps in headless Chromium (Debian's) on the paper's testbed
(services/streaming/topologies/streaming.yaml), the browser inside a viewer's
namespace (the phone, at pe2): the page comes through the run's front door (its
service address inside the emulated network), the media straight from the functions.

- the provider's studio shows its event's acquirer address and port, and a stream
  sent to a wrong port is refused with the acquirer's reason;
- the user's app joins the live event: hls.js (from the build's node_modules) plays
  the edge streamer's HLS and the video element renders frames;
- the user records the live event (after it started); the storage function joins,
  records, stops; MyShare plays the recording as seekable VoD, frames rendered after
  a seek; the Calendar lists the event as watched;
- the storage function's process is killed: started again, it serves the recording
  from the service's volume and MyShare plays it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

import browser
from browser import chromium
from netfate.demo.platform import Api
from netfate.host import netns
from netfate.services.streaming.demo import (
    FRAMES,
    PROVIDERS,
    TOPOLOGY,
    Scene,
    appears,
    live,
    restarted,
)
from netfate.testbed.builder import Testbed
from testbed_procs import until

S = "/streaming"
T = 120_000
"""Milliseconds the page gets for each state (a new edge streamer, the first segments)."""


@pytest.fixture(scope="module")
def scene() -> Iterator[Scene]:
    """The lecture (uni at pe1) streaming, nobody watching yet."""
    tb = Testbed.up(TOPOLOGY)
    try:
        assert tb.api_url
        sc = Scene(tb, Api(tb.api_url), lambda _m: None)
        for name, role in (("alice", "user"), ("uni", "provider")):  # who the pages sign in as
            sc.api("POST", "/accounts", {"name": name, "role": role, "password": PASSWORD})
        prov, title, pe, cam, ev_title = PROVIDERS["lecture"]
        sc.api("PUT", f"{S}/settings", {"criterion": "consolidation", "grace_s": 1.0})
        # Its camera's address: the acquirer arms the flow for it alone and tells the
        # provider of what else it sends (a wrong port).
        (src,) = [h["ip"].split("/")[0] for h in sc.api("GET", "/hosts") if h["name"] == cam]
        sc.api("POST", f"{S}/providers", {"name": prov, "title": title, "pe": pe, "source": src})
        body = {"provider": prov, "title": ev_title, "description": "with a clock",
                "start": time.time() + 5, "duration_s": 900, "bitrate_kbps": 1500}  # fmt: skip
        ev = sc.api("POST", f"{S}/events", body)
        ev = sc.api("POST", f"{S}/events/{ev['id']}/start", None)
        sc.events["lecture"], sc.contents["lecture"] = ev["id"], ev["content"]
        inst = until(f"the acquirer at {pe}", appears(sc.api, f"acquirer-{pe}"), 60)
        sc.api.wait_state(inst["id"], "running", timeout=60)
        sc.stream("lecture")
        sc.recognised("lecture")
        yield sc
        sc.stop()
    finally:
        problems = tb.down()
        assert not problems, problems


PASSWORD = "the pages' test password"


def sign_in(page: Any, name: str) -> None:
    """The page's browser, in the phone's namespace, signs in as `name` (the web
    session's cookies), from a page of the front door's origin."""
    page.goto(f"{page.base}/api/v1/streaming/app")
    browser.sign_in(page, name, PASSWORD)


@pytest.fixture(scope="module")
def page(scene: Scene) -> Iterator[Any]:
    """A page in Chromium in the phone's namespace, and the front door's base URL."""
    assert scene.tb.door_url
    with chromium(netns=scene.tb.netns_of("phone")) as browser:
        pg = browser.new_page()
        pg.base = scene.tb.door_url  # type: ignore[attr-defined]
        yield pg


def test_studio_shows_the_acquirer_and_a_refusal(scene: Scene, page: Any) -> None:
    eid = scene.events["lecture"]
    acq = scene.contents["lecture"]["acquirer"]
    sign_in(page, "uni")
    page.goto(f"{page.base}/api/v1/streaming/studio?provider=uni")
    shown = page.locator(f'[data-event="{eid}"] [data-acquirer]')
    shown.wait_for(timeout=T)
    assert shown.inner_text() == f"{acq['address']}:{acq['port']}"
    # The provider's encoder aimed at a port no flow has: the acquirer refuses it and
    # the studio says why.
    wrong = acq["port"] + 2
    cam = scene.tb.netns_of(PROVIDERS["lecture"][3])
    p = netns.popen_in(cam, ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
                             "-re", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
                             "-t", "60", "-c:v", "libx264", "-preset", "ultrafast",
                             "-f", "rtp_mpegts", f"rtp://{acq['address']}:{wrong}"])  # fmt: skip
    try:
        refused = page.locator(f'[data-event="{eid}"] [data-refused="wrong_port"]').first
        refused.wait_for(timeout=T)
        assert str(wrong) in refused.inner_text()
    finally:
        p.kill()
        p.wait()


def test_user_joins_and_the_player_renders_frames(scene: Scene, page: Any) -> None:
    eid = scene.events["lecture"]
    sign_in(page, "alice")
    # The page names no user: it speaks for the signed-in one, and joins as her.
    page.goto(f"{page.base}/api/v1/streaming/app?host=phone")
    page.locator("#who-user", has_text="alice").wait_for(timeout=T)
    page.get_by_role("tab", name="Live").click()
    page.locator(f'#live-list button[data-event="{eid}"]').click()
    page.wait_for_function("() => document.getElementById('player-info').textContent"
                           ".includes('edge streamer')", timeout=T)  # fmt: skip
    assert "case 4" in page.locator("#player-info").inner_text()  # a new streamer on pe2
    (v,) = scene.api("GET", f"{S}/contents/ev{eid}/viewers")
    assert (v["user"], v["client"], v["node"]) == ("alice", "phone", "pe2"), v
    page.evaluate(FRAMES, "player")
    page.wait_for_function(f"() => ({FRAMES})('player') >= 30", timeout=T)
    assert page.evaluate("() => document.getElementById('player').currentTime") > 1
    page.locator("#leave").click()
    until("alice to leave", lambda: not scene.api("GET", f"{S}/contents/ev{eid}/viewers"))


def test_record_then_play_back_seekable(scene: Scene, page: Any) -> None:
    eid = scene.events["lecture"]
    sign_in(page, "alice")
    page.goto(f"{page.base}/api/v1/streaming/app?user=alice&host=phone")
    page.get_by_role("tab", name="Record").click()
    page.locator(f'#record-list button[data-event="{eid}"]').click()
    page.get_by_text("it will be in MyShare").wait_for(timeout=T)

    def segments() -> Any:
        (r,) = scene.api("GET", f"{S}/app/recordings?user=alice")
        return r if (r["recorded"]["segments"] or 0) >= 4 else None

    rec = until("four recorded segments", segments, 120)
    page.get_by_role("tab", name="MyShare").click()
    item = page.locator(f'[data-recording="{rec["id"]}"]')
    item.get_by_role("button", name="Stop recording").click()

    def stopped() -> bool:
        (r,) = scene.api("GET", f"{S}/app/recordings?user=alice")
        return bool(r["recorded"]["state"] == "stopped")

    until("the recording to stop", stopped, 60)
    item.get_by_role("button", name="Play").click()

    def playback() -> Any:  # through an edge streamer on the phone's PE, by the rule
        t = scene.api("GET", f"{S}/tree")["state"]
        on = {s["id"]: s["node"] for s in t["streamers"]}
        mine = [v for v in t["viewers"] if v["client"] == f"play-r{rec['id']}"]
        return mine and on[mine[0]["streamer"]] == "pe2" and mine[0]

    assert until("alice's playback on pe2's streamer", playback, 60)["content"] == f"r{rec['id']}"
    seekable = "() => { const v = document.getElementById('vod'); return v.seekable.length > 0"
    page.wait_for_function(seekable + " && v.seekable.end(0) > 6; }", timeout=T)
    end = page.evaluate("() => document.getElementById('vod').seekable.end(0)")
    page.evaluate("(t) => { document.getElementById('vod').currentTime = t; }", end - 3)
    page.evaluate(FRAMES, "vod")
    page.wait_for_function(f"() => ({FRAMES})('vod') >= 10", timeout=T)
    assert page.evaluate("() => document.getElementById('vod').currentTime") >= end - 3.5
    # Calendar: the live event shows among those watched (the join above).
    page.get_by_role("tab", name="Calendar").click()
    page.locator("#watched").get_by_text("Opening lecture").wait_for(timeout=T)
    # The run's volume: below its images (the agents' --image-dir), as the testbed sets.
    files = list((scene.tb.state.images / "streaming").glob(f"alice/r{rec['id']}/*.ts"))
    assert files, "the recording's segments are on the service's volume"


def test_a_recording_survives_its_storage_function_restarting(scene: Scene, page: Any) -> None:
    """The storage's process killed (-9): started again, it finds the recording on
    the service's volume and MyShare plays it (frames rendered) as before, through
    an edge streamer that fetches it from the restarted storage (the playback before
    is ended first, so no streamer holds it in its cache)."""
    (rec,) = scene.api("GET", f"{S}/app/recordings?user=alice")
    content = f"r{rec['id']}"

    def played() -> set[str]:
        return {v["client"] for v in scene.api("GET", f"{S}/tree")["state"]["viewers"]}

    if f"play-{content}" in played():
        scene.api("DELETE", f"{S}/recordings/{rec['id']}/play")
    until(
        "the last playback's branch to go",
        lambda: (
            content not in {x["id"] for x in scene.api("GET", f"{S}/tree")["state"]["contents"]}
        ),
        60,
    )
    before = live(scene.api, "storage-pe1")
    assert before is not None and before["pid"]
    os.kill(int(before["pid"]), signal.SIGKILL)
    until(
        "the storage's process started again",
        restarted(scene.api, "storage-pe1", before["pid"]),
        120,
    )
    sign_in(page, "alice")
    page.goto(f"{page.base}/api/v1/streaming/app?user=alice&host=phone")
    page.get_by_role("tab", name="MyShare").click()
    page.locator("#recordings").get_by_role("button", name="Play").first.click()
    page.evaluate(FRAMES, "vod")
    page.wait_for_function(f"() => ({FRAMES})('vod') >= 10", timeout=T)
    (v,) = [v for v in scene.api("GET", f"{S}/tree")["state"]["viewers"]
            if v["content"] == content]  # fmt: skip

    def fetched() -> Any:
        inst = live(scene.api, f"streamer-{v['streamer']}") or {}
        figs = ((inst.get("stats") or {}).get("vod") or {}).get("recordings", {}).get(content)
        return figs if figs and figs["fetches"] > 0 else None

    assert until("the streamer's fetches from the storage", fetched, 60)
