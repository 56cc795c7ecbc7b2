"""The chain the Virtual Presence netns tests share, and its two VPs' configurations.

    PREFIX-d2 ─a═b─ PREFIX-vp2 ─c═d─ PREFIX-vp1 ─e═f─ PREFIX-d4
    192.168.0.2/24   VI b | EI c 172.31.0.1/30   EI d 172.31.0.2/30 | VI e   192.168.0.3/24

Both PNs are 192.168.0.0/24 (the seed's overlapping example, `ATT`), or PN1 is
192.168.1.0/24 (`ATT_SPLIT`, D2 192.168.1.2): then any 192.168.1.x a PN2 host
receives is a PN1 address leaking into PN2, which `Capture` and `leaks` find. The
underlay veth (c-d) has an MTU of 1550, so the EIs get 1500 (VXLAN's 50 bytes on top).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import socket
import struct
import subprocess
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netfate.agent.instances import control_call
from netfate.host import links, netns
from netfate.proto import dns
from netns_lan import start_vnf, stop_procs

ATT = {
    "pn1": "192.168.0.0/24",
    "pn2": "192.168.0.0/24",
    "shared_device": "192.168.0.2",
    "import_alias": "192.168.0.13",
    "entries": [["192.168.0.31", "192.168.0.3"]],
}
"""The share's ATT: D2 is 192.168.0.13 in PN2, D4 is 192.168.0.31 in PN1."""
ATT_SPLIT = {
    "pn1": "192.168.1.0/24",
    "pn2": "192.168.0.0/24",
    "shared_device": "192.168.1.2",
    "import_alias": "192.168.0.13",
    "entries": [["192.168.1.31", "192.168.0.3"]],
}
"""The same share with PN1 on 192.168.1.0/24, as in issue 13's report."""
PN1_TEXT = b"192.168.1."
VP_FUNCTION = "netfate.vnf.virtual_presence.function:VirtualPresence"
NAMES = ("d2", "vp2", "vp1", "d4")


def chain_names() -> tuple[dict[str, str], dict[str, str]]:
    """A fresh run's namespace names (by NAMES) and interface names (a to f)."""
    p = "nft" + secrets.token_hex(2)
    return {k: f"{p}-{k}" for k in NAMES}, {k: p + k for k in "abcdef"}


def build_chain(ns: Mapping[str, str], ifs: Mapping[str, str], d2: str = "192.168.0.2/24") -> None:
    """The four namespaces, linked and addressed (D2 at `d2`); `remove_chain` removes
    them (also after a failure part-way)."""
    for n in ns.values():
        netns.ensure(n)
        links.set_up(n, "lo")
    links.veth_pair(ifs["a"], ns["d2"], ifs["b"], ns["vp2"])
    links.veth_pair(ifs["c"], ns["vp2"], ifs["d"], ns["vp1"], mtu=1550)
    links.veth_pair(ifs["e"], ns["vp1"], ifs["f"], ns["d4"])
    for n, k in (("d2", "a"), ("vp2", "b"), ("vp2", "c"), ("vp1", "d"), ("vp1", "e"),
                 ("d4", "f")):  # fmt: skip
        links.set_up(ns[n], ifs[k])
    links.add_address(ns["d2"], ifs["a"], d2)
    links.add_address(ns["d4"], ifs["f"], "192.168.0.3/24")
    links.add_address(ns["vp2"], ifs["c"], "172.31.0.1/30")
    links.add_address(ns["vp1"], ifs["d"], "172.31.0.2/30")


def remove_chain(ns: Mapping[str, str]) -> None:
    for n in ns.values():
        netns.remove(n)


