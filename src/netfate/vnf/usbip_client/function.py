"""The ISP side as a netfate Function: import an HRH's serial sensor, keep it as a pty.

``python -m netfate.vnf netfate.vnf.usbip_client.function:SerialImporter --config JSON``::

    {"server": "10.0.0.1", "port": 3240, "busid": "1-1", "link": "/run/hrh/ttyHRH"}

Applications ``cat`` the link (or the pty named in ``stats``).  When the
connection drops the function re-imports the device and bridges it again
(the pty stays the same, so a reader keeps its file open).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from netfate.vnf.runtime import Context, Function

from .client import RemoteDevice, UsbipError
from .serial import SerialPty

log = logging.getLogger(__name__)


class SerialImporter(Function):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        cfg = ctx.config
        self.server = str(cfg["server"])
        self.port = int(cfg.get("port", 3240))
        self.busid = str(cfg.get("busid", "1-1"))
        link = cfg.get("link")
        self.link = Path(str(link)) if link else None
        self.retry = float(cfg.get("retry_seconds", 1.0))
        self.dev: RemoteDevice | None = None
        self.pty: SerialPty | None = None
        self.reconnects = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.dev = await RemoteDevice.attach(self.server, self.busid, self.port)
        self.pty = SerialPty(self.dev, link=self.link)
        await self.pty.start()
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        """Re-import after a drop and bridge the same pty again."""
        while self.pty is not None and self.dev is not None:
            err = await self.pty.wait_failed()
            if self.pty.closed or err is None:
                return
            log.warning("usbip %s %s: %s; re-importing", self.server, self.busid, err)
            while True:
                try:
                    await self.dev.reattach(attempts=1, interval=self.retry)
                    break
                except (UsbipError, OSError):
                    await asyncio.sleep(self.retry)
            self.reconnects += 1
            await self.pty.resume(self.dev)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.pty is not None:
            await self.pty.close()
        if self.dev is not None:
            with contextlib.suppress(UsbipError, OSError):
                await self.dev.close()

    def stats(self) -> dict[str, Any]:
        return {
            "server": f"{self.server}:{self.port}",
            "busid": self.busid,
            "pty": self.pty.slave_path if self.pty else None,
            "reconnects": self.reconnects,
        }
