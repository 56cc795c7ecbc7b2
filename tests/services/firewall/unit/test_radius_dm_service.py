"""The embedded RADIUS server as RFC 5176 Dynamic Authorization Client: a release
ends the user's sessions at their NASes, named by Acct-Session-Id, and nothing else.

Two fake NASes on 127.0.0.2 (cpe1) and 127.0.0.3 (cpe2), built from the sans-I/O
cores: accounting out of an ephemeral port, Disconnect-Requests in on DM_PORT.
The server is the orchestrator's RadiusService on a SQLite database, listening on
127.0.0.1 (its loop in this test's asyncio.run). A real portal against the real
server is the last test.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from netfate.proto.radius import (
    AcctStatus,
    Attr,
    ClientCore,
    Code,
    DasCore,
    DisconnectRequested,
    ErrorCause,
    Packet,
    TerminateCause,
)
from netfate.proto.radius import packet as rp
from netfate.proto.radius.packet import Value
from netfate.services.firewall import logins, policy, radius
from netfate.services.firewall.radius import RadiusService
from netfate.services.firewall.tables import (
    FirewallNasSessionRow,
    FirewallSettingRow,
    FirewallUserRow,
)
from netfate.store.db import Database
from netfate.vnf.portal.function import Portal
from netfate.vnf.portal.http import Request
from netfate.vnf.runtime import Context
from radius_fixtures import FIREWALL_MIGRATIONS, events, radius_db, user_row
from waiting import until_async

SECRET = "dm-service-secret"


def _free_udp_port() -> int:
    """A port free on both fake NAS addresses (they listen on the same one)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.2", 0))
            port = int(s.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.3", port))
            except OSError:
                continue
        return port


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setenv("NETFATE_RADIUS_LISTEN", "")
    alice = user_row("alice", "pw", session_timeout=900)  # no firewall: a table write
    d = radius_db(tmp_path / "dm.db", "127.0.0.0/8", SECRET, [alice])
    yield d
    d.dispose()


class Nas:
    def __init__(self, name: str, ip: str, dm_port: int, server: tuple[str, int]) -> None:
        self.name, self.ip, self.server = name, ip, server
        self.acct = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.acct.bind((ip, 0))
        self.acct.setblocking(False)
        self.dm = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.dm.bind((ip, dm_port))
        self.dm.setblocking(False)
        self.client = ClientCore(SECRET.encode())
        self.das = DasCore({server[0]: SECRET.encode()})

    async def account(self, status: AcctStatus, session: str, cause: int | None = None) -> None:
        attrs: list[tuple[int, Value]] = [
            (Attr.ACCT_STATUS_TYPE, int(status)),
            (Attr.ACCT_SESSION_ID, session),
            (Attr.USER_NAME, "alice"),
            (Attr.NAS_IDENTIFIER, self.name),
            (Attr.FRAMED_IP_ADDRESS, "192.168.1.2"),
        ]
        if cause is not None:
            attrs.append((Attr.ACCT_TERMINATE_CAUSE, cause))
        _, wire = self.client.accounting_request(attrs, 0.0)
        self.acct.sendto(wire, self.server)
        loop = asyncio.get_running_loop()
        data, _ = await asyncio.wait_for(loop.sock_recvfrom(self.acct, 4096), 10)
        (ev,) = self.client.receive(data, 0.0)
        assert ev.response.code == Code.ACCOUNTING_RESPONSE

    async def disconnect_request(self) -> DisconnectRequested:
        """The next authentic Disconnect-Request (unanswered yet)."""
        loop = asyncio.get_running_loop()
        while True:
            data, peer = await asyncio.wait_for(loop.sock_recvfrom(self.dm, 4096), 10)
            for ev in self.das.receive(data, peer, 0.0):
                if isinstance(ev, DisconnectRequested):
                    return ev

    def answer(self, wire: bytes, ev: DisconnectRequested) -> None:
        self.dm.sendto(wire, ev.peer)

    def close(self) -> None:
        self.acct.close()
        self.dm.close()


async def _server(db: Database, dm_port: int) -> tuple[RadiusService, int]:
    with db.session() as s:
        s.merge(FirewallSettingRow(key="dm_port", value=dm_port))  # again after a restart
    svc = RadiusService(db)
    svc.dm_timeout = 0.1  # retransmissions come quickly in this test
    svc.dm_retries = 50
    await svc.start()
    _, port = await svc.listen("127.0.0.1", 0, None)
    return svc, port


@contextlib.asynccontextmanager
async def rig(
    db: Database, *nases: tuple[str, str]
) -> AsyncIterator[tuple[RadiusService, list[Nas]]]:
    """The server, and fake NASes (name, address) listening on one free DM port."""
    dm_port = _free_udp_port()
    svc, port = await _server(db, dm_port)
    made: list[Nas] = []
    try:
        for name, ip in nases:
            made.append(Nas(name, ip, dm_port, ("127.0.0.1", port)))
        yield svc, made
    finally:
        for nas in made:
            nas.close()
        await svc.stop()


async def started_then_released(
    db: Database, nas: Nas, session: str, reason: str = "logged out"
) -> None:
    """alice logs in at `nas`, which accounts `session`'s Start; then she is released."""
    await asyncio.to_thread(_login, db, nas.name)
    await nas.account(AcctStatus.START, session)
    await asyncio.to_thread(_release, db, reason)


def _login(db: Database, node: str) -> None:
    with db.session() as s:
        u = s.get(FirewallUserRow, "alice")
        assert u is not None
        assert policy.on_login(s, u, node, None, "192.168.1.2").accept


def _release(db: Database, reason: str = "logged out") -> None:
    with db.session() as s:
        u = s.get(FirewallUserRow, "alice")
        assert u is not None
        policy.release(s, u, reason)


def _status(db: Database) -> tuple[str, str | None]:
    with db.session() as s:
        u = s.get(FirewallUserRow, "alice")
        assert u is not None
        return u.status, u.access_node


def test_release_sends_disconnect_request_and_records_the_ack(db: Database) -> None:
    async def go() -> None:
        async with rig(db, ("cpe1", "127.0.0.2")) as (svc, [nas]):
            await started_then_released(db, nas, "cpe1-s1")
            ev = await nas.disconnect_request()
            assert (ev.session_id, ev.user, ev.framed_ip, ev.nas_identifier) == (
                "cpe1-s1",
                "alice",
                "192.168.1.2",
                "cpe1",
            )
            assert ev.peer == nas.server  # from the listener the NAS talks to
            ts = ev.request.integer(Attr.EVENT_TIMESTAMP)
            assert ts is not None and ts > 0
            nas.answer(nas.das.ack(ev), ev)
            # The NAS's Stop (Admin-Reset) is recorded and releases nothing more.
            await nas.account(AcctStatus.STOP, "cpe1-s1", int(TerminateCause.ADMIN_RESET))
            await until_async(lambda: bool(events(db, "DisconnectAcked")))
            (acked,) = events(db, "DisconnectAcked")
            assert acked["session"] == "cpe1-s1" and acked["reason"] == "logged out"
            assert len(events(db, "DisconnectSent")) == 1
            assert svc.dm_counters["acked"] == 1 and svc.nas_sessions == {}

    asyncio.run(go())


def test_a_new_session_after_the_release_is_never_disconnected(db: Database) -> None:
    """Release at cpe1, re-login at cpe2 while the request to cpe1 is still being
    retransmitted: only cpe1's session is named; cpe2's lives until its own release."""

    async def go() -> None:
        async with rig(db, ("cpe1", "127.0.0.2"), ("cpe2", "127.0.0.3")) as (svc, [cpe1, cpe2]):
            await started_then_released(db, cpe1, "cpe1-s1", "no packet for 600 s")
            first = await cpe1.disconnect_request()  # cpe1 does not answer yet
            await asyncio.to_thread(_login, db, "cpe2")
            await cpe2.account(AcctStatus.START, "cpe2-s2")
            # Still retransmitted, the same bytes (the NAS core would answer it from
            # its cache once decided, never decide it twice).
            loop = asyncio.get_running_loop()
            again, _ = await asyncio.wait_for(loop.sock_recvfrom(cpe1.dm, 4096), 10)
            assert again[:20] == first.request.encode()[:20]
            cpe1.answer(cpe1.das.ack(first), first)
            await cpe1.account(AcctStatus.STOP, "cpe1-s1", int(TerminateCause.ADMIN_RESET))
            await until_async(lambda: bool(events(db, "DisconnectAcked")))
            assert [e["session"] for e in events(db, "DisconnectSent")] == ["cpe1-s1"]
            assert _status(db) == ("online", "cpe2")  # the Stop of cpe1-s1 released nothing
            assert [k[1] for k in svc.nas_sessions] == ["cpe2-s2"]
            # Its own release ends cpe2's session, and names only it.
            await asyncio.to_thread(_release, db)
            ev = await cpe2.disconnect_request()
            assert ev.session_id == "cpe2-s2" and ev.nas_identifier == "cpe2"
            cpe2.answer(cpe2.das.nak(ev, ErrorCause.SESSION_CONTEXT_NOT_FOUND), ev)
            await until_async(lambda: bool(events(db, "DisconnectNaked")))
            (naked,) = events(db, "DisconnectNaked")
            assert naked["error_cause"] == 503
            assert naked["detail"] == "SESSION_CONTEXT_NOT_FOUND"

    asyncio.run(go())


def test_stop_of_an_older_session_at_the_same_nas_releases_nothing(db: Database) -> None:
    async def go() -> None:
        async with rig(db, ("cpe1", "127.0.0.2")) as (svc, [nas]):
            await asyncio.to_thread(_login, db, "cpe1")
            await nas.account(AcctStatus.START, "cpe1-old")
            await asyncio.to_thread(_login, db, "cpe1")
            await nas.account(AcctStatus.START, "cpe1-new")
            await nas.account(AcctStatus.STOP, "cpe1-old", int(TerminateCause.USER_REQUEST))
            assert _status(db) == ("online", "cpe1")
            await nas.account(AcctStatus.STOP, "cpe1-new", int(TerminateCause.USER_REQUEST))
            assert _status(db) == ("offline", None)  # the current session's Stop does
            # The NAS ended its sessions itself: there is nothing to disconnect.
            assert events(db, "DisconnectSent") == [] and svc.nas_sessions == {}

    asyncio.run(go())


def test_no_answer_is_a_bounded_failure(db: Database) -> None:
    async def go() -> None:
        async with rig(db, ("cpe1", "127.0.0.2")) as (svc, [nas]):
            svc.dm_retries = 2
            await started_then_released(db, nas, "cpe1-s1")
            loop = asyncio.get_running_loop()
            seen = [(await asyncio.wait_for(loop.sock_recvfrom(nas.dm, 4096), 10))[0]]
            while len(seen) < 3:
                seen.append((await asyncio.wait_for(loop.sock_recvfrom(nas.dm, 4096), 10))[0])
            assert len(set(seen)) == 1  # one request, sent three times
            await until_async(lambda: bool(events(db, "DisconnectFailed")))
            (failed,) = events(db, "DisconnectFailed")
            assert failed["detail"] == "no valid answer to 3 sends"
            assert svc.dm_counters["sent"] == 1 and svc.dm_counters["failed"] == 1

    asyncio.run(go())


def test_forged_answer_is_dropped(db: Database) -> None:
    async def go() -> None:
        async with rig(db, ("cpe1", "127.0.0.2")) as (svc, [nas]):
            await started_then_released(db, nas, "cpe1-s1")
            ev = await nas.disconnect_request()
            req = ev.request
            # An ACK signed with another secret, and one with the right secret but no
            # Message-Authenticator (what a BlastRADIUS forgery would produce).
            wrong = rp.encode_response(Packet(41, req.identifier), req.authenticator, b"other")
            bare = rp.encode_response(
                Packet(41, req.identifier),
                req.authenticator,
                SECRET.encode(),
                with_message_authenticator=False,
            )
            nas.answer(wrong, ev)
            nas.answer(bare, ev)
            await until_async(lambda: sum("Disconnect answer" in d for d in svc.dropped) == 2)
            assert sum("Disconnect answer" in d for d in svc.dropped) == 2
            assert svc.dm_counters["acked"] == 0
            nas.answer(nas.das.ack(ev), ev)
            await until_async(lambda: svc.dm_counters["acked"] == 1)
            assert svc.dm_counters["acked"] == 1

    asyncio.run(go())


def test_real_portal_against_the_real_server(db: Database) -> None:
    """Login through the portal (Access-Request, accounting Start), release through the
    policy, and the portal is captive for that client again."""

    async def go() -> None:
        svc, port = await _server(db, 0)
        portal = Portal(
            Context(
                "i-portal",
                {
                    "node": "cpe1",
                    "nft": False,
                    "port": 0,
                    "dm_port": 0,
                    "radius": {
                        "server": f"127.0.0.1:{port}",
                        "acct_server": f"127.0.0.1:{port}",
                        "secret": SECRET,
                    },
                },
            )
        )
        await portal.start()
        with db.session() as s:
            row = s.get(FirewallSettingRow, "dm_port")
            assert row is not None
            row.value = portal.dm_port
        try:
            body = b"username=alice&password=pw"
            req = Request("POST", "/login", {}, {"host": "portal"}, body, "127.0.0.1", "127.0.0.1")
            r = await portal.handle(req)
            assert r.status == 200 and b"Logged in as" in r.body
            await until_async(lambda: bool(svc.nas_sessions))
            (sid,) = [k[1] for k in svc.nas_sessions]
            assert sid == portal.sessions["127.0.0.1"].session_id
            await asyncio.to_thread(_release, db, "session timeout")
            await until_async(lambda: bool(events(db, "DisconnectAcked")))
            assert portal.sessions == {} and portal.counts["disconnects"] == 1
            assert events(db, "DisconnectAcked")[0]["session"] == sid
            # The portal's Stop (Admin-Reset) reached the accounting table.
            await until_async(lambda: _stops(db) == [sid])
            assert _stops(db) == [sid]
        finally:
            await portal.stop()
            await svc.stop()

    asyncio.run(go())


def _stops(db: Database) -> list[str]:
    from netfate.services.firewall.tables import FirewallAccountingRow

    with db.session() as s:
        rows = s.scalars(
            select(FirewallAccountingRow).where(FirewallAccountingRow.status == "stop")
        )
        return [r.session_id for r in rows]


# --------------------------------------------------------------------------- restarts
# The NAS sessions are a table (firewall_nas_sessions): an orchestrator started again
# on the same database ends, at the next release, the sessions reported before.


class Restartable:
    """The server on `db`, a fake NAS (cpe1, 127.0.0.2) and `restart()`: the server
    stops (its socket closes) and a new one, with an engine and memory of its own,
    listens on the same address and port, as a restarted orchestrator would."""

    def __init__(self, db: Database) -> None:
        self.db, self.dm_port = db, _free_udp_port()

    async def __aenter__(self) -> Restartable:
        self.first, self.port = await _server(self.db, self.dm_port)
        self.svc = self.first
        self.nas = Nas("cpe1", "127.0.0.2", self.dm_port, ("127.0.0.1", self.port))
        return self

    async def restart(self) -> RadiusService:
        await self.svc.stop()
        self.svc.db.dispose()
        db = Database(self.db.url)
        db.migrate([FIREWALL_MIGRATIONS])
        self.svc, _ = await _server(db, self.dm_port)
        await self.svc.listen("127.0.0.1", self.port, None)
        return self.svc

    async def __aexit__(self, *exc: object) -> None:
        self.nas.close()
        await self.svc.stop()
        self.svc.db.dispose()


def test_a_release_after_a_restart_disconnects_the_sessions_reported_before(
    db: Database,
) -> None:
    async def go() -> None:
        async with Restartable(db) as r:
            nas = r.nas
            await asyncio.to_thread(_login, db, "cpe1")
            await nas.account(AcctStatus.START, "cpe1-s2")
            svc = await r.restart()
            assert list(svc.nas_sessions) == [("127.0.0.2", "cpe1-s2")]
            await asyncio.to_thread(_release, svc.db, "no packet for 600 s")
            ev = await nas.disconnect_request()
            assert (ev.session_id, ev.user, ev.framed_ip, ev.nas_identifier) == (
                "cpe1-s2",
                "alice",
                "192.168.1.2",
                "cpe1",
            )
            assert ev.peer == nas.server  # from the listener the NAS talked to
            nas.answer(nas.das.ack(ev), ev)
            await nas.account(AcctStatus.STOP, "cpe1-s2", int(TerminateCause.ADMIN_RESET))
            await until_async(lambda: svc.dm_counters["acked"] == 1)
            assert svc.dm_counters["acked"] == 1 and svc.nas_sessions == {}
            assert [e["session"] for e in events(svc.db, "DisconnectAcked")] == ["cpe1-s2"]
            assert _status(svc.db) == ("offline", None)  # the Stop released nothing more

    asyncio.run(go())


def test_which_session_is_current_survives_a_restart(db: Database) -> None:
    """alice logs in at cpe1 twice. After a restart, the Stop of her older session
    releases nothing; the Stop of her current one does."""

    async def go() -> None:
        async with Restartable(db) as r:
            nas = r.nas
            await asyncio.to_thread(_login, db, "cpe1")
            await nas.account(AcctStatus.START, "cpe1-old")
            await asyncio.to_thread(_login, db, "cpe1")
            await nas.account(AcctStatus.START, "cpe1-new")
            svc = await r.restart()
            await nas.account(AcctStatus.STOP, "cpe1-old", int(TerminateCause.LOST_CARRIER))
            assert _status(svc.db) == ("online", "cpe1")
            await nas.account(AcctStatus.STOP, "cpe1-new", int(TerminateCause.USER_REQUEST))
            assert _status(svc.db) == ("offline", None)
            assert events(svc.db, "DisconnectSent") == [] and svc.nas_sessions == {}

    asyncio.run(go())


def test_a_disconnect_sent_before_a_restart_is_not_sent_again(db: Database) -> None:
    """The NAS does not answer before the restart, and an Interim-Update of that
    session crosses it. alice logs in again at the same NAS; her next release names
    only the new session."""

    async def go() -> None:
        async with Restartable(db) as r:
            nas = r.nas
            await started_then_released(db, nas, "cpe1-s1")
            await nas.disconnect_request()  # never answered
            await until_async(lambda: r.first.nas_sessions == {})  # marked: sent
            assert r.first.nas_sessions == {}
            svc = await r.restart()
            await nas.account(AcctStatus.INTERIM_UPDATE, "cpe1-s1")
            assert svc.nas_sessions == {}
            await asyncio.to_thread(_login, svc.db, "cpe1")
            await nas.account(AcctStatus.START, "cpe1-s2")
            await asyncio.to_thread(_release, svc.db)
            ev = await nas.disconnect_request()
            while ev.session_id == "cpe1-s1":  # the first service's retransmissions
                ev = await nas.disconnect_request()
            assert ev.session_id == "cpe1-s2"
            nas.answer(nas.das.ack(ev), ev)
            await until_async(lambda: svc.dm_counters["acked"] == 1)
            assert svc.dm_counters["acked"] == 1
            assert svc.dm_counters["sent"] == 1  # cpe1-s1 was not named again

    asyncio.run(go())


def _session_row(nas: str, sid: str, seen: float) -> FirewallNasSessionRow:
    return FirewallNasSessionRow(
        nas=nas,
        session_id=sid,
        user="alice",
        nas_port=40000,
        listener_address="127.0.0.1",
        listener_port=1812,
        started=seen,
        seen=seen,
        current=False,
    )


def test_old_sessions_are_forgotten_and_their_number_bounded(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(radius, "MAX_NAS_SESSIONS", 3)
    now = 1_000_000.0
    with db.session() as s:
        s.add(_session_row("127.0.0.2", "stale", now - radius.NAS_SESSION_TTL - 1))
        for i in range(5):
            s.add(_session_row("127.0.0.2", f"s{i}", now - 100 + i))
    svc = RadiusService(db)
    assert svc.prune_nas_sessions(now) == 3  # the stale one, then the two oldest
    assert [k[1] for k in svc.nas_sessions] == ["s2", "s3", "s4"]
    assert svc.prune_nas_sessions(now) == 0


def test_the_migration_creates_the_table_the_service_uses(db: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from netfate.store.base import Base

    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn)
        assert "0007_firewall_nas_sessions" in ctx.get_current_heads()
        diffs = [
            d
            for d in compare_metadata(ctx, Base.metadata)
            if FirewallNasSessionRow.__tablename__ in repr(d)
        ]
    assert diffs == []


def test_accounting_history_is_cut_to_the_newest_records(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from netfate.services.firewall.tables import FirewallAccountingRow

    def row(i: int) -> FirewallAccountingRow:
        return FirewallAccountingRow(
            at=float(i), user=f"u{i}", session_id=f"s{i}", status="Interim-Update", nas="n"
        )

    with db.session() as s:
        s.add_all(row(i) for i in range(7))
    monkeypatch.setattr(radius, "KEEP_ACCOUNTING", 3)
    svc = RadiusService(db)
    svc.prune_nas_sessions(1_000_000.0)
    with db.session() as s:
        kept = [r.session_id for r in s.query(FirewallAccountingRow).order_by("id")]
    assert kept == ["s4", "s5", "s6"]
    # In batches: 5 more records, 2 a transaction, all beyond the newest 3 go.
    with db.session() as s:
        s.add_all(row(i) for i in range(7, 12))
    assert logins.prune_accounting(db, 3, batch=2) == 5
    with db.session() as s:
        assert s.query(FirewallAccountingRow).count() == 3
    assert logins.prune_accounting(db, 3) == 0
