"""The chain the Virtual Presence netns tests share, and its two VPs' configurations.

    PREFIX-d2 ─a═b─ PREFIX-vp2 ─c═d─ PREFIX-vp1 ─e═f─ PREFIX-d4
    192.168.0.2/24   VI b | EI c 172.31.0.1/30   EI d 172.31.0.2/30 | VI e   192.168.0.3/24

Both PNs are 192.168.0.0/24 (the seed's overlapping example). The underlay veth
(c-d) has an MTU of 1550, so the EIs get 1500 (VXLAN's 50 bytes on top).
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from netfate.host import links, netns
from netns_lan import start_vnf

ATT = {
    "pn1": "192.168.0.0/24",
    "pn2": "192.168.0.0/24",
    "shared_device": "192.168.0.2",
    "import_alias": "192.168.0.13",
    "entries": [["192.168.0.31", "192.168.0.3"]],
}
"""The share's ATT: D2 is 192.168.0.13 in PN2, D4 is 192.168.0.31 in PN1."""
VP_FUNCTION = "netfate.vnf.virtual_presence.function:VirtualPresence"
NAMES = ("d2", "vp2", "vp1", "d4")


def chain_names() -> tuple[dict[str, str], dict[str, str]]:
    """A fresh run's namespace names (by NAMES) and interface names (a to f)."""
    p = "nft" + secrets.token_hex(2)
    return {k: f"{p}-{k}" for k in NAMES}, {k: p + k for k in "abcdef"}


def build_chain(ns: Mapping[str, str], ifs: Mapping[str, str]) -> None:
    """The four namespaces, linked and addressed; `remove_chain` removes them (also
    after a failure part-way)."""
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
