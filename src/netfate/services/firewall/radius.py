"""The embedded RADIUS server's asyncio UDP driver: sockets, threads and timers.

The server is four pieces: this driver; its sans-I/O core (core.py: ServerCore
for the NASes' requests, DisconnectCore for our RFC 5176 requests, datagrams and
`now` in, events and datagrams out); the login decisions, each one transaction
(logins.py); the Disconnect plan and the remembered NAS sessions (disconnect.py,
nas_sessions.py). The policy's own timers run in the service's reconcile loop
(reconcile.py), not here.

Started by the service's lifespan (its contract's, entered by the app's once the
database is migrated), so it lives and dies with the orchestrator process. Why
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
and at most MAX_NAS_SESSIONS are kept (the oldest go first); the accounting records
themselves (history) are cut to the newest KEEP_ACCOUNTING at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.orchestrator.notify import Notifier
from netfate.proto.radius import AccessRequested, AccountingReceived, PacketDropped
from netfate.services.firewall import disconnect, logins, nas_sessions, policy
from netfate.services.firewall.core import Clients, RadiusCore
from netfate.services.firewall.disconnect import (
    DisconnectFailed,
    DisconnectNaked,
    DisconnectSent,
    DmEvent,
    DmJob,
)
from netfate.services.firewall.logins import Logins
from netfate.services.firewall.nas_sessions import ListenerKey, NasSession, names_nas_session
from netfate.services.firewall.tables import (
    FirewallRadiusClientRow,
    FirewallRadiusListenerRow,
    FirewallUserRow,
)
from netfate.store.db import Database
from netfate.store.events import record_event

log = logging.getLogger("netfate.radius")
ENV_LISTEN = "NETFATE_RADIUS_LISTEN"
DEFAULT_LISTEN = "127.0.0.1:1812"
MAX_NAS_SESSIONS = 65536
NAS_SESSION_TTL = 86400.0  # a session no accounting mentioned for a day is forgotten
NAS_SESSION_PRUNE_S = 60.0  # how often the forgetting runs
KEEP_ACCOUNTING = 200_000  # accounting records kept (newest), pruned with the sessions


def _log_failure(what: str) -> Any:
    """A done-callback for background work: log its exception (a database hiccup)."""

    def done(f: Any) -> None:
        if not f.cancelled() and f.exception() is not None:
            log.error("%s failed: %s", what, f.exception())

    return done


class RadiusService:
    def __init__(self, db: Database, notifier: Notifier | None = None) -> None:
        self.db = db
        self.notifier = notifier
        self.clients = Clients()
        self.core = RadiusCore(self.clients)
        self.logins = Logins(db)
        self.transports: dict[ListenerKey, asyncio.DatagramTransport] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self._lock = threading.Lock()  # dm_counters["refused"]: worker threads
        # The NAS sessions' accounting, in arrival order (see the module docstring).
        self._sessions_worker = ThreadPoolExecutor(1, thread_name_prefix="netfate-nas-sessions")
        self._forget_task: asyncio.Task[None] | None = None
        self._dm_wake = asyncio.Event()
        self._dm_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._info_key = f"netfate_dm_{id(self)}"

    # The Disconnect side's knobs and figures live in its core.
    @property
    def dm_timeout(self) -> float:
        return self.core.dm.timeout

    @dm_timeout.setter
    def dm_timeout(self, value: float) -> None:
        self.core.dm.timeout = value

    @property
    def dm_retries(self) -> int:
        return self.core.dm.retries

    @dm_retries.setter
    def dm_retries(self, value: int) -> None:
        self.core.dm.retries = value

    @property
    def dm_counters(self) -> dict[str, int]:
        return self.core.dm.counters

    @property
    def dropped(self) -> list[str]:
        return self.core.dropped

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
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                # Before the first datagram: an answer to it leaves by this transport.
                svc.transports[lkey] = transport  # type: ignore[assignment]

            def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
                svc.on_datagram(data, (str(addr[0]), int(addr[1])), lkey)

        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(Proto, sock=sock)
        log.info("RADIUS listening on %s:%s%s", bound[0], bound[1], f" in {ns}" if ns else "")
        return str(bound[0]), int(bound[1])

    # ---------------------------------------------------------------- packets

    def _flush(self) -> None:
        """Send what the core has to send, each from its listener's socket."""
        for lk, wire, to in self.core.datagrams_to_send():
            transport = self.transports.get(lk)
            if transport is not None:
                with contextlib.suppress(OSError):  # unreachable now: a retransmission copes
                    transport.sendto(wire, to)

    def on_datagram(self, data: bytes, peer: tuple[str, int], listener: ListenerKey) -> None:
        events = self.core.receive(data, peer, listener, time.monotonic())
        self._flush()
        for ev in events:
            if isinstance(ev, PacketDropped):
                log.warning("RADIUS packet from %s:%s dropped: %s", *ev.peer, ev.reason)
            elif isinstance(ev, AccessRequested):
                self._spawn(self._access(listener, ev))
            elif isinstance(ev, AccountingReceived):
                self._spawn(self._accounting(listener, ev))
            else:
                self._dm_event(ev)

    def _spawn(self, coro: Any) -> None:
        t = asyncio.create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    def _answer(self, listener: ListenerKey, wire: bytes, to: tuple[str, int]) -> None:
        transport = self.transports.get(listener)
        if transport is not None:
            transport.sendto(wire, to)

    async def _access(self, listener: ListenerKey, ev: AccessRequested) -> None:
        server = self.core.server
        try:
            ok, attrs, reason, touched = await asyncio.to_thread(self.logins.decide, ev)
            wire = server.accept(ev, attrs) if ok else server.reject(ev, reason or None)
        except Exception:
            log.exception("RADIUS decision for %s failed; no answer", ev.user)
            server.forget(ev)
            return
        self._answer(listener, wire, ev.peer)
        if touched and self.notifier is not None:
            self.notifier.notify(touched)

    async def _accounting(self, listener: ListenerKey, ev: AccountingReceived) -> None:
        try:
            if names_nas_session(ev, listener):
                # Submitted now, before this task's first await: in arrival order.
                loop = asyncio.get_running_loop()
                account = self.logins.account
                attrs, touched = await loop.run_in_executor(
                    self._sessions_worker, account, ev, listener
                )
            else:
                attrs, touched = await asyncio.to_thread(self.logins.account, ev, None)
            wire = self.core.server.accounting_response(ev, attrs)
        except Exception:
            log.exception("RADIUS accounting from %s failed; no answer", ev.peer[0])
            self.core.server.forget(ev)
            return
        self._answer(listener, wire, ev.peer)
        if touched and self.notifier is not None:
            self.notifier.notify(touched)

    # ---------------------------------------------------------------- NAS sessions

    @property
    def nas_sessions(self) -> OrderedDict[tuple[str, str], NasSession]:
        """The NAS sessions a release would end now, oldest first (a read)."""
        return nas_sessions.open_sessions(self.db)

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
        oldest beyond MAX_NAS_SESSIONS, and accounting records beyond the newest
        KEEP_ACCOUNTING (sessions worker). Returns how many sessions went."""
        gone = nas_sessions.prune(self.db, now, NAS_SESSION_TTL, MAX_NAS_SESSIONS)
        logins.prune_accounting(self.db, KEEP_ACCOUNTING)
        return gone

    # ---------------------------------------------------------------- RFC 5176

    def dm_status(self) -> tuple[dict[str, int], int]:
        """The Disconnect counters (sent, acked, naked, failed, refused) and how many
        NAS sessions are remembered now (the ones a release would end)."""
        n = nas_sessions.count_open(self.db)
        with self._lock:
            return dict(self.dm_counters), n

    def on_release(self, s: Session, user: FirewallUserRow, reason: str) -> None:
        """policy.RELEASE_HOOKS: end every session `user` has at a NAS now, once the
        release commits (in a worker thread or the loop; never blocks on the network)."""
        jobs, refused = disconnect.plan(s, user, reason, self.clients.secret_for)
        for r in refused:
            with self._lock:
                self.dm_counters["refused"] += 1
            log.warning(
                "no Disconnect-Request for %s's session %s at %s (%s)",
                user.name, r.session.key[1], r.session.peer[0], r.why,
            )  # fmt: skip
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
        events = self.core.dm.send(jobs, self.transports, time.monotonic(), time.time())
        self._flush()
        for ev in events:
            self._dm_event(ev)
        sent = [ev.job.session.key for ev in events if isinstance(ev, DisconnectSent)]
        if sent:
            # On the sessions worker: a Stop the NAS sends in answer comes after it.
            mark = nas_sessions.mark_disconnected
            try:
                work = self._sessions_worker.submit(mark, self.db, sent, time.time())
            except RuntimeError:  # the service has stopped: the NAS's Stop will tell
                log.warning("RADIUS server stopped: %d sessions not marked disconnected", len(sent))
            else:
                work.add_done_callback(_log_failure("marking sessions disconnected"))
        self._dm_wake.set()

    async def _dm_timers(self) -> None:
        """Retransmit unanswered Disconnect-Requests; give up after the last one."""
        while True:
            deadline = self.core.dm.next_deadline()
            delay = max(0.0, deadline - time.monotonic()) if deadline is not None else 3600.0
            self._dm_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dm_wake.wait(), delay)
            events = self.core.dm.poll(time.monotonic())
            self._flush()
            for ev in events:
                self._dm_event(ev)

    def _dm_event(self, ev: DmEvent) -> None:
        kind, data = disconnect.event_record(ev)
        failed = isinstance(ev, DisconnectFailed | DisconnectNaked)
        log.log(logging.WARNING if failed else logging.INFO, "%s: %s", kind, data)
        self._spawn(asyncio.to_thread(self._record, kind, data))

    def _record(self, kind: str, data: dict[str, Any]) -> None:
        with self.db.session() as s:
            record_event(s, kind, data)
