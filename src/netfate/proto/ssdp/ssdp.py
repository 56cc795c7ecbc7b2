"""SSDP messages (UPnP Device Architecture 2.0, section 1): HTTP heads over UDP.

    M-SEARCH * HTTP/1.1          search (multicast to 239.255.255.250:1900, or unicast)
    NOTIFY * HTTP/1.1            ssdp:alive / ssdp:byebye / ssdp:update (multicast)
    HTTP/1.1 200 OK              search response (unicast to the searcher, from any port)

A datagram holds exactly one message: the head, and no body. The device's
addresses appear in LOCATION (its description URL), AL (alternate locations,
`<url><url>`) and SECURELOCATION.UPNP.ORG; the ALG rewrites addresses in every
field, so vendor fields that carry a URL are covered too.
"""

from __future__ import annotations

from dataclasses import dataclass

from .addrmap import AddressMap, url_ports
from .errors import AlgError
from .http import HttpHead, parse_head

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


def rewrite_ssdp(
    data: bytes, amap: AddressMap, device: str | None = None
) -> tuple[bytes, set[int]]:
    """(the datagram with the map's addresses replaced in every field, the ports of
    the URLs in it that name `device`)."""
    msg = parse_ssdp(data)
    ports: set[int] = set()
    fields = []
    for k, v in msg.head.fields:
        if device is not None:
            ports |= url_ports(v.encode("latin-1"), device)
        fields.append((k, amap.apply_text(v)))
    msg.head.fields = fields
    return msg.head.encode(), ports
