"""The sessions NASes reported by accounting (firewall_nas_sessions): what an RFC
5176 Disconnect-Request needs to end one (disconnect.py), kept in the database so
that a release right after an orchestrator restart still ends them.

Written in the transaction that records the accounting packet (logins.py), on the
RADIUS server's sessions worker only, so a session's Start, Interims and Stop (and
our Disconnect's mark) apply in the order they came (radius.py says how).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from netfate.proto.radius import AccountingReceived, AcctStatus, Attr, RadiusError
from netfate.services.firewall.tables import FirewallNasSessionRow
from netfate.store.db import Database
from netfate.vnf.firewall.function import NAS_PREFIX

ListenerKey = tuple[str, int, str | None]
"""(address, port, network namespace) of one of the server's UDP listeners."""


@dataclass
class NasSession:
    """A session a NAS reported by accounting and has not stopped."""

    key: tuple[str, str]
    """(NAS address, Acct-Session-Id)."""
    user: str
    nas_identifier: str | None
    peer: tuple[str, int]
    """Where the accounting came from (the NAS's address)."""
    listener: ListenerKey
    """The listener it came in on: the Disconnect-Request leaves from its socket."""
    framed_ip: str | None
    started: float
    seen: float

    @classmethod
    def from_row(cls, r: FirewallNasSessionRow) -> NasSession:
        return cls(
            key=(r.nas, r.session_id),
            user=r.user,
            nas_identifier=r.nas_identifier,
            peer=(r.nas, r.nas_port),
            listener=(r.listener_address, r.listener_port, r.listener_netns),
            framed_ip=r.framed_ip,
            started=r.started,
            seen=r.seen,
        )


def names_nas_session(ev: AccountingReceived, listener: ListenerKey | None) -> bool:
    """Accounting of a user's session at a NAS that came in on one of our
    listeners: a release would end it. A firewall's own accounting is not one."""
    nas_id = ev.request.text(Attr.NAS_IDENTIFIER)
    return bool(ev.user) and listener is not None and not (nas_id or "").startswith(NAS_PREFIX)


def track(s: Session, ev: AccountingReceived, listener: ListenerKey, now: float) -> bool:
    """Remember (Start/Interim) or forget (Stop) a NAS's session in `s`; for a Stop,
    True when it is not the user's current one (see logins.Logins.account)."""
    R = FirewallNasSessionRow
    key = (ev.peer[0], ev.session_id)
    row = s.get(R, key)
    if ev.status == AcctStatus.STOP:
        if row is not None:
            s.delete(row)
            if row.disconnected_at is not None:
                return True
            if row.current:
                return False
        # Not the current one: superseded if the user has a newer session.
        newer = select(R.session_id).where(R.user == ev.user, R.current.is_(True))
        return s.scalar(newer.limit(1)) is not None
    if row is not None and row.disconnected_at is not None:
        return False  # an Interim that crossed our Disconnect-Request
    try:
        framed = ev.request.get(Attr.FRAMED_IP_ADDRESS)
    except RadiusError:
        framed = None
    if row is None:
        row = R(nas=key[0], session_id=key[1], started=now, current=False)
        s.add(row)
    row.user = ev.user
    row.nas_identifier = ev.request.text(Attr.NAS_IDENTIFIER)
    row.nas_port = ev.peer[1]
    row.listener_address, row.listener_port, row.listener_netns = listener
    row.framed_ip = str(framed) if isinstance(framed, ipaddress.IPv4Address) else None
    row.seen = now
    if ev.status == AcctStatus.START:
        s.execute(
            update(R)
            .where(R.user == ev.user, R.current.is_(True))
            .values(current=False)
            .execution_options(synchronize_session=False)
        )
        row.current = True
    return False


def open_sessions(db: Database) -> OrderedDict[tuple[str, str], NasSession]:
    """The NAS sessions a release would end now, oldest first (a read)."""
    R = FirewallNasSessionRow
    with db.session() as s:
        rows = s.scalars(select(R).where(R.disconnected_at.is_(None)).order_by(R.seen))
        return OrderedDict((n.key, n) for n in map(NasSession.from_row, rows))


def of_user(s: Session, user: str) -> list[NasSession]:
    """`user`'s sessions a release ends, oldest first, read in `s`."""
    R = FirewallNasSessionRow
    rows = s.scalars(select(R).where(R.user == user, R.disconnected_at.is_(None)).order_by(R.seen))
    return [NasSession.from_row(r) for r in rows]


def count_open(db: Database) -> int:
    R = FirewallNasSessionRow
    with db.session() as s:
        n = s.scalar(select(func.count()).select_from(R).where(R.disconnected_at.is_(None)))
    return int(n or 0)


def mark_disconnected(db: Database, keys: list[tuple[str, str]], at: float) -> None:
    """Our Disconnect-Requests for these sessions went out (sessions worker)."""
    R = FirewallNasSessionRow
    with db.session() as s:
        for nas, sid in keys:
            s.execute(
                update(R)
                .where(R.nas == nas, R.session_id == sid)
                .values(disconnected_at=at)
                .execution_options(synchronize_session=False)
            )


def prune(db: Database, now: float, ttl: float, limit: int) -> int:
    """Forget the sessions no accounting mentioned for `ttl` seconds, then the
    oldest beyond `limit` (sessions worker). Returns how many went."""
    R = FirewallNasSessionRow
    with db.session() as s:
        old = list(s.execute(select(R.nas, R.session_id).where(R.seen < now - ttl)))
        excess = int(s.scalar(select(func.count()).select_from(R)) or 0) - len(old)
        excess -= limit
        if excess > 0:
            kept = select(R.nas, R.session_id).where(R.seen >= now - ttl)
            old += list(s.execute(kept.order_by(R.seen).limit(excess)))
        for nas, sid in old:
            s.execute(delete(R).where(R.nas == nas, R.session_id == sid))
        gone = len(old)
    return int(gone)