def vp_configs(ifs: Mapping[str, str], common: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """KernelConfig dicts of VP2 (vp2) and VP1 (vp1) on the chain; `common` adds the
    share's own keys (att, share, vi_prefixlen, ...)."""
    return {
        "vp2": {**common, "role": "vp2", "vi": ifs["b"], "underlay_dev": ifs["c"],
                "local_underlay": "172.31.0.1", "remote_underlay": "172.31.0.2",
                "overlay_local": "10.0.0.1/30", "overlay_remote": "10.0.0.2"},
        "vp1": {**common, "role": "vp1", "vi": ifs["e"], "underlay_dev": ifs["d"],
                "local_underlay": "172.31.0.2", "remote_underlay": "172.31.0.1",
                "overlay_local": "10.0.0.2/30", "overlay_remote": "10.0.0.1"},
    }  # fmt: skip


def start_vps(
    ns: Mapping[str, str],
    cfgs: Mapping[str, Mapping[str, Any]],
    tmp: Path,
    procs: list[subprocess.Popen[bytes]],
) -> None:
    """Both VPs as the platform runs them (python -m netfate.vnf in their namespaces),
    each added to `procs` (for `stop_procs`) once its control socket is ready."""
    for name, cfg in cfgs.items():
        procs.append(start_vnf(ns[name], VP_FUNCTION, name, str(tmp / f"{name}.sock"), cfg,
                               tmp / f"{name}.log"))  # fmt: skip


def status(tmp: Path, name: str) -> dict[str, Any]:
    """A VP's status through its control socket (as the agent asks for it)."""
    reply: dict[str, Any] = asyncio.run(control_call(str(tmp / f"{name}.sock"),
                                                     {"op": "status"}, timeout=15.0))  # fmt: skip
    return reply


class Capture:
    """Every frame arriving on `ifname` in namespace `ns` while it runs (a packet
    socket in that namespace, read by a thread): what a PN2 host receives."""

    def __init__(self, ns: str, ifname: str) -> None:
        self.frames: list[bytes] = []
        self._stop = threading.Event()
        self._sock = netns.socket_in(ns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        self._sock.bind((ifname, 0))
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, addr = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if addr[2] != socket.PACKET_OUTGOING:
                self.frames.append(frame)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


def leaks(frames: Iterable[bytes], pn1: str = "192.168.1.0/24") -> list[str]:
    """Where a PN1 address appears in `frames`: as text anywhere in a frame (URLs,
    SDP, SSDP fields, XML), packed in an IPv4 header or an ARP packet, or in an mDNS
    A record. Empty: nothing of PN1 reached the host."""
    net = ipaddress.IPv4Network(pn1)
    prefix = str(net.network_address).rsplit(".", 1)[0].encode() + b"."
    found = []
    for i, f in enumerate(frames):
        if prefix in f:
            at = f.index(prefix)
            found.append(f"frame {i}: text {f[max(0, at - 40) : at + 20]!r}")
        etype = int.from_bytes(f[12:14], "big")
        if etype == 0x0806 and len(f) >= 42:
            for a in (f[28:32], f[38:42]):
                if ipaddress.IPv4Address(a) in net:
                    found.append(f"frame {i}: ARP for {ipaddress.IPv4Address(a)}")
        if etype != 0x0800 or len(f) < 34:
            continue
        ip = f[14:]
        for a in (ip[12:16], ip[16:20]):
            if ipaddress.IPv4Address(a) in net:
                found.append(f"frame {i}: IP header {ipaddress.IPv4Address(a)}")
        ihl = (ip[0] & 0xF) * 4
        if ip[9] == 17 and 5353 in struct.unpack_from("!HH", ip, ihl):
            with contextlib.suppress(dns.DnsError):
                for r in dns.parse(ip[ihl + 8 :]).records():
                    if isinstance(r.data, dns.Address) and r.data.ip in net:
                        found.append(f"frame {i}: mDNS record {r.data.ip}")
    return found


@dataclass
class SplitShare:
    """A share on the chain with PN1 192.168.1.0/24 (`split_share`): D2 192.168.1.2 is
    192.168.0.13 in PN2; d4 (192.168.0.3) is the PN2 host; `capture` keeps all d4
    receives; `procs` what the rig and its test started (stopped by pid)."""

    ns: dict[str, str]
    ifs: dict[str, str]
    tmp: Path
    capture: Capture | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def d4(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return netns.run_in(self.ns["d4"], list(argv), check=False, timeout=timeout)


@contextlib.contextmanager
def split_share(tmp: Path, share: int) -> Iterator[SplitShare]:
    """Both VPs with the discovery ALG and no http_ports (every port learned), the
    hosts' multicast routes, VP2's own address on its VI, and the capture on d4."""
    ns, ifs = chain_names()
    r = SplitShare(ns, ifs, tmp)
    try:
        build_chain(ns, ifs, d2="192.168.1.2/24")
        for h, k in (("d2", "a"), ("d4", "f")):
            netns.run_in(ns[h], ["ip", "route", "add", "224.0.0.0/4", "dev", ifs[k]])
        links.add_address(ns["vp2"], ifs["b"], "192.168.1.250/24")  # the instance's own
        common = {"att": ATT_SPLIT, "share": share, "vi_prefixlen": 24, "underlay_mtu": 1550,
                  "alg": True}  # fmt: skip
        start_vps(ns, vp_configs(ifs, common), tmp, r.procs)
        r.capture = Capture(ns["d4"], ifs["f"])
        yield r
    finally:
        if r.capture is not None:
            r.capture.close()
        stop_procs(reversed(r.procs))
        remove_chain(ns)
