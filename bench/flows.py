"""SDN controller figures: flow installation rate and host-discovery-to-flows latency.

Needs root and Open vSwitch. Builds its own small rig (one bridge, userspace
datapath, prefix `nfb` + 4 hex) and runs the real controller process against a
stand-in orchestrator.

1. Installation rate, confirmed by barrier replies: N flows (N/4 connectivity
   intents, host <-> /24 subnet) compiled and installed by the controller
   (time from its first flow-mod write to the barrier reply, as it logs it),
   against `ovs-ofctl add-flows` of the same flows (foreign cookie, so the
   controller leaves them alone) on the same bridge, in alternating order.
2. Time from an unknown host's first packet to its flows installed: K hosts the
   view knows (by MAC) but whose access port it does not, each with an intent
   to a server. Each host sends timestamped UDP probes every 0.5 ms; the server
   records when the first one arrives. The controller re-injects the packet that
   raised the packet-in once the flows are confirmed, so the first probe itself
   normally arrives. Also reported: the controller's own packet-in -> barrier time.

    python bench/flows.py [--flows 10000] [--trials 3] [--hosts 15]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from netfate.orchestrator.sdn.compile import (
    FlowSpec,
    Output,
    SetField,
    ToController,
    ToGroup,
    compile_intents,
)
from netfate.orchestrator.sdn.intents import BASE_COOKIE, PortView, parse_intent

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test rigs
from sdn_rig import ControllerProcess, FakeOrchestrator, Rig, wait_until

PORT = 6653
CONFIRM_RE = re.compile(r"'flows_added': (\d+), 'flows_deleted': (\d+).* confirmed in ([\d.]+) ms")
DISCOVERY_RE = re.compile(r"flows installed ([\d.]+) ms after its packet-in")

_OFCTL_FIELDS = {
    "eth_type": "dl_type",
    "eth_src": "dl_src",
    "eth_dst": "dl_dst",
    "ipv4_src": "nw_src",
    "ipv4_dst": "nw_dst",
    "ip_proto": "nw_proto",
}


def to_ofctl(f: FlowSpec, cookie: int) -> str:
    match = []
    for k, v in f.match:
        name = _OFCTL_FIELDS.get(k, k)
        match.append(
            f"{name}={v:#06x}" if k == "eth_type" and isinstance(v, int) else f"{name}={v}"
        )
    acts = []
    for a in f.actions:
        if isinstance(a, Output):
            acts.append(f"output:{a.port}")
        elif isinstance(a, SetField):
            acts.append(f"set_field:{a.value}->{a.field}")
        elif isinstance(a, ToGroup):
            acts.append(f"group:{a.group_id}")
        elif isinstance(a, ToController):
            acts.append("CONTROLLER:65535")
    head = ",".join([f"cookie={cookie:#x}", f"priority={f.priority}", *match])
    return f"{head},actions={','.join(acts) or 'drop'}"


def _intents(n_flows: int) -> list[Any]:
    return [
        parse_intent(
            {
                "kind": "connectivity",
                "id": f"bench{i}",
                "a": "host:alice",
                "b": f"subnet:10.{100 + (i >> 8)}.{i & 255}.0/24@cpe1",
            }
        )
        for i in range(n_flows // 4)
    ]


def _confirms(ctl: ControllerProcess) -> list[tuple[int, int, float]]:
    return [(int(a), int(d), float(ms)) for a, d, ms in CONFIRM_RE.findall(ctl.output())]


def run(argv: list[str]) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="bench/flows.py")
    ap.add_argument("--flows", type=int, default=10000)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--hosts", type=int, default=15)
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="nfbench-"))
    rig = Rig("nfb" + secrets.token_hex(2), controller_port=PORT)
    orch = FakeOrchestrator()
    ctl: ControllerProcess | None = None
    procs: list[subprocess.Popen[str]] = []
    try:
        rig.start()
        rig.add_node("cpe1")
        rig.add_endpoint("alice", "cpe1", "10.0.0.10", plen=8)
        rig.add_endpoint("server", "cpe1", "10.0.0.5", plen=8)
        rig.add_endpoint("cpe1", "cpe1", "10.0.0.1", kind="local", plen=8)
        guests = [f"g{i}" for i in range(2 * args.hosts)]  # half without, half with background
        for i, g in enumerate(guests):
            rig.add_endpoint(g, "cpe1", f"10.0.1.{10 + i}", plen=8)
        view = rig.view()
        # The guests are known by MAC, but their ports are anonymous access ports.
        nodes = [
            n.model_copy(
                update={
                    "ports": [
                        PortView(name=p.name, ofport=p.ofport, peer=f"host:port{p.ofport}")
                        if p.peer and p.peer.removeprefix("host:") in guests
                        else p
                        for p in n.ports
                    ]
                }
            )
            for n in view.nodes
        ]
        view = view.model_copy(update={"nodes": nodes})
        orch.set(view=view)
        ctl = ControllerProcess(orch.url, PORT, rig.sw, tmp / "ctl.log")
        rig.wait_connected()
        br = rig.bridge("cpe1")
        wait_until(lambda: _confirms(ctl), what="base flows")  # type: ignore[arg-type]

        # --- 1. installation rate --------------------------------------------
        intents = _intents(args.flows)
        compiled = compile_intents(view, intents)
        specs = [f for f in compiled.flows["cpe1"] if f.cookie != BASE_COOKIE]
        flow_file = tmp / "flows.txt"
        # Same flows, foreign cookie: the controller does not touch them.
        flow_file.write_text("\n".join(to_ofctl(f, 0x1) for f in specs) + "\n")
        ours: list[float] = []
        theirs: list[float] = []
        e2e: list[float] = []
        for trial in range(args.trials):
            for who in ("netfate", "ofctl") if trial % 2 == 0 else ("ofctl", "netfate"):
                if who == "netfate":
                    seen = len(_confirms(ctl))
                    t0 = time.monotonic()
                    orch.set(intents=intents)
                    done = wait_until(
                        lambda s=seen: [c for c in _confirms(ctl)[s:] if c[0] >= len(specs)],  # type: ignore[misc]
                        timeout=120,
                        what="controller install",
                    )
                    e2e.append(time.monotonic() - t0)
                    ours.append(done[0][2] / 1e3)
                    seen = len(_confirms(ctl))
                    orch.set(intents=[])
                    wait_until(
                        lambda s=seen: [c for c in _confirms(ctl)[s:] if c[1] >= len(specs)],  # type: ignore[misc]
                        timeout=120,
                        what="controller delete",
                    )
                else:
                    t0 = time.perf_counter()
                    rig.ofctl(br, "add-flows", str(flow_file))
                    theirs.append(time.perf_counter() - t0)
                    rig.ofctl(br, "del-flows", "cookie=0x1/-1")
        n = len(specs)
        rate = n / statistics.median(ours)
        rate_ofctl = n / statistics.median(theirs)

        # --- 2. first packet -> flows installed --------------------------------
        server_ip = rig.endpoints["server"].ip
        server_mac = rig.endpoints["server"].mac
        send_code = (
            "import socket,time,sys\n"
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); g=sys.argv[1]\n"
            "t0=time.monotonic(); i=0\n"
            "while time.monotonic()-t0<0.5:\n"
            f" s.sendto(f'{{g}} {{t0}} {{i}}'.encode(),('{server_ip}',9999)); i+=1\n"
            " time.sleep(0.0005)\n"
        )

        def guest_intents(group: list[str]) -> list[Any]:
            return [
                parse_intent(
                    {"kind": "connectivity", "id": f"g-{g}", "a": f"host:{g}", "b": "host:server"}
                )
                for g in group
            ]

        def discover(group: list[str], background: list[Any]) -> dict[str, Any]:
            seen_ctl = len(DISCOVERY_RE.findall(ctl.output()))  # type: ignore[union-attr]
            seen = len(_confirms(ctl))  # type: ignore[arg-type]
            orch.set(intents=[*background, *guest_intents(group)])
            if background:
                wait_until(
                    lambda: [c for c in _confirms(ctl)[seen:] if c[0] >= len(specs)],  # type: ignore[arg-type]
                    timeout=120,
                    what="background flows",
                )
            time.sleep(2.0)  # the controller takes the intents (all pending: guests not placed)
            recv_code = (
                "import socket,time,sys\n"
                "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('0.0.0.0',9999))\n"
                "print('ready',flush=True)\nfirst={}\n"
                f"while len(first)<{len(group)}:\n"
                " d,_=s.recvfrom(200); now=time.monotonic(); g,t0,seq=d.decode().split()\n"
                " if g not in first:\n  first[g]=(now-float(t0), int(seq=='0'))\n"
                "  print(g, first[g][0], first[g][1], flush=True)\n"
            )
            rx = rig.popen("server", sys.executable, "-c", recv_code, stdout=subprocess.PIPE)
            procs.append(rx)
            assert rx.stdout is not None and rx.stdout.readline().strip() == "ready"
            for g in group:
                # A static neighbour: the first packet is the probe itself, not an ARP request.
                rig.exec(
                    g, "ip", "neigh", "replace", server_ip, "lladdr", server_mac, "dev", "eth0"
                )
                rig.exec(g, sys.executable, "-c", send_code, g)
            out, _ = rx.communicate(timeout=120)
            lat, first_itself = [], 0
            for line in out.splitlines():
                _g, secs, was_first = line.split()
                lat.append(float(secs) * 1e3)
                first_itself += int(was_first)
            ctl_side = [float(x) for x in DISCOVERY_RE.findall(ctl.output())[seen_ctl:]]  # type: ignore[union-attr]
            return {
                "hosts": len(lat),
                "intents": len(background) + len(group),
                "flows_on_switch": len(specs) if background else len(group) * 4,
                "first_packet_to_delivery_ms": sorted(round(x, 2) for x in lat),
                "first_packet_to_delivery_ms_median": round(statistics.median(lat), 3),
                "first_packet_to_delivery_ms_max": round(max(lat), 3),
                "first_packet_itself_delivered": first_itself,
                "controller_packet_in_to_barrier_ms_median": round(statistics.median(ctl_side), 3)
                if ctl_side
                else None,
                "goal_5ms_met": statistics.median(lat) < 5.0,
            }

        small = discover(guests[: len(guests) // 2], [])
        large = discover(guests[len(guests) // 2 :], intents)

        return {
            "benchmark": "flows",
            "load_average_1m_at_end": os.getloadavg()[0],
            "flows": n,
            "trials": args.trials,
            "install_s_netfate": [round(x, 4) for x in ours],
            "install_s_ofctl": [round(x, 4) for x in theirs],
            "rate_flows_per_s_netfate": round(rate),
            "rate_flows_per_s_ofctl": round(rate_ofctl),
            "ratio_vs_ofctl": round(rate / rate_ofctl, 3),
            "goal_rate_2000_met": rate >= 2000,
            "goal_half_ofctl_met": rate >= 0.5 * rate_ofctl,
            "intent_change_to_confirmed_s_median": round(statistics.median(e2e), 3),
            "note_install": "netfate: first flow-mod write -> barrier reply, as the controller "
            "logs it; ofctl: wall time of `ovs-ofctl add-flows` of the same flows",
            "discovery_few_intents": small,
            "discovery_with_background_flows": large,
        }
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if ctl is not None:
            ctl.stop()
        orch.close()
        rig.close()


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:]), indent=2))
