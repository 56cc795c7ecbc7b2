"""A process's /metrics on the loopback interface, and nowhere else.

Who may read it: anyone on this machine (loopback-only), which in the testbed and
the demos is the run's Prometheus. The figures say nothing secret (counts, rates,
loads), but a scrape costs the process work, so it never listens beyond the host:
`serve` refuses an address that is not a loopback one.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

__all__ = ["MetricsServer", "check_loopback", "serve"]


def check_loopback(host: str) -> str:
    """`host` if it is a loopback address (127.0.0.0/8, ::1), else ValueError."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"metrics address {host!r}: give a loopback IP address") from None
    if not ip.is_loopback:
        raise ValueError(f"metrics address {host}: only loopback addresses may serve /metrics")
    return host


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
    """Serve `registry` at http://HOST:PORT/metrics from a daemon thread (port 0:
    the kernel picks one; `.port` says which)."""
    server, thread = start_http_server(port, addr=check_loopback(host), registry=registry)
    return MetricsServer(server, thread)
