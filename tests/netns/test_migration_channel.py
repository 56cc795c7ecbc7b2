"""The migration channel between two namespaces (agent/channel.py), as the testbed's
agents use it: the source's real server (migration.serve with SourceSide) listens on
an address of namespace A, the target's Peer dials it from namespace B, both from this
process's one event loop, whose thread never switches namespace. The two namespaces
are joined by one veth pair: the snapshot crosses it (its counters grow by at least
the state's size), after the HMAC handshake.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netfate.agent import migration
from netfate.agent.channel import choose
from netfate.agent.migration_auth import Credentials
from netfate.agent.migration_source import SourceSide
from netfate.host import links, netns

SECRET = "7a" * 32
IID, MID = "i-big", 3
STATE = {"blob": "x" * (1 << 20)}  # 1 MiB of state


@pytest.fixture
def pair(run_prefix: str) -> Iterator[tuple[str, str]]:
    a, b = f"{run_prefix}-a", f"{run_prefix}-b"
    netns.ensure(a)
    netns.ensure(b)
    try:
        links.veth_pair("eth0", a, "eth0", b)
        for ns, ip in ((a, "10.77.0.1/24"), (b, "10.77.0.2/24")):
            links.add_address(ns, "eth0", ip)
            links.set_up(ns, "eth0")
            links.set_up(ns, "lo")
        yield a, b
    finally:
        netns.remove(a)
        netns.remove(b)


class FakeInstance:
    async def call(self, req: dict[str, Any]) -> dict[str, Any]:
        assert req == {"op": "export"}
        return {"state": STATE}


class FakeSupervisor:
    def __init__(self) -> None:
        self.instances = {IID: FakeInstance()}
        self.changed = threading.Event()


def test_a_snapshot_goes_from_namespace_to_namespace_over_the_veth(
    pair: tuple[str, str], tmp_path: Path
) -> None:
    a, b = pair
    desired = {IID: {"migration": {"id": MID, "role": "source", "secret": SECRET}}}

    async def refresh() -> None:
        return

    source = SourceSide(
        FakeSupervisor(),  # type: ignore[arg-type]
        migration.Records(tmp_path / "migrations"),
        lambda: desired,
        refresh,
    )
    before = links.link_stats(a, "eth0")["tx_bytes"]

    async def run() -> dict[str, Any]:
        ch = choose("10.77.0.1", 0, None, a)
        server = await migration.serve(source.on_peer, source.secret_of, ch)
        endpoint = ch.endpoint(server.sockets[0].getsockname()[1])
        try:
            async with migration.Peer(endpoint, Credentials(IID, MID, SECRET), netns=b) as peer:
                return await peer.call({"op": "snapshot", "instance": IID, "migration": MID})
        finally:
            server.close()
            await server.wait_closed()

    got = asyncio.run(run())
    assert got["state"] == STATE
    assert links.link_stats(a, "eth0")["tx_bytes"] - before >= len(STATE["blob"])
    # Namespace A's own loopback carried none of it.
    assert links.link_stats(a, "lo")["tx_bytes"] < len(STATE["blob"])


def test_a_wrong_secret_from_the_other_namespace_gets_nothing(
    pair: tuple[str, str], tmp_path: Path
) -> None:
    a, b = pair
    desired = {IID: {"migration": {"id": MID, "role": "source", "secret": SECRET}}}

    async def refresh() -> None:
        return

    source = SourceSide(
        FakeSupervisor(),  # type: ignore[arg-type]
        migration.Records(tmp_path / "migrations"),
        lambda: desired,
        refresh,
    )

    async def run() -> None:
        ch = choose("10.77.0.1", 0, None, a)
        server = await migration.serve(source.on_peer, source.secret_of, ch)
        endpoint = ch.endpoint(server.sockets[0].getsockname()[1])
        try:
            with pytest.raises(migration.MigrationError, match="could not prove"):
                async with migration.Peer(endpoint, Credentials(IID, MID, "00" * 32), netns=b):
                    pass
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(run())
