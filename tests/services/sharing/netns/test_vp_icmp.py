"""ICMP errors through a share reach the sender's socket (quoted packet translated).

Both VPs run as the platform runs them (python -m netfate.vnf in their
namespaces) with VP2's ICMP-error tap on. A connected UDP socket learns of an
unreachable port only if the error's quoted packet matches what it sent: D2
sending to D4's alias must see "connection refused" from D4's kernel, and D4
sending to D2's alias the same from D2's kernel. Both PNs 192.168.0.0/24.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import pytest

from netfate.host import netns
from netns_lan import stop_procs
from vp_rig import ATT, build_chain, chain_names, remove_chain, start_vps, vp_configs


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("icmp")
    procs: list[subprocess.Popen[bytes]] = []
    ns, ifs = chain_names()
    try:
        build_chain(ns, ifs)
        common = {"att": ATT, "share": 4, "vi_prefixlen": 24, "underlay_mtu": 1550,
                  "icmp_tap": True}  # fmt: skip
        start_vps(ns, vp_configs(ifs, common), tmp, procs)
        yield ns
    finally:
        stop_procs(procs)  # only what this fixture started, by pid
        remove_chain(ns)


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
