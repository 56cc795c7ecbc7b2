"""The agent keeps the logs of the KEEP_LOGS instances that went last and removes
older ones (agent/instances.py prune_logs); a live instance's log is never touched."""

from __future__ import annotations

import os
from pathlib import Path

from netfate.agent.instances import KEEP_LOGS, prune_logs


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
