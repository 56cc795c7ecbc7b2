"""Keeps one switch's table equal to what the brain wants for its node. Sans-I/O:
each `step` is given the time and the switch (a `SwitchIO`); the driver runs the
steps in the switch's own thread, when woken or when the next read is due.

One step:

    brain not ready, or switch not in the view   touch nothing (a restarted
                                                  controller must not wipe tables
                                                  that keep forwarding)
    table unknown, or a read due (and no host     read it back: the plan is made
    waiting for its flows)                        against it; report it if it
                                                  changed or was not reported for
                                                  a while
    otherwise                                     plan against what we know it holds
    plan not empty                                send it with a barrier; packets
                                                  waiting for these flows go right
                                                  behind the barrier
    batch refused                                 forget the table (read it back),
                                                  keep the refused intents off this
                                                  switch until the version changes,
                                                  back off, step again
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from netfate.orchestrator.sdn.brain import Brain
from netfate.orchestrator.sdn.compile import FlowSpec, GroupSpec
from netfate.orchestrator.sdn.reconcile import (
    Plan,
    apply_plan,
    owned,
    plan,
    plan_from_cache,
)
from netfate.orchestrator.sdn.reports import FlowsRefused, Report, TableRead
from netfate.orchestrator.sdn.switch import Reinject, SwitchIO, Table

log = logging.getLogger("netfate.sdn")

Then = Callable[[float], None]
"""Called with the time the flows it waited for were confirmed."""


@dataclass(frozen=True)
class Timers:
    snapshot_interval_s: float = 2.0
    """How often each switch's table is read back (counters, drift repair)."""
    post_interval_s: float = 5.0
    """How often a table is reported when its flows did not change."""
    suppress_s: int = 10
    """How long packet-ins from one (port, MAC) are dropped at the switch once handled."""


def backoff(failures: int) -> float:
    """Seconds to wait after the `failures`-th failure in a row."""
    return min(5.0, 0.2 * 2.0 ** min(failures, 5))


@dataclass(frozen=True)
class Step:
    done_at: float
    """When the step's I/O ended (its batch's confirmation, else its `now`)."""
    retry_after: float | None = None
    """Step again after this long, without waiting to be woken (a failed batch)."""
    synced: bool = False
    """The switch now holds what the brain wanted (`installed_generation`)."""


