"""RFC 5176 Disconnect at a real portal (nftables, conntrack) in namespaces:
FreeRADIUS's `radclient` ends a session, and our RADIUS server ends one when the
policy releases the user (its socket opened inside the server's namespace).

    D-br   Linux bridge joining:
    D-cli  10.79.0.10/24, default via 10.79.0.1 (the portal)
    D-por  the portal, 10.79.0.1/24 and 10.79.1.1/24 (one-armed router), UDP 3799
    D-web  10.79.1.20/24: a web server on :8080; also a stranger sending requests
    D-aaa  10.79.1.5/24: FreeRADIUS + radclient, or our RADIUS server's sockets
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from netfate.agent.instances import control_call
from netfate.host import netns
from netfate.services.firewall import policy
from netfate.services.firewall.freeradius import FreeRadius, available
from netfate.services.firewall.passwords import hash_password
from netfate.services.firewall.radius import RadiusService
from netfate.services.firewall.tables import NfAccountingRow, NfRadiusClientRow, NfUserRow
from netfate.store.db import Database
from netfate.store.tables import EventRow

SECRET = "dm-portal-secret"
WEB = "http://10.79.1.20:8080/hello.txt"
pytestmark = pytest.mark.skipif(not available(), reason="FreeRADIUS (Debian freeradius) missing")


def sh(ns: str, *argv: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    return netns.run_in(ns, list(argv), check=check, **kw)


def until(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll (bounded) for something another process does; the caller asserts."""
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.05)
    return cond()


