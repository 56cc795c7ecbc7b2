"""One direction of an HTTP/1.x or RTSP/1.0 connection, split into messages (sans-I/O).

    feed(bytes) -> [Head, Body, Body, End, Head, End, Interleaved, ...]

HTTP/1.x (RFC 9112 section 6.3, message body length), in order of precedence:

    a response to HEAD, any 1xx, 204 or 304       no body
    a 101 response, or a 2xx answer to CONNECT     a tunnel: every later byte is Body
    Transfer-Encoding ending in chunked            chunked (section 7.1), de-chunked here
    Transfer-Encoding without chunked              response: until close; request: refused
    Content-Length                                 that many bytes (one value, or equal ones)
    otherwise                                      request: no body; response: until close

    chunked-body = *( chunk-size [ ; ext ] CRLF  chunk-data CRLF )  "0" [ ; ext ] CRLF
                   *( trailer-field CRLF )  CRLF

RTSP/1.0 (RFC 2326): requests and responses travel both ways; a body has a
Content-Length or is absent (section 4.3); between messages a server may send
interleaved binary data (section 10.12):

    '$' (1 byte)  channel (1 byte)  length (2 bytes, network order)  data

A response's framing depends on the request it answers: `expect(method)` tells the
reader of responses which request went the other way (HTTP; pipelined requests are
answered in order). Empty lines before a message are skipped (RFC 9112 section 2.2).
Limits: a head of 64 KiB and 100 fields (http.parse_head), a chunk-size line of 1 KiB,
trailers of 64 KiB. Every refusal is an `AlgError`.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from .errors import AlgError
from .http import MAX_HEAD, HttpHead, parse_head

MAX_CHUNK_LINE = 1024
MAX_CHUNK = 1 << 31


class Framing(enum.Enum):
    NONE = "none"
    LENGTH = "length"
    CHUNKED = "chunked"
    CLOSE = "close"
    """The body ends when the connection does (HTTP responses only)."""
    TUNNEL = "tunnel"
    """No more messages: every later byte is Body (101, CONNECT)."""


@dataclass(frozen=True)
class Head:
    head: HttpHead
    framing: Framing
    length: int | None = None
    """Content-Length, when that frames the body."""
    method: str = ""
    """A request's method, or the method of the request a response answers."""

    @property
    def is_response(self) -> bool:
        return self.head.is_response


@dataclass(frozen=True)
class Body:
    data: bytes


@dataclass(frozen=True)
class End:
    """The message (its head, and its body if it has one) is complete."""


@dataclass(frozen=True)
class Interleaved:
    """An RTSP interleaved frame ($ channel length data), passed on as it is."""

    channel: int
    data: bytes

    def encode(self) -> bytes:
        return b"$" + bytes([self.channel]) + len(self.data).to_bytes(2, "big") + self.data


Event = Head | Body | End | Interleaved


class _State(enum.Enum):
    HEAD = 1
    LENGTH = 2
    CHUNK_SIZE = 3
    CHUNK_DATA = 4
    CHUNK_CRLF = 5
    TRAILERS = 6
    CLOSE = 7
    TUNNEL = 8
    DONE = 9


def _digits(text: str) -> bool:
    """ASCII digits only (str.isdigit also takes "²" and other scripts' digits)."""
    return bool(text) and all("0" <= c <= "9" for c in text)


def status_code(head: HttpHead) -> int:
    parts = head.start.split(" ", 2)
    if len(parts) < 2 or len(parts[1]) != 3 or not _digits(parts[1]):
        raise AlgError("status_line", repr(head.start[:80]))
    return int(parts[1])


def _content_length(head: HttpHead) -> int | None:
    values = [v for k, v in head.fields if k.lower() == "content-length"]
    if not values:
        return None
    parts = {p.strip() for v in values for p in v.split(",")}
    if len(parts) != 1:
        raise AlgError("content_length", repr(values)[:80])
    (text,) = parts
    if not _digits(text) or len(text) > 15:
        raise AlgError("content_length", repr(text)[:80])
    return int(text)


def _transfer_codings(head: HttpHead) -> list[str]:
    return [
        c.strip().lower()
        for k, v in head.fields
        if k.lower() == "transfer-encoding"
        for c in v.split(",")
        if c.strip()
    ]


