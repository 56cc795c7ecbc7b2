"""Where is user U: the small interface the conduit reads, and what feeds it today.

No platform service answers "where is user U" yet (issue 15, section 4). The
conduit reads positions only through `Locator`, so such a service can replace
`PlatformRecords` without the conduit changing. `PlatformRecords` reads what the
platform already records, in the core's tables (no other service is imported):

    source       table (who writes it)                       how it names the user
    -----------  ------------------------------------------  ---------------------------
    login        events, kind UserLoggedIn (the firewall's   data.user: the login name,
                 RADIUS server on an Access-Accept)          data.node: the CPE/PE
    host-seen    sdn_host_sightings (the SDN controller's    a MAC the subscription
                 HostSeen on a switch port)                  lists among its devices

The newest of the two wins. DHCP leases are not read (a vHG reports them into its
instance's stats, per PN: nothing ties a lease to a catalog user yet).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.orchestrator.sdn.tables import SdnHostSightingRow
from netfate.store.tables import EventRow

LOGIN_EVENT = "UserLoggedIn"
LOGINS_READ = 5000
"""The newest logins read per pass (older ones are superseded for an active user)."""


@dataclass(frozen=True)
class Position:
    user: str
    node: str
    source: str
    """login or host-seen (or declared: given when subscribing)."""
    at: float
    """When the source saw the user there (epoch seconds)."""


class Locator(Protocol):
    """Answers where each user is now (None: never seen)."""

    def where(self, session: Session, users: Mapping[str, Iterable[str]]) -> dict[str, Position]:
        """`users`: user -> the MACs of their devices. Returns the users seen."""
        ...


class PlatformRecords:
    """Logins from the event log and switch-port sightings (module docstring)."""

    def where(self, session: Session, users: Mapping[str, Iterable[str]]) -> dict[str, Position]:
        if not users:
            return {}
        out: dict[str, Position] = {}
        logins = session.execute(
            select(EventRow.at, EventRow.data)
            .where(EventRow.kind == LOGIN_EVENT)
            .order_by(EventRow.at.desc(), EventRow.id.desc())
            .limit(LOGINS_READ)
        ).all()
        for at, data in logins:
            if not isinstance(data, dict):
                continue
            user, node = data.get("user"), data.get("node")
            if (
                isinstance(user, str)
                and user in users
                and user not in out
                and isinstance(node, str)
            ):
                out[user] = Position(user, node, "login", float(at))
        macs = {m.lower(): u for u, devices in users.items() for m in devices if isinstance(m, str)}
        if macs:
            for s in session.scalars(
                select(SdnHostSightingRow).where(SdnHostSightingRow.mac.in_(sorted(macs)))
            ):
                user = macs[s.mac]
                seen = out.get(user)
                if seen is None or s.at > seen.at:
                    out[user] = Position(user, s.node, "host-seen", float(s.at))
        return out
