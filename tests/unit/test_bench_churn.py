"""bench/churn.py: the pure parts only (arguments, /proc parsing, growth, leftovers,
history bounds, the analysis of a run from its snapshots). No timed assertions."""

from __future__ import annotations

from typing import Any

import pytest

from netfate.benchcli import load

ch = load("churn")


def test_arguments_defaults_and_quick() -> None:
    a = ch.parse_args([])
    assert (a.cycles, a.warmup, a.time_limit, a.pair) == (1000, 100, 3600.0, ["cpe1", "cpe2"])
    assert a.sample_every == 100 and a.serves == "laptop1"
    q = ch.parse_args(["--quick"])
    assert q.cycles < a.cycles and q.warmup < a.warmup and q.time_limit < a.time_limit
    c = ch.parse_args(["--cycles", "7", "--pair", "cpe2, pe1", "--serves", ""])
    assert (c.cycles, c.pair, c.serves, c.sample_every) == (7, ["cpe2", "pe1"], None, 1)
    assert ch.history_env(a) == {
        "NETFATE_KEEP_GONE_INSTANCES": "100",
        "NETFATE_KEEP_EVENTS": "2000",
        "NETFATE_HISTORY_PRUNE_S": "5.0",
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["--pair", "cpe1"],
        ["--pair", "cpe1,cpe1"],
        ["--cycles", "0"],
        ["--warmup", "-1"],
        ["--time-limit", "0"],
        ["--keep-gone", "-1"],
        ["--prune-every", "0"],
    ],
)
def test_arguments_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        ch.parse_args(argv)


def test_proc_texts() -> None:
    status = "Name:\tpython3\nVmPeak:\t  200 kB\nVmRSS:\t   61234 kB\nRssAnon:\t 1 kB\n"
    assert ch.status_rss_kb(status) == 61234
    assert ch.status_rss_kb("Name:\tkthreadd\n") is None
    assert ch.fd_kind("socket:[123456]") == "socket"
    assert ch.fd_kind("pipe:[99]") == "pipe"
    assert ch.fd_kind("anon_inode:[eventfd]") == "anon_inode:[eventfd]"
    assert ch.fd_kind("/run/netfate/x/orchestrator.db") == "/run/netfate/x/orchestrator.db"
    assert ch.helper_kind(["/venv/bin/python3", "-m", "netfate.vnf.zygote", "/s"]) == "zygote"
    assert ch.helper_kind(["/usr/bin/ovsdb-client", "monitor", "unix:/db"]) == "ovsdb-monitor"
    assert ch.helper_kind(["python3", "-m", "netfate.vnf", "counter"]) is None
    assert ch.helper_kind([]) is None


def test_files_and_flows() -> None:
    assert ch.timed_flow("cookie=0x1, hard_timeout=10, priority=2,in_port=12 actions=drop")
    assert not ch.timed_flow("cookie=0x1, priority=0 actions=drop")
    live = {"i-0a.json"}
    assert ch.is_gone_log("i-0b.log", live) and not ch.is_gone_log("i-0a.log", live)
    assert not ch.is_gone_log("zygote.log", live)


def test_slope() -> None:
    assert ch.slope([0, 1, 2, 3], [10, 12, 14, 16]) == pytest.approx(2.0)
    assert ch.slope([0, 10], [5, 5]) == pytest.approx(0.0)
    assert ch.slope([1], [1]) is None
    assert ch.slope([2, 2], [1, 3]) is None
    assert ch.slope([1, 2], [1]) is None


def _proc(pid: int, rss: int, fds: int, **kinds: int) -> dict[str, Any]:
    return {"pid": pid, "rss_kb": rss, "fds": fds, "fd_kinds": kinds}


def test_process_growth_and_verdict() -> None:
    start = {
        "orchestrator": _proc(10, 100_000, 30, socket=10, pipe=4),
        "agent:cpe1": _proc(11, 60_000, 14, socket=5),
        "controller": _proc(12, 80_000, 9),
        "gone-before-end": _proc(13, 1, 1),
    }
    end = {
        "orchestrator": _proc(10, 105_000, 30, socket=11, pipe=3),
        "agent:cpe1": _proc(11, 60_000, 15, socket=6),
        "controller": _proc(12, 79_000, 8),
    }
    g = ch.process_growth(start, end)
    assert set(g) == {"orchestrator", "agent:cpe1", "controller"}
    assert g["orchestrator"]["rss_growth"] == pytest.approx(0.05)
    assert g["orchestrator"]["fds_growth"] == 0
    assert g["orchestrator"]["fd_kinds_changed"] == {"socket": 1, "pipe": -1}
    assert g["orchestrator"]["fd_kinds_end"] == {"socket": 11, "pipe": 3}
    assert g["agent:cpe1"]["fds_growth"] == 1 and g["controller"]["fds_growth"] == -1
    v = ch.verdict(g, {})
    assert v["goal_rss_growth_under_10_percent"] and not v["goal_no_fd_growth"]
    assert v["goal_nothing_left_over"]
    # A process restarted in between compares two processes: no goal holds.
    end["controller"] = _proc(99, 80_000, 9)
    g = ch.process_growth(start, end)
    assert g["controller"]["restarted"]
    assert not ch.verdict(g, {})["goal_rss_growth_under_10_percent"]
    end["controller"] = _proc(12, 90_000, 9)  # +12.5 %
    assert not ch.verdict(ch.process_growth(start, end), {})["goal_rss_growth_under_10_percent"]
    assert not ch.verdict({}, {})["goal_no_fd_growth"]  # nothing measured proves nothing


