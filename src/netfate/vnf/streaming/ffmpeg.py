"""ffmpeg children of the streaming functions, supervised.

ffmpeg does what a function should not reimplement: SRT and RTMP termination,
HLS segmenting, transcoding. Each child is started by its function, dies with it
(PR_SET_PDEATHSIG: an instance killed outright leaves no ffmpeg behind), is
stopped by its pid only, and is restarted after an unexpected exit with a
growing back-off (reported through ``on_exit``); a restarting child that exits
with status 0 (an SRT or RTMP listener whose publisher disconnected) is started
again at once, ready for the publisher's next connection, and so is one whose
session its function cut (``expect_exit``: a publisher the acquirer refused). A
child fed on stdin gets TS payloads through a bounded pipe backlog: when ffmpeg
falls behind by more than ``max_backlog`` bytes, payloads are dropped and counted
rather than queued without bound (a live stream cannot wait). With ``preroll_s``,
what is fed while the process is not running yet (it is being spawned, or
restarted) is held, its last ``preroll_s`` seconds and at most ``max_backlog``
bytes, and written once it runs: a segmenter starting on a live stream then
begins at the key frame that just passed instead of waiting a whole GOP for the
next one.

A child given `secrets` (an SRT passphrase) never has them on its argument list
(its caller puts them in a file: see acquirer.py), and its stderr lines, kept for
the function's stats and logs, show them as HIDDEN (ffmpeg quotes the URL it could
not open).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from netfate.model.secrets import HIDDEN

log = logging.getLogger("netfate.vnf.streaming")

PR_SET_PDEATHSIG = 1
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0
STABLE_AFTER = 10.0
"""A child that ran this long before exiting restarts without back-off."""
STDERR_LINES = 8

FFMPEG = "ffmpeg"
BASE = (FFMPEG, "-hide_banner", "-loglevel", "warning", "-nostats")


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class FfmpegChild:
    """One supervised ffmpeg process (argv without the leading ``ffmpeg``)."""

    def __init__(
        self,
        role: str,
        args: Sequence[str] | Callable[[], Sequence[str]],
        *,
        stdin: bool = False,
        on_exit: Callable[[FfmpegChild, int | None, str], None] | None = None,
        restart: bool = True,
        max_backlog: int = 4 << 20,
        cwd: Path | None = None,
        secrets: Sequence[str] = (),
        on_line: Callable[[str], None] | None = None,
        preroll_s: float = 0.0,
    ) -> None:
        self.role = role
        self.secrets = [x for x in secrets if x]
        self.on_line = on_line
        """Each stderr line (secrets hidden): what ffmpeg's libraries said, e.g. an SRT
        caller rejected for its passphrase."""
        self.args = args
        """The arguments after ffmpeg's own, or a function giving them at each start."""
        self.use_stdin = stdin
        self.on_exit = on_exit
        self.restart = restart
        self.max_backlog = max_backlog
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.exits: int = 0
        """Unexpected exits (non-zero status, or zero when not restarting)."""
        self.sessions = 0
        """Clean exits of a restarting child (a listener whose peer ended)."""
        self.last_returncode: int | None = None
        self.fed = 0
        self.dropped = 0
        self.stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._stopping = False
        self._expected = False
        self._task: asyncio.Task[None] | None = None
        self._started_at = 0.0
        self.preroll_s = preroll_s
        self._held: deque[tuple[float, bytes]] = deque()
        self._held_bytes = 0

    @property
    def argv(self) -> list[str]:
        # A fed child reads its input on stdin (-nostdin would close it).
        args = self.args() if callable(self.args) else self.args
        return [*BASE, *(() if self.use_stdin else ("-nostdin",)), *args]

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.returncode is None else None

    def start(self) -> None:
        """Start supervising (the first start happens in the background task)."""
        self._stopping = False
        self._task = asyncio.create_task(self._supervise(), name=f"ffmpeg {self.role}")

    async def _spawn(self) -> asyncio.subprocess.Process:
        self.starts += 1
        self._started_at = time.monotonic()
        return await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE if self.use_stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            cwd=self.cwd,
            preexec_fn=_die_with_parent,
        )

    async def _supervise(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._stopping:
            try:
                self.proc = await self._spawn()
            except OSError as e:
                self._exited(None, f"cannot start ffmpeg: {e}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            self._write_held()
            if self.proc.stderr is not None:
                await asyncio.gather(self.proc.wait(), self._read_stderr(self.proc.stderr))
            rc = await self.proc.wait()
            if self._stopping:
                return
            if self._expected and self.restart:
                # Its caller cut the session (a refused publisher): no failure, and
                # ready for the next publisher at once.
                self._expected = False
                self.sessions += 1
                backoff = BACKOFF_FIRST
                continue
            if rc == 0 and self.restart and time.monotonic() - self._started_at > 1.0:
                # A listener whose peer finished: ready for the next one at once.
                self.sessions += 1
                backoff = BACKOFF_FIRST
                continue
            self._exited(rc, self.stderr[-1] if self.stderr else "")
            if not self.restart:
                return
            if time.monotonic() - self._started_at > STABLE_AFTER:
                backoff = BACKOFF_FIRST
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def expect_exit(self) -> None:
        """The child's next exit is its caller's doing (a session it cut): restarted at
        once, not reported as a failure."""
        self._expected = True

    def _exited(self, rc: int | None, detail: str) -> None:
        self.exits += 1
        self.last_returncode = rc
        if self.on_exit is not None:
            self.on_exit(self, rc, detail)

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await stream.readline()
            except (ValueError, asyncio.LimitOverrunError):
                continue  # an over-long line: skip it
            if not line:
                return
            text = line.decode("utf-8", "replace").strip()
            for secret in self.secrets:
                text = text.replace(secret, HIDDEN)
            if text:
                self.stderr.append(text[:300])
                if self.on_line is not None:
                    self.on_line(text)

    def hold(self, data: bytes, at: float) -> None:
        """Keep ``data`` (arrived at monotonic ``at``) for the process's start: the
        last ``preroll_s`` seconds, at most ``max_backlog`` bytes."""
        self._held.append((at, data))
        self._held_bytes += len(data)
        while self._held and (
            at - self._held[0][0] > self.preroll_s or self._held_bytes > self.max_backlog
        ):
            self._held_bytes -= len(self._held.popleft()[1])

    def _write_held(self) -> None:
        held, self._held, self._held_bytes = self._held, deque(), 0
        for _, data in held:
            self.feed(data)

    def feed(self, data: bytes) -> None:
        """Write TS bytes to the child's stdin, or count them dropped (or hold them
        for its start, with ``preroll_s``)."""
        proc = self.proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            if self.preroll_s > 0 and not self._stopping:
                self.hold(data, time.monotonic())
            else:
                self.dropped += len(data)
            return
        transport = proc.stdin.transport
        if transport.is_closing() or transport.get_write_buffer_size() > self.max_backlog:
            self.dropped += len(data)
            return
        proc.stdin.write(data)
        self.fed += len(data)

    async def stop(self, grace: float = 5.0) -> None:
        """End the child: EOF on stdin (ffmpeg finishes its files), else SIGTERM
        (ffmpeg also finalises on it), SIGKILL after `grace` seconds."""
        self._stopping = True
        self._held, self._held_bytes = deque(), 0
        proc = self.proc
        if proc is not None and proc.returncode is None:
            if proc.stdin is not None:
                with contextlib.suppress(OSError, RuntimeError):
                    proc.stdin.close()
            else:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), grace)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "pid": self.pid,
            "starts": self.starts,
            "exits": self.exits,
            "sessions": self.sessions,
            "last_returncode": self.last_returncode,
        }
        if self.use_stdin:
            out.update(fed_octets=self.fed, dropped_octets=self.dropped)
        if self.stderr:
            out["stderr"] = self.stderr[-1]
        return out
