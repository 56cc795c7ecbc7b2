"""ICMP errors through a share reach the sender's socket (quoted packet translated).

Both VPs run as the platform runs them (python -m netfate.vnf in their
namespaces) with VP2's ICMP-error tap on. A connected UDP socket learns of an
unreachable port only if the error's quoted packet matches what it sent: D2
sending to D4's alias must see "connection refused" from D4's kernel, and D4
sending to D2's alias the same from D2's kernel. Both PNs 192.168.0.0/24.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netfate.host import links, netns

ATT = {
    "pn1": "192.168.0.0/24",
    "pn2": "192.168.0.0/24",
    "shared_device": "192.168.0.2",
    "import_alias": "192.168.0.13",
    "entries": [["192.168.0.31", "192.168.0.3"]],
}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("icmp")
    p = "nft" + secrets.token_hex(2)
    ns = {k: f"{p}-{k}" for k in ("d2", "vp2", "vp1", "d4")}
    ifs = {k: p + k for k in "abcdef"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for n in ns.values():
            netns.ensure(n)
            links.set_up(n, "lo")
        links.veth_pair(ifs["a"], ns["d2"], ifs["b"], ns["vp2"])
        links.veth_pair(ifs["c"], ns["vp2"], ifs["d"], ns["vp1"], mtu=1550)
        links.veth_pair(ifs["e"], ns["vp1"], ifs["f"], ns["d4"])
        for n, k in (("d2", "a"), ("vp2", "b"), ("vp2", "c"), ("vp1", "d"), ("vp1", "e"),
                     ("d4", "f")):  # fmt: skip
            links.set_up(ns[n], ifs[k])
        links.add_address(ns["d2"], ifs["a"], "192.168.0.2/24")
        links.add_address(ns["d4"], ifs["f"], "192.168.0.3/24")
        links.add_address(ns["vp2"], ifs["c"], "172.31.0.1/30")
        links.add_address(ns["vp1"], ifs["d"], "172.31.0.2/30")
        common = {"att": ATT, "share": 4, "vi_prefixlen": 24, "underlay_mtu": 1550,
                  "icmp_tap": True}  # fmt: skip
        cfgs = {
            "vp2": {**common, "role": "vp2", "vi": ifs["b"], "underlay_dev": ifs["c"],
                    "local_underlay": "172.31.0.1", "remote_underlay": "172.31.0.2",
                    "overlay_local": "10.0.0.1/30", "overlay_remote": "10.0.0.2"},
            "vp1": {**common, "role": "vp1", "vi": ifs["e"], "underlay_dev": ifs["d"],
                    "local_underlay": "172.31.0.2", "remote_underlay": "172.31.0.1",
                    "overlay_local": "10.0.0.2/30", "overlay_remote": "10.0.0.1"},
        }  # fmt: skip
        for name, cfg in cfgs.items():
            ctl = tmp / f"{name}.sock"
            with open(tmp / f"{name}.log", "wb") as log:
                procs.append(netns.popen_in(
                    ns[name],
                    [sys.executable, "-m", "netfate.vnf",
                     "netfate.vnf.virtual_presence.function:VirtualPresence",
                     "--instance", name, "--control", str(ctl), "--config", json.dumps(cfg)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                ))  # fmt: skip
            deadline = time.monotonic() + 20
            while not Path(str(ctl) + ".ready").exists():
                assert procs[-1].poll() is None, (tmp / f"{name}.log").read_text()
                assert time.monotonic() < deadline, f"{name} not ready"
                time.sleep(0.02)
        yield ns
    finally:
        for proc in procs:  # only what this fixture started, by pid
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        for n in ns.values():
            netns.remove(n)


def _refused(ns: str, dst: str, port: int) -> bool:
    """Send on a connected UDP socket to a closed port; True if the error came back."""
    s = netns.socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        s.settimeout(5)
        s.connect((dst, port))
        for _ in range(3):
            s.send(b"anyone there?")
            try:
                s.recv(100)
            except ConnectionRefusedError:
                return True
            except TimeoutError:
                continue
    return False


def test_port_unreachable_reaches_d2_through_the_share(rig: dict[str, str]) -> None:
    netns.run_in(rig["d2"], ["ping", "-c", "1", "-W", "5", "192.168.0.31"])
    assert _refused(rig["d2"], "192.168.0.31", 9)


def test_port_unreachable_reaches_the_pn2_device(rig: dict[str, str]) -> None:
    netns.run_in(rig["d4"], ["ping", "-c", "1", "-W", "5", "192.168.0.13"])
    assert _refused(rig["d4"], "192.168.0.13", 9)
