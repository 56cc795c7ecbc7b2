"""The TLS HRH functions as processes (the VNF runtime) in two namespaces, and a drop
made by the network, not by either end (issue 6 item 5).

HRH namespace: ``TlsUsbipHost``; ISP namespace: ``TlsSerialImporter`` with its
pty linked in tmp_path; ``cat`` of the link reads temperatures.  Then an
nftables rule in the HRH namespace resets every USB/IP connection and refuses
new ones (the path is gone): the importer fails over to retrying on its own; when
the rule goes, it re-imports and the same pty carries readings again.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netfate.host import links, netns
from netfate.vnf.pki import CertificateAuthority

HRH_IP, ISP_IP = "10.93.1.1", "10.93.1.2"


def _vnf(
    ns: str, fn: str, ctl: Path, config: dict[str, object], log: Path
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "netfate.vnf", fn, "--instance", ctl.stem]
    argv += ["--control", str(ctl), "--config", json.dumps(config)]
    return netns.popen_in(ns, argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _wait(what: str, cond: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.05)


def _readings(link: Path, want: int, timeout: float = 20.0) -> list[bytes]:
    """Open the pty anew (as `cat` would) and read ``want`` temperature lines."""
    fd = os.open(link, os.O_RDONLY | os.O_NONBLOCK)
    got, buf = [], b""
    deadline = time.monotonic() + timeout
    try:
        while len(got) < want:
            left = deadline - time.monotonic()
            assert left > 0, f"only {got} from {link}"
            if select.select([fd], [], [], left)[0]:
                buf += os.read(fd, 4096)
                *lines, buf = buf.split(b"\n")
                got += [ln.strip() for ln in lines if ln.startswith(b"temp=")]
    finally:
        os.close(fd)
    return got


@pytest.fixture
def nets(run_prefix: str) -> Iterator[tuple[str, str]]:
    hrh, isp = f"{run_prefix}-hrh", f"{run_prefix}-isp"
    try:
        for n in (hrh, isp):
            netns.ensure(n)
            links.set_up(n, "lo")
        links.veth_pair("eth0", hrh, "eth0", isp)
        links.add_address(hrh, "eth0", f"{HRH_IP}/24")
        links.add_address(isp, "eth0", f"{ISP_IP}/24")
        links.set_up(hrh, "eth0")
        links.set_up(isp, "eth0")
        yield hrh, isp
    finally:
        for n in (hrh, isp):
            netns.remove(n)


def test_importer_survives_a_network_reset_and_reimports(
    nets: tuple[str, str], tmp_path: Path
) -> None:
    hrh_ns, isp_ns = nets
    ca = CertificateAuthority(tmp_path / "pki")
    hrh_files = ca.issue("hrh-1", usage="server", names=(HRH_IP,))
    isp_files = ca.issue("isp-climate", usage="client")
    link = tmp_path / "ttyHRH"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            _vnf(
                hrh_ns,
                "netfate.vnf.usbip_host.tls:TlsUsbipHost",
                tmp_path / "hrh.ctl",
                {
                    "devices": [{"kind": "serial", "busid": "1-1", "period": 0.1}],
                    "allow": {"1-1": ["isp-climate"]},
                    "tls": hrh_files.to_config(),
                },
                tmp_path / "hrh.log",
            )
        )
        _wait("HRH ready", lambda: Path(f"{tmp_path / 'hrh.ctl'}.ready").exists())
        procs.append(
            _vnf(
                isp_ns,
                "netfate.vnf.usbip_client.tls:TlsSerialImporter",
                tmp_path / "isp.ctl",
                {
                    "server": HRH_IP,
                    "busid": "1-1",
                    "server_name": "hrh-1",
                    "link": str(link),
                    "tls": isp_files.to_config(),
                    "retry_seconds": 0.2,
                },
                tmp_path / "isp.log",
            )
        )
        _wait("pty link", link.exists)
        pty = os.path.realpath(link)
        assert len(_readings(link, 2)) == 2

        # The path breaks: established USB/IP connections get a reset, new ones too.
        rules = {
            "nftables": [
                {"table": {"family": "inet", "name": "cut"}},
                {
                    "chain": {
                        "family": "inet",
                        "table": "cut",
                        "name": "in",
                        "type": "filter",
                        "hook": "input",
                        "prio": 0,
                        "policy": "accept",
                    }
                },
                {
                    "rule": {
                        "family": "inet",
                        "table": "cut",
                        "chain": "in",
                        "expr": [
                            {
                                "match": {
                                    "op": "==",
                                    "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                                    "right": 3240,
                                }
                            },
                            {"reject": {"type": "tcp reset"}},
                        ],
                    }
                },
            ]
        }
        netns.run_in(hrh_ns, ["nft", "-j", "-f", "-"], input=json.dumps(rules))
        # The HRH answers nothing now; the importer notices at its next read.
        _wait(
            "the importer to see the drop",
            lambda: "re-importing" in (tmp_path / "isp.log").read_text(errors="replace"),
        )
        netns.run_in(hrh_ns, ["nft", "delete", "table", "inet", "cut"])
        assert len(_readings(link, 2)) == 2  # re-imported by itself
        assert os.path.realpath(link) == pty  # and the same pty goes on
        status = netns.run_in(
            isp_ns,
            [sys.executable, "-c", STATUS, str(tmp_path / "isp.ctl")],
        ).stdout
        assert json.loads(status)["stats"]["reconnects"] >= 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()  # ours, by pid
                p.wait(10)


STATUS = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b'{"op": "status"}\n'); print(s.makefile().readline())
"""
