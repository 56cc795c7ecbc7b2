"""bench/lifecycle.py: the pure parts only (arguments, transition arithmetic, probe
gap analysis, agent log parsing, topology variants). No timed assertions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    key = f"netfate_bench_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[key] = mod
    spec.loader.exec_module(mod)
    return mod


lc = _load("lifecycle")


def test_arguments_defaults_and_quick() -> None:
    a = lc.parse_args([])
    assert (a.creates, a.migrations, a.pair, a.interval_ms) == (20, 10, ["cpe1", "cpe2"], 1.0)
    assert a.variants == ["as-is", "no-delay"]
    q = lc.parse_args(["--quick"])
    assert q.creates < a.creates and q.migrations < a.migrations
    c = lc.parse_args(["--quick", "--creates", "7", "--pair", "cpe2, pe1", "--variants", "as-is"])
    assert (c.creates, c.pair, c.variants) == (7, ["cpe2", "pe1"], ["as-is"])


@pytest.mark.parametrize(
    "argv",
    [["--pair", "cpe1"], ["--pair", "cpe1,cpe1"], ["--creates", "-1"], ["--variants", "x"]],
)
def test_arguments_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        lc.parse_args(argv)


def test_transition_ms() -> None:
    tr = [
        {"state": "requested", "at": 100.0},
        {"state": "starting", "at": 100.05},
        {"state": "running", "at": 100.2},
        {"state": "stopping", "at": 101.0},
        {"state": "gone", "at": 101.3},
    ]
    assert lc.transition_ms(tr, "requested", "running") == pytest.approx(200.0)
    assert lc.transition_ms(tr, "requested", "starting") == pytest.approx(50.0)
    assert lc.transition_ms(tr, "stopping", "gone") == pytest.approx(300.0)
    assert lc.transition_ms(tr, "requested", "failed") is None
    assert lc.transition_ms(tr[1:], "requested", "running") is None


Probe = tuple[list[tuple[int, float]], list[tuple[int, float, int]]]


def _probe(lost: set[int], n: int = 200, backwards_at: int | None = None) -> Probe:
    sent = [(s, s * 0.001) for s in range(1, n + 1)]
    replies: list[tuple[int, float, int]] = []
    count = 0
    for s, t in sent:
        if s in lost:
            continue
        count += 1
        c = count - 5 if s == backwards_at else count
        replies.append((s, t + 0.0003, c))
    return sent, replies


def test_gap_per_migration_window() -> None:
    # Migrations requested at 50 ms and 120 ms; probes 80..89 and 150..152 lost.
    sent, replies = _probe(set(range(80, 90)) | {150, 151, 152})
    an = lc.analyse_probe(sent, replies, [0.050, 0.120])
    assert an["steady"]["send_gap_ms"] == pytest.approx(1.0)
    assert an["steady"]["lost"] == 0
    first, second = an["migrations"]
    assert first["send_gap_ms"] == pytest.approx(11.0)  # sent 79 -> next answered 90
    assert first["lost"] == 10
    assert second["send_gap_ms"] == pytest.approx(4.0)
    assert second["lost"] == 3
    assert first["arrival_gap_ms"] == pytest.approx(11.0)
    assert an["count_backwards"] == 0 and an["duplicates"] == 0
    assert an["first_count"] == 1 and an["last_count"] == an["answered"]
    assert an["send_interval_ms"]["median"] == pytest.approx(1.0)


def test_state_checks() -> None:
    sent, replies = _probe(set(), n=50, backwards_at=30)
    replies.append(replies[10])  # answered twice
    an = lc.analyse_probe(sent, replies, [])
    assert an["count_backwards"] == 1
    assert an["duplicates"] == 1
    assert an["migrations"] == []
    # A reply lost after the counter counted it shows as a skip, not as going back.
    sent, replies = _probe(set(), n=20)
    del replies[5]
    an = lc.analyse_probe(sent, replies, [])
    assert an["count_skips"] == 1 and an["count_backwards"] == 0


def test_gap_straddling_a_window_start_belongs_to_where_it_began() -> None:
    sent, replies = _probe(set(range(45, 60)))
    an = lc.analyse_probe(sent, replies, [0.050])
    assert an["steady"]["send_gap_ms"] == pytest.approx(16.0)
    assert an["migrations"][0]["send_gap_ms"] == pytest.approx(1.0)


def test_no_replies() -> None:
    an = lc.analyse_probe([(1, 0.0), (2, 0.001)], [], [0.0005])
    assert an["answered"] == 0 and an["first_count"] is None
    assert an["migrations"][0]["send_gap_ms"] == 0.0


def test_agent_log_breakdown() -> None:
    text = (
        "2026-11-21 06:00:00 netfate.agent instance i-0a1b2c3d active in 212 ms "
        "(namespace+spawn 25, wiring and start-up 187; pid 42, cpu 10%)\n"
        "2026-11-21 06:00:01 netfate.agent something else\n"
        "2026-11-21 06:00:02 netfate.agent instance i-00000001 standby in 150 ms "
        "(namespace+spawn 20, wiring and start-up 130; pid 43, cpu 10%)\n"
    )
    br = lc.agent_start_breakdown(text)
    assert br == {"total": [212.0], "namespace_spawn": [25.0], "wiring_startup": [187.0]}


def test_topology_variants() -> None:
    demo = str(BENCH.parent / "examples" / "demo.yaml")
    as_is = lc.load_variant(demo, "as-is")
    flat = lc.load_variant(demo, "no-delay")
    assert any(lk.delay_us for lk in as_is.links)
    assert all(lk.delay_us == 0 and lk.loss == 0 for lk in flat.links)
    assert [lk.rate_bps for lk in flat.links] == [lk.rate_bps for lk in as_is.links]
    assert lc.path_delay_ms(as_is, "cpe1", "cpe2") == pytest.approx(10.0)
    assert lc.path_delay_ms(flat, "cpe1", "cpe2") == 0.0


def test_a_warm_creates_hops_come_from_the_client_the_orchestrator_and_the_agent_log() -> None:
    stamps = {
        "i-0000000a": {"posted": 99.990, "requested": 100.000, "answered": 100.010,
                       "starting": 100.050, "running": 100.060, "seen": 100.080},
        "i-0000000b": {"posted": 200.0, "requested": 200.005, "running": 200.2},  # no log line
    }  # fmt: skip
    log = (
        "2026-12-07 22:00:00,000 agent[cpe1] INFO instance i-0000000a active in 20 ms from "
        "warm standby sb-1 (files 1, then take 2, attach 3, ready 4; pid 7, cpu 0.1 cores, "
        "memory 64 MiB; heard at 100.0200, serving at 100.0400, done at 100.0450)\n"
    )
    hops = lc.warm_breakdown(stamps, log)
    assert hops["requested_to_agent_heard"]["median"] == pytest.approx(20.0)
    assert hops["agent_take_to_serving"]["median"] == pytest.approx(20.0)
    assert hops["agent_limits_and_task_end"]["median"] == pytest.approx(5.0)
    assert hops["agent_report_to_running"]["median"] == pytest.approx(15.0)
    assert hops["running_to_client_seen"]["median"] == pytest.approx(20.0)
    assert hops["client_to_api"]["median"] == pytest.approx(7.5)  # of 10 and 5
    # Both creates have the orchestrator's stamps; only one has the agent's.
    assert hops["requested_to_running"]["n"] == 2 and hops["agent_take_to_serving"]["n"] == 1
