"""The orchestrator over TLS (--tls-cert/--tls-key), and plain HTTP only on loopback.

A CA made here (vnf/pki.py, with the cryptography library) signs the
orchestrator's certificate for 127.0.0.1; clients trust it through --ca or
NETFATE_CA (clihelp.client_tls), and nothing else. As processes on 127.0.0.1.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer

from netfate.clihelp import CA_ENV, client_tls, is_loopback
from netfate.orchestrator.cli import check_tls
from netfate.vnf.pki import CertificateAuthority
from netfate.vnf.tls import TlsFiles
from orchproc import Orchestrator
from waiting import until


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[TlsFiles, TlsFiles]:
    d = tmp_path_factory.mktemp("pki")
    ours = CertificateAuthority(d / "ours", name="netfate test CA")
    other = CertificateAuthority(d / "other", name="someone else")
    return (
        ours.issue("orchestrator", usage="server", names=("127.0.0.1",)),
        other.issue("orchestrator", usage="server", names=("127.0.0.1",)),
    )


@pytest.fixture(scope="module")
def orch(
    pki: tuple[TlsFiles, TlsFiles], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Orchestrator]:
    files = pki[0]
    o = Orchestrator(
        tmp_path_factory.mktemp("orch"),
        args=("--tls-cert", str(files.cert), "--tls-key", str(files.key)),
        ca=files.ca,
    )
    o.start()
    try:
        yield o
    finally:
        o.stop()


TOKEN = "NETFATE_TOKEN"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netfate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_https_with_the_ca_and_nothing_without_it(
    orch: Orchestrator, pki: tuple[TlsFiles, TlsFiles]
) -> None:
    ours, other = pki
    r = httpx.get(
        f"{orch.base}/api/v1/nodes", verify=client_tls(str(ours.ca)), headers=orch.headers
    )
    assert r.status_code == 200 and r.json()
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{orch.base}/api/v1/nodes", verify=client_tls(str(other.ca)))
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{orch.base}/api/v1/nodes")  # the system's trust: not this CA
    # Plain HTTP to the TLS port gets no answer of the API.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{orch.port}/api/v1/nodes", timeout=5)


def test_the_cli_trusts_netfate_ca(orch: Orchestrator, pki: tuple[TlsFiles, TlsFiles]) -> None:
    ok = _cli("vnf", "list", "--api", orch.base, env={CA_ENV: str(pki[0].ca), TOKEN: orch.token})
    assert ok.returncode == 0, ok.stderr
    refused = _cli("vnf", "list", "--api", orch.base, env={CA_ENV: str(pki[1].ca)})
    assert refused.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    missing = _cli("vnf", "list", "--api", orch.base, env={CA_ENV: "/nonexistent/ca.pem"})
    assert missing.returncode != 0 and "/nonexistent/ca.pem" in missing.stderr


def test_plain_http_is_refused_off_loopback_unless_insecure(tmp_path: Path) -> None:
    # Refused before anything listens: the process exits at once with the reason.
    r = _cli(
        "orchestrator", "--listen", "0.0.0.0:1", "--database-url", f"sqlite:///{tmp_path}/o.db"
    )
    assert r.returncode == 2 and "--insecure" in r.stderr and "--tls-cert" in r.stderr
    assert not (tmp_path / "o.db").exists()
    r = _cli("orchestrator", "--listen", "127.0.0.1:1", "--tls-cert", __file__)
    assert r.returncode == 2 and "--tls-key" in r.stderr
    # The decision itself, without listening anywhere.
    cert, key = Path("c.pem"), Path("k.pem")
    assert check_tls("127.0.0.1:8080", None, None, False) is None
    assert check_tls("[::1]:8080", None, None, False) is None
    assert check_tls("localhost:8080", None, None, False) is None
    assert check_tls("10.1.2.3:8080", None, None, True) is None
    assert check_tls("10.1.2.3:8080", cert, key, False) == (cert, key)
    for host in ("0.0.0.0", "10.1.2.3", "orchestrator.example"):
        with pytest.raises(typer.BadParameter, match="--insecure"):
            check_tls(f"{host}:8080", None, None, False)
    assert is_loopback("127.0.0.2") and not is_loopback("::")


def test_client_tls_is_never_unchecked(
    monkeypatch: pytest.MonkeyPatch, pki: tuple[TlsFiles, TlsFiles]
) -> None:
    monkeypatch.delenv(CA_ENV, raising=False)
    assert client_tls() is True
    monkeypatch.setenv(CA_ENV, str(pki[0].ca))
    ctx = client_tls()
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname
    with pytest.raises(typer.BadParameter, match="nonexistent"):
        client_tls("/nonexistent/ca.pem")


def _agent(orch: Orchestrator, tmp: Path, node: str, *extra: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "netfate", "agent", "--node", node, "--orchestrator", orch.base]
    argv += ["--state-dir", str(tmp / node), "--no-zygote", "--prefix", "nftls", *extra]
    log = (tmp / f"{node}.log").open("w")
    env = {**os.environ, TOKEN: orch.agent_token(node)}  # the node's own credential
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)


def _stop(p: subprocess.Popen[str]) -> None:
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(10)


def test_an_agent_registers_over_tls_with_its_ca_and_advertised_address(
    orch: Orchestrator, pki: tuple[TlsFiles, TlsFiles], tmp_path: Path
) -> None:
    ours, other = pki
    api = httpx.Client(
        base_url=f"{orch.base}/api/v1", verify=client_tls(str(ours.ca)), headers=orch.headers
    )

    def endpoint(node: str) -> str | None:
        found = [n.get("endpoint") for n in api.get("/nodes").json() if n["name"] == node]
        return found[0] if found else None

    good = _agent(orch, tmp_path, "cpe1", "--ca", str(ours.ca), "--advertise", "127.0.0.9")
    wrong = _agent(orch, tmp_path, "cpe2", "--ca", str(other.ca))
    try:
        registered = until(lambda: (endpoint("cpe1") or "").startswith("127.0.0.9:"), 60)
        assert registered, (tmp_path / "cpe1.log").read_text()[-2000:]
        assert until(
            lambda: "CERTIFICATE_VERIFY_FAILED" in (tmp_path / "cpe2.log").read_text(), 60
        ), (tmp_path / "cpe2.log").read_text()[-2000:]
        assert good.poll() is None
        assert not endpoint("cpe2")  # it never reached the orchestrator
    finally:
        _stop(good)
        _stop(wrong)
        api.close()
    log = (tmp_path / "cpe1.log").read_text()
    assert "migrations on 127.0.0.9:" in log, log[-2000:]


def test_agent_flags_are_checked(tmp_path: Path) -> None:
    base = ["agent", "--node", "n", "--orchestrator", "https://127.0.0.1:1"]
    base += ["--state-dir", str(tmp_path / "s")]
    r = _cli(*base, "--listen", "0.0.0.0:0")
    assert r.returncode == 2 and "--advertise" in r.stderr
    for bad in ("a b", "10.0.0.1:7000", ""):
        r = _cli(*base, "--advertise", bad)
        assert r.returncode == 2 and "--advertise" in r.stderr, bad
    r = _cli(*base, "--ca", str(tmp_path / "none.pem"))
    assert r.returncode == 2 and "none.pem" in r.stderr
