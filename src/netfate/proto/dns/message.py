"""DNS messages (RFC 1035 section 4) as Multicast DNS uses them (RFC 6762), parsed
and built with name compression.

    Header, 12 bytes ("!HHHHHH"):
                                    1  1  1  1  1  1
      0  1  2  3  4  5  6  7  8  9  0  1  2  3  4  5
    +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
    |                      ID                       |
    |QR|   Opcode  |AA|TC|RD|RA|   Z    |   RCODE   |
    |        QDCOUNT        |        ANCOUNT        |   (16 bits each)
    |        NSCOUNT        |        ARCOUNT        |
    +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
    Question: QNAME, QTYPE (2), QCLASS (2)
    Resource record: NAME, TYPE (2), CLASS (2), TTL (4), RDLENGTH (2), RDATA

mDNS reuses the top bit of a question's class as "unicast response wanted" (QU,
RFC 6762 section 5.4) and of a record's class as "cache flush" (section 10.2);
both stay in `qclass` / `rclass` as they came.

A name is a sequence of labels (a length byte 1-63, then the bytes) that ends with
a zero byte or with a pointer: two bytes whose top bits are 11 and whose other 14
bits are an offset from the message start (RFC 1035 section 4.1.4). A parsed name
is a tuple of labels, case kept. Pointers must point before the start of the name
(or of the part of it already followed), so following them always ends; a name is
at most 255 bytes (section 3.1).

RDATA is decoded for the types whose data holds names or addresses (A, AAAA, NS,
CNAME, PTR, DNAME, MX, SOA, SRV, TXT, NSEC; RFC 6762 section 18.14 allows
compressed names in all of these) and kept as bytes for every other type (RFC 3597:
those never contain compressed names, so they can move within a message).

`build` compresses record and question names and the names in NS, CNAME, PTR,
DNAME, MX and SOA data; SRV targets and NSEC next names are written whole, which
every receiver reads (RFC 2782 and RFC 4034 want them uncompressed in unicast DNS).

Every refusal is a `DnsError`; fuzzed in tests/fuzz.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from .errors import DnsError

Name = tuple[bytes, ...]
"""Labels, without the root's empty label: (b"nas", b"local")."""

HEADER = struct.Struct("!HHHHHH")
RR_FIXED = struct.Struct("!HHIH")
MAX_NAME = 255
MAX_LABEL = 63
MAX_MESSAGE = 65535
POINTER_LIMIT = 0x3FFF

TYPE_A, TYPE_NS, TYPE_CNAME, TYPE_SOA, TYPE_PTR = 1, 2, 5, 6, 12
TYPE_MX, TYPE_TXT, TYPE_AAAA, TYPE_SRV, TYPE_DNAME = 15, 16, 28, 33, 39
TYPE_OPT, TYPE_NSEC = 41, 47
TOP_BIT = 0x8000
"""QU in a question's class, cache-flush in a record's class (mDNS)."""


@dataclass(frozen=True)
class Address:
    """A (4 bytes) or AAAA (16 bytes) data."""

    packed: bytes

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_address(self.packed)


@dataclass(frozen=True)
class Domain:
    """NS, CNAME, PTR or DNAME data: one name."""

    name: Name


@dataclass(frozen=True)
class Mx:
    preference: int
    exchange: Name


@dataclass(frozen=True)
class Soa:
    mname: Name
    rname: Name
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


@dataclass(frozen=True)
class Srv:
    """RFC 2782: where a service runs."""

    priority: int
    weight: int
    port: int
    target: Name


@dataclass(frozen=True)
class Txt:
    """Character strings, each at most 255 bytes (RFC 1035 section 3.3.14)."""

    strings: tuple[bytes, ...]


@dataclass(frozen=True)
class Nsec:
    next_name: Name
    bitmaps: bytes
    """The type bit maps as they came (RFC 4034 section 4.1.2)."""


@dataclass(frozen=True)
class Opaque:
    """Data of any other type, unparsed."""

    data: bytes


RData = Address | Domain | Mx | Soa | Srv | Txt | Nsec | Opaque

_DOMAIN_TYPES = frozenset({TYPE_NS, TYPE_CNAME, TYPE_PTR, TYPE_DNAME})


@dataclass(frozen=True)
class Question:
    name: Name
    qtype: int
    qclass: int
    """With the QU bit (TOP_BIT) as it came."""

    @property
    def unicast_response(self) -> bool:
        return bool(self.qclass & TOP_BIT)


@dataclass(frozen=True)
class Record:
    name: Name
    rtype: int
    rclass: int
    """With the cache-flush bit (TOP_BIT) as it came."""
    ttl: int
    data: RData


@dataclass
class Message:
    id: int = 0
    flags: int = 0
    questions: list[Question] = field(default_factory=list)
    answers: list[Record] = field(default_factory=list)
    authorities: list[Record] = field(default_factory=list)
    additionals: list[Record] = field(default_factory=list)

    @property
    def is_response(self) -> bool:
        return bool(self.flags & TOP_BIT)

    def records(self) -> list[Record]:
        return [*self.answers, *self.authorities, *self.additionals]


