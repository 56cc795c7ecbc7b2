"""`netfate experiment usbip --quick` on the real testbed (issue 6 item 7).

Checks what must hold whatever the machine's speed: every setting measured,
the data read back equals what was written, the emulated delays are a floor
under the measured RTTs, the table and the plots are written, and the testbed
is gone afterwards.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from netfate.host import netns
from netfate.services.usbip.experiment import QUICK, run


def test_quick_experiment_writes_tables_and_plots(tmp_path: Path) -> None:
    doc = run(tmp_path, plan=replace(QUICK, samples=20))
    by = {s["name"]: s for s in doc["settings"]}
    assert list(by) == ["local", "same-network", "30km", "500km"]
    for s in by.values():
        assert s["verified"], s["name"]
        assert s["write_MBps"] > 0 and s["read_MBps"] > 0
        rtt = s["rtt_ms"]
        assert len(rtt["samples"]) == 20
        assert rtt["min"] <= rtt["p50"] <= rtt["max"]
    # the emulated one-way delays, both ways, are a floor under the ping/pong RTT
    assert by["30km"]["rtt_ms"]["min"] >= 20.0
    assert by["500km"]["rtt_ms"]["min"] >= 40.0
    assert by["local"]["paper"]["write_MBps"] == 7.34

    md = (tmp_path / "hrh.md").read_text()
    assert "| 30km | Madrid-Alcala |" in md and "(74.1)" in md
    assert json.loads((tmp_path / "hrh.json").read_text()) == doc
    for png in ("hrh-throughput.png", "hrh-rtt-series.png", "hrh-rtt-pdf.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert netns.list_with_prefix(doc["testbed_prefix"] + "-") == []  # the testbed is gone
