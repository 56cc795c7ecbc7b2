"""Bounds on what one request or client can take: the request body's size, and
the number of long-polls and event streams open at once.

Each waiter costs little (a future on the event loop, no worker thread), but an
unbounded number of them costs memory, descriptors and, for the view long-poll,
repeated reads. Past the cap the answer is 429 at once, never a queue.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from netfate.orchestrator.api.errors import body as error_body

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
            self._release_slot()

    def _release_slot(self) -> None:
        if self._release is not None:
            self._release()
            self._release = None


class KnownHosts:
    """ASGI middleware: a request whose Host is not one of `hosts` (a page loaded
    from another name that resolves here: DNS rebinding) is refused with 400 and
    the API's error body before any route runs. Starlette's TrustedHostMiddleware
    does the same check but answers in plain text, which no client of this API
    expects."""

    def __init__(self, app: ASGIApp, hosts: tuple[str, ...]) -> None:
        self.app = app
        self.hosts = frozenset(h.lower() for h in hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            given = [v for k, v in scope["headers"] if k == b"host"]
            name = given[0].decode("latin-1").lower() if len(given) == 1 else ""
            # host:port, [v6]:port or a bare name; the port is not part of the check.
            name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
            if name.startswith("[") and "]" in name:
                name = name[1 : name.index("]")]
            if name not in self.hosts:
                answer = JSONResponse(error_body("unknown Host: use this server's own name"), 400)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes is refused with 413 and the
    API's error body, at once when its Content-Length says so, else as soon as the
    bytes read pass the limit (a chunked upload); the route never sees it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _refusal(self) -> HTTPException:
        return HTTPException(413, detail=f"request body larger than {self.limit} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                e = self._refusal()
                await JSONResponse(error_body(str(e.detail)), 413)(scope, receive, send)
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                # Raised where the route reads its body: the app's HTTPException
                # handler answers it (a route that reads no body never sees it).
                raise self._refusal()
            return message

        await self.app(scope, counted, send)
