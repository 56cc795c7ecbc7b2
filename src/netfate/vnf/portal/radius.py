"""The captive portal's RADIUS side: accounting of its sessions, and the RFC 5176
Disconnect server (the portal is a Dynamic Authorization Server).

- Accounting: Start on login, Interim-Update every `interim` s, Stop on logout or
  session timeout (ended here: the client leaves the gate's `allowed` set).
- Disconnect: UDP `dm_port` (default 3799; null: off) on the portal's addresses
  (its namespace's; `dm_address` narrows it to one), so the server reaches it at
  the address the portal's accounting came from. A Disconnect-Request is taken
  only from the configured RADIUS server address(es) with the shared secret and a
  valid Message-Authenticator (DasCore; anything else is dropped and logged), and
  only while the function is active (a frozen or standby copy stays silent: the
  server retransmits, and the copy that serves answers). Its session
  identification attributes (Acct-Session-Id, User-Name, Framed-IP-Address,
  Calling-Station-Id: all present must match) select the sessions; each one ends
  as a logout does (leaves `allowed`, its conntrack entries are deleted, it is
  forgotten) and gets an Accounting Stop with Acct-Terminate-Cause Admin-Reset;
  the answer is Disconnect-ACK, or Disconnect-NAK with Error-Cause 503 (Session
  Context Not Found) when nothing matches, 403 when NAS-Identifier/NAS-IP-Address
  name another NAS.

The Access-Request of a login is the HTTP front's (front.py); both use the
asyncio RADIUS clients of radius_client.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from typing import Any

from netfate.proto.radius import (
    AcctStatus,
    Attr,
    DasCore,
    DisconnectRequested,
    ErrorCause,
    PacketDropped,
    RadiusError,
    TerminateCause,
)
from netfate.vnf.portal.base import PortalBase, Session, station
from netfate.vnf.portal.radius_client import RadiusTimeout

log = logging.getLogger("netfate.vnf.portal")
DM_PORT = 3799  # RFC 5176 section 3.1
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # linux/in.h
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # linux/in.h
# struct in_pktinfo: ipi_ifindex, ipi_spec_dst (source to use), ipi_addr (destination)
PKTINFO = struct.Struct("@i4s4s")


class RadiusSide(PortalBase):
    """Accounting and the Disconnect server of the portal."""

    interim: float
    das: DasCore
    dm_sock: socket.socket | None
    dm_port: int | None
    dm_address: str
    tasks: list[asyncio.Task[None]]

    async def _account(
        self, s: Session, status: AcctStatus, cause: TerminateCause | None = None
    ) -> None:
        if self.acct is None:
            return
        attrs: list[tuple[int, Any]] = [
            (Attr.ACCT_STATUS_TYPE, int(status)),
            (Attr.ACCT_SESSION_ID, s.session_id),
            (Attr.USER_NAME, s.user),
            (Attr.NAS_IDENTIFIER, self.node or "portal"),
            (Attr.FRAMED_IP_ADDRESS, s.ip),
            (Attr.ACCT_SESSION_TIME, int(time.time() - s.started)),
            (Attr.EVENT_TIMESTAMP, int(time.time())),
        ]
        if s.mac:
            attrs.append((Attr.CALLING_STATION_ID, s.mac.replace(":", "-").upper()))
        if cause is not None and status == AcctStatus.STOP:
            attrs.append((Attr.ACCT_TERMINATE_CAUSE, int(cause)))
        await self.acct.account(attrs)

    async def _interim_loop(self) -> None:
        while True:
            await asyncio.sleep(self.interim)
            now = time.time()
            for ip, s in list(self.sessions.items()):
                if now - s.started > s.timeout:
                    self.sessions.pop(ip, None)
                    await asyncio.to_thread(self.gate.allow, ip, False)
                    with contextlib.suppress(RadiusTimeout):
                        await self._account(s, AcctStatus.STOP, TerminateCause.SESSION_TIMEOUT)
                    continue
                with contextlib.suppress(RadiusTimeout):
                    await self._account(s, AcctStatus.INTERIM_UPDATE)

    async def _open_dm(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # A `dm_address` may be configured a moment after the function starts
            # (as for the RADIUS client): bind to it anyway.
            sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
            # Bound to every address: answers must leave from the address the request
            # was sent to (RFC 5176 peers match replies by it), so learn it per datagram.
            sock.setsockopt(socket.SOL_IP, IP_PKTINFO, 1)
            sock.bind((self.dm_address, self.dm_port or 0))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        asyncio.get_running_loop().add_reader(sock.fileno(), self._dm_readable)
        self.dm_sock = sock
        self.dm_port = int(sock.getsockname()[1])
        log.info("Disconnect-Requests (RFC 5176) taken on UDP %s", self.dm_port)

    def _dm_readable(self) -> None:
        while self.dm_sock is not None:
            try:
                data, anc, _flags, addr = self.dm_sock.recvmsg(
                    4096, socket.CMSG_SPACE(PKTINFO.size)
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP errors queued on the socket
                continue
            local: str | None = None
            for level, kind, cdata in anc:
                if level == socket.SOL_IP and kind == IP_PKTINFO and len(cdata) >= PKTINFO.size:
                    local = socket.inet_ntoa(PKTINFO.unpack_from(cdata)[2])
            self._dm_datagram(data, (str(addr[0]), int(addr[1])), local)

    def _dm_send(self, wire: bytes, to: tuple[str, int], local: str | None) -> None:
        if self.dm_sock is None:
            return
        anc = []
        if local is not None:
            info = PKTINFO.pack(0, socket.inet_aton(local), bytes(4))
            anc.append((socket.SOL_IP, IP_PKTINFO, info))
        with contextlib.suppress(OSError):
            self.dm_sock.sendmsg([wire], anc, 0, to)

    def _dm_datagram(self, data: bytes, peer: tuple[str, int], local: str | None = None) -> None:
        if not self.active:
            # Frozen for a migration or a standby copy: the copy that serves answers
            # the server's retransmission (its sessions are the ones that count).
            self.counts["disconnect_dropped"] += 1
            log.info("Disconnect-Request from %s:%s ignored: not active", *peer)
            return
        events = self.das.receive(data, peer, time.monotonic(), time.time())
        for wire, to in self.das.pending():
            self._dm_send(wire, to, local)
        for ev in events:
            if isinstance(ev, PacketDropped):
                self.counts["disconnect_dropped"] += 1
                log.warning("Disconnect-Request from %s:%s dropped: %s", *ev.peer, ev.reason)
            else:
                t = asyncio.create_task(self._disconnect(ev, local))
                self.tasks.append(t)
                t.add_done_callback(self._task_done)

    def _task_done(self, t: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self.tasks.remove(t)

    def _matches(self, s: Session, ev: DisconnectRequested) -> bool:
        """RFC 5176 section 3: every session identification attribute present matches."""
        return (
            (ev.session_id is None or ev.session_id == s.session_id)
            and (ev.user is None or ev.user == s.user)
            and (ev.framed_ip is None or ev.framed_ip == s.ip)
            and (
                ev.calling_station is None
                or (bool(s.mac) and station(ev.calling_station) == station(s.mac))
            )
        )

    async def _disconnect(self, ev: DisconnectRequested, local: str | None) -> None:
        me = self.node or "portal"
        try:
            mine = {self.address, local} - {None, ""}
            if (ev.nas_identifier is not None and ev.nas_identifier != me) or (
                ev.nas_ip is not None and mine and ev.nas_ip not in mine
            ):
                self.counts["disconnect_naks"] += 1
                log.warning(
                    "Disconnect-Request for NAS %s/%s refused: this is %s/%s",
                    ev.nas_identifier, ev.nas_ip, me, self.address,
                )  # fmt: skip
                nak = self.das.nak(ev, ErrorCause.NAS_IDENTIFICATION_MISMATCH)
                self._dm_send(nak, ev.peer, local)
                return
            # Taken out of `sessions` before anything is awaited: a second request
            # (or a logout) cannot end the same session twice.
            ended = [s for s in list(self.sessions.values()) if self._matches(s, ev)]
            if not ended:
                self.counts["disconnect_naks"] += 1
                log.info(
                    "Disconnect-Request (session %s, user %s, ip %s): no such session",
                    ev.session_id, ev.user, ev.framed_ip,
                )  # fmt: skip
                nak = self.das.nak(ev, ErrorCause.SESSION_CONTEXT_NOT_FOUND)
                self._dm_send(nak, ev.peer, local)
                return
            for s in ended:
                self.sessions.pop(s.ip, None)
            await asyncio.to_thread(self.gate.end, [s.ip for s in ended])
            self.counts["disconnects"] += len(ended)
            self._dm_send(self.das.ack(ev), ev.peer, local)
        except RadiusError as e:  # the server's address left the configuration
            log.warning("Disconnect-Request from %s not answered: %s", ev.peer[0], e)
            self.das.forget(ev)
            return
        for s in ended:
            log.info(
                "session %s of %s (%s) ended by Disconnect-Request from %s",
                s.session_id, s.user, s.ip, ev.peer[0],
            )  # fmt: skip
            with contextlib.suppress(RadiusTimeout):
                await self._account(s, AcctStatus.STOP, TerminateCause.ADMIN_RESET)
