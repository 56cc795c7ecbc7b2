"""Wake long-polling agents and event streams when the database changes.

Request handlers that write run in worker threads; they call `notify()` after
their commit, which hands the wake-up to the event loop thread-safely. This is
only a latency optimisation: waiters time out and re-read the database anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

EVENTS = "\x00events"


class Notifier:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self.changes = 0
        """Notifications with events so far: a reconcile loop that stepped while one
        came sees it changed and steps again instead of waiting for the next."""

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def notify(self, keys: Iterable[str], events: bool = True) -> None:
        wake = list(keys) + ([EVENTS] if events else [])
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake(wake)
        else:
            loop.call_soon_threadsafe(self._wake, wake)

    def _wake(self, keys: list[str]) -> None:
        if EVENTS in keys:
            self.changes += 1
        for key in keys:
            for fut in self._waiters.pop(key, set()):
                if not fut.done():
                    fut.set_result(None)

    async def wait(self, key: str, timeout: float) -> bool:
        """Wait for a notification on `key`; True if woken, False on timeout."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, set()).add(fut)
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            s = self._waiters.get(key)
            if s is not None:
                s.discard(fut)