# ------------------------------------------------------------------ parsing


def _name(data: bytes, off: int) -> tuple[Name, int]:
    """(name at `off`, offset after it where it is written)."""
    labels: list[bytes] = []
    length = 1  # the root's zero byte
    end: int | None = None  # where the name ends in place (after its first pointer)
    limit = off  # a pointer must point before this: strictly backwards, so it ends
    pos = off
    while True:
        if pos >= len(data):
            raise DnsError("truncated", "in a name")
        n = data[pos]
        if n == 0:
            return tuple(labels), (pos + 1 if end is None else end)
        kind = n & 0xC0
        if kind == 0xC0:
            if pos + 2 > len(data):
                raise DnsError("truncated", "in a pointer")
            target = ((n & 0x3F) << 8) | data[pos + 1]
            if target >= limit:
                raise DnsError("pointer", f"to {target}, not before {limit}")
            if end is None:
                end = pos + 2
            limit = pos = target
            continue
        if kind:
            raise DnsError("label_type", f"0x{n:02x}")
        if pos + 1 + n > len(data):
            raise DnsError("truncated", "in a label")
        length += 1 + n
        if length > MAX_NAME:
            raise DnsError("name_too_long")
        labels.append(data[pos + 1 : pos + 1 + n])
        pos += 1 + n


def _rdata(data: bytes, rtype: int, off: int, rdlen: int) -> RData:
    end = off + rdlen

    def name_at(o: int) -> tuple[Name, int]:
        name, after = _name(data, o)
        if after > end:
            raise DnsError("rdata", f"a name runs past RDLENGTH in type {rtype}")
        return name, after

    def exact(after: int) -> None:
        if after != end:
            raise DnsError("rdata", f"type {rtype}: {end - after} bytes left over")

    if rtype in (TYPE_A, TYPE_AAAA):
        want = 4 if rtype == TYPE_A else 16
        if rdlen != want:
            raise DnsError("rdata", f"type {rtype} with {rdlen} bytes")
        return Address(data[off:end])
    if rtype in _DOMAIN_TYPES:
        name, after = name_at(off)
        exact(after)
        return Domain(name)
    if rtype == TYPE_MX:
        if rdlen < 3:
            raise DnsError("rdata", "MX too short")
        name, after = name_at(off + 2)
        exact(after)
        return Mx(struct.unpack_from("!H", data, off)[0], name)
    if rtype == TYPE_SRV:
        if rdlen < 7:
            raise DnsError("rdata", "SRV too short")
        prio, weight, port = struct.unpack_from("!HHH", data, off)
        name, after = name_at(off + 6)
        exact(after)
        return Srv(prio, weight, port, name)
    if rtype == TYPE_SOA:
        mname, after = name_at(off)
        rname, after = name_at(after)
        if after + 20 != end:
            raise DnsError("rdata", "SOA numbers")
        return Soa(mname, rname, *struct.unpack_from("!IIIII", data, after))
    if rtype == TYPE_TXT:
        strings, pos = [], off
        while pos < end:
            n = data[pos]
            if pos + 1 + n > end:
                raise DnsError("rdata", "TXT string runs past RDLENGTH")
            strings.append(data[pos + 1 : pos + 1 + n])
            pos += 1 + n
        return Txt(tuple(strings))
    if rtype == TYPE_NSEC:
        name, after = name_at(off)
        return Nsec(name, data[after:end])
    return Opaque(data[off:end])


def parse(data: bytes) -> Message:
    if len(data) < HEADER.size:
        raise DnsError("truncated", "header")
    if len(data) > MAX_MESSAGE:
        raise DnsError("too_long", f"{len(data)} bytes")
    mid, flags, qd, an, ns, ar = HEADER.unpack_from(data)
    # Each question takes at least 5 bytes and each record 11: counts beyond what
    # the bytes can hold are refused before any work.
    if qd * 5 + (an + ns + ar) * 11 > len(data) - HEADER.size:
        raise DnsError("counts", f"{qd}/{an}/{ns}/{ar} do not fit in {len(data)} bytes")
    msg = Message(mid, flags)
    off = HEADER.size
    for _ in range(qd):
        name, off = _name(data, off)
        if off + 4 > len(data):
            raise DnsError("truncated", "question")
        qtype, qclass = struct.unpack_from("!HH", data, off)
        off += 4
        msg.questions.append(Question(name, qtype, qclass))
    for count, section in ((an, msg.answers), (ns, msg.authorities), (ar, msg.additionals)):
        for _ in range(count):
            name, off = _name(data, off)
            if off + RR_FIXED.size > len(data):
                raise DnsError("truncated", "record header")
            rtype, rclass, ttl, rdlen = RR_FIXED.unpack_from(data, off)
            off += RR_FIXED.size
            if off + rdlen > len(data):
                raise DnsError("truncated", "rdata")
            section.append(Record(name, rtype, rclass, ttl, _rdata(data, rtype, off, rdlen)))
            off += rdlen
    if off != len(data):
        raise DnsError("trailing", f"{len(data) - off} bytes after the last record")
    return msg


