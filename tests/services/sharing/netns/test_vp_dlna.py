"""A shared DLNA media server with real third-party software on both ends (issue 5, item 6).

    d2: minidlnad (Debian) ── VP2 ══ VXLAN ══ VP1 ── d4: async-upnp-client (PyPI)
    both PNs 192.168.0.0/24 (the seed's example); the server is 192.168.0.13 in PN2

Both VPs run as the platform runs them (python -m netfate.vnf inside their
namespaces, configured by a KernelConfig dict). The control point in PN2
discovers the server by SSDP M-SEARCH, reads its description, browses its
ContentDirectory and fetches the media file; every URL it is given must name
the alias (in this overlapping case the server's own 192.168.0.2 would be
nobody in PN2), and the fetched bytes must be the file's. mDNS A records of the
server are rewritten the same way.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from netfate.demo import peers
from netfate.host import links, netns
from netfate.services.sharing.demo import CONTROL_POINT
from netns_lan import stop_procs
from vp_rig import ATT, build_chain, chain_names, remove_chain, start_vps, vp_configs

if shutil.which("minidlnad") is None:
    pytest.skip("minidlnad missing (apt-get install minidlna)", allow_module_level=True)
pytest.importorskip("async_upnp_client")


@dataclass
class Rig:
    ns: dict[str, str]
    ifs: dict[str, str]
    tmp: Path
    media_sha: str
    procs: list[subprocess.Popen[bytes]]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("dlna")
    ns, ifs = chain_names()
    r = Rig(ns, ifs, tmp, "", [])
    try:
        build_chain(ns, ifs)
        for h, k in (("d2", "a"), ("d4", "f")):
            netns.run_in(ns[h], ["ip", "route", "add", "224.0.0.0/4", "dev", ifs[k]])
        # VP2's own address on the VI (the instance's, on the testbed): the ALG's HTTP
        # connections are masqueraded to it, and it must not be an alias.
        links.add_address(ns["vp2"], ifs["b"], "192.168.0.250/24")
        common = {"att": ATT, "share": 3, "vi_prefixlen": 24, "underlay_mtu": 1550,
                  "alg": True, "http_ports": [8200]}  # fmt: skip
        start_vps(ns, vp_configs(ifs, common), tmp, r.procs)
        media = tmp / "media"
        media.mkdir()
        r.media_sha = hashlib.sha256(peers.make_tone(media / "tone.mp3")).hexdigest()
        (tmp / "db").mkdir()
        conf = tmp / "minidlna.conf"
        conf.write_text(
            f"media_dir=A,{media}\nport=8200\nnetwork_interface={ifs['a']}\n"
            f"friendly_name=netfate-nas\ndb_dir={tmp / 'db'}\nlog_dir={tmp}\ninotify=no\n"
            "notify_interval=5\n"
        )
        log = open(tmp / "minidlna.out", "wb")  # noqa: SIM115 - handed to the child
        r.procs.append(
            netns.popen_in(
                ns["d2"],
                ["minidlnad", "-f", str(conf), "-d", "-P", str(tmp / "minidlna.pid")],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        log.close()
        yield r
    finally:
        stop_procs(reversed(r.procs))  # only what this fixture started, by pid
        remove_chain(ns)


def test_control_point_in_pn2_discovers_browses_and_fetches(rig: Rig) -> None:
    script = rig.tmp / "cp.py"
    script.write_text(CONTROL_POINT)
    out = None
    for _ in range(10):  # minidlna indexes the media dir after it starts: wait for the item
        argv = [sys.executable, str(script), "192.168.0.3", "192.168.0.13"]
        proc = netns.run_in(rig.ns["d4"], argv, check=False, timeout=60)
        if proc.returncode == 0:
            out = json.loads(proc.stdout)
            break
        time.sleep(0.5)
    assert out is not None, (rig.tmp / "minidlna.out").read_text()[-1500:] + proc.stderr[-3000:]
    assert out["locations"] == ["http://192.168.0.13:8200/rootDesc.xml"] == [out["used"]]
    assert out["name"] == "netfate-nas"
    assert out["url"].startswith("http://192.168.0.13:8200/MediaItems/")
    assert out["sha"] == rig.media_sha


def test_mdns_a_record_of_the_device_is_rewritten(rig: Rig) -> None:
    rx = netns.socket_in(rig.ns["d4"], socket.AF_INET, socket.SOCK_DGRAM)
    tx = netns.socket_in(rig.ns["d2"], socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        rx.bind(("0.0.0.0", 5353))
        mreq = socket.inet_aton("224.0.0.251") + socket.inet_aton("192.168.0.3")
        rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        rx.settimeout(5)
        tx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tx.bind(("192.168.0.2", 5353))
        name = b"\x03nas\x05local\x00"
        msg = struct.pack("!HHHHHH", 0, 0x8400, 0, 1, 0, 0) + name
        msg += struct.pack("!HHIH", 1, 0x8001, 120, 4) + socket.inet_aton("192.168.0.2")
        tx.sendto(msg, ("224.0.0.251", 5353))
        while True:
            data, peer = rx.recvfrom(2000)
            if data.startswith(msg[:12]) and name in data:
                break
    assert peer[0] == "192.168.0.13"
    assert data.endswith(socket.inet_aton("192.168.0.13")) and len(data) == len(msg)
