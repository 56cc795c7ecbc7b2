"""The HRH's USB/IP server inside mutual TLS 1.3.

USB/IP has no security of its own, so the tunnel to the ISP is TLS with client
certificates: the HRH presents its certificate, and a client without one from
the same CA is refused during the handshake -- before one USB/IP byte is parsed.
The client certificate's common name is the identity the allow-list matches
(``AllowRule.identities``), besides the peer address.

Why ``start_tls`` on an accepted plain connection rather than
``create_server(ssl=...)``: asyncio reports a failed server-side handshake only
through the loop's exception handler, and only in debug mode.  Doing the
handshake ourselves gives us the peer and the reason, which we log and keep
(``refused``) so an operator sees who knocked with the wrong certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Sequence
from typing import Any

from netfate.vnf.runtime import Context
from netfate.vnf.tls import TlsFiles
from netfate.vnf.usbip_host.allowlist import AllowList

from .devices import VirtualDevice
from .function import UsbipHost
from .server import UsbipServer, _ServerProtocol

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0
"""Seconds a peer has to finish the TLS handshake (a silent one would hold a socket)."""
MAX_REFUSED_KEPT = 64


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """TLS 1.3 only, our certificate, and a client certificate from ``files.ca`` required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(files.cert, files.key)
    ctx.load_verify_locations(cafile=str(files.ca))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def common_name(peercert: Any) -> str | None:
    """The subject CN of a verified peer certificate (``getpeercert()`` form)."""
    if not isinstance(peercert, dict):
        return None
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class TlsUsbipServer(UsbipServer):
    """:class:`UsbipServer` whose connections are mutual TLS 1.3.

    ``refused`` keeps the last peers whose handshake failed, with the reason.
    """

    def __init__(
        self,
        devices: Sequence[VirtualDevice],
        *,
        context: ssl.SSLContext,
        allow: AllowList | None = None,
        busnum: int = 1,
    ) -> None:
        super().__init__(devices, allow=allow, busnum=busnum)
        self.context = context
        self.refused: list[tuple[str, str]] = []
        self._handshakes: set[asyncio.Task[None]] = set()

    def _protocol(self) -> asyncio.Protocol:
        return _Acceptor(self)

    async def close(self) -> None:
        for t in list(self._handshakes):
            t.cancel()
        for t in list(self._handshakes):
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await super().close()

    def _accepted(self, transport: asyncio.Transport) -> None:
        task = asyncio.create_task(self._handshake(transport))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, transport: asyncio.Transport) -> None:
        peer = transport.get_extra_info("peername")
        who = f"{peer[0]}:{peer[1]}" if peer else "?"
        app = _TlsServerProtocol(self)
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(
                transport,
                app,
                self.context,
                server_side=True,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
            )
        except asyncio.CancelledError:
            transport.abort()
            raise
        except (OSError, TimeoutError, ConnectionError) as err:  # ssl.SSLError is an OSError
            reason = getattr(err, "reason", None) or type(err).__name__
            log.warning("usbip TLS peer %s refused: %s (%s)", who, reason, err)
            self.refused.append((who, str(reason)))
            del self.refused[:-MAX_REFUSED_KEPT]
            transport.abort()
            return
        if tls is None:  # the peer went away during the handshake
            transport.abort()
            return
        app.identity = common_name(tls.get_extra_info("peercert"))
        log.info("usbip TLS peer %s is %r", who, app.identity)
        app.connection_made(tls)


class _Acceptor(asyncio.Protocol):
    """Holds a fresh TCP connection just long enough to start its TLS handshake."""

    def __init__(self, server: TlsUsbipServer) -> None:
        self.server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tr = transport
        if not isinstance(tr, asyncio.Transport):
            tr.close()
            return
        # Nothing may be read before start_tls installs the TLS protocol, or the
        # ClientHello would land here and be lost.
        tr.pause_reading()
        self.server._accepted(tr)


class _TlsServerProtocol(_ServerProtocol):
    """The plain server protocol; its ``identity`` is set before ``connection_made``."""

    def __init__(self, server: UsbipServer) -> None:
        super().__init__(server)
        self._early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        early, self._early = self._early, []
        for chunk in early:
            self.data_received(chunk)

    def data_received(self, data: bytes) -> None:
        # start_tls hands over application data that arrived with the client's
        # Finished (e.g. the import request) before it returns, i.e. before we
        # know the peer's identity and call connection_made: keep it until then.
        if self.transport is None:
            self._early.append(data)
            return
        super().data_received(data)


class TlsUsbipHost(UsbipHost):
    """:class:`UsbipHost` behind mutual TLS; config as UsbipHost plus
    ``"tls": {"ca": PATH, "cert": PATH, "key": PATH}`` (required: no silent fallback
    to plain USB/IP)."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        tls = ctx.config.get("tls")
        if not isinstance(tls, dict):
            raise ValueError("TlsUsbipHost needs a 'tls' config with ca, cert and key")
        self.server = TlsUsbipServer(
            self.devices, context=server_context(TlsFiles.from_config(tls)), allow=self.allow
        )

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        srv = self.server
        if isinstance(srv, TlsUsbipServer):
            out["tls_refused"] = [list(r) for r in srv.refused]
        return out
