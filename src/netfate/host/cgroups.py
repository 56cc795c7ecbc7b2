"""CPU and memory limits for instance processes, where cgroups allow.

Supports the cgroup v2 unified hierarchy and the v1 `cpu` + `memory` controllers
(this kind of machine has v1). Limits are best effort: when the hierarchy is not
writable the instance still runs, and `applied` says so, which the agent reports.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
# A short CFS period: same CPU share, but a throttled function waits at most ~10 ms
# for its next slice instead of ~100 ms (it answers packets and migration calls).
PERIOD_US = 10_000


@dataclass
class Limits:
    group: str
    applied: bool
    detail: str


def _v2() -> bool:
    return (ROOT / "cgroup.controllers").exists()


def _dirs(group: str) -> list[Path]:
    if _v2():
        return [ROOT / "netfate" / group]
    return [ROOT / "cpu" / "netfate" / group, ROOT / "memory" / "netfate" / group]


def enter(group: str, pid: int) -> bool:
    """Put `pid` in a group of its own with no limits yet (a warm standby): moving
    a process between groups is the costly part of `apply` (the kernel waits for an
    RCU grace period), done before the request. False where cgroups are not
    writable (then `apply` does it all, as for a cold start)."""
    try:
        for d in _dirs(group):
            d.mkdir(parents=True, exist_ok=True)
            (d / "cgroup.procs").write_text(str(pid))
    except OSError:
        return False
    return True


def rename(old: str, new: str) -> bool:
    """Give group `old` (entered) the name `new`, with its processes; False if not
    done (then `apply` moves the process)."""
    done: list[tuple[Path, Path]] = []
    try:
        for d, n in zip(_dirs(old), _dirs(new), strict=True):
            d.rename(n)
            done.append((d, n))
    except OSError:
        for d, n in done:  # not half renamed
            with contextlib.suppress(OSError):
                n.rename(d)
        return False
    return True


def apply(group: str, pid: int, cpu: float, memory_mb: int, *, entered: bool = False) -> Limits:
    """The limits, in `group` (made if needed), `pid` moved into it. `entered`: the
    group already holds it (enter, then rename, in advance): no move."""
    quota = max(1000, int(cpu * PERIOD_US))
    mem = memory_mb * 1024 * 1024
    try:
        if _v2():
            d = ROOT / "netfate" / group
            d.mkdir(parents=True, exist_ok=True)
            (d / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            (d / "memory.max").write_text(str(mem))
            if not entered:
                (d / "cgroup.procs").write_text(str(pid))
        else:
            cpu_d = ROOT / "cpu" / "netfate" / group
            mem_d = ROOT / "memory" / "netfate" / group
            cpu_d.mkdir(parents=True, exist_ok=True)
            mem_d.mkdir(parents=True, exist_ok=True)
            (cpu_d / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (cpu_d / "cpu.cfs_quota_us").write_text(str(quota))
            (mem_d / "memory.limit_in_bytes").write_text(str(mem))
            if not entered:
                (cpu_d / "cgroup.procs").write_text(str(pid))
                (mem_d / "cgroup.procs").write_text(str(pid))
    except OSError as e:
        return Limits(group, False, f"limits not enforced: {e.strerror or e}")
    return Limits(group, True, f"cpu {cpu:g} cores, memory {memory_mb} MiB")


def exists(group: str) -> bool:
    return any(d.exists() for d in _dirs(group))


def remove(group: str) -> None:
    for d in _dirs(group):
        with contextlib.suppress(OSError):
            os.rmdir(d)


def remove_prefixed(prefix: str) -> list[str]:
    """Remove every group named `prefix`-… (a testbed run's: its instances' and warm
    standbys' groups, which outlive processes killed at the run's end). Only empty
    groups go (rmdir); returns the names of those that would not."""
    bases = [ROOT / "netfate"] if _v2() else [ROOT / "cpu" / "netfate", ROOT / "memory" / "netfate"]
    busy = []
    for base in bases:
        for d in sorted(base.glob(f"{prefix}-*")):
            if d.is_dir():
                try:
                    os.rmdir(d)
                except OSError:
                    busy.append(d.name)
    return busy
