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


def relay(tls: ssl.SSLSocket, plain: socket.socket) -> None:
    """Copy bytes both ways until either side ends; closes both. The only thread that
    touches `tls`. `plain` stays blocking: its peer (os-ken) always reads."""
    tls.setblocking(False)
    out = b""  # read from plain, not yet taken by TLS
    want_write_for_read = False
    try:
        while True:
            rl: list[socket.socket] = [tls] if not want_write_for_read else []
            if not out:
                rl.append(plain)
            wl: list[socket.socket] = [tls] if out or want_write_for_read else []
            if not tls.pending():
                readable, _, _ = select.select(rl, wl, [], 30.0)
            else:
                readable = [tls]
            if tls in readable or want_write_for_read or tls.pending():
                want_write_for_read = False
                try:
                    data = tls.recv(CHUNK)
                except ssl.SSLWantReadError:
                    data = None
                except ssl.SSLWantWriteError:
                    want_write_for_read, data = True, None
                if data is not None:
                    if not data:
                        return
                    plain.sendall(data)
            if plain in readable:
                got = plain.recv(CHUNK)
                if not got:
                    return
                out = got
            if out:
                try:
                    sent = tls.send(out)
                    out = out[sent:]
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pass
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
