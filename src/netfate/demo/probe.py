"""Talk to a `counter` instance from inside a host's namespace.

The socket is opened inside the host's namespace (setns in a helper thread), so
the root namespace never gets a route into the emulated network.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from typing import Any

from netfate.host import netns


@dataclass
class Reply:
    instance: str
    count: int
    total: int
    at: float


class CounterProbe:
    def __init__(self, host_ns: str, ip: str, port: int = 7777, timeout: float = 0.5) -> None:
        self.addr = (ip, port)
        self.sock = netns.socket_in(host_ns, socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(timeout)

    def ask(self, tries: int = 10) -> Reply:
        """One request, one reply (retried: the first packets wait for ARP)."""
        last: Exception | None = None
        for i in range(tries):
            try:
                self.sock.sendto(f"probe {i}".encode(), self.addr)
                data: dict[str, Any] = json.loads(self.sock.recv(4096))
                return Reply(
                    str(data["instance"]), int(data["count"]), int(data["total"]), time.time()
                )
            except (TimeoutError, OSError, ValueError, KeyError) as e:
                last = e
        raise ProbeError(
            f"no answer from {self.addr[0]}:{self.addr[1]} after {tries} tries ({last})"
        )

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> CounterProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ProbeError(Exception):
    pass
