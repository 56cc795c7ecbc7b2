"""The agents' migration channel with the fault points that stand for a dropped
connection and a cut link, and the target's abortable waits."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from netfate import faults
from netfate.agent import migration
from netfate.agent.migration_auth import Credentials

SECRET = "ab" * 32
CRED = Credentials("i-1", 7, SECRET)
IDS = {"instance": "i-1", "migration": 7}


async def _handler(req: dict[str, Any]) -> dict[str, Any]:
    await migration.fault(f"migrate.source.{req['op']}")
    return {"ok": True, "op": req["op"]}


async def _secret_of(iid: str, mid: int) -> str | None:
    return SECRET if (iid, mid) == ("i-1", 7) else None


def test_answers_drop_and_cut(fault_dir: Path) -> None:
    async def scenario() -> None:
        server = await migration.serve(_handler, _secret_of, "127.0.0.1", 0)
        endpoint = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            async with migration.Peer(endpoint, CRED) as peer:
                assert (await peer.call({"op": "snapshot", **IDS}))["op"] == "snapshot"

            faults.arm(fault_dir, "migrate.source.snapshot", faults.Action.DROP)
            async with migration.Peer(endpoint, CRED) as peer:
                with pytest.raises(migration.MigrationError, match="closed the connection"):
                    await peer.call({"op": "snapshot", **IDS})
            async with migration.Peer(endpoint, CRED) as peer:  # fired once
                assert (await peer.call({"op": "snapshot", **IDS}))["ok"]

            faults.arm(fault_dir, "migrate.source.freeze", faults.Action.BLACKHOLE)
            async with migration.Peer(endpoint, CRED) as peer:
                with pytest.raises(migration.MigrationError, match="no answer to freeze"):
                    await peer.call({"op": "freeze", **IDS}, timeout=0.3)
            # The link stays cut for every connection until the test disarms it: a new
            # connection's handshake goes unanswered too.
            with pytest.raises(migration.MigrationError, match="no answer to hello"):
                async with migration.Peer(endpoint, CRED, timeout=0.3):
                    pass
            faults.disarm(fault_dir, "migrate.source.freeze")
            async with migration.Peer(endpoint, CRED) as peer:
                assert (await peer.call({"op": "thaw", **IDS}))["ok"]
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
