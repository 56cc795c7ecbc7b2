"""Caps on what a client can hold open: long-polls and event streams.

Each waiter costs little (a future on the event loop, no worker thread), but an
unbounded number of them costs memory, descriptors and, for the view long-poll,
repeated reads. Past the cap the answer is 429 at once, never a queue.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

RETRY_AFTER_S = 1


class Slots:
    """At most `limit` holders at once; one more is refused (429). Used from the
    event loop's thread only, so a plain counter is enough."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self.used = 0

    def acquire(self) -> None:
        if self.used >= self.limit:
            raise HTTPException(
                429,
                detail=f"too many {self.what} open (at most {self.limit}); try again later",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        self.used += 1

    def release(self) -> None:
        self.used -= 1

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


def long_polls(request: Request) -> Slots:
    slots: Slots = request.app.state.long_polls
    return slots


def event_streams(request: Request) -> Slots:
    slots: Slots = request.app.state.event_streams
    return slots


def poll_wait(request: Request, wait: float) -> float:
    """The wait a long-poll asked for, cut to the app's bound (Settings.long_poll_max_s)."""
    bound = request.app.state.settings.long_poll_max_s
    return wait if bound is None else min(wait, bound)


class EventStream(StreamingResponse):
    """Server-sent events holding one of `slots` from the route until the stream ends,
    however it ends (client gone, server stopping)."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[str], slots: Slots, **kw: Any) -> None:
        super().__init__(content, **kw)
        slots.acquire()
        self._release: Callable[[], None] | None = slots.release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.close()

    def close(self) -> None:
        if self._release is not None:
            self._release()
            self._release = None
