"""A peer on the agents' migration channel that speaks raw lines (the tests' impostor)."""

from __future__ import annotations

import asyncio
import json
from typing import Any


async def exchange(endpoint: str, *lines: dict[str, Any]) -> list[dict[str, Any] | None]:
    """Send each line and read its answer; None once the other end closed the connection."""
    host, _, port = endpoint.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
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
