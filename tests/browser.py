"""Headless Chromium for browser tests: Debian's (never a downloaded one), driven by
Playwright, with the flags this machine needs (PLATFORM-NOTES).

``chromium(netns=NS)`` runs the browser inside a host's namespace (Playwright talks to
it over a pipe, so only its network is the host's); ``front_door(NS, url)`` stands in
for the identity issue's front door until it exists: the orchestrator's pages reached
from inside that namespace at 127.0.0.1 (a listening socket opened in the namespace,
each connection relayed to the orchestrator by this process; nothing is routed)."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
MAX_RELAYED = 256
"""Connections the front door relays at once (a page's few, bounded)."""


def available() -> bool:
    return Path(CHROMIUM).exists()


@contextlib.contextmanager
def chromium(netns: str | None = None) -> Iterator[Any]:
    """A launched headless browser (playwright's Browser), closed on exit; inside
    namespace ``netns`` when given."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="netfate-chromium-") as tmp:
        exe = CHROMIUM
        if netns is not None:
            exe = os.path.join(tmp, "chromium-in-netns")
            Path(exe).write_text(f'#!/bin/sh\nexec ip netns exec {netns} {CHROMIUM} "$@"\n')
            os.chmod(exe, stat.S_IRWXU)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
            try:
                yield browser
            finally:
                browser.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def front_door(netns: str, url: str, port: int = 8000) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` inside ``netns``, relayed to the orchestrator at ``url``."""
    from netfate.host import netns as ns

    target = urllib.parse.urlsplit(url)
    addr = (target.hostname or "127.0.0.1", target.port or 80)
    lst = ns.socket_in(netns, socket.AF_INET, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", port))
    lst.listen(64)
    slots = threading.BoundedSemaphore(MAX_RELAYED)
    open_socks: list[socket.socket] = []

    def relay(client: socket.socket) -> None:
        try:
            with client, socket.create_connection(addr, timeout=10) as up:
                up.settimeout(None)
                open_socks.extend((client, up))
                t = threading.Thread(target=_pump, args=(up, client), daemon=True)
                t.start()
                _pump(client, up)
                t.join(timeout=60)
        except OSError:
            pass
        finally:
            slots.release()

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = lst.accept()
                if not slots.acquire(timeout=10):
                    client.close()
                    continue
                threading.Thread(target=relay, args=(client,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(OSError):
            lst.shutdown(socket.SHUT_RDWR)  # wakes the accept
        lst.close()
        for s in open_socks:
            with contextlib.suppress(OSError):
                s.close()
