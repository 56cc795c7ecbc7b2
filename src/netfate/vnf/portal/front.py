"""The captive portal's HTTP front: the login page, logout, and the RFC 8908 API.

Web traffic of clients not logged in reaches it by the gate's redirect (gate.py):
a request for another site gets a redirect to the login page, or to the front-end's
sign-in when the portal has one (`signin`: a page in the walled garden, where the
client signs in with its account of the run's apps). A login POST asks
the RADIUS server (Access-Request, radius_client.py); on Access-Accept the client
joins the gate's `allowed` set and its session is accounted (radius.py). Every
field is length-bounded and HTML-escaped on output; login POSTs are rate-limited
per client address (429); the server under it (http.py) bounds the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import secrets
import time
from typing import Any

from netfate.model.ratelimit import WindowCounter
from netfate.proto.radius import AcctStatus, Attr, Code, TerminateCause
from netfate.vnf.portal.base import PortalBase, Session, neighbour_mac
from netfate.vnf.portal.http import Request, Response
from netfate.vnf.portal.radius_client import RadiusTimeout

CAPTIVE_JSON = "application/captive+json"
MAX_USER = 64
MAX_PASSWORD = 128
RATE_WINDOW = 10.0
RATE_POSTS = 5
MAX_TRACKED = 4096

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:sans-serif;max-width:28em;margin:3em auto;padding:0 1em}}
label{{display:block;margin:.6em 0}}input{{width:100%;padding:.4em}}
.err{{color:#a00}}.ok{{color:#070}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""


class Front(PortalBase):
    """The HTTP handler (`handle`) of the portal."""

    posts: WindowCounter
    signin: str
    """The front-end's sign-in, or "" (this portal's login form)."""

    def url(self, path: str, local: str = "") -> str:
        host = self.address or local or "portal"
        return f"http://{host}{'' if self.port == 80 else f':{self.port}'}{path}"

    def login_url(self, local: str) -> str:
        """Where a captive client signs in: the front-end's sign-in, else ours."""
        return self.signin or self.url("/login", local)

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
            return Response(302, b"", "text/plain", {"Location": self.login_url(req.local)})
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
                await asyncio.to_thread(self.gate.allow, s.ip, False)
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
            "user-portal-url": self.login_url(req.local),
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
        await asyncio.to_thread(self.gate.allow, req.peer, True)
        with contextlib.suppress(RadiusTimeout):
            await self._account(s, AcctStatus.START)
        return self.page("You are online", self._online_body(s))
