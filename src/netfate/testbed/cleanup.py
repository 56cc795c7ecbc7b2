"""Teardown of a run from its state journal: `down`, rollback, and `clean`.

Order: control processes and the link emulator, then OVS, then namespaces
(deleting the switch namespace deletes every veth end in it, and with them
their peers), then leftover interfaces in the root namespace, then the run
directory. Each step goes on when another fails; problems are returned.

What gets removed, and nothing else:
- processes recorded in the journal, only if pid *and* start time match;
- OVS daemons found through the pidfiles of the run's own OVS directory,
  only if their command line names that directory;
- processes whose network namespace is one of the run's namespaces (a VNF
  instance an agent started, a command run with `testbed exec`): they live
  inside the run's own namespaces, nothing else can be in there;
- namespaces named `<prefix>-...` and root-namespace interfaces named
  `<prefix>` + a testbed suffix.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from netfate.host import cgroups, links, netns, proc
from netfate.testbed.state import RunState, StateError, check_prefix, list_runs, run_root

__all__ = ["clean", "processes_in_namespaces", "stale_runs", "teardown"]

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def processes_in_namespaces(names: list[str]) -> list[proc.ProcRef]:
    """Processes whose network namespace is one of `names` (matched by nsfs inode)."""
    inodes: set[tuple[int, int]] = set()
    for name in names:
        try:
            st = os.stat(netns.NETNS_DIR / name)
        except (FileNotFoundError, ValueError):
            continue
        inodes.add((st.st_dev, st.st_ino))
    if not inodes:
        return []
    found: list[proc.ProcRef] = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in inodes:
            start = proc.start_time(int(entry))
            if start is not None:
                found.append(proc.ProcRef(pid=int(entry), start=start, role="in-namespace"))
    return found


def _ovs_from_pidfiles(rundir: Path) -> list[proc.ProcRef]:
    refs = []
    for daemon in ("ovs-vswitchd", "ovsdb-server"):
        try:
            pid = int((rundir / f"{daemon}.pid").read_text().strip())
        except (OSError, ValueError):
            continue
        start = proc.start_time(pid)
        if start is None:
            continue
        ref = proc.ProcRef(pid=pid, start=start, role=daemon)
        if any(str(rundir) in arg for arg in proc.cmdline(ref)):
            refs.append(ref)
    return refs


def _stop_ovs(rundir: Path, recorded: list[proc.ProcRef]) -> list[str]:
    problems = []
    env = dict(os.environ, OVS_RUNDIR=str(rundir))
    refs = {(r.pid, r.start): r for r in recorded + _ovs_from_pidfiles(rundir)}
    for daemon in ("ovs-vswitchd", "ovsdb-server"):
        mine = [r for r in refs.values() if r.role == daemon and proc.alive(r)]
        ctl = rundir / f"{daemon}.ctl"
        if daemon == "ovsdb-server" and mine and ctl.exists():
            # Through our own control socket only: never another run's daemon.
            subprocess.run(
                ["ovs-appctl", "-t", str(ctl), "--timeout=5", "exit"],
                capture_output=True,
                env=env,
                check=False,
            )
            deadline = time.monotonic() + 5.0
            while any(proc.alive(r) for r in mine) and time.monotonic() < deadline:
                time.sleep(0.02)
        # vswitchd: SIGTERM, SIGKILL after 1 s. With 100 bridges `ovs-appctl exit` took
        # over 5 s here and either signal between 10 ms and 6 s; nothing of its clean-up
        # is needed, since its namespace and every port in it are removed next.
        for r in mine:
            if not proc.terminate(r, timeout=1.0):
                problems.append(f"{daemon} (pid {r.pid}) would not exit")
    return problems


_ROOT_IF_RE = r"^{prefix}(b|n|h|l)\d+[abxy]?$"


def teardown(state: RunState, progress: Progress = _quiet) -> list[str]:
    """Remove everything `state` records (and everything else carrying its prefix)."""
    problems: list[str] = []
    prefix = check_prefix(state.prefix)
    state.phase = "stopping"
    try:
        state.owner = proc.ref(os.getpid(), role="teardown").to_dict()
        state.save()
    except OSError:
        pass  # the run directory may be half gone: carry on from memory

    recorded = state.process_refs()
    ovs_roles = ("ovsdb-server", "ovs-vswitchd")
    others = [r for r in recorded if r.role not in ovs_roles]
    if others:
        progress(f"stopping {len(others)} processes")
    # Agents before the orchestrator (recorded after it) so none reports into a dead API.
    for r in reversed(others):
        if not proc.terminate(r, timeout=5.0):
            problems.append(f"{r.role or 'process'} (pid {r.pid}) would not exit")

    namespaces = sorted(set(state.namespaces) | set(netns.list_with_prefix(prefix + "-")))
    stray = processes_in_namespaces(namespaces)
    ovs_pids = {r.pid for r in recorded if r.role in ovs_roles}
    stray = [r for r in stray if r.pid not in ovs_pids]
    if stray:
        progress(f"stopping {len(stray)} processes left inside the run's namespaces")
        for r in stray:
            if not proc.terminate(r, timeout=3.0):
                problems.append(f"process {r.pid} inside the run's namespaces would not exit")

    if state.ovs_rundir:
        progress("stopping Open vSwitch")
        problems += _stop_ovs(Path(state.ovs_rundir), [r for r in recorded if r.role in ovs_roles])

    if namespaces:
        progress(f"removing {len(namespaces)} namespaces")
    for name in namespaces:
        try:
            netns.remove(name)
        except OSError as e:
            problems.append(f"namespace {name}: {e}")

    # Instances' and warm standbys' cgroups: their processes are gone by now (an
    # agent leaves its instances running when it stops; the sweep above ends them).
    busy = cgroups.remove_prefixed(prefix)
    for _ in range(10):  # a killed process leaves its group a moment later
        if not busy:
            break
        time.sleep(0.1)
        busy = cgroups.remove_prefixed(prefix)
    problems += [f"cgroup {name} still holds processes" for name in busy]

    pattern = re.compile(_ROOT_IF_RE.format(prefix=re.escape(prefix)))
    try:
        for ifname in links.list_links(None):
            if pattern.match(ifname):
                links.delete_link(None, ifname)
    except OSError as e:
        problems.append(f"root namespace interfaces: {e}")

    if problems:
        state.phase = "failed"
        with contextlib.suppress(OSError):
            state.save()
    else:
        shutil.rmtree(state.dir, ignore_errors=True)
    return problems


def stale_runs() -> list[str]:
    """Runs whose builder or teardown died half-way (journal says so, owner is gone)."""
    stale = []
    for prefix in list_runs():
        try:
            st = RunState.load(prefix)
        except StateError:
            stale.append(prefix)
            continue
        if st.phase in ("building", "stopping", "failed"):
            owner = proc.ProcRef.from_dict(st.owner) if st.owner else None
            if owner is None or not proc.alive(owner):
                stale.append(prefix)
    return stale


def clean(prefix: str, progress: Progress = _quiet) -> list[str]:
    """Remove whatever a run with `prefix` left, with or without its journal."""
    check_prefix(prefix)
    try:
        state = RunState.load(prefix)
    except StateError:
        state = RunState(prefix=prefix)
        rundir = run_root() / prefix / "ovs"
        if rundir.exists():
            state.ovs_rundir = str(rundir)
        if not state.dir.exists():
            state.dir.mkdir(parents=True, exist_ok=True)
    return teardown(state, progress)
