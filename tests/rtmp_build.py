"""RTMP publisher bytes built by hand (tests of netfate.proto.rtmp): the handshake,
chunks of a message in any header format, AMF0 commands. What ffmpeg really sends
is tests/vectors/rtmp_publish_ffmpeg.bin (its README says how it was captured)."""

from __future__ import annotations

import struct
from pathlib import Path

VECTOR = Path(__file__).resolve().parent / "vectors" / "rtmp_publish_ffmpeg.bin"
VECTOR_KEY = "test-stream-key-1"
HANDSHAKE = b"\x03" + bytes(1536) + bytes(1536)


def basic(fmt: int, csid: int) -> bytes:
    if csid < 64:
        return bytes([fmt << 6 | csid])
    if csid < 320:
        return bytes([fmt << 6, csid - 64])
    return bytes([fmt << 6 | 1]) + struct.pack("<H", csid - 64)


def chunks(csid: int, mtype: int, body: bytes, size: int = 128, *, ts: int = 0,
           fmt: int = 0, stream: int = 0) -> bytes:  # fmt: skip
    """A message as chunks: the first with a header of format `fmt` (0: full, 1: no
    stream id, 2: timestamp only), the rest format 3; an extended timestamp when
    `ts` does not fit 24 bits."""
    field = min(ts, 0xFFFFFF).to_bytes(3, "big")
    ext = struct.pack(">I", ts) if ts >= 0xFFFFFF else b""
    header = {
        0: field + len(body).to_bytes(3, "big") + bytes([mtype]) + struct.pack("<I", stream),
        1: field + len(body).to_bytes(3, "big") + bytes([mtype]),
        2: field,
    }[fmt]
    out = basic(fmt, csid) + header + ext + body[:size]
    for i in range(size, len(body), size):
        out += basic(3, csid) + ext + body[i : i + size]
    return out


def amf_string(s: str) -> bytes:
    raw = s.encode()
    return b"\x02" + struct.pack(">H", len(raw)) + raw


def amf_number(n: float) -> bytes:
    return b"\x00" + struct.pack(">d", n)


def command(name: str, txn: float, *args: bytes, obj: bytes = b"\x05") -> bytes:
    return amf_string(name) + amf_number(txn) + obj + b"".join(args)


def connect(app: str = "live") -> bytes:
    """connect's command object: {app: ..., tcUrl: ...} (an AMF0 object)."""
    props = b"".join(
        struct.pack(">H", len(k)) + k.encode() + amf_string(v)
        for k, v in (("app", app), ("tcUrl", f"rtmp://10.0.0.1:5000/{app}" + "x" * 100))
    )
    return command("connect", 1, obj=b"\x03" + props + b"\x00\x00\x09")


def publisher(key: str, size: int = 128) -> bytes:
    """A publisher as far as its publish command (after Set Chunk Size to `size`)."""
    out = HANDSHAKE
    if size != 128:
        out += chunks(2, 1, struct.pack(">I", size))
    out += chunks(3, 20, connect(), size)
    out += chunks(3, 20, command("releaseStream", 2, amf_string(key)), size, fmt=1)
    # the same length again: format 2 (timestamp only) then format 3 would do
    out += chunks(3, 20, command("releaseStream", 3, amf_string(key)), size, fmt=2)
    out += chunks(3, 20, command("createStream", 4), size, fmt=1)
    out += chunks(8, 20, command("publish", 5, amf_string(key), amf_string("live")), size,
                  stream=1)  # fmt: skip
    return out
