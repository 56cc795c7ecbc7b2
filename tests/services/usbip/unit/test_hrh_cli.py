"""`netfate usbip certs|serve|serial` with mutual TLS, as processes on 127.0.0.1."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def _netfate(*args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "netfate", "usbip", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,  # type: ignore[call-overload]
    )


def _line(proc: subprocess.Popen[str], pattern: str) -> re.Match[str]:
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if m := re.search(pattern, line):
            return m
    raise AssertionError(f"no {pattern!r} in {seen}")


def test_certs_serve_and_serial_over_tls(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "netfate",
            "usbip",
            "certs",
            str(pki),
            "--server",
            "hrh",
            "--client",
            "isp",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert (pki / "ca.pem").is_file() and (pki / "isp.key").stat().st_mode & 0o077 == 0
    assert not (pki / "ca.key").exists() and (tmp_path / "pki-ca-key" / "ca.key").is_file()

    server = _netfate(
        "serve", "--port", "0", "--period", "0.1", "--tls-dir", str(pki), "--allow", "isp"
    )
    client = None
    try:
        port = _line(server, r"on 127\.0\.0\.1:(\d+)").group(1)
        link = tmp_path / "tty"
        client = _netfate(
            "serial", "127.0.0.1", "--port", port, "--tls-dir", str(pki), "--link", str(link)
        )
        _line(client, r"is " + re.escape(str(link)))
        fd = os.open(link, os.O_RDONLY)
        got = b""
        while got.count(b"temp=") < 2:
            got += os.read(fd, 256)
        os.close(fd)
    finally:
        for p in (client, server):
            if p is not None:
                p.terminate()
                p.wait(10)
    assert re.search(rb"temp=\d+\.\d\d", got)
