"""The RADIUS server's decisions: an Access-Request's answer (the password, then the
login policy) and what an accounting packet does, each one transaction on the
orchestrator's database. No socket, no event loop: the UDP driver (radius.py) runs
them in worker threads and sends what they return.

A login from a portal of a node (its NAS-Identifier) runs the paper's policy
(policy.on_login: create or migrate the user's firewall). Anything else (radtest,
a firewall's own request) only checks the password, from a short-lived cache, so
it writes nothing unless it is rejected (a reject is recorded).
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import delete, select

from netfate.proto.radius import AccessRequested, AccountingReceived, AcctStatus, Attr
from netfate.proto.radius.packet import NETFATE_VENDOR, U32, Value, vsa, vsas
from netfate.services.firewall import nas_sessions, policy
from netfate.services.firewall.nas_sessions import ListenerKey, names_nas_session
from netfate.services.firewall.passwords import verify_password
from netfate.services.firewall.tables import FirewallAccountingRow, FirewallUserRow
from netfate.store.db import Database
from netfate.store.events import record_event
from netfate.vnf.firewall.function import (
    NAS_PREFIX,
    VSA_LAST_PACKET,
    VSA_RULES_CHUNK,
    VSA_RULES_VERSION,
)

log = logging.getLogger("netfate.radius")
STATUS_NAMES = {1: "start", 2: "stop", 3: "interim"}
USER_CACHE_S = 2.0

Attrs = list[tuple[int, Value]]


class Logins:
    """Access and accounting decisions over `db` (thread-safe but for the cache,
    whose races only cost a second read)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._users: dict[str, tuple[float, tuple[str, int, int] | None]] = {}

    def _cached_user(self, name: str) -> tuple[str, int, int] | None:
        """(password hash, session timeout, idle timeout), read at most every
        USER_CACHE_S seconds per user: a password change applies within that time."""
        now = time.monotonic()
        hit = self._users.get(name)
        if hit is not None and now - hit[0] < USER_CACHE_S:
            return hit[1]
        with self.db.session() as s:
            u = s.get(FirewallUserRow, name)
            val = None if u is None else (u.password_hash, u.session_timeout, u.idle_timeout)
        if len(self._users) > 10_000:
            self._users.clear()
        self._users[name] = (now, val)
        return val

    def decide(self, ev: AccessRequested) -> tuple[bool, Attrs, str, set[str]]:
        """Check the password; on success run the login policy. One transaction.
        Returns (accept, reply attributes, reject message, nodes touched)."""
        nas = ev.request.text(Attr.NAS_IDENTIFIER)
        mac = ev.request.text(Attr.CALLING_STATION_ID)
        framed = ev.request.get(Attr.FRAMED_IP_ADDRESS)
        if nas is None or nas.startswith(NAS_PREFIX):
            # Not a portal of a node (radtest, a firewall): no policy, so no write;
            # the user's row comes from a short-lived cache. A reject still goes to
            # the database below, to be recorded.
            cached = self._cached_user(ev.user)
            if cached is not None and verify_password(ev.password, cached[0]):
                attrs0: Attrs = [
                    (Attr.SESSION_TIMEOUT, int(cached[1])),
                    (Attr.IDLE_TIMEOUT, int(cached[2])),
                ]
                return True, attrs0, "", set()
        with self.db.session() as s:
            user = s.get(FirewallUserRow, ev.user)
            if user is None or not verify_password(ev.password, user.password_hash):
                record_event(
                    s,
                    "UserLoginRejected",
                    {
                        "user": ev.user[:64],
                        "nas": (nas or "")[:64],
                        "reason": "unknown user or wrong password",
                    },
                )
                return False, [], "", set()
            attrs: Attrs = [
                (Attr.SESSION_TIMEOUT, int(user.session_timeout)),
                (Attr.IDLE_TIMEOUT, int(user.idle_timeout)),
            ]
            touched: set[str] = set()
            if nas is not None and not nas.startswith(NAS_PREFIX):
                out = policy.on_login(s, user, nas, mac, str(framed) if framed else None)
                if not out.accept:
                    record_event(
                        s,
                        "UserLoginRejected",
                        {"user": user.name, "nas": nas, "reason": out.reason},
                    )
                    return False, [], out.reason[:200], set()
                touched = out.touched
            return True, attrs, "", touched

    def account(
        self, ev: AccountingReceived, listener: ListenerKey | None = None
    ) -> tuple[Attrs, set[str]]:
        """Record one accounting packet and act on it; a NAS session's (`listener`
        given, see names_nas_session) is remembered or forgotten in the same
        transaction. A Stop of a session that is not the user's current one (ended
        by our Disconnect-Request, or older than their newest login) is `superseded`
        and must not release the user again."""
        req = ev.request
        nas = req.text(Attr.NAS_IDENTIFIER) or ev.peer[0]
        attrs: Attrs = []
        touched: set[str] = set()

        def num(a: int) -> int:
            return req.integer(a) or 0

        with self.db.session() as s:
            s.add(
                FirewallAccountingRow(
                    at=time.time(),
                    user=ev.user[:64],
                    session_id=ev.session_id[:128],
                    status=STATUS_NAMES.get(ev.status, str(ev.status)),
                    nas=nas[:128],
                    input_octets=num(Attr.ACCT_INPUT_OCTETS),
                    output_octets=num(Attr.ACCT_OUTPUT_OCTETS),
                    session_time=num(Attr.ACCT_SESSION_TIME),
                )
            )
            superseded = False
            if listener is not None and names_nas_session(ev, listener):
                superseded = nas_sessions.track(s, ev, listener, time.time())
            user = s.get(FirewallUserRow, ev.user) if ev.user else None
            if user is None:
                return attrs, touched
            if nas.startswith(NAS_PREFIX):
                subs = dict(vsas(req, NETFATE_VENDOR))
                version = int.from_bytes(subs.get(VSA_RULES_VERSION, b"\0" * 4)[:4], "big")
                last = int.from_bytes(subs.get(VSA_LAST_PACKET, b"\0" * 4)[:4], "big")
                counters = {
                    "out_bytes": num(Attr.ACCT_INPUT_OCTETS),
                    "in_bytes": num(Attr.ACCT_OUTPUT_OCTETS),
                    "out_packets": num(Attr.ACCT_INPUT_PACKETS),
                    "in_packets": num(Attr.ACCT_OUTPUT_PACKETS),
                }
                newer = policy.on_firewall_accounting(s, user, version, last, counters)
                if newer is not None:
                    v, doc = newer
                    attrs.append(vsa(VSA_RULES_VERSION, U32.pack(v)))
                    for i in range(0, len(doc), 240):
                        attrs.append(vsa(VSA_RULES_CHUNK, doc[i : i + 240]))
            elif ev.status == AcctStatus.STOP and user.access_node == nas and not superseded:
                touched = policy.release(s, user, "logged out (Accounting Stop)")
            elif ev.status == AcctStatus.STOP and superseded:
                log.info("Stop of %s's earlier session %s at %s", user.name, ev.session_id, nas)
            elif ev.status == AcctStatus.START:
                record_event(s, "AccountingStarted", {"user": user.name, "nas": nas})
        return attrs, touched


def prune_accounting(db: Database, keep: int, batch: int = 2_000) -> int:
    """Delete accounting records beyond the newest `keep`, `batch` per transaction (a
    prune never holds the writer long) until none is left over. A record is history
    for people: nothing decides on an old one, but every Interim-Update of every
    portal and firewall adds one, so without this the table only grows. Returns how
    many went."""
    if keep < 0 or batch < 1:
        raise ValueError("need keep >= 0 and batch >= 1")
    R = FirewallAccountingRow
    gone = 0
    while True:
        with db.session() as s:
            cut = s.scalar(select(R.id).order_by(R.id.desc()).offset(keep).limit(1))
            if cut is None:
                return gone
            old = list(s.scalars(select(R.id).where(R.id <= cut).order_by(R.id).limit(batch)))
            s.execute(delete(R).where(R.id.in_(old)))
        gone += len(old)
