"""The event log: an append-only table the dashboard and the API read."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.orm import Session

from netfate.model.events import Event
from netfate.store.tables import EventRow


def record_event(session: Session, kind: str, data: dict[str, Any]) -> EventRow:
    row = EventRow(at=time.time(), kind=kind, data=data)
    session.add(row)
    return row


def record(session: Session, event: Event) -> EventRow:
    return record_event(session, event.kind, event.to_data())
