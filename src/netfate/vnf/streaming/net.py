"""Sockets of the streaming functions: UDP ports read in bursts, a fan-out to next hops.

A relay touches every datagram, so the receive side avoids asyncio's datagram
transport (one ``recvfrom`` per loop iteration and a protocol callback per
datagram): it registers the socket with the loop and, when it is readable,
drains up to :data:`BURST` datagrams in one go. Sending is a plain non-blocking
``sendto`` per hop; a full socket buffer drops that copy and counts it (a relay
must never queue a live stream behind a slow hop).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import time
from collections.abc import Callable, Iterable

from .config import Hop

BURST = 64
"""Datagrams read per readiness callback before yielding to the loop."""
RCVBUF = 4 << 20
SNDBUF = 4 << 20
MAX_DATAGRAM = 65535

OnDatagram = Callable[[bytes, tuple[str, int], float], None]
"""(datagram, sender (host, port), monotonic now)."""


def bind_udp(host: str, port: int, rcvbuf: int = RCVBUF) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def port_pair(host: str = "127.0.0.1") -> tuple[socket.socket, socket.socket]:
    """Two bound UDP sockets on ports P and P + 1: where an ffmpeg child sends RTP
    (and, to P + 1, RTCP)."""
    for _ in range(64):
        rtp = bind_udp(host, 0)
        port = rtp.getsockname()[1]
        if port >= 65535:
            rtp.close()
            continue
        try:
            rtcp = bind_udp(host, port + 1)
        except OSError:
            rtp.close()
            continue
        return rtp, rtcp
    raise OSError(f"no free UDP port pair on {host}")


class UdpPort:
    """A bound UDP socket whose datagrams go to `on_datagram`."""

    def __init__(self, host: str, port: int, on_datagram: OnDatagram) -> None:
        self.host = host
        self.port = port
        self.on_datagram = on_datagram
        self.sock: socket.socket | None = None
        self.datagrams = 0
        self.octets = 0

    def open(self, sock: socket.socket | None = None) -> None:
        """Bind (or adopt `sock`, already bound and non-blocking) and start reading."""
        self.sock = sock if sock is not None else bind_udp(self.host, self.port)
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        for _ in range(BURST):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. a queued ICMP error: nothing to read
            self.datagrams += 1
            self.octets += len(data)
            self.on_datagram(data, (str(addr[0]), int(addr[1])), time.monotonic())

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(RuntimeError):  # no loop any more (process exit)
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None


class Sender:
    """Unbound UDP sockets (one per address family) that every fan-out sends from."""

    def __init__(self) -> None:
        self._socks: dict[int, socket.socket] = {}

    def _sock(self, family: int) -> socket.socket:
        s = self._socks.get(family)
        if s is None:
            s = socket.socket(family, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
            s.setblocking(False)
            self._socks[family] = s
        return s

    def sendto(self, data: bytes | memoryview, host: str, port: int) -> int:
        """0 when sent, else the errno of the failure (ENOBUFS/EAGAIN: buffer full)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._sock(family).sendto(data, (host, port))
        except BlockingIOError:
            return errno.EAGAIN
        except OSError as e:
            return e.errno or errno.EIO
        return 0

    def close(self) -> None:
        for s in self._socks.values():
            s.close()
        self._socks.clear()


class Fanout:
    """The next hops of one stream, replaced in place.

    ``set_hops`` swaps the tuple between two datagrams (the event loop runs one
    thing at a time), so a hop present before and after a reconfiguration misses
    nothing; its counters carry on."""

    def __init__(self, sender: Sender, hops: Iterable[Hop] = ()) -> None:
        self.sender = sender
        self.hops: tuple[Hop, ...] = ()
        self.sent: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.last_error: dict[str, str] = {}
        self.set_hops(hops)

    def set_hops(self, hops: Iterable[Hop]) -> None:
        new = tuple(hops)
        keys = {h.key for h in new}
        for k in list(self.sent):
            if k not in keys:
                del self.sent[k]
                self.failed.pop(k, None)
                self.last_error.pop(k, None)
        for h in new:
            self.sent.setdefault(h.key, 0)
            self.failed.setdefault(h.key, 0)
        self.hops = new

    def send(self, data: bytes | memoryview, rtcp: bool = False) -> None:
        """One copy to every hop: RTP to its port, RTCP (``rtcp``) to its port + 1."""
        for h in self.hops:
            err = self.sender.sendto(data, h.host, h.port + 1 if rtcp else h.port)
            if err:
                self.failed[h.key] += 1
                self.last_error[h.key] = errno.errorcode.get(err, str(err))
            else:
                self.sent[h.key] += 1

    def stats(self) -> list[dict[str, object]]:
        return [
            {
                "hop": h.key,
                "sent": self.sent.get(h.key, 0),
                "failed": self.failed.get(h.key, 0),
                **({"last_error": self.last_error[h.key]} if h.key in self.last_error else {}),
            }
            for h in self.hops
        ]
