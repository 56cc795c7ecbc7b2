"""Captive portal of a CPE.

- Unauthenticated clients use the portal as their gateway (DHCP option 3 from the
  portal's dnsmasq). nftables in the portal's namespace redirects their web
  traffic (TCP 80 to any address) to the portal's own HTTP server, which answers
  with a redirect to the login page, and forwards nothing else of theirs.
- RFC 8910: dnsmasq announces the RFC 8908 API URI in DHCP option 114.
- RFC 8908: GET /api/captive answers application/captive+json with `captive`,
  `user-portal-url` and, once logged in, `seconds-remaining`.
- Login: RADIUS Access-Request, PAP, Message-Authenticator on every request (and
  required on every answer), NAS-Identifier = the CPE's node name,
  Calling-Station-Id = the client's MAC (from the neighbour table),
  Framed-IP-Address = the client's address. On Access-Accept the client's address
  joins the nft set `allowed` (forwarded from then on) and accounting Start is
  sent; Interim-Update every `interim` s; Stop on logout or session timeout, and
  (Admin-Reboot) for each session when the function stops, except in a frozen or
  standby copy and for the sessions a restart carries to the next process (the
  agent's export, stop, start, import for a new configuration: see hand_over).
- Abuse: every field is length-bounded and HTML-escaped on output; login POSTs are
  rate-limited per client address (429), bodies are capped (413).
- RFC 5176 Disconnect (the portal is a Dynamic Authorization Server): UDP
  `dm_port` (default 3799; null: off) on the portal's addresses (its namespace's;
  `dm_address` narrows it to one), so the server reaches it at the address the
  portal's accounting came from. A Disconnect-Request
  is taken only from the configured RADIUS server address(es) with the shared
  secret and a valid Message-Authenticator (anything else is dropped and logged),
  and only while the function is active (a frozen or standby copy stays silent:
  the server retransmits, and the copy that serves answers). Its session
  identification attributes (Acct-Session-Id, User-Name, Framed-IP-Address,
  Calling-Station-Id: all present must match) select the sessions; each one ends
  as a logout does (leaves `allowed`, its conntrack entries are deleted, it is
  forgotten) and gets an Accounting Stop with Acct-Terminate-Cause Admin-Reset;
  the answer is Disconnect-ACK, or Disconnect-NAK with Error-Cause 503 (Session
  Context Not Found) when nothing matches, 403 when NAS-Identifier/NAS-IP-Address
  name another NAS.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import os
import secrets
import socket
import struct
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from netfate.host import nft
from netfate.model.ratelimit import WindowCounter
from netfate.proto.radius import (
    AcctStatus,
    Attr,
    Code,
    DasCore,
    DisconnectRequested,
    ErrorCause,
    PacketDropped,
    RadiusError,
    TerminateCause,
)
from netfate.vnf.portal.http import Request, Response, serve
from netfate.vnf.portal.radius_client import RadiusClient, RadiusTimeout
from netfate.vnf.runtime import Context, Function

log = logging.getLogger("netfate.vnf.portal")
TABLE = "netfate_portal"
CAPTIVE_JSON = "application/captive+json"
MAX_USER = 64
MAX_PASSWORD = 128
RATE_WINDOW = 10.0
RATE_POSTS = 5
MAX_TRACKED = 4096
DM_PORT = 3799  # RFC 5176 section 3.1
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # linux/in.h
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # linux/in.h
# struct in_pktinfo: ipi_ifindex, ipi_spec_dst (source to use), ipi_addr (destination)
PKTINFO = struct.Struct("@i4s4s")


@dataclass
class Session:
    user: str
    ip: str
    mac: str
    session_id: str
    started: float
    timeout: int
    idle_timeout: int


def _hostport(text: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    return host, int(port)


def _station(text: str) -> str:
    """A MAC as Calling-Station-Id compares: hex digits only, upper case."""
    return "".join(ch for ch in text.upper() if ch in "0123456789ABCDEF")


def neighbour_mac(ip: str) -> str:
    """The client's MAC from this namespace's ARP table ("" if unknown)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/arp").read_text().splitlines()[1:]:
            f = line.split()
            if len(f) >= 4 and f[0] == ip and f[3] != "00:00:00:00:00:00":
                return f[3]
    return ""


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:sans-serif;max-width:28em;margin:3em auto;padding:0 1em}}
label{{display:block;margin:.6em 0}}input{{width:100%;padding:.4em}}
.err{{color:#a00}}.ok{{color:#070}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""


class Portal(Function):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        c = ctx.config
        self.node = str(c.get("node", ""))
        self.port = int(c.get("port", 80))
        self.address = str(c.get("address", ""))  # the portal's own IP (for URLs)
        rad = dict(c.get("radius") or {})
        self.radius_auth = _hostport(str(rad.get("server", "127.0.0.1:1812")), 1812)
        self.radius_acct = _hostport(str(rad.get("acct_server", rad.get("server", ""))), 1813)
        self.secret = str(rad.get("secret", "")).encode()
        self.require_ma = bool(rad.get("require_message_authenticator", True))
        dm = c.get("dm_port", DM_PORT)
        self.dm_port: int | None = None if dm is None or dm is False else int(dm)
        self.dm_address = str(c.get("dm_address") or "0.0.0.0")
        # RFC 5176: Disconnect-Requests come from the RADIUS server(s) we use, with
        # the same secret; from nowhere else.
        servers = {self.radius_auth[0], self.radius_acct[0]} - {""}
        self.das = DasCore({a: self.secret for a in servers})
        self.dm_sock: socket.socket | None = None
        self.interim = float(c.get("interim", 30.0))
        self.dhcp: dict[str, Any] = dict(c.get("dhcp") or {})
        self.nft_enabled = bool(c.get("nft", True))
        self.sessions: dict[str, Session] = {}
        # Sessions whose state a restart carries to the next process (hand_over).
        self.handed_on: set[str] = set()
        self.posts = WindowCounter(RATE_POSTS, RATE_WINDOW, MAX_TRACKED)
        self.auth: RadiusClient | None = None
        self.acct: RadiusClient | None = None
        self.server: asyncio.Server | None = None
        self.dnsmasq: subprocess.Popen[bytes] | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.counts = {
            "logins": 0,
            "rejects": 0,
            "rate_limited": 0,
            "radius_timeouts": 0,
            "disconnects": 0,
            "disconnect_naks": 0,
            "disconnect_dropped": 0,
        }

    # ---------------------------------------------------------------- lifecycle

    def url(self, path: str, local: str = "") -> str:
        host = self.address or local or "portal"
        return f"http://{host}{'' if self.port == 80 else f':{self.port}'}{path}"

    async def start(self) -> None:
        self.auth = RadiusClient(self.radius_auth, self.secret, 1.0, 2, self.require_ma)
        self.acct = RadiusClient(self.radius_acct, self.secret, 1.0, 2, self.require_ma)
        await self.auth.open()
        await self.acct.open()
        if self.dm_port is not None:
            await self._open_dm()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", self.port))
        sock.listen(128)
        self.server = await serve(self.handle, sock)
        self.port = int(sock.getsockname()[1])
        if self.nft_enabled:
            await asyncio.to_thread(self._nft_setup)
        if self.dhcp:
            self._start_dnsmasq()
        self.tasks.append(asyncio.create_task(self._interim_loop()))

    async def stop(self) -> None:
        # A frozen copy (migrated away) or a standby one does not end the sessions:
        # they live on in the copy that serves; nor does a restart the ones it hands on.
        if self.active:
            for s in list(self.sessions.values()):
                if s.session_id in self.handed_on:
                    continue
                with contextlib.suppress(Exception):
                    await self._account(s, AcctStatus.STOP, TerminateCause.ADMIN_REBOOT)
        if self.dm_sock is not None:
            asyncio.get_running_loop().remove_reader(self.dm_sock.fileno())
            self.dm_sock.close()
            self.dm_sock = None
        for t in self.tasks:
            t.cancel()
        if self.server is not None:
            self.server.close()
        for c in (self.auth, self.acct):
            if c is not None:
                await c.close()
        if self.dnsmasq is not None and self.dnsmasq.poll() is None:
            self.dnsmasq.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.dnsmasq.wait(3)
            if self.dnsmasq.poll() is None:
                self.dnsmasq.kill()

    def _nft_setup(self) -> None:
        t = {"family": "inet", "table": TABLE}
        redirect = {"redirect": {"port": self.port}}
        nft.apply(
            nft.document(
                [
                    *nft.fresh_table("inet", TABLE),
                    {"add": {"set": {**t, "name": "allowed", "type": "ipv4_addr"}}},
                    {
                        "add": {
                            "chain": {
                                **t,
                                "name": "pre",
                                "type": "nat",
                                "hook": "prerouting",
                                "prio": -100,
                                "policy": "accept",
                            }
                        }
                    },
                    {
                        "add": {
                            "chain": {
                                **t,
                                "name": "fwd",
                                "type": "filter",
                                "hook": "forward",
                                "prio": 0,
                                "policy": "drop",
                            }
                        }
                    },
                    # Web traffic of unauthenticated clients to anywhere else: to us.
                    {
                        "add": {
                            "rule": {
                                **t,
                                "chain": "pre",
                                "expr": [
                                    {
                                        "match": {
                                            "op": "!=",
                                            "left": {
                                                "payload": {"protocol": "ip", "field": "saddr"}
                                            },
                                            "right": "@allowed",
                                        }
                                    },
                                    {
                                        "match": {
                                            "op": "!=",
                                            "left": {"fib": {"result": "type", "flags": ["daddr"]}},
                                            "right": "local",
                                        }
                                    },
                                    {
                                        "match": {
                                            "op": "==",
                                            "left": {
                                                "payload": {"protocol": "tcp", "field": "dport"}
                                            },
                                            "right": 80,
                                        }
                                    },
                                    redirect,
                                ],
                            }
                        }
                    },
                    {
                        "add": {
                            "rule": {
                                **t,
                                "chain": "fwd",
                                "expr": [
                                    {
                                        "match": {
                                            "op": "in",
                                            "left": {"ct": {"key": "state"}},
                                            "right": ["established", "related"],
                                        }
                                    },
                                    {"accept": None},
                                ],
                            }
                        }
                    },
                    {
                        "add": {
                            "rule": {
                                **t,
                                "chain": "fwd",
                                "expr": [
                                    {
                                        "match": {
                                            "op": "==",
                                            "left": {
                                                "payload": {"protocol": "ip", "field": "saddr"}
                                            },
                                            "right": "@allowed",
                                        }
                                    },
                                    {"accept": None},
                                ],
                            }
                        }
                    },
                ]
            )
        )
        # A one-armed router: forward, and never tell clients to bypass us.
        for key, value in (("ipv4/ip_forward", "1"), ("ipv4/conf/all/send_redirects", "0")):
            with contextlib.suppress(OSError):
                Path("/proc/sys/net", key).write_text(value)

    def _allow(self, ip: str, yes: bool) -> None:
        if not self.nft_enabled:
            return
        op = "add" if yes else "delete"
        with contextlib.suppress(RuntimeError):
            elem = {"family": "inet", "table": TABLE, "name": "allowed", "elem": [ip]}
            nft.apply(nft.document([{op: {"element": elem}}]))

    def _start_dnsmasq(self) -> None:
        d = self.dhcp
        lease = Path(f"/tmp/netfate-portal-{self.ctx.instance}.leases")
        argv = [
            "dnsmasq",
            "--no-daemon",
            "--conf-file=/dev/null",
            "--port=0",
            f"--interface={d.get('interface', 'eth0')}",
            "--bind-dynamic",
            f"--dhcp-range={d['range']}",
            f"--dhcp-leasefile={lease}",
            # RFC 8910: option 114 carries the URI of the RFC 8908 API.
            f"--dhcp-option=114,{self.url('/api/captive')}",
        ]
        if d.get("router"):
            argv.append(f"--dhcp-option=3,{d['router']}")
        for host in d.get("hosts", []):
            argv.append(f"--dhcp-host={host}")
        self.dnsmasq = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # ---------------------------------------------------------------- HTTP

    def page(self, title: str, body: str, status: int = 200) -> Response:
        doc = PAGE.format(title=html.escape(title), body=body)
        return Response(status, doc.encode())

    def login_form(self, message: str = "", status: int = 200) -> Response:
        msg = f'<p class="err" role="alert">{html.escape(message)}</p>' if message else ""
        body = (
            f"{msg}<form method=post action=/login>"
            f"<label>User <input name=username maxlength={MAX_USER} autocomplete=username "
            f"required></label>"
            f"<label>Password <input name=password type=password maxlength={MAX_PASSWORD} "
            f"autocomplete=current-password required></label>"
            f"<button type=submit>Log in</button></form>"
        )
        return self.page(f"Log in at {self.node or 'this access point'}", body, status)

    async def handle(self, req: Request) -> Response:
        host = req.headers.get("host", "")
        me = self.address or req.local
        own = {me, f"{me}:{self.port}", "portal"}
        if req.path == "/api/captive":
            return self.captive_api(req)
        if host not in own:
            # A redirected request for another site: send the browser to the login page.
            return Response(302, b"", "text/plain", {"Location": self.url("/login", req.local)})
        if req.path in ("/", "/login") and req.method == "GET":
            s = self.sessions.get(req.peer)
            if s is not None:
                return self.page("You are online", self._online_body(s))
            return self.login_form()
        if req.path == "/login" and req.method == "POST":
            return await self.login(req)
        if req.path == "/logout" and req.method == "POST":
            s = self.sessions.pop(req.peer, None)
            if s is not None:
                await asyncio.to_thread(self._allow, s.ip, False)
                with contextlib.suppress(RadiusTimeout):
                    await self._account(s, AcctStatus.STOP, TerminateCause.USER_REQUEST)
            return self.login_form("You are logged out.")
        if req.path in ("/", "/login", "/logout"):
            return Response(405, b"method not allowed\n", "text/plain")
        return Response(404, b"not found\n", "text/plain")

    def _online_body(self, s: Session) -> str:
        left = max(0, int(s.started + s.timeout - time.time()))
        return (
            f'<p class="ok">Logged in as <b id="user">{html.escape(s.user)}</b>. '
            f"Session ends in {left} s.</p>"
            "<form method=post action=/logout><button type=submit>Log out</button></form>"
        )

    def captive_api(self, req: Request) -> Response:
        s = self.sessions.get(req.peer)
        doc: dict[str, Any] = {
            "captive": s is None,
            "user-portal-url": self.url("/login", req.local),
        }
        if s is not None:
            doc["seconds-remaining"] = max(0, int(s.started + s.timeout - time.time()))
            doc["can-extend-session"] = False
        return Response(200, json.dumps(doc).encode(), CAPTIVE_JSON, {"Cache-Control": "private"})

    async def login(self, req: Request) -> Response:
        if self.posts.take(req.peer, time.monotonic()):
            self.counts["rate_limited"] += 1
            return Response(
                429,
                b"too many login attempts; wait a few seconds\n",
                "text/plain",
                {"Retry-After": str(int(RATE_WINDOW))},
            )
        form = req.form()
        user = form.get("username", "")
        password = form.get("password", "")
        if not user or not password:
            return self.login_form("User and password are both needed.", 400)
        if len(user) > MAX_USER or len(password.encode()) > MAX_PASSWORD:
            return self.login_form("User or password too long.", 400)
        if any(ord(ch) < 32 for ch in user):
            return self.login_form("The user name has control characters.", 400)
        mac = neighbour_mac(req.peer)
        attrs: list[tuple[int, Any]] = [
            (Attr.NAS_IDENTIFIER, self.node or "portal"),
            (Attr.SERVICE_TYPE, 1),
            (Attr.NAS_PORT_TYPE, 19),  # Wireless - IEEE 802.11
            (Attr.FRAMED_IP_ADDRESS, req.peer),
        ]
        if mac:
            attrs.append((Attr.CALLING_STATION_ID, mac.replace(":", "-").upper()))
        if self.address or req.local:
            attrs.append((Attr.NAS_IP_ADDRESS, self.address or req.local))
        if self.auth is None:
            return self.login_form("The portal is starting; try again.", 503)
        try:
            resp = await self.auth.authenticate(user, password.encode(), attrs)
        except RadiusTimeout:
            self.counts["radius_timeouts"] += 1
            return self.login_form("The login service does not answer; try again.", 503)
        if resp.code != Code.ACCESS_ACCEPT:
            self.counts["rejects"] += 1
            return self.login_form("Wrong user or password.", 401)
        s = Session(
            user=user,
            ip=req.peer,
            mac=mac,
            session_id=f"{self.node}-{secrets.token_hex(6)}",
            started=time.time(),
            timeout=resp.integer(Attr.SESSION_TIMEOUT) or 3600,
            idle_timeout=resp.integer(Attr.IDLE_TIMEOUT) or 0,
        )
        self.sessions[req.peer] = s
        self.counts["logins"] += 1
        await asyncio.to_thread(self._allow, req.peer, True)
        with contextlib.suppress(RadiusTimeout):
            await self._account(s, AcctStatus.START)
        return self.page("You are online", self._online_body(s))

    # ---------------------------------------------------------------- accounting

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
                    await asyncio.to_thread(self._allow, ip, False)
                    with contextlib.suppress(RadiusTimeout):
                        await self._account(s, AcctStatus.STOP, TerminateCause.SESSION_TIMEOUT)
                    continue
                with contextlib.suppress(RadiusTimeout):
                    await self._account(s, AcctStatus.INTERIM_UPDATE)

    # ---------------------------------------------------------------- RFC 5176

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
                or (bool(s.mac) and _station(ev.calling_station) == _station(s.mac))
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
            await asyncio.to_thread(self._end, [s.ip for s in ended])
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

    def _end(self, ips: list[str]) -> None:
        """Captive again: out of `allowed`, and no established flow carries on."""
        for ip in ips:
            self._allow(ip, False)
            if self.nft_enabled:
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    subprocess.run(
                        ["conntrack", "-D", "--orig-src", ip],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        timeout=5,
                        check=False,
                    )

    # ---------------------------------------------------------------- state

    def export_state(self) -> dict[str, Any]:
        return {"sessions": [asdict(s) for s in self.sessions.values()]}

    def hand_over(self, state: dict[str, Any]) -> None:
        """A restart carries these sessions to the next process: stop() sends no
        Accounting Stop for them (a session that began after the export still gets one)."""
        self.handed_on = {str(d.get("session_id")) for d in state.get("sessions", [])}

    def import_state(self, state: dict[str, Any]) -> None:
        self.sessions = {}
        for d in state.get("sessions", []):
            s = Session(**{k: d[k] for k in Session.__dataclass_fields__})
            self.sessions[s.ip] = s
            self._allow(s.ip, True)

    def stats(self) -> dict[str, Any]:
        return {
            **self.counts,
            "sessions": len(self.sessions),
            "port": self.port,
            "dm_port": self.dm_port,
            "pid": os.getpid(),
        }
