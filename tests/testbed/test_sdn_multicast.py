"""A replication intent as a multicast tree on real Open vSwitch bridges, programmed
by the os-ken controller (userspace datapath, secure mode, OpenFlow 1.3).

    s0 (src) -- s1 (r1) -- s2 (r2)
                  |
                  s3 -- s4 (r4)
                  |
                  s5 (r5)

One sender's UDP flow to a group address reaches receivers on different switches
below two levels of branch points (s1, then s3): each gets every datagram once,
and `dump-groups` shows a group ALL on each branch switch and none elsewhere.
Targets added and removed modify the groups in place; the intent's removal
leaves no flow and no group of it.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netfate.orchestrator.sdn.intents import cookie_for, parse_intent
from sdn_rig import ControlledRig, wait_until

PORT = 6653
GROUP = "239.1.2.3"
UDP_PORT = 5004
HOSTS = {"src": "s0", "r1": "s1", "r2": "s2", "r4": "s4", "r5": "s5"}
LINKS = [("s0", "s1"), ("s1", "s2"), ("s1", "s3"), ("s3", "s4"), ("s3", "s5")]


class Net(ControlledRig):
    def __init__(self, tmp: Path) -> None:
        nodes = ["s0", "s1", "s2", "s3", "s4", "s5"]
        hosts = {h: (n, "host") for h, n in HOSTS.items()}
        super().__init__("nfm" + secrets.token_hex(2), tmp, nodes, LINKS, hosts, PORT)

    def replicate(self, *targets: str) -> None:
        spec: dict[str, Any] = {
            "kind": "replication",
            "id": "tv",
            "source": "host:src",
            "port": UDP_PORT,
            "dst_ip": GROUP,
            "targets": [f"host:{t}" for t in targets],
        }
        self.orch.set(intents=[parse_intent(spec)] if targets else [])

    def buckets(self) -> dict[str, int]:
        """Node -> how many buckets its group ALL has (nodes without a group left out)."""
        out = {}
        for n in self.rig.nodes:
            gs = [ln.strip() for ln in self.groups(n).splitlines() if "group_id=" in ln]
            assert len(gs) <= 1, gs
            if gs:
                assert "type=all" in gs[0], gs[0]
                out[n] = gs[0].count("bucket=")
        return out

    def ours(self, node: str) -> list[str]:
        c = f"cookie={cookie_for('tv'):#x},"
        return [f for f in self.rig.flows(node) if c in f]

    def packets(self, node: str) -> list[int]:
        """The packet counter of each of the intent's flows on a node."""
        c = f"cookie={cookie_for('tv'):#x},"
        out = self.rig.ofctl(self.rig.bridge(node), "dump-flows")
        return [
            int(m) for ln in out.splitlines() if c in ln for m in re.findall(r"n_packets=(\d+)", ln)
        ]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    n = Net(tmp_path_factory.mktemp("sdnm"))
    try:
        n.build()
        yield n
    finally:
        n.close()


RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(30)
print("ready", flush=True)
while True:
    d = s.recv(100).decode()
    print(d, flush=True)
    if d == "end":
        break
"""

SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[1]))
for i in range(int(sys.argv[4])):
    s.sendto(b"%d" % i, (sys.argv[2], int(sys.argv[3])))
    time.sleep(0.005)  # pacing only: the veth queues stay short
s.sendto(b"end", (sys.argv[2], int(sys.argv[3])))
"""


def rx_packets(net: Net, name: str) -> int:
    return int(net.rig.exec(name, "cat", "/sys/class/net/eth0/statistics/rx_packets"))


def stream(net: Net, receivers: list[str], count: int) -> dict[str, list[str]]:
    """The sender's `count` datagrams and an end marker; what each receiver got."""
    rx: dict[str, subprocess.Popen[str]] = {}
    try:
        for h in receivers:
            p = net.rig.popen(
                h, sys.executable, "-c", RECEIVER, str(UDP_PORT), stdout=subprocess.PIPE
            )
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
            rx[h] = p
        src = net.rig.endpoints["src"].ip
        net.rig.exec("src", sys.executable, "-c", SENDER, src, GROUP, str(UDP_PORT), str(count))
        return {h: p.communicate(timeout=40)[0].split() for h, p in rx.items()}
    finally:
        for p in rx.values():
            if p.poll() is None:
                p.kill()
                p.wait()


def test_one_flow_reaches_receivers_below_two_levels_of_branch_points(net: Net) -> None:
    net.replicate("r2", "r4", "r5")
    # Groups on the two branch switches only: s1 (to s2 and s3), s3 (to s4 and s5).
    wait_until(lambda: net.buckets() == {"s1": 2, "s3": 2}, what="groups on s1 and s3")
    wait_until(lambda: all(net.ours(n) for n in net.rig.nodes), what="tree flows")
    got = stream(net, ["r2", "r4", "r5"], 100)
    want = [str(i) for i in range(100)] + ["end"]
    for h, seen in got.items():
        assert seen == want, (h, len(seen))  # each datagram once, none lost, none twice
    # One copy per link: each switch's flow counted the 101 datagrams once (the
    # userspace datapath hands its counters to the OpenFlow flows a moment later).
    nodes = list(net.rig.nodes)
    wait_until(
        lambda: all(net.packets(n) == [101] for n in nodes),
        what="each switch's flow at 101 packets",
    )

    # A receiver on s1 joins: s1's group gets a third bucket; s2..s5 are untouched.
    before = {n: net.ours(n) for n in ("s0", "s2", "s3", "s4", "s5")}
    net.replicate("r1", "r2", "r4", "r5")
    wait_until(lambda: net.buckets() == {"s1": 3, "s3": 2}, what="s1's group with r1")
    assert {n: net.ours(n) for n in before} == before
    got = stream(net, ["r1", "r2", "r4", "r5"], 20)
    assert all(seen == [str(i) for i in range(20)] + ["end"] for seen in got.values()), got

    # r5 leaves: s3 no longer branches (its group goes, its flow forwards to s4).
    net.replicate("r1", "r2", "r4")
    wait_until(lambda: net.buckets() == {"s1": 3}, what="s3's group gone")
    wait_until(lambda: not net.ours("s5"), what="s5's flow gone")
    rx5 = rx_packets(net, "r5")
    got = stream(net, ["r1", "r2", "r4"], 10)
    assert all(seen == [str(i) for i in range(10)] + ["end"] for seen in got.values()), got
    assert rx_packets(net, "r5") == rx5  # the others' copies (end included) came; none to r5

    # The intent goes: no flow and no group of it anywhere.
    net.replicate()
    wait_until(lambda: not net.buckets(), what="every group gone")
    wait_until(lambda: not any(net.ours(n) for n in net.rig.nodes), what="every flow gone")
