"""A peer on the agents' migration channel that speaks raw lines (the tests' impostor)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from netfate.agent import channel


async def exchange(
    endpoint: str, *lines: dict[str, Any], netns: str | None = None
) -> list[dict[str, Any] | None]:
    """Send each line and read its answer; None once the other end closed the connection.
    `netns`: connect from there (a testbed node's namespace: the agents' channel lives
    on the nodes' transit addresses, which the root namespace has no route to)."""
    host, _, port = endpoint.rpartition(":")
    reader, writer = await channel.connect(netns, host, int(port), 1 << 16, 10.0)
    out: list[dict[str, Any] | None] = []
    try:
        for line in lines:
            writer.write(json.dumps(line).encode() + b"\n")
            try:
                await writer.drain()
                got = await asyncio.wait_for(reader.readline(), 10.0)
            except ConnectionError:
                got = b""
            out.append(json.loads(got) if got else None)
    finally:
        writer.close()
    return out
