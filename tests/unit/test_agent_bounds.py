"""What an agent keeps about instances stays bounded by the instances it runs: the
logs of the KEEP_LOGS instances that went last (older ones are removed, a live
instance's never), and CPU figures for the instances it has now only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from netfate.agent.agent import Agent, AgentConfig
from netfate.agent.instances import KEEP_LOGS, NodeContext, prune_logs
from netfate.host.ovs import Vsctl


def _log(d: Path, iid: str, mtime: float, live: bool = False) -> None:
    p = d / f"{iid}.log"
    p.write_text("output\n")
    os.utime(p, (mtime, mtime))
    if live:
        (d / f"{iid}.json").write_text("{}")


def test_only_the_newest_logs_of_gone_instances_stay(tmp_path: Path) -> None:
    for i in range(6):
        _log(tmp_path, f"i-gone{i}", 1000.0 + i)
    _log(tmp_path, "i-live", 1.0, live=True)  # the oldest of all, but running
    (tmp_path / "zygote.log").write_text("the fork server's own log\n")
    removed = prune_logs(tmp_path, keep=2)
    assert sorted(removed) == [f"i-gone{i}.log" for i in range(4)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "i-gone4.log",
        "i-gone5.log",
        "i-live.json",
        "i-live.log",
        "zygote.log",
    ]
    assert prune_logs(tmp_path, keep=2) == []


def test_the_default_keeps_some_history(tmp_path: Path) -> None:
    for i in range(KEEP_LOGS + 3):
        _log(tmp_path, f"i-{i:08x}", 1000.0 + i)
    assert len(prune_logs(tmp_path)) == 3
    assert len(list(tmp_path.glob("i-*.log"))) == KEEP_LOGS
    assert prune_logs(tmp_path / "missing") == []


class _Running:
    def __init__(self, cpu_s: float) -> None:
        self.cpu_s = cpu_s

    def usage(self) -> dict[str, float]:
        return {"cpu_s": self.cpu_s, "rss_mb": 10.0}


def test_cpu_figures_only_for_instances_it_runs(tmp_path: Path) -> None:
    ctx = NodeContext("cpe1", "nft0", tmp_path, "br0", Vsctl("unix:/nonexistent"))
    agent = Agent(AgentConfig(ctx=ctx, orchestrator="http://127.0.0.1:9"))
    running: dict[str, Any] = {f"i-{n:08x}": _Running(1.0) for n in range(3)}
    agent.sup.instances = running  # the figures are report.py's, of the supervisor's copies
    assert agent.figures.resources([])["instances"] == 3
    del running["i-00000000"], running["i-00000001"]  # gone
    figures = agent.figures.resources([])
    assert figures["instances"] == 1 and figures["instance_rss_mb"] == 10.0
    assert set(agent.figures._last_cpu) == {"i-00000002"}
