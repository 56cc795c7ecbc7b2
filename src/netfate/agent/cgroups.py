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


def apply(group: str, pid: int, cpu: float, memory_mb: int) -> Limits:
    quota = max(1000, int(cpu * PERIOD_US))
    mem = memory_mb * 1024 * 1024
    try:
        if _v2():
            d = ROOT / "netfate" / group
            d.mkdir(parents=True, exist_ok=True)
            (d / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            (d / "memory.max").write_text(str(mem))
            (d / "cgroup.procs").write_text(str(pid))
        else:
            cpu_d = ROOT / "cpu" / "netfate" / group
            mem_d = ROOT / "memory" / "netfate" / group
            cpu_d.mkdir(parents=True, exist_ok=True)
            mem_d.mkdir(parents=True, exist_ok=True)
            (cpu_d / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (cpu_d / "cpu.cfs_quota_us").write_text(str(quota))
            (mem_d / "memory.limit_in_bytes").write_text(str(mem))
            (cpu_d / "cgroup.procs").write_text(str(pid))
            (mem_d / "cgroup.procs").write_text(str(pid))
    except OSError as e:
        return Limits(group, False, f"limits not enforced: {e.strerror or e}")
    return Limits(group, True, f"cpu {cpu:g} cores, memory {memory_mb} MiB")


def remove(group: str) -> None:
    dirs = (
        [ROOT / "netfate" / group]
        if _v2()
        else [ROOT / "cpu" / "netfate" / group, ROOT / "memory" / "netfate" / group]
    )
    for d in dirs:
        with contextlib.suppress(OSError):
            os.rmdir(d)
