"""A stateful demo function: counts UDP requests per client.

Each datagram to port 7777 (config `port`) is answered with a JSON line
`{"instance": ID, "count": N_for_this_client, "total": T, "echo": first 64 bytes}`.
The counts are the state: after a migration the counting goes on where it was,
which is how the demo and the tests prove that state moved.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from netfate.vnf.runtime import Context, Function


class Counter(Function):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.port = int(ctx.config.get("port", 7777))
        self.counts: dict[str, int] = {}
        self.total = 0
        self.dropped = 0
        self.transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        fn = self

        class Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
                fn.on_datagram(data, addr)

        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", self.port))
        transport, _ = await loop.create_datagram_endpoint(Proto, sock=sock)
        self.transport = transport

    def on_datagram(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if not self.active or self.transport is None:
            self.dropped += 1
            return
        client = str(addr[0])
        n = self.counts.get(client, 0) + 1
        self.counts[client] = n
        self.total += 1
        reply = {
            "instance": self.ctx.instance,
            "count": n,
            "total": self.total,
            "echo": data[:64].decode("latin-1"),
        }
        self.transport.sendto(json.dumps(reply).encode(), addr)

    async def stop(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def export_state(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "total": self.total}

    def import_state(self, state: dict[str, Any]) -> None:
        counts = state.get("counts", {})
        if not isinstance(counts, dict):
            raise ValueError("counts must be an object")
        self.counts = {str(k): int(v) for k, v in counts.items()}
        self.total = int(state.get("total", 0))

    def stats(self) -> dict[str, Any]:
        return {"total": self.total, "clients": len(self.counts), "dropped": self.dropped}
