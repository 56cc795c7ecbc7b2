"""The streaming service on the testbed (topologies/streaming.yaml):
``netfate demo streaming``.

check() walks through it, each step raising DemoFailed with the reason:

1. a provider (its camera at pe1) schedules an event and starts it: the service
   runs an acquirer at pe1 and answers its address and port;
2. the camera streams an ffmpeg test source (RTP/MPEG-TS, its frame counter
   visible) to that address and port;
3. a viewer at pe2 joins: no streamer anywhere, so a new one on pe2 (case 4);
   the acquirer gets it as its next hop; the viewer's ffprobe decodes frames of
   the HLS the streamer serves;
4. a viewer at pe3 joins: pe3 has no streamer, pe2's is its neighbour (case 3);
5. both leave: after the grace period the loop prunes the branch and the
   streamer goes; the event stops and the acquirer goes.

Not yet: the paper's full scenario (5 PEs, 2 core routers, 2 providers, a
recording played back, a browser, cases 1 and 2 on the testbed): issue 14.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from netfate.demo.platform import Api, DemoFailed, Say
from netfate.demo.sdn import until
from netfate.host import netns
from netfate.testbed.builder import Testbed

TOPOLOGY = Path(__file__).parent / "topologies" / "streaming.yaml"
SOURCE_S = 120
GRACE_S = 1.0


def _source(acquirer: str, port: int) -> list[str]:
    """The provider's encoder: testsrc (its frame counter is the visible clock), H.264."""
    return [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=25",
        "-t",
        str(SOURCE_S),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        "25",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "rtp_mpegts",
        f"rtp://{acquirer}:{port}",
    ]


def frames(ns: str, url: str, seconds: float = 3.0) -> int:
    """Video frames ffprobe decodes from ``url`` in ``ns`` within ``seconds`` of media."""
    out = netns.run_in(
        ns,
        [
            "ffprobe",
            "-v",
            "error",
            "-i",
            url,
            "-select_streams",
            "v",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-read_intervals",
            f"%+{seconds:g}",
            "-of",
            "json",
        ],
        check=False,
        timeout=seconds + 40,
    )
    try:
        streams: list[dict[str, Any]] = json.loads(out.stdout or "{}").get("streams", [])
    except json.JSONDecodeError:
        return 0
    return int(streams[0].get("nb_read_frames", 0) or 0) if streams else 0


def _live(api: Api, name: str) -> dict[str, Any] | None:
    for i in api("GET", "/instances"):
        if i["name"] == name and i["state"] not in ("gone", "failed", "stopping"):
            return dict(i)
    return None


def check(tb: Testbed, say: Say) -> None:
    if tb.api_url is None:
        raise DemoFailed("the testbed runs without orchestrator")
    api = Api(tb.api_url)
    s = "/streaming"
    api("PUT", f"{s}/settings", {"criterion": "consolidation", "grace_s": GRACE_S})
    api("POST", f"{s}/providers", {"name": "uni", "title": "A University", "pe": "pe1"})
    ev = api(
        "POST",
        f"{s}/events",
        {
            "provider": "uni",
            "title": "Opening lecture",
            "description": "Room A, with a clock",
            "start": time.time() + 5,
            "duration_s": 600,
            "bitrate_kbps": 2000,
        },
    )
    ev = api("POST", f"{s}/events/{ev['id']}/start", None)
    content = ev["content"]
    cid, acq = content["id"], content["acquirer"]
    say(
        f"event {ev['id']} started: content {cid}, acquirer at {acq['node']} "
        f"{acq['address']}:{acq['port']} ({acq['protocol']})"
    )
    inst = _live(api, "acquirer-pe1")
    if inst is None:
        raise DemoFailed("no acquirer instance at pe1")
    api.wait_state(inst["id"], "running", timeout=60)
    camera = tb.netns_of("camera")
    source = netns.popen_in(camera, _source(acq["address"], acq["port"]))
    try:
        _viewers(tb, api, cid, say)
    finally:
        source.kill()
        source.wait()
    api("POST", f"{s}/events/{ev['id']}/stop", None)
    until("the acquirer to go", lambda: _live(api, "acquirer-pe1") is None, 30)
    say("event stopped: the acquirer is gone, the tree is empty")


def _viewers(tb: Testbed, api: Api, cid: str, say: Say) -> None:
    s = "/streaming"
    a = api("POST", f"{s}/contents/{cid}/viewers", {"client": "alice", "host": "phone"})
    say(
        f"alice at {a['pe']}: case {a['case']}, {a['streamer']} on {a['node']} "
        f"at {a['address']} ({a['why']})"
    )
    if a["case"] != 4 or a["node"] != "pe2":
        raise DemoFailed(f"expected case 4 on pe2, got {a}")
    es = _live(api, f"streamer-{a['streamer']}")
    if es is None:
        raise DemoFailed(f"no instance for {a['streamer']}")
    api.wait_state(es["id"], "running", timeout=60)
    phone = tb.netns_of("phone")
    url = a["hls"]

    def playlist() -> bool:
        r = netns.run_in(
            phone,
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5", url],
            check=False,
        )
        return r.stdout.strip() == "200"

    until(f"the HLS playlist {url}", playlist, 60)
    n = until("frames decoded at the viewer", lambda: frames(phone, url), 60)
    say(f"alice's ffprobe decodes {n} frames of {url} through {a['streamer']}")
    b = api("POST", f"{s}/contents/{cid}/viewers", {"client": "bob", "host": "tablet"})
    say(f"bob at {b['pe']}: case {b['case']}, {b['streamer']} on {b['node']} ({b['why']})")
    if b["case"] != 3 or b["streamer"] != a["streamer"]:
        raise DemoFailed(f"expected case 3 through {a['streamer']}, got {b}")
    for client in ("alice", "bob"):
        api("DELETE", f"{s}/contents/{cid}/viewers/{client}")
    until(
        f"{a['streamer']} to be released",
        lambda: _live(api, f"streamer-{a['streamer']}") is None,
        30,
    )
    say(f"both left: after {GRACE_S:g} s the branch was pruned and {a['streamer']} released")


def show(tb: Testbed, say: Say) -> None:
    say(
        "run `netfate demo streaming --check` for the walk-through; the API is "
        f"{tb.api_url}/api/v1/streaming/tree"
    )
