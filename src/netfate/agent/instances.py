"""Instances on this node: namespace, bridge port, process, limits.

Each instance leaves files in the agent's state directory:

    <id>.json      the spec it was started with and its role (active | standby)
    <id>.config    its configuration, handed to its process (secrets and all)
    <id>.pid       the process id
    <id>.sock      its control socket (see netfate.vnf.runtime)
    <id>.log       its stdout and stderr

so that an agent killed with -9 and started again adopts what still runs instead
of starting duplicates, and removes what is half-built. When an instance goes,
its files go with it except its log, kept for a post-mortem: the logs of the
KEEP_LOGS instances that went last stay, older ones are removed (an agent that
creates and destroys instances all day keeps a bounded directory).

A configuration may hold secrets (a portal's RADIUS secret): the state directory
is 0700, the files that hold one are 0600, and the process gets its configuration
in <id>.config, never on its argument list (readable by anyone in /proc).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netfate.agent.ports import PortSwitch
from netfate.host import cgroups, links, netns
from netfate.host.ovs import Vsctl
from netfate.host.private import write_private
from netfate.model.lifecycle import InstanceRole, check_role_change
from netfate.proto import arp
from netfate.vnf import registry
from netfate.vnf.zygote import PARENT_ENV, process_name

log = logging.getLogger("netfate.agent")

IFNAME = "eth0"  # inside the instance namespace
KEEP_LOGS = 32  # logs of instances that are gone, newest first


class InstanceError(Exception):
    pass


class Zygote:
    """The agent's fork server (netfate.vnf.zygote): instances in milliseconds."""

    def __init__(self, state_dir: Path) -> None:
        self.path = str(state_dir / "zygote.sock")
        self.proc: subprocess.Popen[bytes] | None = None

    def _popen(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        log = open(Path(self.path).with_suffix(".log"), "ab")  # noqa: SIM115 (the child's)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "netfate.vnf.zygote", self.path],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, PARENT_ENV: str(os.getpid())},  # it dies with us
            )
        finally:
            log.close()

    def _up(self) -> bool | None:
        """True: ready; False: it died; None: not yet."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        return True if os.path.exists(self.path) else None

    def start(self, timeout: float = 15.0) -> bool:
        """Start it and wait (call from the main thread: its death signal follows the
        thread that forked it). False if it did not come up; spawning falls back."""
        self._popen()
        deadline = time.monotonic() + timeout
        while (up := self._up()) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return bool(up)

    async def start_async(self, timeout: float = 15.0) -> bool:
        """The same from the event loop (which runs on the main thread)."""
        self._popen()
        deadline = time.monotonic() + timeout
        while (up := self._up()) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return bool(up)

    def usable(self) -> bool:
        return bool(self._up())

    def fork(self, netns_name: str, argv: list[str], log: Path, instance: str) -> int:
        req = {"netns": netns_name, "argv": argv, "log": str(log), "instance": instance}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10.0)
            s.connect(self.path)
            s.sendall(json.dumps(req).encode() + b"\n")
            reply = json.loads(s.makefile("rb").readline() or b"{}")
        if not reply.get("ok"):
            raise InstanceError(f"zygote: {reply.get('error', 'no answer')}")
        return int(reply["pid"])

    def preload(self, function: str) -> None:
        """Import `function` in the fork server now (a pre-deployed image): forks of it,
        warm standbys included, inherit the import."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30.0)
            s.connect(self.path)
            s.sendall(json.dumps({"preload": function}).encode() + b"\n")
            reply = json.loads(s.makefile("rb").readline() or b"{}")
        if not reply.get("ok"):
            raise InstanceError(f"zygote: {reply.get('error', 'no answer')}")

    def stop(self) -> None:
        if self.usable() and self.proc is not None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(3)


