"""Make-before-break migration, agent to agent.

The orchestrator only records that instance I moves from S to T. The target agent
then drives the move directly with the source agent over TCP, because a cutover
that waited for orchestrator round trips could not stay within milliseconds:

    target                                   source
      | start standby copy (link down, not serving)
      |---- snapshot I ------------------------>|  export state, keep serving
      |<--- state -------------------------------|
      | import snapshot                          |
      |---- freeze I --------------------------->|  stop serving, link down,
      |<--- final state, frozen_at --------------|  export final state
      | import final state; link up, announce (gratuitous ARP), activate
      |---- release I -------------------------->|  stop process, remove namespace
      | report done, downtime = active_at - frozen_at
      |
    on a failure after freeze: "thaw I" -> the source serves again; the standby goes.

Wire: one JSON object per line each way, as the instances' control sockets.
The source answers only for instances the orchestrator marked as migrating away
from it, under the migration id it gave (so a stray peer cannot pull state).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("netfate.agent.migration")

MAX_LINE = 64 << 20


class MigrationError(Exception):
    pass


Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def serve(handler: Handler, host: str, port: int) -> asyncio.Server:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    req = json.loads(line)
                    if not isinstance(req, dict):
                        raise MigrationError("expected a JSON object")
                    resp = await handler(req)
                except (MigrationError, ValueError, KeyError, TypeError) as e:
                    resp = {"ok": False, "error": str(e)}
                except Exception as e:  # never let a peer's request kill the server
                    log.exception("migration request failed")
                    resp = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                writer.write(json.dumps(resp).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(client, host, port, limit=MAX_LINE)


class Peer:
    """The target's connection to the source agent."""

    def __init__(self, endpoint: str) -> None:
        host, _, port = endpoint.rpartition(":")
        if not host or not port.isdigit():
            raise MigrationError(f"bad peer endpoint {endpoint!r}")
        self.host, self.port = host, int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Peer:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, limit=MAX_LINE), 5.0
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()

    async def call(self, req: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        if self.reader is None or self.writer is None:
            raise MigrationError("not connected")
        self.writer.write(json.dumps(req).encode() + b"\n")
        await self.writer.drain()
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        if not line:
            raise MigrationError("source agent closed the connection")
        resp: dict[str, Any] = json.loads(line)
        if not resp.get("ok"):
            raise MigrationError(f"source refused {req.get('op')}: {resp.get('error')}")
        return resp


def now() -> float:
    return time.time()
