"""A small OVS rig for the SDN tests and benchmarks (root + Open vSwitch).

Not the testbed (`netfate testbed` builds full edge networks): this is the
least that exercises the controller against real switches, with names the
controller's view uses directly:

    <prefix>-sw     namespace where ovsdb-server's client and ovs-vswitchd live;
                    the controller listens inside it (process.py, --netns)
    <prefix>-<h>    one namespace per host / instance, one veth into -sw
    bridges         one per node, userspace datapath, fail-mode secure, OF1.3,
                    linked by OVS patch ports

Everything carries the prefix; `close()` removes it (daemons by pid file).
Frames from the namespaces have tx checksum offload off: the netdev datapath
otherwise stalls TCP (PLATFORM-NOTES.md).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netfate.host.ovs import OvsDaemon
from netfate.orchestrator.sdn.intents import (
    HostView,
    InstanceView,
    LinkView,
    NetworkView,
    NodeView,
    PortView,
)

TWO_HOMES = """
name: sdn-e2e
transit: 10.255.0.0/24
nodes:
  cpe1: {kind: cpe, lan: 192.168.1.0/24}
  cpe2: {kind: cpe, lan: 192.168.2.0/24}
  pe1:  {kind: pe, lan: 10.10.0.0/24, cpu: 4, memory: 2GiB}
hosts:
  laptop1: {node: cpe1}
  laptop2: {node: cpe2}
links:
  - {a: cpe1, b: pe1}
  - {a: cpe2, b: pe1}
