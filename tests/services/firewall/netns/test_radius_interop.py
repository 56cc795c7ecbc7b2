"""RADIUS interop with Debian's FreeRADIUS 3.2, both ways, on 127.0.0.1 and own ports.

- our client core against a real FreeRADIUS server (Message-Authenticator sent and
  required back; Access-Accept/Reject; accounting Start, Interim-Update, Stop);
- FreeRADIUS's own `radtest` and `radclient` against our embedded server.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from freeradius import FreeRadius, available, free_udp_ports
from netfate.proto.radius import AcctStatus, Attr, ClientCore, Code, Packet
from radius_fixtures import OurServer, our_server, radius_db, user_row

pytestmark = pytest.mark.skipif(not available(), reason="FreeRADIUS (Debian freeradius) missing")
SECRET = "interop-secret"


def exchange(core: ClientCore, wire: bytes, port: int) -> Packet | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3.0)
    try:
        s.sendto(wire, ("127.0.0.1", port))
        data = s.recv(4096)
    except TimeoutError:
        return None
    finally:
        s.close()
    evs = core.receive(data, time.monotonic())
    return evs[0].response if evs else None


@pytest.fixture(scope="module")
def freeradius(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreeRadius]:
    port = free_udp_ports(2)
    fr = FreeRadius(
        tmp_path_factory.mktemp("fr"),
        port,
        SECRET,
        {"carol": ("c4r0l pass", {"Session-Timeout": "600", "Idle-Timeout": "45"})},
    )
    fr.start()
    try:
        yield fr
    finally:
        fr.stop()


def test_our_client_against_freeradius(freeradius: FreeRadius) -> None:
    core = ClientCore(SECRET.encode(), require_message_authenticator=True)
    _, wire = core.access_request(
        "carol", b"c4r0l pass", [(Attr.NAS_IDENTIFIER, "cpe1")], time.monotonic()
    )
    resp = exchange(core, wire, freeradius.auth_port)
    assert resp is not None, freeradius.output()[-2000:]
    assert resp.code == Code.ACCESS_ACCEPT
    assert resp.raw(Attr.MESSAGE_AUTHENTICATOR) is not None  # verified by the core
    assert (resp.integer(Attr.SESSION_TIMEOUT), resp.integer(Attr.IDLE_TIMEOUT)) == (600, 45)
    _, wire = core.access_request("carol", b"wrong", [], time.monotonic())
    resp = exchange(core, wire, freeradius.auth_port)
    assert resp is not None and resp.code == Code.ACCESS_REJECT


def test_our_accounting_against_freeradius(freeradius: FreeRadius) -> None:
    core = ClientCore(SECRET.encode())
    for st in (AcctStatus.START, AcctStatus.INTERIM_UPDATE, AcctStatus.STOP):
        _, wire = core.accounting_request(
            [
                (Attr.ACCT_STATUS_TYPE, int(st)),
                (Attr.ACCT_SESSION_ID, "nf-1"),
                (Attr.USER_NAME, "carol"),
                (Attr.ACCT_SESSION_TIME, 3),
                (Attr.NAS_IDENTIFIER, "cpe1"),
            ],
            time.monotonic(),
        )
        resp = exchange(core, wire, freeradius.acct_port)
        assert resp is not None and resp.code == Code.ACCOUNTING_RESPONSE, st


def test_freeradius_rejects_our_request_with_wrong_secret(freeradius: FreeRadius) -> None:
    core = ClientCore(b"not-the-secret")
    _, wire = core.access_request("carol", b"c4r0l pass", [], time.monotonic())
    assert exchange(core, wire, freeradius.auth_port) is None


# ---------------------------------------------------------------- FreeRADIUS tools -> us


@pytest.fixture
def ours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OurServer]:
    dave = user_row("dave", "d4ve!", session_timeout=900, idle_timeout=30)
    db = radius_db(tmp_path / "r.db", "127.0.0.1", SECRET, [dave])
    with our_server(monkeypatch, db, policy_interval=0.5) as srv:
        srv.listen("127.0.0.1", 0)
        yield srv


def radclient(
    port: int, kind: str, attrs: str, secret: str = SECRET
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["radclient", "-x", "-r", "1", "-t", "1", f"127.0.0.1:{port}", kind, secret],
        input=attrs,
        capture_output=True,
        text=True,
        timeout=20,
    )


def test_radtest_against_our_server(ours: OurServer) -> None:
    r = subprocess.run(
        ["radtest", "dave", "d4ve!", f"127.0.0.1:{ours.port}", "0", SECRET],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert "Received Access-Accept" in r.stdout, r.stdout + r.stderr
    assert "Session-Timeout = 900" in r.stdout and "Idle-Timeout = 30" in r.stdout
    # radclient verifies our Message-Authenticator; it prints it when present.
    assert "Message-Authenticator = 0x" in r.stdout.split("Received", 1)[1]
    r = subprocess.run(
        ["radtest", "dave", "wrong", f"127.0.0.1:{ours.port}", "0", SECRET],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert "Received Access-Reject" in r.stdout, r.stdout + r.stderr


def test_radclient_without_message_authenticator_or_wrong_secret_dropped(ours: OurServer) -> None:
    r = radclient(ours.port, "auth", 'User-Name = "dave", User-Password = "d4ve!"\n')
    assert "Received" not in r.stdout and r.returncode != 0
    r = radclient(
        ours.port,
        "auth",
        'User-Name = "dave", User-Password = "d4ve!", Message-Authenticator = 0x00\n',
        secret="wrong-secret",
    )
    assert "Received" not in r.stdout and r.returncode != 0
    reasons = " ".join(ours.svc.dropped)
    assert "Message-Authenticator missing" in reasons and "does not verify" in reasons
    r = radclient(
        ours.port,
        "auth",
        'User-Name = "dave", User-Password = "d4ve!", Message-Authenticator = 0x00\n',
    )
    assert "Received Access-Accept" in r.stdout, r.stdout + r.stderr


def test_radclient_accounting_against_our_server(ours: OurServer) -> None:
    for status in ("Start", "Interim-Update", "Stop"):
        r = radclient(
            ours.port,
            "acct",
            f'User-Name = "dave", Acct-Status-Type = {status}, '
            'Acct-Session-Id = "s-77", Acct-Session-Time = 12, '
            'Acct-Input-Octets = 1000, NAS-Identifier = "nas-x"\n',
        )
        assert "Received Accounting-Response" in r.stdout, r.stdout + r.stderr
    from netfate.services.firewall.tables import FirewallAccountingRow

    with ours.db.session() as s:
        rows = s.query(FirewallAccountingRow).order_by(FirewallAccountingRow.id).all()
        assert [r.status for r in rows] == ["start", "interim", "stop"]
        assert rows[0].input_octets == 1000
