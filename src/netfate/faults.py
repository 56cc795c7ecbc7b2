"""Fault injection at named points, for the tests of crash windows. Off unless asked.

A test has to kill a process at an exact step (between a migration's freeze and its
release, say) without sleeping and hoping. Code marks such steps with named points:

    await faults.hit("migrate.source.frozen")

and a test arms a point with an action before it drives the process there:

    kill       SIGKILL this process at the point (kill -9 of itself)
    hang       wait at the point until the test disarms it
    drop       the caller closes the connection it serves, without an answer
    blackhole  the caller stops answering on its connections until disarmed:
               requests are read and ignored, as over a cut link

How it is armed, and why it is off in normal runs:

- A process takes part only if it was started with NETFATE_FAULTS=1 in its
  environment and then calls `enable(directory)` with a directory of its own (the
  agent: `<state dir>/faults`). Otherwise every `hit` returns at once on one
  global test; nothing is read.
- Arming is a file: `<directory>/<point>` holding the action. Only who can write
  that local directory (root, the test) can arm a point. Nothing that arrives over
  the network reaches this module: call sites pass constant names.
- `kill`, `drop` and `blackhole` fire once: the file is renamed to `<point>.hit`
  when the point fires (so a restarted process does not fire again). `hang` and
  `blackhole` hold until the test removes `<point>` (disarms it); `hang` writes
  `<point>.hit` when it starts waiting, so the test knows the process got there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
from enum import StrEnum
from pathlib import Path

__all__ = ["ENV", "Action", "arm", "blackholed", "disarm", "enable", "hit", "was_hit"]

log = logging.getLogger("netfate.faults")

ENV = "NETFATE_FAULTS"
POLL_S = 0.02
_POINT = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


class Action(StrEnum):
    KILL = "kill"
    HANG = "hang"
    DROP = "drop"
    BLACKHOLE = "blackhole"


_dir: Path | None = None
_holes: set[str] = set()  # blackholed points, until disarmed


def enable(directory: Path) -> bool:
    """Take part in fault injection if this process was started with NETFATE_FAULTS=1."""
    global _dir
    if os.environ.get(ENV) != "1":
        return False
    directory.mkdir(parents=True, exist_ok=True)
    _dir = directory
    log.warning("fault injection enabled: points armed by files in %s", directory)
    return True


def _armed(point: str) -> Action | None:
    if _dir is None:
        return None
    try:
        text = (_dir / point).read_text().strip()
    except OSError:
        return None
    try:
        return Action(text)
    except ValueError:
        log.error("fault point %s armed with unknown action %r: ignored", point, text)
        return None


def _fired(point: str) -> None:
    if _dir is not None:
        with contextlib.suppress(OSError):
            (_dir / point).rename(_dir / f"{point}.hit")


async def hit(point: str) -> Action | None:
    """Pass a named point. Returns DROP or BLACKHOLE for the caller to act on; kills
    or waits here for KILL and HANG; None when the point is not armed (always, in
    normal runs)."""
    if _dir is None:
        return None
    if not _POINT.match(point):
        raise ValueError(f"bad fault point name {point!r}")
    action = _armed(point)
    if action is None:
        return None
    log.warning("fault point %s: %s", point, action)
    if action is Action.KILL:
        _fired(point)
        os.kill(os.getpid(), signal.SIGKILL)
    if action is Action.HANG:
        (_dir / f"{point}.hit").write_text("hang")
        while _armed(point) is Action.HANG:
            await asyncio.sleep(POLL_S)
        return None
    if action is Action.BLACKHOLE:
        (_dir / f"{point}.hit").write_text("blackhole")
        _holes.add(point)
        return action
    _fired(point)
    return action


def blackholed() -> bool:
    """True while a point that fired `blackhole` is still armed."""
    if not _holes:
        return False
    for point in list(_holes):
        if _armed(point) is not Action.BLACKHOLE:
            _holes.discard(point)
    return bool(_holes)


# ---------------------------------------------------------------- the test's side


def arm(directory: Path, point: str, action: Action) -> None:
    """Arm `point` of the process whose fault directory is `directory`."""
    if not _POINT.match(point):
        raise ValueError(f"bad fault point name {point!r}")
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (directory / f"{point}.hit").unlink()
    tmp = directory / f".{point}.tmp"
    tmp.write_text(action.value)
    tmp.replace(directory / point)


def disarm(directory: Path, point: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (directory / point).unlink()


def was_hit(directory: Path, point: str) -> bool:
    return (directory / f"{point}.hit").exists()
