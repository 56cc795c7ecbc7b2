"""The migration channel opens only to a peer holding the migration's secret.

The handshake core alone (migration_auth.py), then the source agent's real server and
SourceSide over TCP on 127.0.0.1, with a stand-in for the supervisor and its instance
that records every call: a connection that names the right migration id but has no
secret, or a wrong one, gets nothing and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from netfate.agent import migration
from netfate.agent.migration_auth import (
    AuthFailed,
    ClientAuth,
    Credentials,
    ServerAuth,
    proof,
)
from netfate.agent.migration_source import SourceSide
from rogue_peer import exchange

SECRET = "5e" * 32
IID, MID = "i-counter", 12


# ---------------------------------------------------------------- the core


def test_both_ends_prove_the_secret() -> None:
    client = ClientAuth(Credentials(IID, MID, SECRET))
    server = ServerAuth()
    challenge = server.challenge(client.hello(), SECRET)
    assert server.on_auth(client.on_challenge(challenge)) == {"ok": True}
    assert server.bound == (IID, MID)
    server.check({"op": "snapshot", "instance": IID, "migration": MID})
    with pytest.raises(AuthFailed, match="another instance"):
        server.check({"op": "snapshot", "instance": "i-other", "migration": MID})
    with pytest.raises(AuthFailed, match="another instance"):
        server.check({"op": "snapshot", "instance": IID, "migration": MID + 1})


def test_a_wrong_secret_fails_on_either_side() -> None:
    # A target with the wrong secret: the source refuses its proof.
    client = ClientAuth(Credentials(IID, MID, "00" * 32))
    server = ServerAuth()
    challenge = server.challenge(client.hello(), SECRET)
    # ... and the target does not believe the source either.
    with pytest.raises(AuthFailed, match="source agent could not prove"):
        client.on_challenge(challenge)
    forged = {"op": "auth", "proof": proof("00" * 32, "target", client.nt, server.ns, IID, MID)}
    with pytest.raises(AuthFailed, match="authentication failed"):
        server.on_auth(forged)
    assert server.bound is None
    with pytest.raises(AuthFailed, match="authenticate first"):
        server.check({"op": "freeze", "instance": IID, "migration": MID})


def test_a_recorded_exchange_proves_nothing_on_another_connection() -> None:
    client = ClientAuth(Credentials(IID, MID, SECRET))
    first = ServerAuth()
    recorded = client.on_challenge(first.challenge(client.hello(), SECRET))
    second = ServerAuth()  # a fresh nonce of the source's
    second.challenge(client.hello(), SECRET)
    with pytest.raises(AuthFailed):
        second.on_auth(recorded)


def test_malformed_handshakes_are_refused() -> None:
    server = ServerAuth()
    for bad in (
        {"op": "snapshot", "instance": IID, "migration": MID},
        {"op": "hello", "instance": 3, "migration": MID, "nonce": "00" * 32},
        {"op": "hello", "instance": IID, "migration": "12", "nonce": "00" * 32},
        {"op": "hello", "instance": IID, "migration": True, "nonce": "00" * 32},
        {"op": "hello", "instance": IID, "migration": MID, "nonce": "short"},
        {"op": "hello", "instance": IID, "migration": MID, "nonce": "zz" * 32},
        {"op": "hello", "instance": IID, "migration": MID},
    ):
        with pytest.raises(AuthFailed):
            ServerAuth().challenge(bad, SECRET)
    with pytest.raises(AuthFailed, match="authenticate first"):
        server.on_auth({"op": "auth", "proof": "00"})
    with pytest.raises(AuthFailed, match="no secret"):
        ClientAuth(Credentials(IID, MID, ""))


# ---------------------------------------------------------------- the source agent


class FakeInstance:
    """An instance that serves, and records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.up = True

    async def call(self, req: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(str(req["op"]))
        if req["op"] == "export":
            return {"state": {"count": 41}}
        if req["op"] == "freeze":
            return {"state": {"count": 42}, "frozen_at": migration.now()}
        return {}

    async def bring_down_async(self) -> None:
        self.calls.append("down")
        self.up = False

    async def bring_up_async(self) -> None:
        self.calls.append("up")
        self.up = True

    def alive(self) -> bool:
        return True


class FakeSupervisor:
    def __init__(self, inst: FakeInstance) -> None:
        self.instances: dict[str, Any] = {IID: inst}
        self.changed = asyncio.Event()
        self.stopped: list[Any] = []

    def stop(self, inst: Any) -> None:
        self.stopped.append(inst)

    def announce_later(self, inst: Any) -> None:
        return


def _desired(secret: str = SECRET) -> dict[str, dict[str, Any]]:
    mig = {"id": MID, "role": "source", "peer": "pe1", "abort": False, "secret": secret}
    return {IID: {"id": IID, "role": "active", "migration": mig}}


Scenario = Callable[[str, FakeInstance, SourceSide, dict[str, Any]], Awaitable[None]]


def _with_source(tmp_path: Path, scenario: Scenario) -> None:
    async def run() -> None:
        inst = FakeInstance()
        held: dict[str, Any] = {"desired": _desired()}

        async def refresh() -> None:
            return

        source = SourceSide(
            FakeSupervisor(inst),  # type: ignore[arg-type]
            migration.Records(tmp_path / "migrations"),
            lambda: held["desired"],
            refresh,
        )
        server = await migration.serve(source.on_peer, source.secret_of, "127.0.0.1", 0)
        endpoint = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            await scenario(endpoint, inst, source, held)
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(run())


def _nothing_changed(tmp_path: Path, inst: FakeInstance) -> None:
    assert inst.calls == [] and inst.up
    assert not list((tmp_path / "migrations").glob("*.json"))


def test_the_right_id_without_the_secret_gets_nothing(tmp_path: Path) -> None:
    ids = {"instance": IID, "migration": MID}

    async def scenario(endpoint: str, inst: FakeInstance, *_: Any) -> None:
        # Straight to the requests, as before the handshake existed.
        for op in ("snapshot", "freeze", "release", "thaw"):
            got = await exchange(endpoint, {"op": op, **ids}, {"op": op, **ids})
            assert got[0] is not None and got[0]["ok"] is False
            assert "authenticate first" in got[0]["error"]
            assert got[1] is None  # and the connection is closed
        # A hello with the right id, then a proof made with a wrong secret.
        nt = "11" * 32
        hello = {"op": "hello", **ids, "nonce": nt}
        challenge, *rest = await exchange(
            endpoint,
            hello,
            {"op": "auth", "proof": proof("00" * 32, "target", nt, "22" * 32, IID, MID)},
            {"op": "freeze", **ids},
        )
        assert challenge is not None and challenge["ok"] and "state" not in challenge
        assert rest[0] is not None and rest[0] == {"ok": False, "error": "authentication failed"}
        assert rest[1] is None
        # A hello, then the request without any proof.
        _, refused, closed = await exchange(
            endpoint, hello, {"op": "snapshot", **ids}, {"op": "snapshot", **ids}
        )
        assert refused is not None and not refused["ok"] and closed is None
        # The whole Peer with a wrong secret: it does not believe the source either.
        with pytest.raises(migration.MigrationError, match="could not prove"):
            async with migration.Peer(endpoint, Credentials(IID, MID, "00" * 32)):
                pass
        # An id the source has no migration of: refused before any challenge.
        with pytest.raises(migration.Refused, match="no migration 13"):
            async with migration.Peer(endpoint, Credentials(IID, MID + 1, SECRET)):
                pass
        _nothing_changed(tmp_path, inst)

    _with_source(tmp_path, scenario)


def test_the_secret_opens_the_migration_and_only_that_one(tmp_path: Path) -> None:
    async def scenario(
        endpoint: str, inst: FakeInstance, source: SourceSide, held: dict[str, Any]
    ) -> None:
        async with migration.Peer(endpoint, Credentials(IID, MID, SECRET)) as peer:
            with pytest.raises(migration.Refused, match="another instance"):
                await peer.call({"op": "snapshot", "instance": "i-other", "migration": MID})
            snap = await peer.call({"op": "snapshot", "instance": IID, "migration": MID})
            assert snap["state"] == {"count": 41}
            final = await peer.call({"op": "freeze", "instance": IID, "migration": MID})
            assert final["state"] == {"count": 42}
        assert inst.calls == ["export", "freeze", "down"]
        rec = source.records.get(IID)
        assert rec is not None and rec.phase == "frozen" and rec.secret == SECRET
        assert SECRET not in repr(rec) and SECRET not in json.dumps(rec.report())
        # The orchestrator has recorded the move: the desired state no longer names the
        # migration, and the release is still authenticated (with the record's secret).
        held["desired"] = {}
        with pytest.raises(migration.MigrationError):
            async with migration.Peer(endpoint, Credentials(IID, MID, "00" * 32)):
                pass
        async with migration.Peer(endpoint, Credentials(IID, MID, SECRET)) as peer:
            await peer.call({"op": "release", "instance": IID, "migration": MID})
        assert rec.phase == "released"

    _with_source(tmp_path, scenario)