"""
"""Two homes and a provider edge, as a testbed topology (the SDN and front door tests)."""


def sh(*args: str, check: bool = True, timeout: float = 30.0) -> str:
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


@dataclass
class Endpoint:
    name: str
    kind: str  # "host" or "instance"
    node: str
    ofport: int
    mac: str
    ip: str
    netns: str
    veth_sw: str


@dataclass
class Rig:
    prefix: str
    controller_port: int = 6653
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="nfsdn-")))
    nodes: dict[str, int] = field(default_factory=dict)  # node -> dpid
    node_ports: dict[str, list[PortView]] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    links: list[tuple[str, str]] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    _ifindex: int = 0
    _ovs: OvsDaemon | None = None

    @property
    def sw(self) -> str:
        return f"{self.prefix}-sw"

    @property
    def ovs(self) -> OvsDaemon:
        """The rig's own ovsdb-server + ovs-vswitchd (vswitchd in the switch namespace)."""
        if self._ovs is None:
            self._ovs = OvsDaemon(self.work, self.sw)
        return self._ovs

    @property
    def env(self) -> dict[str, str]:
        return self.ovs.env()

    def vsctl(self, *args: str) -> str:
        r = subprocess.run(
            ["ovs-vsctl", f"--db=unix:{self.work}/db.sock", "--timeout=10", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=30,
        )
        if r.returncode != 0:
            raise RuntimeError(f"ovs-vsctl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def ofctl(self, bridge: str, *args: str, check: bool = True) -> str:
        # ovs-ofctl talks to vswitchd's management socket in our run dir.
        r = subprocess.run(
            ["ovs-ofctl", "-O", "OpenFlow13", *args[:1], f"{self.work}/{bridge}.mgmt", *args[1:]],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
        )
        if check and r.returncode != 0:
            raise RuntimeError(f"ovs-ofctl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def start(self) -> None:
        sh("ip", "netns", "add", self.sw)
        self.netns.append(self.sw)
        sh("ip", "-n", self.sw, "link", "set", "lo", "up")
        self.ovs.start()

    def bridge(self, node: str) -> str:
        return f"{self.prefix}b{list(self.nodes).index(node)}"

    def add_node(self, node: str) -> None:
        dpid = len(self.nodes) + 1
        self.nodes[node] = dpid
        self.node_ports[node] = []
        br = self.bridge(node)
        self.vsctl(
            "add-br",
            br,
            "--",
            "set",
            "bridge",
            br,
            "datapath_type=netdev",
            "fail-mode=secure",
            "protocols=OpenFlow13",
            f"other-config:datapath-id={dpid:016x}",
            f"external_ids:netfate-node={node}",
            "--",
            "set-controller",
            br,
            f"tcp:127.0.0.1:{self.controller_port}",
            # Reconnect quickly after a controller restart (default backoff is up to 8 s).
            "--",
            "set",
            "controller",
            br,
            "max_backoff=1000",
        )

    def _ifname(self) -> str:
        self._ifindex += 1
        return f"{self.prefix}i{self._ifindex}"

    def link(self, a: str, b: str) -> None:
        """A patch-port pair between two bridges."""
        pa, pb = self._ifname(), self._ifname()
        for node, mine, peer, other in ((a, pa, pb, b), (b, pb, pa, a)):
            ofport = len(self.node_ports[node]) + 1
            self.vsctl(
                "add-port",
                self.bridge(node),
                mine,
                "--",
                "set",
                "interface",
                mine,
                "type=patch",
                f"options:peer={peer}",
                f"ofport_request={ofport}",
                f"external_ids:netfate-peer=node:{other}",
            )
            self.node_ports[node].append(PortView(name=mine, ofport=ofport, peer=f"node:{other}"))
        self.links.append((a, b))

    def add_endpoint(
        self, name: str, node: str, ip: str, *, kind: str = "host", plen: int = 24
    ) -> Endpoint:
        ns = f"{self.prefix}-{name}"
        sh("ip", "netns", "add", ns)
        self.netns.append(ns)
        inner, outer = self._ifname(), self._ifname()
        sh("ip", "link", "add", inner, "netns", ns, "type", "veth", "peer", outer, "netns", self.sw)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "link", "set", inner, "name", "eth0")
        # IPv4 only: IPv6 autoconfiguration chatter would be the first thing switches see.
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/{plen}", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", self.sw, "link", "set", outer, "up")
        sh("ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off")
        mac = sh("ip", "-n", ns, "-br", "link", "show", "eth0").split()[2]
        ofport = len(self.node_ports[node]) + 1
        self.vsctl(
            "add-port",
            self.bridge(node),
            outer,
            "--",
            "set",
            "interface",
            outer,
            f"ofport_request={ofport}",
            f"external_ids:netfate-peer={kind}:{name}",
        )
        self.node_ports[node].append(PortView(name=outer, ofport=ofport, peer=f"{kind}:{name}"))
        if kind == "instance":
            # A one-armed router: forwards what it is sent, never redirects the sender.
            for key in (
                "net.ipv4.ip_forward=1",
                "net.ipv4.conf.all.send_redirects=0",
                "net.ipv4.conf.eth0.send_redirects=0",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.eth0.rp_filter=0",
            ):
                sh("ip", "netns", "exec", ns, "sysctl", "-qw", key)
        ep = Endpoint(name, kind, node, ofport, mac.lower(), ip, ns, outer)
        self.endpoints[name] = ep
        return ep

    def view(self, *, hide_ports_of: tuple[str, ...] = ()) -> NetworkView:
        """The network view the orchestrator would serve for this rig."""
        hidden = {f"host:{h}" for h in hide_ports_of}
        return NetworkView(
            nodes=[
                NodeView(
                    name=n,
                    dpid=d,
                    ports=[p for p in self.node_ports[n] if p.peer not in hidden],
                )
                for n, d in self.nodes.items()
            ],
            hosts=[
                HostView(name=e.name, mac=e.mac, ip=e.ip, node=e.node)
                for e in self.endpoints.values()
                if e.kind == "host"
            ],
            instances=[
                InstanceView(id=e.name, mac=e.mac, ip=e.ip, node=e.node)
                for e in self.endpoints.values()
                if e.kind == "instance"
            ],
            links=[LinkView(a=a, b=b) for a, b in self.links],
        )

    def exec(self, name: str, *cmd: str, check: bool = True, timeout: float = 30.0) -> str:
        return sh(
            "ip", "netns", "exec", self.endpoints[name].netns, *cmd, check=check, timeout=timeout
        )

    def popen(self, name: str, *cmd: str, **kw: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["ip", "netns", "exec", self.endpoints[name].netns, *cmd], text=True, **kw
        )

    def ping(self, src: str, dst: str, count: int = 1, wait_s: float = 1.0) -> bool:
        r = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.endpoints[src].netns,
                "ping",
                "-n",
                "-q",
                "-c",
                str(count),
                "-W",
                str(wait_s),
                "-i",
                "0.2",
                self.endpoints[dst].ip,
            ],
            capture_output=True,
            timeout=30 + count,
        )
        return r.returncode == 0

    def flows(self, node: str) -> list[str]:
        out = self.ofctl(self.bridge(node), "dump-flows", "--no-stats")
        return [ln.strip() for ln in out.splitlines() if ln.strip() and "OFPST" not in ln]

    def is_connected(self, node: str) -> bool:
        out = self.vsctl("--columns=is_connected", "list", "controller", self.bridge(node))
        # One controller record per bridge in this rig.
        return "true" in out

    def wait_connected(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.is_connected(n) for n in self.nodes):
                return
            time.sleep(0.1)
        status = self.vsctl("--columns=_uuid,target,is_connected,status", "list", "controller")
        raise TimeoutError(f"switches did not connect to the controller: {status}")

    def restart_vswitchd(self) -> None:
        """Stop and start ovs-vswitchd: bridges come back empty of flows."""
        self.ovs.restart_vswitchd()

    def close(self) -> None:
        self.ovs.stop()
        for ns in reversed(self.netns):
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(self.work, ignore_errors=True)


