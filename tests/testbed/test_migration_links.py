"""A migration's bytes cross the emulated link between the two nodes (issue 15, 5).

The demo's testbed (cpe1 -- pe1: 100 Mbit/s, 5 ms each way, delay by the userspace
link emulator here, netem where the kernel has it). A VO host with ten objects of
512 KiB of history each runs at cpe1 and migrates to pe1. The agents' migration
channel lives in the nodes' namespaces, on their transit addresses (agent/channel.py):

- each agent registered its node's transit address, and the source's listener is a
  socket of cpe1's namespace: the root namespace has none on that port;
- during the move the link's interfaces (the bridges' ends, and the emulator's ends
  where it runs) count at least the objects' bytes in the source -> target direction,
  and the emulator passed at least as many frames as those bytes take;
- a tap on the root namespace's loopback, filtered on the source's migration port,
  sees nothing, while the same tap filtered on the orchestrator's port (the agents'
  polls and reports) does see traffic, and the same tap on the link sees the move.

Figures (migration time, downtime) are printed, not asserted.
"""

from __future__ import annotations

import ctypes
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from netfate.demo import platform
from netfate.host import links, netns
from netfate.model.topology import LinkSpec
from netfate.testbed.builder import Testbed
from testbed_procs import serving_at, until, up_testbed

SOURCE, TARGET = "cpe1", "pe1"
OBJECTS, PRELOAD = 10, 512 * 1024
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33  # root: past net.core.rmem_max


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def _tcp_port_filter(port: int) -> list[tuple[int, int, int, int]]:
    """Classic BPF for "IPv4, TCP, source or destination port `port`" on an Ethernet
    frame (the loopback's frames carry a zeroed Ethernet header too); as `tcpdump -dd
    'ip and tcp port P'` prints it."""
    return [
        (0x28, 0, 0, 12),  # ldh [12]            ethertype
        (0x15, 0, 8, 0x0800),  # jeq IPv4         else drop
        (0x30, 0, 0, 23),  # ldb [23]             protocol
        (0x15, 0, 6, 6),  # jeq TCP               else drop
        (0x28, 0, 0, 20),  # ldh [20]             fragment offset
        (0x45, 4, 0, 0x1FFF),  # jset              a later fragment: drop
        (0xB1, 0, 0, 14),  # ldxb 4*([14]&0xf)    IP header length
        (0x48, 0, 0, 14),  # ldh [x+14]           source port
        (0x15, 2, 0, port),  # jeq port            accept
        (0x48, 0, 0, 16),  # ldh [x+16]           destination port
        (0x15, 0, 1, port),  # jeq port            else drop
        (0x06, 0, 0, 0x40000),  # ret whole frame
        (0x06, 0, 0, 0),  # ret 0: drop
    ]


class PortTap:
    """TCP payload bytes to or from `port` seen on `ifname` of namespace `ns` (None: the
    root namespace), counted by a thread from an AF_PACKET socket that the kernel
    filters (only matching frames reach it), in both directions."""

    def __init__(self, ns: str | None, ifname: str, port: int) -> None:
        self.sock = netns.socket_in(ns, socket.AF_PACKET, socket.SOCK_RAW, 0)  # none yet
        prog = _tcp_port_filter(port)
        insns = (_SockFilter * len(prog))(*[_SockFilter(*i) for i in prog])
        fprog = _SockFprog(len(prog), insns)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))  # type: ignore[call-overload]
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
        self.sock.bind((ifname, ETH_P_ALL))  # frames flow only now, through the filter
        self.sock.settimeout(0.2)
        self.payload = 0
        self.frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self.sock.recv(1 << 18)
            except TimeoutError:
                continue
            ihl = (frame[14] & 0x0F) * 4
            (total,) = struct.unpack_from("!H", frame, 16)
            doff = (frame[14 + ihl + 12] >> 4) * 4
            self.payload += max(0, total - ihl - doff)
            self.frames += 1

    def close(self) -> int:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        return self.payload


@pytest.fixture(scope="module")
def tb() -> Iterator[Testbed]:
    with up_testbed("demo", prometheus=False) as bed:
        yield bed


def _link(tb: Testbed) -> tuple[LinkSpec, str, str]:
    """The link between SOURCE and TARGET, and its sides facing each."""
    lk = next(x for x in tb.topology.links if {x.a, x.b} == {SOURCE, TARGET})
    return (lk, "a", "b") if lk.a == SOURCE else (lk, "b", "a")


def _emulated(tb: Testbed, lk: LinkSpec) -> bool:
    return tb.emulator == "userspace" and lk.impaired


