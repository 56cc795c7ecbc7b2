"""How a wake-on-change reconcile loop (orchestrator/loops.py) steps under changes.

Time is virtual: `asyncio.sleep` is replaced by one that advances a clock and, while
a burst lasts, delivers the notifications that would have come in that span (one
every 5 ms, as creates at 200/s give). Nothing here depends on how fast the
machine is; the step itself runs in a worker thread as in the orchestrator.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from netfate.contract import Loop
from netfate.orchestrator.loops import MAX_GAP_S, LoopRunner
from netfate.orchestrator.notify import EVENTS, Notifier

EVERY_S = 0.005
"""A change every 5 ms while a burst lasts."""


class _NoDatabase:
    """The runner's database: the steps here read nothing."""

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        yield None


class Clock:
    def __init__(self, notifier: Notifier, burst_until: float) -> None:
        self.now = 0.0
        self.notifier = notifier
        self.burst_until = burst_until
        self.gaps: list[float] = []
        self.real_sleep = asyncio.sleep

    async def sleep(self, d: float) -> None:
        self.gaps.append(d)
        end = self.now + d
        while self.now + EVERY_S <= end:
            self.now += EVERY_S
            if self.now <= self.burst_until:
                self.notifier.notify([])
        self.now = end
        await self.real_sleep(0)


class Harness:
    """One wake-on-change loop under the virtual clock; `step_changes`: how many of its
    first steps see a change arrive while they run."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, burst_until: float, step_changes: int = 0
    ) -> None:
        self.notifier = Notifier()
        self.notifier.bind(asyncio.get_running_loop())
        self.clock = Clock(self.notifier, burst_until)
        monkeypatch.setattr(asyncio, "sleep", self.clock.sleep)
        self.steps: list[float] = []
        caller = asyncio.get_running_loop()

        def step(_session: Any) -> list[str]:
            self.steps.append(self.clock.now)
            # A change while it steps: one of its first `step_changes` steps, or any
            # during the burst (a step takes longer than 5 ms).
            if len(self.steps) <= step_changes or self.clock.now < burst_until:
                caller.call_soon_threadsafe(self.notifier.notify, [])
            return []

        self.loop = Loop("probe", step, interval_s=3600.0, wake_on_change=True)
        self.runner = LoopRunner(_NoDatabase(), self.notifier, [("svc", self.loop)])  # type: ignore[arg-type]
        self.runner.start()

    def waiting(self) -> bool:
        return bool(self.notifier._waiters.get(EVENTS))

    async def settle(self, steps: int = 1) -> None:
        """Until the loop has stepped `steps` times in all and waits for a change (with
        steps > 0: after the burst)."""
        for _ in range(10_000):
            await self.clock.real_sleep(0.001)
            burst_over = steps == 0 or self.clock.now >= self.clock.burst_until
            done = len(self.steps) >= steps and burst_over
            if done and self.waiting():
                return
        raise AssertionError(f"the loop never settled: {len(self.steps)} steps")


def test_a_burst_of_changes_costs_a_few_steps_not_one_per_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """2 s of changes every 5 ms (400 changes): the loop steps a bounded number of
    times (the doubling wait up to MAX_GAP_S), and once more after the last change.
    Before, it stepped every min_gap_s (50 ms) for as long as the burst lasted: 40."""
    burst = 2.0

    async def scenario() -> Harness:
        h = Harness(monkeypatch, burst)
        try:
            await h.settle(steps=0)  # started, waiting
            h.notifier.notify([])  # the burst's first change
            await h.settle()
        finally:
            await h.runner.stop()
        return h

    h = asyncio.run(scenario())
    assert h.notifier.changes >= 400
    doublings, g = 0, h.loop.min_gap_s
    while g < MAX_GAP_S:
        g, doublings = g * 2, doublings + 1
    bound = doublings + int(burst / MAX_GAP_S) + 2
    assert 2 <= len(h.steps) <= bound, h.steps
    assert h.steps[-1] >= burst  # the last change is seen by a step after it
    assert h.clock.gaps[0] == pytest.approx(h.loop.min_gap_s)  # the first, soon
    assert max(h.clock.gaps) == pytest.approx(MAX_GAP_S)  # and never longer


def test_a_change_during_a_step_gets_a_step_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """One change, and one more while the loop steps: a second step follows without
    waiting for the loop's interval (an hour here)."""

    async def scenario() -> Harness:
        h = Harness(monkeypatch, 0.0, step_changes=1)
        try:
            await h.settle(steps=0)
            h.notifier.notify([])
            await h.settle(steps=2)
        finally:
            await h.runner.stop()
        return h

    h = asyncio.run(scenario())
    assert len(h.steps) == 2


def test_after_a_quiet_spell_a_lone_change_waits_only_min_gap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Changes during three steps in a row made the wait grow (each step saw one
    more); the loop then found nothing new and waited. The next lone change is
    stepped after min_gap_s again, not after the grown wait."""

    async def scenario() -> Harness:
        h = Harness(monkeypatch, 0.0, step_changes=3)
        try:
            await h.settle(steps=0)
            h.notifier.notify([])
            await h.settle(steps=4)
            h.notifier.notify([])
            await h.settle(steps=5)
        finally:
            await h.runner.stop()
        return h

    h = asyncio.run(scenario())
    m = h.loop.min_gap_s
    assert len(h.steps) == 5
    assert h.clock.gaps == pytest.approx([m, 2 * m, 4 * m, 8 * m, m])
