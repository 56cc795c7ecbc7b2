"""Run a request again when its transaction lost a race; answer 503 while the
database cannot be reached. Never a 500 for either.

A handler reads, decides and writes in one transaction. When a concurrent request
wins the race (a unique index refuses the second equal row, PostgreSQL aborts one
of two deadlocked transactions, a re-check under a lock fails: see
store/conflicts.py), the loser's transaction was rolled back and nothing of it was
kept, so the whole request can simply be handled again with its same body: it then
sees the winner's rows and either succeeds or is refused for a reason it can state
(no room, already exists). Only after `conflict_attempts` tries does the client get
409 with the last reason.

A request is never run again once one of its transactions began to commit: a
commit whose answer was lost (the server died) may or may not have been kept, and
that is what the 503 then says, instead of possibly doing it twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from netfate.orchestrator.api.errors import body
from netfate.store.conflicts import ATTEMPT, Attempt, Failure, classify, first_line

log = logging.getLogger("netfate.orchestrator.txretry")


def _unwrap(e: BaseException) -> BaseException:
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return e


class _Body:
    """The request's messages as the app read them, replayed to a re-run first."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.read: list[Message] = []

    def again(self) -> Receive:
        replay = list(self.read)

        async def receive() -> Message:
            if replay:
                return replay.pop(0)
            msg = await self.receive()
            if msg["type"] == "http.request":
                self.read.append(msg)
            return msg

        return receive


class _Sent:
    """`send`, noting whether the response has begun (then it cannot be run again)."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, msg: Message) -> None:
        self.started = True
        await self.send(msg)


class TransactionRetry:
    """ASGI middleware around the whole app (inside Starlette's error middleware)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        conflict_attempts: int = 8,
        unavailable_attempts: int = 3,
        first_delay_s: float = 0.005,
        max_delay_s: float = 0.25,
    ) -> None:
        self.app = app
        self.attempts = {
            Failure.CONFLICT: conflict_attempts,
            Failure.UNAVAILABLE: unavailable_attempts,
        }
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = _Body(receive)
        tries = 0
        while True:
            tries += 1
            attempt = Attempt(tries=tries)
            token = ATTEMPT.set(attempt)
            out = _Sent(send)
            try:
                await self.app(scope, body.again(), out)
                return
            except Exception as exc:
                e = _unwrap(exc)
                failure = classify(e)
                if failure is None or out.started:
                    raise
                answer = self._answer(scope, attempt, failure, e, tries)
                if answer is None:
                    await asyncio.sleep(self._delay(tries))
                    continue
                await answer(scope, receive, send)
                return
            finally:
                ATTEMPT.reset(token)

    def _delay(self, tries: int) -> float:
        # Exponential with jitter: losers of the same race do not collide again.
        base = min(self.max_delay_s, self.first_delay_s * 2.0 ** (tries - 1))
        return base * random.uniform(0.5, 1.5)

    def _answer(
        self, scope: Scope, attempt: Attempt, failure: Failure, e: BaseException, tries: int
    ) -> JSONResponse | None:
        """The response to give now, or None to run the request again."""
        what = f"{scope.get('method', '')} {scope.get('path', '')}"
        reason = first_line(e)
        if attempt.committed:
            log.warning("%s: saved, then %s: %s", what, failure, reason)
            return _json(
                503,
                f"the change was saved, but the answer could not be read ({reason}); "
                "read the result back instead of sending it again",
            )
        if attempt.committing and failure is Failure.UNAVAILABLE:
            log.warning("%s: database lost during commit: %s", what, reason)
            return _json(
                503,
                f"the database went away while this change was being committed ({reason}): "
                "it may or may not have been saved; read it back before sending it again",
            )
        if tries < self.attempts[failure]:
            log.debug("%s: %s on try %d (%s); running it again", what, failure, tries, reason)
            return None
        if failure is Failure.CONFLICT:
            log.warning("%s: still conflicting after %d tries: %s", what, tries, reason)
            return _json(
                409,
                f"this request conflicted with concurrent changes {tries} times "
                f"(last: {reason}); nothing was changed, send it again",
            )
        log.warning("%s: database unavailable: %s", what, reason)
        return _json(503, f"database unavailable ({reason}); try again later", retry_after=1)


def _json(status: int, detail: str, retry_after: int | None = None) -> JSONResponse:
    headers: dict[str, Any] = {"Retry-After": str(retry_after)} if retry_after else {}
    return JSONResponse(status_code=status, content=body(detail), headers=headers)