class MessageReader:
    """Messages of one direction of a connection; `protocol` is "http" or "rtsp"."""

    def __init__(self, protocol: str = "http") -> None:
        if protocol not in ("http", "rtsp"):
            raise ValueError(f"protocol {protocol!r}")
        self.protocol = protocol
        self._buf = bytearray()
        self._state = _State.HEAD
        self._left = 0
        self._methods: deque[str] = deque()

    def expect(self, method: str) -> None:
        """A request with `method` went the other way; its response comes here."""
        self._methods.append(method.upper())

    def tunnel(self) -> None:
        """The connection stopped carrying messages (the other direction saw a 101)."""
        self._state = _State.TUNNEL

    @property
    def in_message(self) -> bool:
        """A message has started and not ended (or bytes of one are buffered)."""
        return self._state not in (_State.HEAD, _State.TUNNEL) or bool(self._buf)

    # ------------------------------------------------------------------ heads

    def _framing(self, head: HttpHead) -> Head:
        if head.is_response:
            if self.protocol == "rtsp":
                if not head.start.startswith("RTSP/1."):
                    raise AlgError("status_line", repr(head.start[:80]))
                status_code(head)
                n = _content_length(head)
                return Head(head, Framing.LENGTH if n else Framing.NONE, n)
            if not head.start.startswith("HTTP/1."):
                raise AlgError("status_line", repr(head.start[:80]))
            code = status_code(head)
            final = code >= 200 or code == 101
            method = (self._methods.popleft() if self._methods else "GET") if final else ""
            if code == 101 or (method == "CONNECT" and 200 <= code < 300):
                return Head(head, Framing.TUNNEL, None, method)
            if code < 200 or code in (204, 304) or method == "HEAD":
                return Head(head, Framing.NONE, None, method)
            codings = _transfer_codings(head)
            if codings:
                return Head(head, Framing.CHUNKED if codings[-1] == "chunked" else Framing.CLOSE,
                            None, method)  # fmt: skip
            n = _content_length(head)
            return Head(head, Framing.CLOSE if n is None else Framing.LENGTH, n, method)
        parts = head.start.split(" ")
        if len(parts) != 3 or not parts[2].startswith(("HTTP/1.", "RTSP/1.")):
            raise AlgError("request_line", repr(head.start[:80]))
        method = parts[0].upper()
        codings = _transfer_codings(head)
        if codings and self.protocol == "http":
            if codings[-1] != "chunked":
                raise AlgError("transfer_encoding", ",".join(codings)[:80])
            return Head(head, Framing.CHUNKED, None, method)
        n = _content_length(head)
        return Head(head, Framing.LENGTH if n else Framing.NONE, n, method)

    def _start(self, h: Head, out: list[Event]) -> None:
        out.append(h)
        if h.framing is Framing.NONE:
            out.append(End())
            self._state = _State.HEAD
        elif h.framing is Framing.LENGTH:
            self._left = h.length or 0
            self._state = _State.LENGTH
        elif h.framing is Framing.CHUNKED:
            self._state = _State.CHUNK_SIZE
        elif h.framing is Framing.CLOSE:
            self._state = _State.CLOSE
        else:
            out.append(End())
            self._state = _State.TUNNEL

    # ------------------------------------------------------------------ bytes

    def _line(self, limit: int) -> bytes | None:
        end = self._buf.find(b"\r\n")
        if end < 0:
            if len(self._buf) > limit:
                raise AlgError("line_too_long")
            return None
        if end > limit:
            raise AlgError("line_too_long")
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        return line

    def _step(self, out: list[Event]) -> bool:
        """Consume what one state can; False when it needs more bytes."""
        buf, st = self._buf, self._state
        if st is _State.DONE:
            return False
        if st is _State.HEAD:
            while buf[:2] == b"\r\n":
                del buf[:2]
            if not buf:
                return False
            if self.protocol == "rtsp" and buf[0] == 0x24:  # '$'
                if len(buf) < 4:
                    return False
                n = int.from_bytes(buf[2:4], "big")
                if len(buf) < 4 + n:
                    return False
                out.append(Interleaved(buf[1], bytes(buf[4 : 4 + n])))
                del buf[: 4 + n]
                return True
            parsed = parse_head(bytes(buf[: MAX_HEAD + 4]))
            if parsed is None:
                return False
            head, used = parsed
            del buf[:used]
            self._start(self._framing(head), out)
            return True
        if st in (_State.CLOSE, _State.TUNNEL):
            if not buf:
                return False
            out.append(Body(bytes(buf)))
            buf.clear()
            return True
        if st in (_State.LENGTH, _State.CHUNK_DATA):
            if self._left and not buf:
                return False
            take = min(self._left, len(buf))
            if take:
                out.append(Body(bytes(buf[:take])))
                del buf[:take]
                self._left -= take
            if self._left:
                return False
            if st is _State.LENGTH:
                out.append(End())
                self._state = _State.HEAD
            else:
                self._state = _State.CHUNK_CRLF
            return True
        if st is _State.CHUNK_CRLF:
            if len(buf) < 2:
                return False
            if buf[:2] != b"\r\n":
                raise AlgError("chunk", "data not followed by CRLF")
            del buf[:2]
            self._state = _State.CHUNK_SIZE
            return True
        if st is _State.CHUNK_SIZE:
            line = self._line(MAX_CHUNK_LINE)
            if line is None:
                return False
            size = line.split(b";", 1)[0].strip(b" \t")
            if not size or len(size) > 8 or any(c not in b"0123456789abcdefABCDEF" for c in size):
                raise AlgError("chunk_size", repr(line[:40]))
            n = int(size, 16)
            if n > MAX_CHUNK:
                raise AlgError("chunk_size", f"{n} bytes")
            if n == 0:
                self._left = 0
                self._state = _State.TRAILERS
            else:
                self._left = n
                self._state = _State.CHUNK_DATA
            return True
        if st is _State.TRAILERS:
            # Trailer fields are read and dropped: nothing here needs them.
            line = self._line(MAX_HEAD)
            if line is None:
                return False
            if line:
                self._left += len(line) + 2
                if self._left > MAX_HEAD:
                    raise AlgError("trailers_too_long")
                return True
            out.append(End())
            self._state = _State.HEAD
            return True
        return False

    def feed(self, data: bytes) -> list[Event]:
        if self._state is _State.DONE and data:
            raise AlgError("closed", "bytes after the end of the stream")
        self._buf += data
        out: list[Event] = []
        while self._step(out):
            pass
        return out

    def feed_eof(self) -> list[Event]:
        """The peer closed its side: a body that runs until close ends; a message cut
        short is an error."""
        out = self.feed(b"")
        st, self._state = self._state, _State.DONE
        if st is _State.CLOSE:
            out.append(End())
        elif st is _State.HEAD and self._buf.strip(b"\r\n"):
            raise AlgError("truncated", "in a head")
        elif st not in (_State.HEAD, _State.TUNNEL, _State.DONE):
            raise AlgError("truncated", "in a body")
        return out
