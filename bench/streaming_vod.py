"""A recording played on demand through an edge streamer against the storage itself
(issue 14, section 5: MyShare plays through the most suitable edge streamer).

On the paper's testbed (services/streaming/topologies/streaming.yaml, brought up and
taken down by this benchmark; its traffic stays in the run's namespaces) alice
records the university's lecture (stored at pe1) for RECORD_S seconds and stops.
A live viewer keeps pe2's edge streamer up, so each playback from the phone (pe2)
is the rule's case 2 (that streamer takes the recording). Each round, from the
phone's namespace:

- ``play_to_first_frame``: the play request until ffprobe first decodes a frame of
  the answer's VoD URL (the streamer is reconfigured to relay it);
- ``edge_cold``: once the streamer answers, ffprobe's first frames through it while
  it holds no segment (each one fetched from the storage);
- ``edge_cached``: the same again (the streamer's cache);
- ``storage`` (baseline, same round): the same probe straight from the storage
  function, with the grant a streamer holds (made from the service's key in the
  run's database: what the streamer itself would send).

Then the playback stops and the round waits for its branch to go (grace 1 s: the
streamer drops its cache). Ratios are medians against the storage.

    netfate bench streaming_vod --json [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time
from typing import Any

import _common as common  # bench/ is on the path: as a script, or netfate.benchcli.load

from netfate.demo.platform import Api
from netfate.demo.sdn import until
from netfate.services.streaming.demo import TOPOLOGY, Scene, frames, http_get, live
from netfate.testbed.builder import Testbed
from netfate.vnf.streaming import tokens

S = "/streaming"
RECORD_S = 10.0
FIRST = 5
"""Frames each probe decodes (ffprobe from the playlist's start)."""


def probe(ns: str, url: str) -> float:
    """Seconds ffprobe takes to decode the first FIRST frames of ``url``."""
    t0 = time.monotonic()
    n = frames(ns, url, first=FIRST)
    if n < FIRST:
        raise SystemExit(f"only {n} frames of {url}")
    return time.monotonic() - t0


def service_key(tb: Testbed) -> str:
    db = sqlite3.connect(f"file:{tb.state.dir / 'orchestrator.db'}?mode=ro", uri=True)
    try:
        (state,) = db.execute("SELECT state FROM streaming_tree WHERE id = 1").fetchone()
    finally:
        db.close()
    return str(json.loads(state)["secret"])


def one_round(sc: Scene, ns: str, rid: int, storage_url: str) -> dict[str, float]:
    alice = sc.api.as_user("alice")
    t0 = time.monotonic()
    a = alice("POST", f"{S}/recordings/{rid}/play", {"host": "phone"})
    assert a["case"] == 2 and a["node"] == "pe2", a
    until("the first VoD frame", lambda: frames(ns, a["vod"], first=1) >= 1, 60)
    play = time.monotonic() - t0
    alice("DELETE", f"{S}/recordings/{rid}/play")
    gone = lambda: f"r{rid}" not in {x["id"] for x in sc.tree()["state"]["contents"]}  # noqa: E731
    until("the playback's branch to go", gone, 60)
    a = alice("POST", f"{S}/recordings/{rid}/play", {"host": "phone"})
    until("the streamer to relay it", lambda: http_get(ns, a["vod"])[0] == 200, 60)
    cold = probe(ns, a["vod"])
    cached = probe(ns, a["vod"])
    direct = probe(ns, storage_url)
    alice("DELETE", f"{S}/recordings/{rid}/play")
    until("the playback's branch to go", gone, 60)
    return {"play_to_first_frame": play, "edge_cold": cold, "edge_cached": cached,
            "storage": direct}  # fmt: skip


def run(argv: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="netfate bench streaming_vod")
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args(argv)
    common.need_root("the streaming VoD benchmark")
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load": os.getloadavg()}}
    keys = ("play_to_first_frame", "edge_cold", "edge_cached", "storage")
    samples: dict[str, list[float]] = {k: [] for k in keys}
    with common.sigterm_interrupts():
        tb = Testbed.up(TOPOLOGY)
        try:
            assert tb.api_url
            sc = Scene(tb, Api(tb.api_url), lambda _m: None)
            try:
                sc.start()
                sc.recognised("lecture")
                ns = tb.netns_of("phone")
                sc.join("keeper", "phone", "lecture")  # pe2's streamer stays up
                alice = sc.api.as_user("alice")
                body = {"user": "alice", "event": sc.events["lecture"]}
                rid = alice("POST", f"{S}/recordings", body)["id"]

                def recorded() -> dict[str, Any]:
                    mine = sc.api("GET", f"{S}/app/recordings?user=alice")
                    (r,) = [r for r in mine if r["id"] == rid]
                    return dict(r["recorded"])

                until("the recording", lambda: (recorded()["duration_s"] or 0) >= RECORD_S, 120)
                alice("DELETE", f"{S}/recordings/{rid}")
                until("the recording to stop", lambda: recorded()["state"] == "stopped", 60)
                sto = live(sc.api, "storage-pe1") or {}
                grant = tokens.issue(service_key(tb), f"vod:r{rid}", int(time.time()) + 3600)
                storage_url = (
                    f"http://{sto['ip'].split('/')[0]}:8081/vod/r{rid}/index.m3u8?token={grant}"
                )
                out["recorded_s"] = recorded()["duration_s"]
                for _ in range(a.rounds):
                    for k, v in one_round(sc, ns, rid, storage_url).items():
                        samples[k].append(v)
            finally:
                sc.stop()
        finally:
            problems = tb.down()
            if problems:
                out["teardown_problems"] = problems
    out["first_frames_s"] = {k: common.summary(v) for k, v in samples.items()}
    base = out["first_frames_s"]["storage"]["median"]
    out["ratio_to_storage"] = {
        k: common.ratio(out["first_frames_s"][k]["median"], base)
        for k in ("edge_cold", "edge_cached")
    }
    return out


if __name__ == "__main__":
    import sys

    print(json.dumps(run(sys.argv[1:]), indent=2))
