"""Bounded waits for what a reconcile loop or another process does (no timed
assertions: the caller asserts on the outcome)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def until(cond: Callable[[], T], timeout: float = 10.0) -> T:
    """Poll `cond` until it is truthy or `timeout` passes; its last value."""
    deadline = time.monotonic() + timeout
    while not (got := cond()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return got


async def until_async(cond: Callable[[], T], timeout: float = 10.0) -> T:
    """until() inside a test's event loop: waits without blocking the loop, so what
    it waits for (done by tasks on the same loop) can happen."""
    deadline = time.monotonic() + timeout
    while not (got := cond()) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return got


def share_in(c: Any, sid: int, state: str, timeout: float = 10.0) -> dict[str, Any]:
    """The share (GET /api/v1/sharing/shares/SID) once it is in `state`, or as it is
    when `timeout` passes: the sharing service's loop moves it, nobody's read."""

    def look() -> dict[str, Any]:
        got: dict[str, Any] = c.get(f"/api/v1/sharing/shares/{sid}").json()
        return got

    until(lambda: look()["state"] == state, timeout)
    return look()
