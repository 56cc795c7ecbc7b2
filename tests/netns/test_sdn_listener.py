"""The controller's listening socket lives in the namespace it was opened in (setns)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from netfate.orchestrator.sdn.process import open_listener, parse_listen


@pytest.fixture
def ns(run_prefix: str) -> Iterator[str]:
    name = f"{run_prefix}-sw"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _connect_from(ns: str, port: int) -> bool:
    code = (
        "import socket,sys\n"
        "try:\n"
        f" socket.create_connection(('127.0.0.1', {port}), timeout=2).close(); sys.exit(0)\n"
        "except OSError: sys.exit(1)\n"
    )
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], timeout=20)
    return r.returncode == 0


def test_listener_is_inside_the_namespace_only(ns: str) -> None:
    mine = f"/proc/self/task/{threading.get_native_id()}/ns/net"
    before = os.readlink(mine)
    s = open_listener("127.0.0.1", 0, ns)
    try:
        port = s.getsockname()[1]
        assert _connect_from(ns, port)
        # Not in the root namespace: nothing listens on that port here.
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        # This thread never changed namespace (the helper thread did, and ended).
        assert os.readlink(mine) == before
    finally:
        s.close()


def test_unknown_namespace_is_an_error() -> None:
    with pytest.raises(OSError):
        open_listener("127.0.0.1", 0, "nft-no-such-ns")


def test_listen_address_parsing() -> None:
    assert parse_listen("127.0.0.1:6653") == ("127.0.0.1", 6653)
    for bad in ("6653", "127.0.0.1:", ":6653", "127.0.0.1:x", "h:70000"):
        with pytest.raises(ValueError):
            parse_listen(bad)
