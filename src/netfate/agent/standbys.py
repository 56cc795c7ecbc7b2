"""Warm standbys: function processes started in advance, idle, waiting to be taken.

The orchestrator's pre-deploy policy (orchestrator/engine/predeploy.py) tells each
agent, in its desired state, which function images to keep (`images`) and how many
warm standbys of which function (`standbys`). The agent keeps them:

- an image is imported into the fork server (Zygote.preload), so every fork of it,
  standby or cold start, skips that import;
- a standby is a namespace of its own, a veth into the bridge with both ends down
  (no carrier: it sends and receives nothing), and a process forked into it that
  has imported its function and waits on its control socket (`python -m
  netfate.vnf FUNCTION --pool`, runtime.wait_taken): no configuration, no address,
  no user.

A create of that function here takes one (Supervisor.start_from): the standby's
namespace is renamed to the instance's (netns.rename: the same namespace, under
the name every part of the platform finds an instance's by), its port becomes the
instance's (`Instance.port_name`),
the port gets the instance's MAC, address and label and comes up
(`Instance.attach`), and the process gets its configuration by the `take` op and
starts serving. What a cold start spends on a namespace, a fork, the function's
import and the bridge port (an ovs-vsctl that waits for vswitchd) is spent before
the request instead. The pool is then refilled in the background, REFILL_DELAY_S
after the take, so the refill does not compete with the take it replaces nor with
what follows it.

Files, in the agent's state directory, per standby `sb-` + 8 hex digits:

    sb-….pool          {"function", "pid", "netns"}: what to clean after a crash
    sb-….sock, .ready  its control socket, and the mark that it waits
    sb-….log           its output (renamed to the instance's log when taken)

Standbys are the agent's own: it stops them when it stops, and one that starts
again removes what a killed run left (a standby holds nothing worth adopting).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from netfate.agent.instances import (
    IFNAME,
    InstanceError,
    NodeContext,
    port_name,
    stop_process,
)
from netfate.host import cgroups, links, netns
from netfate.host.private import write_private
from netfate.vnf import registry
from netfate.vnf.zygote import process_name

log = logging.getLogger("netfate.agent")

REFILL_BACKOFF_S = 2.0  # after a standby failed to start: not a busy loop
REFILL_DELAY_S = 2.0
"""A take's refill waits this long: a new standby (namespace, veth, bridge port,
fork) competes for the CPU with what follows the take (a migration's state
transfer and cut-over), and its new port makes the controller compile the
node's flows again, which delays the steering toward the instance just taken."""


