"""Throughput through a steering intent vs OVS NORMAL on the same hosts, and the switch path.

Needs root, Open vSwitch and iperf3. Rig (prefix `nfb` + 4 hex): cpe1 - pe,
client alice and a one-armed router instance fw1 on cpe1, server on pe.

- steer:  the controller installs `steering alice -> [fw1] -> server`; every
          packet crosses the userspace datapath twice (alice -> fw1, fw1 -> server)
          and fw1's kernel forwards it.
- normal: controller stopped, both bridges hold one `actions=NORMAL` flow
          (secure mode keeps it), alice -> server direct.
- direct: the controller installs `connectivity alice <-> server` (direct path,
          OpenFlow flows): separates "flows vs NORMAL" from "two passes".
Each round measures (steer, normal) under OVS userspace TSO off (tx checksum
offload off in the namespaces: the testbed's default) and on
(`other_config:userspace-tso-enable=true`, offloads on: `testbed up --tso`);
rounds alternate the order of the two configurations and of steer and normal.
Medians are reported with every run, next to the kernel reference (a veth pair
between two namespaces) in the same run.

With `--afxdp` a third configuration runs in the same rounds: the endpoints' ports
become AF_XDP ports (`type=afxdp`, generic XDP on the veths) polled by one PMD
thread on the second core (`pmd-cpu-mask=0x2`), the datapath OVS offers besides
the main thread's recvmmsg/sendmsg. It tells whether the second crossing's cost is
the main thread's I/O (then a polling thread would close the gap) or the crossing
itself (then it would not).

    python bench/steering.py [--pairs 3] [--seconds 4] [--afxdp]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from netfate.orchestrator.sdn.intents import cookie_for, parse_intent

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test rigs
from sdn_rig import (
    ControllerProcess,
    FakeOrchestrator,
    Rig,
    sh,
    wait_until,
)

PORT = 6653
STEER = {"kind": "steering", "id": "steer", "host": "alice", "chain": ["fw1"], "to": "host:server"}
DIRECT = {"kind": "connectivity", "id": "direct", "a": "host:alice", "b": "host:server"}


def iperf(client_ns: str, server_ns: str, server_ip: str, seconds: float) -> float:
    """TCP throughput client -> server in Gbit/s (iperf3, one stream)."""
    srv = subprocess.Popen(
        ["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-p", "5201"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        out = sh(
            "ip",
            "netns",
            "exec",
            client_ns,
            "iperf3",
            "-c",
            server_ip,
            "-p",
            "5201",
            "-t",
            str(seconds),
            "-J",
            timeout=seconds + 30,
        )
        data = json.loads(out)
        return float(data["end"]["sum_received"]["bits_per_second"]) / 1e9
    finally:
        try:
            srv.wait(5)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()


def run(argv: list[str]) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="bench/steering.py")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--afxdp", action="store_true", help="also AF_XDP ports under a PMD thread")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="nfbench-"))
    rig = Rig("nfb" + secrets.token_hex(2), controller_port=PORT)
    orch = FakeOrchestrator()
    ctl: ControllerProcess | None = None
    kern: list[str] = []
    try:
        rig.start()
        rig.add_node("cpe1")
        rig.add_node("pe")
        rig.link("cpe1", "pe")
        alice = rig.add_endpoint("alice", "cpe1", "10.0.0.10")
        rig.add_endpoint("fw1", "cpe1", "10.0.0.101", kind="instance")
        server = rig.add_endpoint("server", "pe", "10.0.0.5")
        orch.set(view=rig.view(), intents=[parse_intent(STEER)])
        brs = [rig.bridge("cpe1"), rig.bridge("pe")]

        def start_controller() -> ControllerProcess:
            c = ControllerProcess(orch.url, PORT, rig.sw, tmp / "ctl.log")
            rig.wait_connected()
            return c

        def steer_ready() -> bool:
            c = cookie_for("steer")
            return any(f"cookie={c:#x}," in f for f in rig.flows("cpe1"))

        def to_normal() -> None:
            for br in brs:
                rig.ofctl(br, "del-flows")
                rig.ofctl(br, "add-flow", "priority=0,actions=NORMAL")

        def fw_rx() -> int:
            return int(rig.exec("fw1", "cat", "/sys/class/net/eth0/statistics/rx_packets"))

        endpoint_ports = [
            p.name
            for ports in rig.node_ports.values()
            for p in ports
            if not p.peer.startswith("node:")
        ]

        def set_config(cfg: str) -> None:
            """`off`, `tso` or `afxdp` (TSO off, endpoint ports AF_XDP under a PMD)."""
            on = cfg == "tso"
            flag = "true" if on else "false"
            rig.vsctl("set", "Open_vSwitch", ".", f"other_config:userspace-tso-enable={flag}")
            if args.afxdp:
                if cfg == "afxdp":
                    rig.vsctl("set", "Open_vSwitch", ".", "other_config:pmd-cpu-mask=0x2")
                else:
                    rig.vsctl("remove", "Open_vSwitch", ".", "other_config", "pmd-cpu-mask")
                for port in endpoint_ports:
                    if cfg == "afxdp":
                        rig.vsctl(
                            "set", "interface", port, "type=afxdp", "options:xdp-mode=generic"
                        )
                    else:
                        rig.vsctl("set", "interface", port, 'type=""')
                        rig.vsctl("remove", "interface", port, "options", "xdp-mode")
            rig.restart_vswitchd()  # the options are read at start-up
            rig.wait_connected() if ctl is not None else time.sleep(0.5)
            v = "on" if on else "off"
            for ep in ("alice", "fw1", "server"):
                rig.exec(ep, "ethtool", "-K", "eth0", "tx", v, "tso", v, "sg", v, check=False)

        def measure(mode: str) -> tuple[float, int | None]:
            """One iperf run alice -> server; with steering also the frames fw1 took."""
            nonlocal ctl
            if mode == "steer":
                if ctl is None:
                    ctl = start_controller()
                wait_until(steer_ready, what="steering flows")
                wait_until(lambda: rig.ping("alice", "server"), what="ping through fw1")
                before = fw_rx()
                gbps = iperf(alice.netns, server.netns, server.ip, args.seconds)
                return gbps, fw_rx() - before
            if ctl is not None:
                ctl.stop(signal.SIGKILL)
                ctl = None
            to_normal()
            wait_until(lambda: rig.ping("alice", "server"), what="ping with NORMAL")
            return iperf(alice.netns, server.netns, server.ip, args.seconds), None

        def summary(label: str, runs: dict[str, list[float]], crossed: list[int]) -> dict[str, Any]:
            ms, mn = statistics.median(runs["steer"]), statistics.median(runs["normal"])
            return {
                "steer_gbps": [round(x, 3) for x in runs["steer"]],
                "normal_gbps": [round(x, 3) for x in runs["normal"]],
                "steer_median_gbps": round(ms, 3),
                "normal_median_gbps": round(mn, 3),
                "ratio_steer_vs_normal": round(ms / mn, 3),
                "ratio_steer_vs_normal_per_round": [
                    round(a / b, 3) for a, b in zip(runs["steer"], runs["normal"], strict=True)
                ],
                "packets_crossing_fw1_per_steer_run": crossed,
                "config": label,
            }

        ctl = start_controller()
        wait_until(steer_ready, what="steering flows")
        wait_until(lambda: rig.ping("alice", "server"), what="ping through fw1")

        # Direct path with controller flows (for the breakdown: flows vs NORMAL), TSO off.
        orch.set(intents=[parse_intent(DIRECT)])
        wait_until(
            lambda: any(f"cookie={cookie_for('direct'):#x}," in f for f in rig.flows("pe")),
            what="direct flows",
        )
        wait_until(lambda: rig.ping("alice", "server"))
        direct = [iperf(alice.netns, server.netns, server.ip, args.seconds) for _ in range(2)]
        orch.set(intents=[parse_intent(STEER)])

        # Rounds alternate the configuration (off, on / on, off) and, inside each,
        # the order of steer and normal: drift in the machine's load hits both alike.
        configs = ["off", "tso"] + (["afxdp"] if args.afxdp else [])
        runs: dict[str, dict[str, list[float]]] = {c: {"steer": [], "normal": []} for c in configs}
        crossed: dict[str, list[int]] = {c: [] for c in configs}
        order: list[str] = []
        for i in range(args.pairs):
            for cfg in configs if i % 2 == 0 else configs[::-1]:
                set_config(cfg)
                for mode in ("steer", "normal") if i % 2 == 0 else ("normal", "steer"):
                    gbps, frames = measure(mode)
                    runs[cfg][mode].append(gbps)
                    if frames is not None:
                        crossed[cfg].append(frames)
                    order.append(f"{cfg}:{mode}")
        tso_off = summary(
            "userspace TSO off, tx checksum offload off (the testbed's default)",
            runs["off"],
            crossed["off"],
        )
        tso_on = summary(
            "userspace TSO on, offloads on in the namespaces (testbed --tso)",
            runs["tso"],
            crossed["tso"],
        )
        afxdp = (
            summary(
                "AF_XDP endpoint ports (generic XDP) under one PMD thread on core 1, TSO off",
                runs["afxdp"],
                crossed["afxdp"],
            )
            if args.afxdp
            else None
        )
        if args.afxdp:
            set_config("off")  # leave the rig as built (its close removes it anyway)
        log = (rig.work / "ovs-vswitchd.log").read_text(errors="replace")
        tso_log = sorted({ln.split("|")[-1] for ln in log.splitlines() if "TCP Segmentation" in ln})
        if ctl is not None:
            ctl.stop(signal.SIGKILL)
            ctl = None

        k1, k2 = f"{rig.prefix}-k1", f"{rig.prefix}-k2"
        for ns in (k1, k2):
            sh("ip", "netns", "add", ns)
            kern.append(ns)
        sh("ip", "link", "add", "eth0", "netns", k1, "type", "veth", "peer", "eth0", "netns", k2)
        for ns, ip in ((k1, "10.9.0.1/24"), (k2, "10.9.0.2/24")):
            sh("ip", "-n", ns, "addr", "add", ip, "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        kernel = [iperf(k1, k2, "10.9.0.2", args.seconds) for _ in range(args.pairs)]
        km = statistics.median(kernel)
        return {
            "benchmark": "steering",
            "order": order,
            "load_average_1m_at_end": os.getloadavg()[0],
            "seconds_per_run": args.seconds,
            "tso_off": tso_off,
            "tso_on": tso_on,
            **({"afxdp": afxdp} if afxdp is not None else {}),
            "goal_ratio_0_9_met_tso_off": tso_off["ratio_steer_vs_normal"] >= 0.9,
            "goal_ratio_0_9_met_tso_on": tso_on["ratio_steer_vs_normal"] >= 0.9,
            "direct_flows_gbps_tso_off": [round(x, 3) for x in direct],
            "ratio_direct_flows_vs_normal_tso_off": round(
                statistics.median(direct) / tso_off["normal_median_gbps"], 3
            ),
            "switch_path_normal_gbps_tso_off": tso_off["normal_median_gbps"],
            "switch_path_normal_gbps_tso_on": tso_on["normal_median_gbps"],
            "tso_gain": round(tso_on["normal_median_gbps"] / tso_off["normal_median_gbps"], 2),
            "ovs_log_tso": tso_log,
            "kernel_veth_gbps": [round(x, 3) for x in kernel],
            "kernel_veth_median_gbps": round(km, 3),
            "switch_path_vs_kernel_tso_off": round(tso_off["normal_median_gbps"] / km, 3),
            "switch_path_vs_kernel_tso_on": round(tso_on["normal_median_gbps"] / km, 3),
        }
    finally:
        if ctl is not None:
            ctl.stop()
        orch.close()
        for ns in kern:
            sh("ip", "netns", "del", ns, check=False)
        rig.close()


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:]), indent=2))
