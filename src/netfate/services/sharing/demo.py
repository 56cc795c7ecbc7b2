"""`netfate demo sharing`: the seed's scenarios on a real testbed (examples/hotel.yaml).

The testbed runs with netfate's SDN controller (``SDN = True``: bridges in
secure mode). A Personal Network's LAN is isolated (services/sharing/network.py):
the fabric's LAN-to-LAN intents go, and each share adds the intents of its own
data path only.

check(): first, before any PN exists, hosts of different LANs reach each other
directly (ping, TCP, UDP): the routed network works, so the probes can tell.
Then every node with a LAN becomes a Personal Network (owner email
`<node>@<topology>.example`), and the same probes between every two hosts of
different PNs, both ways, get nothing through. Each share of the topology's plan
is requested, accepted, and proved: a host of the recipient PN talks to the
shared device at its PN-local alias (UDP and ping), and the device sees that
host at a PN1-local alias; broadcast and multicast cross the share both ways;
a 1500-byte packet with DF set and a TCP bulk transfer cross the overlay
whole. Then the negative cases, with the shares up: no direct path between PNs
(the shared device included), an unshared device of PN1 cannot use the share,
a third PN gets nothing through it. Finally revocation removes the VPs, their
intents, and the alias stops answering. On the hotel, then, real software through
shares made without typing a port (issue 13): minidlna with an async-upnp-client
control point, gerbera on its default port found by active (M-SEARCH:
async-upnp-client, gssdp-discover) and passive control points, browsed and
fetched, and an RTSP camera resolved over mDNS and played by ffmpeg; each share
shows the ports VP1 learned. Last, the home PN's vHG:
laptop takes a lease from it (the vHG as router), the lease shows in the PN's
inventory, laptop reaches its node through the vHG's NAT and no other PN; then
the vHG goes and laptop gets its address back. Each step raises DemoFailed
with its reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import itertools
import json
import os
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netfate.demo import dhcp, peers
from netfate.demo.platform import Api, DemoFailed, Say
from netfate.demo.sdn import until
from netfate.host import netns
from netfate.testbed.builder import Testbed

TOPOLOGY = Path(__file__).parent / "topologies" / "hotel.yaml"
SDN = True  # bridges in secure mode: the PNs' isolation is the controller's

# topology name -> shares (owner node, device, recipient node)
PLANS: dict[str, list[tuple[str, str, str]]] = {
    "hotel": [("home", "mediaserver", "hotel")],
    "classroom": [
        ("teacher", "tlaptop", "school"),
        ("student1", "s1tablet", "school"),
        ("student2", "s2tablet", "school"),
    ],
    "surveillance": [("site1", "cam1", "ops"), ("site2", "cam2", "ops"), ("site3", "cam3", "ops")],
}
PORT = 7070
ISO_PORT = 7071  # the isolation probes (UDP and TCP)
GROUP_PORT = 7072  # broadcast through a share
SSDP = ("239.255.255.250", 1900)
BULK_BYTES = 8 << 20


def email(tb: Testbed, node: str) -> str:
    return f"{node}@{tb.topology.name}.example"


@dataclass
class Share:
    id: int
    owner_node: str
    device: str
    recipient_node: str
    alias: str
    """The device's address in the recipient PN."""
    att: dict[str, Any]
    setup_ms: float
    """From the accept call to the first packet delivered through the share."""


@contextlib.contextmanager
def udp_in(ns: str, bind: tuple[str, int] = ("0.0.0.0", 0)) -> Iterator[socket.socket]:
    s = netns.socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(bind)
        s.settimeout(5.0)
        yield s
    finally:
        s.close()


def create_pns(tb: Testbed, api: Api) -> None:
    for name, node in tb.topology.nodes.items():
        if node.lans:
            api("POST", "/sharing/pns", {"email": email(tb, name), "node": name})


