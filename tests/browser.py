"""Headless Chromium for browser tests: Debian's (never a downloaded one), driven by
Playwright, with the flags this machine needs (PLATFORM-NOTES).

``chromium(netns=NS)`` runs the browser inside a host's namespace (Playwright talks to
it over a pipe, so only its network is the host's); there it reaches the users' pages
through the run's front door (`Testbed.door_url`, netfate/frontdoor.py)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netfate.demo.browser import CHROMIUM, CHROMIUM_ARGS, available, chromiums

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "FETCH",
    "PageSession",
    "available",
    "call",
    "chromium",
    "chromiums",
    "require_chromium",
    "sign_in",
]


def require_chromium() -> None:
    """At a browser test module's top: without Debian's Chromium the module fails when
    every tier must run (NETFATE_ALL_TIERS=1, as in CI), and is skipped otherwise."""
    if Path(CHROMIUM).exists():
        return
    why = f"{CHROMIUM} is missing (apt-get install chromium)"
    if os.environ.get("NETFATE_ALL_TIERS") == "1":
        pytest.fail(why, pytrace=False)
    pytest.skip(why, allow_module_level=True)


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


@contextlib.contextmanager
def chromium(netns: str | None = None) -> Iterator[Any]:
    """A launched headless browser (playwright's Browser), closed on exit; inside
    namespace ``netns`` when given."""
    with chromiums(netns) as (browser,):
        yield browser


def call(page: Any, method: str, path: str, body: Any = None) -> tuple[int, str]:
    """`method path` from the page, as its scripts call the API: (status, body text)."""
    status, text = page.evaluate(FETCH, [method, path, body])
    return int(status), str(text)


class PageSession:
    """A browser context on one page, signed in through the sign-in form; records the
    URLs its page asked for, and what went wrong (console errors, page errors and every
    response of 400 or more) for a test to assert empty."""

    def __init__(self, browser: Any, base: str, *, timeout_ms: int, password: str,
                 viewport: tuple[int, int] = (1440, 1000)) -> None:  # fmt: skip
        self.base = base
        self.password = password
        self.ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        self.page = self.ctx.new_page()
        self.page.set_default_timeout(timeout_ms)
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on(
            "response",
            lambda r: r.status >= 400 and self.errors.append(f"{r.status} {r.url}"),
        )

    def sign_in(self, name: str, password: str | None = None) -> None:
        """On the sign-in page (already open): fill the form, send it."""
        self.page.fill("#signin-name", name)
        self.page.fill("#signin-password", self.password if password is None else password)
        self.page.click("#signin-submit")

    def open_signed_in(self, path: str, name: str, password: str | None = None) -> Any:
        """Open `path` without a session: sent to /signin, sign in, back at `path`."""
        self.page.goto(self.base + path)
        assert self.page.url.startswith(f"{self.base}/signin?next="), self.page.url
        self.sign_in(name, password)
        self.page.wait_for_url(self.base + path)
        return self.page

    def api_calls(self) -> set[str]:
        """The API paths the page asked for (no query)."""
        prefix = f"{self.base}/api/v1"
        return {u[len(prefix) :].split("?")[0] for u in self.requests if u.startswith(prefix)}

    def close(self) -> None:
        self.ctx.close()
