"""Per-client counting in bounded memory (netfate.model.ratelimit): the sign-in
failure counters of the user page and the portal's login attempts."""

from __future__ import annotations

import pytest

from netfate.model.ratelimit import WindowCounter


def test_limit_per_client_and_window() -> None:
    c = WindowCounter(limit=3, window=10.0)
    for t in (0.0, 1.0, 2.0):
        assert not c.limited("a", t)
        c.record("a", t)
    assert c.limited("a", 3.0)
    assert not c.limited("b", 3.0)  # another client is not affected
    assert c.limited("a", 10.0)  # the first event is still inside the window
    assert not c.limited("a", 10.5)  # ... and now it has left it


def test_take_counts_only_what_it_lets_through() -> None:
    c = WindowCounter(limit=2, window=5.0)
    assert [c.take("a", 0.0) for _ in range(4)] == [False, False, True, True]
    assert not c.take("a", 5.5)  # the two counted left the window; refused ones never counted


def test_many_distinct_clients_memory_bounded_and_limit_still_applies() -> None:
    c = WindowCounter(limit=5, window=60.0, max_keys=100)
    for t in range(5):
        c.record("attacker", float(t))
    assert c.limited("attacker", 5.0)
    # A flood of distinct addresses within the window, each failing once.
    for i in range(100_000):
        c.record(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 6.0)
        assert len(c) <= 100
    # The limited client was not evicted to make room: it is still refused.
    assert c.limited("attacker", 7.0)
    # The flood's newcomers share one entry once the table is full: limited too.
    assert c.limited("192.0.2.1", 7.0)
    # Once the window passes, idle clients make room again and a newcomer is free.
    assert not c.limited("192.0.2.1", 70.0)
    c.record("192.0.2.1", 70.0)
    assert not c.limited("192.0.2.1", 70.0)
    assert len(c) <= 100


def test_idle_clients_are_dropped_first() -> None:
    c = WindowCounter(limit=2, window=10.0, max_keys=3)
    c.record("old", 0.0)
    c.record("a", 8.0)
    c.record("b", 9.0)
    c.record("new", 15.0)  # "old" left its window: dropped for "new"
    c.record("new", 15.0)
    assert c.limited("new", 15.0)
    assert not c.limited("old", 15.0)
    assert len(c) == 3


@pytest.mark.parametrize("args", [(0, 1.0, 1), (1, 0.0, 1), (1, 1.0, 0)])
def test_bad_parameters_refused(args: tuple[int, float, int]) -> None:
    with pytest.raises(ValueError):
        WindowCounter(*args)
