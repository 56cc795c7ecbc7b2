"""The NetFATE case study on a real testbed (examples/netfate.yaml): orchestrator,
agents, OVS, the portal and firewall VNFs, nftables, conntrack, RADIUS in pe1.

The scenario's check() is the test: login at cpe1 starts the firewall there, the
blocked port is blocked, a TCP connection survives the move to cpe2 (migration
with conntrack state), the blocked port stays blocked, the idle release happens,
and the tables and the timeline say so. Any failed step raises DemoFailed.
"""

from __future__ import annotations

from pathlib import Path

from netfate.services.firewall import demo
from netfate.testbed.builder import Testbed

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / demo.TOPOLOGY


def test_netfate_case_study(run_prefix: str) -> None:
    said: list[str] = []
    with Testbed.up(EXAMPLE, prefix=run_prefix) as tb:
        demo.check(tb, said.append)
    assert any(m.startswith("(c) login at cpe2: firewall migrated") for m in said)
    assert any(m.startswith("(d) idle") for m in said)
