"""The ISP side of a mutual-TLS USB/IP tunnel.

``TlsRemoteDevice.open_tls`` imports a device over TLS 1.3 with our client
certificate and checks the HRH's certificate against the CA and its name.
After that it is a :class:`RemoteDevice` like any other (pipelining, the
storage and pty layers on top); ``reattach`` opens a new TLS connection.

Errors the application sees are all :class:`UsbipError`:
:class:`TlsRefusedError` when either side rejects the other's certificate
(TLS 1.3 checks the client certificate after the client considers the
handshake done, so the refusal arrives as an alert in place of the import
reply), and the usual "connection lost" when the tunnel closes mid-transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from typing import Any

from netfate.proto.usbip import Status, UsbDevice
from netfate.vnf.runtime import Context
from netfate.vnf.tls import TlsFiles

from .client import (
    OP_TIMEOUT,
    ImportRefusedError,
    RemoteDevice,
    UsbipError,
    _ClientProtocol,
    _request_import,
)
from .function import SerialImporter
from .serial import SerialPty

log = logging.getLogger(__name__)


class TlsRefusedError(UsbipError):
    """The TLS handshake failed: a certificate was refused by us or by the peer."""


def client_context(files: TlsFiles) -> ssl.SSLContext:
    """TLS 1.3 only, our client certificate, the HRH verified against ``files.ca``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the peer and its hostname
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(files.cert, files.key)
    ctx.load_verify_locations(cafile=str(files.ca))
    return ctx


class _TlsClientProtocol(_ClientProtocol):
    got_data = False

    def data_received(self, data: bytes) -> None:
        self.got_data = True
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        # TLS 1.3 checks our certificate after our side of the handshake is
        # done: a refusal is an alert, or (when the HRH drops the connection
        # right after its alert) just a close before any reply.  Either way,
        # name it a refusal, not a generic lost connection; the HRH logs why.
        if self.error is None and not self.op_reply.done():
            if isinstance(exc, ssl.SSLError):
                self.error = TlsRefusedError(f"TLS refused by the HRH: {exc.reason or exc}")
            elif not self.got_data:
                self.error = TlsRefusedError(
                    "the HRH closed the TLS connection before any reply "
                    "(our client certificate refused?)"
                )
        super().connection_lost(exc)


async def _open_tls(
    host: str,
    port: int,
    context: ssl.SSLContext,
    server_hostname: str,
    sock: socket.socket | None,
    timeout: float,
) -> _TlsClientProtocol:
    loop = asyncio.get_running_loop()
    try:
        # a given socket (e.g. made inside a namespace) is already connected
        where: dict[str, Any] = {"sock": sock} if sock is not None else {"host": host, "port": port}
        _t, proto = await asyncio.wait_for(
            loop.create_connection(
                _TlsClientProtocol,
                **where,
                ssl=context,
                server_hostname=server_hostname,
                ssl_handshake_timeout=timeout,
            ),
            timeout,
        )
    except ssl.SSLError as err:  # e.g. the HRH's certificate is not from our CA
        raise TlsRefusedError(f"TLS handshake with {host}:{port} failed: {err}") from err
    except TimeoutError:
        raise UsbipError(f"no TLS handshake with {host}:{port} in {timeout} s") from None
    return proto


async def _import_tls(
    host: str,
    busid: str,
    port: int,
    context: ssl.SSLContext,
    server_hostname: str,
    sock: socket.socket | None,
    timeout: float,
) -> _TlsClientProtocol:
    proto = await _open_tls(host, port, context, server_hostname, sock, timeout)
    return await _request_import(proto, host, busid, timeout)


class TlsRemoteDevice(RemoteDevice):
    """A device imported through a mutual-TLS tunnel."""

    def __init__(
        self,
        proto: _ClientProtocol,
        device: UsbDevice,
        host: str,
        port: int,
        busid: str,
        *,
        context: ssl.SSLContext,
        server_hostname: str,
    ) -> None:
        super().__init__(proto, device, host, port, busid)
        self.context = context
        self.server_hostname = server_hostname

    @classmethod
    async def open_tls(
        cls,
        host: str,
        busid: str,
        port: int = 3240,
        *,
        context: ssl.SSLContext,
        server_hostname: str,
        sock: socket.socket | None = None,
        timeout: float = OP_TIMEOUT,
    ) -> TlsRemoteDevice:
        """Import ``busid`` from the HRH at ``host:port`` whose certificate names
        ``server_hostname``.  Raises :class:`TlsRefusedError`, :class:`ImportRefusedError`,
        :class:`UsbipError`, or OSError if unreachable."""
        proto = await _import_tls(host, busid, port, context, server_hostname, sock, timeout)
        return cls(
            proto, proto.imported, host, port, busid,
            context=context, server_hostname=server_hostname,
        )  # fmt: skip

    async def reattach(self, *, attempts: int = 10, interval: float = 1.0) -> None:
        """A new TLS connection and import of the same device (after a drop).

        DEV_BUSY and unreachable are retried (the HRH may not have seen the old
        connection die yet); a certificate refusal is not: it will not heal.
        """
        with contextlib.suppress(OSError):
            await self.close()
        last: BaseException | None = None
        for _ in range(max(1, attempts)):
            try:
                self._proto = await _import_tls(
                    self.host, self.busid, self.port, self.context, self.server_hostname,
                    None, OP_TIMEOUT,
                )  # fmt: skip
                self.device = self._proto.imported
                return
            except TlsRefusedError:
                raise
            except ImportRefusedError as err:
                if err.status != Status.DEV_BUSY:
                    raise
                last = err
            except (OSError, UsbipError) as err:
                last = err
            await asyncio.sleep(interval)
        raise UsbipError(f"could not re-import {self.busid} from {self.host}: {last}")


class TlsSerialImporter(SerialImporter):
    """:class:`SerialImporter` through a mutual-TLS tunnel.

    Config as SerialImporter plus ``"tls": {"ca", "cert", "key"}`` and
    ``"server_name"`` (the name in the HRH's certificate).  The re-import after
    a drop is SerialImporter's, through :meth:`TlsRemoteDevice.reattach`.
    """

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        tls = ctx.config.get("tls")
        if not isinstance(tls, dict):
            raise ValueError("TlsSerialImporter needs a 'tls' config with ca, cert and key")
        self.context = client_context(TlsFiles.from_config(tls))
        self.server_name = str(ctx.config.get("server_name", self.server))

    async def start(self) -> None:
        # Returns at once: the agent wires the instance's interface while the
        # function starts, and under SDN control the path to the HRH opens only
        # once the orchestrator adds its intents.  The pty appears (and the link
        # with it) once the first import succeeds.
        self._task = asyncio.create_task(self._connect_then_watch())

    async def _connect_then_watch(self) -> None:
        while True:
            try:
                self.dev = await TlsRemoteDevice.open_tls(
                    self.server, self.busid, self.port,
                    context=self.context, server_hostname=self.server_name,
                )  # fmt: skip
                break
            except TlsRefusedError as err:
                log.error("usbip %s %s: %s; not retrying", self.server, self.busid, err)
                return
            except (OSError, UsbipError) as err:
                log.info("usbip %s %s not reachable yet: %s", self.server, self.busid, err)
                await asyncio.sleep(self.retry)
        self.pty = SerialPty(self.dev, link=self.link)
        await self.pty.start()
        await self._watch()