class Net:
    def __init__(self, prefix: str, tmp: Path) -> None:
        self.p, self.tmp = prefix, tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.control = str(tmp / "portal.sock")

    def ns(self, n: str) -> str:
        return f"{self.p}-{n}"

    def build(self) -> None:
        br = self.ns("br")
        netns.ensure(br)
        sh(br, "ip", "link", "add", "br0", "type", "bridge")
        sh(br, "ip", "link", "set", "br0", "up")
        for name, addrs, routes in (
            ("cli", ["10.79.0.10/24"], [("default", "10.79.0.1")]),
            ("por", ["10.79.0.1/24", "10.79.1.1/24"], []),
            ("web", ["10.79.1.20/24"], [("10.79.0.0/24", "10.79.1.1")]),
            ("aaa", ["10.79.1.5/24"], [("10.79.0.0/24", "10.79.1.1")]),
        ):
            ns = self.ns(name)
            netns.ensure(ns)
            sh(ns, "ip", "link", "set", "lo", "up")
            sh(br, "ip", "link", "add", f"{self.p}{name}", "type", "veth",
               "peer", "name", "eth0", "netns", ns)  # fmt: skip
            sh(br, "ip", "link", "set", f"{self.p}{name}", "master", "br0")
            sh(br, "ip", "link", "set", f"{self.p}{name}", "up")
            for a in addrs:
                sh(ns, "ip", "addr", "add", a, "dev", "eth0")
            sh(ns, "ip", "link", "set", "eth0", "up")
            for dst, via in routes:
                sh(ns, "ip", "route", "add", dst, "via", via)
        (self.tmp / "hello.txt").write_text("hello from the web\n")
        self.procs.append(
            netns.popen_in(
                self.ns("web"),
                [sys.executable, "-m", "http.server", "8080", "--bind", "10.79.1.20",
                 "--directory", str(self.tmp)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip

    def start_portal(self) -> None:
        cfg = {
            "node": "cpe1",
            "address": "10.79.0.1",
            "port": 80,
            "interim": 1.0,
            # dm_port: the default, 3799
            "radius": {
                "server": "10.79.1.5:18120",
                "acct_server": "10.79.1.5:18121",
                "secret": SECRET,
            },
        }
        argv = [sys.executable, "-m", "netfate.vnf", "netfate.vnf.portal:Portal",
                "--instance", "i-dmportal", "--control", self.control,
                "--config", json.dumps(cfg)]  # fmt: skip
        log = open(self.tmp / "portal.log", "wb")  # noqa: SIM115
        p = netns.popen_in(self.ns("por"), argv, stdout=log, stderr=log)
        self.procs.append(p)
        if not until(lambda: Path(self.control + ".ready").exists() or p.poll() is not None):
            raise AssertionError("portal not ready")
        if p.poll() is not None:
            raise AssertionError((self.tmp / "portal.log").read_text())

    def portal_log(self) -> str:
        return (self.tmp / "portal.log").read_text()

    def curl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return sh(self.ns("cli"), "curl", "-s", "-m", "3", *args, check=False)

    def web_reachable(self) -> bool:
        return "hello from the web" in self.curl(WEB).stdout

    def half_request(self) -> socket.socket:
        c = netns.socket_in(self.ns("cli"), socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(3.0)
        c.connect(("10.79.1.20", 8080))
        c.sendall(b"GET /hello.txt HTTP/1.0\r\n")
        return c

    @staticmethod
    def finish_request(c: socket.socket) -> bytes:
        """The rest of the request, and the answer (OSError: none within 3 s)."""
        with c:
            c.sendall(b"Host: web\r\n\r\n")
            got = b""
            while chunk := c.recv(65536):
                got += chunk
            if not got:
                raise OSError("connection closed without an answer")
            return got

    def login(self, user: str, password: str) -> None:
        r = self.curl("-d", f"username={user}&password={password}", "http://10.79.0.1/login")
        assert f'Logged in as <b id="user">{user}</b>' in r.stdout, r.stdout

    def stats(self) -> dict[str, Any]:
        r: dict[str, Any] = asyncio.run(control_call(self.control, {"op": "status"}))["stats"]
        return r

    def allowed(self) -> str:
        return sh(self.ns("por"), "nft", "list", "set", "inet", "netfate_portal", "allowed").stdout

    def radclient(
        self, ns: str, attrs: str, secret: str = SECRET
    ) -> subprocess.CompletedProcess[str]:
        # Bounded: one try, one second to answer.
        return sh(ns, "radclient", "-x", "-r", "1", "-t", "1", "10.79.0.1:3799", "disconnect",
                  secret, check=False, input=attrs, timeout=20)  # fmt: skip

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for name in ("cli", "por", "web", "aaa", "br"):
            netns.remove(self.ns(name))


@pytest.fixture
def net(run_prefix: str, tmp_path: Path) -> Iterator[Net]:
    n = Net(run_prefix, tmp_path)
    try:
        n.build()
        yield n
    finally:
        n.close()


@pytest.fixture
def freeradius(net: Net, tmp_path: Path) -> Iterator[FreeRadius]:
    fr = FreeRadius(
        tmp_path,
        18120,
        SECRET,
        {"erin": ("3r1n-pass", {"Session-Timeout": "900"})},
        client="10.79.0.0/16",
        listen="10.79.1.5",
        netns=net.ns("aaa"),
    )
    fr.start()
    try:
        yield fr
    finally:
        fr.stop()


def test_radclient_disconnects_a_session_at_the_portal(net: Net, freeradius: FreeRadius) -> None:
    net.start_portal()
    assert not net.web_reachable()  # captive before login
    net.login("erin", "3r1n-pass")
    assert net.web_reachable() and "10.79.0.10" in net.allowed()
    # Connections through the portal with a request half sent: the first one is
    # finished now (the control), the second after the Disconnect.
    control, held = net.half_request(), net.half_request()
    assert b"hello from the web" in net.finish_request(control)
    ma = ", Message-Authenticator = 0x00"
    ident = 'User-Name = "erin", Framed-IP-Address = 10.79.0.10'

    # Refused without a trace: no Message-Authenticator; a wrong secret; another
    # address than the portal's RADIUS server. radclient hears nothing back.
    for ns, attrs, secret in (
        ("aaa", ident + "\n", SECRET),
        ("aaa", ident + ma + "\n", "not-the-secret"),
        ("web", ident + ma + "\n", SECRET),
    ):
        r = net.radclient(net.ns(ns), attrs, secret)
        assert "Received" not in r.stdout and r.returncode != 0, r.stdout
    assert net.stats()["disconnect_dropped"] == 3
    assert net.web_reachable()
    log = net.portal_log()
    assert "Message-Authenticator missing" in log
    assert "does not verify" in log and "10.79.1.20 is not a configured RADIUS server" in log

    # A session that is not there: Disconnect-NAK, Error-Cause 503.
    r = net.radclient(net.ns("aaa"), f'{ident}, Acct-Session-Id = "cpe1-nosuchsession"{ma}\n')
    assert "Received Disconnect-NAK" in r.stdout, r.stdout + r.stderr
    assert "Error-Cause = Session-Context-Not-Found" in r.stdout
    assert net.web_reachable()

    # The real one: Disconnect-ACK (radclient checks our Message-Authenticator).
    r = net.radclient(net.ns("aaa"), ident + ma + "\n")
    assert "Received Disconnect-ACK" in r.stdout, r.stdout + r.stderr
    assert "Message-Authenticator = 0x" in r.stdout.split("Received", 1)[1]
    assert net.stats()["disconnects"] == 1 and net.stats()["sessions"] == 0
    assert "10.79.0.10" not in net.allowed()
    assert not net.web_reachable()  # captive again
    with pytest.raises(OSError):  # its conntrack entry is gone: cut, not carried on
        net.finish_request(held)
    captive = json.loads(net.curl("http://10.79.0.1/api/captive").stdout)
    assert captive["captive"] is True


class OurServer:
    """The orchestrator's RADIUS server, its sockets in D-aaa, on a loop thread."""

    def __init__(self, tmp: Path, ns: str) -> None:
        self.db = Database(f"sqlite:///{tmp}/dm.db")
        self.db.migrate()
        with self.db.session() as s:
            s.add(NfRadiusClientRow(address="10.79.0.0/16", secret=SECRET, name="portals"))
            s.add(
                NfUserRow(
                    name="frank",
                    password_hash=hash_password("fr4nk"),
                    functions=[],
                    status="offline",
                    session_timeout=600,
                    idle_timeout=600,
                    rules={},
                    rules_version=1,
                    counters={},
                )
            )
        self.loop = asyncio.new_event_loop()
        self.svc = RadiusService(self.db)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.svc.start(policy_interval=3600), self.loop).result(10)
        for port in (18120, 18121):
            asyncio.run_coroutine_threadsafe(
                self.svc.listen("10.79.1.5", port, ns), self.loop
            ).result(10)

    def events(self, kind: str) -> list[dict[str, Any]]:
        with self.db.session() as s:
            return [e.data for e in s.scalars(select(EventRow).where(EventRow.kind == kind))]

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.svc.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.db.dispose()


@pytest.fixture
def ours(net: Net, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OurServer]:
    monkeypatch.setenv("NETFATE_RADIUS_LISTEN", "")
    srv = OurServer(tmp_path, net.ns("aaa"))
    try:
        yield srv
    finally:
        srv.close()


def test_release_disconnects_the_session_from_the_servers_namespace(
    net: Net, ours: OurServer
) -> None:
    net.start_portal()
    net.login("frank", "fr4nk")
    assert net.web_reachable()
    assert until(lambda: bool(ours.svc.nas_sessions))
    ((nas_ip, sid),) = list(ours.svc.nas_sessions)
    assert nas_ip == "10.79.1.1"  # the portal's address towards the server
    with ours.db.session() as s:
        u = s.get(NfUserRow, "frank")
        assert u is not None and u.status == "online"
        policy.release(s, u, "logged out")
    assert until(lambda: bool(ours.events("DisconnectAcked")))
    (acked,) = ours.events("DisconnectAcked")
    assert acked["session"] == sid and acked["to"] == "10.79.1.1:3799"
    assert acked["netns"] == net.ns("aaa")
    assert not net.web_reachable()
    assert "10.79.0.10" not in net.allowed() and net.stats()["sessions"] == 0

    def stopped() -> list[str]:
        with ours.db.session() as s:
            q = select(NfAccountingRow).where(NfAccountingRow.status == "stop")
            return [r.session_id for r in s.scalars(q)]

    assert until(lambda: stopped() == [sid])  # the portal's Stop (Admin-Reset)
    # Log in again: a new session, untouched by the earlier request.
    net.login("frank", "fr4nk")
    assert net.web_reachable()
    assert until(lambda: len(ours.svc.nas_sessions) == 1)
    ((_, sid2),) = list(ours.svc.nas_sessions)
    assert sid2 != sid and len(ours.events("DisconnectSent")) == 1
