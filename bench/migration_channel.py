"""A migration over the agents' channel across the emulated link (now) vs over the
root namespace's loopback (before), in the same run (issue 15, section 5).

On the demo testbed (cpe1 -- pe1: 100 Mbit/s, 5 ms each way; delay by the userspace
emulator where the kernel has no netem) a VO host with the paper's ten objects
(8-78 KB of history each; `--scale` multiplies them) migrates between cpe1 and pe1,
back and forth. Between blocks of `--per-block` moves both agents are restarted with
the other channel (they adopt their instances):

    links     --migration-netns <node's namespace> --listen <node's transit address>:0
              (what the testbed starts: agent/channel.py)
    loopback  --listen 127.0.0.1:0 in the root namespace (what it started before)

Figures per channel: the orchestrator's migration time (requested to done) and the
agents' downtime (the source's freeze to the target's activation), with the ratios
links / loopback. The difference is what the link's delay (one round trip per request
of the protocol: snapshot, freeze, release) and its rate add.

    netfate bench migration_channel --json [--blocks 2] [--per-block 3] [--scale 1]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import Any

from netfate.demo.platform import Api
from netfate.host import proc as procs

PAIR = ("cpe1", "pe1")
SIZES_KB = [round(8 + k * 70 / 9) for k in range(10)]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="netfate bench migration_channel", description=__doc__.split("\n")[0]
    )
    p.add_argument("--blocks", type=int, default=2, help="blocks per channel, alternating")
    p.add_argument("--per-block", type=int, default=3, help="migrations per block")
    p.add_argument("--scale", type=int, default=1, help="multiply the objects' history")
    p.add_argument("--json", action="store_true")
    p.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)


def _c() -> Any:
    import importlib.util
    from pathlib import Path

    key = "netfate_bench__common"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, Path(__file__).with_name("_common.py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[key] = mod
    spec.loader.exec_module(mod)
    return mod


def channel_argv(argv: list[str], mode: str, ns: str, transit: str) -> list[str]:
    """An agent's command line with the channel of `mode` (its other options kept)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--migration-netns", "--listen"):
            skip = True
            continue
        out.append(arg)
    if mode == "links":
        return [*out, "--migration-netns", ns, "--listen", f"{transit}:0"]
    return [*out, "--listen", "127.0.0.1:0"]


def switch_agents(tb: Any, api: Api, mode: str) -> None:
    """Restart both agents with the channel of `mode`; wait until they registered it."""
    for node in PAIR:
        role = f"agent:{node}"
        ref = next(r for r in tb.state.process_refs() if r.role == role and procs.alive(r))
        argv = channel_argv(
            procs.cmdline(ref), mode, tb.netns_of(node), str(tb.state.nodes[node]["transit_ip"])
        )
        os.kill(ref.pid, signal.SIGTERM)  # the pid the testbed started (or we did)
        _c().wait_until(lambda r=ref: not procs.alive(r), 30.0, 0.05, f"{role} to stop")
        log = tb.state.dir / "logs" / f"agent-{node}.{mode}.log"
        with open(log, "ab") as f:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                 start_new_session=True)  # fmt: skip
        tb.state.add_process(procs.ref(p.pid, role=role))  # so tb.down() stops it

    def registered() -> bool:
        nodes = {n["name"]: n for n in api("GET", "/nodes")}
        want = "127.0.0.1:" if mode == "loopback" else ""
        return all(
            nodes[n]["status"] == "up"
            and str(nodes[n]["endpoint"]).startswith(
                want or str(tb.state.nodes[n]["transit_ip"]) + ":"
            )
            for n in PAIR
        )

    _c().wait_until(registered, 60.0, 0.2, f"agents registered with the {mode} channel")


def migrate(api: Api, iid: str) -> dict[str, Any]:
    node = api("GET", f"/instances/{iid}")["node"]
    target = PAIR[1] if node == PAIR[0] else PAIR[0]
    mid = int(api("POST", f"/instances/{iid}/migrate", {"node": target})["id"])
    m = api.wait_migration(iid, mid, timeout=120.0)
    api.wait_state(iid, "running", timeout=60.0)
    return m


def run(argv: list[str]) -> dict[str, Any]:
    a = parse_args(argv)
    c = _c()
    c.need_root("the migration channel benchmark (testbed)")
    from pathlib import Path

    from netfate.testbed.builder import Testbed

    examples = Path(__file__).resolve().parents[1] / "examples"
    tb = Testbed.up(examples / "demo.yaml", prometheus=False)
    out: dict[str, Any] = {"benchmark": "migration_channel", "emulator": tb.emulator}
    lk = next(x for x in tb.topology.links if {x.a, x.b} == set(PAIR))
    out["link"] = {"rate_bps": lk.rate_bps, "delay_us_each_way": lk.delay_us}
    figures: dict[str, dict[str, list[float]]] = {
        m: {"migration_ms": [], "downtime_ms": [], "state_bytes": []} for m in ("links", "loopback")
    }
    try:
        assert tb.api_url
        api = Api(tb.api_url, tb.api_token)
        objects = [
            {"vo": k, "user": "ann", "preload": kb * 1024 * a.scale}
            for k, kb in enumerate(SIZES_KB)
        ]
        body = {"descriptor": "vo-host", "node": PAIR[0], "config": {"objects": objects}}
        iid = str(api("POST", "/instances", body)["id"])
        api.wait_state(iid, "running", timeout=60.0)
        out["objects_bytes"] = sum(o["preload"] for o in objects)
        migrate(api, iid)  # warm both nodes (first start of the function at pe1)
        mode = "links"  # the testbed's own channel first
        for block in range(2 * a.blocks):
            if block:
                mode = "loopback" if mode == "links" else "links"
                switch_agents(tb, api, mode)
            for _ in range(a.per_block):
                m = migrate(api, iid)
                figures[mode]["migration_ms"].append((m["finished_at"] - m["started_at"]) * 1e3)
                figures[mode]["downtime_ms"].append(float(m["downtime_ms"]))
                if a.verbose:
                    print(f"{mode}: {figures[mode]['migration_ms'][-1]:.1f} ms, "
                          f"downtime {m['downtime_ms']} ms", file=sys.stderr)  # fmt: skip
        api("DELETE", f"/instances/{iid}")
        api.wait_state(iid, "gone", timeout=60.0)
    finally:
        out["teardown_problems"] = tb.down()
    for mode, f in figures.items():
        out[mode] = {k: c.summary(v, 2) for k, v in f.items() if v}
    for key in ("migration_ms", "downtime_ms"):
        out[f"ratio_{key}_links_vs_loopback"] = c.ratio(
            out["links"][key]["median"], out["loopback"][key]["median"]
        )
    out["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return out
