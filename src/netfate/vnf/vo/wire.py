"""The requests users send to a VO host, and its answers (UDP, one per datagram).

    request (12 bytes; a forwarded one 18)
    0    2      3    4                     12             16      18
    +----+------+----+---------------------+--------------+-------+
    | VQ | kind | vo | seq u64             | client IPv4  | port  |
    +----+------+----+---------------------+--------------+-------+
    kind  1 READ (from a user), 2 FORWARDED (from a host that no longer serves `vo`:
          the answer goes to the client address that follows, not to the sender)

    answer (30 bytes)
    0    2        3    4          12         14          18              26      28
    +----+--------+----+----------+----------+-----------+---------------+-------+
    | VR | status | vo | seq u64  | host u16 | count u32 | served_at f64 | centi |
    +----+--------+----+----------+----------+-----------+---------------+-------+
    status  0 OK, 1 UNKNOWN (no such object here), 2 MOVED (unasked, seq 0: the
            object is served by the sender from now on), 3 HANDED (a good answer
            from a host that handed the object over and still serves it for a
            moment: the reading is valid, the place is not the one to learn)
    count   readings the object holds; centi: its last reading (centi-celsius)
    served_at  when the host served it (CLOCK_MONOTONIC: one clock on one machine)

All integers big-endian. Any other bytes raise WireError.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from enum import IntEnum

REQUEST = struct.Struct("!2sBBQ")
CLIENT = struct.Struct("!4sH")
ANSWER = struct.Struct("!2sBBQHIdh")


class WireError(Exception):
    """Bytes that are not a VO request or answer."""


class Kind(IntEnum):
    READ = 1
    FORWARDED = 2


class Status(IntEnum):
    OK = 0
    UNKNOWN = 1
    MOVED = 2
    HANDED = 3


@dataclass(frozen=True)
class Request:
    kind: Kind
    vo: int
    seq: int
    client: tuple[str, int] | None = None
    """FORWARDED: where the answer goes."""


@dataclass(frozen=True)
class Answer:
    status: Status
    vo: int
    seq: int
    host: int
    count: int
    served_at: float
    centi: int


def encode_request(r: Request) -> bytes:
    head = REQUEST.pack(b"VQ", r.kind, r.vo, r.seq)
    if r.kind == Kind.FORWARDED:
        if r.client is None:
            raise WireError("a forwarded request needs its client")
        ip, port = r.client
        return head + CLIENT.pack(ipaddress.IPv4Address(ip).packed, port)
    return head


def decode_request(data: bytes) -> Request:
    if len(data) < REQUEST.size:
        raise WireError(f"request of {len(data)} bytes")
    magic, kind, vo, seq = REQUEST.unpack_from(data)
    if magic != b"VQ":
        raise WireError("not a VO request")
    if kind == Kind.READ and len(data) == REQUEST.size:
        return Request(Kind.READ, vo, seq)
    if kind == Kind.FORWARDED and len(data) == REQUEST.size + CLIENT.size:
        ip, port = CLIENT.unpack_from(data, REQUEST.size)
        return Request(Kind.FORWARDED, vo, seq, (str(ipaddress.IPv4Address(ip)), port))
    raise WireError(f"request kind {kind} with {len(data)} bytes")


def encode_answer(a: Answer) -> bytes:
    return ANSWER.pack(b"VR", a.status, a.vo, a.seq, a.host, a.count, a.served_at, a.centi)


def decode_answer(data: bytes) -> Answer:
    if len(data) != ANSWER.size:
        raise WireError(f"answer of {len(data)} bytes")
    magic, status, vo, seq, host, count, served_at, centi = ANSWER.unpack(data)
    if magic != b"VR":
        raise WireError("not a VO answer")
    try:
        st = Status(status)
    except ValueError:
        raise WireError(f"unknown status {status}") from None
    return Answer(st, vo, seq, host, count, served_at, centi)
