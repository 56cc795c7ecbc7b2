"""The testbed end to end: build, traffic, exec, CLI, teardown, crashes, bad input.

Every run uses its own `nft` + 4 hex prefix; checks for leftovers only look at
names with that prefix, never at other engineers' runs.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netfate.host import links, netns, proc
from netfate.host.ovs import Vsctl
from netfate.model.topology import Topology
from netfate.testbed.builder import Testbed, TestbedError
from netfate.testbed.cleanup import stale_runs
from netfate.testbed.state import RunState, run_root

TWO_CPE = """
name: two-cpe
nodes:
  cpe1: {kind: cpe, lan: 192.168.1.0/24}
  cpe2: {kind: cpe, lan: 192.168.2.0/24}
  pe1:  {kind: pe}
hosts:
  laptop1: {node: cpe1}
  tv: {node: cpe2, ip: 192.168.2.20, kind: tv}
links:
  - {a: cpe1, b: pe1, rate: 20Mbit, delay: 10ms}
  - {a: cpe2, b: pe1, rate: 20Mbit}
"""

CLI = [sys.executable, "-m", "netfate", "testbed"]


def new_prefix() -> str:
    return "nft" + secrets.token_hex(2)


def leftovers(prefix: str) -> list[str]:
    """Anything on this machine that still carries `prefix`."""
    found = [f"netns {n}" for n in netns.list_with_prefix(prefix + "-")]
    found += [f"link {n}" for n in links.list_links(None) if n.startswith(prefix)]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ours = f"/{prefix}/" in cmd or f"{prefix}-" in cmd
        if ours and proc.start_time(int(entry)) is not None and int(entry) != os.getpid():
            found.append(f"process {entry}: {cmd[:120]}")
    if (run_root() / prefix).exists():
        found.append(f"run directory {run_root() / prefix}")
    return found


def ping(tb: Testbed, src: str, dst: str, count: int = 3, deadline: int = 10) -> str:
    r = tb.exec(
        src,
        ["ping", "-c", str(count), "-i", "0.2", "-w", str(deadline), dst],
        check=False,
        timeout=deadline + 10,
    )
    assert r.returncode == 0, f"{src} -> {dst}: {r.stdout}{r.stderr}"
    return r.stdout


def min_rtt_ms(ping_output: str) -> float:
    m = re.search(r"rtt min/avg/max/mdev = ([\d.]+)/", ping_output)
    assert m is not None, ping_output
    return float(m.group(1))


@pytest.fixture(scope="module")
def two_cpe() -> Iterator[Testbed]:
    prefix = new_prefix()
    tb = Testbed.up(Topology.from_yaml(TWO_CPE), prefix=prefix, control=False)
    try:
        yield tb
    finally:
        assert tb.down() == []
        assert leftovers(prefix) == []


# ------------------------------------------------------------------ layout and traffic


def test_layout_follows_the_contract(two_cpe: Testbed) -> None:
    tb, p = two_cpe, two_cpe.prefix
    assert sorted(netns.list_with_prefix(p + "-")) == sorted(
        f"{p}-{n}" for n in ("sw", "cpe1", "cpe2", "pe1", "laptop1", "tv")
    )
    assert tb.ovs_db is not None
    vs = Vsctl(tb.ovs_db)
    assert sorted(vs.list_bridges()) == [f"{p}b0", f"{p}b1", f"{p}b2"]
    cpe1 = vs.bridge_info(tb.bridge_of("cpe1"))
    assert cpe1["other_config"]["datapath-id"] == "0000000000000001"
    assert cpe1["external_ids"]["netfate-node"] == "cpe1"
    assert cpe1["fail_mode"] == "standalone"
    peers = {pt.peer for pt in vs.list_ports(tb.bridge_of("cpe1"))}
    assert peers == {"local:cpe1", "host:laptop1", "node:pe1"}
    peers = {pt.peer for pt in vs.list_ports(tb.bridge_of("pe1"))}
    assert peers == {"local:pe1", "node:cpe1", "node:cpe2"}
    assert all(pt.ofport for pt in vs.list_ports(tb.bridge_of("cpe2")))
    # Node namespace: transit address, LAN gateway, forwarding, routes to other LANs.
    addrs = tb.exec("cpe1", ["ip", "-4", "-o", "addr", "show", "eth0"]).stdout
    assert "10.255.0.1/24" in addrs and "192.168.1.1/24" in addrs
    assert links.read_sysctl(tb.netns_of("cpe1"), "net.ipv4.ip_forward") == "1"
    assert "192.168.2.0/24 via 10.255.0.2" in tb.exec("cpe1", ["ip", "route"]).stdout
    # Host namespace: address, MAC from the topology, default route via its gateway.
    eth0 = tb.exec("tv", ["ip", "-o", "addr", "show", "eth0"]).stdout
    assert "192.168.2.20/24" in eth0
    assert "default via 192.168.2.1" in tb.exec("tv", ["ip", "route"]).stdout
    assert not Vsctl(tb.ovs_db).userspace_tso()
    assert not links.tx_checksum_enabled(tb.netns_of("tv"), "eth0")
    # The root namespace got nothing.
    assert not [n for n in links.list_links(None) if n.startswith(p)]
    # Shaping on both bridge-side ends of each link.
    out = netns.run_in(tb.netns_of("sw"), ["tc", "qdisc", "show"]).stdout
    assert out.count("rate 20Mbit") == 4


def test_hosts_reach_each_other_across_cpes_and_pe(two_cpe: Testbed) -> None:
    ping(two_cpe, "laptop1", "192.168.2.20")
    ping(two_cpe, "tv", "192.168.1.2")
    ping(two_cpe, "laptop1", "10.255.0.3")  # the PE's transit address


def test_delay_is_emulated_and_reported(two_cpe: Testbed) -> None:
    st = RunState.load(two_cpe.prefix)
    assert st.emulator in ("netem", "userspace")
    assert st.emulator == ("netem" if st.netem_available else "userspace")
    out = ping(two_cpe, "laptop1", "192.168.2.20", count=5)
    assert min_rtt_ms(out) >= 20.0  # the cpe1-pe1 link adds 10 ms each way
    out = ping(two_cpe, "tv", "10.255.0.3", count=3)  # cpe2-pe1 has no delay
    assert min_rtt_ms(out) < 20.0


def iperf_bps(tb: Testbed, client: str, server: str, server_ip: str, seconds: int = 2) -> float:
    """TCP goodput client -> server; (re)starts the one-shot server until a run completes."""
    srv: subprocess.Popen[bytes] | None = None
    try:
        for _ in range(50):
            if srv is None or srv.poll() is not None:
                srv = netns.popen_in(
                    tb.netns_of(server),
                    ["iperf3", "-s", "-1", "-B", server_ip],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            r = tb.exec(
                client,
                ["iperf3", "-c", server_ip, "-t", str(seconds), "-J"],
                check=False,
                timeout=seconds + 30,
            )
            try:
                return float(json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"])
            except (ValueError, KeyError):
                time.sleep(0.1)  # server not listening yet, or a run that failed
        pytest.fail("iperf3 never completed a run")
    finally:
        if srv is not None:
            srv.kill()
            srv.wait()


def test_rate_is_shaped(two_cpe: Testbed) -> None:
    bps = iperf_bps(two_cpe, "laptop1", "tv", "192.168.2.20")
    assert 0 < bps <= 20_000_000 * 1.1


def test_exec_by_name_and_unknown_name(two_cpe: Testbed) -> None:
    assert "eth0" in two_cpe.exec("pe1", ["ip", "-o", "link"]).stdout
    assert two_cpe.netns_of("sw") == f"{two_cpe.prefix}-sw"
    with pytest.raises(Exception, match="no node or host 'nobody'"):
        two_cpe.exec("nobody", ["true"])


def test_cli_status_and_exec(two_cpe: Testbed) -> None:
    p = two_cpe.prefix
    r = subprocess.run([*CLI, "status", "--prefix", p, "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (doc,) = json.loads(r.stdout)
    assert doc["prefix"] == p and doc["phase"] == "up"
    assert doc["emulator"] == two_cpe.emulator
    assert doc["namespaces"] == {"recorded": 6, "present": 6}
    assert doc["bridges"] == 3
    roles = {x["role"]: x["alive"] for x in doc["processes"]}
    assert roles["ovs-vswitchd"] and roles["ovsdb-server"]
    if two_cpe.emulator == "userspace":
        assert roles["linkemu"]
    r = subprocess.run([*CLI, "status", "--prefix", p], capture_output=True, text=True)
    assert "userspace link emulator" in r.stdout or "netem" in r.stdout
    r = subprocess.run(
        [
            *CLI,
            "exec",
            "--prefix",
            p,
            "laptop1",
            "--",
            "ping",
            "-c",
            "1",
            "-w",
            "5",
            "192.168.2.20",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "1 received" in r.stdout
    r = subprocess.run([*CLI, "exec", "--prefix", p, "tv", "--", "false"], capture_output=True)
    assert r.returncode == 1


def test_same_prefix_refused(two_cpe: Testbed) -> None:
    with pytest.raises(TestbedError, match="exist"):
        Testbed.up(Topology.from_yaml(TWO_CPE), prefix=two_cpe.prefix, control=False)
    assert RunState.load(two_cpe.prefix).phase == "up"


# ------------------------------------------------------------------ other modes


def test_controller_mode_is_secure_and_blocks_without_controller(run_prefix: str) -> None:
    with Testbed.up(
        Topology.from_yaml(TWO_CPE),
        prefix=run_prefix,
        control=False,
        controller="tcp:127.0.0.1:6653",
    ) as tb:
        assert tb.ovs_db is not None
        info = Vsctl(tb.ovs_db).bridge_info(tb.bridge_of("pe1"))
        assert info["fail_mode"] == "secure"
        assert info["protocols"] == "OpenFlow13"
        assert info["controller"] == ["tcp:127.0.0.1:6653"]
        r = tb.exec("laptop1", ["ping", "-c", "2", "-w", "3", "192.168.2.20"], check=False)
        assert r.returncode != 0  # no controller, no flows: nothing passes
    assert leftovers(run_prefix) == []


def test_with_tso_offloads_stay_on_and_tcp_passes(run_prefix: str) -> None:
    with Testbed.up(Topology.from_yaml(TWO_CPE), prefix=run_prefix, control=False, tso=True) as tb:
        assert tb.ovs_db is not None
        assert Vsctl(tb.ovs_db).userspace_tso()
        assert RunState.load(run_prefix).tso
        for name in ("tv", "laptop1", "cpe1", "pe1"):
            assert links.tx_checksum_enabled(tb.netns_of(name), "eth0"), name
        # Only the switch's ends of the emulated (delayed) link lose them: the link
        # emulator's raw sockets need whole frames with their checksums done.
        assert tb.emulator == "userspace"
        assert not links.tx_checksum_enabled(tb.netns_of("sw"), f"{run_prefix}l0a")
        assert links.tx_checksum_enabled(tb.netns_of("sw"), f"{run_prefix}l1a")
        # Through the emulated link, the shaper and both routers, shaped as without TSO.
        bps = iperf_bps(tb, "laptop1", "tv", "192.168.2.20")
        assert 0 < bps <= 20_000_000 * 1.1
    assert leftovers(run_prefix) == []


def test_loop_enables_rstp_and_still_forwards(run_prefix: str) -> None:
    doc = Topology.from_yaml(TWO_CPE).to_dict()
    doc["links"] = [
        {"a": "cpe1", "b": "pe1"},
        {"a": "cpe2", "b": "pe1"},
        {"a": "cpe1", "b": "cpe2"},
    ]
    with Testbed.up(Topology.from_dict(doc), prefix=run_prefix, control=False) as tb:
        assert tb.emulator == "none"
        assert tb.ovs_db is not None
        assert Vsctl(tb.ovs_db).bridge_info(tb.bridge_of("cpe1"))["rstp_enable"] is True
        ping(tb, "laptop1", "192.168.2.20", count=2, deadline=60)
    assert leftovers(run_prefix) == []


def test_generated_topology_connects_far_hosts(run_prefix: str) -> None:
    from netfate.model.topology import generate_tree

    topo = generate_tree(25)
    with Testbed.up(topo, prefix=run_prefix, control=False) as tb:
        hosts = list(topo.hosts.values())
        ping(tb, hosts[0].name, str(hosts[-1].ip), count=2, deadline=20)
        assert len(netns.list_with_prefix(run_prefix + "-")) == 1 + 25 + len(hosts)
    assert leftovers(run_prefix) == []


# ------------------------------------------------------------------ faults


def test_bad_file_names_the_key_and_builds_nothing(run_prefix: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(TWO_CPE.replace("{a: cpe2, b: pe1, rate: 20Mbit}", "{a: cpe2, b: pe9}"))
    r = subprocess.run(
        [*CLI, "up", str(bad), "--prefix", run_prefix, "--no-control"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "links[1].b: unknown node 'pe9'" in r.stderr
    assert leftovers(run_prefix) == []
    r = subprocess.run([*CLI, "check", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "links[1].b" in r.stderr


def test_failure_during_build_rolls_back(run_prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Testbed, controller: str | None) -> None:
        raise TestbedError("injected failure while creating bridges")

    monkeypatch.setattr(Testbed, "_bridges", broken)
    with pytest.raises(TestbedError, match="injected"):
        Testbed.up(Topology.from_yaml(TWO_CPE), prefix=run_prefix, control=False)
    assert leftovers(run_prefix) == []


def _start_cli_up(prefix: str, topo_file: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "up", str(topo_file), "--prefix", prefix, "--no-control"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _communicate_or_clean(p: subprocess.Popen[str], prefix: str) -> tuple[str, str]:
    """Wait for the interrupted build; if it hangs, fail, but kill it (our own child)
    and clean its run first, so a failure leaves nothing behind."""
    try:
        return p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        subprocess.run([*CLI, "clean", "--prefix", prefix], capture_output=True, timeout=120)
        pytest.fail(f"interrupted build did not finish within 60 s: {err[-3000:]}")


def _wait_until_ovs_recorded(prefix: str, p: subprocess.Popen[str]) -> None:
    """Until the journal shows OVS started (so there is real state to remove)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert p.poll() is None, p.communicate()
        try:
            st = RunState.load(prefix)
            if any(r["role"] == "ovs-vswitchd" for r in st.processes):
                return
        except Exception:
            pass
        time.sleep(0.005)
    pytest.fail("OVS never appeared in the journal")


