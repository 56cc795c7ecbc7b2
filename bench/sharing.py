"""Smart-device sharing figures (issue 5), each against a baseline measured in the same run.

- setup: share set-up time on a real testbed (the sharing service's hotel.yaml): from the
  accept call to the first datagram delivered to the shared device at its PN2 alias. Twice:
  with the SDN controller (bridges in secure mode, PNs isolated: the share's intents
  must be compiled and installed first, as `netfate demo sharing` runs it) and with
  standalone bridges (no intents). With the controller also the MTU check: a
  1500-byte DF ping and an 8 MiB TCP echo through the overlay (MSS, Mbit/s each way
  over the 100 Mbit/s links).
- tcp / udp64: a PN2 host to the shared device through the kernel path (alias,
  nft stateless rewrite, VXLAN) against plain routing between the same namespaces
  over the same links (d4 -> vp1 -> vp2 -> d2, PN1 10.1.0.0/24, PN2 10.2.0.0/24);
  iperf3, median of >= 3 alternating pairs. udp64: 64-byte IP packets per second
  received.
- python_vs_kernel: packets per second of the Python reference translator
  (parse + rewrite + RFC 1624 checksums, no I/O) against the kernel path's
  64-byte pps above.
- scale: 100 concurrent shares (kernel state only: two VP namespaces, a VXLAN, an
  nft table pair and aliases each), memory per share from MemAvailable, install
  time per share, and a ping through a sample of them. A VP also runs one Python
  process in the platform (its control socket); its RSS is reported from the
  testbed run.
- discovery: discovery to the first media byte for a control point that searches
  (M-SEARCH, MX 1: the server answers after a random delay of up to a second) and
  for one that waits for a NOTIFY alive, each through a share (PN2 -> the alias,
  VP1's ALG, its proxy on the learned port) and, the baseline, on the server's own
  LAN. Server: gerbera (libupnp) on its default port, shared without http_ports;
  control point: async-upnp-client (description, ContentDirectory Browse, GET of the
  item). Trials alternate share and baseline; the first share trial is also given
  alone (its port is learned then).

Usage: netfate bench sharing [--json] [--pairs N] [--seconds S] [--shares N] [--skip-testbed]
                             [--discovery-trials N] [--only-discovery]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _common as common  # bench/ is on the path: as a script, or netfate.benchcli.load

from netfate.agent.instances import control_call
from netfate.host import links, netns
from netfate.proto import ipv4
from netfate.services.sharing import SERVICE as SHARING
from netfate.vnf.virtual_presence import ATT, Role, Side, Translator
from netfate.vnf.virtual_presence import kernel as kp

A = ipaddress.IPv4Address
N = ipaddress.IPv4Network


# ----------------------------------------------------------------------------- the rig


class Rig:
    """d2 (10.1.0.2) - vp2 == underlay == vp1 - d4 (10.2.0.3); share 1: D2 is 10.2.0.13 in PN2."""

    def __init__(self) -> None:
        self.p = "nfb" + secrets.token_hex(2)
        self.ns = {k: f"{self.p}-{k}" for k in ("d2", "vp2", "vp1", "d4")}
        self.ifs = {k: self.p + k for k in "abcdef"}
        self.att = ATT(
            N("10.1.0.0/24"), N("10.2.0.0/24"), A("10.1.0.2"), A("10.2.0.13"),
            ((A("10.1.0.31"), A("10.2.0.3")),),
        )  # fmt: skip

    def up(self) -> None:
        ns, i = self.ns, self.ifs
        for n in ns.values():
            netns.ensure(n)
            links.set_up(n, "lo")
        links.veth_pair(i["a"], ns["d2"], i["b"], ns["vp2"])
        links.veth_pair(i["c"], ns["vp2"], i["d"], ns["vp1"], mtu=1550)
        links.veth_pair(i["e"], ns["vp1"], i["f"], ns["d4"])
        for n, k in (("d2", "a"), ("vp2", "b"), ("vp2", "c"), ("vp1", "d"), ("vp1", "e"),
                     ("d4", "f")):  # fmt: skip
            links.set_up(ns[n], i[k])
        links.add_address(ns["d2"], i["a"], "10.1.0.2/24")
        links.add_address(ns["vp2"], i["b"], "10.1.0.1/24")
        links.add_address(ns["vp2"], i["c"], "172.31.0.1/30")
        links.add_address(ns["vp1"], i["d"], "172.31.0.2/30")
        links.add_address(ns["vp1"], i["e"], "10.2.0.1/24")
        links.add_address(ns["d4"], i["f"], "10.2.0.3/24")
        links.add_route(ns["d2"], "0.0.0.0/0", "10.1.0.1")
        links.add_route(ns["d4"], "0.0.0.0/0", "10.2.0.1")
        # Plain routing, the baseline: the two VP namespaces are ordinary routers.
        links.add_route(ns["vp2"], "10.2.0.0/24", "172.31.0.2")
        links.add_route(ns["vp1"], "10.1.0.0/24", "172.31.0.1")
        common_cfg: dict[str, Any] = {"share": 1, "vi_prefixlen": 24, "underlay_mtu": 1550}
        kp.install(ns["vp2"], kp.KernelConfig(
            role=Role.EXPORTER, att=self.att, vi=i["b"], underlay_dev=i["c"],
            local_underlay="172.31.0.1", remote_underlay="172.31.0.2",
            overlay_local="10.0.0.1/30", overlay_remote="10.0.0.2", **common_cfg))  # fmt: skip
        kp.install(ns["vp1"], kp.KernelConfig(
            role=Role.IMPORTER, att=self.att, vi=i["e"], underlay_dev=i["d"],
            local_underlay="172.31.0.2", remote_underlay="172.31.0.1",
            overlay_local="10.0.0.2/30", overlay_remote="10.0.0.1", **common_cfg))  # fmt: skip
        for dst in ("10.2.0.13", "10.1.0.2"):
            netns.run_in(ns["d4"], ["ping", "-c", "1", "-W", "5", dst])

    def down(self) -> None:
        for n in self.ns.values():
            netns.remove(n)


def iperf(rig: Rig, dst: str, seconds: float, udp: bool) -> float:
    """Bits/s (TCP) or packets/s received (UDP, 64-byte IP packets) from d4 to dst."""
    port = 5201 + secrets.randbelow(1000)
    srv = netns.popen_in(rig.ns["d2"], ["iperf3", "-s", "-1", "-p", str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        argv = ["iperf3", "-c", dst, "-p", str(port), "-t", str(seconds), "-J"]
        if udp:
            argv += ["-u", "-b", "0", "-l", "36"]  # 36 + 8 UDP + 20 IP = 64 bytes
        out = None
        for _ in range(50):  # the server needs a moment to listen
            r = netns.run_in(rig.ns["d4"], argv, check=False, timeout=seconds + 30)
            try:
                doc = json.loads(r.stdout)
            except ValueError:
                doc = {"error": r.stderr}
            if r.returncode == 0 and "error" not in doc:
                out = doc
                break
            time.sleep(0.05)
        if out is None:
            raise RuntimeError(f"iperf3 to {dst} failed")
        end = out["end"]
        if udp:
            s = end["sum"]
            return float(s["packets"] - s["lost_packets"]) / float(s["seconds"])
        return float(end["sum_received"]["bits_per_second"])
    finally:
        common.stop_process(srv)


def alternating(rig: Rig, pairs: int, seconds: float, udp: bool) -> dict[str, Any]:
    vp, plain, ratios = [], [], []
    for k in range(pairs):
        order = (("vp", "10.2.0.13"), ("plain", "10.1.0.2"))
        if k % 2:
            order = order[::-1]
        got = {name: iperf(rig, dst, seconds, udp) for name, dst in order}
        vp.append(got["vp"])
        plain.append(got["plain"])
        ratios.append(got["vp"] / got["plain"])
    unit = "pps" if udp else "Gbit/s"
    scale = 1.0 if udp else 1e-9
    return {
        f"vp_{unit}": common.summary([v * scale for v in vp]),
        f"plain_{unit}": common.summary([v * scale for v in plain]),
        "ratio_median_of_pairs": round(common.percentile(ratios, 50), 3),
        "pairs": pairs,
    }


# ----------------------------------------------------------------------------- python path


def python_pps(n: int = 200_000) -> dict[str, Any]:
    att = ATT(N("10.1.0.0/24"), N("10.2.0.0/24"), A("10.1.0.2"), A("10.2.0.13"),
              ((A("10.1.0.31"), A("10.2.0.3")),))  # fmt: skip
    vp1, vp2 = Translator(Role.IMPORTER, att), Translator(Role.EXPORTER, att)
    pkt = ipv4.build_udp("10.2.0.3", "10.2.0.13", 5000, 4000, b"x" * 36)
    t0 = time.perf_counter()
    for _ in range(n):
        v = vp1.handle(Side.VI, pkt)
        vp2.handle(Side.EI, v.packet)  # type: ignore[union-attr]
    dt = time.perf_counter() - t0
    return {"packets": n, "pps_both_vps": round(n / dt), "pps_per_vp": round(2 * n / dt)}


# ----------------------------------------------------------------------------- scale


def meminfo_available_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise RuntimeError("no MemAvailable")


def scale(shares: int) -> dict[str, Any]:
    """`shares` VP pairs in namespaces, all on one PN1 LAN and one PN2 LAN (Linux bridges)."""
    p = "nfb" + secrets.token_hex(2)
    made: list[str] = []
    lan = {"1": f"{p}-lan1", "2": f"{p}-lan2"}
    hosts = {"1": f"{p}-d2", "2": f"{p}-d4"}
    try:
        for side in "12":
            for n in (lan[side], hosts[side]):
                netns.ensure(n)
                made.append(n)
            netns.run_in(lan[side], ["ip", "link", "add", "br0", "type", "bridge"])
            links.set_up(lan[side], "br0")
            links.veth_pair(f"{p}h{side}", hosts[side], f"{p}H{side}", lan[side])
            netns.run_in(lan[side], ["ip", "link", "set", f"{p}H{side}", "master", "br0"])
            links.set_up(lan[side], f"{p}H{side}")
            links.set_up(hosts[side], f"{p}h{side}")
        links.add_address(hosts["1"], f"{p}h1", "10.1.0.2/16")
        links.add_address(hosts["2"], f"{p}h2", "10.2.0.3/16")
        before = meminfo_available_kib()
        t_install: list[float] = []
        aliases: list[str] = []
        for s in range(1, shares + 1):
            att = ATT(
                N("10.1.0.0/16"), N("10.2.0.0/16"), A("10.1.0.2"), A(f"10.2.1.{s}"),
                ((A(f"10.1.1.{s}"), A("10.2.0.3")),),
            )  # fmt: skip
            t0 = time.perf_counter()
            pair = {}
            for role, side in (("vp2", "1"), ("vp1", "2")):
                n = f"{p}-{role}-{s}"
                netns.ensure(n)
                made.append(n)
                pair[role] = n
                vi, port = f"{p}{role[-1]}v{s}", f"{p}{role[-1]}p{s}"
                links.veth_pair(vi, n, port, lan[side])
                netns.run_in(lan[side], ["ip", "link", "set", port, "master", "br0", "up"])
                links.set_up(n, vi)
                links.set_up(n, "lo")
            u2, u1 = f"{p}u{s}", f"{p}U{s}"
            links.veth_pair(u2, pair["vp2"], u1, pair["vp1"], mtu=1550)
            links.set_up(pair["vp2"], u2)
            links.set_up(pair["vp1"], u1)
            links.add_address(pair["vp2"], u2, "172.31.0.1/30")
            links.add_address(pair["vp1"], u1, "172.31.0.2/30")
            for role, local, remote, ov in (("vp2", "172.31.0.1", "172.31.0.2", 0),
                                            ("vp1", "172.31.0.2", "172.31.0.1", 1)):  # fmt: skip
                kp.install(pair[role], kp.KernelConfig(
                    role=Role.EXPORTER if role == "vp2" else Role.IMPORTER, att=att, share=s,
                    vi=f"{p}{role[-1]}v{s}", vi_prefixlen=16, underlay_dev=u2 if ov == 0 else u1,
                    local_underlay=local, remote_underlay=remote,
                    overlay_local=("10.0.0.1/30", "10.0.0.2/30")[ov],
                    overlay_remote=("10.0.0.2", "10.0.0.1")[ov], underlay_mtu=1550))  # fmt: skip
            t_install.append((time.perf_counter() - t0) * 1000)
            aliases.append(f"10.2.1.{s}")
        after = meminfo_available_kib()
        sample = sorted({aliases[0], aliases[len(aliases) // 2], aliases[-1]})
        ok = [
            netns.run_in(hosts["2"], ["ping", "-c", "1", "-W", "5", a], check=False).returncode == 0
            for a in sample
        ]
        third = len(t_install) // 3 or 1
        return {
            "shares": shares,
            "kernel_memory_kib_per_share": round((before - after) / shares, 1),
            "install_ms_per_share": common.summary(t_install),
            "install_ms_first_third_median": round(common.percentile(t_install[:third], 50), 1),
            "install_ms_last_third_median": round(common.percentile(t_install[-third:], 50), 1),
            "ping_through_sample": dict(zip(sample, ok, strict=True)),
            "note": "MemAvailable delta: kernel state of 2 namespaces, 3 veth ends, a VXLAN, "
            "2 nft tables and aliases per share; noisy when other work runs on the machine",
        }
    finally:
        for n in reversed(made):
            netns.remove(n)


# ----------------------------------------------------------------------------- discovery

VP_FUNCTION = "netfate.vnf.virtual_presence.function:VirtualPresence"


class DiscoveryRig:
    """PN1 is a Linux bridge (namespace br) joining d2 (gerbera, 192.168.1.2), d3 (the
    baseline control point, 192.168.1.3) and VP2's VI (192.168.1.250); VP2 == underlay
    == VP1 - d4 (192.168.0.3, the control point through the share). D2 is 192.168.0.13
    in PN2. The VPs run as the platform runs them (python -m netfate.vnf), with the
    discovery ALG and no http_ports: VP1 learns gerbera's port."""

    def __init__(self, work: Path) -> None:
        self.p = "nfd" + secrets.token_hex(2)
        self.ns = {k: f"{self.p}-{k}" for k in ("br", "d2", "d3", "vp2", "vp1", "d4")}
        self.work = work
        self.procs: list[subprocess.Popen[Any]] = []
        self.att = ATT(
            N("192.168.1.0/24"), N("192.168.0.0/24"), A("192.168.1.2"), A("192.168.0.13"),
            ((A("192.168.1.31"), A("192.168.0.3")),),
        )  # fmt: skip

    def up(self) -> None:
        from netfate.demo import peers

        ns = self.ns
        for n in ns.values():
            netns.ensure(n)
            links.set_up(n, "lo")
        netns.run_in(ns["br"], ["ip", "link", "add", "br0", "type", "bridge"])
        links.set_up(ns["br"], "br0")
        for host, ifname, addr in (("d2", "eth0", "192.168.1.2/24"),
                                   ("d3", "eth0", "192.168.1.3/24"),
                                   ("vp2", "vi", "192.168.1.250/24")):  # fmt: skip
            port = f"{self.p}{host}"
            links.veth_pair(port, ns["br"], ifname, ns[host])
            netns.run_in(ns["br"], ["ip", "link", "set", port, "master", "br0"])
            links.set_up(ns["br"], port)
            links.set_up(ns[host], ifname)
            links.add_address(ns[host], ifname, addr)
        links.veth_pair("ul", ns["vp2"], "ul", ns["vp1"], mtu=1550)
        links.veth_pair("vi", ns["vp1"], "eth0", ns["d4"])
        for n, i in (("vp2", "ul"), ("vp1", "ul"), ("vp1", "vi"), ("d4", "eth0")):
            links.set_up(ns[n], i)
        links.add_address(ns["vp2"], "ul", "172.31.0.1/30")
        links.add_address(ns["vp1"], "ul", "172.31.0.2/30")
        links.add_address(ns["d4"], "eth0", "192.168.0.3/24")
        for h in ("d2", "d3", "d4"):
            netns.run_in(ns[h], ["ip", "route", "add", "224.0.0.0/4", "dev", "eth0"])
        common_cfg = {"att": self.att.to_dict(), "share": 9, "vi": "vi", "vi_prefixlen": 24,
                      "underlay_dev": "ul", "underlay_mtu": 1550, "alg": True}  # fmt: skip
        cfgs = {
            "vp2": {**common_cfg, "role": "vp2", "local_underlay": "172.31.0.1",
                    "remote_underlay": "172.31.0.2", "overlay_local": "10.0.0.1/30",
                    "overlay_remote": "10.0.0.2"},
            "vp1": {**common_cfg, "role": "vp1", "local_underlay": "172.31.0.2",
                    "remote_underlay": "172.31.0.1", "overlay_local": "10.0.0.2/30",
                    "overlay_remote": "10.0.0.1"},
        }  # fmt: skip
        for name, cfg in cfgs.items():
            control = str(self.work / f"{name}.sock")
            with open(self.work / f"{name}.log", "wb") as log:
                self.procs.append(netns.popen_in(ns[name], [
                    sys.executable, "-m", "netfate.vnf", VP_FUNCTION, "--instance", name,
                    "--control", control, "--config", json.dumps(cfg)],
                    stdout=log, stderr=log))  # fmt: skip
            common.wait_until(lambda c=control: Path(c + ".ready").exists(), 30, what=name)
        media = self.work / "media"
        media.mkdir()
        peers.make_tone(media / "tone.mp3", 5)
        self.procs.append(peers.start_gerbera(ns["d2"], self.work, media, "eth0"))
        (self.work / "cp.py").write_text(peers.DISCOVERY_TO_FIRST_BYTE)

    def control_point(self, mode: str, shared: bool) -> dict[str, Any]:
        host, src, via = ("d4", "192.168.0.3", "192.168.0.13") if shared else (
            "d3", "192.168.1.3", "192.168.1.2")  # fmt: skip
        r = netns.run_in(self.ns[host], [sys.executable, str(self.work / "cp.py"), mode, src,
                                         via], check=False, timeout=90)  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError(f"control point ({mode}, shared={shared}): {r.stderr[-1500:]}")
        out: dict[str, Any] = json.loads(r.stdout)
        return out

    def down(self) -> None:
        for p in reversed(self.procs):
            common.stop_process(p)
        for n in self.ns.values():
            netns.remove(n)


