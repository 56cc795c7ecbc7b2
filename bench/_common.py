"""Helpers shared by the benchmarks (not a benchmark itself: the name starts with _).

Pure parts (percentiles, summaries, ratios) are unit-tested; the rest starts and
stops what a benchmark needs (a throwaway PostgreSQL server, child processes),
always by the pid it started, never by name.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from netfate.host.ports import free_port

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


def extract(ref: str, into: Path) -> Path:
    """The `src` tree of git `ref` of this repository (a baseline to run side by side:
    put it first on PYTHONPATH)."""
    import io
    import tarfile

    tar = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "src"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        if hasattr(tarfile, "data_filter"):
            t.extractall(into, filter="data")
        else:  # a Python before 3.11.4 (a fresh Debian 12 root has one); our own archive
            t.extractall(into)
    return into / "src"


def load_sibling(name: str) -> ModuleType:
    """Import bench/NAME.py by path (bench/ is not a package; benchcli loads files)."""
    key = f"netfate_bench_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, BENCH_DIR / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load bench/{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[key] = mod
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return float(xs[lo])
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


def summary(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """n, median, p95, p99, min, max, mean of `values` (None figures when empty)."""
    if not values:
        return {"n": 0, "median": None, "p95": None, "p99": None, "min": None, "max": None}
    return {
        "n": len(values),
        "median": round(percentile(values, 50), digits),
        "p95": round(percentile(values, 95), digits),
        "p99": round(percentile(values, 99), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "mean": round(sum(values) / len(values), digits),
    }


def ratio(ours: float | None, baseline: float | None, digits: int = 3) -> float | None:
    """ours / baseline, None when either is missing or the baseline is zero."""
    if ours is None or baseline is None or baseline == 0:
        return None
    return round(ours / baseline, digits)


# --------------------------------------------------------------------------- processes


def stop_process(p: subprocess.Popen[Any] | None, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL: only the process we started (by its Popen, i.e. its pid)."""
    if p is None or p.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        p.terminate()
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            p.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(2.0)


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwinds like Ctrl-C so every `finally` cleans up."""


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def need_root(what: str) -> None:
    if os.geteuid() != 0:
        raise SystemExit(f"{what} needs root")


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL server binary {name} not found (apt install postgresql)")
    return found[-1]


@contextlib.contextmanager
def postgres_server(max_connections: int = 200) -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 (as tests/pgserver.py): initdb in a
    temp dir, run as the `postgres` user when we are root, stopped and removed after.
    Yields a URL of its `postgres` database."""
    base = tempfile.mkdtemp(prefix="nft-bench-pg-")
    data = os.path.join(base, "data")
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    started = False
    try:
        subprocess.run(
            [*as_user, _pg_bin("initdb"), "-D", data, "-A", "trust", "-U", "netfate", "--no-sync"],
            check=True,
            capture_output=True,
        )
        log = f"{base}/log"
        opts = (
            f"-k {base} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c max_connections={max_connections}"
        )
        subprocess.run(
            [*as_user, _pg_bin("pg_ctl"), "-D", data, "-o", opts, "-l", log, "-w", "start"],
            check=True,
            capture_output=True,
        )
        started = True
        yield f"postgresql://netfate@127.0.0.1:{port}/postgres"
    finally:
        if started:
            # pg_ctl stops the server of *this* data directory (its postmaster.pid).
            subprocess.run(
                [*as_user, _pg_bin("pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(base, ignore_errors=True)


def wait_until(pred: Any, timeout: float, interval: float = 0.01, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met after {timeout:.0f} s")
        time.sleep(interval)


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    """A process's resident memory (or `field`, e.g. VmHWM, its peak) in KiB; 0 if gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids
