"""Headless Chromium for the demos and the browser tests: Debian's (never a downloaded
one), driven by Playwright (a dev dependency), with the flags this machine needs
(PLATFORM-NOTES).

``chromiums(NS, ...)`` runs one browser per namespace (Playwright talks to each over a
pipe, so only its network is the host's)."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
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


def available() -> bool:
    return Path(CHROMIUM).exists()


@contextlib.contextmanager
def chromiums(*netns: str | None) -> Iterator[list[Any]]:
    """One browser per namespace given (None: this one's), closed on exit: two people
    at two hosts at once (one Playwright per thread, so one for them all)."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="netfate-chromium-") as tmp, sync_playwright() as p:
        browsers: list[Any] = []
        try:
            for i, ns in enumerate(netns):
                exe = CHROMIUM
                if ns is not None:
                    exe = os.path.join(tmp, f"chromium-in-netns-{i}")
                    Path(exe).write_text(f'#!/bin/sh\nexec ip netns exec {ns} {CHROMIUM} "$@"\n')
                    os.chmod(exe, stat.S_IRWXU)
                browsers.append(
                    p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
                )
            yield browsers
        finally:
            for b in browsers:
                b.close()
