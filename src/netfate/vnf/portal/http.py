"""A deliberately small HTTP/1.1 server for the portal (one request per connection).

The portal is reached by unauthenticated, untrusted clients, so parsing is bounded
everywhere: request line 2 KiB, headers 8 KiB and 50 fields, body 4 KiB
(Content-Length only, no chunked uploads), 10 s to send a whole request. Anything
else gets a 4xx and the connection is closed. Connections are bounded too: at most
256 open at once and 16 from one address (Admission); one more is answered 503 and
closed at once, so idle or slow clients cannot hold the portal's memory or
descriptors without bound. Request format (RFC 9112 section 2.1):

    method SP request-target SP HTTP-version CRLF
    *( field-name ":" OWS field-value OWS CRLF )
    CRLF
    [ message-body ]
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

MAX_LINE = 2048
MAX_HEADERS = 8192
MAX_FIELDS = 50
MAX_BODY = 4096
READ_TIMEOUT = 10.0
MAX_CONNECTIONS = 256
MAX_PER_CLIENT = 16

REASONS = {
    200: "OK",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    peer: str
    local: str = ""
    """The address the client reached (after a redirect: our own address)."""

    def form(self) -> dict[str, str]:
        """application/x-www-form-urlencoded body; the first value of each name."""
        try:
            pairs = urllib.parse.parse_qsl(
                self.body.decode("utf-8"), keep_blank_values=True, max_num_fields=20
            )
        except (UnicodeDecodeError, ValueError):
            raise HttpError(400, "form is not valid UTF-8 urlencoded data") from None
        out: dict[str, str] = {}
        for k, v in pairs:
            out.setdefault(k, v)
        return out


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        head = [f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Status')}"]
        hdrs = {
            "Content-Type": self.content_type,
            "Content-Length": str(len(self.body)),
            "Connection": "close",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            **self.headers,
        }
        head += [f"{k}: {v}" for k, v in hdrs.items()]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + self.body


def parse_head(data: bytes, peer: str) -> tuple[Request, int]:
    """Request line and fields (data ends with CRLFCRLF); returns the Content-Length."""
    try:
        text = data.decode("latin-1")
    except UnicodeDecodeError:  # latin-1 decodes anything; kept for clarity
        raise HttpError(400, "undecodable head") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "bad request line")
    method, target, _ = parts
    if not method.isalpha() or len(target) > MAX_LINE:
        raise HttpError(400, "bad request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, "bad header field")
        headers[name.lower()] = value.strip()
        if len(headers) > MAX_FIELDS:
            raise HttpError(431, "too many header fields")
    if "transfer-encoding" in headers:
        raise HttpError(411, "only Content-Length bodies")
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise HttpError(400, "bad Content-Length")
    length = int(length_text)
    if length > MAX_BODY:
        raise HttpError(413, "body too large")
    url = urllib.parse.urlsplit(target)
    query = dict(urllib.parse.parse_qsl(url.query, max_num_fields=20)) if url.query else {}
    return Request(method, url.path or "/", query, headers, b"", peer), length


Handler = Callable[[Request], Awaitable[Response]]


async def read_request(reader: asyncio.StreamReader, peer: str) -> Request:
    """One request, head and body, within READ_TIMEOUT in all."""
    try:
        return await asyncio.wait_for(_read_request(reader, peer), READ_TIMEOUT)
    except TimeoutError:
        raise HttpError(408, "request too slow") from None


async def _read_request(reader: asyncio.StreamReader, peer: str) -> Request:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HttpError(431, "head too large") from None
    except asyncio.IncompleteReadError:
        raise HttpError(400, "connection closed mid-request") from None
    req, length = parse_head(head, peer)
    if length:
        try:
            req.body = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise HttpError(400, "body shorter than Content-Length") from None
    return req


class Admission:
    """At most `total` connections open at once, at most `per_client` from one
    address. Memory is bounded by the connections open (one counter per address
    that has one)."""

    def __init__(self, total: int = MAX_CONNECTIONS, per_client: int = MAX_PER_CLIENT) -> None:
        self.total = total
        self.per_client = per_client
        self.by_client: dict[str, int] = {}
        self.open = 0
        self.refused = 0

    def admit(self, peer: str) -> bool:
        if self.open >= self.total or self.by_client.get(peer, 0) >= self.per_client:
            self.refused += 1
            return False
        self.open += 1
        self.by_client[peer] = self.by_client.get(peer, 0) + 1
        return True

    def release(self, peer: str) -> None:
        self.open -= 1
        left = self.by_client[peer] - 1
        if left:
            self.by_client[peer] = left
        else:
            del self.by_client[peer]


BUSY = Response(503, b"busy; try again\n", "text/plain", {"Retry-After": "1"}).encode()


async def serve(
    handler: Handler, sock: socket.socket, admission: Admission | None = None
) -> asyncio.Server:
    gate = admission or Admission()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str(writer.get_extra_info("peername", ("?", 0))[0])
        local = str(writer.get_extra_info("sockname", ("", 0))[0])
        if not gate.admit(peer):
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(BUSY)  # into the socket buffer: nothing to wait for
            writer.close()
            return
        try:
            try:
                req = await read_request(reader, peer)
                req.local = local
                resp = await handler(req)
            except HttpError as e:
                resp = Response(e.status, f"{e.status} {e}\n".encode(), "text/plain")
            writer.write(resp.encode())
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            gate.release(peer)
            writer.close()

    return await asyncio.start_server(client, sock=sock, limit=MAX_HEADERS)
