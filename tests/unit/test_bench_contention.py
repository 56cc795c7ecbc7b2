"""bench/contention.py: the pure parts (arguments, the summary and its ratio) and the
baseline's source extracted from git history. No server, no timed assertion."""

from __future__ import annotations

from pathlib import Path

import pytest

from netfate.benchcli import load

contention = load("contention")


def test_arguments() -> None:
    a = contention.parse_args([])
    assert (a.workers, a.duration, a.rounds) == (50, 5.0, 2)
    assert a.databases == ["sqlite", "postgresql"] and a.baseline == contention.BASELINE
    q = contention.parse_args(["--quick", "--databases", "sqlite"])
    assert (q.duration, q.rounds, q.databases) == (1.0, 1, ["sqlite"])
    for bad in (["--databases", "mysql"], ["--workers", "0"], ["--rounds", "0"]):
        with pytest.raises(SystemExit):
            contention.parse_args(bad)


def _run(rps: float | None, created: int) -> dict[str, object]:
    return {
        "throughput": {"rps": rps, "errors": {}, "latency_ms": {"p99": 1.0}},
        "burst": {"created": created},
    }


def test_summary_takes_medians_and_their_ratio() -> None:
    s = contention.summarize(
        {"baseline": [_run(100.0, 43), _run(80.0, 41)], "ours": [_run(45.0, 30), _run(55.0, 30)]}
    )
    assert s["baseline"]["creates_per_s_median"] == 90.0
    assert s["ours"]["creates_per_s_median"] == 50.0
    assert s["creates_per_s_ours_vs_baseline"] == pytest.approx(50 / 90, abs=1e-3)
    assert [b["created"] for b in s["ours"]["burst"]] == [30, 30]


def test_the_baseline_source_comes_from_git(tmp_path: Path) -> None:
    src = contention._common.extract(contention.BASELINE, tmp_path)
    assert (src / "netfate" / "store" / "db.py").is_file()
    assert "serialize" not in (src / "netfate" / "store" / "db.py").read_text()
