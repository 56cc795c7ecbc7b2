"""The event log: an append-only table the dashboard and the API read.

Each event says who caused it (`actor`: the account whose request was being
served when it was recorded, None for the platform itself: a loop, a timer, a
RADIUS login) and who besides operators may read it (`readers`: the owner of the
instance it is about, the users it concerns, its actor). The API shows a
provider or a user only the events it is a reader of.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from netfate.model.events import Event
from netfate.store.tables import EventReaderRow, EventRow, InstanceRow

ACTOR: contextvars.ContextVar[str | None] = contextvars.ContextVar("netfate_actor", default=None)
"""The account whose request is being served (set by the API's identity layer for
the request's task; worker threads the request runs in inherit it)."""


READS_ALL: contextvars.ContextVar[bool] = contextvars.ContextVar("netfate_reads_all", default=False)
"""Whether that account reads every event anyway (an operator): it needs no reader
row (on SQLite every row is written under the one write lock)."""


def current_actor() -> str | None:
    return ACTOR.get()


def record_event(
    session: Session, kind: str, data: dict[str, Any], *, readers: Iterable[str] = ()
) -> EventRow:
    """Add an event. Its readers: `readers`, the actor, and the owner of the instance
    the data names (`instance`), if any."""
    actor = ACTOR.get()
    row = EventRow(at=time.time(), kind=kind, data=data, actor=actor)
    row.readers = [EventReaderRow(reader=r) for r in _readers(session, actor, data, readers)]
    session.add(row)
    return row


def _readers(
    session: Session, actor: str | None, data: dict[str, Any], readers: Iterable[str]
) -> list[str]:
    who = {r for r in readers if r}
    reads_all = READS_ALL.get()
    if actor and not reads_all:
        who.add(actor)
    iid = data.get("instance")
    if isinstance(iid, str):
        inst = session.get(InstanceRow, iid)  # the caller's identity map: no query, mostly
        if inst is not None and inst.owner and not (reads_all and inst.owner == actor):
            who.add(inst.owner)
    return sorted(who)


def write(session: Session, event: Event, *, readers: Iterable[str] = ()) -> int:
    """`record`, written now by plain INSERTs on the session's connection (one for the
    event, one for all its readers if it has any) instead of the ORM's unit of work at
    the next flush: for a hot path (a create). Pending ORM changes are flushed first,
    so the event's id keeps the order in which events were recorded. Its id."""
    session.flush()
    actor = ACTOR.get()
    data = event.to_data()
    who = _readers(session, actor, data, readers)
    conn = session.connection()
    values = {"at": time.time(), "kind": event.kind, "data": data, "actor": actor}
    eid = int(conn.execute(insert(EventRow).returning(EventRow.id), values).scalar_one())
    if who:
        conn.execute(insert(EventReaderRow), [{"event_id": eid, "reader": r} for r in who])
    return eid


def record(session: Session, event: Event, *, readers: Iterable[str] = ()) -> EventRow:
    return record_event(session, event.kind, event.to_data(), readers=readers)
