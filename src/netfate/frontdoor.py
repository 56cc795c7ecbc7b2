"""The front door: users inside the emulated network reach their pages here.

The orchestrator listens on loopback in the root namespace, where the operator
is; nothing in the emulated network can reach it, and the root namespace is never
routed into the emulated prefix (DESIGN.md). The door is a thin relay between the
two: its listening socket is opened inside a namespace of the run (`socket_in`:
the testbed's `<prefix>-door`, at the transit network's last address, which the
fabric routes every host to), and it connects to the orchestrator on loopback from
the root namespace, where the process runs.

What it relays, and what not:

    GET  /static/...                      the pages' files
    *    /api/v1/auth/session, /auth/me   sign-in, who am I, sign-out
    GET  /api/v1/health                   (the testbed waits for it)
    GET  /api/v1/events[/stream]          the principal's own events (live pages)
    GET  /signin, POST /signin            the sign-in page
    GET  /                                303 to /signin, then the home page (--home)
    *    /api/v1/NAME/PATH/...            each service's `door` paths (contract.py):
                                          the users' pages and the routes they call
    anything else                         404, the API's one error body, before any
                                          byte reaches the orchestrator (the
                                          operator's API: nodes, instances, agents,
                                          SDN, accounts, ...)

Each request is checked before it is relayed: its path (no `.`/`..` segment, no
empty segment, printable), its Host (one of the door's own names: a page from
another name is a DNS-rebinding attempt, 400), its body (at most `max_body`
bytes, 413) and the client's requests in flight (at most `per_client`, 429);
uvicorn bounds the connections (`max_connections`, 503), the header size (h11)
and idle keep-alive. HTTP parsing is uvicorn's (h11); the door parses no bytes
itself.

The orchestrator learns the real client from two headers it trusts only with
the run's door secret (orchestrator/identity/door.py); whatever a client sends
under those names, or as X-Forwarded-*, is dropped here.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol
from urllib.parse import quote

import httpx
import typer

from netfate.clihelp import parse_hostport

CORE_PATHS = (
    "/api/v1/auth/session",
    "/api/v1/auth/me",
    "/api/v1/health",
    "/api/v1/events",
    "/static",
    "/signin",
)
"""What the door relays of the core (the module doc): `/signin` is the sign-in page;
the event log and its stream keep the pages live (each principal reads only the
events it is a reader of)."""
HOME = "/api/v1/sharing/page"
"""Where the door's `/` sends a browser (through sign-in): the owners' page."""
DOOR_HEADER = "x-netfate-door"
CLIENT_HEADER = "x-netfate-client"
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
     "trailer", "transfer-encoding", "upgrade", "content-length"}
)  # fmt: skip
DROPPED = frozenset({DOOR_HEADER, CLIENT_HEADER, "forwarded", "x-forwarded-for",
                     "x-forwarded-host", "x-forwarded-proto", "x-real-ip"})  # fmt: skip
MAX_PATH = 2048


def service_paths(services: Iterable[tuple[str, Iterable[str]]]) -> tuple[str, ...]:
    """`/api/v1/NAME/PATH` for each (service name, its `door` paths)."""
    return tuple(f"/api/v1/{name}/{p.strip('/')}" for name, paths in services for p in paths)


def allowed(path: str, prefixes: Iterable[str]) -> bool:
    """True when the door relays `path` (decoded, without the query): one of `prefixes`
    or below it, with no segment that could lead elsewhere once normalised."""
    if not path.startswith("/") or len(path) > MAX_PATH or not path.isprintable():
        return False
    if "\\" in path or "//" in path:
        return False
    if any(seg in (".", "..") for seg in path.split("/")):
        return False
    return any(path == p or path.startswith(p + "/") for p in prefixes)


def host_name(host: str) -> str:
    """The name of a Host header's value, lower case, without its port."""
    host = host.strip().lower()
    if host.startswith("["):  # [v6]:port
        return host[1 : host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


@dataclass
class Door:
    """The door's ASGI app: checks a request, then relays it to `upstream`."""

    upstream: str
    """The orchestrator: http://127.0.0.1:PORT."""
    secret: str
    hosts: frozenset[str]
    """The Host names this door answers (its address, its names)."""
    prefixes: tuple[str, ...] = CORE_PATHS
    home: str = HOME
    """Where `/` sends a browser, after sign-in."""
    max_body: int = 1 << 20
    per_client: int = 16
    timeout_s: float = 60.0
    client: httpx.AsyncClient | None = None
    in_flight: dict[str, int] = field(default_factory=dict)

    def _http(self) -> httpx.AsyncClient:
        if self.client is None:
            self.client = relay_client(self.upstream, self.timeout_s)
        return self.client

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()  # startup
            await send({"type": "lifespan.startup.complete"})
            await receive()  # shutdown
            if self.client is not None:
                await self.client.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return  # websockets: refused by closing (no page of the users' uses one)
        if scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
            await _redirect(send, "/signin?next=" + quote(self.home, safe="/"))
            return
        status, detail = self.check(scope)
        if status:
            await _answer(send, status, detail)
            return
        client = (scope.get("client") or ("?", 0))[0]
        if self.in_flight.get(client, 0) >= self.per_client:
            await _answer(send, 429, "too many requests in flight from this address")
            return
        self.in_flight[client] = self.in_flight.get(client, 0) + 1
        try:
            await self.relay(scope, receive, send, client)
        finally:
            left = self.in_flight[client] - 1
            if left:
                self.in_flight[client] = left
            else:
                del self.in_flight[client]

    def check(self, scope: dict[str, Any]) -> tuple[int, str]:
        """(0, "") for a request the door relays, else the status and the reason."""
        if not allowed(scope["path"], self.prefixes):
            return 404, "not found"
        hosts = [v for k, v in scope["headers"] if k == b"host"]
        if len(hosts) != 1 or host_name(hosts[0].decode("latin-1")) not in self.hosts:
            return 400, "unknown Host: reach this door by its own address"
        for k, v in scope["headers"]:
            if k == b"content-length":
                if not v.isdigit() or len(v) > 12:
                    return 400, "malformed Content-Length"
                if int(v) > self.max_body:
                    return 413, f"request body larger than {self.max_body} bytes"
        return 0, ""

    async def relay(self, scope: dict[str, Any], receive: Any, send: Any, client: str) -> None:
        body = bytearray()
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body += msg.get("body", b"")
            if len(body) > self.max_body:
                await _answer(send, 413, f"request body larger than {self.max_body} bytes")
                return
            if not msg.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"]
                   if k.decode("latin-1") not in HOP_BY_HOP | DROPPED]  # fmt: skip
        headers += [(DOOR_HEADER.encode(), self.secret.encode()),
                    (CLIENT_HEADER.encode(), client.encode())]  # fmt: skip
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        http = self._http()
        req = http.build_request(
            scope["method"], httpx.URL(self.upstream).join(target.decode("ascii", "replace")),
            headers=headers, content=bytes(body),
        )  # fmt: skip
        try:
            resp = await http.send(req, stream=True)
        except httpx.HTTPError:
            await _answer(send, 502, "the orchestrator did not answer")
            return
        try:
            out = [(k, v) for k, v in resp.headers.raw if k.lower().decode() not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": resp.status_code,
                        "headers": out})  # fmt: skip
            try:
                async for chunk in resp.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.HTTPError:
                pass  # cut short: the client sees the body end early
            await send({"type": "http.response.body", "body": b""})
        finally:
            await resp.aclose()


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Keeps no cookie and sends none: the door serves every client with one HTTP
    client, and a cookie it kept (a user's web session, set by a sign-in it relayed)
    would go with every other client's requests after it."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


def relay_client(
    upstream: str, timeout_s: float = 60.0, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The door's HTTP client to the orchestrator: pooled, and without a cookie jar of
    its own (clients' cookies pass through as headers, both ways)."""
    return httpx.AsyncClient(
        base_url=upstream,
        timeout=httpx.Timeout(timeout_s, connect=5.0),
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        cookies=http.cookiejar.CookieJar(policy=_NoCookies()),
        transport=transport,
    )


async def _answer(send: Any, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Any, location: str) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode()), (b"content-length", b"0"),
                            (b"cache-control", b"no-store")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b""})


