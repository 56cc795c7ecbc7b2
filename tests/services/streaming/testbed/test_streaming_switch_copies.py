"""A content copied in the switches, end to end: the real acquirer sends it once, to
the content's group address, and a replication intent shaped as the service's
(reconcile.intents: from the acquirer to the streamers, on the tree port, matching
the group address) copies it with OVS groups ALL, under the os-ken controller, to
three real edge streamers below two levels of branch points; each decodes frames.

    s0 (prov, acq) -- s1 (c1) -- s2 (edge1)
                       |
                       s3 (c2) -- s4 (edge2)
                       |
                       s5 (edge3)

The functions run as the platform runs them (python -m netfate.vnf in their
namespaces); the provider is ffmpeg's test source.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netfate.orchestrator.sdn.intents import Endpoint, ReplicationIntent, parse_intent
from netfate.services.streaming.reconcile import group_address
from netns_lan import start_vnf, stop_procs
from sdn_rig import ControlledRig, wait_until
from streaming_rig import FUNCTIONS, source_args

PORT = 6653
TREE_PORT = 6000
HOSTS = {"prov": "s0", "acq": "s0", "edge1": "s2", "edge2": "s4", "edge3": "s5"}
INSTANCES = ("acq", "edge1", "edge2", "edge3")
LINKS = [("s0", "s1"), ("s1", "s2"), ("s1", "s3"), ("s3", "s4"), ("s3", "s5")]
EDGES = ("edge1", "edge2", "edge3")


class Net(ControlledRig):
    def __init__(self, tmp: Path) -> None:
        nodes = ["s0", "s1", "s2", "s3", "s4", "s5"]
        ends = {h: (n, "instance" if h in INSTANCES else "host") for h, n in HOSTS.items()}
        super().__init__("nfc" + secrets.token_hex(2), tmp, nodes, LINKS, ends, PORT)
        self.procs: list[subprocess.Popen[bytes]] = []

    def build(self) -> None:
        super().build()
        for h in HOSTS:
            # As the platform gives an instance: a default route (its node's gateway).
            self.rig.exec(h, "ip", "route", "add", "default", "via", "10.1.0.254")

    def ip(self, h: str) -> str:
        return self.rig.endpoints[h].ip

    def start(self, name: str, function: str, config: dict[str, Any]) -> None:
        ns = self.rig.endpoints[name].netns
        control = str(self.tmp / f"{name}.sock")
        log = self.tmp / f"{name}.log"
        self.procs.append(start_vnf(ns, FUNCTIONS[function], name, control, config, log))

    def close(self) -> None:
        try:
            stop_procs(self.procs)
        finally:
            super().close()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    n = Net(tmp_path_factory.mktemp("swcopies"))
    try:
        n.build()
        yield n
    finally:
        n.close()


def test_the_switches_copy_a_content_to_three_edge_streamers(net: Net) -> None:
    group = group_address(TREE_PORT)
    # The intents: the provider reaches its acquirer; the acquirer's copies.
    ingest = {"kind": "tunnel", "id": "ingest", "a": "host:prov", "b": "instance:acq",
              "protocol": "udp", "port": 5000}  # fmt: skip
    copies = ReplicationIntent(
        id="streaming-X", source=Endpoint("instance", "acq"), port=TREE_PORT, dst_ip=group,
        targets=[Endpoint("instance", e) for e in EDGES],
    )  # fmt: skip
    net.orch.set(intents=[parse_intent(ingest), copies])
    for e in EDGES:
        net.start(e, "edge", {"contents": [{"id": "X", "port": TREE_PORT}], "http_port": 8080})
    acquirer = {
        "ports": {"first": 5000, "last": 5009},
        "flows": [{"id": "X", "event": "ev1", "state": "started", "protocol": "rtp",
                   "port": 5000, "next_hops": [{"host": group, "port": TREE_PORT}]}],
    }  # fmt: skip
    net.start("acq", "acquirer", acquirer)

    def groups() -> dict[str, int]:
        out = {}
        for n in net.rig.nodes:
            dump = net.groups(n)
            if "group_id=" in dump:
                out[n] = dump.count("bucket=") if "type=all" in dump else -1
        return out

    wait_until(lambda: groups() == {"s1": 2, "s3": 2}, what="groups ALL on s1 and s3")
    src = net.rig.popen(
        "prov",
        *source_args(60),
        "-f", "rtp_mpegts", f"rtp://{net.ip('acq')}:5000",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for e in EDGES:
            url = f"http://{net.ip(e)}:8080/hls/X/index.m3u8"
            got = wait_until(lambda u=url, h=e: frames(net, h, u), timeout=60, what=f"{e} frames")
            assert got > 0, e
    finally:
        src.terminate()
        src.wait(10)


def frames(net: Net, host: str, url: str) -> int:
    """Frames ffprobe decodes from 2 s of `url`, from `host`'s namespace (0: none yet)."""
    argv = ["ffprobe", "-v", "error", "-i", url, "-select_streams", "v", "-count_frames",
            "-show_entries", "stream=nb_read_frames", "-read_intervals", "%+2",
            "-of", "json"]  # fmt: skip
    out = net.rig.exec(host, *argv, check=False, timeout=40)
    try:
        streams = json.loads(out or "{}").get("streams", [])
    except json.JSONDecodeError:
        return 0
    return int(streams[0].get("nb_read_frames", 0) or 0) if streams else 0
