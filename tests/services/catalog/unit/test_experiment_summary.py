"""The experiment's summary and table with the platform kind, which has no request
stream (its downtime is the agents' stamps): medians of what it has, '-' for what it
has not, and the sentence naming the channel it crossed (experiment.py)."""

from __future__ import annotations

from dataclasses import asdict

from netfate.services.catalog.experiment import PAPER, Plan, Trial, markdown, summary


def _stream(failed: int) -> dict[str, object]:
    return {
        "max_gap_ms": 3.0, "baseline_max_gap_ms": 2.0, "failed": failed,
        "excess_wait_ms": {"max_ms": 1.0, "baseline_max_ms": 4.0 + failed},
    }  # fmt: skip


def test_the_platform_kind_is_summarised_without_a_stream() -> None:
    trials = [
        Trial("vo", True, 0.05, migration_s=0.3, bytes_moved=440_000, downtime_ms=9.0,
              freeze_ms=0.0, stop_to_first_new_ms=6.0, user=_stream(5)),
        Trial("vo", True, 0.4, migration_s=0.5, bytes_moved=440_000, downtime_ms=11.0,
              freeze_ms=0.0, stop_to_first_new_ms=8.0, user=_stream(7)),
        Trial("platform", True, 0.05, migration_s=0.8, bytes_moved=600_000, downtime_ms=24.0),
        Trial("platform", True, 0.4, migration_s=1.6, bytes_moved=640_000, downtime_ms=30.0),
    ]  # fmt: skip
    s = summary(trials)
    vo, plat = s["groups"]["vo-pre"], s["groups"]["platform-pre"]
    assert (vo["failed_requests"], vo["user_max_gap_ms"]) == (12, 3.0)
    assert plat["failed_requests"] is None and plat["user_max_gap_ms"] is None
    assert (plat["migration_s"], plat["downtime_ms"], plat["bytes"]) == (1.2, 27.0, 620_000)
    assert s["relations"]["platform_over_vo_time_pre"] == 3.0
    doc = {
        "summary": s,
        "plan": asdict(Plan()),
        "paper": PAPER,
        "emulator": "userspace delay emulator + TBF rate",
        "migration_channel": "platform kind moves over the agents' channel",
    }
    text = markdown(doc)
    assert "| platform | policy's warm standby | 2 | 1200.0 | 0.620 | 27.000 (30.000) | - | - " \
        "| - | - (agents' stamps) | - (-) |" in text  # fmt: skip
    # Downtime next to the same stream's worst wait without a migration (median 10),
    # the freeze and the stop-to-first-new figure.
    assert "| vo | pre-deployed | 2 | 400.0 | 0.440 | 10.000 (11.000) | 10.000 | 0.000 | " \
        "7.000 | 3.00 (2.00) | 12 (0) |" in text  # fmt: skip
    assert "The platform kind moves over the agents' channel." in text
    assert "(userspace delay emulator + TBF rate)" in text


def test_the_platform_kind_compares_the_policys_standby_with_a_cold_copy() -> None:
    """platform-pre: pop2's pre-deploy budget gave the move a warm standby;
    platform-transfer: no budget, a cold copy. Their ratio is the platform's own
    pre-deployment figure, said as such in the table."""
    trials = [
        Trial("platform", True, 0.05, migration_s=0.5, bytes_moved=600_000, downtime_ms=20.0),
        Trial("platform", False, 0.05, migration_s=1.5, bytes_moved=600_000, downtime_ms=30.0),
    ]
    s = summary(trials)
    assert s["relations"]["predeploy_speedup_platform"] == 3.0
    assert s["relations"]["predeploy_downtime_platform"] == 1.5
    doc = {"summary": s, "plan": asdict(Plan()), "paper": PAPER, "emulator": "x"}
    text = markdown(doc)
    assert "| platform | cold start (no budget) | 1 | 1500.0 |" in text
    assert "| platform | policy's warm standby | 1 | 500.0 |" in text
    assert "cold copy / the policy's warm standby), migration time | 3.0 |" in text
