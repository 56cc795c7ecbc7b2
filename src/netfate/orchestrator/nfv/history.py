"""How much history the database keeps: gone instances and the event log.

Every instance that ever existed stays a row when it is gone, with its
transitions (about seven per create -> migrate -> destroy) and migrations, and
every event stays in the event log (about eleven per such cycle): without a
bound the database of an orchestrator that runs for months only grows, and so do
the scans over it (bench/churn measured about 8 KB a cycle). Both are history
for people and the dashboard; nothing decides on an instance once it is gone
(the services treat a missing instance like a gone one).

So the orchestrator keeps the `keep_gone` instances that went last (by their
last change), with their transitions and migrations, and the newest
`keep_events` events; older rows are deleted in batches by a periodic task
(app.py). Live, failed and stopping instances are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from netfate.model.lifecycle import InstanceState
from netfate.store.tables import EventRow, InstanceRow, MigrationRow, TransitionRow

__all__ = ["BATCH", "DEFAULT_KEEP_EVENTS", "DEFAULT_KEEP_GONE", "Pruned", "prune"]

DEFAULT_KEEP_GONE = 10_000
DEFAULT_KEEP_EVENTS = 200_000
BATCH = 2_000  # rows of one kind per transaction: a prune never holds the writer long


@dataclass(frozen=True)
class Pruned:
    instances: int
    """Gone instances deleted (their transitions and migrations with them)."""
    events: int


def prune(session: Session, keep_gone: int, keep_events: int, batch: int = BATCH) -> Pruned:
    """Delete gone instances beyond the newest `keep_gone` and events beyond the newest
    `keep_events`, at most `batch` of each. Does not commit."""
    if keep_gone < 0 or keep_events < 0:
        raise ValueError("history to keep must be >= 0")
    old = list(
        session.scalars(
            select(InstanceRow.id)
            .where(InstanceRow.state == InstanceState.GONE.value)
            .order_by(InstanceRow.updated_at.desc(), InstanceRow.id.desc())
            .offset(keep_gone)
            .limit(batch)
        )
    )
    if old:
        # Explicitly, not through ON DELETE CASCADE: SQLite applies it only with
        # its foreign keys pragma on.
        session.execute(delete(TransitionRow).where(TransitionRow.instance.in_(old)))
        session.execute(delete(MigrationRow).where(MigrationRow.instance.in_(old)))
        session.execute(delete(InstanceRow).where(InstanceRow.id.in_(old)))
    events = 0
    newest = session.scalar(select(func.max(EventRow.id)))
    # The newest event always stays: with none left SQLite hands its id out again,
    # and a reader that follows the log by id (`after`, the event stream) would
    # miss what comes next.
    keep_events = max(keep_events, 1)
    if newest is not None:
        cut = session.scalar(
            select(EventRow.id)
            .where(EventRow.id <= newest - keep_events)
            .order_by(EventRow.id)
            .offset(batch - 1)
            .limit(1)
        )
        upto = cut if cut is not None else newest - keep_events
        ids = select(EventRow.id).where(EventRow.id <= upto)
        events = int(session.scalar(select(func.count()).select_from(ids.subquery())) or 0)
        if events:
            session.execute(delete(EventRow).where(EventRow.id <= upto))
    return Pruned(instances=len(old), events=events)
