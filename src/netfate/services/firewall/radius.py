"""The embedded RADIUS server: an asyncio UDP driver around proto.radius.ServerCore.

Started by the service router's lifespan, so it lives and dies with the
orchestrator process (FastAPI merges a router's lifespan into the app's; the app's
own lifespan has migrated the database by then). Why inside the orchestrator and
not a separate `netfate radius` process: an Access-Accept is where the paper's
policy acts (create or migrate the user's firewall), and that is a transaction on
the orchestrator's database with the coordinator's functions; one process keeps it
one transaction and lets the notifier wake the agents at once.

Listeners: `NETFATE_RADIUS_LISTEN` (default 127.0.0.1:1812; empty: none) plus the
rows of netfate_radius_listeners, which may name a network namespace: the socket
is then opened inside it (setns in a helper thread), so NASes in an emulated
network reach the server without the root namespace being routed anywhere.
Authentication and accounting share each port (RFC 2866's separate 1813 is
accepted too by listening on it).

Clients (NASes) and their secrets: netfate_radius_clients, by address or subnet.
Every Access-Request must carry a valid Message-Authenticator; what fails any
check is dropped and logged (never answered), as RFC 2865 asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import time
from typing import Any

from sqlalchemy import select

from netfate.orchestrator.notify import Notifier
from netfate.proto.radius import (
    AccessRequested,
    AccountingReceived,
    AcctStatus,
    Attr,
    PacketDropped,
    RadiusError,
    ServerCore,
)
from netfate.proto.radius.packet import NETFATE_VENDOR, U32, Value, vsa, vsas
from netfate.services.firewall import policy, steering
from netfate.services.firewall.passwords import verify_password
from netfate.services.firewall.tables import (
    NfAccountingRow,
    NfRadiusClientRow,
    NfRadiusListenerRow,
    NfUserRow,
)
from netfate.store.db import Database
from netfate.store.events import record_event
from netfate.store.tables import InstanceRow
from netfate.vnf.firewall.function import VSA_LAST_PACKET, VSA_RULES_CHUNK, VSA_RULES_VERSION

log = logging.getLogger("netfate.radius")
ENV_LISTEN = "NETFATE_RADIUS_LISTEN"
DEFAULT_LISTEN = "127.0.0.1:1812"
STATUS_NAMES = {1: "start", 2: "stop", 3: "interim"}
USER_CACHE_S = 2.0


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
        self.loop_task: asyncio.Task[None] | None = None
        self._users: dict[str, tuple[float, tuple[str, int, int] | None]] = {}

    # ---------------------------------------------------------------- lifecycle

    async def start(self, policy_interval: float = 0.5) -> None:
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
        self.loop_task = asyncio.create_task(self._policy_loop(policy_interval))

    async def stop(self) -> None:
        if self.loop_task is not None:
            self.loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.loop_task
        for t in list(self.tasks):
            t.cancel()
        for tr in self.transports.values():
            tr.close()
        self.transports.clear()

    def _listener_rows(self) -> list[tuple[str, int, str | None]]:
        with self.db.session() as s:
            return [(r.address, r.port, r.netns) for r in s.scalars(select(NfRadiusListenerRow))]

    def reload_clients(self) -> None:
        with self.db.session() as s:
            rows = [(r.address, r.secret) for r in s.scalars(select(NfRadiusClientRow))]
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

        class Proto(asyncio.DatagramProtocol):
            def __init__(self) -> None:
                self.transport: asyncio.DatagramTransport | None = None

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport  # type: ignore[assignment]

            def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
                if self.transport is not None:
                    svc.on_datagram(self.transport, data, (str(addr[0]), int(addr[1])))

        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(Proto, sock=sock)
        bound = sock.getsockname()
        self.transports[(address, int(bound[1]), ns)] = transport
        log.info("RADIUS listening on %s:%s%s", bound[0], bound[1], f" in {ns}" if ns else "")
        return str(bound[0]), int(bound[1])

    # ---------------------------------------------------------------- packets

    def on_datagram(
        self, transport: asyncio.DatagramTransport, data: bytes, peer: tuple[str, int]
    ) -> None:
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
                self._spawn(self._accounting(transport, ev))

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
            u = s.get(NfUserRow, name)
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
        if nas is None or nas.startswith("fw:"):
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
            user = s.get(NfUserRow, ev.user)
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
            if nas is not None and not nas.startswith("fw:"):
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
        self, transport: asyncio.DatagramTransport, ev: AccountingReceived
    ) -> None:
        try:
            attrs, touched = await asyncio.to_thread(self.account, ev)
            wire = self.core.accounting_response(ev, attrs)
        except Exception:
            log.exception("RADIUS accounting from %s failed; no answer", ev.peer[0])
            self.core.forget(ev)
            return
        transport.sendto(wire, ev.peer)
        if touched and self.notifier is not None:
            self.notifier.notify(touched)

    def account(self, ev: AccountingReceived) -> tuple[list[tuple[int, Value]], set[str]]:
        req = ev.request
        nas = req.text(Attr.NAS_IDENTIFIER) or ev.peer[0]
        attrs: list[tuple[int, Value]] = []
        touched: set[str] = set()

        def num(a: int) -> int:
            return req.integer(a) or 0

        with self.db.session() as s:
            s.add(
                NfAccountingRow(
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
            user = s.get(NfUserRow, ev.user) if ev.user else None
            if user is None:
                return attrs, touched
            if nas.startswith("fw:"):
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
            elif ev.status == AcctStatus.STOP and user.access_node == nas:
                touched = policy.release(s, user, "logged out (Accounting Stop)")
            elif ev.status == AcctStatus.START:
                record_event(s, "AccountingStarted", {"user": user.name, "nas": nas})
        return attrs, touched

    # ---------------------------------------------------------------- policy loop

    async def _policy_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                touched = await asyncio.to_thread(self._policy_step)
            except Exception:  # a database hiccup must not end the loop
                log.exception("firewall policy step failed")
                continue
            if touched and self.notifier is not None:
                self.notifier.notify(touched)

    def _policy_step(self) -> set[str]:
        with self.db.session() as s:
            # An orchestrator without NetFATE users (other scenarios, benchmarks) pays
            # one indexed lookup per step and nothing more.
            if s.scalar(select(NfUserRow.name).limit(1)) is None and (
                s.scalar(
                    select(InstanceRow.id).where(InstanceRow.descriptor == steering.PORTAL).limit(1)
                )
                is None
            ):
                return set()
            touched = policy.reconcile(s)
            touched |= policy.release_idle(s, time.time())
            s.flush()
            steering.sync(s)
            return touched