class Standby:
    """One warm standby: a namespace and an idle process of `function`."""

    def __init__(self, ctx: NodeContext, function: str, sid: str | None = None) -> None:
        self.ctx = ctx
        self.function = function
        self.id = sid or f"sb-{secrets.token_hex(4)}"
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.cgroup: str | None = None
        """Its cgroup (cgroups.enter), which the instance taking it renames."""
        self.rtnl: socket.socket | None = None
        """An rtnetlink socket in its namespace, for the take's addresses."""
        self.garp: socket.socket | None = None
        """The announcer (a packet socket on its interface), for the take's ARP."""

    @property
    def netns(self) -> str:
        return f"{self.ctx.prefix}-{self.ctx.node}-{self.id}"

    @property
    def port(self) -> str:
        return port_name(self.ctx, self.id)

    def path(self, suffix: str) -> Path:
        return self.ctx.state_dir / f"{self.id}{suffix}"

    @property
    def control(self) -> str:
        return str(self.path(".sock"))

    def spawn(self) -> None:
        """Namespace, veth into the bridge (both ends down: no carrier, no traffic),
        and the process (forked by the zygote when it runs)."""
        registry.resolve(self.function)  # a name the registry does not hold: nothing made
        c = self.ctx
        # Written first: a standby that fails half-way is cleaned by its record.
        write_private(self.path(".pool"), json.dumps({"function": self.function}))
        netns.ensure(self.netns)
        links.set_up(self.netns, "lo")
        links.veth_pair(IFNAME, self.netns, self.port, c.ovs_netns)
        if not c.offloads:
            links.tx_offload_off(self.netns, IFNAME)
            links.tx_offload_off(c.ovs_netns, self.port)
        c.vsctl.add_port(c.bridge, self.port, peer=f"instance:{self.id}")
        # What the take would otherwise open: sockets in the namespace (each a helper
        # thread and a setns; a packet socket's creation waits for the kernel's RCU)
        # and the switch-side port's index. They stay valid across the rename.
        self.rtnl = links.rtnl_socket(self.netns)
        garp = netns.socket_in(self.netns, socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.garp = garp
        garp.bind((IFNAME, 0))  # protocol 0: send only, no receive hook
        c.ports.prepare(self.port)
        args = [self.function, "--instance", self.id, "--control", self.control, "--pool"]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.control + ".ready")
        z = self.ctx.zygote
        if z is not None and z.usable():
            self.pid = z.fork(self.netns, args, self.path(".log"), self.id)
        else:
            logf = open(self.path(".log"), "ab")  # noqa: SIM115 (handed to the child)
            try:
                self._proc = netns.popen_in(
                    self.netns,
                    [sys.executable, "-m", "netfate.vnf", *args],
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            finally:
                logf.close()
            self.pid = self._proc.pid
        doc = {"function": self.function, "pid": self.pid, "netns": self.netns}
        write_private(self.path(".pool"), json.dumps(doc))

    def enter_group(self) -> None:
        """A cgroup of its own, no limits yet, once it is ready: the take renames it
        and sets them, with no process to move. Entered after its imports, as a cold
        start is moved once ready: what it charged so far stays where it was."""
        if self.pid is not None and cgroups.enter(self.netns, self.pid):
            self.cgroup = self.netns

    async def wait_ready(self, timeout: float = 15.0) -> None:
        ready = Path(self.control + ".ready")
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if not self.alive():
                raise InstanceError(f"standby {self.id} exited at start")
            if time.monotonic() > deadline:
                raise InstanceError(f"standby {self.id} not ready after {timeout:.0f} s")
            await asyncio.sleep(0.01)

    def alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self.pid is not None and _ours(self.pid, self.id)

    async def stop(self) -> None:
        """Politely, then SIGKILL by pid; then its namespace and files."""
        await stop_process(self.control, {"op": "stop"}, self.alive, lambda: self.pid, 2.0)
        await asyncio.to_thread(self.teardown)

    def sockets(self) -> tuple[socket.socket | None, socket.socket | None]:
        """Its rtnetlink and announcer sockets, handed to the instance that takes it."""
        out, self.rtnl, self.garp = (self.rtnl, self.garp), None, None
        return out

    def teardown(self) -> None:
        c = self.ctx
        for sock in self.sockets():
            if sock is not None:
                sock.close()
        c.ports.forget(self.port)
        with contextlib.suppress(Exception):
            c.vsctl.del_port(self.port, c.bridge)
        with contextlib.suppress(Exception):
            links.delete_link(c.ovs_netns, self.port)
        with contextlib.suppress(Exception):
            netns.remove(self.netns)
        # Empty once its process is gone (renamed if taken): a process that is still
        # exiting keeps it busy for a moment, and a group left behind is never removed.
        deadline = time.monotonic() + 2.0
        cgroups.remove(self.netns)
        while cgroups.exists(self.netns) and time.monotonic() < deadline:
            time.sleep(0.02)
            cgroups.remove(self.netns)
        for suffix in (".pool", ".sock", ".sock.ready", ".log"):
            with contextlib.suppress(FileNotFoundError):
                self.path(suffix).unlink()

    def handed_over(self) -> None:
        """Taken: its namespace and process are an instance's now; only its record goes."""
        with contextlib.suppress(FileNotFoundError):
            self.path(".pool").unlink()


def _ours(pid: int, sid: str) -> bool:
    """Is `pid` still this standby (not a reused pid, not a zombie)?"""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if comm != process_name(sid) and sid.encode() not in cmdline:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Pool:
    """The warm standbys of this node, kept at the size the orchestrator's plan says."""

    def __init__(self, ctx: NodeContext, changed: asyncio.Event) -> None:
        self.ctx = ctx
        self.changed = changed
        self.images: list[str] = []
        self.want: dict[str, int] = {}
        self.ready: dict[str, list[Standby]] = {}
        self.preloaded: set[str] = set()
        self.wake = asyncio.Event()
        self.taken = 0
        """Standbys taken by creates since the agent started (a figure)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self.last_take = -1e9

    # ---------------------------------------------------------------- the plan

    def plan(self, part: Mapping[str, Any] | None) -> None:
        """The desired state's `predeploy` part (None: nothing pre-deployed here)."""
        part = part or {}
        images = [str(f) for f in part.get("images") or []]
        raw = part.get("standbys") or {}
        want = {str(f): int(n) for f, n in raw.items() if int(n) > 0 and str(f) in images}
        if images != self.images or want != self.want:
            self.images, self.want = images, want
            self.wake.set()

    def counts(self) -> dict[str, int]:
        """Standbys ready, per function."""
        return {fn: len(sbs) for fn, sbs in self.ready.items() if sbs}

    def will_take(self, functions: list[str]) -> bool:
        """Would starts of `functions` (one each) all find a ready standby here?"""
        need: dict[str, int] = {}
        for fn in functions:
            need[fn] = need.get(fn, 0) + 1
        return all(len(self.ready.get(fn) or []) >= n for fn, n in need.items())

    def take(self, function: str) -> Standby | None:
        """A ready standby of `function`, out of the pool, or None (cold start)."""
        sbs = self.ready.get(function) or []
        while sbs:
            sb = sbs.pop(0)
            if sb.alive():
                self.taken += 1
                self.last_take = time.monotonic()
                return sb
            self._later(sb.stop())  # died while idle: cleaned, and the refill replaces it
        return None

    def refill(self, delay: float = REFILL_DELAY_S) -> None:
        """Bring the pool back to its size, `delay` seconds from now (from the loop)."""
        if delay <= 0:
            self.wake.set()
            return

        async def later() -> None:
            await asyncio.sleep(delay)
            self.wake.set()

        self._later(later())

    # ---------------------------------------------------------------- the loop

    async def loop(self, every_s: float = 5.0) -> None:
        """Keep the pool at its planned size, forever: at once when the plan changes,
        REFILL_DELAY_S after a take, and every `every_s` (a dead standby replaced)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), every_s)
            self.wake.clear()
            if time.monotonic() - self.last_take < REFILL_DELAY_S:
                continue  # a periodic round right after a take: the refill waits
            try:
                if await self.converge():
                    self.changed.set()
            except Exception as e:  # one failed round must not end the pool
                log.warning("warm standbys: %s", e)
                await asyncio.sleep(REFILL_BACKOFF_S)

    async def converge(self) -> bool:
        """One round: images preloaded, dead standbys replaced, the count right.
        True if the pool changed."""
        changed = False
        z = self.ctx.zygote
        for fn in self.images:
            if fn not in self.preloaded and z is not None and z.usable():
                await asyncio.to_thread(z.preload, fn)
                self.preloaded.add(fn)
        for fn in list(self.ready):
            keep = []
            for sb in self.ready[fn]:
                if sb.alive():
                    keep.append(sb)
                else:
                    changed = True
                    await sb.stop()
            extra = keep[self.want.get(fn, 0) :]
            self.ready[fn] = keep[: self.want.get(fn, 0)]
            for sb in extra:
                changed = True
                await sb.stop()
        for fn, n in self.want.items():
            while len(self.ready.setdefault(fn, [])) < n and self.want.get(fn, 0) >= n:
                sb = Standby(self.ctx, fn)
                try:
                    await asyncio.to_thread(sb.spawn)
                    await sb.wait_ready()
                    await asyncio.to_thread(sb.enter_group)
                except Exception as e:
                    log.warning("warm standby of %s did not start: %s", fn, e)
                    await sb.stop()
                    await asyncio.sleep(REFILL_BACKOFF_S)
                    break
                self.ready[fn].append(sb)
                changed = True
                log.info("warm standby %s of %s ready (pid %s)", sb.id, fn, sb.pid)
        return changed

    async def close(self) -> None:
        """Stop every standby (the agent stops), and one whose start the stop cut
        short (its record says what to remove)."""
        for sbs in self.ready.values():
            for sb in sbs:
                await sb.stop()
        self.ready.clear()
        await asyncio.to_thread(self.clear_leftovers)

    def clear_leftovers(self) -> list[str]:
        """Remove what a killed run left: processes, namespaces, files. Returns their ids."""
        gone = []
        for f in sorted(self.ctx.state_dir.glob("sb-*.pool")):
            sid = f.name.removesuffix(".pool")
            try:
                doc = json.loads(f.read_text())
                pid = int(doc.get("pid") or 0)
            except (OSError, ValueError, TypeError):
                pid = 0
            if pid and _ours(pid, sid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 2.0  # gone before its cgroup is removed
                while _ours(pid, sid) and time.monotonic() < deadline:
                    time.sleep(0.01)
            Standby(self.ctx, "", sid).teardown()
            gone.append(sid)
        return gone

    def _later(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
