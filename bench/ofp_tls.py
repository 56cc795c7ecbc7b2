"""OpenFlow over TLS against plain TCP: the cost of `testbed up --sdn --secure`.

Needs root and Open vSwitch. One bridge of the flows bench's rig (prefix `nfb` + 4
hex), the real controller process against a stand-in orchestrator; the same N
flows (connectivity intents) are installed and removed over plain TCP and over
mutually authenticated TLS (certificates from a CA made here, as the testbed's),
in alternating order, switching the bridge's controller target and the
controller between trials. Figure: the controller's own install time (first
flow-mod write -> barrier reply, as it logs it) and intent-change -> confirmed,
TLS over plain, as a ratio.

    python bench/ofp_tls.py [--flows 4000] [--trials 2]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from netfate import benchcli
from netfate.orchestrator.sdn.compile import compile_intents
from netfate.orchestrator.sdn.intents import BASE_COOKIE
from netfate.vnf.pki import CertificateAuthority

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test rigs
from sdn_rig import ControllerProcess, FakeOrchestrator, Rig, wait_until

# The flows bench's intents and log reading, loaded by path (benchcli.load): bench/
# on sys.path would let bench/usbip.py hide the PyPI package of that name.
_flows = benchcli.load("flows")

PORT = 6653


def run(argv: list[str]) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="bench/ofp_tls.py")
    ap.add_argument("--flows", type=int, default=4000)
    ap.add_argument("--trials", type=int, default=2)
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="nfbench-"))
    rig = Rig("nfb" + secrets.token_hex(2), controller_port=PORT)
    orch = FakeOrchestrator()
    ca = CertificateAuthority(tmp / "pki", name="bench OpenFlow CA")
    ctl_files = ca.issue("controller", usage="server", names=("127.0.0.1",))
    sw_files = ca.issue("switches", usage="client")
    ctl: ControllerProcess | None = None
    times: dict[str, list[float]] = {"plain": [], "tls": []}
    e2e: dict[str, list[float]] = {"plain": [], "tls": []}
    try:
        rig.start()
        rig.add_node("cpe1")
        rig.add_endpoint("alice", "cpe1", "10.0.0.10", plen=8)
        rig.add_endpoint("cpe1", "cpe1", "10.0.0.1", kind="local", plen=8)
        rig.vsctl("set-ssl", str(sw_files.key), str(sw_files.cert), str(sw_files.ca))
        view = rig.view()
        orch.set(view=view)
        br = rig.bridge("cpe1")
        intents = _flows._intents(args.flows)
        compiled = compile_intents(view, intents).flows["cpe1"]
        n = len([f for f in compiled if f.cookie != BASE_COOKIE])
        for trial in range(args.trials):
            for mode in ("plain", "tls") if trial % 2 == 0 else ("tls", "plain"):
                if ctl is not None:
                    ctl.stop()
                orch.set(intents=[])
                scheme = "ssl" if mode == "tls" else "tcp"
                rig.vsctl("set-controller", br, f"{scheme}:127.0.0.1:{PORT}", "--", "set",
                          "controller", br, "max_backoff=1000")  # fmt: skip
                tls = (ctl_files.cert, ctl_files.key, ctl_files.ca) if mode == "tls" else None
                ctl = ControllerProcess(
                    orch.url, PORT, rig.sw, tmp / f"ctl-{trial}-{mode}.log", ofp_tls=tls
                )
                rig.wait_connected()
                c = ctl
                wait_until(lambda c=c: _flows._confirms(c), what="base flows")  # type: ignore[misc]
                seen = len(_flows._confirms(ctl))
                t0 = time.monotonic()
                orch.set(intents=intents)
                done = wait_until(
                    lambda s=seen, c=c: [x for x in _flows._confirms(c)[s:] if x[0] >= n],  # type: ignore[misc]
                    timeout=180,
                    what=f"install over {mode}",
                )
                e2e[mode].append(time.monotonic() - t0)
                times[mode].append(done[0][2] / 1e3)
                if mode == "tls":
                    assert "TLS with switch certificate" in ctl.output(), "not over TLS"
        install = {m: statistics.median(v) for m, v in times.items()}
        change = {m: statistics.median(v) for m, v in e2e.items()}
        return {
            "benchmark": "ofp_tls",
            "load_average_1m_at_end": os.getloadavg()[0],
            "flows": n,
            "trials": args.trials,
            "install_s": {m: [round(x, 4) for x in v] for m, v in times.items()},
            "rate_flows_per_s": {m: round(n / t) for m, t in install.items()},
            "install_time_ratio_tls_over_plain": round(install["tls"] / install["plain"], 3),
            "intent_change_to_confirmed_s_median": {m: round(t, 3) for m, t in change.items()},
            "change_time_ratio_tls_over_plain": round(change["tls"] / change["plain"], 3),
            "note": "install: first flow-mod write -> barrier reply as the controller logs "
            "it; both modes on the same bridge and controller code, alternating",
        }
    finally:
        if ctl is not None:
            ctl.stop()
        orch.close()
        rig.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:]), indent=2))
