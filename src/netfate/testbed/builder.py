"""Build an emulated edge network from a `Topology`, and take it down again.

Layout (docs/CONTRACTS.md), for run prefix P:

    namespace P-sw      ovsdb-server + ovs-vswitchd (userspace datapath), link emulator
                        bridge Pb<i> per node i (dpid i+1), and the switch-side veth ends:
                          Pn<i>      node i's own namespace          peer local:<node>
                          Ph<j>      host j                          peer host:<host>
                          Pl<k>a/b   link k, on the bridges of a / b peer node:<other end>
                          Pl<k>x/y   link k's emulator ends (userspace delay/loss only)
    namespace P-<node>  eth0: transit address + .1 of each LAN, ip_forward on,
                        routes to every other node's LANs via that node's transit address
    namespace P-<host>  eth0: its address, default route via its LAN's .1
    namespace P-door    (with control) eth0: the front door's address (the transit network's last),
                        a veth to the first node's namespace (`door` there, proxy ARP),
                        which routes it; every other node routes it via that node

All bridges form one L2 network (NORMAL learning in standalone mode, RSTP
when the node graph has loops; or a controller in secure mode); the node
namespaces route between LANs over it. A link is a veth pair between two
bridges, shaped with TBF at both ends; delay/loss come from netem when the
kernel has it, otherwise the link becomes two veth pairs with the userspace
emulator (`linkemu_driver`) between their inner ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from pyroute2 import IPRoute

from netfate.host import links, netns, proc, tc
from netfate.host.ovs import OvsDaemon, Vsctl
from netfate.host.private import read_private
from netfate.model.topology import HostSpec, NodeSpec, Topology, TopologyError
from netfate.testbed.run import (
    SDN_PORT,
    Interrupted,
    Names,
    Progress,
    TestbedError,
    check_interrupted,
    quiet,
    shielded,
    sigterm_raises,
)
from netfate.testbed.state import RunState, StateError, check_prefix, new_prefix

__all__ = ["Interrupted", "Names", "Progress", "Testbed", "TestbedError"]

IFACE = "eth0"  # the interface of every node and host namespace
DOOR_IFACE = "door"  # the first node's veth to the front door's namespace
LINKEMU_READY_TIMEOUT = 30.0
BRIDGE_S_PER_PORT = 0.1
"""Allowed for vswitchd to take each port of the build's one transaction (beyond 60 s)."""
SDN_TARGET = f"tcp:127.0.0.1:{SDN_PORT}"
SDN_TLS_TARGET = f"ssl:127.0.0.1:{SDN_PORT}"


