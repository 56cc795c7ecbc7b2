"""Processes we started, identified safely across crashes.

A pid alone is not an identity: after a crash the pid may belong to someone
else. A `ProcRef` also records the process start time (field 22 of
/proc/PID/stat, clock ticks since boot), which the kernel never reuses for the
same pid, so `clean` only ever signals a process that really is the one we
recorded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ProcRef", "alive", "ref", "start_time", "terminate"]


def start_time(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot, None if it does not exist or is a zombie.

    /proc/PID/stat is `pid (comm) state ppid ... starttime ...`; comm may contain
    spaces and parentheses, so fields are counted after the last ')'.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])  # starttime is field 22 overall, 20th after comm


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [p.decode(errors="replace") for p in f.read().split(b"\0") if p]
    except OSError:
        return []


@dataclass(frozen=True)
class ProcRef:
    pid: int
    start: int
    """Start time in clock ticks since boot (from /proc/PID/stat)."""
    role: str = ""
    """What it is (ovsdb-server, linkemu, agent:cpe1...), for status output."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProcRef:
        return cls(pid=int(d["pid"]), start=int(d["start"]), role=str(d.get("role", "")))


def ref(pid: int, role: str = "") -> ProcRef:
    """Reference a running process; raises ProcessLookupError if it is gone."""
    st = start_time(pid)
    if st is None:
        raise ProcessLookupError(pid)
    return ProcRef(pid=pid, start=st, role=role)


def alive(p: ProcRef) -> bool:
    return start_time(p.pid) == p.start


def cmdline(p: ProcRef) -> list[str]:
    return _cmdline(p.pid) if alive(p) else []


def terminate(p: ProcRef, timeout: float = 5.0, kill_wait: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after `timeout`, only if `p` is still the same process.

    Returns True if the process is gone afterwards. `kill_wait` allows for the
    kernel closing many sockets and taps of a dying process on a busy machine.
    """
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, kill_wait)):
        if not alive(p):
            return True
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(p.pid)
            if not alive(p):
                return True
            time.sleep(0.02)
    return not alive(p)


def _reap(pid: int) -> None:
    # Our own children stay zombies until waited for; others are not ours to wait.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
