"""Sans-I/O reading of an RTMP publisher's bytes, as far as its ``publish`` command.

The acquirer passes an RTMP publisher to ffmpeg's listener, which takes any stream
key; to refuse a wrong key it reads what the publisher sends (the client's half of
the connection) up to the ``publish`` command and its stream name, then stops
reading. Wire format (Adobe's RTMP specification 1.0): C0 (version 3) and C1 (1536
bytes), C2 (1536 bytes), then chunks: a basic header (format, chunk stream id), a
message header of 11, 7, 3 or 0 bytes, an extended timestamp when the 24-bit one
reads 0xFFFFFF, and at most the chunk size of payload (128 until the client sends
Set Chunk Size). Commands are AMF0 (type 20; type 17 is AMF3's, an AMF0 body
after one zero byte): name, transaction id, command object, arguments;
``publish``'s first argument is the stream name.

    r = PublishReader()
    r.feed(data)    # None while the publish command has not arrived, else Published
                    # RtmpError: not RTMP, or over this reader's bounds

Bounds: a command message of at most MAX_COMMAND bytes, MAX_PRELUDE bytes before
the publish command. Anything else raises RtmpError (never another exception).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = ["MAX_COMMAND", "MAX_PRELUDE", "PublishReader", "Published", "RtmpError"]

VERSION = 3
HANDSHAKE = 1536
MAX_COMMAND = 65536
MAX_PRELUDE = 1 << 20
MAX_CHUNK_SIZE = 1 << 24
MAX_CHUNK_STREAMS = 64
SET_CHUNK_SIZE, AMF3_COMMAND, AMF0_COMMAND = 1, 17, 20
HEADER_SIZES = (11, 7, 3, 0)
AMF_NUMBER, AMF_BOOLEAN, AMF_STRING, AMF_NULL, AMF_UNDEFINED = 0, 1, 2, 5, 6


class RtmpError(ValueError):
    """The bytes are not an RTMP publisher's (or are beyond this reader's bounds)."""


@dataclass(frozen=True)
class Published:
    """The publisher's ``publish`` command: the stream name (the OBS stream key)."""

    name: str


@dataclass
class _ChunkStream:
    length: int = 0
    type: int = 0
    extended: bool = False
    body: bytearray = field(default_factory=bytearray)
    left: int = 0
    """Bytes of the current message still to come (0: the next chunk starts one)."""


