"""Running the services' reconcile loops (netfate.contract.Loop) inside the orchestrator.

Reads never write (DESIGN.md, convention 11): what converges without anyone
asking (a share becoming active once its functions run, a firewall following
its user, an idle user's release) happens here, one step at a time:

    wait: interval_s, or (wake_on_change) a change the notifier announces, then
          min_gap_s, doubled (up to MAX_GAP_S) while changes keep coming
      -> step(session) in a worker thread, one transaction, committed
      -> the nodes it returns: their agents are woken (notifier)
      -> status: steps, last step's time and duration, last error (GET /services)

Started by the app's lifespan once the schema is migrated, stopped before the
database goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from netfate.contract import Loop
from netfate.orchestrator.notify import EVENTS, Notifier
from netfate.store.db import Database

log = logging.getLogger("netfate.loops")

MAX_GAP_S = 0.5
"""The longest wait between a change and the step that sees it while changes keep
coming (a loop's `interval_s` if shorter); after a quiet spell it is `min_gap_s`."""


@dataclass
class LoopStatus:
    service: str
    loop: Loop
    steps: int = 0
    last_at: float | None = None
    last_ms: float | None = None
    last_error: str | None = None
    touched: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.loop.name,
            "interval_s": self.loop.interval_s,
            "wake_on_change": self.loop.wake_on_change,
            "steps": self.steps,
            "last_at": self.last_at,
            "last_ms": self.last_ms,
            "last_error": self.last_error,
            "nodes_woken": self.touched,
        }


@dataclass
class LoopRunner:
    db: Database
    notifier: Notifier | None
    loops: Sequence[tuple[str, Loop]]
    """(service name, loop) pairs."""
    status: list[LoopStatus] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.status = [LoopStatus(svc, lp) for svc, lp in self.loops]

    def start(self) -> None:
        for st in self.status:
            self._tasks.append(
                asyncio.create_task(self._run(st), name=f"loop {st.service}.{st.loop.name}")
            )

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    def of(self, service: str) -> list[dict[str, Any]]:
        return [st.to_dict() for st in self.status if st.service == service]

    def step(self, st: LoopStatus) -> set[str]:
        """One pass of a loop, in its own transaction (also for tests and tools)."""
        t0 = time.monotonic()
        try:
            with self.db.session() as s:
                touched = set(_names(st.loop.step(s)))
        except Exception as e:
            st.last_error = f"{type(e).__name__}: {e}"[:500]
            raise
        finally:
            st.steps += 1
            st.last_at = time.time()
            st.last_ms = round((time.monotonic() - t0) * 1000, 3)
        st.last_error = None
        st.touched += len(touched)
        return touched

    async def _run(self, st: LoopStatus) -> None:
        lp, notifier = st.loop, self.notifier
        seen = notifier.changes if notifier is not None else 0
        gap = lp.min_gap_s
        longest = max(lp.min_gap_s, min(MAX_GAP_S, lp.interval_s))
        while True:
            if lp.wake_on_change and notifier is not None:
                if notifier.changes == seen:
                    # Quiet since its last step: the next change is stepped soon.
                    gap = lp.min_gap_s
                    await notifier.wait(EVENTS, lp.interval_s)
                else:
                    # A change came while it stepped: changes keep coming (creates at
                    # hundreds a second each wake every loop), so it waits twice as
                    # long each time, up to `longest`, and steps a few times per burst
                    # instead of once per change; it still steps after the last one.
                    gap = min(gap * 2, longest)
                await asyncio.sleep(gap)  # the changes of this gap: one step
                seen = notifier.changes
            else:
                await asyncio.sleep(lp.interval_s)
            try:
                touched = await asyncio.to_thread(self.step, st)
            except Exception:  # a database hiccup must not end the loop
                log.exception("%s loop %s: step failed", st.service, lp.name)
                continue
            if touched and self.notifier is not None:
                self.notifier.notify(touched)


def _names(touched: Iterable[str] | None) -> Iterable[str]:
    return touched or ()
