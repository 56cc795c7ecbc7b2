"""The client address the front door (`netfate frontdoor`) vouches for.

The door relays users' requests from inside the emulated network to the
orchestrator on loopback, so every request arrives from the door's own loopback
address. It adds two headers:

    X-Netfate-Door: <the run's door secret>      proves the request came through it
    X-Netfate-Client: <the client's IPv4/IPv6>   where the request came from

`DoorClients` (an ASGI middleware) makes the client address the request's
`client` (what sign-in throttling counts by) only when the secret matches, in
constant time; otherwise it leaves the connection's own address. Both headers
are removed either way, so no route ever reads them, and anyone else on
loopback who sends them gains nothing.
"""

from __future__ import annotations

import hmac
import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

DOOR_HEADER = "x-netfate-door"
CLIENT_HEADER = "x-netfate-client"
_STRIPPED = frozenset({DOOR_HEADER.encode(), CLIENT_HEADER.encode()})


class DoorClients:
    """ASGI middleware: the door's client address as `scope["client"]` (module doc)."""

    def __init__(self, app: ASGIApp, secret: str) -> None:
        if len(secret) < 16:
            raise ValueError("the front door's secret is too short (16 characters or more)")
        self.app = app
        self.secret = secret.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = self.vouched(scope)
        await self.app(scope, receive, send)

    def vouched(self, scope: Scope) -> Scope:
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        sent = [v for k, v in headers if k == DOOR_HEADER.encode()]
        client = [v for k, v in headers if k == CLIENT_HEADER.encode()]
        if not sent and not client:
            return scope
        out = dict(scope)
        out["headers"] = [(k, v) for k, v in headers if k not in _STRIPPED]
        if len(sent) == 1 and len(client) == 1 and hmac.compare_digest(sent[0], self.secret):
            try:
                addr = ipaddress.ip_address(client[0].decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                return out
            out["client"] = (str(addr), 0)
        return out
