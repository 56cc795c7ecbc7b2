"""OpenFlow over TLS (issue 12, section 3): `testbed up --sdn --secure`.

The run's own CA signs the controller's certificate and the switches'; vswitchd
connects to an `ssl:` target and the controller accepts only a switch whose
certificate that CA signed. On the secure testbed: every bridge is connected over
ssl, the fabric and a steering intent work (flows installed over TLS, traffic
through a forwarder), and a would-be switch that speaks plain TCP, or shows a
certificate from another CA, gets no OpenFlow at all, while one with the run's
certificate does (so the refusals are the CA's doing, not a dead listener). Last,
vswitchd itself is given another CA's certificate: every bridge is refused, and
let in again once it has the run's back.
"""

from __future__ import annotations

import json
import socket
import ssl
import stat
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from netfate.demo import sdn as sdn_demo
from netfate.host import netns
from netfate.host.ovs import Vsctl
from netfate.testbed import openflow_pki
from netfate.testbed.builder import Testbed
from netfate.testbed.run import SDN_PORT
from netfate.vnf.pki import CertificateAuthority, key_directory
from netfate.vnf.tls import TlsFiles
from testbed_procs import until, up_testbed

OFPT_HELLO_13 = struct.pack("!BBHI", 4, 0, 8, 1)


@pytest.fixture(scope="module")
def tb() -> Iterator[Testbed]:
    with up_testbed("demo", sdn=True, secure=True, prometheus=False) as bed:
        yield bed


def controllers(tb: Testbed) -> list[tuple[str, bool]]:
    assert tb.ovs_db
    out = Vsctl(tb.ovs_db).run([["--columns=target,is_connected", "list", "controller"]],
                               fmt="json")  # fmt: skip
    return [(str(t), bool(c)) for t, c in json.loads(out)["data"]]


def first_reply(tb: Testbed, tls: TlsFiles | None) -> bytes:
    """Connect to the controller from the switch namespace as a switch would (over TLS
    with `tls`'s certificate, else plain TCP), say HELLO; the first bytes answered
    (b"" when the controller closed the connection or the handshake failed)."""
    raw = netns.socket_in(tb.names.sw, socket.AF_INET, socket.SOCK_STREAM)
    raw.settimeout(10.0)
    try:
        raw.connect(("127.0.0.1", SDN_PORT))
        sock: socket.socket = raw
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.load_verify_locations(cafile=str(openflow_pki.files(tb.state.dir).switch.ca))
            ctx.load_cert_chain(tls.cert, tls.key)
            sock = ctx.wrap_socket(raw)
        sock.sendall(OFPT_HELLO_13)
        return sock.recv(8)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return b""
    finally:
        raw.close()


def test_every_bridge_is_connected_over_ssl(tb: Testbed) -> None:
    assert tb.state.secure and tb.state.controller == f"ssl:127.0.0.1:{SDN_PORT}"
    status = subprocess.run(
        [sys.executable, "-m", "netfate", "testbed", "status", "--prefix", tb.prefix, "--json"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert json.loads(status.stdout)[0]["openflow_tls"] is True, status.stdout
    until(
        "every bridge connected over ssl",
        lambda: (
            len(got := controllers(tb)) == len(tb.state.nodes)
            and all(t == f"ssl:127.0.0.1:{SDN_PORT}" and c for t, c in got)
        ),
        timeout=60.0,
    )


def test_flows_installed_over_tls_steer_traffic(tb: Testbed) -> None:
    said: list[str] = []
    sdn_demo.check(tb, said.append)
    assert any("crossed the forwarder" in s for s in said), said
    assert all(c for _, c in controllers(tb))  # still over ssl, all along


def test_keys_are_private_and_the_ca_key_apart(tb: Testbed) -> None:
    pki = openflow_pki.files(tb.state.dir)
    leaves = openflow_pki.directory(tb.state.dir)
    for files in (pki.controller, pki.switch):
        assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
        assert files.key.parent == leaves
    assert not (leaves / "ca.key").exists()
    key_dir = key_directory(leaves)
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((key_dir / "ca.key").stat().st_mode) == 0o600


def test_only_a_switch_with_the_runs_certificate_gets_openflow(tb: Testbed, tmp_path: Path) -> None:
    ours = first_reply(tb, openflow_pki.files(tb.state.dir).switch)
    assert ours[:2] == b"\x04\x00", ours  # the controller's OpenFlow 1.3 HELLO
    other = CertificateAuthority(tmp_path / "other", name="another CA")
    assert first_reply(tb, other.issue("switches", usage="client")) == b""
    assert first_reply(tb, None) == b""  # plain TCP
    # The controller closes before it writes its log line: wait for the line.
    logf = tb.state.dir / "logs" / "controller.log"
    until(
        "both refusals logged",
        lambda: logf.read_text().count("refused: TLS handshake failed") >= 2,
        timeout=10.0,
    )
    # The refusals took nothing from the real switches.
    assert all(c for _, c in controllers(tb))


def test_the_real_switch_with_another_cas_certificate_is_refused(
    tb: Testbed, tmp_path: Path
) -> None:
    """vswitchd itself, given a certificate from another CA (it still trusts the run's
    CA for the controller), connects again and is refused; given its own back, it is
    let in again. Last in the module: it takes the switches off for a while."""
    assert tb.ovs_db
    vs = Vsctl(tb.ovs_db)
    ours = openflow_pki.files(tb.state.dir).switch
    other = CertificateAuthority(tmp_path / "other", name="another CA").issue(
        "switches", usage="client"
    )
    log = tb.state.dir / "logs" / "controller.log"
    refused_before = log.read_text().count("refused: TLS handshake failed")
    bridges = [tb.bridge_of(n) for n in tb.state.nodes]

    def reconnect(files: TlsFiles) -> None:
        batch = vs.batch().set_ssl(files.key, files.cert, ours.ca)
        for br in bridges:  # new sessions, with the new certificate
            batch.add("del-controller", br)
        batch.commit()
        batch = vs.batch()
        for br in bridges:
            batch.add("set-controller", br, f"ssl:127.0.0.1:{SDN_PORT}")
        batch.commit()

    try:
        reconnect(other)
        until(
            "every bridge refused",
            lambda: (
                log.read_text().count("refused: TLS handshake failed")
                >= refused_before + len(bridges)
            ),
            timeout=60.0,
        )
        assert not any(c for _, c in controllers(tb)), controllers(tb)
    finally:
        reconnect(ours)
    until("every bridge let in again", lambda: all(c for _, c in controllers(tb)), timeout=60.0)
