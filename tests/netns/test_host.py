"""Host primitives against real namespaces (root). Everything carries `run_prefix`."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netfate.host import links, netns, ovs, proc, tc

NsFactory = Callable[[str], str]


@pytest.fixture
def make_ns(run_prefix: str) -> Iterator[NsFactory]:
    created: list[str] = []

    def make(suffix: str) -> str:
        name = f"{run_prefix}-{suffix}"
        assert netns.ensure(name)
        created.append(name)
        return name

    yield make
    for name in created:
        netns.remove(name)
    assert netns.list_with_prefix(run_prefix + "-") == []


def own_netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def ns_inode(name: str) -> int:
    return os.stat(netns.NETNS_DIR / name).st_ino


def wired_pair(make_ns: NsFactory, run_prefix: str) -> tuple[str, str]:
    """Two namespaces joined by a veth, 10.77.0.1/24 and 10.77.0.2/24."""
    a, b = make_ns("a"), make_ns("b")
    links.veth_pair(f"{run_prefix}x", a, "eth0", b)
    links.add_address(a, f"{run_prefix}x", "10.77.0.1/24")
    links.add_address(b, "eth0", "10.77.0.2/24")
    links.set_up(a, f"{run_prefix}x")
    links.set_up(b, "eth0")
    return a, b


# ------------------------------------------------------------------ netns


def test_ensure_exists_list_remove(run_prefix: str) -> None:
    name = f"{run_prefix}-one"
    try:
        assert not netns.exists(name)
        assert netns.ensure(name) is True
        assert netns.ensure(name) is False
        assert netns.exists(name)
        assert netns.list_with_prefix(run_prefix) == [name]
        assert ns_inode(name) != own_netns_inode()
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert name in out
        assert netns.remove(name) is True
        assert netns.remove(name) is False
        assert not netns.exists(name)
    finally:
        netns.remove(name)


def test_rename_keeps_the_namespace_and_what_is_in_it(run_prefix: str) -> None:
    """A warm standby's namespace gets its instance's name (agent/standbys.py): the
    same namespace, its interfaces with it; the old name is gone."""
    old, new, other = f"{run_prefix}-sb", f"{run_prefix}-inst", f"{run_prefix}-taken"
    try:
        netns.ensure(old)
        netns.ensure(other)
        links.set_up(old, "lo")
        links.add_address(old, "lo", "10.99.0.1/32")
        inode = ns_inode(old)
        netns.rename(old, new)
        assert not netns.exists(old) and netns.exists(new)
        assert ns_inode(new) == inode
        out = netns.run_in(new, ["ip", "-4", "addr", "show", "lo"]).stdout
        assert "10.99.0.1" in out
        with pytest.raises(FileExistsError):
            netns.rename(new, other)  # a name taken is never replaced
        assert ns_inode(new) == inode and netns.exists(other)
        with pytest.raises(FileNotFoundError):
            netns.rename(old, f"{run_prefix}-x")
        assert not netns.exists(f"{run_prefix}-x")
    finally:
        for n in (old, new, other, f"{run_prefix}-x"):
            netns.remove(n)


def test_invalid_names_rejected() -> None:
    for bad in ("", "../etc", "a/b", ".", "-x", "x" * 200):
        with pytest.raises(ValueError):
            netns.exists(bad)


def test_socket_in_never_switches_calling_thread(make_ns: NsFactory, run_prefix: str) -> None:
    a, _ = wired_pair(make_ns, run_prefix)
    before = own_netns_inode()
    s = netns.socket_in(a, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert own_netns_inode() == before
        s.bind(("10.77.0.1", 0))  # only exists inside `a`
    finally:
        s.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as root_sock, pytest.raises(OSError) as e:
        root_sock.bind(("10.77.0.1", 0))
    assert e.value.errno == errno.EADDRNOTAVAIL


def test_socket_in_root_is_plain_socket() -> None:
    with netns.socket_in(None, socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))


def test_in_netns_runs_in_namespace_and_propagates_errors(make_ns: NsFactory) -> None:
    a = make_ns("a")
    assert netns.in_netns(a, own_netns_inode) == ns_inode(a)

    def boom() -> None:
        raise KeyError("inside")

    with pytest.raises(KeyError):
        netns.in_netns(a, boom)


def test_socket_in_from_many_threads(make_ns: NsFactory) -> None:
    a = make_ns("a")
    inodes: list[int] = []

    def work() -> None:
        inodes.append(netns.in_netns(a, own_netns_inode))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inodes == [ns_inode(a)] * 8


def test_run_in_and_popen_in(make_ns: NsFactory, run_prefix: str) -> None:
    a, b = wired_pair(make_ns, run_prefix)
    out = netns.run_in(b, ["ip", "-o", "link", "show"]).stdout
    assert "eth0" in out and f"{run_prefix}x" not in out
    with pytest.raises(netns.CommandError) as e:
        netns.run_in(b, ["ip", "link", "show", "nosuchdev"])
    assert "nosuchdev" in str(e.value)
    assert netns.run_in(b, ["false"], check=False).returncode == 1
    p = netns.popen_in(a, ["ping", "-c", "1", "-W", "2", "10.77.0.2"], stdout=subprocess.PIPE)
    p.communicate(timeout=10)
    assert p.returncode == 0


# ------------------------------------------------------------------ links


def test_veth_addresses_and_ping(make_ns: NsFactory, run_prefix: str) -> None:
    a, b = wired_pair(make_ns, run_prefix)
    links.add_address(b, "eth0", "10.77.0.2/24")  # idempotent
    assert links.link_exists(b, "eth0")
    assert "eth0" in links.list_links(b)
    assert netns.run_in(a, ["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.77.0.2"]).returncode == 0
    stats = links.link_stats(b, "eth0")
    assert stats["rx_packets"] >= 2 and stats["tx_packets"] >= 2 and stats["rx_bytes"] > 0


def test_veth_with_root_end_and_mtu(make_ns: NsFactory, run_prefix: str) -> None:
    a = make_ns("a")
    root_end = f"{run_prefix}r"
    try:
        links.veth_pair(root_end, None, "eth1", a, mtu=1400)
        assert links.link_exists(None, root_end)
        out = netns.run_in(a, ["ip", "-o", "link", "show", "eth1"]).stdout
        assert "mtu 1400" in out
    finally:
        assert links.delete_link(None, root_end)
    assert not links.link_exists(None, root_end)
    assert not links.link_exists(a, "eth1")  # the peer went with it
    assert links.delete_link(None, root_end) is False


def test_routes_mac_and_mtu(make_ns: NsFactory, run_prefix: str) -> None:
    _, b = wired_pair(make_ns, run_prefix)
    links.add_route(b, "10.88.0.0/16", "10.77.0.1")
    links.add_route(b, "10.88.0.0/16", "10.77.0.1")  # replace, not an error
    links.add_route(b, "default", "10.77.0.1")
    routes = netns.run_in(b, ["ip", "route"]).stdout
    assert "10.88.0.0/16 via 10.77.0.1 dev eth0" in routes
    assert "default via 10.77.0.1 dev eth0" in routes
    links.set_mac(b, "eth0", "02:6e:66:00:00:42")
    links.set_mtu(b, "eth0", 1450)
    out = netns.run_in(b, ["ip", "-o", "link", "show", "eth0"]).stdout
    assert "02:6e:66:00:00:42" in out and "mtu 1450" in out
    with pytest.raises(links.LinkNotFound):
        links.set_up(b, "nosuch0")
    with pytest.raises(ValueError):
        links.set_mac(b, "eth0", "not-a-mac")


def test_tx_offload_off(make_ns: NsFactory, run_prefix: str) -> None:
    _, b = wired_pair(make_ns, run_prefix)
    assert links.tx_checksum_enabled(b, "eth0")
    links.tx_offload_off(b, "eth0")
    assert not links.tx_checksum_enabled(b, "eth0")
    if shutil.which("ethtool"):
        out = netns.run_in(b, ["ethtool", "-k", "eth0"]).stdout
        assert "tx-checksum-ip-generic: off" in out
    with pytest.raises(links.LinkNotFound):
        links.tx_offload_off(b, "nosuch0")


def test_sysctl_is_per_namespace(make_ns: NsFactory) -> None:
    a = make_ns("a")
    root_before = links.read_sysctl(None, "net.ipv4.ip_forward")
    links.sysctl(a, "net.ipv4.ip_forward", 1)
    assert links.read_sysctl(a, "net.ipv4.ip_forward") == "1"
    assert links.read_sysctl(None, "net.ipv4.ip_forward") == root_before
    links.sysctl(a, "net/ipv4/conf/all/send_redirects", "0")
    assert links.read_sysctl(a, "net.ipv4.conf.all.send_redirects") == "0"
    with pytest.raises(ValueError):
        links.sysctl(a, "../../etc/passwd", 1)


def test_tc_shape(make_ns: NsFactory, run_prefix: str) -> None:
    a, _ = wired_pair(make_ns, run_prefix)
    tc.shape(a, f"{run_prefix}x", 10_000_000)
    assert tc.qdisc_kinds(a, f"{run_prefix}x") == ["tbf"]
    out = netns.run_in(a, ["tc", "qdisc", "show", "dev", f"{run_prefix}x"]).stdout
    assert "rate 10Mbit" in out
    tc.shape(a, f"{run_prefix}x", 20_000_000)  # replace
    assert "rate 20Mbit" in netns.run_in(a, ["tc", "qdisc", "show"]).stdout
    tc.clear(a, f"{run_prefix}x")
    assert "tbf" not in tc.qdisc_kinds(a, f"{run_prefix}x")


def test_netem_probe_matches_kernel(make_ns: NsFactory, run_prefix: str) -> None:
    a, _ = wired_pair(make_ns, run_prefix)
    direct = netns.run_in(
        a,
        ["tc", "qdisc", "add", "dev", f"{run_prefix}x", "root", "netem", "delay", "1ms"],
        check=False,
    )
    assert tc.netem_available(a) == (direct.returncode == 0)
    assert "netem" not in netns.run_in(a, ["tc", "qdisc", "show", "dev", "lo"]).stdout


# ------------------------------------------------------------------ proc


def test_proc_refs_and_terminate() -> None:
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        r = proc.ref(p.pid, role="sleeper")
        assert proc.alive(r)
        assert proc.ProcRef.from_dict(r.to_dict()) == r
        impostor = proc.ProcRef(pid=p.pid, start=r.start + 1)
        assert not proc.alive(impostor)
        assert proc.terminate(impostor)  # not ours: nothing is signalled
        assert p.poll() is None
        assert proc.terminate(r, timeout=5)
        assert not proc.alive(r)
    finally:
        p.kill()
        p.wait()
    with pytest.raises(ProcessLookupError):
        proc.ref(p.pid)


# ------------------------------------------------------------------ OVS


@pytest.fixture
def ovs_daemon(make_ns: NsFactory, run_prefix: str) -> Iterator[ovs.OvsDaemon]:
    if shutil.which("ovs-vswitchd") is None:
        pytest.fail("Open vSwitch is not installed (ovs-vswitchd missing)")
    sw = make_ns("sw")
    rundir = Path("/run/netfate") / run_prefix / "ovs"
    d = ovs.OvsDaemon(rundir, sw)
    try:
        d.start()
        yield d
    finally:
        d.stop()
        shutil.rmtree(rundir.parent, ignore_errors=True)


def test_ovs_daemon_runs_in_namespace(ovs_daemon: ovs.OvsDaemon) -> None:
    procs = ovs_daemon.pids()
    assert set(procs) == {"ovsdb-server", "ovs-vswitchd"}
    assert all(ovs_daemon.alive().values())
    sw = ovs_daemon.netns
    assert sw is not None
    vswitchd = procs["ovs-vswitchd"].pid
    assert os.stat(f"/proc/{vswitchd}/ns/net").st_ino == ns_inode(sw)
    assert ovs_daemon.db == f"unix:{ovs_daemon.rundir}/db.sock"
    refs = list(procs.values())
    ovs_daemon.stop()
    assert not any(proc.alive(r) for r in refs)


def test_vsctl_bridges_ports_and_peers(ovs_daemon: ovs.OvsDaemon, run_prefix: str) -> None:
    sw = ovs_daemon.netns
    v = ovs.Vsctl(ovs_daemon.db)
    b1, b2 = f"{run_prefix}b1", f"{run_prefix}b2"
    p1, p2 = f"{run_prefix}p1", f"{run_prefix}p2"
    links.veth_pair(p1, sw, p2, sw)
    links.set_up(sw, p1)
    links.set_up(sw, p2)
    tc.shape(sw, p1, 5_000_000)
    batch = v.batch()
    batch.add_bridge(b1, datapath_id=1, node="cpe1")
    batch.add_bridge(
        b2, datapath_id=2, node="pe1", fail_mode="secure", controller="tcp:127.0.0.1:6653"
    )
    batch.add_port(b1, p1, peer="node:pe1", ofport=7)
    batch.add_port(b2, p2, peer="node:cpe1")
    assert len(batch) > 4
    batch.commit()
    assert sorted(v.list_bridges()) == [b1, b2]
    assert v.wait_ofports([p1, p2])[p1] == 7
    assert v.list_ports(b1) == [ovs.PortInfo(p1, 7, "node:pe1")]
    (port2,) = v.list_ports(b2)
    assert port2.peer == "node:cpe1" and port2.ofport is not None
    info1, info2 = v.bridge_info(b1), v.bridge_info(b2)
    assert info1["other_config"]["datapath-id"] == "0000000000000001"
    assert info1["external_ids"]["netfate-node"] == "cpe1"
    assert info1["fail_mode"] == "standalone" and info1["controller"] == []
    assert info2["fail_mode"] == "secure" and info2["protocols"] == "OpenFlow13"
    assert info2["controller"] == ["tcp:127.0.0.1:6653"]
    # linux-noop QoS: OVS kept the TBF qdisc set before the port was added.
    assert tc.qdisc_kinds(sw, p1) == ["tbf"]
    v.set_controller(b2, None, "standalone")
    assert v.bridge_info(b2)["controller"] == []
    v.set_controller(b1, "tcp:127.0.0.1:6999", "secure")
    assert v.bridge_info(b1)["fail_mode"] == "secure"
    v.del_port(p2)
    assert v.list_ports(b2) == []
    v.del_bridge(b2)
    v.del_bridge(b2)  # --if-exists
    assert v.list_bridges() == [b1]
    with pytest.raises(ValueError):
        v.add_port(b1, "x", peer="friend:bob")
    with pytest.raises(ovs.OvsError):
        v.run([["add-port", "nosuchbr", "x"]])


def test_ovs_bridge_forwards_between_namespaces(
    ovs_daemon: ovs.OvsDaemon, make_ns: NsFactory, run_prefix: str
) -> None:
    sw = ovs_daemon.netns
    v = ovs.Vsctl(ovs_daemon.db)
    br = f"{run_prefix}br"
    h1, h2 = make_ns("h1"), make_ns("h2")
    v.add_bridge(br, datapath_id=9, node="n")
    for i, h in ((1, h1), (2, h2)):
        links.veth_pair(f"{run_prefix}h{i}", sw, "eth0", h)
        links.set_up(sw, f"{run_prefix}h{i}")
        links.add_address(h, "eth0", f"10.66.0.{i}/24")
        links.set_up(h, "eth0")
        links.tx_offload_off(h, "eth0")
        v.add_port(br, f"{run_prefix}h{i}", peer=f"host:h{i}")
    v.wait_ofports([f"{run_prefix}h1", f"{run_prefix}h2"])
    r = netns.run_in(h1, ["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.66.0.2"], check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_format_dpid() -> None:
    assert ovs.format_dpid(1) == "0000000000000001"
    assert ovs.format_dpid("00000000000000ff") == "00000000000000ff"
    with pytest.raises(ValueError):
        ovs.format_dpid(0)


def test_add_routes_in_batches(make_ns: NsFactory, run_prefix: str) -> None:
    _, b = wired_pair(make_ns, run_prefix)
    routes = [(f"10.{i // 256}.{i % 256}.0/24", "10.77.0.1") for i in range(1, 1501)]
    links.add_routes(b, routes)
    links.add_routes(b, routes[:10])  # replace: not an error
    table = netns.run_in(b, ["ip", "route"]).stdout
    assert table.count("via 10.77.0.1") == 1500
    assert "10.5.220.0/24 via 10.77.0.1 dev eth0" in table
    with pytest.raises(OSError, match=r"route 10.200.0.0/16 via 10.99.0.1"):
        links.add_routes(b, [("10.200.0.0/16", "10.99.0.1")])  # gateway not on any link


def test_impair_builds_netem_then_tbf(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel here may lack netem: check the commands, not their effect.
    calls: list[tuple[str | None, list[str]]] = []

    def fake_run_in(ns: str | None, argv: list[str], **kw: object) -> None:
        calls.append((ns, list(argv)))

    monkeypatch.setattr(tc, "run_in", fake_run_in)
    tc.impair("ns1", "nfl0a", delay_us=5000, loss=0.001, rate_bps=100_000_000)
    (ns, netem), (_, tbf) = calls
    assert ns == "ns1"
    assert netem[:9] == ["tc", "qdisc", "replace", "dev", "nfl0a", "root", "handle", "1:", "netem"]
    assert netem[netem.index("delay") + 1] == "5000us"
    assert netem[netem.index("loss") + 1] == "0.100000%"
    assert tbf[5:9] == ["parent", "1:1", "handle", "10:"]
    assert tbf[tbf.index("rate") + 1] == "100000000bit"
    calls.clear()
    tc.impair("ns1", "nfl0a", delay_us=0, loss=0.5)
    assert len(calls) == 1 and "loss" in calls[0][1]


def test_agent_reports_a_port_plugged_into_its_bridge_without_waiting(
    ovs_daemon: ovs.OvsDaemon, run_prefix: str
) -> None:
    """The agent watches OVSDB (agent/report.py, Figures.watch_ports): a port added to
    its bridge is in its next report at once; its periodic read (10 s) is never
    reached here."""
    import asyncio
    import types

    from netfate.agent.report import Figures
    from netfate.agent.supervisor import Supervisor

    sw = ovs_daemon.netns
    v = ovs.Vsctl(ovs_daemon.db)
    b1, b2 = f"{run_prefix}b1", f"{run_prefix}b2"
    batch = v.batch()
    batch.add_bridge(b1, datapath_id=1, node="cpe1")
    batch.add_bridge(b2, datapath_id=2, node="cpe2")
    batch.commit()
    a, b = f"{run_prefix}pa", f"{run_prefix}pb"
    links.veth_pair(a, sw, b, sw)
    links.set_up(sw, a)
    links.set_up(sw, b)

    async def scenario() -> list[dict[str, object]]:
        ctx = types.SimpleNamespace(vsctl=v, bridge=b1)
        figures = Figures(Supervisor(ctx, asyncio.Event()))  # type: ignore[arg-type]
        figures.gather = lambda: (figures.ports(), {})  # type: ignore[method-assign]
        watch = asyncio.create_task(figures.watch_ports())
        try:
            await asyncio.sleep(0.5)  # the monitor's initial rows
            v.add_port(b2, b, peer="host:other")  # another bridge: not ours
            v.add_port(b1, a, peer="host:laptop")
            while not any(p["name"] == a for p in figures.stats[0]):
                await asyncio.wait_for(figures.changed.wait(), 30)
                figures.changed.clear()
            return figures.stats[0]
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    import contextlib

    ports = asyncio.run(scenario())
    (mine,) = [p for p in ports if p["name"] == a]
    assert mine["peer"] == "host:laptop" and isinstance(mine["ofport"], int)
    assert all(p["name"] != b for p in ports)


def test_port_switch_sets_a_port_by_its_index(make_ns: NsFactory, run_prefix: str) -> None:
    """agent/ports.py: the cutover's port up and down, as one netlink request for an
    index looked up once; a port made again (new index) is looked up again."""
    import asyncio
    import json

    from netfate.agent.ports import PortSwitch

    sw = make_ns("sw")
    a, b = f"{run_prefix}pa", f"{run_prefix}pb"
    links.veth_pair(a, sw, b, sw)

    def is_up(ifname: str) -> bool:
        out = netns.run_in(sw, ["ip", "-j", "link", "show", ifname]).stdout
        return "UP" in json.loads(out)[0]["flags"]

    ports = PortSwitch(sw)
    ports.prepare(a)
    ports.set(a, True)
    assert is_up(a)
    asyncio.run(ports.set_async(a, False))
    assert not is_up(a)
    asyncio.run(ports.set_async(a, True))
    assert is_up(a)
    assert not is_up(b)  # the index was a's
    links.delete_link(sw, a)
    links.veth_pair(a, sw, b, sw)
    assert not is_up(a)
    asyncio.run(ports.set_async(a, True))
    assert is_up(a)
    ports.forget(a)
    ports.set(a, False)
    assert not is_up(a)
    with pytest.raises(links.LinkNotFound):
        ports.set(f"{run_prefix}px", True)
