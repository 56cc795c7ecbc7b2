"""OpenFlow over TLS: the controller's end (`netfate controller --ofp-cert/--ofp-key/--ofp-ca`).

Mutual authentication: the controller shows its certificate (serverAuth) and
accepts a switch only if the switch shows one (clientAuth) signed by the CA it
was given, the run's own in the testbed (`testbed/openflow_pki.py`). A switch
that speaks plain TCP never gets past the handshake, so with TLS on there is no
plain OpenFlow at all.

os-ken's datapath code reads in one thread and writes in another. An OpenSSL
connection must not be used by two threads at once, so the TLS socket is owned
by one relay thread per switch, which copies bytes between it and one end of a
local socket pair; os-ken gets the other end and never sees TLS:

    switch ==TLS== relay thread --socketpair-- os-ken Datapath (recv / send threads)
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("netfate.sdn.tls")

HANDSHAKE_TIMEOUT_S = 10.0
"""A peer that has not finished its handshake by then is dropped (it holds a thread)."""
CHUNK = 65536


def server_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """TLS 1.2 or later; the peer must show a certificate from `ca` fit for a client."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cafile=str(ca))
    return ctx


def peer_name(tls: ssl.SSLSocket) -> str:
    """The common name of the peer's certificate (for logs)."""
    cert = tls.getpeercert() or {}
    for rdn in cert.get("subject", ()):
        for item in rdn:
            if item[0] == "commonName":
                return str(item[1])
    return "?"


def accept(conn: socket.socket, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    """The server side of the handshake on an accepted connection; raises OSError
    (ssl.SSLError among them) when the peer is refused or fails to finish in time."""
    conn.settimeout(HANDSHAKE_TIMEOUT_S)
    tls = ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
    try:
        tls.do_handshake()
    except BaseException:
        tls.close()
        raise
    return tls


class _LocalEnd:
    """The socket-pair end handed to os-ken: a socket in all but TCP_NODELAY, which
    os-ken sets on every datapath socket and a Unix socket has not."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def setsockopt(self, level: int, option: int, value: int) -> None:
        if level != socket.IPPROTO_TCP:
            self._sock.setsockopt(level, option, value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _ready(rl: list[socket.socket], wl: list[socket.socket], timeout: float) -> set[socket.socket]:
    """The sockets of `rl` readable or of `wl` writable (or hung up) within `timeout`.
    poll(), not select(): select() refuses a descriptor numbered 1024 or more, which a
    controller with many switches (or a process with many files) reaches."""
    p = select.poll()
    socks = {s.fileno(): s for s in (*rl, *wl)}
    for fd, s in socks.items():
        p.register(fd, (select.POLLIN if s in rl else 0) | (select.POLLOUT if s in wl else 0))
    return {socks[fd] for fd, _ in p.poll(timeout * 1000)}


def relay(tls: ssl.SSLSocket, plain: socket.socket) -> None:
    """Copy bytes both ways until either side ends; closes both. The only thread that
    touches `tls`. Neither direction ever blocks the other: os-ken's receive thread
    may wait on its send queue, whose thread may wait on this relay, so a relay stuck
    writing to a full socket pair would close the circle. Each direction holds at
    most one chunk and reads no more until it is passed on (back-pressure)."""
    tls.setblocking(False)
    plain.setblocking(False)
    to_plain = b""  # from the switch, for os-ken
    to_tls = b""  # from os-ken, for the switch
    tls_wants_write = False  # a TLS read that must first write (a handshake message)
    try:
        while True:
            if tls.pending() and not to_plain:
                ready: set[socket.socket] = {tls}
            else:
                rl = ([] if to_plain or tls_wants_write else [tls]) + ([] if to_tls else [plain])
                wl = ([plain] if to_plain else []) + ([tls] if to_tls or tls_wants_write else [])
                ready = _ready(rl, wl, 30.0)
            if tls in ready and not to_plain:
                tls_wants_write = False
                try:
                    data = tls.recv(CHUNK)
                    if not data:
                        return
                    to_plain = data
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLWantWriteError:
                    tls_wants_write = True
            if plain in ready and not to_tls:
                try:
                    got = plain.recv(CHUNK)
                    if not got:
                        return
                    to_tls = got
                except BlockingIOError:
                    pass
            if to_plain:
                with contextlib.suppress(BlockingIOError):
                    to_plain = to_plain[plain.send(to_plain) :]
            if to_tls:
                with contextlib.suppress(ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    to_tls = to_tls[tls.send(to_tls) :]
    except OSError as e:
        log.info("TLS session ended: %s", e)
    finally:
        for s in (tls, plain):
            with contextlib.suppress(OSError):
                s.close()


def open_session(conn: socket.socket, addr: Any, ctx: ssl.SSLContext) -> Any | None:
    """Handshake with a switch; on success a socket-like object for os-ken's Datapath
    (a relay thread carries its bytes), on refusal None (logged, connection closed)."""
    try:
        tls = accept(conn, ctx)
    except (OSError, ValueError) as e:
        log.warning("%s: refused: TLS handshake failed: %s", addr, e)
        with contextlib.suppress(OSError):
            conn.close()
        return None
    log.info("%s: TLS with switch certificate %r", addr, peer_name(tls))
    mine, theirs = socket.socketpair()
    threading.Thread(target=relay, args=(tls, mine), name=f"tls-{addr}", daemon=True).start()
    return _LocalEnd(theirs)