def _snapshot(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "processes": {"orchestrator": _proc(10, 100_000, 30)},
        "instance_processes": [],
        "namespaces": [],
        "ovs_ports": {"cpe1": ["p1", "p2"], "cpe2": ["q1"]},
        "flows": {"cpe1": ["priority=0 actions=drop"], "cpe2": []},
        "timed_flows": {"cpe1": 0, "cpe2": 0},
        "nft_tables": {"nf-cpe1": []},
        "cgroups": [],
        "agent_files": {"cpe1": ["zygote.log", "zygote.sock"]},
        "agent_logs": {"cpe1": []},
        "sdn_in_sync": True,
        "database": {"bytes": 100_000, "file_bytes": 4096, "wal_bytes": 0, "rows": {}},
    }
    base.update(over)
    return base


def test_leftovers() -> None:
    initial = _snapshot()
    assert ch.leftovers(initial, _snapshot(), keep_logs=2) == {}
    end = _snapshot(
        namespaces=["nf-cpe1-i-0a"],
        ovs_ports={"cpe1": ["p1", "p2", "nfv0a"], "cpe2": []},
        flows={"cpe1": ["priority=0 actions=drop", "priority=9,ip actions=output:3"], "cpe2": []},
        nft_tables={"nf-cpe1": ["inet nat"]},
        cgroups=["cpu/netfate/nf-cpe1-i-0a"],
        instance_processes=["cpe1: 4242 python3"],
        agent_files={"cpe1": ["zygote.log", "zygote.sock", "i-0a.json"]},
        agent_logs={"cpe1": ["i-01.log", "i-02.log", "i-03.log"]},
    )
    left = ch.leftovers(initial, end, keep_logs=2)
    assert left == {
        "namespaces": ["nf-cpe1-i-0a"],
        "ovs_ports": {"cpe1": ["nfv0a"]},
        "flows": {"cpe1": ["priority=9,ip actions=output:3"]},
        "nft_tables": {"nf-cpe1": ["inet nat"]},
        "cgroups": ["cpu/netfate/nf-cpe1-i-0a"],
        "agent_files": {"cpe1": ["i-0a.json"]},
        "instance_processes": ["cpe1: 4242 python3"],
        "agent_logs_beyond_bound": {"cpe1": 3},
    }
    assert "agent_logs_beyond_bound" not in ch.leftovers(initial, end, keep_logs=3)


def test_rows_and_cycle_times() -> None:
    g = ch.row_growth({"instances": 20, "events": 200}, {"instances": 120, "nodes": 3}, 100)
    assert g["instances"] == {"start": 20, "end": 120, "per_cycle": 1.0}
    assert g["events"]["per_cycle"] == -2.0 and g["nodes"]["per_cycle"] == 0.03
    t = ch.tenth_ratio([100.0] * 10 + [150.0] * 80 + [200.0] * 10)
    assert (t["first_tenth_median_ms"], t["last_tenth_median_ms"], t["ratio"]) == (
        100.0,
        200.0,
        2.0,
    )
    assert ch.tenth_ratio([5.0])["ratio"] is None


def test_history_bounded() -> None:
    a = ch.parse_args(["--keep-gone", "10", "--keep-events", "100"])
    ok = {"instances": 10, "events": 100 + ch.EVENTS_SLACK, "sdn_host_sightings": 2}
    assert ch.history_bounded(ok, a, hosts=2)
    assert not ch.history_bounded({**ok, "instances": 11}, a, hosts=2)
    assert not ch.history_bounded({**ok, "events": 101 + ch.EVENTS_SLACK}, a, hosts=2)
    assert not ch.history_bounded({**ok, "sdn_host_sightings": 3}, a, hosts=2)


def test_analyse_a_run() -> None:
    a = ch.parse_args(["--cycles", "4", "--sample-every", "2", "--keep-gone", "10"])
    rows0 = {"instances": 2, "events": 30, "sdn_host_sightings": 0}
    rows1 = {"instances": 6, "events": 70, "sdn_host_sightings": 0}
    start = _snapshot(database={"bytes": 100_000, "file_bytes": 0, "wal_bytes": 0, "rows": rows0})
    end = _snapshot(
        processes={"orchestrator": _proc(10, 104_000, 30)},
        database={"bytes": 140_000, "file_bytes": 0, "wal_bytes": 0, "rows": rows1},
    )
    cycle = {"create_ms": 100.0, "migrate_ms": 200.0, "destroy_ms": 50.0, "cycle_ms": 350.0}
    run = ch.Run(
        hosts=2,
        initial=_snapshot(),
        start=start,
        end=end,
        warm=[cycle],
        records=[cycle] * 4,
        samples=[
            {
                "cycle": c,
                "processes": {"orchestrator": _proc(10, 100_000 + 1000 * c, 30)},
                "rows": r,
                "db_bytes": 100_000 + 10 * c,
            }
            for c, r in ((0, rows0), (2, rows0), (4, rows1))
        ],
    )
    out = ch.analyse(a, run)
    assert (out["cycles_done"], out["cycles_ok"], out["warmup_cycles_done"]) == (4, 4, 1)
    assert out["processes"]["orchestrator"]["rss_growth"] == pytest.approx(0.04)
    assert out["rss_kb_per_cycle_slope"]["orchestrator"] == pytest.approx(1000.0)
    assert out["database"]["bytes_per_cycle"] == 10_000.0
    assert out["database"]["rows"]["instances"]["per_cycle"] == 1.0
    assert out["rows_samples"]["events"] == [30, 30, 70]
    assert out["db_bytes_samples"] == [100_000, 100_020, 100_040]
    assert out["cycle_ms"]["median"] == 350.0
    assert out["goal_nothing_left_over"] and out["goal_no_fd_growth"]
    assert out["goal_rss_growth_under_10_percent"] and out["goal_history_bounded"]
