"""mDNS answers of a shared device, made true in PN2 (RFC 6762 over RFC 1035 messages).

The device's messages name its PN1 address in A records and in reverse names
(`2.1.168.192.in-addr.arpa`), its ports in SRV records, and sometimes URLs in TXT
strings. Through the share the device has one IPv4 address in PN2, its alias, so:

    record / name                          through VP1
    A of an address of the map             the mapped address (the device -> its alias)
    A of any other address                 removed (unreachable in PN2, and PN1's)
    AAAA                                   removed (the share carries IPv4 only)
    reverse name of an address of the map  the reverse name of the mapped address
    any other reverse name (v4 or v6)      the question or record removed
    TXT                                    each string's addresses mapped; a string
                                           that would pass 255 bytes: record removed
    SRV                                    unchanged; its port is learned
    anything else                          unchanged

A message that needs no change is passed on byte for byte; one that does is rebuilt
(proto/dns, names compressed). A message left with nothing in it is dropped.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from netfate.proto import dns

from .addrmap import AddressMap, url_ports
from .errors import AlgError

IPv4 = ipaddress.IPv4Address


@dataclass
class MdnsRewrite:
    data: bytes | None
    """The message to send on, or None when nothing is left of it."""
    rewritten: int = 0
    """Records and questions changed."""
    removed: int = 0
    """Records and questions taken out."""
    ports: set[int] = field(default_factory=set)
    """Ports of SRV records, and of URLs in TXT strings that name the device."""


class _Rewrite:
    def __init__(self, amap: AddressMap, device: str) -> None:
        self.amap = amap
        self.device = device
        self.by_addr = {IPv4(a): IPv4(b) for a, b in amap.pairs}
        self.result = MdnsRewrite(None)

    def name(self, name: dns.Name) -> dns.Name | None:
        """The name in PN2, or None when it names an address PN2 must not see."""
        if not dns.is_reverse(name):
            return name
        addr = dns.reverse_address(name)
        new = self.by_addr.get(addr) if addr is not None else None
        return dns.reverse_name(new) if new is not None else None

    def data(self, rtype: int, d: dns.RData) -> dns.RData | None:
        if isinstance(d, dns.Address):
            if rtype != dns.TYPE_A:
                return None
            new = self.by_addr.get(IPv4(d.packed))
            return dns.Address(new.packed) if new is not None else None
        if isinstance(d, dns.Domain):
            target = self.name(d.name)
            return dns.Domain(target) if target is not None else None
        if isinstance(d, dns.Srv):
            self.result.ports.add(d.port)
            return d
        if isinstance(d, dns.Txt):
            strings = []
            for s in d.strings:
                self.result.ports |= url_ports(s, self.device)
                t = self.amap.apply(s)
                if len(t) > 255:
                    return None
                strings.append(t)
            return dns.Txt(tuple(strings))
        return d

    def record(self, r: dns.Record) -> dns.Record | None:
        name = self.name(r.name)
        data = self.data(r.rtype, r.data) if name is not None else None
        if name is None or data is None:
            self.result.removed += 1
            return None
        if (name, data) != (r.name, r.data):
            self.result.rewritten += 1
            return dns.Record(name, r.rtype, r.rclass, r.ttl, data)
        return r


def rewrite_mdns(data: bytes, amap: AddressMap, device: str) -> MdnsRewrite:
    """The device's mDNS message as PN2 may see it (table above)."""
    try:
        msg = dns.parse(data)
    except dns.DnsError as e:
        raise AlgError("mdns_" + e.reason, e.detail) from None
    rw = _Rewrite(amap, device)
    questions = []
    for q in msg.questions:
        name = rw.name(q.name)
        if name is None:
            rw.result.removed += 1
            continue
        if name != q.name:
            rw.result.rewritten += 1
        questions.append(dns.Question(name, q.qtype, q.qclass))
    sections = [
        [r2 for r in section if (r2 := rw.record(r)) is not None]
        for section in (msg.answers, msg.authorities, msg.additionals)
    ]
    res = rw.result
    if not (res.rewritten or res.removed):
        res.data = data
        return res
    if questions or any(sections):
        out = dns.Message(msg.id, msg.flags, questions, *sections)
        try:
            res.data = dns.build(out)
        except dns.DnsError as e:
            raise AlgError("mdns_" + e.reason, e.detail) from None
    return res
