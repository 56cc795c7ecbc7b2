"""What the RADIUS tests share: users in the NetFATE tables, the orchestrator's
RADIUS server (RadiusService on a SQLite database) on a loop thread of its own,
and a FreeRADIUS server that is stopped whatever happens."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st
from sqlalchemy import select

from freeradius import FreeRadius
from netfate.orchestrator.loops import LoopRunner
from netfate.proto.radius import AcctStatus, Attr, Code, Packet
from netfate.services.firewall import SERVICE
from netfate.services.firewall.core import Clients, RadiusCore
from netfate.services.firewall.disconnect import DmJob
from netfate.services.firewall.nas_sessions import ListenerKey, NasSession
from netfate.services.firewall.passwords import hash_password
from netfate.services.firewall.radius import RadiusService
from netfate.services.firewall.tables import FirewallRadiusClientRow, FirewallUserRow
from netfate.store.db import Database
from netfate.store.tables import EventRow

assert SERVICE.migrations is not None
FIREWALL_MIGRATIONS = SERVICE.migrations


def user_row(
    name: str, password: str, *, session_timeout: int = 600, idle_timeout: int = 600
) -> FirewallUserRow:
    """An offline user with no functions (no firewall: the policy's login is a table
    write) and an empty rule set."""
    return FirewallUserRow(
        name=name,
        password_hash=hash_password(password),
        functions=[],
        status="offline",
        session_timeout=session_timeout,
        idle_timeout=idle_timeout,
        rules={},
        rules_version=1,
        counters={},
    )


def radius_db(path: Path, client: str, secret: str, users: Iterable[FirewallUserRow]) -> Database:
    """A migrated database with one RADIUS client (an address or subnet) and `users`."""
    db = Database(f"sqlite:///{path}")
    db.migrate([FIREWALL_MIGRATIONS])
    with db.session() as s:
        s.add(FirewallRadiusClientRow(address=client, secret=secret, name="test NASes"))
        s.add_all(list(users))
    return db


def events(db: Database, kind: str) -> list[dict[str, Any]]:
    with db.session() as s:
        return [e.data for e in s.scalars(select(EventRow).where(EventRow.kind == kind))]


class OurServer:
    """The embedded server (the orchestrator's RadiusService) on its own loop thread.
    The service's policy loop runs every `policy_interval` s (an hour: never, in a
    test), as the orchestrator runs it (its contract's loop)."""

    def __init__(self, db: Database, policy_interval: float = 3600.0) -> None:
        self.db = db
        self.port = 0  # the last listener's
        self.loop = asyncio.new_event_loop()
        self.svc = RadiusService(db)
        policy = replace(SERVICE.loops[0], interval_s=policy_interval)
        self.loops = LoopRunner(db, None, [(SERVICE.name, policy)])
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        try:
            self._call(self.svc.start())
            self._call(self._start_loops())
        except BaseException:
            self.close()
            raise

    async def _start_loops(self) -> None:
        self.loops.start()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def listen(self, address: str, port: int, ns: str | None = None) -> int:
        """A UDP listener (inside `ns` when given); returns its port."""
        self.port = int(self._call(self.svc.listen(address, port, ns))[1])
        return self.port

    def events(self, kind: str) -> list[dict[str, Any]]:
        return events(self.db, kind)

    def close(self) -> None:
        self._call(self.loops.stop())
        self._call(self.svc.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.db.dispose()


@contextlib.contextmanager
def our_server(
    monkeypatch: pytest.MonkeyPatch, db: Database, policy_interval: float = 3600.0
) -> Iterator[OurServer]:
    """OurServer with only the listeners the test opens (none from the environment)."""
    monkeypatch.setenv("NETFATE_RADIUS_LISTEN", "")
    srv = OurServer(db, policy_interval)
    try:
        yield srv
    finally:
        srv.close()


@contextlib.contextmanager
def running(fr: FreeRadius) -> Iterator[FreeRadius]:
    fr.start()
    try:
        yield fr
    finally:
        fr.stop()


class FakeRadius:
    """The portal's RADIUS client (auth and acct), faked: every login is accepted with
    Session-Timeout `timeout` (or rejected), and what is sent is recorded in order."""

    def __init__(self, accept: bool = True, timeout: int = 600) -> None:
        self.accept, self.timeout = accept, timeout
        self.sent: list[tuple[str, list[tuple[int, Any]]]] = []  # (user or "acct", attrs)

    async def authenticate(
        self, user: str, password: bytes, attrs: list[tuple[int, Any]]
    ) -> Packet:
        self.sent.append((user, attrs))
        if not self.accept:
            return Packet(Code.ACCESS_REJECT, 1)
        return Packet(Code.ACCESS_ACCEPT, 1).add(Attr.SESSION_TIMEOUT, self.timeout)

    async def account(self, attrs: list[tuple[int, Any]]) -> Packet:
        self.sent.append(("acct", attrs))
        return Packet(Code.ACCOUNTING_RESPONSE, 1)

    async def close(self) -> None:
        pass

    def stops(self) -> list[dict[int, Any]]:
        """The Accounting Stops sent, as attribute dicts."""
        accts = [dict(attrs) for who, attrs in self.sent if who == "acct"]
        return [a for a in accts if a[Attr.ACCT_STATUS_TYPE] == AcctStatus.STOP]


# --------------------------------------------------------------------------- in memory
# The embedded server's sans-I/O core (services/firewall/core.py) and the cores of
# the NAS it talks to, with no socket: a NAS at 10.0.0.2 behind a listener in a
# namespace.

CORE_SECRET = b"core-secret"
CORE_NAS = ("10.0.0.2", 40000)
"""Where the NAS's requests come from."""
CORE_DM_TO = ("10.0.0.2", 3799)
"""Where the NAS takes Disconnect-Requests."""
CORE_LISTENER: ListenerKey = ("10.0.0.1", 1812, "ns-pe1")


def radius_core(timeout: float = 1.0, retries: int = 2) -> RadiusCore:
    """A core that knows the NAS's subnet (and one other client by address)."""
    clients = Clients()
    clients.load([("10.0.0.0/24", CORE_SECRET.decode()), ("10.0.0.9", "another")])
    core = RadiusCore(clients)
    core.dm.timeout, core.dm.retries = timeout, retries
    return core


def dm_job(session_id: str = "cpe1-s1", listener: ListenerKey = CORE_LISTENER) -> DmJob:
    """A Disconnect-Request for alice's session `session_id` at the NAS."""
    n = NasSession(
        key=(CORE_NAS[0], session_id),
        user="alice",
        nas_identifier="cpe1",
        peer=CORE_NAS,
        listener=listener,
        framed_ip="192.168.1.2",
        started=0.0,
        seen=0.0,
    )
    return DmJob(n, CORE_DM_TO, CORE_SECRET, "logged out")


def mutated(data: st.DataObject, wire: bytes, keep: tuple[int, ...] = (2, 3)) -> bytes | None:
    """`wire` with a bit flipped, cut short, or extended (Length fixed); None when the
    flip drew an octet in `keep` (Length, octets 2-3: covered by cut and extend)."""
    buf = bytearray(wire)
    how = data.draw(st.sampled_from(["flip", "cut", "extend_length"]))
    if how == "flip":
        i = data.draw(st.integers(0, len(buf) - 1))
        if i in keep:
            return None
        buf[i] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "cut":
        buf = buf[: data.draw(st.integers(0, len(buf) - 1))]
    else:
        buf += data.draw(st.binary(min_size=1, max_size=40))
        buf[2:4] = len(buf).to_bytes(2, "big")
    return bytes(buf)
