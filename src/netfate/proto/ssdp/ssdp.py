"""SSDP messages (UPnP Device Architecture 2.0, section 1): HTTP heads over UDP.

    M-SEARCH * HTTP/1.1          search (multicast to 239.255.255.250:1900, or unicast)
    NOTIFY * HTTP/1.1            ssdp:alive / ssdp:byebye / ssdp:update (multicast)
    HTTP/1.1 200 OK              search response (unicast to the searcher)

A datagram holds exactly one message: the head, and no body. The device's
addresses appear in LOCATION (its description URL) and in AL (alternate
locations, `<url><url>`); those are what the ALG rewrites.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import AlgError
from .http import HttpHead, parse_head, rewrite_urls

MAX_DATAGRAM = 8192
KINDS = ("M-SEARCH", "NOTIFY", "RESPONSE")


@dataclass
class SsdpMessage:
    kind: str
    """M-SEARCH, NOTIFY or RESPONSE."""
    head: HttpHead


def parse_ssdp(data: bytes) -> SsdpMessage:
    if len(data) > MAX_DATAGRAM:
        raise AlgError("too_long", f"{len(data)} bytes")
    parsed = parse_head(data)
    if parsed is None:
        raise AlgError("incomplete", "no empty line after the head")
    head, _ = parsed
    start = head.start
    if start.startswith("M-SEARCH * HTTP/1."):
        kind = "M-SEARCH"
    elif start.startswith("NOTIFY * HTTP/1."):
        kind = "NOTIFY"
    elif start.startswith("HTTP/1.") and start[9:12] == "200":
        kind = "RESPONSE"
    else:
        raise AlgError("not_ssdp", repr(start[:40]))
    return SsdpMessage(kind, head)


def rewrite_ssdp(data: bytes, old_host: str, new_host: str) -> bytes:
    """The datagram with the device's address in LOCATION/AL replaced; other fields kept."""
    msg = parse_ssdp(data)
    for name in ("LOCATION", "AL"):
        v = msg.head.get(name)
        if v is not None:
            msg.head.set(
                name, rewrite_urls(v.encode("latin-1"), old_host, new_host).decode("latin-1")
            )
    return msg.head.encode()
