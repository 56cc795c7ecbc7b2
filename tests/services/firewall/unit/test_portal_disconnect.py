"""The portal as RFC 5176 Dynamic Authorization Server, over real UDP on 127.0.0.0/8
(no nftables here: the netns tier drives the portal with nft, and radclient).

The "RADIUS server" is a socket driven by the sans-I/O ClientCore; the portal's
own RADIUS client is a fake that accepts every login and records accounting."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from netfate.proto.radius import Attr, ClientCore, Code, Packet, TerminateCause
from netfate.proto.radius.packet import Value
from netfate.vnf.portal.function import Portal, Session
from netfate.vnf.portal.http import Request
from netfate.vnf.runtime import Context, Runtime
from radius_fixtures import FakeRadius
from waiting import until_async

SECRET = "portal-dm-secret"
ALICE, BOB = "192.168.1.2", "192.168.1.3"


async def _portal(config: dict[str, Any] | None = None) -> tuple[Portal, FakeRadius]:
    cfg = {
        "node": "cpe1",
        "address": "127.0.0.1",
        "nft": False,
        "dm_port": 0,
        "radius": {"server": "127.0.0.1:1812", "secret": SECRET},
        **(config or {}),
    }
    p = Portal(Context("i-portal", cfg))
    fake = FakeRadius()
    p.auth = fake  # type: ignore[assignment]
    p.acct = fake  # type: ignore[assignment]
    await p._open_dm()
    return p, fake


async def _login(p: Portal, ip: str, user: str) -> Session:
    body = f"username={user}&password=pw".encode()
    r = await p.handle(Request("POST", "/login", {}, {"host": "127.0.0.1"}, body, ip, "127.0.0.1"))
    assert r.status == 200, r.body
    return p.sessions[ip]


class Das:
    """The server's side of the exchange: a UDP socket and a ClientCore."""

    def __init__(self, p: Portal, secret: str = SECRET, source: str = "127.0.0.1") -> None:
        self.to = ("127.0.0.1", int(p.dm_port or 0))
        self.core = ClientCore(secret.encode(), timeout=0.2, retries=20)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.sock.setblocking(False)

    def send(self, attrs: Sequence[tuple[int, Value]]) -> bytes:
        _, wire = self.core.disconnect_request(list(attrs), 0.0)
        self.sock.sendto(wire, self.to)
        return wire

    async def answer(self) -> Packet:
        loop = asyncio.get_running_loop()
        while True:
            data, _ = await asyncio.wait_for(loop.sock_recvfrom(self.sock, 4096), 10)
            for ev in self.core.receive(data, 0.0):
                return ev.response

    async def ask(self, attrs: Sequence[tuple[int, Value]]) -> Packet:
        self.send(attrs)
        return await self.answer()

    def close(self) -> None:
        self.sock.close()


@contextlib.asynccontextmanager
async def portal_and_das() -> AsyncIterator[tuple[Portal, FakeRadius, Das]]:
    """A portal with its fake RADIUS client, and the server's side asking it."""
    p, fake = await _portal()
    das = Das(p)
    try:
        yield p, fake, das
    finally:
        das.close()
        await p.stop()


def test_disconnect_ends_exactly_the_named_session() -> None:
    async def go() -> None:
        async with portal_and_das() as (p, fake, das):
            alice = await _login(p, ALICE, "alice")
            await _login(p, BOB, "bob")
            r = await das.ask(
                [
                    (Attr.ACCT_SESSION_ID, alice.session_id),
                    (Attr.USER_NAME, "alice"),
                    (Attr.FRAMED_IP_ADDRESS, ALICE),
                    (Attr.NAS_IDENTIFIER, "cpe1"),
                ]
            )
            assert r.code == Code.DISCONNECT_ACK
            assert set(p.sessions) == {BOB}  # bob untouched
            await until_async(lambda: bool(fake.stops()))
            (stop,) = fake.stops()
            assert stop[Attr.ACCT_SESSION_ID] == alice.session_id
            assert stop[Attr.ACCT_TERMINATE_CAUSE] == TerminateCause.ADMIN_RESET
            # The captive API says so: alice is captive again.
            api = await p.handle(Request("GET", "/api/captive", {}, {}, b"", ALICE, "127.0.0.1"))
            assert b'"captive": true' in api.body
            assert p.counts["disconnects"] == 1

    asyncio.run(go())