def discovery(trials: int) -> dict[str, Any]:
    import tempfile

    from netfate.demo import peers

    if not peers.gerbera_available():
        return {"skipped": "gerbera missing (make deps)"}
    with tempfile.TemporaryDirectory(prefix="nfd-") as tmp:
        rig = DiscoveryRig(Path(tmp))
        try:
            rig.up()
            # gerbera indexes its media after it starts: wait until the baseline finds it.
            common.wait_until(lambda: _tries(rig), 60, interval=0.5, what="gerbera's item")
            out: dict[str, Any] = {}
            for mode in ("active", "passive"):
                runs: dict[str, list[dict[str, Any]]] = {"share": [], "baseline": []}
                for k in range(trials):
                    order = [("share", True), ("baseline", False)]
                    for name, shared in order if k % 2 == 0 else order[::-1]:
                        runs[name].append(rig.control_point(mode, shared))
                fig = {name: common.summary([r["discovery_to_first_byte_ms"] for r in rs], 1)
                       for name, rs in runs.items()}  # fmt: skip
                # Active: the part after the search answer (the answer's random delay
                # aside); passive starts at the NOTIFY, so it is all of it.
                parts = {f"{name}_location_to_first_byte_ms": common.summary(
                    [r["location_to_first_byte_ms"] for r in rs], 1)
                    for name, rs in runs.items() if mode == "active"}  # fmt: skip
                out[mode] = {
                    "share_ms": fig["share"],
                    "baseline_ms": fig["baseline"],
                    "ratio_of_medians": common.ratio(
                        fig["share"]["median"], fig["baseline"]["median"]
                    ),
                    **parts,
                    "first_share_trial_ms": round(
                        runs["share"][0]["discovery_to_first_byte_ms"], 1
                    ),
                    "location_through_share": runs["share"][0]["location"],
                }
            vp1 = asyncio.run(control_call(str(rig.work / "vp1.sock"), {"op": "status"},
                                           timeout=15.0))  # fmt: skip
            out["vp1_ports"] = vp1["stats"]["ports"]
            out["trials"] = trials
            out["server"] = "gerbera (libupnp), port learned; control point async-upnp-client"
            return out
        finally:
            rig.down()


