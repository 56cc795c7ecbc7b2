"""`netfate demo streaming --check` (services/streaming/topologies/streaming.yaml, the
paper's testbed) exits 0: two providers' ffmpeg sources, recognised by their
acquirers; six viewers on four PEs joining by the paper's rule, cases 1 to 4 each
asserted, each decoding frames; under the SDN controller, the switches of both core
routers copying (a group ALL each, OVS's group stats counting packets on every
bucket) and no forwarder; a
recording made mid-event and played back through the edge streamer the rule chose
(ffprobe frames, a seek into its middle, a VOD playlist; refused without the user's
token), and in Chromium from MyShare; then the tree shrinks to nothing
(services/streaming/demo.py)."""

from __future__ import annotations

import re
import subprocess
import sys

from netfate.host import netns


def test_demo_streaming_check_exits_zero() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "netfate", "demo", "streaming", "--check"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "demo check passed" in out
    assert "acquirer at pe1 10.81.0." in out and "acquirer at pe4 10.84.0." in out
    assert "the acquirer recognised lecture: mpegts (video h264)" in out
    assert "the acquirer recognised match: mpegts (video h264)" in out
    for line in (
        "alice at pe2 watches lecture: case 4",
        "bob at pe3 watches lecture: case 3",
        "carol at pe2 watches match: case 2",
        "dave at pe2 watches lecture: case 1",
        "erin at pe5 watches lecture: case 4",
        "frank at pe4 watches match: case 3",
    ):
        assert line in out
    for who in ("alice", "bob", "carol", "dave", "erin", "frank"):
        assert f"{who}'s ffprobe decodes" in out
    assert "with the SDN controller" in out
    assert "ev1's copies in the switches (groups ALL at c1;" in out
    assert "ev2's copies in the switches (groups ALL at c2;" in out
    assert "branches at core c1: its switch copies it (group ALL, no forwarder)" in out
    assert "branches at core c2: its switch copies it (group ALL, no forwarder)" in out
    for node, key in (("c1", "lecture"), ("c2", "match")):
        m = re.search(rf"the switch on {node} copied {key} \(dump-group-stats\): (.*)", out)
        assert m, out[-6000:]
        per = [int(n) for n in re.findall(r"bucket \d+ (\d+) packets", m[1])]
        assert len(per) == 2 and all(per), m[0]
    # The recording: made mid-event, played back through pe2's streamer (the one
    # alice's live HLS came from), seekable, refused without her token, in a browser.
    assert "alice records lecture mid-event (recording 1): storage at pe1" in out
    assert "alice plays recording 1 from phone: case 2, es1-pe2 on pe2" in out
    live = re.search(r"alice's ffprobe decodes \d+ frames of http://([\d.]+):8080/hls/", out)
    vod = re.search(
        r"alice's ffprobe decodes (\d+) frames of http://([\d.]+):8080/vod/r1/index.m3u8 "
        r"\(VOD, ([\d.]+) s, .*\) and (\d+) after a seek to ([\d.]+) s; the streamer "
        r"fetched (\d+) objects from the storage and served (\d+) from its cache; "
        r"without her token: 403",
        out,
    )
    assert live and vod, out[-6000:]
    assert vod[2] == live[1]  # through the chosen streamer, not from the storage
    assert int(vod[1]) > 0 and int(vod[4]) > 0  # frames from the start and after the seek
    assert abs(float(vod[5]) - float(vod[3]) / 2) <= 0.1 and float(vod[5]) > 2  # its middle
    assert int(vod[6]) > 0 and int(vod[7]) > 0  # relayed from the storage, then cached
    assert "Chromium at phone plays recording 1 from MyShare and renders frames" in out
    assert "edge streamer es1-pe2 on pe2, stored at pe1" in out
    assert "alice stopped playing: after 1 s its branch went" in out
    assert "the branches were pruned" in out and "the switches' groups went" in out
    assert "the tree is empty" in out
    prefix = out.split("as run ", 1)[1].split()[0]
    assert netns.list_with_prefix(prefix + "-") == []