@pytest.fixture
def big_topology(tmp_path: Path) -> Path:
    from netfate.model.topology import generate_tree

    f = tmp_path / "big.yaml"
    f.write_text(generate_tree(60, access_delay="1ms").to_yaml())
    return f


def test_kill_9_during_up_then_clean_removes_everything(
    run_prefix: str, big_topology: Path
) -> None:
    p = _start_cli_up(run_prefix, big_topology)
    _wait_until_ovs_recorded(run_prefix, p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert netns.list_with_prefix(run_prefix + "-")  # it did leave things behind
    assert run_prefix in stale_runs()
    r = subprocess.run([*CLI, "clean", "--prefix", run_prefix], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert leftovers(run_prefix) == []


def test_ctrl_c_during_up_rolls_back(run_prefix: str, big_topology: Path) -> None:
    p = _start_cli_up(run_prefix, big_topology)
    _wait_until_ovs_recorded(run_prefix, p)
    p.send_signal(signal.SIGINT)
    _, err = _communicate_or_clean(p, run_prefix)
    assert p.returncode == 130, err
    assert "removed" in err
    assert leftovers(run_prefix) == []


def test_sigterm_during_up_rolls_back(run_prefix: str, big_topology: Path) -> None:
    p = _start_cli_up(run_prefix, big_topology)
    _wait_until_ovs_recorded(run_prefix, p)
    p.send_signal(signal.SIGTERM)
    _communicate_or_clean(p, run_prefix)
    assert p.returncode == 130
    assert leftovers(run_prefix) == []


def test_cli_up_and_down(run_prefix: str, tmp_path: Path) -> None:
    f = tmp_path / "two.yaml"
    f.write_text(TWO_CPE)
    r = subprocess.run(
        [*CLI, "up", str(f), "--prefix", run_prefix, "--no-control", "--json"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["prefix"] == run_prefix and doc["nodes"] == 3 and doc["api"] is None
    assert doc["emulator"] in ("netem", "userspace")
    # The run outlives the `up` process.
    assert len(netns.list_with_prefix(run_prefix + "-")) == 6
    r = subprocess.run([*CLI, "down", "--prefix", run_prefix], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert leftovers(run_prefix) == []


# ------------------------------------------------------------------ with control processes


def _control_available() -> bool:
    r = subprocess.run(
        [sys.executable, "-m", "netfate", "orchestrator", "--help"], capture_output=True
    )
    a = subprocess.run([sys.executable, "-m", "netfate", "agent", "--help"], capture_output=True)
    return r.returncode == 0 and a.returncode == 0


def test_up_with_orchestrator_and_agents() -> None:
    if not _control_available():
        pytest.fail("netfate orchestrator/agent commands are missing")
    prefix = "nt" + secrets.token_hex(2)  # agents accept at most 6 characters
    import httpx

    with Testbed.up(Topology.from_yaml(TWO_CPE), prefix=prefix, control=True) as tb:
        assert tb.api_url is not None and tb.api_token
        assert httpx.get(f"{tb.api_url}/api/v1/nodes", timeout=10).status_code == 401
        nodes = httpx.get(f"{tb.api_url}/api/v1/nodes", timeout=10,
                          headers={"authorization": f"Bearer {tb.api_token}"}).json()  # fmt: skip
        assert {n["name"]: n["status"] for n in nodes} == {"cpe1": "up", "cpe2": "up", "pe1": "up"}
        roles = sorted(r.role for r in tb.state.process_refs())
        assert "orchestrator" in roles and "agent:pe1" in roles
        assert "prometheus" in roles  # the run's own, stopped by PID below
        assert "frontdoor" in roles and tb.door_url == "http://10.255.0.254"
        # The front door's namespace: the transit network's last address, behind cpe1
        # (the first node), which routes it; the others route it via cpe1.
        door = netns.run_in(f"{prefix}-door", ["ip", "-4", "-o", "addr", "show"]).stdout
        assert "10.255.0.254/32" in door
        assert "10.255.0.254 dev door" in tb.exec("cpe1", ["ip", "route"]).stdout
        assert "10.255.0.254 via 10.255.0.1" in tb.exec("pe1", ["ip", "route"]).stdout
        # Each agent has its own credential, in a file only root reads; no token nor
        # password is on any process's argument list.
        files = sorted(tb.state.secrets.iterdir())
        assert {f.name for f in files} >= {"operator.json", "operator.token",
                                          "agent-cpe1.token", "agent-pe1.token"}  # fmt: skip
        assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
        assert tb.state.secrets.stat().st_mode & 0o777 == 0o700
        secrets_ = {f.read_text().strip() for f in files if f.suffix in (".token", ".secret")}
        secrets_ |= {tb.operator()[1]}  # type: ignore[index]
        for r in tb.state.process_refs():
            argv = Path(f"/proc/{r.pid}/cmdline").read_bytes().decode(errors="replace")
            assert not [s for s in secrets_ if s in argv], r.role
        refs = tb.state.process_refs()
        ping(tb, "laptop1", "192.168.2.20", count=2)
    assert not any(proc.alive(r) for r in refs)
    assert leftovers(prefix) == []


def test_a_run_that_is_up_is_not_stale(two_cpe: Testbed) -> None:
    assert two_cpe.prefix not in stale_runs()


def test_hundred_nodes(run_prefix: str) -> None:
    from netfate.model.topology import generate_tree

    topo = generate_tree(100, access_delay="1ms")
    with Testbed.up(topo, prefix=run_prefix, control=False) as tb:
        assert len(netns.list_with_prefix(run_prefix + "-")) == 1 + 100 + 90
        assert tb.ovs_db is not None
        assert len(Vsctl(tb.ovs_db).list_bridges()) == 100
        hosts = list(topo.hosts.values())
        # First CPE under pe1 to the last CPE under pe10: six bridges and two routers apart.
        out = ping(tb, hosts[0].name, str(hosts[-1].ip), count=2, deadline=30)
        assert min_rtt_ms(out) >= 4.0  # two 1 ms access links, both ways
    assert leftovers(run_prefix) == []
