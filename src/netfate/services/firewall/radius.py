"""The embedded RADIUS server: an asyncio UDP driver around proto.radius.ServerCore.

Started by the service's lifespan (its contract's, entered by the app's once the
database is migrated), so it lives and dies with the orchestrator process; the
policy's own timers run in the service's reconcile loop (reconcile.py). Why
inside the orchestrator and not a separate `netfate radius` process: an
Access-Accept is where the paper's policy acts (create or migrate the user's
firewall), and that is a transaction on the orchestrator's database with the
coordinator's functions; one process keeps it one transaction and lets the
notifier wake the agents at once.

Listeners: `NETFATE_RADIUS_LISTEN` (default 127.0.0.1:1812; empty: none) plus the
rows of firewall_radius_listeners, which may name a network namespace: the socket
is then opened inside it (setns in a helper thread), so NASes in an emulated
network reach the server without the root namespace being routed anywhere.
Authentication and accounting share each port (RFC 2866's separate 1813 is
accepted too by listening on it).

Clients (NASes) and their secrets: firewall_radius_clients, by address or subnet.
Every Access-Request must carry a valid Message-Authenticator; what fails any
check is dropped and logged (never answered), as RFC 2865 asks.

Disconnect (RFC 5176; the server is the Dynamic Authorization Client): when the
policy releases a user (idle, session timeout, logout or deletion through the API,
policy.release), every session of theirs that a NAS reported by accounting (Start
or Interim-Update, not yet Stop) is ended at that NAS:

    accounting Start/Interim from NAS 192.168.2.254:40123 on the listener
    (10.10.0.1, 1813, netns pe1) -> remembered: session id, user, Framed-IP, NAS
    release committed -> Disconnect-Request (Acct-Session-Id, User-Name,
    Framed-IP-Address, NAS-Identifier, Event-Timestamp, Message-Authenticator)
    sent from that listener's socket (so from the address the NAS knows as its
    RADIUS server, inside the namespace) to the NAS address, UDP `dm_port` (the
    portal instance's config, else the setting `dm_port`, else 3799)
    Disconnect-ACK -> event DisconnectAcked; NAK -> DisconnectNaked (Error-Cause);
    no valid answer after 1 + DM_RETRIES sends DM_TIMEOUT s apart -> DisconnectFailed

The sessions to end are taken when the release happens and named by
Acct-Session-Id, so a session the user opens afterwards (a new login, at the same
or another NAS) is never ended by it. Only sessions learnt through a listener in a
namespace, or from 127.0.0.0/8, get a Disconnect: nothing is sent anywhere else.

What is remembered is a table (firewall_nas_sessions), written in the transaction
that records the accounting packet, before the NAS gets its Accounting-Response:
a release right after an orchestrator restart (kill -9 included) still ends the
sessions reported before it, without waiting for the NASes' next Interim-Update.
The NAS sessions' accounting is handled by one worker thread in arrival order, so
a session's Start, Interims and Stop (and our Disconnect's mark) apply in the
order they came; a firewall's accounting, which names no NAS session, keeps the
thread pool. Sessions no accounting mentioned for NAS_SESSION_TTL are forgotten,
and at most MAX_NAS_SESSIONS are kept (the oldest go first).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from netfate.orchestrator.notify import Notifier
from netfate.proto.radius import (
    AccessRequested,
    AccountingReceived,
    AcctStatus,
    Attr,
    ClientCore,
    Code,
    ErrorCause,
    PacketDropped,
    RadiusError,
    RequestTimedOut,
    ResponseReceived,
    ServerCore,
)
from netfate.proto.radius.packet import NETFATE_VENDOR, U32, Value, vsa, vsas
from netfate.services.firewall import policy
from netfate.services.firewall.passwords import verify_password
from netfate.services.firewall.tables import (
    FirewallAccountingRow,
    FirewallNasSessionRow,
    FirewallRadiusClientRow,
    FirewallRadiusListenerRow,
    FirewallUserRow,
)
from netfate.store.db import Database
from netfate.store.events import record_event
from netfate.store.tables import InstanceRow
from netfate.vnf.firewall.function import (
    NAS_PREFIX,
    VSA_LAST_PACKET,
    VSA_RULES_CHUNK,
    VSA_RULES_VERSION,
)

log = logging.getLogger("netfate.radius")
ENV_LISTEN = "NETFATE_RADIUS_LISTEN"
DEFAULT_LISTEN = "127.0.0.1:1812"
STATUS_NAMES = {1: "start", 2: "stop", 3: "interim"}
USER_CACHE_S = 2.0
DM_PORT = 3799  # RFC 5176 section 3.1
DM_TIMEOUT = 1.0
DM_RETRIES = 3  # so at most 4 transmissions per Disconnect-Request
MAX_NAS_SESSIONS = 65536
NAS_SESSION_TTL = 86400.0  # a session no accounting mentioned for a day is forgotten
NAS_SESSION_PRUNE_S = 60.0  # how often the forgetting runs
ListenerKey = tuple[str, int, str | None]


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


@dataclass(frozen=True)
class DmJob:
    """One Disconnect-Request to send, decided by a release."""

    session: NasSession
    to: tuple[str, int]
    secret: bytes
    reason: str


def _udp_port(value: Any) -> int | None:
    """`value` if it is a UDP port number, else None."""
    return value if isinstance(value, int) and 0 < value < 65536 else None


def _log_failure(what: str) -> Any:
    """A done-callback for background work: log its exception (a database hiccup)."""

    def done(f: Any) -> None:
        if not f.cancelled() and f.exception() is not None:
            log.error("%s failed: %s", what, f.exception())

    return done


def _error_cause_name(code: int | None) -> str:
    try:
        return ErrorCause(code).name if code is not None else ""
    except ValueError:
        return str(code)


class Clients:
    """Address or subnet -> secret, reloaded from the database when it changes."""

    def __init__(self) -> None:
        self.exact: dict[str, bytes] = {}
        self.nets: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, bytes]] = []

    def load(self, rows: list[tuple[str, str]]) -> None:
        exact, nets = {}, []
        for addr, secret in rows:
            if "/" in addr:
                try:
                    nets.append((ipaddress.ip_network(addr, strict=False), secret.encode()))
                except ValueError:
                    log.warning("ignoring RADIUS client with bad subnet %r", addr)
            else:
                exact[addr] = secret.encode()
        # Longest prefix first, so a specific client's secret wins over a subnet's.
        nets.sort(key=lambda n: n[0].prefixlen, reverse=True)
        self.exact, self.nets = exact, nets

    def secret_for(self, addr: str) -> bytes | None:
        s = self.exact.get(addr)
        if s is not None:
            return s
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return None
        for net, secret in self.nets:
            if ip in net:
                return secret
        return None


class RadiusService:
    def __init__(self, db: Database, notifier: Notifier | None = None) -> None:
        self.db = db
        self.notifier = notifier
        self.clients = Clients()
        self.core = ServerCore(self.clients.secret_for)
        self.transports: dict[tuple[str, int, str | None], asyncio.DatagramTransport] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.dropped: list[str] = []  # recent drop reasons (bounded), for the API
        self._users: dict[str, tuple[float, tuple[str, int, int] | None]] = {}
        # RFC 5176: the Disconnect-Requests in flight (the NAS sessions are a table).
        self.dm_timeout, self.dm_retries = DM_TIMEOUT, DM_RETRIES
        self._lock = threading.Lock()  # dm_counters: the loop and worker threads
        # The NAS sessions' accounting, in arrival order (see the module docstring).
        self._sessions_worker = ThreadPoolExecutor(1, thread_name_prefix="netfate-nas-sessions")
        self._forget_task: asyncio.Task[None] | None = None
        self._dm_cores: dict[tuple[ListenerKey, str, int, bytes], ClientCore] = {}
        self._dm_wake = asyncio.Event()
        self._dm_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._info_key = f"netfate_dm_{id(self)}"
        self.dm_counters = {"sent": 0, "acked": 0, "naked": 0, "failed": 0, "refused": 0}

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._dm_wake = asyncio.Event()
        self._dm_task = asyncio.create_task(self._dm_timers())
        self._forget_task = asyncio.create_task(self._forget_old_sessions())
        policy.RELEASE_HOOKS.append(self.on_release)
        await asyncio.to_thread(self.reload_clients)
        listen = os.environ.get(ENV_LISTEN, DEFAULT_LISTEN)
        for item in filter(None, (x.strip() for x in listen.split(","))):
            host, _, port_text = item.rpartition(":")
            try:
                await self.listen(host, int(port_text), None)
            except (OSError, ValueError) as e:
                # Another orchestrator on this machine may hold the port: log, go on.
                log.warning("RADIUS listener %s not opened: %s", item, e)
        rows = await asyncio.to_thread(self._listener_rows)
        for address, port, ns in rows:
            try:
                await self.listen(address, port, ns)
            except (OSError, ValueError) as e:
                log.warning("RADIUS listener %s:%s (netns %s) not opened: %s", address, port, ns, e)

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            policy.RELEASE_HOOKS.remove(self.on_release)
        for task in (self._dm_task, self._forget_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for t in list(self.tasks):
            t.cancel()
        for tr in self.transports.values():
            tr.close()
        self.transports.clear()
        self._sessions_worker.shutdown(wait=False, cancel_futures=True)

    def _listener_rows(self) -> list[tuple[str, int, str | None]]:
        with self.db.session() as s:
            return [
                (r.address, r.port, r.netns) for r in s.scalars(select(FirewallRadiusListenerRow))
            ]

    def reload_clients(self) -> None:
        with self.db.session() as s:
            rows = [(r.address, r.secret) for r in s.scalars(select(FirewallRadiusClientRow))]
        self.clients.load(rows)

    async def listen(self, address: str, port: int, ns: str | None) -> tuple[str, int]:
        """Open one UDP listener (inside `ns` when given); returns the bound address."""
        key = (address, port, ns)
        if key in self.transports:
            return address, port
        from netfate.host import netns

        sock = await asyncio.to_thread(netns.socket_in, ns, socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((address, port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        svc = self
        bound = sock.getsockname()
        lkey: ListenerKey = (address, int(bound[1]), ns)

        class Proto(asyncio.DatagramProtocol):
            def __init__(self) -> None:
                self.transport: asyncio.DatagramTransport | None = None

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport  # type: ignore[assignment]

            def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
                if self.transport is not None:
                    svc.on_datagram(self.transport, data, (str(addr[0]), int(addr[1])), lkey)

        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(Proto, sock=sock)
        self.transports[lkey] = transport
        log.info("RADIUS listening on %s:%s%s", bound[0], bound[1], f" in {ns}" if ns else "")
        return str(bound[0]), int(bound[1])

    # ---------------------------------------------------------------- packets

    def on_datagram(
        self,
        transport: asyncio.DatagramTransport,
        data: bytes,
        peer: tuple[str, int],
        listener: ListenerKey | None = None,
    ) -> None:
        if data[:1] in (bytes([Code.DISCONNECT_ACK]), bytes([Code.DISCONNECT_NAK])):
            self._dm_answer(listener, data, peer)
            return
        try:
            events = self.core.receive(data, peer, time.monotonic())
        except RadiusError as e:  # the core drops instead; this is a second net
            events = [PacketDropped(peer, str(e))]
        for wire, to in self.core.pending():
            transport.sendto(wire, to)
        for ev in events:
            if isinstance(ev, PacketDropped):
                log.warning("RADIUS packet from %s:%s dropped: %s", *ev.peer, ev.reason)
                self.dropped = [*self.dropped[-49:], f"{ev.peer[0]}: {ev.reason}"]
            elif isinstance(ev, AccessRequested):
                self._spawn(self._access(transport, ev))
            elif isinstance(ev, AccountingReceived):
                self._spawn(self._accounting(transport, ev, listener))

    def _spawn(self, coro: Any) -> None:
        t = asyncio.create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def _access(self, transport: asyncio.DatagramTransport, ev: AccessRequested) -> None:
        try:
            ok, attrs, reason, touched = await asyncio.to_thread(self.decide, ev)
            wire = self.core.accept(ev, attrs) if ok else self.core.reject(ev, reason or None)
        except Exception:
            log.exception("RADIUS decision for %s failed; no answer", ev.user)
            self.core.forget(ev)
            return
        transport.sendto(wire, ev.peer)
        if touched and self.notifier is not None:
            self.notifier.notify(touched)

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

    def decide(self, ev: AccessRequested) -> tuple[bool, list[tuple[int, Value]], str, set[str]]:
        """Check the password; on success run the login policy. One transaction."""
        nas = ev.request.text(Attr.NAS_IDENTIFIER)
        mac = ev.request.text(Attr.CALLING_STATION_ID)
        framed = ev.request.get(Attr.FRAMED_IP_ADDRESS)
        if nas is None or nas.startswith(NAS_PREFIX):
            # Not a portal of a node (radtest, a firewall): no policy, so no write;
            # the user's row comes from a short-lived cache. A reject still goes to
            # the database below, to be recorded.
            cached = self._cached_user(ev.user)
            if cached is not None and verify_password(ev.password, cached[0]):
                attrs0: list[tuple[int, Value]] = [
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
            attrs: list[tuple[int, Value]] = [
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

    async def _accounting(
        self,
        transport: asyncio.DatagramTransport,
        ev: AccountingReceived,
        listener: ListenerKey | None = None,
    ) -> None:
        try:
            if self._names_nas_session(ev, listener):
                # Submitted now, before this task's first await: in arrival order.
                loop = asyncio.get_running_loop()
                work = loop.run_in_executor(self._sessions_worker, self.account, ev, listener)
                attrs, touched = await work
            else:
                attrs, touched = await asyncio.to_thread(self.account, ev, None)
            wire = self.core.accounting_response(ev, attrs)
        except Exception:
            log.exception("RADIUS accounting from %s failed; no answer", ev.peer[0])
            self.core.forget(ev)
            return
        transport.sendto(wire, ev.peer)
        if touched and self.notifier is not None:
            self.notifier.notify(touched)

    def account(
        self, ev: AccountingReceived, listener: ListenerKey | None = None
    ) -> tuple[list[tuple[int, Value]], set[str]]:
        """Record one accounting packet and act on it; a NAS session's (`listener`
        given, see _names_nas_session) is remembered or forgotten in the same
        transaction. A Stop of a session that is not the user's current one (ended
        by our Disconnect-Request, or older than their newest login) is `superseded`
        and must not release the user again."""
        req = ev.request
        nas = req.text(Attr.NAS_IDENTIFIER) or ev.peer[0]
        attrs: list[tuple[int, Value]] = []
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
            if listener is not None and self._names_nas_session(ev, listener):
                superseded = self._track_session(s, ev, listener)
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

    # ---------------------------------------------------------------- RFC 5176

    @staticmethod
    def _names_nas_session(ev: AccountingReceived, listener: ListenerKey | None) -> bool:
        """Accounting of a user's session at a NAS that came in on one of our
        listeners: a release would end it. A firewall's own accounting is not one."""
        nas_id = ev.request.text(Attr.NAS_IDENTIFIER)
        return bool(ev.user) and listener is not None and not (nas_id or "").startswith(NAS_PREFIX)

    def _track_session(self, s: Session, ev: AccountingReceived, listener: ListenerKey) -> bool:
        """Remember (Start/Interim) or forget (Stop) a NAS's session in `s`; for a Stop,
        True when it is not the user's current session (see account()). Runs on the
        sessions worker only, so the table changes in the order packets came."""
        R = FirewallNasSessionRow
        key = (ev.peer[0], ev.session_id)
        row = s.get(R, key)
        now = time.time()
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

    @property
    def nas_sessions(self) -> OrderedDict[tuple[str, str], NasSession]:
        """The NAS sessions a release would end now, oldest first (a read)."""
        R = FirewallNasSessionRow
        with self.db.session() as s:
            rows = s.scalars(select(R).where(R.disconnected_at.is_(None)).order_by(R.seen))
            return OrderedDict((n.key, n) for n in map(NasSession.from_row, rows))

    def _mark_disconnected(self, keys: list[tuple[str, str]], at: float) -> None:
        """Our Disconnect-Requests for these sessions went out (sessions worker)."""
        R = FirewallNasSessionRow
        with self.db.session() as s:
            for nas, sid in keys:
                s.execute(
                    update(R)
                    .where(R.nas == nas, R.session_id == sid)
                    .values(disconnected_at=at)
                    .execution_options(synchronize_session=False)
                )

    async def _forget_old_sessions(self) -> None:
        """prune_nas_sessions every NAS_SESSION_PRUNE_S, on the sessions worker."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(NAS_SESSION_PRUNE_S)
            try:
                await loop.run_in_executor(
                    self._sessions_worker, self.prune_nas_sessions, time.time()
                )
            except Exception:  # a database hiccup must not end the task
                log.exception("forgetting old NAS sessions failed")

    def prune_nas_sessions(self, now: float) -> int:
        """Forget the sessions no accounting mentioned for NAS_SESSION_TTL, then the
        oldest beyond MAX_NAS_SESSIONS (sessions worker). Returns how many went."""
        R = FirewallNasSessionRow
        with self.db.session() as s:
            old = list(s.execute(select(R.nas, R.session_id).where(R.seen < now - NAS_SESSION_TTL)))
            excess = int(s.scalar(select(func.count()).select_from(R)) or 0) - len(old)
            excess -= MAX_NAS_SESSIONS
            if excess > 0:
                kept = select(R.nas, R.session_id).where(R.seen >= now - NAS_SESSION_TTL)
                old += list(s.execute(kept.order_by(R.seen).limit(excess)))
            for nas, sid in old:
                s.execute(delete(R).where(R.nas == nas, R.session_id == sid))
            gone = len(old)
        return int(gone)

    @staticmethod
    def may_send(listener: ListenerKey, address: str) -> bool:
        """Disconnects go into a namespace (from a listener opened there) or to
        127.0.0.0/8; never from the root namespace to anywhere else."""
        if listener[2] is not None:
            return True
        try:
            return ipaddress.ip_address(address).is_loopback
        except ValueError:
            return False

    def _dm_port(self, s: Session, nas: NasSession) -> int | None:
        """The NAS's Disconnect port: its portal instance's `dm_port` (None: it takes
        none), else the service setting `dm_port`, else 3799."""
        for inst in s.scalars(select(InstanceRow).where(InstanceRow.descriptor == policy.PORTAL)):
            if inst.state in policy.LIVE_STATES and (inst.ip or "").split("/")[0] == nas.peer[0]:
                cfg = inst.config or {}
                if "dm_port" in cfg:
                    return _udp_port(cfg["dm_port"])
        return _udp_port(policy.setting(s, "dm_port", DM_PORT)) or DM_PORT

    def dm_status(self) -> tuple[dict[str, int], int]:
        """The Disconnect counters (sent, acked, naked, failed, refused) and how many
        NAS sessions are remembered now (the ones a release would end)."""
        R = FirewallNasSessionRow
        with self.db.session() as s:
            n = s.scalar(select(func.count()).select_from(R).where(R.disconnected_at.is_(None)))
        with self._lock:
            return dict(self.dm_counters), int(n or 0)

    def on_release(self, s: Session, user: FirewallUserRow, reason: str) -> None:
        """policy.RELEASE_HOOKS: end every session `user` has at a NAS now, once the
        release commits (in a worker thread or the loop; never blocks on the network)."""
        R = FirewallNasSessionRow
        rows = s.scalars(
            select(R).where(R.user == user.name, R.disconnected_at.is_(None)).order_by(R.seen)
        )
        sessions = [NasSession.from_row(r) for r in rows]
        jobs: list[DmJob] = []
        for n in sessions:
            port = self._dm_port(s, n)
            secret = self.clients.secret_for(n.peer[0])
            if port is None or secret is None or not self.may_send(n.listener, n.peer[0]):
                with self._lock:
                    self.dm_counters["refused"] += 1
                log.warning(
                    "no Disconnect-Request for %s's session %s at %s (%s)",
                    user.name, n.key[1], n.peer[0],
                    "no secret" if secret is None else
                    "the NAS takes none" if port is None else "outside the namespaces",
                )  # fmt: skip
                continue
            jobs.append(DmJob(n, (n.peer[0], port), secret, reason))
        if not jobs:
            return
        pending: list[DmJob] = s.info.setdefault(self._info_key, [])
        if not pending:
            sa_event.listen(s, "after_commit", self._after_commit, once=True)
            sa_event.listen(s, "after_rollback", self._after_rollback, once=True)
        pending.extend(jobs)

    def _after_commit(self, s: Session) -> None:
        jobs: list[DmJob] = s.info.pop(self._info_key, [])
        with contextlib.suppress(ValueError, KeyError):
            sa_event.remove(s, "after_rollback", self._after_rollback)
        if jobs and self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._send_disconnects, jobs)
            except RuntimeError:  # the loop is closed: the service has stopped
                log.warning("RADIUS server stopped: %d Disconnect-Requests not sent", len(jobs))

    def _after_rollback(self, s: Session) -> None:
        s.info.pop(self._info_key, None)
        with contextlib.suppress(ValueError, KeyError):
            sa_event.remove(s, "after_commit", self._after_commit)

    def _send_disconnects(self, jobs: list[DmJob]) -> None:
        now = time.monotonic()
        sent: list[tuple[str, str]] = []
        for job in jobs:
            n = job.session
            transport = self.transports.get(n.listener)
            if transport is None:
                self._dm_event("DisconnectFailed", job, "the listener is closed")
                continue
            ck = (n.listener, job.to[0], job.to[1], job.secret)
            core = self._dm_cores.get(ck)
            if core is None:
                core = self._dm_cores[ck] = ClientCore(
                    job.secret, self.dm_timeout, self.dm_retries, require_message_authenticator=True
                )
            attrs: list[tuple[int, Value]] = [
                (Attr.ACCT_SESSION_ID, n.key[1]),
                (Attr.USER_NAME, n.user),
            ]
            if n.framed_ip:
                attrs.append((Attr.FRAMED_IP_ADDRESS, n.framed_ip))
            if n.nas_identifier:
                attrs.append((Attr.NAS_IDENTIFIER, n.nas_identifier))
            attrs.append((Attr.EVENT_TIMESTAMP, int(time.time())))
            try:
                _ident, wire = core.disconnect_request(attrs, now, tag=job)
            except RadiusError as e:  # 256 in flight to one NAS, or an attribute too long
                self._dm_event("DisconnectFailed", job, str(e))
                continue
            sent.append(n.key)
            self._dm_send(transport, wire, job.to)
            self.dm_counters["sent"] += 1
            self._dm_event("DisconnectSent", job, "")
        if sent:
            # On the sessions worker: a Stop the NAS sends in answer comes after it.
            try:
                work = self._sessions_worker.submit(self._mark_disconnected, sent, time.time())
            except RuntimeError:  # the service has stopped: the NAS's Stop will tell
                log.warning("RADIUS server stopped: %d sessions not marked disconnected", len(sent))
            else:
                work.add_done_callback(_log_failure("marking sessions disconnected"))
        self._dm_wake.set()

    def _dm_send(
        self, transport: asyncio.DatagramTransport, wire: bytes, to: tuple[str, int]
    ) -> None:
        with contextlib.suppress(OSError):  # unreachable now: the retransmission tries again
            transport.sendto(wire, to)

    def _dm_answer(self, listener: ListenerKey | None, data: bytes, peer: tuple[str, int]) -> None:
        """A Disconnect-ACK/NAK: only from the address and port the request went to."""
        now = time.monotonic()
        events: list[ResponseReceived] = []
        for (lk, ip, port, _secret), core in self._dm_cores.items():
            if lk == listener and (ip, port) == peer:
                events += core.receive(data, now)
        if not events:
            reason = "Disconnect answer matching no request, or not verifying (forged?)"
            log.warning("RADIUS packet from %s:%s dropped: %s", *peer, reason)
            self.dropped = [*self.dropped[-49:], f"{peer[0]}: {reason}"]
            return
        for ev in events:
            job = ev.tag
            if not isinstance(job, DmJob):
                continue
            if ev.response.code == Code.DISCONNECT_ACK:
                self.dm_counters["acked"] += 1
                self._dm_event("DisconnectAcked", job, "", rtt_ms=round(ev.rtt * 1000, 1))
            else:
                self.dm_counters["naked"] += 1
                cause = ev.response.integer(Attr.ERROR_CAUSE)
                self._dm_event(
                    "DisconnectNaked",
                    job,
                    _error_cause_name(cause),
                    error_cause=cause,
                )

    async def _dm_timers(self) -> None:
        """Retransmit unanswered Disconnect-Requests; give up after the last one."""
        while True:
            deadlines = [d for c in self._dm_cores.values() if (d := c.next_deadline()) is not None]
            delay = max(0.0, min(deadlines) - time.monotonic()) if deadlines else 3600.0
            self._dm_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dm_wake.wait(), delay)
            now = time.monotonic()
            for (lk, ip, port, _secret), core in list(self._dm_cores.items()):
                resend, dead = core.poll(now)
                transport = self.transports.get(lk)
                for wire in resend:
                    if transport is not None:
                        self._dm_send(transport, wire, (ip, port))
                for gone in dead:
                    if isinstance(gone, RequestTimedOut) and isinstance(gone.tag, DmJob):
                        self.dm_counters["failed"] += 1
                        tries = 1 + core.retries
                        self._dm_event(
                            "DisconnectFailed", gone.tag, f"no valid answer to {tries} sends"
                        )
                if core.in_flight() == 0:
                    del self._dm_cores[(lk, ip, port, _secret)]

    def _dm_event(self, kind: str, job: DmJob, detail: str, **extra: Any) -> None:
        n = job.session
        data: dict[str, Any] = {
            "user": n.user,
            "session": n.key[1],
            "nas": n.nas_identifier or n.peer[0],
            "to": f"{job.to[0]}:{job.to[1]}",
            "netns": n.listener[2],
            "reason": job.reason,
            **extra,
        }
        if detail:
            data["detail"] = detail
        level = logging.WARNING if kind in ("DisconnectFailed", "DisconnectNaked") else logging.INFO
        log.log(level, "%s: %s", kind, data)
        self._spawn(asyncio.to_thread(self._record, kind, data))

    def _record(self, kind: str, data: dict[str, Any]) -> None:
        with self.db.session() as s:
            record_event(s, kind, data)