class FakeOrchestrator:
    """Serves /api/v1/sdn/view and collects /api/v1/sdn/events, on 127.0.0.1.

    Stands in for the orchestrator where a test is about the controller alone.
    """

    def __init__(self) -> None:
        import http.server
        import json
        import threading

        from netfate.orchestrator.sdn.intents import Intent, ViewAndIntents

        self.view = NetworkView()
        self.intents: list[Intent] = []
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.version = 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_a: Any) -> None:
                return

            def do_GET(self) -> None:
                # Answers at once: a long poll's `since`/`wait` are ignored (allowed).
                if self.path.partition("?")[0] != "/api/v1/sdn/view":
                    self.send_error(404)
                    return
                with outer.lock:
                    body = ViewAndIntents(
                        view=outer.view, intents=list(outer.intents), version=str(outer.version)
                    ).model_dump_json()
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                ev = json.loads(self.rfile.read(n) or b"{}")
                with outer.lock:
                    outer.events.append(ev)
                self.send_response(204)
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set(self, view: NetworkView | None = None, intents: list[Any] | None = None) -> None:
        with self.lock:
            if view is not None:
                self.view = view
            if intents is not None:
                self.intents = list(intents)
            self.version += 1

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e.get("kind") == kind]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ControllerProcess:
    """`netfate controller` as a child process (its own process, as in production)."""

    def __init__(
        self,
        orchestrator: str,
        port: int,
        netns: str | None,
        log: Path,
        token: str | None = None,
        ofp_tls: tuple[Path, Path, Path] | None = None,
    ) -> None:
        """`token`: the controller's credential, handed over in its environment.
        `ofp_tls`: (cert, key, CA) for OpenFlow over TLS (sdn/tls.py)."""
        import os
        import sys

        self.log = log
        code = (
            "import os, sys; from netfate.orchestrator.sdn.process import run; "
            "from netfate.orchestrator.sdn.tls import server_context; "
            "tls = server_context(*sys.argv[4:7]) if len(sys.argv) > 4 else None; "
            "run(sys.argv[1], sys.argv[2], sys.argv[3] or None, "
            "token=os.environ.get('NETFATE_TOKEN'), ofp_tls=tls)"
        )
        env = dict(os.environ)
        env.pop("NETFATE_TOKEN", None)
        if token:
            env["NETFATE_TOKEN"] = token
        self.fh = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                orchestrator,
                f"127.0.0.1:{port}",
                netns or "",
                *(str(p) for p in ofp_tls or ()),
            ],
            stdout=self.fh,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.fh.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_until(cond: Any, timeout: float = 40.0, what: str = "condition") -> Any:
    """Poll `cond()` until it is truthy; raise AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


class ControlledRig:
    """A rig of given nodes, links and endpoints, served by a stand-in orchestrator,
    its bridges under the controller (a child process); `close()` ends all three.

    `endpoints`: name -> (node, kind); endpoint i (from 0) gets 10.1.0.(i + 1)/24.
    """

    def __init__(
        self,
        prefix: str,
        tmp: Path,
        nodes: list[str],
        links: list[tuple[str, str]],
        endpoints: dict[str, tuple[str, str]],
        port: int = 6653,
    ) -> None:
        self.rig = Rig(prefix, controller_port=port)
        self.orch = FakeOrchestrator()
        self.tmp = tmp
        self.port = port
        self.spec = (nodes, links, endpoints)
        self.ctl: ControllerProcess | None = None

    def build(self) -> None:
        nodes, links, endpoints = self.spec
        self.rig.start()
        for n in nodes:
            self.rig.add_node(n)
        for a, b in links:
            self.rig.link(a, b)
        for i, (name, (node, kind)) in enumerate(endpoints.items()):
            self.rig.add_endpoint(name, node, f"10.1.0.{i + 1}", kind=kind)
        self.orch.set(view=self.rig.view())
        self.ctl = ControllerProcess(self.orch.url, self.port, self.rig.sw, self.tmp / "ctl.log")
        self.rig.wait_connected()

    def groups(self, node: str) -> str:
        """`ovs-ofctl dump-groups` of a node's bridge."""
        return self.rig.ofctl(self.rig.bridge(node), "dump-groups")

    def close(self) -> None:
        try:
            if self.ctl is not None:
                print(self.ctl.output()[-4000:])
                self.ctl.stop()
        finally:
            self.rig.close()
            self.orch.close()