def _tries(rig: DiscoveryRig) -> bool:
    try:
        rig.control_point("active", False)
    except RuntimeError:
        return False
    return True


# ----------------------------------------------------------------------------- testbed


def testbed_setup(count: int, sdn: bool) -> dict[str, Any]:
    from netfate.demo.platform import Api
    from netfate.services.sharing import demo
    from netfate.testbed.builder import Testbed

    tb = Testbed.up(SHARING.topology("hotel.yaml"), sdn=sdn)
    try:
        assert tb.api_url
        api = Api(tb.api_url, tb.api_token)
        demo.create_pns(tb, api)
        times, rss, spawn = [], [], []
        for _ in range(count):
            sh = demo.share_and_accept(tb, api, "home", "mediaserver", "hotel")
            times.append(sh.setup_ms)
            view = api("GET", f"/sharing/shares/{sh.id}")
            for iid in (view["vp2_instance"], view["vp1_instance"]):
                inst = api("GET", f"/instances/{iid}")
                at = {t["state"]: t["at"] for t in inst["transitions"]}
                spawn.append((at["running"] - at["requested"]) * 1000)
                pid = inst["pid"]
                status = Path(f"/proc/{pid}/status").read_text()
                kib = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS"))
                rss.append(kib / 1024)
            home = demo.email(tb, "home")
            api.as_user(home)("POST", f"/sharing/shares/{sh.id}/revoke", {"by": home})
            for iid in (view["vp2_instance"], view["vp1_instance"]):
                api.wait_state(iid, "gone")
        mtu: dict[str, Any] = {}
        if sdn:
            said: list[str] = []
            sh = demo.share_and_accept(tb, api, "home", "mediaserver", "hotel")
            mbit = demo.prove_mtu(tb, sh, said.append)
            mtu = {"df_1500_byte_ping": "passes both ways", "tcp_echo_mbit_each_way": round(mbit),
                   "detail": said[-1]}  # fmt: skip
            demo.revoke(tb, api, sh, "home", said.append)
        return {
            "bridges": "secure (SDN controller, PNs isolated)" if sdn else "standalone",
            **({"mtu": mtu} if mtu else {}),
            "accept_to_first_packet_ms": common.summary(times, 1),
            "goal_ms": 500,
            "vp_instance_requested_to_running_ms": common.summary(spawn, 1),
            "vp_process_rss_mib": common.summary(rss, 1),
        }
    finally:
        tb.down()


