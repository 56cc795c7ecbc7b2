"""Reservations feed the back-end's planning (seed section 3.1: the schedule lets
the back-end prepare the tree before an event).

``lead_s()`` before a reserved event's start (NETFATE_STREAMING_LEAD_S, default
LEAD_S: a couple of minutes) the reconcile step pre-starts the event's content:
its acquirer at the provider's PE (a ``planned`` live content, its flow armed as
``scheduled``: the acquirer takes the provider's stream once the event starts),
and on each reserving user's access PE a branch chosen by the join rule
(``Tree.prestart``), bandwidth reserved as for a real branch, its ``why`` saying
"pre-started for N reservations". A later join from that PE is case 1, the warm
tree.

What goes, and when:
  - a pre-started branch nobody joined: at the event's start plus the grace period
    (``Tree.tick``: the plan's ``until``);
  - a PE's branch whose reservations were all cancelled: at once (``Tree.unplan``);
  - a planned content (the event not started) whose event was cancelled, whose
    reservations all went, or that was not started by its start plus the grace
    period: at once, with its acquirer flow and branches (``Tree.unpublish``).
Starting the event turns its planned content live (api.start_event).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from .functions import INGEST_PORTS, TREE_PORTS
from .ingest import new_secret
from .tables import ContentRow, EventRow, ProviderRow, ReservationRow
from .tree import Event, Tree, TreeError

LEAD_ENV = "NETFATE_STREAMING_LEAD_S"
LEAD_S = 120.0
"""How long before a reserved event's start its tree is pre-started (default)."""
MAX_LEAD_S = 24 * 3600.0
HELD = ("planned", "live")
"""Contents that hold their ports."""
PLANNABLE = ("scheduled", "started")
"""Events whose reservations are planned for."""


def lead_s() -> float:
    """The lead time from the environment; a bad value is a clear error."""
    raw = os.environ.get(LEAD_ENV, "").strip()
    if not raw:
        return LEAD_S
    try:
        v = float(raw)
    except ValueError:
        raise ValueError(f"{LEAD_ENV}={raw!r}: seconds, a number") from None
    if not 0 <= v <= MAX_LEAD_S:
        raise ValueError(f"{LEAD_ENV}={raw!r}: between 0 and {MAX_LEAD_S:.0f} seconds")
    return v


@dataclass(frozen=True)
class Booking:
    """A reservation as planning reads it."""

    event: int
    state: str
    """The event's state."""
    start: float
    """The event's start."""
    pe: str | None
    """The reserving user's access PE (None: not said; nothing is pre-started)."""


def wanted(
    bookings: Iterable[Booking], now: float, lead: float, grace: float
) -> dict[int, dict[str, int]]:
    """Event -> PE -> reservations, for the events inside their planning window
    (from ``lead`` before their start to ``grace`` after it)."""
    out: dict[int, dict[str, int]] = {}
    for b in bookings:
        if b.pe is None or b.state not in PLANNABLE:
            continue
        if b.start - lead <= now < b.start + grace:
            per = out.setdefault(b.event, {})
            per[b.pe] = per.get(b.pe, 0) + 1
    return out


def _free_port(taken: set[int], span: tuple[int, int]) -> int | None:
    return next((p for p in range(span[0], span[1], 2) if p not in taken), None)


def new_content(
    session: Session, e: EventRow, prov: ProviderRow, state: str, now: float
) -> ContentRow | None:
    """A content for event ``e`` with its acquirer's ingest port, the event's protocol
    (an SRT or RTMP flow's secret) and its tree port (added to the session), or None
    when no port is free."""
    held = list(session.scalars(select(ContentRow).where(ContentRow.state.in_(HELD))))
    port = _free_port({c.ingest_port for c in held if c.pe == prov.pe}, INGEST_PORTS)
    tree_port = _free_port({c.tree_port for c in held}, TREE_PORTS)
    if port is None or tree_port is None:
        return None
    c = ContentRow(
        id=f"ev{e.id}",
        event=e.id,
        provider=prov.name,
        pe=prov.pe,
        ingest_port=port,
        protocol=e.protocol,
        ingest_secret=new_secret(e.protocol),
        tree_port=tree_port,
        bitrate_bps=e.bitrate_kbps * 1000,
        state=state,
        started_at=now,
    )
    session.add(c)
    return c


def plan(session: Session, t: Tree, now: float) -> list[Event]:
    """The tree made equal to the reservations in their planning window; returns the
    decisions (the caller records them and saves the tree)."""
    lead, grace = lead_s(), t.limits.grace_s
    rows = session.execute(  # the loop runs every second: only the window's reservations
        select(ReservationRow.event, ReservationRow.pe, EventRow.state, EventRow.start)
        .join(EventRow, EventRow.id == ReservationRow.event)
        .where(EventRow.start <= now + lead, EventRow.start > now - grace)
    )
    want = wanted(
        (Booking(int(r[0]), str(r[2]), float(r[3]), r[1]) for r in rows), now, lead, grace
    )
    out: list[Event] = []
    held = {c.id: c for c in session.scalars(select(ContentRow).where(ContentRow.state.in_(HELD)))}
    for c in held.values():
        if c.state == "planned" and c.event not in want:
            out += t.unpublish(c.id, now)
            session.delete(c)
    for (cid, pe), p in list(t.plans.items()):
        row = held.get(cid)
        if p.until > now and (row is None or pe not in want.get(row.event, {})):
            out += t.unplan(cid, pe, now)
    for eid, pes in sorted(want.items()):
        out += _prestart(session, t, eid, pes, now)
    return out


def _prestart(
    session: Session, t: Tree, eid: int, pes: Mapping[str, int], now: float
) -> list[Event]:
    e = session.get(EventRow, eid)
    prov = session.get(ProviderRow, e.provider) if e is not None else None
    if e is None or prov is None:
        return []
    c = session.scalars(select(ContentRow).where(ContentRow.event == eid)).first()
    if c is None and e.state == "scheduled":
        c = new_content(session, e, prov, "planned", now)  # None: no port, the start says so
    if c is None or c.state not in HELD:
        return []
    if c.id not in t.contents:
        try:
            t.publish(c.id, prov.pe, e.bitrate_kbps * 1000.0)
        except TreeError:
            return []  # no room for the acquirer: the start will say so
    out: list[Event] = []
    for pe, n in sorted(pes.items()):
        out += t.prestart(c.id, pe, n, e.start + t.limits.grace_s, now)
    return out
