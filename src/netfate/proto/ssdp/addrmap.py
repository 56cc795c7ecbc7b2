"""Addresses in text: replaced as whole addresses, and the ports of URLs that name one.

A shared device's descriptions, SOAP answers, SDP and headers name its PN1 address
as text: in URLs (`http://192.168.1.2:49152/x`), in `host:port` pairs, in SDP lines
(`c=IN IP4 192.168.1.2`), in RTSP transport parameters (`source=192.168.1.2`), XML
escaped or not (digits and dots are never escaped). `AddressMap` replaces each whole
address in one pass, so a map may swap addresses (overlapping PNs) without one
replacement feeding the next; `192.168.1.2` does not match in `192.168.1.20` nor in
`10.192.168.1.2`.

`url_ports` finds the ports a device names for itself: every `scheme://HOST[:port]`
whose host is the device's address, the scheme's default port where none is given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

DEFAULT_PORTS = {b"http": 80, b"https": 443, b"rtsp": 554, b"rtsps": 322}
# Not preceded by a digit or a dot (not the tail of a longer address), not followed by
# a digit or by a dot and a digit (not the head of one).
_BEFORE = rb"(?<![0-9.])"
_AFTER = rb"(?![0-9]|\.[0-9])"


class AddressMap:
    """old address -> new address, for bytes and text (each address a dotted quad)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.pairs = tuple((str(a), str(b)) for a, b in pairs if str(a) != str(b))
        self._map = {a.encode(): b.encode() for a, b in self.pairs}
        keys = sorted(self._map, key=len, reverse=True)
        self._re = (
            re.compile(_BEFORE + b"(?:" + b"|".join(re.escape(k) for k in keys) + b")" + _AFTER)
            if keys
            else None
        )

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def apply(self, data: bytes) -> bytes:
        if self._re is None:
            return data
        return self._re.sub(lambda m: self._map[m.group(0)], data)

    def apply_text(self, text: str) -> str:
        return self.apply(text.encode("latin-1")).decode("latin-1")

    def count(self, data: bytes) -> int:
        """How many addresses of the map `data` names."""
        return 0 if self._re is None else len(self._re.findall(data))


def url_ports(data: bytes, host: str) -> set[int]:
    """Ports of the URLs in `data` whose host is `host` (http, https, rtsp, rtsps)."""
    pat = re.compile(
        rb"(?i)(?<![a-z0-9+.-])(https?|rtsps?)://" + re.escape(host.encode())
        + rb"(?::([0-9]{1,5}))?" + _AFTER
    )  # fmt: skip
    out: set[int] = set()
    for m in pat.finditer(data):
        port = int(m.group(2)) if m.group(2) else DEFAULT_PORTS[m.group(1).lower()]
        if 0 < port < 65536:
            out.add(port)
    return out
