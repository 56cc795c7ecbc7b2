"""A TCP server inside a namespace that answers each connection with the peer it
saw, and its client: whether a connection gets through (port forwards, firewalls)
and with which source address it arrived (NAT). The netns tests' own processes only."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

from netfate.host import netns


@contextlib.contextmanager
def peer_echo(ns: str, port: int) -> Iterator[None]:
    """Listening on `port` in `ns` until the block ends: each connection gets
    ``from ADDRESS`` (its peer's address as the server saw it)."""
    srv = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)

    def serve() -> None:
        while True:
            try:
                conn, peer = srv.accept()
            except OSError:  # shut down: the block ended
                return
            with conn:
                conn.recv(64)
                conn.sendall(f"from {peer[0]}".encode())

    with srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", port))
        srv.listen(8)
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            yield
        finally:
            srv.shutdown(socket.SHUT_RDWR)
            t.join(10)


def peer_seen(ns: str, dst: str, port: int, src: str | None = None) -> str | None:
    """A connection from `ns` (from address `src` if given) to dst:port: what the
    server answered, or None when it was refused or nothing answered within 5 s."""
    cli = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
    with cli:
        cli.settimeout(5)
        if src is not None:
            cli.bind((src, 0))
        try:
            cli.connect((dst, port))
            cli.sendall(b"hello")
            return cli.recv(64).decode()
        except (ConnectionRefusedError, ConnectionResetError, TimeoutError):
            return None
