"""HTTP/1.x message heads and URL rewriting in bodies (RFC 9112 sections 2-6).

    start-line CRLF
    *( field-name ":" OWS field-value OWS CRLF )
    CRLF
    [ message-body ]

The head is limited to 64 KiB and 100 fields; obsolete line folding is
refused (RFC 9112 section 5.2 allows that). Field names are case-insensitive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import AlgError

MAX_HEAD = 64 * 1024
MAX_FIELDS = 100
_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


@dataclass
class HttpHead:
    start: str
    """Request line (`GET /x HTTP/1.1`) or status line (`HTTP/1.1 200 OK`)."""
    fields: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        low = name.lower()
        for k, v in self.fields:
            if k.lower() == low:
                return v
        return None

    def set(self, name: str, value: str) -> None:
        low = name.lower()
        out, done = [], False
        for k, v in self.fields:
            if k.lower() == low:
                if not done:
                    out.append((k, value))
                    done = True
                continue
            out.append((k, v))
        if not done:
            out.append((name, value))
        self.fields = out

    def remove(self, name: str) -> None:
        low = name.lower()
        self.fields = [(k, v) for k, v in self.fields if k.lower() != low]

    @property
    def is_response(self) -> bool:
        return self.start.startswith(("HTTP/", "RTSP/"))

    def encode(self) -> bytes:
        lines = [self.start] + [f"{k}: {v}" for k, v in self.fields]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_head(data: bytes) -> tuple[HttpHead, int] | None:
    """Parse a head at the start of `data`: (head, bytes used), or None if incomplete."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) > MAX_HEAD:
            raise AlgError("head_too_long")
        return None
    if end > MAX_HEAD:
        raise AlgError("head_too_long")
    lines = data[:end].split(b"\r\n")
    start = lines[0]
    if not start or len(start.split(b" ")) < 2 or any(c < 0x20 and c != 9 for c in start):
        raise AlgError("start_line", repr(start[:80]))
    if len(lines) - 1 > MAX_FIELDS:
        raise AlgError("too_many_fields")
    fields = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            raise AlgError("obsolete_folding")
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):
            raise AlgError("field", repr(line[:80]))
        if any(c < 0x20 and c != 9 for c in value):
            raise AlgError("field_value", repr(line[:80]))
        fields.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))
    return HttpHead(start.decode("latin-1"), fields), end + 4