class PublishReader:
    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._stage = "c0c1"
        self._chunk_size = 128
        self._streams: dict[int, _ChunkStream] = {}
        self._seen = 0
        self.published: Published | None = None

    def feed(self, data: bytes) -> Published | None:
        """More of the client's bytes; the publish command once it has arrived."""
        if self.published is not None:
            return self.published
        self._seen += len(data)
        if self._seen > MAX_PRELUDE:
            raise RtmpError(f"no publish command in the first {MAX_PRELUDE} bytes")
        self._buf += data
        while self.published is None and self._step():
            pass
        del self._buf[: self._pos]
        self._pos = 0
        return self.published

    def _have(self, n: int) -> bool:
        return len(self._buf) - self._pos >= n

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[self._pos : self._pos + n])
        self._pos += n
        return out

    def _step(self) -> bool:
        """Consume one unit (handshake part or chunk); False when more bytes are needed."""
        if self._stage == "c0c1":
            if not self._have(1 + HANDSHAKE):
                if self._have(1) and self._buf[self._pos] != VERSION:
                    raise RtmpError(f"RTMP version {self._buf[self._pos]} (not {VERSION})")
                return False
            self._take(1 + HANDSHAKE)
            self._stage = "c2"
            return True
        if self._stage == "c2":
            if not self._have(HANDSHAKE):
                return False
            self._take(HANDSHAKE)
            self._stage = "chunks"
            return True
        return self._chunk()

    def _chunk(self) -> bool:
        start = self._pos
        header = self._basic_header()
        if header is None:
            return False
        fmt, csid = header
        cs = self._streams.get(csid)
        if cs is None:
            if fmt != 0:
                raise RtmpError(f"chunk stream {csid} starts without a full header")
            if len(self._streams) >= MAX_CHUNK_STREAMS:
                raise RtmpError("too many chunk streams")
            cs = _ChunkStream()
        size = HEADER_SIZES[fmt]
        if not self._have(size):
            self._pos = start
            return False
        raw = self._take(size)
        length, mtype = cs.length, cs.type
        if fmt < 3:
            ts = int.from_bytes(raw[0:3], "big")
            cs.extended = ts == 0xFFFFFF
        if fmt < 2:
            length, mtype = int.from_bytes(raw[3:6], "big"), raw[6]
        if cs.extended:
            if not self._have(4):
                self._pos = start
                return False
            self._take(4)
        starts = cs.left == 0
        if starts:
            left = length
        else:
            if fmt < 2 and (length, mtype) != (cs.length, cs.type):
                raise RtmpError(f"chunk stream {csid}: a new message header mid-message")
            left = cs.left
        n = min(self._chunk_size, left)
        if not self._have(n):
            self._pos = start
            return False
        payload = self._take(n)
        self._streams[csid] = cs
        cs.length, cs.type = length, mtype
        keep = mtype in (SET_CHUNK_SIZE, AMF0_COMMAND, AMF3_COMMAND)
        if starts:
            if keep and length > MAX_COMMAND:
                raise RtmpError(f"a {length}-byte command message (at most {MAX_COMMAND})")
            cs.body = bytearray()
        if keep:
            cs.body += payload
        cs.left = left - n
        if cs.left == 0:
            self._message(mtype, bytes(cs.body))
            cs.body = bytearray()
        return True

    def _basic_header(self) -> tuple[int, int] | None:
        if not self._have(1):
            return None
        b = self._buf[self._pos]
        fmt, csid = b >> 6, b & 0x3F
        extra = {0: 1, 1: 2}.get(csid, 0)
        if not self._have(1 + extra):
            return None
        self._pos += 1
        if extra:
            more = self._take(extra)
            csid = 64 + more[0] + (more[1] << 8 if extra == 2 else 0)
        return fmt, csid

    def _message(self, mtype: int, body: bytes) -> None:
        if mtype == SET_CHUNK_SIZE:
            if len(body) < 4:
                raise RtmpError("a short Set Chunk Size")
            size = struct.unpack(">I", body[:4])[0] & 0x7FFFFFFF
            if not 1 <= size <= MAX_CHUNK_SIZE:
                raise RtmpError(f"chunk size {size} (1..{MAX_CHUNK_SIZE})")
            self._chunk_size = size
            return
        if mtype == AMF3_COMMAND:
            if not body or body[0] != 0:
                raise RtmpError("an AMF3 command that is not AMF0 inside")
            body = body[1:]
        if mtype in (AMF0_COMMAND, AMF3_COMMAND):
            self._command(body)

    def _command(self, body: bytes) -> None:
        values, _ = _amf_values(body, 4)
        if not values or values[0] != "publish":
            return
        if len(values) < 4 or not isinstance(values[3], str):
            raise RtmpError("a publish command without a stream name")
        self.published = Published(values[3])


AmfValue = str | float | bool | None


def _amf_values(body: bytes, most: int) -> tuple[list[AmfValue], int]:
    """The first `most` AMF0 values of a command (scalars only: a command object that
    is an object ends the reading there, as no command this reader needs has one
    before its stream name)."""
    out: list[AmfValue] = []
    pos = 0
    while len(out) < most and pos < len(body):
        marker = body[pos]
        pos += 1
        if marker == AMF_NUMBER:
            if pos + 8 > len(body):
                raise RtmpError("a truncated AMF number")
            out.append(struct.unpack(">d", body[pos : pos + 8])[0])
            pos += 8
        elif marker == AMF_BOOLEAN:
            if pos + 1 > len(body):
                raise RtmpError("a truncated AMF boolean")
            out.append(body[pos] != 0)
            pos += 1
        elif marker == AMF_STRING:
            if pos + 2 > len(body):
                raise RtmpError("a truncated AMF string")
            n = int.from_bytes(body[pos : pos + 2], "big")
            if pos + 2 + n > len(body):
                raise RtmpError("a truncated AMF string")
            try:
                out.append(body[pos + 2 : pos + 2 + n].decode("utf-8"))
            except UnicodeDecodeError:
                raise RtmpError("an AMF string that is not UTF-8") from None
            pos += 2 + n
        elif marker in (AMF_NULL, AMF_UNDEFINED):
            out.append(None)
        else:
            break  # an object or another type: what follows is not read
    return out, pos
