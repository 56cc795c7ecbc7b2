"""What the streaming netns tests share: one L2 segment of namespaces, the streaming
functions started there as the platform starts them, ffmpeg/ffprobe in namespaces.

    PREFIX-br  br0 ── PREFIX-prov  10.78.0.10   provider (ffmpeg test source)
                  ├── PREFIX-acq   10.78.0.2    acquirer
                  ├── PREFIX-fwd   10.78.0.3    forwarder (relay)
                  ├── PREFIX-edge1 10.78.0.4    edge streamer
                  ├── PREFIX-edge2 10.78.0.5    edge streamer
                  ├── PREFIX-sto   10.78.0.6    storage
                  ├── PREFIX-spare 10.78.0.7    a second place (migration target)
                  ├── PREFIX-v1    10.78.0.21   viewer
                  └── PREFIX-v2    10.78.0.22   viewer
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
from pathlib import Path
from typing import Any

from netfate.agent.instances import control_call, vet
from netfate.host import netns
from netns_lan import build_lan, remove_lan, start_vnf, stop_procs
from waiting import until

HOSTS = {
    "prov": "10.78.0.10",
    "acq": "10.78.0.2",
    "fwd": "10.78.0.3",
    "edge1": "10.78.0.4",
    "edge2": "10.78.0.5",
    "sto": "10.78.0.6",
    "spare": "10.78.0.7",
    "v1": "10.78.0.21",
    "v2": "10.78.0.22",
}
FUNCTIONS = {
    "acquirer": "netfate.vnf.streaming.acquirer:Acquirer",
    "relay": "netfate.vnf.streaming.relay:Relay",
    "edge": "netfate.vnf.streaming.edge:EdgeStreamer",
    "storage": "netfate.vnf.streaming.storage:Storage",
}


def source_args(seconds: float, *, size: str = "320x240", gop: int = 25) -> list[str]:
    """A provider's test source: testsrc (its built-in frame counter is the visible
    clock) and a tone, H.264 + AAC as a live encoder sends them."""
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440", "-t", f"{seconds:g}",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-g", str(gop), "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
    ]  # fmt: skip


class Lan:
    """The namespaces and everything started in them (stopped by pid, removed)."""

    def __init__(self, tmp: Path) -> None:
        self.p = "nft" + secrets.token_hex(2)
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.controls: dict[str, str] = {}
        self.functions: dict[str, str] = {}

    def ns(self, host: str) -> str:
        return f"{self.p}-{host}"

    def build(self) -> None:
        build_lan(self.p, [(h, [f"{ip}/24"], []) for h, ip in HOSTS.items()])

    def close(self) -> None:
        stop_procs(self.procs.values())
        remove_lan(self.p, HOSTS)

    # ----- functions ---------------------------------------------------------------

    def start(self, name: str, host: str, function: str, config: dict[str, Any],
              standby: bool = False) -> str:  # fmt: skip
        control = str(self.tmp / f"{name}.sock")
        # As an agent would: the config passes the function's schema (volumes below
        # the run's directory, standing for the agent's --image-dir).
        vet({"function": FUNCTIONS[function], "config": config}, self.tmp)
        self.procs[name] = start_vnf(
            self.ns(host), FUNCTIONS[function], name, control, config,
            self.tmp / f"{name}.log", ["--standby"] if standby else [],
        )  # fmt: skip
        self.controls[name] = control
        self.functions[name] = FUNCTIONS[function]
        return control

    def stop(self, name: str) -> None:
        p = self.procs.pop(name)
        stop_procs([p])

    def call(self, name: str, req: dict[str, Any]) -> dict[str, Any]:
        if req.get("op") == "configure":  # checked as the agent checks a reconfiguration
            vet({"function": self.functions[name], "config": req["config"]}, self.tmp)
        return asyncio.run(control_call(self.controls[name], req, timeout=20.0))

    def stats(self, name: str) -> dict[str, Any]:
        st: dict[str, Any] = self.call(name, {"op": "status"})["stats"]
        return st

    def events(self, name: str, kind: str | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.stats(name)["events"]["items"]
        return [e for e in items if kind is None or e["kind"] == kind]

    def wait_event(
        self, name: str, kind: str, timeout: float = 20.0, after: int = 0, **match: Any
    ) -> dict[str, Any]:
        """The latest `kind` event numbered after `after` whose fields match."""
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            found[:] = [e for e in self.events(name, kind) if e["seq"] > after
                        and all(e.get(k) == v for k, v in match.items())]  # fmt: skip
            return bool(found)

        assert until(seen, timeout), (kind, match, self.events(name), self.log(name))
        return found[-1]

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    # ----- processes in namespaces ----------------------------------------------------

    def popen(self, name: str, host: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - the process owns it
        p = netns.popen_in(self.ns(host), argv, stdout=log, stderr=log)
        log.close()
        self.procs[name] = p
        return p

    def run(
        self, host: str, argv: list[str], timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        return netns.run_in(self.ns(host), argv, check=False, timeout=timeout)

    def http(self, host: str, url: str, method: str = "GET") -> tuple[int, str]:
        """(status, body) of a request made from `host`'s namespace."""
        out = self.run(host, ["curl", "-s", "-m", "10", "-X", method, "-w", "\n%{http_code}", url])
        body, _, code = out.stdout.rpartition("\n")
        return int(code or 0), body

    def status(self, host: str, url: str) -> int:
        """The HTTP status of a GET from `host`'s namespace (the body, maybe binary, dropped)."""
        out = self.run(
            host, ["curl", "-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}", url]
        )
        return int(out.stdout or 0)

    def probe(self, host: str, url: str, seconds: float = 4.0, *, sdp: bool = False,
              stream: str = "v") -> dict[str, Any]:  # fmt: skip
        """ffprobe in `host`'s namespace decoding `seconds` of `url`: frames counted
        (every one decoded), picture size."""
        argv = ["ffprobe", "-v", "error"]
        if sdp:
            argv += ["-protocol_whitelist", "file,rtp,udp"]
        argv += ["-i", url, "-select_streams", stream, "-count_frames",
                 "-show_entries", "stream=codec_name,width,height,nb_read_frames",
                 "-read_intervals", f"%+{seconds:g}", "-of", "json"]  # fmt: skip
        out = self.run(host, argv, timeout=seconds + 40)
        try:
            streams = json.loads(out.stdout or "{}").get("streams", [])
        except json.JSONDecodeError:
            streams = []
        if not streams:
            return {"frames": 0, "error": out.stderr[-500:]}
        s = streams[0]
        return {
            "frames": int(s.get("nb_read_frames", 0) or 0),
            "codec": s.get("codec_name"),
            "width": s.get("width"),
            "height": s.get("height"),
            "error": out.stderr[-500:],
        }
