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
- Pinholes (gate.py): a new configuration that changes only them is applied in
  place (`configure`: the set's elements on the live table), so the process, its
  dnsmasq and its sessions carry on; any other change restarts the portal.
- Its parts: the HTTP front (front.py), the RADIUS side (radius.py: accounting and
  the Disconnect server), the nftables set-up (gate.py), the state they share
  (base.py); this module starts and stops them, and dnsmasq.
- Abuse: every field is length-bounded and HTML-escaped on output; login POSTs are
  rate-limited per client address (429), bodies are capped (413).
- RFC 5176 Disconnect (the portal is a Dynamic Authorization Server): UDP
  `dm_port` (default 3799; null: off); radius.py says what it takes and answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

from netfate.host.nft import NftError
from netfate.model.ratelimit import WindowCounter
from netfate.proto.radius import AcctStatus, DasCore, TerminateCause
from netfate.vnf import leasefile
from netfate.vnf.portal.base import Session
from netfate.vnf.portal.config import signin_host
from netfate.vnf.portal.front import MAX_TRACKED, RATE_POSTS, RATE_WINDOW, Front
from netfate.vnf.portal.gate import DIRECTIONS, PROTOS, Gate, Pinhole, elements
from netfate.vnf.portal.http import serve
from netfate.vnf.portal.radius import DM_PORT, RadiusSide
from netfate.vnf.portal.radius_client import RadiusClient
from netfate.vnf.runtime import Context

__all__ = ["Portal", "Session"]

log = logging.getLogger("netfate.portal")


def _hostport(text: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    return host, int(port)


class Portal(Front, RadiusSide):
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
        self.gate = Gate(bool(c.get("nft", True)))
        # The walled garden (gate.py): the front door's address, which the firewall
        # service gives, so that a captive client can sign in to its users' pages.
        self.garden = [_ipv4(a, "garden") for a in c.get("garden") or []]
        # The front-end's sign-in (a page in the garden): where captive clients are
        # sent instead of this portal's own login form (users of the run's apps).
        self.signin = str(c.get("signin") or "")
        if self.signin:
            signin_host(self.signin, self.garden)
        # Pinholes (gate.py): one client and one address's ports, no login (the
        # streaming service's viewers, signed in at its front-end).
        self.pinholes = [_pinhole(h) for h in c.get("pinholes") or []]
        self.sessions: dict[str, Session] = {}
        # Sessions whose state a restart carries to the next process (hand_over).
        self.handed_on: set[str] = set()
        self.restarting = False
        self.posts = WindowCounter(RATE_POSTS, RATE_WINDOW, MAX_TRACKED)
        self.auth: RadiusClient | None = None
        self.acct: RadiusClient | None = None
        self.server: asyncio.Server | None = None
        self.dnsmasq: subprocess.Popen[bytes] | None = None
        self.leasefile = Path(f"/tmp/netfate-portal-{ctx.instance}.leases")
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
        if self.gate.enabled:
            await asyncio.to_thread(self.gate.setup, self.port, self.garden, self.pinholes)
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
        # The lease file outlives a restart (the next process's dnsmasq reads it) and a
        # frozen copy's stop (the serving copy keeps it); the serving copy's end removes it.
        if self.active and not self.restarting:
            self.leasefile.unlink(missing_ok=True)

    def _start_dnsmasq(self) -> None:
        d = self.dhcp
        lease = self.leasefile
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
        if d.get("known_only"):  # another PE's clients are another portal's
            argv.append("--dhcp-ignore=tag:!known")
        self.dnsmasq = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # ---------------------------------------------------------------- state

    def export_state(self) -> dict[str, Any]:
        return {
            "sessions": [asdict(s) for s in self.sessions.values()],
            "pinholes": [h.dump() for h in self.pinholes],
        }

    def hand_over(self, state: dict[str, Any]) -> None:
        """A restart carries these sessions to the next process: stop() sends no
        Accounting Stop for them (a session that began after the export still gets one)."""
        self.handed_on = {str(d.get("session_id")) for d in state.get("sessions", [])}
        self.restarting = True

    def import_state(self, state: dict[str, Any]) -> None:
        self.sessions = {}
        for d in state.get("sessions", []):
            s = Session(**{k: d[k] for k in Session.__dataclass_fields__})
            self.sessions[s.ip] = s
            self.gate.allow(s.ip, True)
        # A pinhole the new configuration no longer has (its viewer left): flows
        # established through it end too (the gate accepts established ones).
        before: list[Pinhole] = []
        for hole in state.get("pinholes") or []:
            with contextlib.suppress(ValueError, TypeError, IndexError):
                if isinstance(hole, list):  # a state of before directions and UDP
                    hole = {"client": hole[0], "to": hole[1], "ports": hole[2]}
                before.append(_pinhole(hole))
        self.gate.cut(sorted(elements(before) - elements(self.pinholes)))

    def configure(self, config: dict[str, Any]) -> bool:
        """A new configuration that changes only the pinholes: applied to the live table
        (gate.holes), the process, its dnsmasq and its sessions carrying on; a removed
        pinhole's flows end. Anything else (or nft refusing): False, and the agent
        restarts the portal carrying its state (import_state)."""

        def rest(c: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in c.items() if k != "pinholes"}

        if rest(config) != rest(self.ctx.config):
            return False
        try:
            new = [_pinhole(h) for h in config.get("pinholes") or []]
            self.gate.holes(self.pinholes, new)
        except (ValueError, NftError) as e:
            log.warning("portal %s: pinholes not changed in place: %s", self.ctx.instance, e)
            return False
        self.pinholes = new
        return True

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            **self.counts,
            "sessions": len(self.sessions),
            "port": self.port,
            "dm_port": self.dm_port,
            "pid": os.getpid(),
        }
        if self.dhcp:  # what the catalog's where-is service reads (vnf/leasefile.py)
            secs = leasefile.seconds_of(str(self.dhcp.get("range", "")))
            out["dhcp"] = leasefile.report(self.leasefile, secs)
        return out


def _ipv4(value: object, what: str) -> str:
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        raise ValueError(f"{what}: {value!r} is not an IPv4 address") from None


def _pinhole(value: object) -> Pinhole:
    """A checked pinhole entry (the schema said so; an agent's config is checked again)."""
    if not isinstance(value, dict):
        raise ValueError(f"pinholes: {value!r} is not an object")
    ports = value.get("ports")
    if (
        not isinstance(ports, list)
        or not ports
        or not all(type(p) is int and 1 <= p <= 65535 for p in ports)
    ):
        raise ValueError(f"pinholes: ports {ports!r} are not TCP or UDP ports")
    proto, direction = value.get("proto", "tcp"), value.get("direction", "out")
    if proto not in PROTOS or direction not in DIRECTIONS:
        raise ValueError(f"pinholes: {proto!r} {direction!r} is not tcp/udp out/in")
    return Pinhole(
        _ipv4(value.get("client"), "pinholes"),
        _ipv4(value.get("to"), "pinholes"),
        tuple(sorted(set(ports))),
        str(proto),
        str(direction),
    )
