"""`netfate experiment migration` with a small plan on the real testbed (issue 15,
section 6): one load, the three kinds, the images pre-deployed.

Outcomes whatever the machine's speed: each trial ends with the ten objects served
at pop2, the request stream saw both places serve, the whole instance moved more
bytes than the objects alone, the JSON, table and plots are written, and the
testbed is gone afterwards."""

from __future__ import annotations

import json
from pathlib import Path

from netfate.host import netns
from netfate.services.catalog.experiment import Plan, run


def test_small_plan_writes_json_table_and_plots(tmp_path: Path) -> None:
    plan = Plan(loads=(0.05,), repeat=1, predeployed=(True,), warm_s=0.5, tail_s=0.3)
    doc = run(tmp_path, plan=plan)
    by = {t["kind"]: t for t in doc["trials"]}
    assert sorted(by) == ["instance", "platform", "vo"]
    # The platform's own move: its agents' channel sent at least the objects' history
    # out of pop1's namespace (over the link: the channel lives there), and it is done.
    plat = by.pop("platform")
    assert plat["detail"]["node_after"] == "pop2", plat
    assert plat["bytes_moved"] >= sum(doc["objects_kb"]) * 1000, plat
    assert plat["downtime_ms"] > 0, plat
    assert "userspace delay emulator" in doc["emulator"] or "netem" in doc["emulator"]
    for t in by.values():
        assert t["detail"]["target_serving"] == 10, t
        assert t["user"]["by_host"]["1"] > 0 and t["user"]["by_host"]["2"] > 0, t["user"]
        assert t["user"]["learnt_moves"] == 10
    assert by["vo"]["parts"]["objects"] >= sum(doc["objects_kb"]) * 1000
    assert by["instance"]["bytes_moved"] > by["vo"]["bytes_moved"]
    assert set(by["instance"]["parts"]) == {"memory", "state"}
    assert json.loads((tmp_path / "migration.json").read_text()) == json.loads(json.dumps(doc))
    assert "| vo | pre-deployed | 1 |" in (tmp_path / "migration.md").read_text()
    for png in ("migration-time.png", "migration-downtime.png", "migration-bytes.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert netns.list_with_prefix(doc["testbed_prefix"] + "-") == []
