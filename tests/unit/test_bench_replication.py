"""bench/replication.py: the pure parts only (branch levels read from the groups,
the added latency per level). No timed assertions."""

from __future__ import annotations

from netfate.benchcli import load

rp = load("replication")


def group(buckets: int) -> str:
    """A line of `ovs-ofctl dump-groups`: a group ALL of that many buckets."""
    out = ",".join(f"bucket=bucket_id:{i},actions=output:{i + 1}" for i in range(buckets))
    return f" group_id=1,type=all,{out}"


def test_branch_levels_count_only_switches_where_copies_split() -> None:
    dumps = {
        "s0": "",
        "s1": "OFPST_GROUP_DESC reply (OF1.3) (xid=0x2):\n" + group(3),
        "s2": group(1),
        "s3": group(2),
        "s4": "",
        "s5": "",
    }
    assert rp.branch_levels(dumps) == {"r1": 1, "r2": 1, "r4": 2, "r5": 2}
    # No group of two buckets anywhere: no branch level (then nothing is divided by it).
    assert set(rp.branch_levels({n: group(1) for n in dumps}).values()) == {0}


def test_added_latency_per_level_takes_medians_and_p99s_apart() -> None:
    base = [100.0] * 99 + [1000.0]
    path = [300.0] * 99 + [1400.0]
    got = rp.added(path, base, 2)
    assert got["median"] == 100.0
    assert got["p99"] == round(
        (rp.common.percentile(path, 99) - rp.common.percentile(base, 99)) / 2, 1
    )
    assert rp.added([], base, 1) == {"median": None, "p99": None}
    assert rp.added(path, base, 0) == {"median": None, "p99": None}


def test_latency_figures_per_receiver_per_level_and_ratio() -> None:
    levels = {"r1": 1, "r2": 1, "r4": 2, "r5": 2}
    # Ten turns of the sender's slots, five in each of two rounds.
    turns = [*range(0, 30, rp.N_SLOTS), *range(rp.ROUND_SEQ, rp.ROUND_SEQ + 30, rp.N_SLOTS)]
    samples = {
        r: {
            "switch": [(t, 100.0 + 40 * levels[r], 50.0 + 20 * levels[r]) for t in turns],
            "relay": [(t + 1, 300.0, 250.0) for t in turns],
            "unicast": [(t + 2 + rp.RECEIVERS.index(r), 100.0, 50.0) for t in turns],
        }
        for r in levels
    }
    out = rp.latency_figures(samples, levels)
    mono = out["monotonic_at_process"]
    r4 = mono["per_receiver"]["r4"]
    assert r4["branch_levels"] == 2
    assert r4["switch_added_per_branch_level_us"] == {"median": 40.0, "p99": 40.0}
    assert r4["aggregartp_added_per_relay_level_us"] == {"median": 200.0, "p99": 200.0}
    assert r4["ratio_switch_to_aggregartp"] == {"median": 0.2, "p99": 0.2}
    assert mono["by_branch_levels"]["1"]["receivers"] == ["r1", "r2"]
    assert mono["switch_worst_receiver_per_level_us"] == {"median": 40.0, "p99": 40.0}
    assert mono["goal_met_median"] and mono["goal_met_p99"]
    assert r4["paired_switch_added_per_branch_level_us"] == {"median": 40.0, "p99": 40.0, "n": 10}
    assert r4["paired_aggregartp_added_per_relay_level_us"]["median"] == 200.0
    kernel = out["kernel_rx_stamp"]["per_receiver"]["r1"]
    assert kernel["switch_added_per_branch_level_us"]["median"] == 20.0


def test_a_receiver_that_got_nothing_has_no_figure_and_misses_the_goal() -> None:
    levels = {"r1": 1, "r2": 1, "r4": 2, "r5": 2}
    out = rp.latency_figures({}, levels)["monotonic_at_process"]
    assert out["per_receiver"]["r1"]["switch_added_per_branch_level_us"]["median"] is None
    assert not out["goal_met_median"] and not out["goal_met_p99"]


def test_paired_latency_takes_each_copy_against_the_same_turns_unicast() -> None:
    # Turn 0 is quiet; in turn 1 the machine stalls 5 ms and both datagrams meet it.
    n = rp.N_SLOTS
    by_path = {
        "switch": [(0, 110.0, 0.0), (n, 5110.0, 0.0)],
        "unicast": [(3, 100.0, 0.0), (n + 3, 5100.0, 0.0), (n + 2, 9.0, 0.0)],  # r2's, r1's
    }
    got = rp.paired_added(by_path, "switch", "r2", 0, 1)
    assert got == {"median": 10.0, "p99": 10.0, "n": 2}
    # A copy whose turn's unicast datagram was lost is left out, not paired with another.
    assert rp.paired_added({"switch": [(0, 1.0, 0.0)]}, "switch", "r2", 0, 1)["n"] == 0
