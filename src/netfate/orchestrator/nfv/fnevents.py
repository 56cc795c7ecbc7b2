"""Functions' events, from their agents' reports to the services that own them.

A function emits past-tense events (``netfate.vnf.runtime.Function.emit``); its
``status`` shows the latest as ``stats["events"]`` (``netfate.vnf.outbox``), and
its agent's report carries those stats. When a report's stats replace the ones
stored for the instance, the events numbered after the last one stored are new
(all of them when the function was numbered anew: a restart without its state).
Each new event is written to the platform's event log (``FunctionEvent``) and
handed to the service whose descriptor the instance runs
(``Service.on_instance_event``), in the report's transaction, under a savepoint:
a hook that fails is logged and loses only its own writes, never the report.

Delivery is at least once per report stored: a hook keeps what it writes idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from netfate.contract import Service
from netfate.store.events import record_event
from netfate.store.tables import InstanceRow

log = logging.getLogger("netfate.fnevents")

OnEvent = Callable[[Session, InstanceRow, dict[str, Any]], set[str]]
"""(session, instance, event) -> nodes whose desired state the handling changed."""


def _outbox(stats: Mapping[str, Any] | None) -> tuple[int, list[dict[str, Any]]]:
    ev = (stats or {}).get("events")
    if not isinstance(ev, Mapping):
        return 0, []
    last, raw = ev.get("last_seq"), ev.get("items")
    items = [
        e
        for e in (raw if isinstance(raw, list) else ())
        if isinstance(e, dict) and isinstance(e.get("seq"), int) and isinstance(e.get("kind"), str)
    ]
    return (last if isinstance(last, int) else 0), items


def fresh(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The events in ``new`` stats that ``old`` stats had not shown, oldest first."""
    old_last, old_items = _outbox(old)
    new_last, items = _outbox(new)
    if new_last < old_last:
        old_last = 0  # numbered anew
    elif old_items:
        tail = old_items[-1]
        same = next((e for e in items if e["seq"] == tail["seq"]), None)
        if same is not None and same != tail:
            old_last = 0  # numbered anew, and already past where it was
    return [e for e in items if e["seq"] > old_last]


def dispatcher(services: Sequence[Service]) -> OnEvent:
    """What a report does with a new event: log it, hand it to its owner's hook."""
    hooks: dict[str, Callable[[Session, InstanceRow, dict[str, Any]], Iterable[str] | None]] = {}
    for svc in services:
        if svc.on_instance_event is not None:
            for d in svc.descriptors:
                hooks[str(d["name"])] = svc.on_instance_event

    def on_event(session: Session, inst: InstanceRow, event: dict[str, Any]) -> set[str]:
        record_event(
            session,
            "FunctionEvent",
            {"instance": inst.id, "descriptor": inst.descriptor, "event": event},
        )
        hook = hooks.get(inst.descriptor)
        if hook is None:
            return set()
        try:
            with session.begin_nested():
                return set(hook(session, inst, event) or ())
        except Exception:
            log.exception("%s: event %s of %s", inst.descriptor, event.get("kind"), inst.id)
            return set()

    return on_event