def run(argv: list[str]) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="netfate bench sharing")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--shares", type=int, default=100)
    ap.add_argument("--setups", type=int, default=3)
    ap.add_argument("--skip-testbed", action="store_true")
    ap.add_argument("--discovery-trials", type=int, default=5)
    ap.add_argument("--only-discovery", action="store_true")
    a = ap.parse_args(argv)
    common.need_root("the sharing benchmark")
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}}
    if a.only_discovery:
        with common.sigterm_interrupts():
            out["discovery"] = discovery(a.discovery_trials)
        return out
    with common.sigterm_interrupts():
        rig = Rig()
        try:
            rig.up()
            out["tcp"] = alternating(rig, a.pairs, a.seconds, udp=False)
            out["udp64"] = alternating(rig, a.pairs, a.seconds, udp=True)
        finally:
            rig.down()
        py = python_pps()
        kernel_pps = out["udp64"]["vp_pps"]["median"]
        out["python_vs_kernel"] = {
            **py,
            "kernel_pps_64B": kernel_pps,
            "ratio_python_to_kernel": common.ratio(py["pps_both_vps"], kernel_pps),
            "note": "Python: translator only, no socket I/O (an upper bound for a userspace VP)",
        }
        out["scale"] = scale(a.shares)
        out["discovery"] = discovery(a.discovery_trials)
        if not a.skip_testbed:
            out["setup"] = testbed_setup(a.setups, sdn=True)
            out["setup_standalone"] = testbed_setup(a.setups, sdn=False)
    return out
