"""What the netns tests built on one L2 segment share: the segment itself (a Linux
bridge in namespace PREFIX-br joining one namespace per host through a veth whose
inside end is eth0), a VNF started as the platform starts it, and cleanup.

    build_lan("nft1a2b", [("cli", ["10.77.0.10/24"], [("default", "10.77.0.3")]), ...])

    PREFIX-br   br0 ── PREFIXcli ═ veth ═ eth0 in PREFIX-cli  (addresses, routes)
                   └── PREFIXsrv ═ veth ═ eth0 in PREFIX-srv  ...
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from netfate.host import netns
from netfate.host.private import write_private

# name, addresses (CIDR) on its eth0, routes (destination, via)
Host = tuple[str, Sequence[str], Sequence[tuple[str, str]]]


def sh(ns: str, *argv: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    return netns.run_in(ns, list(argv), check=check, **kw)


def until(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll (bounded) for something another process does; the caller asserts."""
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)
    return cond()


def build_lan(
    prefix: str,
    hosts: Iterable[Host],
    *,
    macs: Mapping[str, str] | None = None,
    down: Collection[str] = (),
) -> None:
    """The bridge namespace and one namespace per host. `macs`: eth0's MAC by host;
    `down`: hosts whose bridge port stays down (e.g. a migration's standby place)."""
    br = f"{prefix}-br"
    netns.ensure(br)
    sh(br, "ip", "link", "add", "br0", "type", "bridge")
    sh(br, "ip", "link", "set", "br0", "up")
    for name, addrs, routes in hosts:
        ns, port = f"{prefix}-{name}", f"{prefix}{name}"
        netns.ensure(ns)
        sh(ns, "ip", "link", "set", "lo", "up")
        sh(br, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh(br, "ip", "link", "set", port, "master", "br0")
        if macs and name in macs:
            sh(ns, "ip", "link", "set", "eth0", "address", macs[name])
        for a in addrs:
            sh(ns, "ip", "addr", "add", a, "dev", "eth0")
        sh(ns, "ip", "link", "set", "eth0", "up")
        for dst, via in routes:
            sh(ns, "ip", "route", "add", dst, "via", via)
        if name not in down:
            sh(br, "ip", "link", "set", port, "up")


def remove_lan(prefix: str, names: Iterable[str]) -> None:
    for name in (*names, "br"):
        netns.remove(f"{prefix}-{name}")


def start_vnf(
    ns: str,
    function: str,
    instance: str,
    control: str,
    config: Mapping[str, Any],
    log_path: Path,
    extra: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """`python -m netfate.vnf FUNCTION` inside `ns`, as the agent runs it; returns once
    its control socket is ready (AssertionError with its log if it exits first)."""
    # The configuration in a 0600 file, as the agent hands it (its secrets stay off
    # the argument list, which tests/services/*/netns check).
    config_file = write_private(Path(control + ".config"), json.dumps(config))
    argv = [sys.executable, "-m", "netfate.vnf", function, "--instance", instance,
            "--control", control, "--config-file", str(config_file), *extra]  # fmt: skip
    with open(log_path, "wb") as log:
        p = netns.popen_in(ns, argv, stdout=log, stderr=log)
    if not until(lambda: Path(control + ".ready").exists() or p.poll() is not None):
        p.kill()
        p.wait()
        raise AssertionError(f"{function} not ready: " + log_path.read_text())
    if p.poll() is not None:
        raise AssertionError(log_path.read_text())
    return p


def stop_procs(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """Terminate the processes a test started (they are its own, by PID), then kill
    any still there after 5 s."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
