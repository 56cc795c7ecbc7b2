"""`netfate demo usbip --check` (services/usbip/topologies/hrh.yaml) exits 0: the
Home Radio Head scenario end to end.

Orchestrator, agents, the HRH function on the HRH node, the climate function
placed at the ISP by the delay-bound policy, `cat` of its pty, files copied to
and from the pendrive over the mutual-TLS tunnel (services/usbip/demo.py).
"""

from __future__ import annotations

import subprocess
import sys

from netfate.host import netns


def test_demo_usbip_check_exits_zero() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "netfate", "demo", "usbip", "--check"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "demo check passed" in out
    assert "hrh-alarm (bound 15 ms) would run on hrh1" in out
    assert "cat ttyHRH at the ISP: temp=" in out
    assert "now holds ['family-photo.jpg', 'temperatures.log']" in out
    assert "cannot reach the HRH: no tunnel yet" in out
    # the service's tunnels: the climate function's closes with it, the ISP's on request
    assert "tunnel hrh1-climate closed by the service with the climate function" in out
    assert "tunnel hrh1 closed: the ISP's edge cannot reach the HRH again" in out
    assert "everything removed" in out
    prefix = out.split("as run ", 1)[1].split()[0]
    assert netns.list_with_prefix(prefix + "-") == []
