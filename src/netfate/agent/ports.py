"""Switch-side ports of instances, up or down, fast: a migration's cutover waits for
the source's port to go down and for the target's to come up.

pyroute2's IPRoute costs milliseconds a request here (0.9: ~5 ms to find a link by
name, which dumps every link of the switch's namespace, and ~5 ms more to set it;
measured on the cutover, median 10 ms each side, on a loaded 2-core machine). So it
only finds each port's interface index, once, when the port is built, on a worker
thread of its own (pyroute2 handles belong to the thread that made them). The change
itself is one RTM_NEWLINK request for that index (IFF_UP in `change`, set or clear
in `flags`), encoded by pyroute2's `ifinfmsg` and sent on a NETLINK_ROUTE socket
opened in the namespace. The kernel applies it within the send and queues its ACK
(an NLMSG_ERROR, error 0) before the send returns: about half a millisecond, so it
is called from the event loop directly, with no thread to wake.

pyroute2 (0.9) queues every answer that arrives after its request finished in a
queue nobody reads, for the handle's lifetime; so the lookup handle is replaced
after RENEW_AFTER lookups (the requests on the raw socket read their own answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from netfate.host import links, netns

ACK_TIMEOUT_S = 2.0  # the kernel answers at once; this only bounds a broken socket


class PortSwitch:
    RENEW_AFTER = 256

    def __init__(self, ns: str | None) -> None:
        """`ns`: the switch's namespace (None: this one)."""
        self.ns = ns
        self._ipr: Any = None
        self._lookup_sock: socket.socket | None = None
        self._lookups = 0
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netfate-ports")
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()  # one request and its ACK at a time
        self._seq = 0
        self._index: dict[str, int] = {}

    def _handle(self) -> Any:
        from pyroute2 import IPRoute

        if self._ipr is None:
            self._lookup_sock = netns.socket_in(self.ns, socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
            self._ipr = IPRoute(use_socket=self._lookup_sock)
        return self._ipr

    def _lookup(self, ifname: str) -> int:
        """On the worker: the interface index of `ifname`, remembered."""
        found = self._handle().link_lookup(ifname=ifname)
        if not found:
            raise links.LinkNotFound(self.ns, ifname)
        self._index[ifname] = int(found[0])
        self._lookups += 1
        if self._lookups >= self.RENEW_AFTER:
            with contextlib.suppress(Exception):
                self._ipr.close()  # and what it queued; the next lookup opens another
            if self._lookup_sock is not None:
                self._lookup_sock.close()  # (pyroute2 closes it with the handle; if it failed to)
            self._ipr, self._lookup_sock, self._lookups = None, None, 0
        return self._index[ifname]

    def _ready(self, ifname: str) -> int:
        """On the worker: the port's index, and the socket open."""
        self._socket()
        return self._index.get(ifname) or self._lookup(ifname)

    def warm(self) -> None:
        """Open the lookup handle and the socket now (from a thread: blocks)."""
        self._worker.submit(self._handle).result()
        self._socket()

    def prepare(self, ifname: str) -> None:
        """Find the port and open the socket now (from a thread: blocks), so that
        setting it later costs only the request."""
        self._worker.submit(self._ready, ifname).result()

    def prepared(self, ifname: str) -> bool:
        """Was the port looked up already (prepare), and the socket opened?"""
        return ifname in self._index and self._sock is not None

    def forget(self, ifname: str) -> None:
        """The port is gone (a new one of that name gets another index)."""
        self._index.pop(ifname, None)

    def set(self, ifname: str, up: bool) -> None:
        """From a thread (blocks while a port is looked up)."""
        for attempt in range(2):
            index = self._index.get(ifname)
            if index is None or self._sock is None:
                index = self._worker.submit(self._ready, ifname).result()
            if self._changed(ifname, index, up, attempt):
                return

    async def set_async(self, ifname: str, up: bool) -> None:
        """From the event loop: the request runs inline (sub-millisecond); only a
        port not looked up yet (adopted after a restart) waits for the worker."""
        for attempt in range(2):
            index = self._index.get(ifname)
            if index is None or self._sock is None:
                index = await asyncio.wrap_future(self._worker.submit(self._ready, ifname))
            if self._changed(ifname, index, up, attempt):
                return

    def _changed(self, ifname: str, index: int, up: bool, attempt: int) -> bool:
        """Send the change; False to try once more (the index was stale: the port
        was made again), OSError on any other refusal."""
        err = self._request(index, up)
        if err == 0:
            return True
        self.forget(ifname)
        if err == errno.ENODEV and attempt == 0:
            return False
        raise OSError(err, f"{ifname} {'up' if up else 'down'}: {os.strerror(err)}")

    def _socket(self) -> socket.socket:
        with self._lock:
            if self._sock is None:
                sock = netns.socket_in(self.ns, socket.AF_NETLINK, socket.SOCK_RAW, 0)
                sock.bind((0, 0))
                sock.settimeout(ACK_TIMEOUT_S)
                self._sock = sock
            return self._sock

    def _request(self, index: int, up: bool) -> int:
        """RTM_NEWLINK for `index`; the errno of the kernel's answer (0: done)."""
        from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST, NLMSG_ERROR, nlmsgerr
        from pyroute2.netlink.rtnl import RTM_NEWLINK
        from pyroute2.netlink.rtnl.ifinfmsg import IFF_UP, ifinfmsg

        sock = self._socket()
        with self._lock:
            self._seq = self._seq % 0x7FFFFFFF + 1
            msg = ifinfmsg()
            msg["family"] = socket.AF_UNSPEC
            msg["index"] = index
            msg["flags"] = IFF_UP if up else 0
            msg["change"] = IFF_UP
            msg["header"]["type"] = RTM_NEWLINK
            msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK
            msg["header"]["sequence_number"] = self._seq
            msg.encode()
            sock.send(msg.data)
            while True:  # skips a late answer to a request that timed out
                ack = nlmsgerr(sock.recv(65536))
                ack.decode()
                header = ack["header"]
                if header["type"] == NLMSG_ERROR and header["sequence_number"] == self._seq:
                    return -int(ack["error"])
