"""Headless Chromium for browser tests: Debian's (never a downloaded one), driven by
Playwright, with the flags this machine needs (PLATFORM-NOTES).

``chromium(netns=NS)`` runs the browser inside a host's namespace (Playwright talks to
it over a pipe, so only its network is the host's); there it reaches the users' pages
through the run's front door (`Testbed.door_url`, netfate/frontdoor.py)."""

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