class Testbed:
    """A running (or being built) emulated network. Use `Testbed.up(...)`."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, topology: Topology, state: RunState) -> None:
        self.topology = topology
        self.state = state
        self.names = Names(state.prefix)

    # ------------------------------------------------------------ public API

    @property
    def prefix(self) -> str:
        return self.state.prefix

    @property
    def emulator(self) -> str:
        """Delay/loss emulation in use: none, netem or userspace."""
        return self.state.emulator

    @property
    def api_url(self) -> str | None:
        return self.state.api_url

    @property
    def door_url(self) -> str | None:
        """The front door, http://ADDRESS: reachable from the hosts' namespaces only."""
        return self.state.door_url

    @property
    def prometheus_url(self) -> str | None:
        return self.state.prometheus_url

    @property
    def api_token(self) -> str | None:
        """The operator's token for this run's orchestrator (None without one)."""
        return self.state.operator_token()

    def operator(self) -> tuple[str, str] | None:
        """The operator's name and password, as the orchestrator made them at its first
        start (None without an orchestrator)."""
        text = read_private(self.state.secrets / "operator.json")
        if text is None:
            return None
        got = json.loads(text)
        return str(got["name"]), str(got["password"])

    @property
    def ovs_db(self) -> str | None:
        return self.state.ovs_db

    def netns_of(self, name: str) -> str:
        """Namespace of a node or host (or `sw`, the switch namespace)."""
        return self.state.namespace_of(name)

    def bridge_of(self, node: str) -> str:
        return str(self.state.nodes[node]["bridge"])

    def ofctl(self, node: str, *args: str, timeout: float = 60.0) -> str:
        """``ovs-ofctl -O OpenFlow13 ARGS[0] <node's bridge> ARGS[1:]`` on this run's
        switch (its management socket): the output (``dump-groups``,
        ``dump-group-stats``, ``dump-flows``); raises TestbedError if it fails."""
        if self.state.ovs_rundir is None or not args:
            raise TestbedError("this run has no Open vSwitch (or no ofctl command given)")
        daemon = OvsDaemon(Path(self.state.ovs_rundir))
        mgmt = f"{self.state.ovs_rundir}/{self.bridge_of(node)}.mgmt"
        r = subprocess.run(
            ["ovs-ofctl", "-O", "OpenFlow13", args[0], mgmt, *args[1:]],
            capture_output=True, text=True, env=daemon.env(), timeout=timeout, check=False,
        )  # fmt: skip
        if r.returncode != 0:
            raise TestbedError(f"ovs-ofctl {args[0]} {node}: {r.stderr.strip()[:300]}")
        return r.stdout

    def exec(
        self, name: str, argv: list[str], check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in a node's or host's namespace (`h1 ping h2`)."""
        return netns.run_in(self.netns_of(name), argv, check=check, timeout=timeout)

    @classmethod
    def up(
        cls,
        topology: Topology | str | Path,
        *,
        prefix: str | None = None,
        controller: str | None = None,
        sdn: bool = False,
        secure: bool = False,
        control: bool = True,
        api_port: int = 0,
        migration_deadline_s: float | None = None,
        prometheus: bool = True,
        tso: bool = False,
        agents_per_process: int | None = None,
        progress: Progress | None = None,
    ) -> Testbed:
        """Build the network (and, with `control`, start orchestrator and agents, and
        with `prometheus` the run's Prometheus scraping them; `migration_deadline_s`
        overrides the orchestrator's default deadline). `tso`: Open vSwitch's userspace
        TSO with offloads on in the namespaces (several times the TCP throughput of
        the switch path); off, tx checksum offload is turned off instead.
        `agents_per_process`: nodes whose agents share one process (`netfate agents`;
        None: control.agents_per_process_for the topology's size). Not the
        default: vswitchd 3.1 cuts a TCP segment for a port by that port's MTU, so a
        function with a larger MTU than its onward path (sharing's VXLAN overlay,
        1550 -> 1500) gets segments it cannot forward and TCP through it stalls.

        `secure` (with `sdn`): OpenFlow over TLS with mutual authentication, with
        certificates from a CA of the run's own (testbed/openflow_pki.py).

        On any error, Ctrl-C or SIGTERM during the build, everything created so
        far is removed before the exception propagates.
        """
        report = progress or quiet
        if secure and not sdn:
            raise TestbedError("secure is OpenFlow over TLS to our controller: it needs sdn")
        if sdn:
            if controller is not None:
                raise TestbedError("give either sdn (our controller) or a controller target")
            if not control:
                raise TestbedError("sdn needs the orchestrator: it holds the intents")
            controller = SDN_TLS_TARGET if secure else SDN_TARGET
        topo = topology if isinstance(topology, Topology) else Topology.load(topology)
        topo_file = str(Path(topology).resolve()) if not isinstance(topology, Topology) else ""
        prefix = check_prefix(prefix) if prefix else new_prefix()
        if netns.list_with_prefix(prefix + "-"):
            raise TestbedError(f"namespaces with prefix {prefix}- exist already: choose another")
        try:
            state = RunState.create(prefix)
        except StateError as e:
            raise TestbedError(str(e)) from e
        state.owner = proc.ref(os.getpid(), role="builder").to_dict()
        state.topology_name = topo.name
        state.topology_file = topo_file
        state.controller = controller
        state.sdn = sdn
        state.secure = secure
        state.control = control
        state.tso = tso
        state.save()
        tb = cls(topo, state)
        try:
            with sigterm_raises():
                tb._build(report, controller)
                if control:
                    from netfate.testbed.control import start_control

                    start_control(
                        state,
                        topo,
                        tb.names,
                        api_port=api_port,
                        migration_deadline_s=migration_deadline_s,
                        prometheus=prometheus,
                        agents_per_process=agents_per_process,
                        progress=report,
                    )
        except BaseException:
            report("rolling back")
            with shielded():
                from netfate.testbed.cleanup import teardown

                teardown(state, progress=report)
            raise
        state.phase = "up"
        state.owner = None
        state.save()
        return tb

    @classmethod
    def attach(cls, prefix: str) -> Testbed:
        """The run with this prefix, from its state journal."""
        state = RunState.load(prefix)
        topo_doc = state.dir / "topology.json"
        try:
            topo = Topology.from_dict(json.loads(topo_doc.read_text()))
        except (OSError, ValueError, TopologyError) as e:
            raise TestbedError(f"run {prefix}: cannot read its topology ({e})") from e
        return cls(topo, state)

    def down(self, progress: Progress | None = None) -> list[str]:
        """Remove everything of this run. Returns problems met (empty if clean)."""
        from netfate.testbed.cleanup import teardown

        with shielded():
            return teardown(self.state, progress=progress or quiet)

    def restart_ovs(self) -> dict[str, int]:
        """Start the run's ovsdb-server and ovs-vswitchd again, from the database they
        left, as a service manager would after they crashed (a daemon still alive is
        stopped first). Bridges and ports come back from the database; flows from
        the controller (secure mode) or NORMAL learning. Returns the new pids."""
        st = self.state
        roles = ("ovsdb-server", "ovs-vswitchd")
        for r in st.process_refs():
            if r.role in roles and proc.alive(r):
                proc.terminate(r, timeout=5.0)
        st.processes = [p for p in st.processes if p.get("role") not in roles]
        self._start_ovs()
        return {r.role: r.pid for r in st.process_refs() if r.role in roles}

    def __enter__(self) -> Testbed:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    # ------------------------------------------------------------ building

    def _step(self, report: Progress, name: str, fn: Callable[[], Any]) -> Any:
        check_interrupted()
        report(name)
        t0 = time.monotonic()
        result = fn()
        self.state.timings[name] = round(time.monotonic() - t0, 4)
        check_interrupted()
        return result

    def _build(self, report: Progress, controller: str | None) -> None:
        topo, n, st = self.topology, self.names, self.state
        t0 = time.monotonic()
        (st.dir / "topology.json").write_text(topo.to_json())
        (st.dir / "topology.yaml").write_text(topo.to_yaml())
        st.nodes = {
            node.name: {
                "netns": n.ns(node.name),
                "bridge": n.bridge(node),
                "port": n.node_port(node),
                "dpid": f"{node.datapath_id:016x}",
                "transit_ip": str(node.transit_ip),
            }
            for node in topo.nodes.values()
        }
        st.hosts = {
            h.name: {"netns": n.ns(h.name), "node": h.node, "ip": str(h.ip), "port": n.host_port(h)}
            for h in topo.hosts.values()
        }
        st.namespaces = [n.sw] + [n.ns(x) for x in topo.nodes] + [n.ns(x) for x in topo.hosts]
        if st.control:  # the front door's, which runs with the control plane
            st.namespaces.append(n.door)
        st.ovs_rundir = str(st.dir / "ovs")
        st.save()  # journal first: what follows may be interrupted at any point

        self._step(report, f"namespaces ({len(st.namespaces)})", self._namespaces)
        self._step(report, "switch namespace", self._switch_namespace)
        self._step(report, "Open vSwitch", self._start_ovs)
        self._step(report, f"veth links ({self._veth_count()})", self._veths)
        self._step(report, "addresses and routes", self._configure_namespaces)
        if st.control:
            self._step(report, "front door namespace", self._door_namespace)
        self._step(report, "traffic control", self._traffic_control)
        self._step(report, f"bridges ({len(topo.nodes)})", lambda: self._bridges(controller))
        if self.state.emulator == "userspace":
            self._step(report, "userspace link emulator", self._start_linkemu)
        st.timings["network"] = round(time.monotonic() - t0, 4)
        st.save()

    def _impaired(self) -> list[int]:
        return [lk.index for lk in self.topology.links if lk.impaired]

    def _veth_count(self) -> int:
        topo = self.topology
        extra = len(self._impaired()) if self.state.emulator == "userspace" else 0
        return len(topo.nodes) + len(topo.hosts) + len(topo.links) + extra

    def _namespaces(self) -> None:
        for name in self.state.namespaces:
            netns.ensure(name)

    def _switch_namespace(self) -> None:
        sw = self.names.sw

        def setup() -> None:
            with links.rtnl(None) as ipr:
                ipr.link("set", index=1, state="up")  # lo: the controller may listen there
            # Ports in here are pure L2: no IPv6 autoconfiguration, ND or MLD noise.
            links.sysctl(None, "net.ipv6.conf.all.disable_ipv6", 1)
            links.sysctl(None, "net.ipv6.conf.default.disable_ipv6", 1)

        netns.in_netns(sw, setup)
        st = self.state
        if self._impaired():
            st.netem_available = tc.netem_available(sw)
            st.emulator = "netem" if st.netem_available else "userspace"
        else:
            st.emulator = "none"
        st.save()

    def _start_ovs(self) -> None:
        st = self.state
        if st.ovs_rundir is None:
            raise TestbedError("internal: OVS run directory not recorded")
        daemon = OvsDaemon(Path(st.ovs_rundir), self.names.sw, tso=st.tso)
        try:
            daemon.start()
        finally:
            for ref in daemon.procs.values():
                st.processes.append(ref.to_dict())
            st.save()
        st.ovs_db = daemon.db
        st.save()

    def _veths(self) -> None:
        topo, n, sw = self.topology, self.names, self.names.sw
        userspace = self.state.emulator == "userspace"
        fds: dict[str, int] = {}

        def fd(ns: str) -> int:
            if ns not in fds:
                fds[ns] = os.open(netns.NETNS_DIR / ns, os.O_RDONLY | os.O_CLOEXEC)
            return fds[ns]

        sw_ends: list[tuple[str, int | None]] = []
        try:
            with links.rtnl(sw) as ipr:

                def veth(name: str, peer: str, peer_ns: str | None, mtu: int | None) -> None:
                    p: dict[str, Any] = {"ifname": peer}
                    if peer_ns is not None:
                        p["net_ns_fd"] = fd(peer_ns)
                    spec: dict[str, Any] = {"ifname": name, "kind": "veth", "peer": p}
                    if mtu is not None:
                        spec["mtu"] = mtu
                        p["mtu"] = mtu
                    ipr.link("add", **spec)

                for node in topo.nodes.values():
                    veth(n.node_port(node), IFACE, n.ns(node.name), None)
                    sw_ends.append((n.node_port(node), None))
                for host in topo.hosts.values():
                    veth(n.host_port(host), IFACE, n.ns(host.name), None)
                    sw_ends.append((n.host_port(host), None))
                for lk in topo.links:
                    pa, pb = n.link_port(lk.index, "a"), n.link_port(lk.index, "b")
                    if userspace and lk.impaired:
                        ea, eb = n.emu_port(lk.index, "a"), n.emu_port(lk.index, "b")
                        veth(pa, ea, None, lk.mtu)
                        veth(pb, eb, None, lk.mtu)
                        sw_ends += [(pa, lk.mtu), (pb, lk.mtu), (ea, lk.mtu), (eb, lk.mtu)]
                    else:
                        veth(pa, pb, None, lk.mtu)
                        sw_ends += [(pa, lk.mtu), (pb, lk.mtu)]
                index = {str(m.get("IFLA_IFNAME")): int(m["index"]) for m in ipr.link("dump")}
                for name, _ in sw_ends:
                    ipr.link("set", index=index[name], state="up")
            # The link emulator's raw sockets take frames as they are: with userspace
            # TSO, vswitchd hands its ports 64 KiB segments with partial checksums.
            # Without the offloads on the switch's ends the kernel finishes both first.
            for lk in topo.links:
                if userspace and lk.impaired:
                    for side in ("a", "b"):
                        links.tx_offload_off(sw, n.link_port(lk.index, side))
        finally:
            for f in fds.values():
                os.close(f)

    def _configure_namespaces(self) -> None:
        topo = self.topology
        lan_routes: list[tuple[str, int, str]] = []  # (network, prefixlen, via transit ip)
        for node in topo.nodes.values():
            for lan in node.lans:
                lan_routes.append((str(lan.network_address), lan.prefixlen, str(node.transit_ip)))
        jobs: list[tuple[str, Callable[[], None]]] = []
        if self.state.control:  # the front door sits behind the first node (`_door_namespace`)
            lan_routes.append((str(topo.door_ip), 32, str(topo.door_node.transit_ip)))
        for node in topo.nodes.values():
            routes = [r for r in lan_routes if r[2] != str(node.transit_ip)]
            jobs.append((self.names.ns(node.name), _node_setup(node, topo, routes, self.state.tso)))
        for host in topo.hosts.values():
            jobs.append((self.names.ns(host.name), _host_setup(host, self.state.tso)))
        # Netlink and ioctl calls release the GIL: a few namespaces at a time overlap well.
        with ThreadPoolExecutor(max_workers=4) as pool:
            for f in [pool.submit(netns.in_netns, ns, job) for ns, job in jobs]:
                f.result()

    def _door_namespace(self) -> None:
        """The front door's namespace: a veth to the first node's namespace, which
        routes the door's address (a /32 of the transit network) to it and answers
        ARP for the door's neighbours (proxy ARP), so the door needs one route."""
        topo, n = self.topology, self.names
        node_ns, door = n.ns(topo.door_node.name), str(topo.door_ip)
        fd = os.open(netns.NETNS_DIR / node_ns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with links.rtnl(n.door) as ipr:
                ipr.link("add", ifname=IFACE, kind="veth", peer={"ifname": DOOR_IFACE,
                                                                  "net_ns_fd": fd})  # fmt: skip
        finally:
            os.close(fd)

        def door_side() -> None:
            _ipv4_only()
            with _rtnl_here() as ipr:
                idx = ipr.link_lookup(ifname=IFACE)[0]
                ipr.link("set", index=1, state="up")
                ipr.addr("add", index=idx, address=door, prefixlen=32)
                ipr.link("set", index=idx, state="up")
                ipr.route("replace", dst="0.0.0.0", dst_len=0, oif=idx, scope=253)  # link
            if not self.state.tso:
                links.tx_offload_off(None, IFACE)

        def node_side() -> None:
            with _rtnl_here() as ipr:
                idx = ipr.link_lookup(ifname=DOOR_IFACE)[0]
                ipr.link("set", index=idx, state="up")
                ipr.route("replace", dst=door, dst_len=32, oif=idx)
            links.sysctl(None, f"net.ipv4.conf.{DOOR_IFACE}.proxy_arp", 1)
            links.sysctl(None, f"net.ipv4.conf.{DOOR_IFACE}.rp_filter", 0)
            if not self.state.tso:
                links.tx_offload_off(None, DOOR_IFACE)

        netns.in_netns(n.door, door_side)
        netns.in_netns(node_ns, node_side)

    def _traffic_control(self) -> None:
        topo, n, sw = self.topology, self.names, self.names.sw
        if self.state.emulator == "netem":
            for lk in topo.links:
                for side in ("a", "b"):
                    port = n.link_port(lk.index, side)
                    if lk.impaired:
                        tc.impair(
                            sw,
                            port,
                            delay_us=lk.delay_us,
                            loss=lk.loss,
                            rate_bps=lk.rate_bps,
                            mtu=lk.mtu or 1500,
                        )
                    elif lk.rate_bps is not None:
                        tc.shape(sw, port, lk.rate_bps, lk.mtu or 1500)
            return
        # TBF on the bridge-side end of each direction: A->B leaves bridge A through
        # l<k>a, B->A leaves bridge B through l<k>b (emulated or not).
        items = [
            (n.link_port(lk.index, side), lk.rate_bps)
            for lk in topo.links
            if lk.rate_bps is not None
            for side in ("a", "b")
        ]
        if items:
            tc.shape_many(sw, items)

    def _bridges(self, controller: str | None) -> None:
        topo, n = self.topology, self.names
        if self.state.ovs_db is None:
            raise TestbedError("internal: OVS database not recorded")
        # One transaction whose wait for vswitchd grows with the ports: 500 nodes
        # (~1,950 ports) took 48 s here, 1,000 nodes passed the default 60 s.
        n_ports = len(topo.nodes) + len(topo.hosts) + 2 * len(topo.links)
        vs = Vsctl(self.state.ovs_db, timeout=max(60.0, BRIDGE_S_PER_PORT * n_ports))
        rstp = topo.has_cycles()
        self.state.rstp = rstp
        fail_mode = "secure" if controller else "standalone"
        batch = vs.batch()
        if self.state.secure:
            from netfate.testbed import openflow_pki

            sw = openflow_pki.make(self.state.dir, self.state.prefix).switch
            batch.set_ssl(sw.key, sw.cert, sw.ca)
        edge_ports: list[str] = []
        ports: list[str] = []
        for node in topo.nodes.values():
            batch.add_bridge(
                n.bridge(node),
                datapath_id=node.datapath_id,
                node=node.name,
                fail_mode=fail_mode,
                controller=controller,
                rstp=rstp,
            )
        for node in topo.nodes.values():
            batch.add_port(n.bridge(node), n.node_port(node), peer=f"local:{node.name}")
            edge_ports.append(n.node_port(node))
        for host in topo.hosts.values():
            node = topo.nodes[host.node]
            batch.add_port(n.bridge(node), n.host_port(host), peer=f"host:{host.name}")
            edge_ports.append(n.host_port(host))
        for lk in topo.links:
            a, b = topo.nodes[lk.a], topo.nodes[lk.b]
            batch.add_port(n.bridge(a), n.link_port(lk.index, "a"), peer=f"node:{b.name}")
            batch.add_port(n.bridge(b), n.link_port(lk.index, "b"), peer=f"node:{a.name}")
            ports += [n.link_port(lk.index, "a"), n.link_port(lk.index, "b")]
        if rstp:
            # Hosts and node namespaces never close a loop: forward at once.
            for port in edge_ports:
                batch.add("set", "port", port, "other_config:rstp-port-admin-edge=true")
        batch.commit()
        vs.wait_ofports(edge_ports + ports, timeout=vs.timeout)
        if rstp and not controller:
            self._wait_rstp(vs)

    def _wait_rstp(self, vs: Vsctl, timeout: float = 60.0) -> None:
        """Until every Root/Designated port forwards (edge ports at once, links after
        the proposal/agreement handshake: a few seconds here)."""
        t0 = time.monotonic()
        while True:
            rows = vs.run([["--columns=name,rstp_status", "list", "port"]], fmt="json")
            doc = json.loads(rows)
            settled = True
            for _name, status in doc["data"]:
                entries = dict(status[1]) if status and status[0] == "map" else {}
                role, state = entries.get("rstp_port_role"), entries.get("rstp_port_state")
                if role is None:
                    continue  # the bridge's own internal port
                if role in ("Root", "Designated") and state != "Forwarding":
                    settled = False
            if settled:
                self.state.timings["rstp converged"] = round(time.monotonic() - t0, 3)
                return
            if time.monotonic() - t0 > timeout:
                raise TestbedError(f"RSTP did not converge within {timeout:.0f}s")
            time.sleep(0.2)

    def _start_linkemu(self) -> None:
        topo, n, st = self.topology, self.names, self.state
        ready = st.dir / "linkemu.ready"
        config = {
            "seed": 1,
            "ready_file": str(ready),
            "stats_file": str(st.dir / "linkemu.json"),
            "links": [
                {
                    "id": lk.index,
                    "a": n.emu_port(lk.index, "a"),
                    "b": n.emu_port(lk.index, "b"),
                    "delay_us": lk.delay_us,
                    "loss": lk.loss,
                }
                for lk in topo.links
                if lk.impaired
            ],
        }
        cfg = st.dir / "linkemu-config.json"
        cfg.write_text(json.dumps(config, indent=1))
        log = open(st.dir / "linkemu.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            p = netns.popen_in(
                n.sw,
                [sys.executable, "-m", "netfate.testbed.linkemu_driver", str(cfg)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        finally:
            log.close()
        with contextlib.suppress(ProcessLookupError):  # died at once: reported below
            st.add_process(proc.ref(p.pid, role="linkemu"))
        deadline = time.monotonic() + LINKEMU_READY_TIMEOUT
        while not ready.exists():
            if p.poll() is not None:
                tail = (st.dir / "linkemu.log").read_text(errors="replace")[-2000:]
                raise TestbedError(f"link emulator exited with {p.returncode}: {tail}")
            if time.monotonic() > deadline:
                raise TestbedError(f"link emulator not ready after {LINKEMU_READY_TIMEOUT}s")
            time.sleep(0.02)


@contextlib.contextmanager
def _rtnl_here() -> Iterator[Any]:
    """IPRoute over a netlink socket of the calling thread's namespace."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
    try:
        ipr = IPRoute(use_socket=sock)
        try:
            yield ipr
        finally:
            ipr.close()
    finally:
        sock.close()


def _ipv4_only() -> None:
    """The emulated network is IPv4 (so is the topology model). Without this, every
    namespace's router solicitations, DAD and MLD reports flood all bridges as
    the links come up: at 100 nodes that kept vswitchd busy for seconds."""
    links.sysctl(None, "net.ipv6.conf.all.disable_ipv6", 1)
    links.sysctl(None, "net.ipv6.conf.default.disable_ipv6", 1)


def _node_setup(
    node: NodeSpec, topo: Topology, routes: list[tuple[str, int, str]], tso: bool
) -> Callable[[], None]:
    def setup() -> None:  # runs inside the node's namespace
        _ipv4_only()
        with _rtnl_here() as ipr:
            idx = ipr.link_lookup(ifname=IFACE)[0]
            ipr.link("set", index=1, state="up")
            ipr.link("set", index=idx, address=Names.node_mac(node))
            ipr.addr(
                "add", index=idx, address=str(node.transit_ip), prefixlen=topo.transit.prefixlen
            )
            for lan in node.lans:
                gw = str(lan.network_address + 1)
                ipr.addr("add", index=idx, address=gw, prefixlen=lan.prefixlen)
            ipr.link("set", index=idx, state="up")
        links.add_routes(None, [(f"{dst}/{plen}", via) for dst, plen, via in routes])
        links.sysctl(None, "net.ipv4.ip_forward", 1)
        # Traffic between LANs enters and leaves through eth0: no redirects, no rp_filter drops.
        for conf in ("all", "default", IFACE):
            links.sysctl(None, f"net.ipv4.conf.{conf}.send_redirects", 0)
            links.sysctl(None, f"net.ipv4.conf.{conf}.rp_filter", 0)
        if not tso:
            links.tx_offload_off(None, IFACE)

    return setup


def _host_setup(host: HostSpec, tso: bool) -> Callable[[], None]:
    def setup() -> None:  # runs inside the host's namespace
        _ipv4_only()
        with _rtnl_here() as ipr:
            idx = ipr.link_lookup(ifname=IFACE)[0]
            ipr.link("set", index=1, state="up")
            ipr.link("set", index=idx, address=host.mac)
            ipr.addr("add", index=idx, address=str(host.ip), prefixlen=host.lan.prefixlen)
            ipr.link("set", index=idx, state="up")
            ipr.route("replace", dst="0.0.0.0", dst_len=0, gateway=str(host.gateway))
        if not tso:
            links.tx_offload_off(None, IFACE)

    return setup
