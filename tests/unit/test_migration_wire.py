"""The agents' migration channel with the fault points that stand for a dropped
connection and a cut link, and the target's abortable waits."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from netfate import faults
from netfate.agent import migration


async def _handler(req: dict[str, Any]) -> dict[str, Any]:
    await migration.fault(f"migrate.source.{req['op']}")
    return {"ok": True, "op": req["op"]}


def test_answers_drop_and_cut(fault_dir: Path) -> None:
    async def scenario() -> None:
        server = await migration.serve(_handler, "127.0.0.1", 0)
        endpoint = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            async with migration.Peer(endpoint) as peer:
                assert (await peer.call({"op": "snapshot"}))["op"] == "snapshot"

            faults.arm(fault_dir, "migrate.source.snapshot", faults.Action.DROP)
            async with migration.Peer(endpoint) as peer:
                with pytest.raises(migration.MigrationError, match="closed the connection"):
                    await peer.call({"op": "snapshot"})
            async with migration.Peer(endpoint) as peer:  # fired once
                assert (await peer.call({"op": "snapshot"}))["ok"]

            faults.arm(fault_dir, "migrate.source.freeze", faults.Action.BLACKHOLE)
            async with migration.Peer(endpoint) as peer:
                with pytest.raises(migration.MigrationError, match="no answer to freeze"):
                    await peer.call({"op": "freeze"}, timeout=0.3)
            # The link stays cut for every connection until the test disarms it.
            async with migration.Peer(endpoint) as peer:
                with pytest.raises(migration.MigrationError, match="no answer to thaw"):
                    await peer.call({"op": "thaw"}, timeout=0.3)
            faults.disarm(fault_dir, "migrate.source.freeze")
            async with migration.Peer(endpoint) as peer:
                assert (await peer.call({"op": "thaw"}))["ok"]
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())


def test_unless_gives_up_when_called_off() -> None:
    async def scenario() -> None:
        abort = asyncio.Event()
        started = asyncio.Event()
        cancelled = asyncio.Event()

        async def slow() -> int:
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return 1

        async def quick() -> int:
            return 2

        assert await migration.unless(abort, quick()) == 2
        waiting = asyncio.create_task(migration.unless(abort, slow()))
        await started.wait()
        abort.set()
        with pytest.raises(migration.Aborted):
            await asyncio.wait_for(waiting, 5.0)
        await asyncio.wait_for(cancelled.wait(), 5.0)
        with pytest.raises(migration.Aborted):  # already called off: not even started
            await migration.unless(abort, quick())

    asyncio.run(scenario())