def listen_in(netns: str | None, host: str, port: int, backlog: int = 128) -> socket.socket:
    """A listening TCP socket at host:port inside namespace `netns` (None: here)."""
    from netfate.host.netns import socket_in

    sock = socket_in(netns, socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def serve(door: Door, sock: socket.socket, max_connections: int = 256) -> None:
    """Serve `door` on `sock` until SIGTERM or Ctrl-C."""
    import uvicorn

    config = uvicorn.Config(
        door,
        http="h11",
        lifespan="on",
        access_log=False,
        log_level="warning",
        limit_concurrency=max_connections,
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=16 * 1024,
        proxy_headers=False,
        server_header=False,
        date_header=False,  # the orchestrator's answer has its own
    )
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


class Relayed(Protocol):
    """What the door reads of a service (its contract, contract.Service)."""

    @property
    def name(self) -> str: ...

    @property
    def door(self) -> tuple[str, ...]: ...


def command(services: Sequence[Relayed]) -> Callable[..., None]:
    """`netfate frontdoor`, relaying the core's user paths and each service's `door`."""

    def frontdoor(
        listen: Annotated[str, typer.Option(help="ADDRESS:PORT to listen at, in --netns")],
        upstream: Annotated[str, typer.Option(help="The orchestrator: http://127.0.0.1:PORT")],
        secret_file: Annotated[
            Path, typer.Option(help="The door's secret (the orchestrator's --door-secret-file)")
        ],
        netns: Annotated[
            str | None, typer.Option(help="The namespace to listen in (default: this one)")
        ] = None,
        host: Annotated[
            list[str] | None,
            typer.Option(help="Another name clients reach the door by (repeatable)"),
        ] = None,
        max_connections: Annotated[int, typer.Option(min=1, max=4096)] = 256,
        per_client: Annotated[int, typer.Option(min=1, max=1024)] = 16,
        max_body: Annotated[int, typer.Option(min=1024, max=64 << 20)] = 1 << 20,
        home: Annotated[
            str, typer.Option(help="Where / sends a browser after sign-in (a relayed path)")
        ] = HOME,
    ) -> None:
        """The front door: users' pages (sign-in, the services' `door` paths) at an
        address inside the emulated network, relayed to the orchestrator; the rest
        of the API is refused there (404)."""
        addr, port = parse_hostport(listen)
        try:
            secret = secret_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as e:
            raise typer.BadParameter(f"cannot read {secret_file}: {e}") from e
        if len(secret) < 16:
            raise typer.BadParameter(f"{secret_file}: shorter than 16 characters")
        if not upstream.startswith("http://") and not upstream.startswith("https://"):
            raise typer.BadParameter("give the orchestrator's URL (http://127.0.0.1:PORT)")
        prefixes = CORE_PATHS + service_paths((s.name, s.door) for s in services)
        if not allowed(home, prefixes):
            raise typer.BadParameter(f"{home}: not a path the door relays", param_hint="--home")
        door = Door(
            upstream=upstream.rstrip("/"),
            home=home,
            secret=secret,
            hosts=frozenset({addr.lower(), *(h.lower() for h in host or ())}),
            prefixes=prefixes,
            max_body=max_body,
            per_client=per_client,
        )
        serve(door, listen_in(netns, addr, port), max_connections=max_connections)

    return frontdoor
