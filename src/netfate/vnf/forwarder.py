"""A one-armed router: the simplest function a steering intent can chain.

Packets steered to it arrive with its MAC as destination and another host's IP;
the kernel forwards them back out of the same interface towards their real
destination. That needs forwarding on and ICMP redirects off (a redirect would
tell the sender to bypass the function). The settings are per network namespace,
so this process sets them for its own instance only.

Counters come from /proc/net/dev, which follows the reader's network namespace
(unlike /sys, which follows the mount namespace a forked instance did not change).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from netfate.vnf.runtime import Context, Function

CONF = Path("/proc/sys/net/ipv4")


def _write(path: Path, value: str) -> None:
    with contextlib.suppress(OSError):
        path.write_text(value)


class Forwarder(Function):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.ifname = str(ctx.config.get("interface", "eth0"))
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        _write(CONF / "ip_forward", "1")
        for scope in ("all", "default"):
            _write(CONF / "conf" / scope / "send_redirects", "0")
        # The agent may create the interface after this process starts (they are
        # set up in parallel): set it once it exists.
        self._watch = asyncio.create_task(self._configure_interface())

    async def _configure_interface(self) -> None:
        for _ in range(500):
            iface = CONF / "conf" / self.ifname
            if iface.exists():
                _write(iface / "send_redirects", "0")
                return
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()

    def stats(self) -> dict[str, Any]:
        try:
            lines = Path("/proc/net/dev").read_text().splitlines()[2:]
        except OSError:
            return {}
        for line in lines:
            name, _, rest = line.partition(":")
            if name.strip() == self.ifname:
                f = rest.split()
                return {"rx_packets": int(f[1]), "tx_packets": int(f[9])}
        return {}