def test_unknown_session_other_nas_and_mismatching_attributes_get_naks() -> None:
    async def go() -> None:
        async with portal_and_das() as (p, _, das):
            alice = await _login(p, ALICE, "alice")
            sid = (Attr.ACCT_SESSION_ID, alice.session_id)
            for attrs, cause in (
                ([(Attr.ACCT_SESSION_ID, "cpe1-000000000000")], 503),
                ([sid, (Attr.USER_NAME, "bob")], 503),  # all present must match
                ([sid, (Attr.FRAMED_IP_ADDRESS, BOB)], 503),
                ([sid, (Attr.CALLING_STATION_ID, "02-00-00-00-00-99")], 503),
                ([sid, (Attr.NAS_IDENTIFIER, "cpe2")], 403),
                ([sid, (Attr.NAS_IP_ADDRESS, "192.168.2.254")], 403),
            ):
                r = await das.ask(attrs)
                assert (r.code, r.integer(Attr.ERROR_CAUSE)) == (Code.DISCONNECT_NAK, cause)
            assert set(p.sessions) == {ALICE}
            # By User-Name alone: every session of that user ends.
            r = await das.ask([(Attr.USER_NAME, "alice")])
            assert r.code == Code.DISCONNECT_ACK and p.sessions == {}

    asyncio.run(go())


def test_wrong_source_or_secret_dropped_and_counted() -> None:
    async def go() -> None:
        p, _ = await _portal()
        strangers = [Das(p, source="127.0.0.2"), Das(p, secret="not-the-secret")]
        try:
            alice = await _login(p, ALICE, "alice")
            for das in strangers:
                das.send([(Attr.ACCT_SESSION_ID, alice.session_id)])
            await until_async(lambda: p.counts["disconnect_dropped"] == 2)
            assert p.counts["disconnect_dropped"] == 2
            assert set(p.sessions) == {ALICE} and p.counts["disconnects"] == 0
        finally:
            for das in strangers:
                das.close()
            await p.stop()

    asyncio.run(go())


def test_relogin_is_a_new_session_that_an_old_request_does_not_end() -> None:
    """Released, then logged in again before the server's request arrived: the request
    names the old Acct-Session-Id, so the new session stays (NAK 503)."""

    async def go() -> None:
        async with portal_and_das() as (p, _, das):
            old = await _login(p, ALICE, "alice")
            new = await _login(p, ALICE, "alice")
            assert new.session_id != old.session_id
            r = await das.ask([(Attr.ACCT_SESSION_ID, old.session_id), (Attr.USER_NAME, "alice")])
            assert (r.code, r.integer(Attr.ERROR_CAUSE)) == (Code.DISCONNECT_NAK, 503)
            assert p.sessions[ALICE].session_id == new.session_id

    asyncio.run(go())


def test_frozen_copy_stays_silent_and_the_imported_copy_answers() -> None:
    """Migration: the frozen source ignores the request; the target, holding the
    imported sessions, answers the server's retransmission (the same bytes)."""

    async def go() -> None:
        src, src_radius = await _portal()
        das = Das(src)
        dst: Portal | None = None
        try:
            alice = await _login(src, ALICE, "alice")
            src.freeze()
            state = src.export_state()
            wire = das.send([(Attr.ACCT_SESSION_ID, alice.session_id)])
            await until_async(lambda: src.counts["disconnect_dropped"] == 1)
            assert src.counts["disconnect_dropped"] == 1 and ALICE in src.sessions
            dst, _ = await _portal()
            dst.import_state(state)
            das.sock.sendto(wire, ("127.0.0.1", int(dst.dm_port or 0)))  # the retransmission
            r = await das.answer()
            assert r.code == Code.DISCONNECT_ACK and dst.sessions == {}
            await src.stop()
            assert src_radius.stops() == []  # the frozen source ended nothing
        finally:
            das.close()
            if dst is not None:
                await dst.stop()

    asyncio.run(go())


