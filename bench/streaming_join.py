"""Join -> first decodable frame on the streaming tree (issue 14's figure "join:
request -> first decodable frame", goals: warm tree < 1 s, new edge streamer < 3 s).

On the paper's testbed (services/streaming/topologies/streaming.yaml, brought up
and taken down by this benchmark; its traffic stays in the run's namespaces) the
university's camera streams (ffmpeg testsrc, 15 fps, GOP 1 s) to its acquirer at
pe1. Each round, from the phone's namespace (pe2):

- ``new_streamer``: a viewer joins while pe2 has no edge streamer (the rule's
  case 4): the time from the join request until ffprobe first decodes a frame of
  the HLS URL the answer gave (polled: each attempt is one ffprobe run);
- ``warm``: a second viewer joins the same content at pe2 (case 1: the streamer
  already serves it), timed the same way;
- ``floor`` (baseline, same round): the same ffprobe probe on the already-served
  URL with no join at all: what the measuring method itself costs.

The probe analyses 0.5 s of stream (PROBE), as a player does, not ffprobe's 5 s.

Then both leave and the round waits for the streamer to be released (grace 1 s).
Ratios are medians against the floor.

    netfate bench streaming_join --json [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import _common as common  # bench/ is on the path: as a script, or netfate.benchcli.load

from netfate.demo.platform import Api
from netfate.demo.sdn import until
from netfate.services.streaming.demo import TOPOLOGY, Scene, frames, gone
from netfate.testbed.builder import Testbed

PROBE = ("-analyzeduration", "500000")
"""ffprobe's own analysis, short as a player's: by default it reads 5 s of stream to
estimate the frame rate, and with a new streamer's single 1 s segment of a 15 fps
stream it waits for the second segment before it gives a first frame (+1 s) that a
player (hls.js) would have shown already."""


def first_frame(ns: str, url: str) -> bool:
    """One probe: does ffprobe decode a first video frame of ``url`` now?"""
    return frames(ns, url, first=1, probe=PROBE) >= 1


def until_frame(ns: str, url: str, t0: float, timeout: float = 60.0) -> float:
    """Seconds from ``t0`` until a probe decodes a frame."""
    while not first_frame(ns, url):
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"no frame of {url} within {timeout:.0f} s")
        time.sleep(0.05)
    return time.monotonic() - t0


def one_round(sc: Scene, ns: str, i: int) -> dict[str, float]:
    for user in (f"new{i}", f"warm{i}"):  # viewers sign in first: not timed
        sc.api.as_user(user)
    t0 = time.monotonic()
    a = sc.join(f"new{i}", "phone", "lecture")
    assert a["case"] == 4, a
    new = until_frame(ns, a["hls"], t0)
    t0 = time.monotonic()
    b = sc.join(f"warm{i}", "phone", "lecture")
    assert b["case"] == 1, b
    warm = until_frame(ns, b["hls"], t0)
    t0 = time.monotonic()
    floor = until_frame(ns, b["hls"], t0)
    for client in (f"new{i}", f"warm{i}"):
        sc.leave(client)
    until("the streamer's release", gone(sc.api, f"streamer-{a['streamer']}"), 60)
    return {"new_streamer": new, "warm": warm, "floor": floor}


def run(argv: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="netfate bench streaming_join")
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args(argv)
    common.need_root("the streaming join benchmark")
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load": os.getloadavg()}}
    samples: dict[str, list[float]] = {"new_streamer": [], "warm": [], "floor": []}
    with common.sigterm_interrupts():
        tb = Testbed.up(TOPOLOGY)
        try:
            assert tb.api_url
            sc = Scene(tb, Api(tb.api_url), lambda _m: None)
            try:
                sc.start()
                sc.recognised("lecture")
                ns = tb.netns_of("phone")
                for i in range(a.rounds):
                    for k, v in one_round(sc, ns, i).items():
                        samples[k].append(v)
            finally:
                sc.stop()
        finally:
            problems = tb.down()
            if problems:
                out["teardown_problems"] = problems
    out["join_to_first_frame_s"] = {k: common.summary(v) for k, v in samples.items()}
    floor = out["join_to_first_frame_s"]["floor"]["median"]
    out["ratio_to_floor"] = {
        k: common.ratio(out["join_to_first_frame_s"][k]["median"], floor)
        for k in ("new_streamer", "warm")
    }
    out["goals_s"] = {"warm": 1.0, "new_streamer": 3.0}
    return out


if __name__ == "__main__":
    import sys

    print(json.dumps(run(sys.argv[1:]), indent=2))