# ------------------------------------------------------------------ building


class _Writer:
    def __init__(self) -> None:
        self.buf = bytearray()
        self.offsets: dict[Name, int] = {}

    def name(self, name: Name, compress: bool = True) -> None:
        if sum(1 + len(label) for label in name) + 1 > MAX_NAME:
            raise DnsError("name_too_long", b".".join(name)[:80].decode("latin-1"))
        for i in range(len(name)):
            suffix = name[i:]
            at = self.offsets.get(suffix)
            if compress and at is not None:
                self.buf += struct.pack("!H", 0xC000 | at)
                return
            label = suffix[0]
            if not 0 < len(label) <= MAX_LABEL:
                raise DnsError("label", f"{len(label)} bytes")
            if len(self.buf) <= POINTER_LIMIT:
                # Exact bytes only: a pointer reproduces the earlier spelling.
                self.offsets.setdefault(suffix, len(self.buf))
            self.buf += bytes([len(label)]) + label
        self.buf += b"\x00"

    def rdata(self, rtype: int, d: RData) -> None:
        match d:
            case Address(packed):
                if len(packed) != (4 if rtype == TYPE_A else 16 if rtype == TYPE_AAAA else -1):
                    raise DnsError("rdata", f"an address of {len(packed)} bytes in type {rtype}")
                self.buf += packed
            case Domain(name):
                self.name(name)
            case Mx(pref, exchange):
                self.buf += struct.pack("!H", pref)
                self.name(exchange)
            case Soa():
                self.name(d.mname)
                self.name(d.rname)
                self.buf += struct.pack("!IIIII", d.serial, d.refresh, d.retry, d.expire,
                                        d.minimum)  # fmt: skip
            case Srv(prio, weight, port, target):
                self.buf += struct.pack("!HHH", prio, weight, port)
                self.name(target, compress=False)
            case Txt(strings):
                for s in strings:
                    if len(s) > 255:
                        raise DnsError("txt", f"a string of {len(s)} bytes")
                    self.buf += bytes([len(s)]) + s
            case Nsec(next_name, bitmaps):
                self.name(next_name, compress=False)
                self.buf += bitmaps
            case Opaque(data):
                self.buf += data


def build(msg: Message) -> bytes:
    """The wire form of `msg`, names compressed."""
    w = _Writer()
    counts = [len(msg.questions), len(msg.answers), len(msg.authorities), len(msg.additionals)]
    if max(counts) > 0xFFFF:
        raise DnsError("counts")
    w.buf += HEADER.pack(msg.id & 0xFFFF, msg.flags & 0xFFFF, *counts)
    for q in msg.questions:
        w.name(q.name)
        w.buf += struct.pack("!HH", q.qtype, q.qclass)
    for r in msg.records():
        w.name(r.name)
        fixed_at = len(w.buf)
        w.buf += RR_FIXED.pack(r.rtype, r.rclass, r.ttl, 0)
        w.rdata(r.rtype, r.data)
        rdlen = len(w.buf) - fixed_at - RR_FIXED.size
        if rdlen > 0xFFFF:
            raise DnsError("rdata", "longer than 65535 bytes")
        struct.pack_into("!H", w.buf, fixed_at + 8, rdlen)
    if len(w.buf) > MAX_MESSAGE:
        raise DnsError("too_long", f"{len(w.buf)} bytes")
    return bytes(w.buf)


# ------------------------------------------------------------------ reverse names

_IN_ADDR = (b"in-addr", b"arpa")
_IP6 = (b"ip6", b"arpa")


def reverse_name(addr: ipaddress.IPv4Address) -> Name:
    """2.1.168.192.in-addr.arpa for 192.168.1.2 (RFC 1035 section 3.5)."""
    return (*(str(b).encode() for b in reversed(addr.packed)), *_IN_ADDR)


def reverse_address(name: Name) -> ipaddress.IPv4Address | None:
    """The address a reverse name stands for, or None if it is not a whole one."""
    if len(name) != 6 or tuple(label.lower() for label in name[4:]) != _IN_ADDR:
        return None
    octets = name[:4]
    if not all(o.isdigit() and len(o) <= 3 and (o == b"0" or not o.startswith(b"0"))
               for o in octets):  # fmt: skip
        return None
    values = [int(o) for o in octets]
    if max(values) > 255:
        return None
    return ipaddress.IPv4Address(bytes(reversed(values)))


def is_reverse(name: Name) -> bool:
    """Under in-addr.arpa or ip6.arpa (a name that stands for an address)."""
    tail = tuple(label.lower() for label in name[-2:])
    return tail in (_IN_ADDR, _IP6)