def test_retransmitted_request_gets_the_same_ack_not_a_nak() -> None:
    async def go() -> None:
        async with portal_and_das() as (p, _, das):
            alice = await _login(p, ALICE, "alice")
            wire = das.send([(Attr.ACCT_SESSION_ID, alice.session_id)])
            loop = asyncio.get_running_loop()
            first, _ = await asyncio.wait_for(loop.sock_recvfrom(das.sock, 4096), 10)
            das.sock.sendto(wire, das.to)  # as if the ACK had been lost
            again, _ = await asyncio.wait_for(loop.sock_recvfrom(das.sock, 4096), 10)
            assert again == first and first[0] == Code.DISCONNECT_ACK
            assert p.counts["disconnects"] == 1

    asyncio.run(go())


def test_restart_for_a_new_configuration_ends_only_what_it_does_not_carry_on() -> None:
    """The agent applies a configuration the portal cannot take while running: export,
    stop, a new process, import. The old process sends no Accounting Stop for the
    sessions it hands on (the server would release those users); a session begun
    after the export is not carried on, and ends."""

    async def go() -> None:
        old, old_radius = await _portal()
        new, new_radius = await _portal()
        rt = Runtime(old, "unused.sock")
        old_stopped = False
        try:
            alice = await _login(old, ALICE, "alice")
            assert (await rt.handle({"op": "configure", "config": {}}))["applied"] is False
            state = (await rt.handle({"op": "export"}))["state"]
            await rt.handle({"op": "status"})  # the agent's monitor may ask meanwhile
            bob = await _login(old, BOB, "bob")
            stop_req = {"op": "stop", "hand_over": True}  # as the agent's restart says
            assert (await rt.handle(stop_req))["ok"] and rt.done.is_set()
            await old.stop()  # as Runtime.run does once `done` is set
            old_stopped = True
            (stop,) = old_radius.stops()
            assert stop[Attr.ACCT_SESSION_ID] == bob.session_id
            assert stop[Attr.ACCT_TERMINATE_CAUSE] == TerminateCause.ADMIN_REBOOT
            new.import_state(state)
            assert new.sessions[ALICE].session_id == alice.session_id and BOB not in new.sessions
        finally:
            if not old_stopped:
                await old.stop()
            await new.stop()
        assert [s[Attr.ACCT_SESSION_ID] for s in new_radius.stops()] == [alice.session_id]

    asyncio.run(go())


@pytest.mark.parametrize(
    "ops",
    [
        # A migration's snapshot, the source active again, then the instance deleted.
        [{"op": "export"}, {"op": "activate"}, {"op": "stop", "hand_over": True}],
        # Only the agent's restart says it hands the state on: a snapshot, then a
        # plain stop (a migration given up, say).
        [{"op": "export"}, {"op": "stop"}],
    ],
    ids=["another-op-between", "plain-stop"],
)
def test_a_stop_that_hands_nothing_on_ends_every_session(ops: list[dict[str, Any]]) -> None:
    async def go() -> None:
        p, radius = await _portal()
        rt = Runtime(p, "unused.sock")
        try:
            alice = await _login(p, ALICE, "alice")
            for op in ops:
                await rt.handle(op)
            assert rt.done.is_set()
        finally:
            await p.stop()
        assert [s[Attr.ACCT_SESSION_ID] for s in radius.stops()] == [alice.session_id]

    asyncio.run(go())
