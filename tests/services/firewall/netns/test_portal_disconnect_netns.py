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

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from freeradius import FreeRadius, available
from netfate.host import netns
from netfate.services.firewall import policy
from netfate.services.firewall.tables import FirewallAccountingRow, FirewallUserRow
from netns_lan import sh, until
from portal_rig import PortalNet
from radius_fixtures import OurServer, our_server, radius_db, user_row

SECRET = "dm-portal-secret"
WEB = "http://10.79.1.20:8080/hello.txt"
pytestmark = pytest.mark.skipif(not available(), reason="FreeRADIUS (Debian freeradius) missing")


class Net(PortalNet):
    def __init__(self, prefix: str, tmp: Path) -> None:
        super().__init__(prefix, tmp, "10.79", curl_max=3)

    def start(self) -> None:
        self.start_portal(self.portal_config(SECRET), "i-dmportal")  # dm_port: 3799

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

    def allowed(self) -> str:
        return sh(self.ns("por"), "nft", "list", "set", "inet", "netfate_portal", "allowed").stdout

    def radclient(
        self, ns: str, attrs: str, secret: str = SECRET
    ) -> subprocess.CompletedProcess[str]:
        # Bounded: one try, one second to answer.
        return sh(ns, "radclient", "-x", "-r", "1", "-t", "1", "10.79.0.1:3799", "disconnect",
                  secret, check=False, input=attrs, timeout=20)  # fmt: skip


@pytest.fixture
def net(run_prefix: str, tmp_path: Path) -> Iterator[Net]:
    with Net(run_prefix, tmp_path).built() as n:
        yield n


@pytest.fixture
def freeradius(net: Net) -> Iterator[FreeRadius]:
    with net.freeradius(SECRET, {"erin": ("3r1n-pass", {"Session-Timeout": "900"})}) as fr:
        yield fr


def test_radclient_disconnects_a_session_at_the_portal(net: Net, freeradius: FreeRadius) -> None:
    net.start()
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


@pytest.fixture
def ours(net: Net, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OurServer]:
    db = radius_db(tmp_path / "dm.db", "10.79.0.0/16", SECRET, [user_row("frank", "fr4nk")])
    with our_server(monkeypatch, db) as srv:
        for port in (18120, 18121):
            srv.listen("10.79.1.5", port, net.ns("aaa"))
        yield srv


def test_release_disconnects_the_session_from_the_servers_namespace(
    net: Net, ours: OurServer
) -> None:
    net.start()
    net.login("frank", "fr4nk")
    assert net.web_reachable()
    assert until(lambda: bool(ours.svc.nas_sessions))
    ((nas_ip, sid),) = list(ours.svc.nas_sessions)
    assert nas_ip == "10.79.1.1"  # the portal's address towards the server
    with ours.db.session() as s:
        u = s.get(FirewallUserRow, "frank")
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
            q = select(FirewallAccountingRow).where(FirewallAccountingRow.status == "stop")
            return [r.session_id for r in s.scalars(q)]

    assert until(lambda: stopped() == [sid])  # the portal's Stop (Admin-Reset)
    # Log in again: a new session, untouched by the earlier request.
    net.login("frank", "fr4nk")
    assert net.web_reachable()
    assert until(lambda: len(ours.svc.nas_sessions) == 1)
    ((_, sid2),) = list(ours.svc.nas_sessions)
    assert sid2 != sid and len(ours.events("DisconnectSent")) == 1


def test_restart_with_new_configuration_carries_the_session_on(net: Net, ours: OurServer) -> None:
    """The agent's restart of a portal for a new configuration (export, stop, a new
    process, import) ends no session: the server sees no Stop and releases nobody."""

    def stops() -> list[str]:
        with ours.db.session() as s:
            q = select(FirewallAccountingRow).where(FirewallAccountingRow.status == "stop")
            return [r.session_id for r in s.scalars(q)]

    def frank_status() -> str:
        with ours.db.session() as s:
            u = s.get(FirewallUserRow, "frank")
            assert u is not None
            return u.status

    net.start()
    net.login("frank", "fr4nk")
    assert until(lambda: bool(ours.svc.nas_sessions))
    ((_, sid),) = list(ours.svc.nas_sessions)
    old = net.procs[-1]
    state = net.call({"op": "export"})["state"]
    assert [s["session_id"] for s in state["sessions"]] == [sid]
    assert net.call({"op": "stop", "hand_over": True})["ok"]  # as the agent's restart
    assert old.wait(10) == 0  # its stop() has run: any Stop it sent was answered
    assert stops() == [] and frank_status() == "online"
    assert [k[1] for k in ours.svc.nas_sessions] == [sid]

    net.start()
    assert not net.web_reachable()  # the new process knows no session yet
    assert net.call({"op": "import", "state": state})["ok"]
    assert net.web_reachable() and net.stats()["sessions"] == 1
    # The control: a plain stop (the instance deleted) does end the session.
    assert net.call({"op": "stop"})["ok"]
    assert net.procs[-1].wait(10) == 0
    assert until(lambda: stops() == [sid])
    assert until(lambda: frank_status() == "offline")