def wait_active(api: Api, sid: int, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        sh: dict[str, Any] = api("GET", f"/sharing/shares/{sid}")
        if sh["state"] == "active":
            return sh
        if sh["state"] in ("failed", "revoked", "declined"):
            raise DemoFailed(f"share {sid} is {sh['state']}: {sh['detail']}")
        if time.monotonic() > deadline:
            raise DemoFailed(f"share {sid} still {sh['state']} after {timeout:.0f} s")
        time.sleep(0.02)


def first_delivery(tb: Testbed, device: str, client: str, alias: str, timeout: float) -> None:
    """Send until the device gets a datagram at its alias (the share is usable)."""
    with udp_in(tb.netns_of(device), ("0.0.0.0", PORT)) as srv, udp_in(tb.netns_of(client)) as c:
        srv.settimeout(0.01)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            c.sendto(b"probe", (alias, PORT))
            try:
                srv.recvfrom(100)
                return
            except TimeoutError:
                continue
    raise DemoFailed(f"{client} never reached {device} at {alias}")


def share_and_accept(
    tb: Testbed, api: Api, owner: str, device: str, to: str, http_ports: list[int] | None = None
) -> Share:
    """The owner (signed in as themselves) shares, the recipient accepts."""
    sh = api.as_user(email(tb, owner))(
        "POST", "/sharing/shares", {"owner": email(tb, owner), "device": device,
                                    "recipient": email(tb, to), "http_ports": http_ports or []},
    )  # fmt: skip
    client = next(h.name for h in tb.topology.hosts.values() if h.node == to)
    t0 = time.monotonic()
    acc = api.as_user(email(tb, to))(
        "POST", f"/sharing/shares/{sh['id']}/accept", {"by": email(tb, to)}
    )
    alias = acc["att"]["import_alias"]
    wait_active(api, sh["id"])
    first_delivery(tb, device, client, alias, timeout=30.0)
    ms = (time.monotonic() - t0) * 1000
    return Share(sh["id"], owner, device, to, alias, acc["att"], ms)


def prove_usable(tb: Testbed, sh: Share, say: Say) -> None:
    """Each recipient host reaches the device at the alias and is seen at a PN1 alias."""
    pn1_alias = {d: a for a, d in sh.att["entries"]}
    for h in [h for h in tb.topology.hosts.values() if h.node == sh.recipient_node]:
        with (
            udp_in(tb.netns_of(sh.device), ("0.0.0.0", PORT)) as srv,
            udp_in(tb.netns_of(h.name)) as cli,
        ):
            hello = f"hello from {h.name}".encode()
            # UDP over emulated links: a datagram may be lost (an ARP entry still being
            # resolved, a relay busy), so a few tries, each bounded by the timeout.
            for attempt in range(4):
                cli.sendto(hello, (sh.alias, PORT))
                try:
                    # Late probes of first_delivery() may still be on their way: skip them.
                    while (got := srv.recvfrom(200))[0] != hello:
                        pass
                    data, peer = got
                    srv.sendto(b"reply " + data, peer)
                    _, frm = cli.recvfrom(200)
                    break
                except TimeoutError:
                    if attempt == 3:
                        raise DemoFailed(
                            f"{h.name} cannot talk to {sh.device} at {sh.alias}"
                        ) from None
        want = pn1_alias.get(str(h.ip))
        if peer[0] != want or frm[0] != sh.alias:
            raise DemoFailed(f"{sh.device} saw {h.name} as {peer[0]} (want {want}), reply from "
                             f"{frm[0]} (want {sh.alias})")  # fmt: skip
        netns.run_in(tb.netns_of(h.name), ["ping", "-c", "1", "-W", "5", sh.alias])
        say(f"{h.name} ({h.ip}) uses {sh.device} at {sh.alias}; {sh.device} sees it as {peer[0]}")


def only_sentinel(tb: Testbed, receiver: str, intruder: str, legit: str, dst: str) -> None:
    """`intruder` sends to `dst` first, `legit` second: `receiver` must get only the second.

    Ordering instead of a timeout: both go the same way, so had the first got
    through it would have arrived first.
    """
    with (
        udp_in(tb.netns_of(receiver), ("0.0.0.0", PORT)) as srv,
        udp_in(tb.netns_of(intruder)) as bad,
        udp_in(tb.netns_of(legit)) as good,
    ):
        # Twice: the first round also resolves every ARP entry on the way, so that
        # in the second an intruder's datagram cannot be overtaken by the sentinel.
        for n in (1, 2):
            bad.sendto(b"intruder", (dst, PORT))
            good.sendto(b"sentinel%d" % n, (dst, PORT))
            data, _ = srv.recvfrom(100)
            if data != b"sentinel%d" % n:
                raise DemoFailed(f"{intruder} got through to {receiver} via {dst}")


def prove_isolation(tb: Testbed, sh: Share, say: Say) -> None:
    hosts = tb.topology.hosts.values()
    d2 = sh.device
    owners = [h.name for h in hosts if h.node == sh.owner_node and h.name != d2]
    recips = [h.name for h in hosts if h.node == sh.recipient_node]
    thirds = [h.name for h in hosts if h.node not in (sh.owner_node, sh.recipient_node)]
    if owners:
        # An unshared PN1 device cannot use VP2's aliases to reach PN2.
        (alias, dev) = sh.att["entries"][0]
        target = next(h.name for h in hosts if str(h.ip) == dev)
        only_sentinel(tb, target, owners[0], d2, alias)
        say(f"{owners[0]} (not shared) cannot reach {target} through the share")
    if thirds:
        # A third PN's packets to the alias go nowhere: VP2 drops unknown senders.
        only_sentinel(tb, d2, thirds[0], recips[0], sh.alias)
        say(f"{thirds[0]} (a third PN) gets nothing through the share")


# ------------------------------------------------------------------ isolation

Crossing = tuple[str, str, str]
"""(source host, destination host, protocol: ping, tcp or udp)."""


def crossings(tb: Testbed, pairs: list[tuple[str, str]], wait: float = 2.0) -> set[Crossing]:
    """Which (source host, destination host) pairs get through to the destination's
    own address, by ping, TCP and UDP. All probes run at once; what has not arrived
    within `wait` seconds did not get through (a dropped packet sends nothing back).
    A TCP reset would count as getting through: it comes from the destination."""
    hosts = tb.topology.hosts
    got: set[Crossing] = set()
    lock = threading.Lock()
    udp: dict[str, socket.socket] = {}
    tcp: dict[str, socket.socket] = {}
    try:
        for dst in sorted({d for _, d in pairs}):
            u = netns.socket_in(tb.netns_of(dst), socket.AF_INET, socket.SOCK_DGRAM)
            u.bind(("0.0.0.0", ISO_PORT))
            u.setblocking(False)
            udp[dst] = u
            t = netns.socket_in(tb.netns_of(dst), socket.AF_INET, socket.SOCK_STREAM)
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            t.bind(("0.0.0.0", ISO_PORT))
            t.listen(64)
            tcp[dst] = t

        def ping(src: str, dst: str) -> None:
            argv = ["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", str(wait), str(hosts[dst].ip)]
            if netns.run_in(tb.netns_of(src), argv, check=False).returncode == 0:
                with lock:
                    got.add((src, dst, "ping"))

        def connect(src: str, dst: str) -> None:
            c = netns.socket_in(tb.netns_of(src), socket.AF_INET, socket.SOCK_STREAM)
            try:
                c.settimeout(wait)
                c.connect((str(hosts[dst].ip), ISO_PORT))
                reached = True
            except (ConnectionRefusedError, ConnectionResetError):
                reached = True
            except OSError:  # timed out, or unreachable
                reached = False
            finally:
                c.close()
            if reached:
                with lock:
                    got.add((src, dst, "tcp"))

        with ThreadPoolExecutor(max_workers=min(64, 2 * len(pairs))) as pool:
            jobs = [pool.submit(f, a, b) for a, b in pairs for f in (ping, connect)]
            for src, dst in pairs:
                with udp_in(tb.netns_of(src)) as u:
                    for _ in range(3):
                        u.sendto(f"iso {src}".encode(), (str(hosts[dst].ip), ISO_PORT))
            sel = selectors.DefaultSelector()
            for dst, u in udp.items():
                sel.register(u, selectors.EVENT_READ, dst)
            deadline = time.monotonic() + wait
            while (left := deadline - time.monotonic()) > 0:
                for key, _ in sel.select(left):
                    with contextlib.suppress(BlockingIOError):
                        data, _peer = key.fileobj.recvfrom(100)  # type: ignore[union-attr]
                        got.add((data.decode(errors="replace")[4:], str(key.data), "udp"))
            sel.close()
            for j in jobs:
                j.result()
    finally:
        for sock in (*udp.values(), *tcp.values()):
            sock.close()
    return got


def cross_pn_pairs(tb: Testbed) -> list[tuple[str, str]]:
    """Every ordered pair of hosts on different nodes (each node's LAN one PN)."""
    hosts = sorted(tb.topology.hosts.values(), key=lambda h: h.name)
    return [(a.name, b.name) for a, b in itertools.permutations(hosts, 2) if a.node != b.node]


def prove_routed_before_pns(tb: Testbed, say: Say) -> list[tuple[str, str]]:
    """Before any PN exists the LANs are routed to each other: the probes can tell."""
    pairs = cross_pn_pairs(tb)
    sample = pairs[:: max(1, len(pairs) // 4)][:4]
    want = {(a, b, p) for a, b in sample for p in ("ping", "tcp", "udp")}
    until("direct routing between LANs (before any PN)",
           lambda: crossings(tb, sample) >= want)  # fmt: skip
    say(f"before PNs: {', '.join(f'{a}->{b}' for a, b in sample)} reach each other directly "
        "(ping, TCP, UDP)")  # fmt: skip
    return sample


def prove_direct_isolation(tb: Testbed, say: Say, when: str) -> None:
    """No host of one PN reaches any host of another at its own address, either way."""
    pairs = cross_pn_pairs(tb)
    leaks = crossings(tb, pairs)
    if leaks:
        raise DemoFailed(f"{when}: PNs are not isolated: {sorted(leaks)}")
    say(f"{when}: none of {len(pairs)} host pairs across PNs gets through directly "
        "(ping, TCP, UDP; both ways, third PN included)")  # fmt: skip


# ------------------------------------------------------------------ group traffic, MTU


@contextlib.contextmanager
def _receivers(
    tb: Testbed, names: list[str], port: int, group: str | None = None
) -> Iterator[dict[str, socket.socket]]:
    socks: dict[str, socket.socket] = {}
    try:
        for name in names:
            s = netns.socket_in(tb.netns_of(name), socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", port))
            if group is not None:
                mreq = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton("0.0.0.0"))
                s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            s.settimeout(5.0)
            socks[name] = s
        yield socks
    finally:
        for s in socks.values():
            s.close()


def _group_send(
    tb: Testbed,
    sender: str,
    dst: tuple[str, int],
    receivers: dict[str, socket.socket],
    payload: bytes,
    expect: str | None,
) -> dict[str, set[str]]:
    """Send until every receiver got `payload` from address `expect` (a few tries: the
    first may meet flows still being installed). Returns, per receiver, the source
    addresses it got the payload from (another share may deliver it too)."""
    seen: dict[str, set[str]] = {name: set() for name in receivers}
    with udp_in(tb.netns_of(sender)) as out:
        out.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        out.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 4)
        for _ in range(4):
            out.sendto(payload, dst)
            for name, r in receivers.items():
                with contextlib.suppress(TimeoutError):
                    while expect not in seen[name]:
                        data, frm = r.recvfrom(2000)
                        if data == payload:
                            seen[name].add(frm[0])
            if all(expect in v for v in seen.values()):
                break
    return seen


def prove_group_traffic(
    tb: Testbed, sh: Share, say: Say, others: list[Share] | tuple[Share, ...] = ()
) -> None:
    """Broadcast and multicast cross the share, each way, and reach no third PN.

    `others` are the other shares up: a PN that shares with this one's owner or
    recipient through one of them is no third PN (it may hear the same group)."""
    hosts = tb.topology.hosts
    recips = [h for h in hosts if hosts[h].node == sh.recipient_node]
    related = {sh.owner_node, sh.recipient_node}
    for o in others:
        if {o.owner_node, o.recipient_node} & {sh.owner_node, sh.recipient_node}:
            related |= {o.owner_node, o.recipient_node}
    thirds = [h for h in hosts if hosts[h].node not in related]
    pn1_alias = {d: a for a, d in sh.att["entries"]}
    # D2's limited broadcast reaches every PN2 host, from the alias.
    with _receivers(tb, recips + thirds, GROUP_PORT) as rs:
        pn2 = {h: rs[h] for h in recips}
        payload = f"broadcast from {sh.device}".encode()
        seen = _group_send(tb, sh.device, ("255.255.255.255", GROUP_PORT), pn2, payload, sh.alias)
        if not all(sh.alias in v for v in seen.values()):
            raise DemoFailed(f"{sh.device}'s broadcast: PN2 hosts saw {seen} (want all "
                             f"from {sh.alias})")  # fmt: skip
        _nothing_at(rs, thirds, "a broadcast of the shared device")
    # A PN2 host's SSDP multicast and its LAN broadcast reach D2, from its PN1 alias.
    src = recips[0]
    want = pn1_alias.get(str(hosts[src].ip))
    msearch = (b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\""
               b"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n")  # fmt: skip
    with _receivers(tb, [sh.device, *thirds], SSDP[1], group=SSDP[0]) as rs:
        seen = _group_send(tb, src, SSDP, {sh.device: rs[sh.device]}, msearch, want)
        if want not in seen[sh.device]:
            raise DemoFailed(f"{src}'s SSDP search reached {sh.device} as {seen} (want {want})")
        _nothing_at(rs, thirds, f"{src}'s SSDP search")
    lan2 = tb.topology.nodes[sh.recipient_node].lans[0]
    with _receivers(tb, [sh.device, *thirds], GROUP_PORT) as rs:
        bcast = (str(lan2.broadcast_address), GROUP_PORT)
        payload = f"broadcast from {src}".encode()
        seen = _group_send(tb, src, bcast, {sh.device: rs[sh.device]}, payload, want)
        if want not in seen[sh.device]:
            raise DemoFailed(f"{src}'s LAN broadcast reached {sh.device} as {seen} (want {want})")
        _nothing_at(rs, thirds, f"{src}'s LAN broadcast")
    say(f"broadcast of {sh.device} reaches {', '.join(recips)} from {sh.alias}; SSDP search "
        f"and LAN broadcast of {src} reach {sh.device} from {want}"
        + (f"; {', '.join(thirds)} (third PN) got none" if thirds else ""))  # fmt: skip


def _nothing_at(rs: dict[str, socket.socket], names: list[str], what: str) -> None:
    """The others received nothing by now (they were sent the same, before)."""
    for name in names:
        rs[name].setblocking(False)
        with contextlib.suppress(BlockingIOError):
            data, frm = rs[name].recvfrom(2000)
            raise DemoFailed(f"{name} (a third PN) received {what} from {frm[0]}: {data[:40]!r}")


def prove_mtu(tb: Testbed, sh: Share, say: Say) -> float:
    """A 1500-byte packet with DF set crosses the overlay whole, both ways, and a TCP
    bulk transfer (full-size segments, no MSS clamping) comes back intact. Returns
    the transfer's rate in Mbit/s (each way)."""
    hosts = tb.topology.hosts
    client = next(h for h in hosts if hosts[h].node == sh.recipient_node)
    pn1_alias = {d: a for a, d in sh.att["entries"]}[str(hosts[client].ip)]
    for ns, dst in ((tb.netns_of(client), sh.alias), (tb.netns_of(sh.device), pn1_alias)):
        argv = ["ping", "-n", "-q", "-M", "do", "-s", "1472", "-c", "3", "-i", "0.2", "-W", "5",
                dst]  # fmt: skip
        p = netns.run_in(ns, argv, check=False)
        if p.returncode != 0:
            raise DemoFailed(f"1500-byte DF ping to {dst} failed: {p.stdout}{p.stderr}")
    srv = netns.socket_in(tb.netns_of(sh.device), socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", PORT))
    srv.listen(1)
    srv.settimeout(30)
    blob = os.urandom(BULK_BYTES)
    echo_err: list[BaseException] = []

    def echo() -> None:  # D2 sends back what it got, once the client is done
        try:
            conn, _ = srv.accept()
            with conn:
                conn.settimeout(60)
                buf = bytearray()
                while chunk := conn.recv(1 << 16):
                    buf += chunk
                conn.sendall(buf)
        except OSError as e:
            echo_err.append(e)

    th = threading.Thread(target=echo, daemon=True)
    th.start()
    cli = netns.socket_in(tb.netns_of(client), socket.AF_INET, socket.SOCK_STREAM)
    try:
        cli.settimeout(60)
        cli.connect((sh.alias, PORT))
        mss = cli.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
        t0 = time.monotonic()
        cli.sendall(blob)
        cli.shutdown(socket.SHUT_WR)
        back = bytearray()
        while chunk := cli.recv(1 << 16):
            back += chunk
        took = time.monotonic() - t0
    finally:
        cli.close()
        th.join(60)
        srv.close()
    if echo_err or hashlib.sha256(back).digest() != hashlib.sha256(blob).digest():
        raise DemoFailed(f"TCP bulk through the share: {len(back)} of {len(blob)} bytes back "
                         f"intact? no ({echo_err})")  # fmt: skip
    if mss < 1448:
        raise DemoFailed(f"TCP through the share uses MSS {mss}: clamped, not full-size")
    mbit = 2 * len(blob) * 8 / took / 1e6  # one way, then the other: each took half
    say(f"MTU: 1500-byte DF pings cross {client} <-> {sh.device} whole; TCP (MSS {mss}) "
        f"carried {len(blob) >> 20} MiB each way intact, {mbit:.0f} Mbit/s")  # fmt: skip
    return mbit


def revoke(tb: Testbed, api: Api, sh: Share, by: str, say: Say) -> None:
    view = api.as_user(email(tb, by))(
        "POST", f"/sharing/shares/{sh.id}/revoke", {"by": email(tb, by)}
    )
    for iid in (view["vp2_instance"], view["vp1_instance"]):
        api.wait_state(iid, "gone")
    deadline = time.monotonic() + 10
    while left := [n for n in netns.list_with_prefix(tb.prefix + "-")
                   if view["vp2_instance"] in n or view["vp1_instance"] in n]:  # fmt: skip
        if time.monotonic() > deadline:
            raise DemoFailed(f"VP namespaces remain after revocation: {left}")
        time.sleep(0.05)
    vps = {f"instance:{view['vp2_instance']}", f"instance:{view['vp1_instance']}"}
    left_intents = [
        i["intent"]["id"]
        for i in api("GET", "/intents")
        if i["intent"]["id"].startswith(f"share-{sh.id}-") or vps & _endpoints(i["intent"])
    ]
    if left_intents:
        raise DemoFailed(f"intents of share {sh.id} remain after revocation: {left_intents}")
    client = next(h.name for h in tb.topology.hosts.values() if h.node == sh.recipient_node)
    ping = netns.run_in(tb.netns_of(client), ["ping", "-c", "1", "-W", "1", sh.alias], check=False)
    if ping.returncode == 0:
        raise DemoFailed(f"{sh.alias} still answers after revocation")
    say(f"share {sh.id} revoked by {email(tb, by)}: VPs, aliases, overlay and its intents "
        "are gone")  # fmt: skip


def _endpoints(intent: dict[str, Any]) -> set[str]:
    ends = [intent.get(k) for k in ("a", "b", "source", "to")] + list(intent.get("targets", []))
    return {e for e in ends if isinstance(e, str)}


# A UPnP/DLNA control point (PyPI async-upnp-client), run as a separate process in
# a PN2 host's namespace: discover a MediaServer by SSDP, read its description,
# browse its ContentDirectory down to the first item and fetch it.
CONTROL_POINT = r"""
import asyncio, hashlib, json, sys
import xml.etree.ElementTree as ET
import aiohttp
from async_upnp_client.aiohttp import AiohttpRequester
from async_upnp_client.client_factory import UpnpFactory
from async_upnp_client.search import async_search

async def main(src, via):
    found = []
    async def cb(headers):
        found.append({k.lower(): v for k, v in headers.items()})
    for _ in range(5):
        await async_search(cb, timeout=2, source=(src, 0),
                           search_target="urn:schemas-upnp-org:device:MediaServer:1")
        if found:
            break
    locs = sorted({h["location"] for h in found if "location" in h})
    mine = [u for u in locs if u.startswith(f"http://{via}:")]
    dev = await UpnpFactory(AiohttpRequester()).async_create_device(mine[0])
    browse = dev.service("urn:schemas-upnp-org:service:ContentDirectory:1").action("Browse")
    stack, items = ["0"], []
    while stack and not items:
        r = await browse.async_call(ObjectID=stack.pop(), BrowseFlag="BrowseDirectChildren",
                                    Filter="*", StartingIndex=0, RequestedCount=200,
                                    SortCriteria="")
        for el in ET.fromstring(r["Result"]):
            tag = el.tag.rsplit("}", 1)[-1]
            if tag == "container":
                stack.append(el.get("id"))
            elif tag == "item":
                items.append([c.text for c in el if c.tag.endswith("res")])
    url = items[0][0]
    async with aiohttp.ClientSession() as s, s.get(url) as resp:
        data = await resp.read()
    print(json.dumps({"locations": locs, "used": mine[0], "name": dev.friendly_name, "url": url,
                      "sha": hashlib.sha256(data).hexdigest(), "size": len(data)}))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def dlna_available() -> bool:
    return (
        shutil.which("minidlnad") is not None
        and importlib.util.find_spec("async_upnp_client") is not None
    )


def prove_dlna(tb: Testbed, api: Api, say: Say) -> None:
    """Real DLNA through a share: minidlnad on the media server, a control point on the TV."""
    hosts = tb.topology.hosts
    work = Path(tempfile.mkdtemp(prefix=f"{tb.prefix}-dlna-"))
    procs: list[subprocess.Popen[bytes]] = []
    sh: Share | None = None
    try:
        media = work / "media"
        media.mkdir()
        (work / "db").mkdir()
        subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
                        "sine=frequency=440:duration=1", "-y", str(media / "tone.mp3")],
                       check=True, timeout=60)  # fmt: skip
        sha = hashlib.sha256((media / "tone.mp3").read_bytes()).hexdigest()
        conf = work / "minidlna.conf"
        conf.write_text(
            f"media_dir=A,{media}\nport=8200\nnetwork_interface=eth0\nfriendly_name=home-nas\n"
            f"db_dir={work / 'db'}\nlog_dir={work}\ninotify=no\nnotify_interval=5\n"
        )
        with open(work / "minidlna.out", "wb") as log:
            procs.append(netns.popen_in(
                tb.netns_of("mediaserver"),
                ["minidlnad", "-f", str(conf), "-d", "-P", str(work / "minidlna.pid")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            ))  # fmt: skip
        sh = share_and_accept(tb, api, "home", "mediaserver", "hotel", http_ports=[8200])
        script = work / "cp.py"
        script.write_text(CONTROL_POINT)
        tv_ip = str(hosts["tv"].ip)
        out: dict[str, Any] | None = None
        err = ""
        for _ in range(10):  # minidlna indexes the media after it starts
            proc = netns.run_in(tb.netns_of("tv"), [sys.executable, str(script), tv_ip,
                                                    sh.alias], check=False, timeout=60)  # fmt: skip
            if proc.returncode == 0:
                out = json.loads(proc.stdout)
                break
            err = proc.stderr[-1000:]
            time.sleep(0.5)
        if out is None:
            raise DemoFailed(f"the control point on tv failed: {err}")
        # On standalone bridges multicast floods between all LANs, so the server may
        # also answer directly with its PN1 address (on secure bridges nothing but
        # the share carries it); the control point uses the answer that came
        # through the share, whose URLs must all name the alias.
        want = f"http://{sh.alias}:8200/"
        if want + "rootDesc.xml" not in out["locations"] or not out["url"].startswith(want):
            raise DemoFailed(f"URLs not rewritten to the alias {sh.alias}: {out}")
        if out["sha"] != sha:
            raise DemoFailed("the media fetched through the share differs from the file")
        say(f"DLNA: tv discovered '{out['name']}' at {out['used']}, browsed it and "
            f"fetched {out['url']} ({out['size']} bytes, identical)")  # fmt: skip
    finally:
        if sh is not None:
            revoke(tb, api, sh, "home", lambda _m: None)
        stop_procs(procs)
        shutil.rmtree(work, ignore_errors=True)


def stop_procs(procs: list[subprocess.Popen[bytes]]) -> None:
    """End the processes a step started, by their pids."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


# ------------------------------------------------------------------ independent pairs

MEDIA_SERVER = "urn:schemas-upnp-org:device:MediaServer:1"


def pairs_available() -> bool:
    return (
        peers.gerbera_available()
        and peers.camera_available()
        and all(shutil.which(t) for t in ("gssdp-discover", "curl", "ffmpeg"))
        and importlib.util.find_spec("async_upnp_client") is not None
    )


def _learned(api: Api, sh: Share, port: int) -> dict[str, list[int]]:
    """The share's ports once VP1 reports `port` learned (its agent reports it)."""
    got: dict[str, list[int]] = {}

    def seen() -> bool:
        got.update(api("GET", f"/sharing/shares/{sh.id}")["ports"])
        return port in got.get("learned", []) and port in got.get("proxied", [])

    until(f"share {sh.id} to show port {port} learned", seen, 30.0)
    if got["configured"]:
        raise DemoFailed(f"share {sh.id} was made without ports, yet has {got['configured']}")
    return got


def control_point(tb: Testbed, host: str, mode: str, alias: str, script: Path) -> dict[str, Any]:
    """async-upnp-client discovering (active: M-SEARCH; passive: NOTIFY), browsing and
    fetching the first media bytes from `host`; retried while the server indexes."""
    err = ""
    for _ in range(10):
        p = netns.run_in(tb.netns_of(host), [sys.executable, str(script), mode,
                                             str(tb.topology.hosts[host].ip), alias],
                         check=False, timeout=90)  # fmt: skip
        if p.returncode == 0:
            out: dict[str, Any] = json.loads(p.stdout)
            return out
        err = p.stderr[-1000:]
        time.sleep(0.5)
    raise DemoFailed(f"the {mode} control point on {host} failed: {err}")


def prove_independent_pairs(tb: Testbed, api: Api, say: Say) -> None:
    """Issue 13's pairs, each through a share made without typing a port: gerbera (a
    libupnp media server) on its default port found by an actively searching control
    point (async-upnp-client's M-SEARCH; GSSDP's gssdp-discover) and a passive one,
    browsed and fetched; an RTSP camera on 554 found over mDNS and played by ffmpeg."""
    hosts = tb.topology.hosts
    work = Path(tempfile.mkdtemp(prefix=f"{tb.prefix}-pairs-"))
    procs: list[subprocess.Popen[bytes]] = []
    shares: list[Share] = []
    try:
        media = work / "media"
        media.mkdir()
        sha = hashlib.sha256(peers.make_tone(media / "tone.mp3", 2)).hexdigest()
        procs.append(peers.start_gerbera(tb.netns_of("mediaserver"), work, media, "eth0"))
        cam_ip = str(hosts["laptop"].ip)
        procs.append(peers.start_camera(tb.netns_of("laptop"), work, cam_ip))
        ready = work / "camera.out"
        until("the camera to be ready", lambda: ready.exists() and "ready" in ready.read_text(),
              30.0)  # fmt: skip
        g = share_and_accept(tb, api, "home", "mediaserver", "hotel")
        c = share_and_accept(tb, api, "home", "laptop", "hotel")
        shares += [g, c]
        base = f"http://{g.alias}:{peers.GERBERA_PORT}/"
        script = work / "cp.py"
        script.write_text(peers.DISCOVERY_TO_FIRST_BYTE)
        for host, mode in (("tv", "active"), ("guestphone", "passive")):
            out = control_point(tb, host, mode, g.alias, script)
            if not out["location"].startswith(base) or not out["url"].startswith(base):
                raise DemoFailed(f"gerbera's URLs through share {g.id} are not the alias's: {out}")
            say(f"gerbera: {host} discovered it {mode}ly at {out['location']}, browsed it, "
                f"first media byte after {out['discovery_to_first_byte_ms']:.0f} ms")  # fmt: skip
        fetched = work / "fetched.mp3"
        curl = netns.run_in(tb.netns_of("tv"), ["curl", "-sS", "-o", str(fetched), out["url"]],
                            check=False, timeout=60)  # fmt: skip
        if curl.returncode != 0 or hashlib.sha256(fetched.read_bytes()).hexdigest() != sha:
            raise DemoFailed(f"the media fetched through share {g.id} differs: {curl.stderr}")
        gssdp = netns.run_in(tb.netns_of("tv"), ["gssdp-discover", "-i", "eth0", "-t",
                                                 MEDIA_SERVER, "-n", "3"], check=False)  # fmt: skip
        found = {ln.split(":", 1)[1].strip() for ln in gssdp.stdout.splitlines()
                 if ln.strip().startswith("Location:")}  # fmt: skip
        if found != {base + "description.xml"}:
            raise DemoFailed(f"gssdp-discover on tv found {found or 'nothing'}: {gssdp.stderr}")
        ports = _learned(api, g, peers.GERBERA_PORT)
        say(f"gerbera: gssdp-discover on tv finds {base}description.xml; the media fetched "
            f"whole; share {g.id} shows learned ports {ports['learned']} (none typed)")  # fmt: skip
        cam = f"rtsp://{c.alias}:554/cam"
        browse = work / "browse.py"
        browse.write_text(peers.MDNS_BROWSE)
        p = netns.run_in(tb.netns_of("tv"), [peers.SYSTEM_PYTHON, str(browse),
                                             str(hosts["tv"].ip), "_rtsp._tcp.local.", "10"],
                         check=False, timeout=60)  # fmt: skip
        seen = json.loads(p.stdout) if p.returncode == 0 else {}
        if seen.get("addresses") != [c.alias] or seen.get("port") != 554:
            raise DemoFailed(f"mDNS on tv resolved the camera to {seen or p.stderr[-500:]}")
        if seen.get("properties", {}).get("url") != cam:
            raise DemoFailed(f"the camera's TXT URL was not rewritten: {seen}")
        for transport in ("udp", "tcp"):
            argv = ["ffmpeg", "-nostdin", "-loglevel", "info", "-rtsp_transport", transport,
                    "-i", cam, "-frames:v", "10", "-f", "null", "-"]  # fmt: skip
            play = netns.run_in(tb.netns_of("tv"), argv, check=False, timeout=90)
            if play.returncode != 0 or "Video: h264" not in play.stderr:
                raise DemoFailed(f"ffmpeg on tv could not play {cam} over {transport}: "
                                 f"{play.stderr[-1500:]}")  # fmt: skip
        ports = _learned(api, c, 554)
        say(f"camera: tv resolved it over mDNS to {cam} and played it (RTP over UDP and TCP); "
            f"share {c.id} shows learned ports {ports['learned']} (none typed)")  # fmt: skip
    finally:
        for sh in shares:
            revoke(tb, api, sh, "home", lambda _m: None)
        stop_procs(procs)
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------ the vHG


VHG_PORT = 7073  # the NAT probe


@dataclass(frozen=True)
class VhgProof:
    vhg_ip: str
    lease: str
    """The address the host took from the vHG's DHCP."""
    seen_as: str
    """The source address the node saw the host's datagram come from (the vHG's: NAT)."""


def start_vhg(api: Api, pn: str, timeout: float = 30.0) -> dict[str, Any]:
    """Launch the PN's vHG and wait until it runs and its paths are in the network."""
    started: dict[str, Any] = api("POST", f"/sharing/pns/{pn}/vhg")
    inst = api.wait_state(started["vhg_instance"], "running", timeout)
    until(f"the paths of vHG {inst['id']}",
           lambda: bool(api("GET", f"/sharing/pns/{pn}")["vhg_paths"]), timeout)  # fmt: skip
    return inst


def take_lease(tb: Testbed, host: str, timeout: float = 30.0) -> tuple[str, str]:
    """The host asks for a lease on its LAN and takes it; returns (address, router)."""
    return dhcp.lease(tb.netns_of(host), host, take=True, timeout=timeout)


def prove_vhg(tb: Testbed, api: Api, node: str, host: str, say: Say) -> VhgProof:
    """On secure bridges: the PN's vHG gives `host` a lease with itself as router, the
    lease shows in the PN's inventory, and the host's traffic to its node goes out
    through the vHG's NAT. (The host keeps the lease: its topology address is gone.)"""
    pn = email(tb, node)
    inst = start_vhg(api, pn)
    vhg_ip = str(inst["ip"]).split("/")[0]
    lease, router = take_lease(tb, host)
    if router != vhg_ip:
        raise DemoFailed(f"{host}'s lease {lease} names router {router}, not the vHG {vhg_ip}")
    say(f"vHG {inst['id']} ({vhg_ip}) leased {lease} to {host}, itself as router")
    found: dict[str, Any] = {}

    def listed() -> bool:
        found.update({d["ip"]: d for d in api("GET", f"/sharing/pns/{pn}/devices")})
        return bool(found.get(lease, {}).get("source") == "lease")

    until(f"{lease} in {pn}'s inventory", listed, 30.0)
    say(f"{pn}'s inventory lists {lease} ({found[lease]['name']}, {found[lease]['mac']}) "
        "from the vHG's leases")  # fmt: skip
    transit = str(tb.topology.nodes[node].transit_ip)
    with udp_in(tb.netns_of(node), (transit, VHG_PORT)) as srv:
        srv.settimeout(1.0)
        peer: tuple[str, int] | None = None
        with udp_in(tb.netns_of(host)) as cli:
            for _ in range(10):
                cli.sendto(b"via the vHG", (transit, VHG_PORT))
                try:
                    _, peer = srv.recvfrom(100)
                    break
                except TimeoutError:
                    continue
    if peer is None:
        raise DemoFailed(f"{host} ({lease}) never reached {node} ({transit}) through the vHG")
    if peer[0] != vhg_ip:
        raise DemoFailed(f"{node} saw {host}'s datagram from {peer[0]}, not the vHG {vhg_ip}")
    netns.run_in(tb.netns_of(host), ["ping", "-n", "-q", "-c", "1", "-W", "5", transit])
    say(f"{host} ({lease}) reaches {node} at {transit} through the vHG's NAT (seen from {peer[0]})")
    return VhgProof(vhg_ip, lease, peer[0])


def check(tb: Testbed, say: Say) -> None:
    if tb.api_url is None:
        raise DemoFailed("the testbed runs without orchestrator")
    api = Api(tb.api_url, tb.api_token)
    sdn = tb.state.sdn
    if sdn:
        sample = prove_routed_before_pns(tb, say)
    create_pns(tb, api)
    pns = [email(tb, n) for n, spec in tb.topology.nodes.items() if spec.lans]
    say(f"Personal Networks: {', '.join(pns)}")
    if sdn:
        # The controller removes the LAN-to-LAN flows shortly after the intents go.
        until("the PNs' LANs to be cut from each other",
               lambda: not crossings(tb, sample))  # fmt: skip
        prove_direct_isolation(tb, say, "PNs, no share")
    else:
        say("no SDN controller on this testbed: PNs are not isolated (isolation steps skipped)")
    shares = []
    for owner, device, to in PLANS.get(tb.topology.name, []):
        sh = share_and_accept(tb, api, owner, device, to)
        say(f"share {sh.id}: {device} of {email(tb, owner)} is {sh.alias} in {email(tb, to)}; "
            f"accept -> first packet {sh.setup_ms:.0f} ms")  # fmt: skip
        shares.append(sh)
    for sh in shares:
        prove_usable(tb, sh, say)
        prove_group_traffic(tb, sh, say, [o for o in shares if o is not sh])
        prove_isolation(tb, sh, say)
    if sdn:
        prove_direct_isolation(tb, say, f"{len(shares)} shares up")
    if shares:
        prove_mtu(tb, shares[0], say)
    for i, sh in enumerate(shares):
        revoke(tb, api, sh, sh.owner_node if i % 2 == 0 else sh.recipient_node, say)
    if sdn and shares:
        prove_direct_isolation(tb, say, "shares revoked")
    if tb.topology.name == "hotel":
        if dlna_available():
            prove_dlna(tb, api, say)
        else:
            say("DLNA step skipped: needs Debian minidlna and PyPI async-upnp-client")
        if pairs_available():
            prove_independent_pairs(tb, api, say)
        else:
            say("independent pairs skipped: need gerbera, gupnp-tools, GStreamer's RTSP "
                "server, python3-zeroconf, ffmpeg, curl and async-upnp-client")  # fmt: skip
        if sdn:
            prove_vhg_then_restore(tb, api, "home", "laptop", say)


def restore_host(tb: Testbed, host: str) -> None:
    """The host's topology address and default route again (after it took a lease)."""
    spec = tb.topology.hosts[host]
    ns = tb.netns_of(host)
    netns.run_in(ns, ["ip", "addr", "flush", "dev", "eth0"])
    netns.run_in(ns, ["ip", "addr", "add", f"{spec.ip}/{spec.lan.prefixlen}", "dev", "eth0"])
    netns.run_in(ns, ["ip", "route", "replace", "default", "via", str(spec.gateway)])


def prove_vhg_then_restore(tb: Testbed, api: Api, node: str, host: str, say: Say) -> None:
    """The vHG step of the demo: lease, inventory, NAT (prove_vhg), and no other PN
    reached through it; then the vHG goes and the host gets its address back."""
    proof = prove_vhg(tb, api, node, host, say)
    others = [h for h, x in tb.topology.hosts.items() if x.node != node]
    leaks = crossings(tb, [(host, h) for h in others])
    if leaks:
        raise DemoFailed(f"through the vHG, {host} reaches another PN: {sorted(leaks)}")
    say(f"{host} ({proof.lease}, routed by the vHG) reaches none of {len(others)} hosts "
        "of the other PNs (ping, TCP, UDP)")  # fmt: skip
    pn = api("GET", f"/sharing/pns/{email(tb, node)}")
    api("DELETE", f"/instances/{pn['vhg_instance']}")

    def vhg_intents() -> list[str]:
        return [i["intent"]["id"] for i in api("GET", "/intents")
                if i["intent"]["id"].startswith("sharing-vhg-")]  # fmt: skip

    # The service's reconcile loop takes the vHG's intents out with it (reads only read).
    until(f"the intents of vHG {pn['vhg_instance']} to go", lambda: not vhg_intents(), 15.0)
    if api("GET", f"/sharing/pns/{email(tb, node)}")["vhg_paths"]:
        raise DemoFailed(f"the paths of vHG {pn['vhg_instance']} remain after it was deleted")
    restore_host(tb, host)
    say(f"vHG {pn['vhg_instance']} deleted: its intents are gone; {host} has its own address again")


def show(tb: Testbed, say: Say) -> None:
    if tb.api_url is None:
        return
    api = Api(tb.api_url, tb.api_token)
    create_pns(tb, api)
    for owner, device, to in PLANS.get(tb.topology.name, []):
        sh = share_and_accept(tb, api, owner, device, to)
        say(f"{device} of {email(tb, owner)} is {sh.alias} in {email(tb, to)}")
    say(f"owners' pages: {tb.api_url}/api/v1/sharing/page")
