"""Agents' reports, applied in batches: one writing transaction for all the reports
that arrived while the previous batch was being written.

Each report is a heartbeat as well (agents report every heartbeat, and at once when
something changed), so their number grows with the nodes: 1,000 nodes at the
testbed's 33 s heartbeat are 30 reports a second, on top of the changes they carry.
One request thread and one transaction per report made them queue for SQLite's
write gate, each holding a request thread meanwhile: on a loaded machine 36 of the
40 threads waited there (py-spy, 300 nodes, load 25), and operators' creates and
every read waited for a thread behind them (issue 15).

Here a report waits as a coroutine (no thread, no connection). One batch at a time
runs in a worker thread: one BEGIN IMMEDIATE, each report in its own SAVEPOINT (a
report refused, e.g. a 404 or an illegal transition, is rolled back alone and its
request gets the refusal), one commit. Reports are idempotent (coordinator
.apply_report), so a batch that fails as a whole (its transaction lost a race, the
gate's timeout) fails each of its requests, which the API runs again
(orchestrator/txretry.py) or the agent sends again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.orchestrator.nfv import coordinator as nfv
from netfate.store.conflicts import Failure, classify
from netfate.store.db import Database
from netfate.store.tables import InstanceRow, NodeRow

log = logging.getLogger("netfate.orchestrator.reports")

MAX_BATCH = 64
"""Reports in one transaction at most (the others wait for the next)."""

OnEvent = Callable[[Session, InstanceRow, dict[str, Any]], set[str]]


@dataclass
class _Pending:
    node: str
    report: dict[str, Any]
    done: asyncio.Future[int | None]


@dataclass
class Batches:
    """Figures: batches written and the reports in them."""

    batches: int = 0
    reports: int = 0
    largest: int = 0


class ReportBatcher:
    """Used from the event loop's thread only (`apply` is a coroutine)."""

    def __init__(
        self,
        db: Database,
        notify: Callable[[set[str]], None],
        on_event: OnEvent | None = None,
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.db = db
        self.notify = notify
        self.on_event = on_event
        self.max_batch = max_batch
        self.queue: list[_Pending] = []
        self.writer: asyncio.Task[None] | None = None
        self.figures = Batches()

    async def apply(self, node: str, report: dict[str, Any]) -> int | None:
        """Record `report` of `node`; the node's revision after it (None: no such
        row by then). Raises what coordinator.apply_report raised for it."""
        done: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.queue.append(_Pending(node, report, done))
        if self.writer is None or self.writer.done():
            self.writer = asyncio.create_task(self._drain())
        # A request gone (client closed) leaves its report in the batch: applied anyway.
        return await asyncio.shield(done)

    async def _drain(self) -> None:
        while self.queue:
            batch, self.queue = self.queue[: self.max_batch], self.queue[self.max_batch :]
            try:
                results, touched = await asyncio.to_thread(self._write, batch)
            except Exception as e:  # the whole transaction: every request gets it
                for p in batch:
                    if not p.done.done():
                        p.done.set_exception(e)
                continue
            self.figures.batches += 1
            self.figures.reports += len(batch)
            self.figures.largest = max(self.figures.largest, len(batch))
            if touched:
                self.notify(touched)
            for p, r in zip(batch, results, strict=True):
                if p.done.done():
                    continue
                if isinstance(r, Exception):
                    p.done.set_exception(r)
                else:
                    p.done.set_result(r)

    def _write(self, batch: list[_Pending]) -> tuple[list[int | Exception | None], set[str]]:
        results: list[int | Exception | None] = []
        touched: set[str] = set()
        with self.db.session() as s:
            for p in batch:
                try:
                    with s.begin_nested():
                        got = nfv.apply_report(s, p.node, p.report, self.on_event)
                        revision = s.scalar(select(NodeRow.revision).where(NodeRow.name == p.node))
                except Exception as e:
                    if classify(e) is Failure.UNAVAILABLE:
                        # The database went away: the session is unusable (a next
                        # SAVEPOINT would raise PendingRollbackError, a 500). The
                        # whole batch fails with this error, which each request
                        # answers as 503 or runs again (txretry.py).
                        raise
                    results.append(e)  # this report's refusal: rolled back alone
                    continue
                touched |= got
                results.append(revision)
        return results, touched
