"""The ALG's rewrite of one direction of a proxied HTTP or RTSP connection (sans-I/O).

    MessageReader events -> MessageRewriter.feed -> bytes for the other side

Every header value gets the map's addresses replaced: LOCATION-like headers
(Location of a redirect, Content-Location, Content-Base, RTP-Info), RTSP Transport
(`source=`, `destination=`), GENA CALLBACK, Host. A text body (XML, SOAP, SDP, JSON,
text/*, or no Content-Type at all) is collected whole, decoded (chunked by the
reader; gzip or deflate here), rewritten and sent with a new Content-Length and no
Content-Encoding; escaping does not matter, since digits and dots are never
escaped (a DIDL-Lite document inside a SOAP envelope is rewritten like any other
text). Any other body (media) streams as it comes: chunked bodies are sent chunked
again, others byte for byte. RTSP interleaved frames pass unchanged.

With `device` set (the device-to-client direction), the ports of URLs that name the
device are collected (`learned`) before the rewrite: the proxy must listen on them
before the client reads the rewritten URL.

Limits: a text body of at most `max_text` bytes after decoding; a text body that
cannot be decoded (an unknown coding, a partial 206 answer) is refused with
AlgError rather than passed on with the device's address in it.
"""

from __future__ import annotations

import zlib

from .addrmap import AddressMap, url_ports
from .errors import AlgError
from .framing import Body, End, Event, Framing, Head, Interleaved, status_code
from .http import HttpHead

MAX_TEXT = 4 << 20
TEXT_TYPES = ("xml", "text/", "json", "sdp", "soap", "javascript", "urlencoded", "parameters")
DECODABLE = ("gzip", "x-gzip", "deflate")
"""Codings the ALG can undo; a request's Accept-Encoding is limited to these."""


def is_text(content_type: str | None) -> bool:
    """A body the ALG rewrites: a textual media type, or none given."""
    if content_type is None or not content_type.strip():
        return True
    ct = content_type.lower()
    return any(t in ct for t in TEXT_TYPES)


def decode(data: bytes, coding: str, limit: int) -> bytes:
    """`data` with its content coding undone, at most `limit` bytes."""
    if coding in ("", "identity"):
        return data
    if coding not in DECODABLE:
        raise AlgError("content_encoding", coding[:40])
    # deflate is the zlib format (RFC 9110 section 8.4.1.2), sent raw by some servers.
    tries = (31,) if coding != "deflate" else (15, -15)
    for wbits in tries:
        d = zlib.decompressobj(wbits)
        try:
            out = d.decompress(data, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit:
            raise AlgError("text_too_large", f"more than {limit} bytes decoded")
        if not d.eof:
            raise AlgError("content_encoding", f"{coding} data cut short")
        return out
    raise AlgError("content_encoding", f"not {coding} data")


def _accept_encoding(value: str) -> str:
    keep = [
        t for t in value.split(",") if t.split(";")[0].strip().lower() in (*DECODABLE, "identity")
    ]
    return ", ".join(t.strip() for t in keep) or "identity"


class MessageRewriter:
    def __init__(
        self,
        amap: AddressMap,
        *,
        device: str | None = None,
        limit_encodings: bool = False,
        max_text: int = MAX_TEXT,
    ) -> None:
        self.amap = amap
        self.device = device
        self.limit_encodings = limit_encodings
        self.max_text = max_text
        self.learned: set[int] = set()
        """Ports of URLs naming `device` seen so far (the caller may clear it)."""
        self.rewritten = 0
        """Text bodies rewritten."""
        self.streamed = 0
        """Bodies passed on as they came."""
        self._mode = "idle"  # idle | text | raw | chunked | tunnel
        self._head: HttpHead | None = None
        self._coding = ""
        self._body = bytearray()
        self.head_sent = False
        """The current message's head went out and its end has not: an error now can
        only close the connection (before, the proxy may still answer 502)."""

    def _learn(self, data: bytes) -> None:
        if self.device is not None:
            self.learned |= url_ports(data, self.device)

    def _rewrite_head(self, ev: Head) -> HttpHead:
        h = HttpHead(self.amap.apply_text(ev.head.start), [])
        for k, v in ev.head.fields:
            self._learn(v.encode("latin-1"))
            if self.limit_encodings and k.lower() == "accept-encoding":
                v = _accept_encoding(v)
            h.fields.append((k, self.amap.apply_text(v)))
        if ev.framing is Framing.CHUNKED:
            h.remove("Content-Length")  # Transfer-Encoding wins (RFC 9112 section 6.3)
        return h

    def _on_head(self, ev: Head) -> bytes:
        h = self._rewrite_head(ev)
        if ev.framing in (Framing.NONE, Framing.TUNNEL):
            self._mode = "tunnel" if ev.framing is Framing.TUNNEL else "idle"
            return h.encode()
        partial = h.is_response and status_code(h) == 206
        if is_text(h.get("content-type")) and not partial:
            self._coding = (h.get("content-encoding") or "").strip().lower()
            if self._coding not in ("", "identity", *DECODABLE):
                raise AlgError("content_encoding", self._coding[:40])
            self._mode, self._head, self._body = "text", h, bytearray()
            return b""
        self._mode = "chunked" if ev.framing is Framing.CHUNKED else "raw"
        self.head_sent = True
        self.streamed += 1
        return h.encode()

    def _on_body(self, data: bytes) -> bytes:
        if self._mode == "text":
            self._body += data
            if len(self._body) > self.max_text:
                raise AlgError("text_too_large", f"more than {self.max_text} bytes")
            return b""
        if self._mode == "chunked":
            return f"{len(data):x}\r\n".encode() + data + b"\r\n" if data else b""
        return data

    def _on_end(self) -> bytes:
        mode = self._mode
        self._mode = "tunnel" if mode == "tunnel" else "idle"
        self.head_sent = False
        if mode == "chunked":
            return b"0\r\n\r\n"
        if mode != "text" or self._head is None:
            return b""
        h, self._head = self._head, None
        body = decode(bytes(self._body), self._coding, self.max_text)
        self._body = bytearray()
        self._learn(body)
        body = self.amap.apply(body)
        h.remove("Transfer-Encoding")
        if self._coding not in ("", "identity"):
            h.remove("Content-Encoding")
        h.set("Content-Length", str(len(body)))
        self.rewritten += 1
        return h.encode() + body

    def feed(self, events: list[Event]) -> bytes:
        out = bytearray()
        for ev in events:
            if isinstance(ev, Head):
                out += self._on_head(ev)
            elif isinstance(ev, Body):
                out += ev.data if self._mode == "tunnel" else self._on_body(ev.data)
            elif isinstance(ev, End):
                out += self._on_end()
            elif isinstance(ev, Interleaved):
                out += ev.encode()
        return bytes(out)
