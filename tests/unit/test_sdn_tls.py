"""OpenFlow over TLS, the controller's end (sdn/tls.py), on 127.0.0.1 without os-ken.

A switch with a certificate from the controller's CA gets a session whose bytes
reach the os-ken side intact both ways (larger than one TLS record and one relay
chunk), and its end closing ends the os-ken side's; a certificate from another
CA, a server certificate presented as a switch's, or no certificate gets no session.
"""

from __future__ import annotations

import os
import resource
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from netfate.cli import build
from netfate.host.ovs import Vsctl
from netfate.orchestrator.sdn import tls
from netfate.vnf.pki import CertificateAuthority
from netfate.vnf.tls import TlsFiles

PAYLOAD = os.urandom(300_000)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[TlsFiles, CertificateAuthority]:
    ca = CertificateAuthority(tmp_path_factory.mktemp("ofp") / "pki", name="test OpenFlow CA")
    return ca.issue("controller", usage="server", names=("127.0.0.1",)), ca


def _session(server: TlsFiles, client: TlsFiles | None) -> tuple[Any, socket.socket]:
    """(the os-ken side or None, the switch's socket) for one connection."""
    ctx = tls.server_context(server.cert, server.key, server.ca)
    with socket.create_server(("127.0.0.1", 0)) as lst:
        raw = socket.create_connection(lst.getsockname())
        conn, addr = lst.accept()
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(tls.open_session(conn, addr, ctx)))
    t.start()
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.load_verify_locations(cafile=str(server.ca))
    if client is not None:
        cctx.load_cert_chain(client.cert, client.key)
    raw.settimeout(10.0)
    try:
        sw: socket.socket = cctx.wrap_socket(raw, server_hostname="127.0.0.1")
    except ssl.SSLError:
        sw = raw
    t.join(timeout=20.0)
    return got[0], sw


def _recv_exactly(s: Any, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def test_a_switch_of_the_ca_is_relayed_both_ways(
    pki: tuple[TlsFiles, CertificateAuthority],
) -> None:
    server, ca = pki
    local, sw = _session(server, ca.issue("switch", usage="client"))
    assert local is not None
    local.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as os-ken does
    local.settimeout(10.0)
    sender = threading.Thread(target=sw.sendall, args=(PAYLOAD,))
    sender.start()
    assert _recv_exactly(local, len(PAYLOAD)) == PAYLOAD
    sender.join()
    back = threading.Thread(target=local.sendall, args=(PAYLOAD[::-1],))
    back.start()
    assert _recv_exactly(sw, len(PAYLOAD)) == PAYLOAD[::-1]
    back.join()
    sw.close()
    assert local.recv(10) == b""  # the switch went: os-ken's session ends
    local.close()


def test_one_direction_stalled_does_not_stall_the_other(
    pki: tuple[TlsFiles, CertificateAuthority],
) -> None:
    """os-ken's receive thread can wait on its send queue: while it reads nothing, what
    it sends must still reach the switch (a relay blocked writing towards os-ken would
    hold both directions, and the controller with them)."""
    server, ca = pki
    local, sw = _session(server, ca.issue("switch", usage="client"))
    assert local is not None
    local.settimeout(30.0)
    big = os.urandom(4_000_000)  # far beyond both socket buffers
    up = threading.Thread(target=sw.sendall, args=(big,), daemon=True)
    up.start()
    down = threading.Thread(target=local.sendall, args=(big[::-1],), daemon=True)
    down.start()
    assert _recv_exactly(sw, len(big)) == big[::-1]  # while os-ken reads nothing
    assert _recv_exactly(local, len(big)) == big
    up.join(timeout=30.0)
    down.join(timeout=30.0)
    sw.close()
    local.close()


@pytest.mark.parametrize("who", ["other CA", "server certificate", "no certificate"])
def test_others_get_no_session(
    pki: tuple[TlsFiles, CertificateAuthority], tmp_path: Path, who: str
) -> None:
    server, ca = pki
    client = {
        "other CA": CertificateAuthority(tmp_path / "o").issue("switch", usage="client"),
        "server certificate": ca.issue("not-a-switch", usage="server"),
        "no certificate": None,
    }[who]
    local, sw = _session(server, client)
    assert local is None
    with pytest.raises((ssl.SSLError, ConnectionError)):
        sw.sendall(b"\x04\x00\x00\x08\x00\x00\x00\x01")
        if not sw.recv(8):
            raise ConnectionResetError("closed")
    sw.close()


def test_controller_wants_all_three_tls_files(tmp_path: Path) -> None:
    r = CliRunner().invoke(build(), ["controller", "--ofp-cert", str(tmp_path / "c.pem")])
    assert r.exit_code == 2
    assert "--ofp-cert, --ofp-key and --ofp-ca together" in _text(r.output)
    missing = [str(tmp_path / n) for n in ("c.pem", "c.key", "ca.pem")]
    r = CliRunner().invoke(build(), ["controller", "--ofp-cert", missing[0], "--ofp-key",
                                 missing[1], "--ofp-ca", missing[2]])  # fmt: skip
    assert r.exit_code == 2 and "cannot load the OpenFlow TLS files" in _text(r.output)


def _text(out: str) -> str:
    """The CLI's error without its box and line breaks."""
    return " ".join(out.replace("│", " ").split())


def test_switch_tls_files_must_be_absolute_paths() -> None:
    batch = Vsctl("unix:/nonexistent").batch()
    with pytest.raises(ValueError):
        batch.set_ssl(Path("key.pem"), Path("/a/cert.pem"), Path("/a/ca.pem"))
    batch.set_ssl(Path("/a/key.pem"), Path("/a/cert.pem"), Path("/a/ca.pem"))
    assert batch.commands == [["set-ssl", "/a/key.pem", "/a/cert.pem", "/a/ca.pem"]]


def test_a_secure_testbed_needs_its_own_controller(tmp_path: Path) -> None:
    from netfate.testbed.builder import Testbed
    from netfate.testbed.run import TestbedError

    with pytest.raises(TestbedError, match="needs sdn"):
        Testbed.up(tmp_path / "never-read.yaml", secure=True)


def test_the_relay_works_past_descriptor_1024(
    pki: tuple[TlsFiles, CertificateAuthority],
) -> None:
    """A controller with many switches holds more than 1024 descriptors: the relay's
    sockets are then numbered past select()'s limit (CI's suite process reached it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        test_a_switch_of_the_ca_is_relayed_both_ways(pki)
    finally:
        for fd in held:
            os.close(fd)
