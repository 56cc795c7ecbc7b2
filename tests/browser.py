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

# The pages' own way to call the API: with the web session's cookie and, for a change,
# its CSRF token (the netfate_csrf cookie, readable by the page's origin only).
FETCH = """async ([method, path, body]) => {
  const csrf = (document.cookie.match(/netfate_csrf=([^;]+)/) || [])[1] || "";
  const r = await fetch(path, {method, headers: {"Content-Type": "application/json",
                                                 "X-CSRF-Token": csrf},
                               body: body === null ? undefined : JSON.stringify(body)});
  return [r.status, await r.text()];
}"""


def sign_in(page: Any, name: str, password: str) -> None:
    """The page, on a page of the front door's origin, signs in as `name`: the web
    session's cookies, for the page's own API calls from now on."""
    status = page.evaluate(
        """([name, password]) => fetch("/api/v1/auth/session", {method: "POST",
               headers: {"Content-Type": "application/json"},
               body: JSON.stringify({name, password})}).then((r) => r.status)""",
        [name, password],
    )
    assert status == 200, status


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
    with chromiums(netns) as (browser,):
        yield browser


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


def call(page: Any, method: str, path: str, body: Any = None) -> tuple[int, str]:
    """`method path` from the page, as its scripts call the API: (status, body text)."""
    status, text = page.evaluate(FETCH, [method, path, body])
    return int(status), str(text)