class SwitchKeeper:
    def __init__(self, dpid: int, timers: Timers) -> None:
        self.dpid = dpid
        self.timers = timers
        self.lock = threading.Lock()  # after_install: added to by packet-in handling
        # Cookies whose flows this switch refused, and under which view version: the
        # intent is then kept off this switch entirely (all or nothing) until the
        # view or the intents change.
        self.refused: dict[int, str] = {}
        self.refused_version: str | None = None
        self.installed: set[FlowSpec] | None = None  # None: unknown, read the table first
        self.installed_groups: dict[int, GroupSpec] | None = None
        self.installed_generation = -1
        self.after_install: list[tuple[int, Reinject, Then]] = []
        self.next_snapshot = 0.0
        self.next_post = 0.0
        self.posted_keys: frozenset[Any] = frozenset()
        self.failures = 0

    def when_installed(self, generation: int, packet: Reinject, then: Then) -> None:
        """Re-inject `packet` behind the flows of `generation`, then call `then`."""
        with self.lock:
            self.after_install.append((generation, packet, then))

    def failed(self) -> float:
        """A step raised: forget the table (read it back next time). Seconds to wait."""
        self.installed = None
        wait = backoff(self.failures)
        self.failures += 1
        return wait

    def step(
        self, brain: Brain, io: SwitchIO, now: float, report: Callable[[Report], None]
    ) -> Step:
        node = brain.node_for(self.dpid)
        if not brain.ready:
            self.next_snapshot = now + self.timers.snapshot_interval_s
            return Step(now)
        if node is None:
            log.info("switch %016x is not in the view yet; leaving its table alone", self.dpid)
            self.next_snapshot = now + self.timers.snapshot_interval_s
            return Step(now)
        with self.lock:
            waiting = bool(self.after_install)
        # A host waiting for its flows goes first; a big table's read can wait a step.
        snapshot = now >= self.next_snapshot and not waiting
        installed, groups, actual = self.installed, self.installed_groups, None
        at = now
        if installed is None or groups is None or snapshot:
            table = io.read_table()
            if table is None:
                raise RuntimeError("no reply to the table read")
            at = now + table.took_s
            installed, groups, actual = (
                self._took_in(table, brain, node, now, report),
                table.groups,
                table.flows,
            )
        desired = brain.desired(node)
        if desired is None:
            return Step(at)
        want_flows, want_groups, generation = desired
        if self.refused:
            if self.refused_version != brain.version:
                self.refused = {}  # the view or the intents changed: try again
            else:
                want_flows = {f for f in want_flows if f.cookie not in self.refused}
                want_groups = {g for g in want_groups if g.cookie not in self.refused}
        if actual is not None:
            p = plan(want_flows, actual, want_groups, groups)
        else:
            p = plan_from_cache(want_flows, installed, want_groups, groups)
        due = self._take_due(generation)
        trailer = [packet for _g, packet, _then in due]
        if p:
            result = io.send_batch(p, trailer)
            at = result.done_at
            if not result.ok:
                return self._refused(brain, node, result.refused, at, report)
            self.installed, self.installed_groups = _applied(installed, groups, p)
            log.info(
                "switch %016x (%s): %s confirmed in %.1f ms",
                self.dpid,
                node,
                p.summary(),
                1e3 * (result.done_at - result.sent_at),
            )
        elif trailer:
            io.reinject(trailer)
        self.failures = 0
        self.installed_generation = generation
        for _g, _packet, then in due:
            then(at)
        return Step(at, synced=True)

    def _took_in(
        self, table: Table, brain: Brain, node: str, now: float, report: Callable[[Report], None]
    ) -> set[FlowSpec]:
        """Take a table read back as what the switch holds; report it if it changed."""
        specs = {e.spec for e in owned(table.flows) if e.spec is not None}
        want = brain.desired(node)
        if want is not None:
            # Use the compiler's own objects for flows that match: later diffs of
            # big tables then hit on identity instead of comparing every field.
            same = {f: f for f in want[0]}
            specs = {same.get(f, f) for f in specs}
        self.installed = specs
        self.installed_groups = table.groups
        # A big table is read less often: reading it may use at most ~5% of the time.
        self.next_snapshot = now + max(self.timers.snapshot_interval_s, 20 * table.took_s)
        keys = frozenset((e.cookie, e.priority, e.match) for e in table.flows)
        if keys != self.posted_keys or now >= self.next_post:
            # Many switches reading every 2 s would flood the orchestrator's
            # database; a changed table is still reported at once.
            self.posted_keys = keys
            self.next_post = now + self.timers.post_interval_s
            report(TableRead(node, self.dpid, table.flows, table.ports, len(table.groups)))
        return specs

    def _refused(
        self,
        brain: Brain,
        node: str,
        refused: Mapping[int, str],
        at: float,
        report: Callable[[Report], None],
    ) -> Step:
        self.installed = None  # read back next time: the batch may be half applied
        self.refused.update(refused)
        if self.refused:
            self.refused_version = brain.version
            names = brain.intent_names(set(self.refused))
            log.warning(
                "switch %016x (%s) refused flows of %s: keeping those intents off it",
                self.dpid,
                node,
                ", ".join(sorted(names)),
            )
            report(FlowsRefused(node, sorted(names), sorted(set(self.refused.values()))[:10]))
        self.failures += 1
        return Step(at, retry_after=backoff(self.failures))

    def _take_due(self, generation: int) -> list[tuple[int, Reinject, Then]]:
        with self.lock:
            due = [e for e in self.after_install if e[0] <= generation]
            self.after_install = [e for e in self.after_install if e[0] > generation]
        return due


def _applied(
    installed: set[FlowSpec], groups: dict[int, GroupSpec], p: Plan
) -> tuple[set[FlowSpec], dict[int, GroupSpec]]:
    """What a switch holds (of ours) once `p` is confirmed."""
    groups_now = dict(groups)
    for g in [*p.group_adds, *p.group_mods]:
        groups_now[g.group_id] = g
    for gid in p.group_dels:
        groups_now.pop(gid, None)
    return apply_plan(installed, p), groups_now
