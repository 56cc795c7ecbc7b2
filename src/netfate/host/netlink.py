"""A minimal netlink codec and request loop, for the few messages a function sends
from its own process (conntrack entries, neighbours) instead of spawning a tool.

Wire format (linux/netlink.h; host byte order, every part padded to 4 bytes):

    struct nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }   16 bytes
    family header   (nfgenmsg: u8 family, u8 version, be16 res_id;
                     ndmsg: u8 family, 3 pad, s32 ifindex, u16 state, u8 flags, u8 type)
    struct nlattr   { u16 len; u16 type; } + payload; NLA_F_NESTED (0x8000) marks
                     a payload that is itself attributes

A request with NLM_F_ACK is answered by NLMSG_ERROR (s32 error, 0 = ack); a dump
(NLM_F_DUMP) by messages of its type up to NLMSG_DONE. The pure functions here
(`attr`, `nested`, `message`, `parse_attrs`, `split_messages`) take and give bytes;
`request` and `dump` do the I/O on one socket of the calling thread's namespace.
A malformed answer raises `NetlinkError`.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator

NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF
NETLINK_NETFILTER = 12

HDR = struct.Struct("=IHHII")
ATTR = struct.Struct("=HH")


class NetlinkError(OSError):
    """A malformed answer, or the kernel's refusal (errno set)."""


def _pad(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    """One attribute, padded."""
    n = ATTR.size + len(payload)
    return (ATTR.pack(n, kind) + payload).ljust(_pad(n), b"\0")


def nested(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return HDR.pack(HDR.size + len(body), kind, flags, seq, 0) + body


def parse_attrs(data: bytes) -> dict[int, bytes]:
    """Attributes of one level, by type (flags masked off; the last of a type wins)."""
    out: dict[int, bytes] = {}
    off = 0
    while off + ATTR.size <= len(data):
        n, kind = ATTR.unpack_from(data, off)
        if n < ATTR.size or off + n > len(data):
            raise NetlinkError(errno.EPROTO, "malformed netlink attribute")
        out[kind & NLA_TYPE_MASK] = data[off + ATTR.size : off + n]
        off += _pad(n)
    return out


def split_messages(buf: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, seq, body) of each message in one datagram."""
    off = 0
    while off + HDR.size <= len(buf):
        n, kind, _, seq, _ = HDR.unpack_from(buf, off)
        if n < HDR.size or off + n > len(buf):
            raise NetlinkError(errno.EPROTO, "malformed netlink message")
        yield kind, seq, buf[off + HDR.size : off + n]
        off += _pad(n)


def error_of(body: bytes) -> int:
    """The errno of an NLMSG_ERROR body (0: an ack)."""
    if len(body) < 4:
        raise NetlinkError(errno.EPROTO, "short netlink error message")
    (err,) = struct.unpack_from("=i", body)
    return -int(err)


class Socket:
    """One netlink socket of `protocol`, in the namespace of the thread that opens it."""

    def __init__(self, protocol: int) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, kind: int, flags: int, body: bytes) -> int:
        """Send one request with NLM_F_ACK; the kernel's errno (0: done)."""
        self.seq += 1
        seq = self.seq
        self.sock.send(message(kind, flags | NLM_F_REQUEST | NLM_F_ACK, seq, body))
        while True:
            for mtype, mseq, mbody in split_messages(self.sock.recv(1 << 16)):
                if mtype == NLMSG_ERROR and mseq == seq:
                    return error_of(mbody)

    def dump(self, kind: int, body: bytes) -> Iterator[tuple[int, bytes]]:
        """(type, body) of every message answering a dump request."""
        self.seq += 1
        seq = self.seq
        self.sock.send(message(kind, NLM_F_REQUEST | NLM_F_DUMP, seq, body))
        while True:
            for mtype, mseq, mbody in split_messages(self.sock.recv(1 << 20)):
                if mseq != seq:
                    continue
                if mtype == NLMSG_DONE:
                    return
                if mtype == NLMSG_ERROR:
                    err = error_of(mbody)
                    if err:
                        raise NetlinkError(err, os.strerror(err))
                    return
                yield mtype, mbody


# ---------------------------------------------------------------- neighbours

RTM_NEWNEIGH = 28
NDA_DST, NDA_LLADDR = 1, 2
NUD_STALE = 0x04
NDMSG = struct.Struct("=BxxxiHBB")


def neigh_replace_msg(ifindex: int, ip: str, mac: str, state: int = NUD_STALE) -> bytes:
    """The body of RTM_NEWNEIGH for `ip` at `mac` on `ifindex` (IPv4)."""
    return (
        NDMSG.pack(socket.AF_INET, ifindex, state, 0, 0)
        + attr(NDA_DST, socket.inet_aton(ip))
        + attr(NDA_LLADDR, bytes.fromhex(mac.replace(":", "")))
    )


def replace_neighbours(ifname: str, entries: list[tuple[str, str]]) -> int:
    """`ip neigh replace IP lladdr MAC dev IFNAME nud stale` for each, in this
    process's namespace; how many the kernel took."""
    if not entries:
        return 0
    ifindex = socket.if_nametoindex(ifname)
    ok = 0
    with Socket(socket.NETLINK_ROUTE) as s:
        for ip, mac in entries:
            if s.request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE,
                         neigh_replace_msg(ifindex, ip, mac)) == 0:  # fmt: skip
                ok += 1
    return ok