def _counters(tb: Testbed, lk: LinkSpec, src: str, dst: str) -> dict[str, int]:
    """Bytes of the source -> target direction on each interface of the link."""
    n, sw = tb.names, tb.names.sw
    out = {
        "bridge end at the source, tx": links.link_stats(sw, n.link_port(lk.index, src))[
            "tx_bytes"
        ],
        "bridge end at the target, rx": links.link_stats(sw, n.link_port(lk.index, dst))[
            "rx_bytes"
        ],
    }
    if _emulated(tb, lk):
        out["emulator end at the source, rx"] = links.link_stats(sw, n.emu_port(lk.index, src))[
            "rx_bytes"
        ]
        out["emulator end at the target, tx"] = links.link_stats(sw, n.emu_port(lk.index, dst))[
            "tx_bytes"
        ]
    return out


def _emulator_frames(tb: Testbed, lk: LinkSpec, src: str) -> int:
    """Frames the emulator delivered in the source -> target direction (its stats file,
    rewritten every second)."""
    doc = json.loads((tb.state.dir / "linkemu.json").read_text())
    return int(doc[str(lk.index)][f"{src}->{'b' if src == 'a' else 'a'}"]["delivered"])


def _listeners(ns: str | None) -> set[str]:
    out = netns.run_in(ns, ["ss", "-ltnH"]).stdout
    return {line.split()[3] for line in out.splitlines() if line.strip()}


def _port(endpoint: str) -> int:
    return int(endpoint.rpartition(":")[2])


def test_each_agent_listens_on_its_nodes_transit_address_in_its_namespace(tb: Testbed) -> None:
    assert tb.api_url
    api = platform.Api(tb.api_url, tb.api_token)
    nodes = {n["name"]: n for n in api("GET", "/nodes")}
    root = _listeners(None)
    for name, node in tb.state.nodes.items():
        endpoint = str(nodes[name]["endpoint"])
        assert endpoint.rpartition(":")[0] == str(node["transit_ip"]), (name, endpoint)
        assert endpoint in _listeners(tb.netns_of(name)), name
        assert not any(a.endswith(f":{_port(endpoint)}") for a in root), (name, root)


def test_a_migration_crosses_the_emulated_link_and_not_the_root_loopback(tb: Testbed) -> None:
    assert tb.api_url
    api = platform.Api(tb.api_url, tb.api_token)
    objects = [
        {"vo": k, "user": "ann", "sensor": f"1-{k + 1}", "preload": PRELOAD} for k in range(OBJECTS)
    ]
    inst = api("POST", "/instances", {"descriptor": "vo-host", "node": SOURCE,
                                      "config": {"objects": objects}})  # fmt: skip
    iid = str(api.wait_state(inst["id"], "running", timeout=60.0)["id"])
    until("the source serving", lambda: serving_at(tb, iid) == SOURCE, timeout=60.0)
    nodes = {n["name"]: n for n in api("GET", "/nodes")}
    mig_port = _port(str(nodes[SOURCE]["endpoint"]))
    api_port = int(tb.api_url.rpartition(":")[2])
    lk, src, _dst = _link(tb)
    taps = {
        "root lo, migration port": PortTap(None, "lo", mig_port),
        "root lo, orchestrator port": PortTap(None, "lo", api_port),
        "link, migration port": PortTap(tb.names.sw, tb.names.link_port(lk.index, src), mig_port),
    }
    try:
        before = _counters(tb, lk, src, _dst)
        frames0 = _emulator_frames(tb, lk, src) if _emulated(tb, lk) else 0
        t0 = time.monotonic()
        mid = int(api("POST", f"/instances/{iid}/migrate", {"node": TARGET})["id"])
        m = api.wait_migration(iid, mid, timeout=120.0)
        took = time.monotonic() - t0
        assert m["phase"] == "done", m
        after = _counters(tb, lk, src, _dst)
        until("one copy, at the target", lambda: serving_at(tb, iid) == TARGET, timeout=60.0)
    finally:
        seen = {name: tap.close() for name, tap in taps.items()}
    moved = OBJECTS * PRELOAD  # raw bytes; the snapshot carries them in base64
    grew = {k: after[k] - before[k] for k in after}
    print(
        f"\nmigration {mid} over {tb.emulator} link ({lk.rate_bps} bit/s, {lk.delay_us} us each "
        f"way): {took * 1e3:.0f} ms from request to done, downtime {m['downtime_ms']} ms, "
        f"final state {m['state_bytes']} B; link grew {grew}; taps {seen}"
    )
    for name, delta in grew.items():
        assert delta >= moved, (name, delta, moved)
    assert seen["link, migration port"] >= moved, seen
    assert seen["root lo, orchestrator port"] > 0, seen  # the tap works on lo
    assert seen["root lo, migration port"] == 0, seen
    if _emulated(tb, lk):
        # Each frame carries at most an MTU's worth; the stats file lags up to 1 s.
        need = frames0 + moved // (lk.mtu or 1500)
        until("the emulator's counters", lambda: _emulator_frames(tb, lk, src) >= need, 5.0)
    api("DELETE", f"/instances/{iid}")
    api.wait_state(iid, "gone")
