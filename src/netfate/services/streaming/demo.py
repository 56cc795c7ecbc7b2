"""The streaming paper's testbed (topologies/streaming.yaml: 5 PEs, 2 core routers
with compute, 2 providers, viewers on four PEs): ``netfate demo streaming``.

check() walks through it, each step raising DemoFailed with the reason:

1. two providers (a university's camera at pe1, a sports club's at pe4) schedule
   an event each and start it: the service runs an acquirer at each PE and
   answers its address and port; each camera streams an ffmpeg test source with
   a visible clock (drawtext where ffmpeg has it, else testsrc's own counter);
2. each acquirer recognises its stream and tells the back-end through the
   platform's function events: the live content shows container and codecs;
3. viewers join, and the tree grows by the paper's rule, every case asserted:
     alice (pe2) lecture   case 4  a new edge streamer on pe2
     bob   (pe3) lecture   case 3  pe3 has none: pe2's, its neighbour
     carol (pe2) match     case 2  pe2's streamer has room and takes the match
     dave  (pe2) lecture   case 1  pe2's streamer already serves the lecture
     erin  (pe5) lecture   case 4  no neighbour has one: a new one on pe5; the
                                   lecture's tree branches at c1
     frank (pe4) match     case 3  pe5's, next door; the match branches at c2
   and every viewer's ffprobe decodes frames of the HLS its streamer serves; the
   testbed runs the SDN controller (SDN, as `netfate demo sdn`), so c1's and c2's
   switches copy (a group ALL each, the replication intents the service's loop
   keeps): OVS's group stats count packets on every bucket, no forwarder runs, and
   every viewer decodes again (without the controller, forwarders run there and
   their stats show a copy to each next hop);
   while they join, alice records the lecture (mid-event: the storage function
   joins at pe1);
4. alice stops the recording and plays it back from her phone (pe2): the rule
   picks pe2's edge streamer (case 2: it has room and takes the recording), which
   relays the storage's HLS VoD with her token (none, or a false one, is refused,
   and the storage refuses anyone without the streamer's grant); ffprobe
   decodes its first frames and frames from its middle (seekable: a VOD playlist,
   whole), and Chromium in the phone's namespace plays it from MyShare with frames
   rendered; she stops it and the branch goes after the grace period;
5. everyone leaves: after the grace period the branches are pruned, the
   streamers go and the switches' groups (or the forwarders); the recording is
   deleted and the storage goes; the events stop and the acquirers go: the tree
   is empty.

The helpers (Scene) are shared with the fault tests
(tests/services/streaming/testbed/test_streaming_faults.py).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from netfate.demo.platform import Api, DemoFailed, Say
from netfate.demo.sdn import until
from netfate.host import netns
from netfate.testbed.builder import Testbed
from netfate.vnf.streaming.hls import HlsError, parse_media

TOPOLOGY = Path(__file__).parent / "topologies" / "streaming.yaml"
SDN = True
"""The testbed runs netfate's SDN controller (bridges in secure mode, as `netfate
demo sdn`): the switches copy the contents (groups ALL) where the tree branches."""
SOURCE_S = 600
"""The sources' length: they are stopped when the walk-through ends."""
GRACE_S = 1.0
S = "/streaming"
INTENT = "streaming-"
"""The replication intent of a content the switches copy: INTENT + its id."""
GONE = ("gone", "failed", "stopping")

PROVIDERS = {
    # content key: (provider, title, its PE, its camera host, event title)
    "lecture": ("uni", "A University", "pe1", "camera", "Opening lecture"),
    "match": ("club", "A Sports Club", "pe4", "camera2", "Derby"),
}
JOINS = (
    # user (signed in as itself), its device (host), content key, expected case and node
    ("alice", "phone", "lecture", 4, "pe2"),
    ("bob", "tablet", "lecture", 3, "pe2"),
    ("carol", "phone", "match", 2, "pe2"),
    ("dave", "phone", "lecture", 1, "pe2"),
    ("erin", "laptop", "lecture", 4, "pe5"),
    ("frank", "tv", "match", 3, "pe5"),
)
BRANCHES = {"lecture": "c1", "match": "c2"}
"""Where each content's tree branches once every viewer is in: a group ALL in the
core's switch under the SDN controller (a forwarder on the core without it)."""

_CLOCK = (
    "drawtext=text='%{localtime\\:%T} %{n}':fontsize=20:fontcolor=white"
    ":box=1:boxcolor=black@0.6:x=6:y=6"
)


def clock_filter() -> str | None:
    """The drawtext clock when this ffmpeg can draw text (a font found), else None."""
    try:
        r = subprocess.run(
            ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi",
             "-i", "testsrc=size=64x48:rate=1:duration=1", "-vf", _CLOCK, "-f", "null", "-"],
            capture_output=True, timeout=20, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return _CLOCK if r.returncode == 0 else None


def source_argv(acquirer: str, port: int, clock: str | None) -> list[str]:
    """The provider's encoder: testsrc (its frame counter, and the wall clock when
    drawtext works, is the visible clock), H.264 in RTP/MPEG-TS."""
    vf = ["-vf", clock] if clock else []
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15", "-t", str(SOURCE_S), *vf,
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "15",
        "-pix_fmt", "yuv420p", "-f", "rtp_mpegts", f"rtp://{acquirer}:{port}",
    ]  # fmt: skip


def frames(
    ns: str,
    url: str,
    seconds: float = 2.0,
    first: int | None = None,
    at: float | None = None,
    probe: Sequence[str] = (),
) -> int:
    """Video frames ffprobe decodes from ``url`` in ``ns`` within ``seconds`` of media
    (or its ``first`` frames only), from its start or (a seek) from ``at`` seconds;
    ``probe``: ffprobe's input options."""
    span = f"+#{first}" if first is not None else f"+{seconds:g}"
    interval = f"{at:g}%{span}" if at is not None else f"%{span}"
    out = netns.run_in(
        ns,
        ["ffprobe", "-v", "error", *probe, "-i", url, "-select_streams", "v", "-count_frames",
         "-show_entries", "stream=nb_read_frames", "-read_intervals", interval,
         "-of", "json"],
        check=False,
        timeout=seconds + 40,
    )  # fmt: skip
    try:
        streams: list[dict[str, Any]] = json.loads(out.stdout or "{}").get("streams", [])
    except json.JSONDecodeError:
        return 0
    return int(streams[0].get("nb_read_frames", 0) or 0) if streams else 0


def http_get(ns: str, url: str) -> tuple[int, str]:
    """GET ``url`` from inside namespace ``ns`` (no proxy): status and text."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get() -> tuple[int, str]:
        try:
            with opener.open(url, timeout=20) as r:
                return int(r.status), r.read(1 << 20).decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, ""
        except OSError as e:
            return 0, str(e)

    return netns.in_netns(ns, get)


def live(api: Api, name: str) -> dict[str, Any] | None:
    for i in api("GET", "/instances"):
        if i["name"] == name and i["state"] not in GONE:
            return dict(i)
    return None


def gone(api: Api, name: str) -> Callable[[], bool]:
    """Whether the instance ``name`` no longer lives (for until)."""
    return lambda: live(api, name) is None


def appears(api: Api, name: str) -> Callable[[], dict[str, Any] | None]:
    return lambda: live(api, name)


def restarted(api: Api, name: str, pid: int) -> Callable[[], bool]:
    """Whether the instance ``name`` runs again, with another process than ``pid``
    (for until)."""

    def again() -> bool:
        i = live(api, name)
        return i is not None and i["state"] == "running" and i["pid"] not in (None, pid)

    return again


@dataclass
class Scene:
    """The walk-through's state: what it started, who watches what."""

    tb: Testbed
    api: Api
    say: Say
    clock: str | None = None
    events: dict[str, int] = field(default_factory=dict)
    """content key -> event id."""
    contents: dict[str, dict[str, Any]] = field(default_factory=dict)
    """content key -> the live content (id, acquirer address and port)."""
    sources: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    hosts: dict[str, str] = field(default_factory=dict)
    """user -> the host (its device) it watches from."""

    # ---------------------------------------------------------------- providers

    def start(self) -> None:
        api = self.api
        api("PUT", f"{S}/settings", {"criterion": "consolidation", "grace_s": GRACE_S})
        self.clock = clock_filter()
        for key, (prov, title, pe, _cam, ev_title) in PROVIDERS.items():
            api("POST", f"{S}/providers", {"name": prov, "title": title, "pe": pe})
            ev = api(
                "POST",
                f"{S}/events",
                {"provider": prov, "title": ev_title, "description": "with a clock",
                 "start": time.time() + 5, "duration_s": 900, "bitrate_kbps": 1500},
            )  # fmt: skip
            ev = api("POST", f"{S}/events/{ev['id']}/start", None)
            self.events[key], self.contents[key] = ev["id"], ev["content"]
            acq = ev["content"]["acquirer"]
            self.say(
                f"{prov} started event {ev['id']}: content {ev['content']['id']}, acquirer at "
                f"{acq['node']} {acq['address']}:{acq['port']} ({acq['protocol']})"
            )
        for key, (_p, _t, pe, _c, _e) in PROVIDERS.items():
            inst = until(f"the acquirer at {pe}", appears(api, f"acquirer-{pe}"))
            api.wait_state(inst["id"], "running", timeout=60)
            self.stream(key)
        how = "drawtext wall clock and frame number" if self.clock else "testsrc's counter"
        self.say(f"both cameras stream ffmpeg test sources ({how})")

    def stream(self, key: str) -> None:
        """(Re)start the provider's encoder towards its acquirer."""
        old = self.sources.pop(key, None)
        if old is not None:
            self.kill_source(old)
        acq = self.contents[key]["acquirer"]
        cam = self.tb.netns_of(PROVIDERS[key][3])
        argv = source_argv(acq["address"], acq["port"], self.clock)
        self.sources[key] = netns.popen_in(cam, argv)

    @staticmethod
    def kill_source(p: subprocess.Popen[bytes]) -> None:
        p.kill()
        p.wait()

    def content(self, key: str) -> dict[str, Any]:
        cid = self.contents[key]["id"]
        for c in self.api("GET", f"{S}/contents"):
            if c["id"] == cid:
                return dict(c)
        raise DemoFailed(f"content {cid} is not live")

    def recognised(self, key: str) -> dict[str, Any]:
        st = until(
            f"the acquirer's recognition of {key}",
            lambda: self.content(key)["stream"].get("recognised"),
            60,
        )
        return dict(st)

    # ---------------------------------------------------------------- viewers

    def join(self, user: str, host: str, key: str) -> dict[str, Any]:
        """``user``, signed in as itself, watches ``key`` from its device ``host``."""
        cid = self.contents[key]["id"]
        me = self.api.as_user(user)
        a = dict(me("POST", f"{S}/contents/{cid}/viewers", {"host": host}))
        if (a["user"], a["client"]) != (user, host):
            raise DemoFailed(f"{user} on {host} joined as {a['user']} on {a['client']}")
        self.hosts[user] = host
        return a

    def viewer(self, user: str) -> dict[str, Any]:
        """The user's viewer, as the user reads it (its own only)."""
        me = self.api.as_user(user)
        for key in self.contents:
            cid = self.contents[key]["id"]
            for v in me("GET", f"{S}/contents/{cid}/viewers"):
                if v["client"] == self.hosts[user]:
                    return dict(v)
        raise DemoFailed(f"{user} watches nothing")

    def decodes(self, user: str, timeout: float = 90) -> int:
        """Frames the user's ffprobe (on its device) decodes from the HLS of the
        streamer serving it now (its address read again: a rebuilt streamer may have
        another)."""
        ns = self.tb.netns_of(self.hosts[user])

        def attempt() -> int:
            v = self.viewer(user)
            inst = live(self.api, f"streamer-{v['streamer']}")
            if inst is None or inst["state"] != "running" or not v["hls"]:
                return 0
            return frames(ns, v["hls"])

        return int(until(f"frames decoded by {user}", attempt, timeout))

    def leave(self, user: str) -> None:
        """The user's device leaves, the user signed in as itself."""
        v = self.viewer(user)
        self.api.as_user(user)("DELETE", f"{S}/contents/{v['content']}/viewers/{v['client']}")

    # ---------------------------------------------------------------- the tree

    def tree(self) -> dict[str, Any]:
        return dict(self.api("GET", f"{S}/tree"))

    def forwarder(self, node: str, key: str) -> dict[str, Any]:
        """The forwarder on ``node`` carrying ``key``, once it runs."""
        cid = self.contents[key]["id"]
        if cid not in self.tree()["desired"]["forwarders"].get(node, {}):
            raise DemoFailed(f"{key}'s tree has no branch point at {node}: {self.tree()}")
        inst = until(f"the forwarder on {node}", appears(self.api, f"forwarder-{node}"))
        return self.api.wait_state(inst["id"], "running", timeout=60)

    def copies(self, node: str, key: str) -> dict[str, int]:
        """Datagrams the forwarder on ``node`` sent of ``key`` per next hop (its stats
        in its agent's report), once it duplicates to two hops or more."""
        cid = self.contents[key]["id"]

        def sent() -> dict[str, int] | None:
            inst = live(self.api, f"forwarder-{node}")
            route = ((inst or {}).get("stats") or {}).get("routes", {}).get(cid, {})
            hops = {str(h["hop"]): int(h.get("sent", 0)) for h in route.get("hops", [])}
            return hops if len(hops) >= 2 and all(hops.values()) else None

        return dict(until(f"the forwarder on {node} to duplicate {key}", sent, 60))

    def switched(self, node: str, key: str) -> bool:
        """Whether the tree has ``key``'s copies made by ``node``'s switch (a group
        ALL there), not by a forwarder."""
        cid = self.contents[key]["id"]
        return node in self.tree()["desired"].get("switched", {}).get(cid, [])

    def group_packets(self, node: str, key: str) -> list[int]:
        """Packets each bucket of ``key``'s group ALL on ``node``'s switch has copied
        (OVS's `dump-group-stats`: one bucket per next hop), once each bucket counts
        some; the group is the replication intent's (streaming-X)."""
        from netfate.orchestrator.sdn.compile import group_id_for

        gid = group_id_for(f"{INTENT}{self.contents[key]['id']}")

        def counted() -> list[int] | None:
            for line in self.tb.ofctl(node, "dump-group-stats", f"group_id={gid}").splitlines():
                if f"group_id={gid}," not in line:
                    continue
                per = [int(b.split("packet_count=")[1].split(",")[0])
                       for b in line.split("bucket")[1:]]  # fmt: skip
                return per if len(per) >= 2 and all(per) else None
            return None

        return list(until(f"{node}'s group ALL to copy {key} to every next hop", counted, 60))

    def no_groups(self, node: str) -> bool:
        """Whether ``node``'s switch holds no group (`dump-groups`)."""
        return "group_id=" not in self.tb.ofctl(node, "dump-groups")

    def stop(self) -> None:
        for p in self.sources.values():
            self.kill_source(p)
        self.sources.clear()


def check(tb: Testbed, say: Say) -> None:
    if tb.api_url is None:
        raise DemoFailed("the testbed runs without orchestrator")
    sc = Scene(tb, Api(tb.api_url), say)
    try:
        sc.start()
        for key in PROVIDERS:
            rec = sc.recognised(key)
            codecs = ", ".join(f"{s['kind']} {s['codec']}" for s in rec["streams"])
            say(f"the acquirer recognised {key}: {rec['container']} ({codecs})")
            if rec["container"] != "mpegts" or "h264" not in codecs:
                raise DemoFailed(f"unexpected recognition of {key}: {rec}")
        rid = _record(sc)
        _grow(sc)
        _play_back(sc, rid)
        _shrink(sc, rid)
    finally:
        sc.stop()


def _grow(sc: Scene) -> None:
    for user, host, key, case, node in JOINS:
        a = sc.join(user, host, key)
        sc.say(
            f"{user} at {a['pe']} watches {key}: case {a['case']}, {a['streamer']} on "
            f"{a['node']} ({a['why']})"
        )
        if a["case"] != case or a["node"] != node:
            raise DemoFailed(f"expected case {case} on {node} for {user}, got {a}")
        n = sc.decodes(user)
        sc.say(f"{user}'s ffprobe decodes {n} frames of {a['hls']}")
    switched = sc.tb.state.sdn
    for key, node in BRANCHES.items():
        if switched:
            until(f"{key}'s copies in {node}'s switch", partial(sc.switched, node, key))
            if live(sc.api, f"forwarder-{node}") is not None:
                raise DemoFailed(f"a forwarder runs on {node} though its switch copies {key}")
            sc.say(f"{key}'s tree branches at core {node}: its switch copies it (group ALL, "
                   "no forwarder)")  # fmt: skip
        else:
            fwd = sc.forwarder(node, key)
            sc.say(f"{key}'s tree branches at core {node}: forwarder {fwd['ip']} duplicates it")
    for user, *_ in JOINS:  # through the branch points now
        sc.decodes(user)
    for key, node in BRANCHES.items():
        if switched:
            per = sc.group_packets(node, key)
            sc.say(f"the switch on {node} copied {key} (dump-group-stats): "
                   + ", ".join(f"bucket {i} {n} packets" for i, n in enumerate(per)))  # fmt: skip
        else:
            sent = ", ".join(f"{n} to {h}" for h, n in sorted(sc.copies(node, key).items()))
            sc.say(f"the forwarder on {node} sent {key}: {sent}")
    cases = sorted({c for _, _, _, c, _ in JOINS})
    sc.say(f"cases {cases} of the rule happened; every viewer decodes through the tree")


RECORDER = ("alice", "phone", "lecture")
"""Who records what mid-event and plays it back from where."""
RECORDED_S = 8.0
"""Media recorded before the recording stops (at least: the walk-through goes on)."""


def _record(sc: Scene) -> int:
    """Alice records the lecture from now on: the storage function joins at its PE."""
    user, _host, key = RECORDER
    rec = sc.api.as_user(user)("POST", f"{S}/recordings", {"user": user, "event": sc.events[key]})
    sto = until("the storage function", appears(sc.api, f"storage-{PROVIDERS[key][2]}"))
    sc.say(f"{user} records {key} mid-event (recording {rec['id']}): storage at {sto['node']}")
    return int(rec["id"])


def _recorded(sc: Scene, rid: int) -> dict[str, Any]:
    user = RECORDER[0]
    for r in sc.api("GET", f"{S}/app/recordings?user={user}"):
        if r["id"] == rid:
            return dict(r)
    raise DemoFailed(f"recording {rid} is not in {user}'s MyShare")


def _play_back(sc: Scene, rid: int) -> None:
    user, host, _key = RECORDER
    me = sc.api.as_user(user)
    ns = sc.tb.netns_of(host)
    until(
        f"{RECORDED_S:g} s recorded",
        lambda: (_recorded(sc, rid)["recorded"]["duration_s"] or 0) >= RECORDED_S,
        90,
    )
    me("DELETE", f"{S}/recordings/{rid}")
    rec = until(
        "the recording to stop",
        lambda: (r := _recorded(sc, rid))["recorded"]["state"] == "stopped" and r,
        60,
    )
    dur = float(rec["recorded"]["duration_s"])
    sc.say(f"{user} stopped recording {rid}: {dur:.1f} s in {rec['recorded']['segments']} "
           f"segments on {rec['node']}'s volume")  # fmt: skip
    a = me("POST", f"{S}{rec['play']}", {"host": host})
    sc.say(f"{user} plays recording {rid} from {host}: case {a['case']}, {a['streamer']} on "
           f"{a['node']} ({a['why']})")  # fmt: skip
    if a["case"] != 2 or a["node"] != "pe2" or a["streamer"] != sc.viewer(user)["streamer"]:
        raise DemoFailed(f"expected pe2's streamer to take the recording (case 2): {a}")
    url = str(a["vod"])
    if not url.startswith(f"http://{a['address']}:"):
        raise DemoFailed(f"the playback is not served by the chosen streamer: {url}")
    start = time.monotonic()
    first = int(until(f"{user}'s first VoD frames", lambda: frames(ns, url, first=5), 60))
    cold = time.monotonic() - start
    start = time.monotonic()
    frames(ns, url, first=5)
    warm = time.monotonic() - start
    status, text = http_get(ns, url)
    if status != 200 or "#EXT-X-PLAYLIST-TYPE:VOD" not in text or "#EXT-X-ENDLIST" not in text:
        raise DemoFailed(f"not a final VoD playlist ({status}): {text[:300]}")
    try:
        whole = parse_media(text).duration
    except HlsError as e:
        raise DemoFailed(f"the VoD playlist does not parse: {e}") from None
    if abs(whole - dur) > 0.5:
        raise DemoFailed(f"the playlist holds {whole:.1f} s of a {dur:.1f} s recording")
    mid = round(whole / 2, 1)
    seeked = frames(ns, url, first=5, at=mid)
    if seeked < 1:
        raise DemoFailed(f"no frame decoded after a seek to {mid} s")
    bare = url.split("?", 1)[0]
    if http_get(ns, bare)[0] != 403 or http_get(ns, bare + "?token=1.0")[0] != 403:
        raise DemoFailed("the streamer served the recording without its user's token")
    sto = live(sc.api, f"storage-{rec['node']}") or {}
    if (
        http_get(ns, f"http://{sto.get('ip', '').split('/')[0]}:8081/vod/r{rid}/index.m3u8")[0]
        != 403
    ):
        raise DemoFailed("the storage served the recording without a grant")
    relayed = _relayed(sc, a["streamer"], f"r{rid}")
    sc.say(f"{user}'s ffprobe decodes {first} frames of {url.split('?')[0]} (VOD, {whole:.1f} s, "
           f"first frames in {cold:.2f} s cold, {warm:.2f} s from the streamer's cache) and "
           f"{seeked} after a seek to {mid:g} s; the streamer fetched {relayed['fetches']} "
           f"objects from the storage and served {relayed['hits']} from its cache; "
           "without her token: 403")  # fmt: skip
    _browser_plays(sc, rid)
    sc.api("DELETE", f"{S}/recordings/{rid}/play")  # her password was just renewed
    until(
        "the playback's branch to go",
        lambda: f"r{rid}" not in {x["id"] for x in sc.tree()["state"]["contents"]},
        60,
    )
    sc.say(f"{user} stopped playing: after {GRACE_S:g} s its branch went, its bandwidth freed")


def _relayed(sc: Scene, sid: str, content: str) -> dict[str, Any]:
    """The streamer's figures of a recording it relays, once its report shows requests."""

    def report() -> dict[str, Any] | None:
        inst = live(sc.api, f"streamer-{sid}") or {}
        figs = ((inst.get("stats") or {}).get("vod") or {}).get("recordings", {}).get(content)
        return dict(figs) if figs and figs.get("fetches") and figs.get("hits") else None

    return dict(until(f"{sid}'s report of {content}", report, 30))


FRAMES = """(id) => {  // frames the video element rendered since asked (requestVideoFrameCallback)
  const v = document.getElementById(id);
  if (!v.__frames) {
    v.__frames = { n: 0 };
    const cb = () => { v.__frames.n += 1; v.requestVideoFrameCallback(cb); };
    v.requestVideoFrameCallback(cb);
  }
  return v.__frames.n;
}"""


def _browser_plays(sc: Scene, rid: int) -> None:
    """Chromium in the phone's namespace: alice signs in on the app (through the front
    door), plays the recording from MyShare, and the video element renders frames."""
    from netfate.demo.browser import available, chromiums

    user, host, _key = RECORDER
    if not available() or sc.tb.door_url is None:
        raise DemoFailed("Chromium or the front door is missing: the browser step cannot run")
    pw = sc.api("POST", f"/accounts/{user}/password", {})["password"]
    sc.api.forget(user)  # the reset revoked the token her viewer's calls used
    base = sc.tb.door_url
    t0 = time.monotonic()
    with chromiums(sc.tb.netns_of(host)) as (browser,):
        page = browser.new_page()
        # Signed in from the door's origin on its smallest page (the app loads once).
        page.goto(f"{base}/api/v1/streaming/app/manifest.webmanifest")
        status = page.evaluate(
            """([name, password]) => fetch("/api/v1/auth/session", {method: "POST",
                   headers: {"Content-Type": "application/json"},
                   body: JSON.stringify({name, password})}).then((r) => r.status)""",
            [user, pw],
        )
        if status != 200:
            raise DemoFailed(f"{user} cannot sign in on the app: {status}")
        page.goto(f"{base}/api/v1/streaming/app?user={user}&host={host}")
        page.get_by_role("tab", name="MyShare").click()
        page.locator(f'[data-recording="{rid}"]').get_by_role("button", name="Play").click()
        page.evaluate(FRAMES, "vod")
        page.wait_for_function(f"() => ({FRAMES})('vod') >= 10", timeout=60_000)
        info = page.locator("#vod-info").inner_text()
    sc.say(f"Chromium at {host} plays recording {rid} from MyShare and renders frames "
           f"({time.monotonic() - t0:.1f} s): {info}")  # fmt: skip


def _shrink(sc: Scene, rid: int) -> None:
    streamers = {sc.viewer(c)["streamer"] for c, *_ in JOINS}
    for user, *_ in JOINS:
        sc.leave(user)
    for sid in sorted(streamers):
        until(f"{sid} to be released", gone(sc.api, f"streamer-{sid}"), 60)
    for node in BRANCHES.values():
        until(f"the forwarder on {node} to go", gone(sc.api, f"forwarder-{node}"))
        if sc.tb.state.sdn:
            until(f"the groups on {node}'s switch to go", partial(sc.no_groups, node))
    sc.say(
        f"everyone left: after {GRACE_S:g} s the branches were pruned, the streamers and "
        + ("the switches' groups went" if sc.tb.state.sdn else "forwarders went")
    )
    sc.api("DELETE", f"{S}/app/recordings/{rid}?user={RECORDER[0]}")
    node = PROVIDERS[RECORDER[2]][2]
    until(f"the storage at {node} to go", gone(sc.api, f"storage-{node}"), 60)
    for eid in sc.events.values():
        sc.api("POST", f"{S}/events/{eid}/stop", None)
    for _p, _t, pe, _c, _e in PROVIDERS.values():
        until(f"the acquirer at {pe} to go", gone(sc.api, f"acquirer-{pe}"))
    t = sc.tree()
    left = (t["state"]["contents"], t["state"]["streamers"], t["functions"])
    if any(left):
        raise DemoFailed(f"the tree is not empty: {left}")
    sc.say("events stopped: the acquirers are gone, the tree is empty")


def show(tb: Testbed, say: Say) -> None:
    say(
        "run `netfate demo streaming --check` for the walk-through; the API is "
        f"{tb.api_url}/api/v1/streaming/tree"
    )