@dataclass(frozen=True)
class NodeContext:
    """Where this agent's node lives: identical code for testbed and real hardware."""

    node: str
    prefix: str
    state_dir: Path
    bridge: str
    vsctl: Vsctl
    ovs_netns: str | None = None
    ports: PortSwitch = field(init=False)
    zygote: Zygote | None = None
    offloads: bool = False
    """The switch runs userspace TSO: instance veths keep tx checksum offload and TSO
    on. Without it they must be off or TCP stalls (host/ovs.py)."""
    image_dir: Path = registry.DEFAULT_IMAGE_DIR
    """Storage images an instance may open lie below this directory (--image-dir)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ports", PortSwitch(self.ovs_netns))


def port_name(ctx: NodeContext, key: str) -> str:
    """The bridge port of an instance (or a warm standby) named `key` on this node."""
    h = hashlib.sha1(f"{ctx.node}/{key}".encode()).hexdigest()
    return f"{ctx.prefix}v{h[: 14 - len(ctx.prefix)]}"


def vet(spec: dict[str, Any], image_dir: Path) -> None:
    """ValueError (UnknownFunction, pydantic's ValidationError) when ``spec`` names a
    function the registry does not hold or a configuration its schema refuses."""
    registry.check_config(str(spec.get("function")), spec.get("config") or {}, image_dir)


@dataclass
class Instance:
    spec: dict[str, Any]
    ctx: NodeContext
    role: InstanceRole = InstanceRole.ACTIVE
    pid: int | None = None
    limits: str = ""
    started_at: float = field(default_factory=time.time)
    from_standby: bool = False
    """It took a warm standby of its function instead of a cold start (standbys.py)."""
    port_name: str | None = None
    """Its bridge port when not its own name's: the warm standby's, wired in advance."""
    _garp: socket.socket | None = field(default=None, repr=False)
    _rtnl: socket.socket | None = field(default=None, repr=False)
    """An rtnetlink socket in its namespace, opened by the warm standby it takes
    (attach uses and closes it): no helper thread and setns at the take."""
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    # ---------------------------------------------------------------- names

    @property
    def id(self) -> str:
        return str(self.spec["id"])

    @property
    def netns(self) -> str:
        # The node is part of the name: during a migration between two nodes of one
        # testbed, source and target copies exist side by side on one machine.
        return f"{self.ctx.prefix}-{self.ctx.node}-{self.id}"

    @property
    def port(self) -> str:
        return self.port_name or port_name(self.ctx, self.id)

    def path(self, suffix: str) -> Path:
        return self.ctx.state_dir / f"{self.id}{suffix}"

    @property
    def control(self) -> str:
        return str(self.path(".sock"))

    # ---------------------------------------------------------------- lifecycle

    def build(self) -> None:
        """Namespace, veth into the bridge, addresses, routes.

        The instance side is always up and fully configured. Whether traffic flows
        is decided on the switch side: a standby copy (migration target) has its
        switch-side port down, so it has no carrier, sends nothing (not even ARP
        replies) and receives nothing. Activation is then one netlink operation plus
        a gratuitous ARP, which keeps a migration's downtime to milliseconds.
        """
        c = self.ctx
        self.prepare_netns()
        links.veth_pair(IFNAME, self.netns, self.port, c.ovs_netns, mtu=self.link_mtu)
        links.set_mac(self.netns, IFNAME, str(self.spec["mac"]))
        if not c.offloads:
            links.tx_offload_off(self.netns, IFNAME)
            links.tx_offload_off(c.ovs_netns, self.port)
        if self.spec.get("ip"):
            links.add_address(self.netns, IFNAME, str(self.spec["ip"]))
        links.set_up(self.netns, IFNAME)
        if self.spec.get("gateway"):
            links.add_route(self.netns, "0.0.0.0/0", str(self.spec["gateway"]))
        c.vsctl.add_port(c.bridge, self.port, peer=f"instance:{self.id}")
        self._announcer()  # opened now: creating a packet socket costs a kernel RCU wait
        c.ports.prepare(self.port)  # looked up now, not on a migration's cutover
        if self.role == InstanceRole.ACTIVE:
            self.bring_up()

    def attach(self) -> None:
        """The wiring left to do in a warm standby (standbys.py), whose veth into the
        bridge exists, port down, since before the request, with its sockets open
        (rtnetlink and announcer in its namespace, the switch-side port looked up):
        its address, MAC and route, the port's label in Open vSwitch (one OVSDB
        transaction from this process, no wait for vswitchd: only the database row
        changes), then the port up. Netlink operations: milliseconds."""
        c = self.ctx
        if (mtu := self.link_mtu) is not None:
            links.set_mtu(c.ovs_netns, self.port, mtu)
        sock, self._rtnl = self._rtnl, None
        links.configure(
            self.netns, IFNAME, mac=str(self.spec["mac"]), mtu=mtu,
            cidr=str(self.spec["ip"]) if self.spec.get("ip") else None,
            gateway=str(self.spec["gateway"]) if self.spec.get("gateway") else None,
            sock=sock,
        )  # fmt: skip
        c.vsctl.set_peer(self.port, f"instance:{self.id}")
        self._announcer()
        if not c.ports.prepared(self.port):
            c.ports.prepare(self.port)
        if self.role == InstanceRole.ACTIVE:
            self.bring_up()

    @property
    def link_mtu(self) -> int | None:
        """MTU of both ends of the veth into the bridge when the function's config asks
        for one (`link_mtu`): a tunnel endpoint such as a Virtual Presence carries
        full-size LAN frames plus its encapsulation. Default: the kernel's (1500)."""
        v = (self.spec.get("config") or {}).get("link_mtu")
        return int(v) if isinstance(v, int) and 576 <= v <= 9000 else None

    def prepare_netns(self) -> None:
        """The namespace alone: enough to spawn the process (it binds 0.0.0.0), so the
        agent starts the interpreter first and wires the interfaces while it imports."""
        netns.ensure(self.netns)
        links.set_up(self.netns, "lo")

    def _announcer(self) -> socket.socket:
        if self._garp is None:
            sock = netns.socket_in(self.netns, socket.AF_PACKET, socket.SOCK_RAW, 0)
            sock.bind((IFNAME, 0))  # protocol 0: send only, no receive hook
            self._garp = sock
        return self._garp

    def promote(self) -> None:
        """This standby copy is the instance now (model/lifecycle.py's role table)."""
        check_role_change(self.role, InstanceRole.ACTIVE)
        self.role = InstanceRole.ACTIVE

    def bring_up(self) -> None:
        self.ctx.ports.set(self.port, up=True)
        self.announce()

    async def bring_up_async(self) -> None:
        """Port up and announce, from the event loop (a migration's cutover)."""
        if self._garp is None:  # adopted after a restart: open it off the loop
            await asyncio.to_thread(self._announcer)
        await self.ctx.ports.set_async(self.port, up=True)
        self.announce()  # two frames on a socket opened in build(): microseconds

    async def bring_down_async(self) -> None:
        await self.ctx.ports.set_async(self.port, up=False)

    def announce(self) -> None:
        ip = self.spec.get("ip")
        if ip:
            frame = arp.announcement(str(self.spec["mac"]), str(ip).split("/")[0])
            sock = self._announcer()
            for _ in range(2):
                sock.send(frame)

    def vet(self) -> None:
        """Refuse, before anything is imported or spawned, a function the registry does
        not hold or a configuration its schema refuses (an image outside the image
        directory): the orchestrator's word is not enough (netfate.vnf.registry)."""
        vet(self.spec, self.ctx.image_dir)

    def spawn(self) -> None:
        self.vet()
        args = [
            str(self.spec["function"]),
            "--instance",
            self.id,
            "--control",
            self.control,
            "--config-file",
            str(write_private(self.path(".config"), json.dumps(self.spec.get("config") or {}))),
        ]
        if self.role == InstanceRole.STANDBY:
            args.append("--standby")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.control + ".ready")
        z = self.ctx.zygote
        if z is not None and z.usable():
            # Forked, not our child: alive() checks /proc (name set by the zygote).
            self.pid = z.fork(self.netns, args, self.path(".log"), self.id)
        else:
            logf = open(self.path(".log"), "ab")  # noqa: SIM115 (handed to the child)
            try:
                proc = netns.popen_in(
                    self.netns,
                    [sys.executable, "-m", "netfate.vnf", *args],
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # survives the agent: kill -9 of it loses nothing
                )
            finally:
                logf.close()
            self._proc = proc
            self.pid = proc.pid
        self.path(".pid").write_text(str(self.pid))
        self.save()

    def limit(self, entered_as: str | None = None) -> None:
        """Apply the descriptor's CPU and memory limits. Called once the function is
        ready: interpreter start-up under a 0.1-core quota would take ten times longer.
        `entered_as`: the group the process already sits in without limits (a warm
        standby's, cgroups.enter): renamed to the instance's, so the process is not
        moved."""
        if self.pid is None:
            return
        group = f"{self.ctx.prefix}-{self.ctx.node}-{self.id}"
        entered = entered_as is not None and cgroups.rename(entered_as, group)
        lim = cgroups.apply(
            group,
            self.pid,
            float(self.spec.get("cpu", 0.1)),
            int(self.spec.get("memory_mb", 64)),
            entered=entered,
        )
        if entered_as is not None and not entered:
            cgroups.remove(entered_as)  # not renamed: the process moved out, it is empty
        self.limits = lim.detail
        self.save()

    def save(self) -> None:
        spec = dict(self.spec)
        if isinstance(mig := spec.get("migration"), dict) and "secret" in mig:
            # The migration's secret lives in the migration record (0600) only.
            spec["migration"] = {k: v for k, v in mig.items() if k != "secret"}
        doc = {"spec": spec, "role": self.role, "pid": self.pid, "limits": self.limits}
        if self.from_standby:
            doc |= {"from_standby": True, "port": self.port_name}
        write_private(self.path(".json"), json.dumps(doc))

    async def wait_ready(self, timeout: float = 10.0) -> None:
        ready = Path(self.control + ".ready")
        deadline = time.monotonic() + timeout
        delay = 0.001
        while not ready.exists():
            if not self.alive():
                raise InstanceError(
                    f"process exited at start; see {self.path('.log')}: " + self.tail_log()
                )
            if time.monotonic() > deadline:
                raise InstanceError(f"not ready after {timeout:.0f} s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)

    def tail_log(self, n: int = 400) -> str:
        try:
            data = self.path(".log").read_bytes()[-n:]
        except OSError:
            return ""
        return data.decode(errors="replace").strip().replace("\n", " | ")

    def alive(self) -> bool:
        if self._proc is not None:  # our child: poll() is exact and reaps it
            return self._proc.poll() is None
        if self.pid is None:
            return False
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False
        # An adopted or forked pid may have been reused by something else: check it is
        # ours, by its command line (spawned) or the name the zygote gave it (forked).
        if self.id.encode() not in cmdline:
            try:
                comm = Path(f"/proc/{self.pid}/comm").read_text().strip()
            except OSError:
                return False
            if comm != process_name(self.id):
                return False
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"

    async def call(self, req: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        return await control_call(self.control, req, timeout)

    async def stop(self, timeout: float = 3.0, *, hand_over: bool = False) -> None:
        """Stop the process (politely, then SIGKILL by pid) and remove every trace.

        `hand_over`: the state it just exported lives on in a new process (a restart
        with a new configuration), so the function must not end what that state holds."""
        req: dict[str, Any] = {"op": "stop", "hand_over": True} if hand_over else {"op": "stop"}
        await stop_process(self.control, req, self.alive, lambda: self.pid, timeout)
        # In a thread: removing the port waits for Open vSwitch if it is restarting.
        await asyncio.to_thread(self.teardown)

    def leftovers(self) -> bool:
        """Does anything of an earlier try exist? (Cheap checks; add-port tolerates a
        stale OVSDB record, so only kernel objects matter.)"""
        return netns.exists(self.netns) or links.link_exists(self.ctx.ovs_netns, self.port)

    def teardown(self) -> None:
        c = self.ctx
        for sock in (self._garp, self._rtnl):
            if sock is not None:
                sock.close()
        self._garp = self._rtnl = None
        c.ports.forget(self.port)
        with contextlib.suppress(Exception):
            c.vsctl.del_port(self.port, c.bridge)
        with contextlib.suppress(Exception):
            links.delete_link(c.ovs_netns, self.port)
        with contextlib.suppress(Exception):
            netns.remove(self.netns)
        cgroups.remove(f"{c.prefix}-{c.node}-{self.id}")
        for suffix in (".json", ".config", ".pid", ".sock", ".sock.ready", ".json.tmp"):
            with contextlib.suppress(FileNotFoundError):
                self.path(suffix).unlink()
        prune_logs(c.state_dir)

    def usage(self) -> dict[str, float]:
        """CPU seconds and resident memory of the process, from /proc."""
        if self.pid is None:
            return {}
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            rss_pages = int(Path(f"/proc/{self.pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            return {}
        tick = os.sysconf("SC_CLK_TCK")
        return {
            "cpu_s": (int(fields[11]) + int(fields[12])) / tick,
            "rss_mb": rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20,
        }


async def control_call(path: str, req: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        reader, writer = await asyncio.open_unix_connection(path, limit=64 << 20)
        try:
            writer.write(json.dumps(req).encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
        if not line:
            raise InstanceError(f"control socket {path} closed without an answer")
        resp: dict[str, Any] = json.loads(line)
        if not resp.get("ok"):
            raise InstanceError(f"{req.get('op')}: {resp.get('error')}")
        return resp

    return await asyncio.wait_for(go(), timeout)


async def stop_process(
    control: str,
    req: dict[str, Any],
    alive: Callable[[], bool],
    pid: Callable[[], int | None],
    timeout: float,
) -> None:
    """A function's process stopped: its `stop` op, then SIGKILL by pid after
    `timeout`, waiting (at most 2 s more) until it is gone."""
    if not alive():
        return
    with contextlib.suppress(Exception):
        await control_call(control, req, timeout=1.0)
    deadline = time.monotonic() + timeout
    while alive() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    p = pid()
    if alive() and p is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
        while alive() and time.monotonic() < deadline + 2:
            await asyncio.sleep(0.01)


def prune_logs(state_dir: Path, keep: int = KEEP_LOGS) -> list[str]:
    """Remove the logs of gone instances (no `<id>.json` beside them) but the `keep`
    newest; returns the names removed. A log being started has the newest time."""
    gone: list[tuple[float, Path]] = []
    with contextlib.suppress(OSError):
        for p in state_dir.glob("i-*.log"):
            if not p.with_suffix(".json").exists():
                with contextlib.suppress(OSError):
                    gone.append((p.stat().st_mtime, p))
    gone.sort(reverse=True)
    removed = []
    for _, p in gone[keep:]:
        with contextlib.suppress(OSError):
            p.unlink()
            removed.append(p.name)
    return removed


def adopt_all(ctx: NodeContext) -> dict[str, Instance]:
    """Instances a previous run of this agent left: keep the live ones, clear the rest."""
    found: dict[str, Instance] = {}
    for f in sorted(ctx.state_dir.glob("*.json")):
        try:
            doc = json.loads(f.read_text())
            role = InstanceRole(doc.get("role", InstanceRole.ACTIVE))
            inst = Instance(spec=doc["spec"], ctx=ctx, role=role)
            inst.pid = doc.get("pid")
            inst.limits = doc.get("limits", "")
            inst.port_name = doc.get("port")
            inst.from_standby = bool(doc.get("from_standby", False))
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("ignoring unreadable instance file %s", f)
            continue
        if inst.alive() and netns.exists(inst.netns):
            found[inst.id] = inst
            log.info("adopted instance %s (pid %s)", inst.id, inst.pid)
        else:
            log.info("clearing leftovers of instance %s", inst.id)
            inst.teardown()
    return found
