"""The where-is service: reads what the platform sees of users, merges it with the
core (whereis.py), records each user's history (bounded), and is the conduit's
`Locator`. It reads the core's tables only (no other service is imported):

    source     table (who writes it)                      how it names the user
    ---------  -----------------------------------------  ----------------------------
    login      events, kind UserLoggedIn (the firewall's  data.user: the login name,
               RADIUS server on an Access-Accept)         data.node: the CPE/PE
    host-seen  sdn_host_sightings (the SDN controller's   a MAC among the user's
               HostSeen on a switch port)                 devices
    lease      instances.stats of a running function      a MAC among the user's
               whose dnsmasq hands out leases (the vHG,   devices; the node is the
               a CPE's portal: stats.dhcp.lease_file and  function's
               .lease_seconds, reported via its agent)

A user's devices are the MACs their subscriptions list (`devices`). Reads never
write: `read` and `where` only read; `record` (the conduit's pass, and this
service's loop `step`) adds history rows.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from netfate.model.lifecycle import InstanceState
from netfate.orchestrator.sdn.tables import SdnHostSightingRow
from netfate.proto import dnsmasq
from netfate.store.db import serialize
from netfate.store.tables import EventRow, InstanceRow

from . import whereis as core
from .position import Position
from .states import SubscriptionState
from .tables import CatalogPositionRow, CatalogSubscriptionRow

LOGIN_EVENT = "UserLoggedIn"
LOGINS_READ = 5000
"""The newest logins read per pass (older ones are superseded for an active user)."""
HISTORY_ROWS = 100
"""Entries kept per user (the oldest go first)."""
PARSED = 256
"""Lease files whose parse is kept (at most 64 KiB each: vnf/leasefile.py)."""
SERIALIZE = "catalog"
"""The conduit's (conduit.SERIALIZE): its pass and this loop record positions one at
a time (PostgreSQL: the advisory lock; SQLite: a writing transaction holds the
database from its start), so no entry is written twice."""


@dataclass
class Seen:
    """Everything the sources say of some users (for `where`, and the API's answer)."""

    sightings: list[core.Sighting] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    """Lease lines refused: instance, node, line, text, reason."""


def _logins(session: Session, users: Mapping[str, Any]) -> Iterable[core.Sighting]:
    done: set[str] = set()
    for at, data in session.execute(
        select(EventRow.at, EventRow.data)
        .where(EventRow.kind == LOGIN_EVENT)
        .order_by(EventRow.at.desc(), EventRow.id.desc())
        .limit(LOGINS_READ)
    ):
        if not isinstance(data, dict):
            continue
        user, node = data.get("user"), data.get("node")
        if isinstance(user, str) and user in users and user not in done and isinstance(node, str):
            done.add(user)
            yield core.Sighting(user, node, core.LOGIN, float(at))


def _host_seen(session: Session, owners: Mapping[str, str]) -> Iterable[core.Sighting]:
    for s in session.scalars(
        select(SdnHostSightingRow).where(SdnHostSightingRow.mac.in_(sorted(owners)))
    ):
        port = f" port {s.port}" if s.port else ""
        yield core.Sighting(owners[s.mac], s.node, core.HOST_SEEN, float(s.at), None, s.mac + port)


@functools.lru_cache(maxsize=PARSED)
def _parsed(text: str) -> tuple[tuple[dnsmasq.Lease, ...], tuple[dnsmasq.Refusal, ...]]:
    """A lease file parsed once while it stays the same (the pass runs every second;
    a file changes when a lease is granted or renewed)."""
    leases, refused = dnsmasq.parse_lease_file(text)
    return tuple(leases), tuple(refused)


def _leases(session: Session, owners: Mapping[str, str], seen: Seen) -> None:
    rows = session.execute(
        select(InstanceRow.id, InstanceRow.name, InstanceRow.node, InstanceRow.updated_at,
               InstanceRow.stats)
        .where(InstanceRow.state == InstanceState.RUNNING.value)
        .order_by(InstanceRow.id)
    )  # fmt: skip
    for iid, name, node, updated_at, stats in rows:
        dhcp = stats.get("dhcp") if isinstance(stats, dict) else None
        text = dhcp.get("lease_file") if isinstance(dhcp, dict) else None
        if not isinstance(text, str) or not isinstance(dhcp, dict):
            continue
        leases, refused = _parsed(text)
        seen.refused += [
            {"instance": iid, "node": node, "line": r.line, "text": r.text, "reason": r.reason}
            for r in refused
        ]
        secs = dhcp.get("lease_seconds")
        length = secs if isinstance(secs, int) and not isinstance(secs, bool) and secs > 0 else None
        seen.sightings += core.lease_sightings(
            leases, owners, node, length, f"{name} ({iid})", float(updated_at)
        )


def owners_of(users: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """MAC (lower case) -> its user (a MAC two users list is the first one's)."""
    out: dict[str, str] = {}
    for user, macs in users.items():
        for m in macs:
            if isinstance(m, str):
                out.setdefault(m.lower(), user)
    return out


class Whereabouts:
    """The where-is service (module docstring)."""

    def __init__(self, history_rows: int = HISTORY_ROWS) -> None:
        self.history_rows = history_rows

    def read(self, session: Session, users: Mapping[str, Iterable[str]]) -> Seen:
        seen = Seen()
        if not users:
            return seen
        owners = owners_of(users)
        seen.sightings += _logins(session, users)
        if owners:
            seen.sightings += _host_seen(session, owners)
            _leases(session, owners, seen)
        return seen

    def where(self, session: Session, users: Mapping[str, Iterable[str]]) -> dict[str, Position]:
        fixes = core.locate(self.read(session, users).sightings, time.time())
        return {u: Position(u, f.node, f.source, f.at, f.why) for u, f in fixes.items()}

    def history(self, session: Session, user: str) -> list[CatalogPositionRow]:
        return history(session, user, self.history_rows)

    def record(self, session: Session, seen: Mapping[str, Position]) -> int:
        return record(session, seen, self.history_rows)

    def known(self, session: Session) -> dict[str, list[str]]:
        """The users this service follows: every user with an active subscription
        (with their devices) and every user a recent login names."""
        users: dict[str, list[str]] = {}
        for user, devices in session.execute(
            select(CatalogSubscriptionRow.user, CatalogSubscriptionRow.devices).where(
                CatalogSubscriptionRow.state == SubscriptionState.ACTIVE.value
            )
        ):
            users.setdefault(user, []).extend(m for m in devices or [] if isinstance(m, str))
        for (data,) in session.execute(
            select(EventRow.data)
            .where(EventRow.kind == LOGIN_EVENT)
            .order_by(EventRow.id.desc())
            .limit(LOGINS_READ)
        ):
            if isinstance(data, dict) and isinstance(data.get("user"), str):
                users.setdefault(data["user"], [])
        return users

    def step(self, session: Session) -> set[str]:
        """The service's loop: records where every known user is now (no node's
        desired state changes)."""
        serialize(session, SERIALIZE)
        self.record(session, self.where(session, self.known(session)))
        return set()

    def devices(self, session: Session, user: str) -> list[str]:
        """The MACs a user's subscriptions list (any state: an ended subscription's
        devices are still the user's)."""
        rows = session.scalars(
            select(CatalogSubscriptionRow.devices).where(CatalogSubscriptionRow.user == user)
        )
        return sorted({m.lower() for d in rows for m in (d or []) if isinstance(m, str)})


# ------------------------------------------------------------------ history


IN_CHUNK = 500
"""Users per IN list (SQLite's bound on a statement's parameters is 32,766 today,
999 in older builds)."""


def histories(
    session: Session, users: list[str], rows: int = HISTORY_ROWS
) -> dict[str, list[CatalogPositionRow]]:
    """Each user's `rows` newest recorded positions, newest first, in one query (a
    window per user) rather than one per user: a page of positions names hundreds."""
    out: dict[str, list[CatalogPositionRow]] = {}
    for i in range(0, len(users), IN_CHUNK):
        ranked = (
            select(
                CatalogPositionRow.id,
                func.row_number()
                .over(partition_by=CatalogPositionRow.user, order_by=CatalogPositionRow.id.desc())
                .label("k"),
            )
            .where(CatalogPositionRow.user.in_(users[i : i + IN_CHUNK]))
            .subquery()
        )
        q = (
            select(CatalogPositionRow)
            .join(ranked, ranked.c.id == CatalogPositionRow.id)
            .where(ranked.c.k <= rows)
            .order_by(CatalogPositionRow.user, CatalogPositionRow.id.desc())
        )
        for row in session.scalars(q):
            out.setdefault(row.user, []).append(row)
    return out


def history(session: Session, user: str, rows: int = HISTORY_ROWS) -> list[CatalogPositionRow]:
    """A user's recorded positions, newest first."""
    return list(
        session.scalars(
            select(CatalogPositionRow)
            .where(CatalogPositionRow.user == user)
            .order_by(CatalogPositionRow.id.desc())
            .limit(rows)
        )
    )


def record(session: Session, seen: Mapping[str, Position], rows: int = HISTORY_ROWS) -> int:
    """Adds each user's new position to their history (whereis.Track decides) and keeps
    their newest `rows` entries; returns the entries added."""
    added = 0
    now = time.time()
    for user, pos in sorted(seen.items()):
        kept = history(session, user, 1)  # the last entry is all the decision needs
        track = core.Track(rows, [core.Entry(r.node, r.source, r.seen_at, r.why) for r in kept])
        entry = track.observe(core.Fix(user, pos.node, pos.source, pos.at, pos.why))
        if entry is None:
            continue
        session.add(
            CatalogPositionRow(
                user=user, node=entry.node, source=entry.source, seen_at=entry.at,
                recorded_at=now, why=entry.why[:4000],
            )
        )  # fmt: skip
        session.flush()
        added += 1
        cut = session.scalar(
            select(CatalogPositionRow.id)
            .where(CatalogPositionRow.user == user)
            .order_by(CatalogPositionRow.id.desc())
            .offset(rows)
            .limit(1)
        )
        if cut is not None:
            session.execute(
                delete(CatalogPositionRow).where(
                    CatalogPositionRow.user == user, CatalogPositionRow.id <= cut
                )
            )
    return added
