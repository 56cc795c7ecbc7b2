"""Interfaces, addresses, routes and sysctls in any namespace (netlink via pyroute2).

Every function takes the namespace first (None = the root namespace, more
precisely the namespace of the calling thread). Netlink handles are opened
inside the namespace with `netns.socket_in`, so no thread ever switches.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import ipaddress
import os
import re
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netfate.host import netns as _netns

__all__ = [
    "IFNAMSIZ",
    "LinkNotFound",
    "add_address",
    "add_route",
    "add_routes",
    "configure",
    "delete_link",
    "link_exists",
    "link_index",
    "link_stats",
    "list_links",
    "rtnl",
    "set_mac",
    "set_mtu",
    "set_up",
    "sysctl",
    "tx_offload_off",
    "veth_pair",
]

IFNAMSIZ = 16  # including the terminating NUL: names are at most 15 bytes
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,15}$")
_SYSCTL_RE = re.compile(r"^[A-Za-z0-9_.@/-]+$")
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


class LinkNotFound(LookupError):
    def __init__(self, ns: str | None, ifname: str) -> None:
        super().__init__(f"no interface {ifname!r} in namespace {ns or '(root)'}")
        self.ns = ns
        self.ifname = ifname


def _check_ifname(ifname: str) -> str:
    if not _IFNAME_RE.match(ifname) or ifname in (".", ".."):
        raise ValueError(f"invalid interface name {ifname!r} (at most 15 bytes)")
    return ifname


@contextmanager
def rtnl(ns: str | None, sock: socket.socket | None = None) -> Iterator[Any]:
    """A pyroute2 `IPRoute` whose netlink socket lives in `ns`. `sock`: an rtnetlink
    socket opened there in advance (rtnl_socket), used and then closed: opening one
    in a namespace costs a helper thread and a setns, ~1-14 ms on a loaded machine."""
    if sock is None:
        sock = rtnl_socket(ns)
    try:
        ipr = IPRoute(use_socket=sock)
    except BaseException:
        sock.close()
        raise
    try:
        yield ipr
    finally:
        ipr.close()
        sock.close()


def rtnl_socket(ns: str | None) -> socket.socket:
    """An rtnetlink socket in `ns` (it stays there when the namespace is renamed)."""
    return _netns.socket_in(ns, socket.AF_NETLINK, socket.SOCK_DGRAM, 0)


def link_index(ipr: Any, ns: str | None, ifname: str) -> int:
    found = ipr.link_lookup(ifname=_check_ifname(ifname))
    if not found:
        raise LinkNotFound(ns, ifname)
    return int(found[0])


def _ns_fd(ns: str | None) -> int:
    if ns is None:
        # The caller's own namespace; thread-self because /proc/self is the main thread.
        return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    return os.open(_netns.NETNS_DIR / ns, os.O_RDONLY | os.O_CLOEXEC)


def veth_pair(
    name_a: str, ns_a: str | None, name_b: str, ns_b: str | None, mtu: int | None = None
) -> None:
    """Create veth `name_a` in `ns_a` whose peer `name_b` lives in `ns_b`. Both stay down."""
    _check_ifname(name_a)
    _check_ifname(name_b)
    peer: dict[str, Any] = {"ifname": name_b}
    fd = -1
    if ns_a != ns_b:
        fd = _ns_fd(ns_b)
        peer["net_ns_fd"] = fd
    if mtu is not None:
        peer["mtu"] = mtu
    try:
        with rtnl(ns_a) as ipr:
            spec: dict[str, Any] = {"ifname": name_a, "kind": "veth", "peer": peer}
            if mtu is not None:
                spec["mtu"] = mtu
            ipr.link("add", **spec)
    finally:
        if fd >= 0:
            os.close(fd)


def set_up(ns: str | None, ifname: str, up: bool = True) -> None:
    with rtnl(ns) as ipr:
        ipr.link("set", index=link_index(ipr, ns, ifname), state="up" if up else "down")


def set_mtu(ns: str | None, ifname: str, mtu: int) -> None:
    with rtnl(ns) as ipr:
        ipr.link("set", index=link_index(ipr, ns, ifname), mtu=mtu)


def set_mac(ns: str | None, ifname: str, mac: str) -> None:
    if not _MAC_RE.match(mac):
        raise ValueError(f"invalid MAC address {mac!r}")
    with rtnl(ns) as ipr:
        ipr.link("set", index=link_index(ipr, ns, ifname), address=mac.lower())


def add_address(ns: str | None, ifname: str, cidr: str) -> None:
    """Add `cidr` (e.g. 192.168.1.1/24) to `ifname`; adding it twice is not an error."""
    iface = ipaddress.ip_interface(cidr)
    with rtnl(ns) as ipr:
        try:
            ipr.addr(
                "add",
                index=link_index(ipr, ns, ifname),
                address=str(iface.ip),
                prefixlen=iface.network.prefixlen,
            )
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise


def add_route(ns: str | None, dst_cidr: str, gateway: str) -> None:
    """Route `dst_cidr` ("default" or a subnet) via `gateway`; replaces an existing route."""
    gw = ipaddress.ip_address(gateway)
    spec: dict[str, Any] = {"gateway": str(gw)}
    if dst_cidr not in ("default", "0.0.0.0/0"):
        net = ipaddress.ip_network(dst_cidr)
        spec["dst"] = str(net.network_address)
        spec["dst_len"] = net.prefixlen
    with rtnl(ns) as ipr:
        ipr.route("replace", **spec)


def configure(
    ns: str | None,
    ifname: str,
    *,
    mac: str,
    cidr: str | None = None,
    gateway: str | None = None,
    mtu: int | None = None,
    sock: socket.socket | None = None,
) -> None:
    """MAC (and MTU), address, up, default route: what set_mac, add_address, set_up
    and add_route do, over one netlink socket (a warm standby's take: each socket
    opened in a namespace costs a setns). `sock`: that socket, opened in `ns` in
    advance (rtnl_socket; closed here)."""
    if not _MAC_RE.match(mac):
        if sock is not None:
            sock.close()
        raise ValueError(f"invalid MAC address {mac!r}")
    with rtnl(ns, sock) as ipr:
        idx = link_index(ipr, ns, ifname)
        attrs: dict[str, Any] = {"address": mac.lower()}
        if mtu is not None:
            attrs["mtu"] = mtu
        ipr.link("set", index=idx, **attrs)
        if cidr:
            iface = ipaddress.ip_interface(cidr)
            try:
                ipr.addr("add", index=idx, address=str(iface.ip), prefixlen=iface.network.prefixlen)
            except NetlinkError as e:
                if e.code != errno.EEXIST:
                    raise
        ipr.link("set", index=idx, state="up")
        if gateway:
            ipr.route("replace", gateway=str(ipaddress.ip_address(gateway)))


# --- batched route adds -----------------------------------------------------
#
# A testbed node needs a route to every other node's LANs: n^2 routes for n
# nodes. pyroute2 spends ~0.25 ms of Python per message encoding them, so
# these are encoded here and sent many per sendmsg, acks read afterwards.
# Wire format (linux/netlink.h, linux/rtnetlink.h; host byte order):
#   struct nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }   16 bytes
#   struct rtmsg    { u8 family, dst_len, src_len, tos, table, protocol,
#                     scope, type; u32 flags; }                           12 bytes
#   struct rtattr   { u16 len; u16 type; } + 4-byte IPv4 address          RTA_DST, RTA_GATEWAY
# Each request is answered by NLMSG_ERROR: nlmsghdr + s32 error (0 = ack) + the request header.
_RTM_NEWROUTE = 24
_NLMSG_ERROR = 2
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_REPLACE, _NLM_F_CREATE = 0x1, 0x4, 0x100, 0x400
_RT_TABLE_MAIN, _RTPROT_STATIC, _RT_SCOPE_UNIVERSE, _RTN_UNICAST = 254, 4, 0, 1
_RTA_DST, _RTA_GATEWAY = 1, 5
_ROUTE_MSG = struct.Struct("=IHHII BBBBBBBB I HH4s HH4s")
_NLMSGHDR = struct.Struct("=IHHII")
# Each ack is its own skb (~1 KiB of receive buffer): bound what is in flight.
_ROUTES_PER_SEND = 256
_SOL_NETLINK = 270
_NETLINK_CAP_ACK = 10  # acks without a copy of the request


def add_routes(ns: str | None, routes: list[tuple[str, str]]) -> None:
    """Add or replace many IPv4 routes `(dst_cidr, gateway)` in `ns` in a few syscalls."""
    encoded: list[bytes] = []
    for seq, (dst, gw) in enumerate(routes, 1):
        net = ipaddress.IPv4Network(dst)
        encoded.append(
            _ROUTE_MSG.pack(
                _ROUTE_MSG.size,
                _RTM_NEWROUTE,
                _NLM_F_REQUEST | _NLM_F_ACK | _NLM_F_REPLACE | _NLM_F_CREATE,
                seq,
                0,
                socket.AF_INET,
                net.prefixlen,
                0,
                0,
                _RT_TABLE_MAIN,
                _RTPROT_STATIC,
                _RT_SCOPE_UNIVERSE,
                _RTN_UNICAST,
                0,
                8,
                _RTA_DST,
                net.network_address.packed,
                8,
                _RTA_GATEWAY,
                ipaddress.IPv4Address(gw).packed,
            )
        )

    def send() -> None:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            with contextlib.suppress(OSError):
                s.setsockopt(_SOL_NETLINK, _NETLINK_CAP_ACK, 1)
            s.bind((0, 0))
            for start in range(0, len(encoded), _ROUTES_PER_SEND):
                chunk = encoded[start : start + _ROUTES_PER_SEND]
                s.send(b"".join(chunk))
                pending = len(chunk)
                while pending:
                    buf = s.recv(1 << 20)
                    off = 0
                    while off + _NLMSGHDR.size <= len(buf):
                        length, mtype, _, seq, _ = _NLMSGHDR.unpack_from(buf, off)
                        if length < _NLMSGHDR.size:
                            raise OSError(errno.EPROTO, "malformed netlink reply")
                        if mtype == _NLMSG_ERROR:
                            (err,) = struct.unpack_from("=i", buf, off + _NLMSGHDR.size)
                            pending -= 1
                            if err:
                                dst, gw = routes[seq - 1]
                                raise OSError(-err, f"route {dst} via {gw}: {os.strerror(-err)}")
                        off += (length + 3) & ~3

    _netns.in_netns(ns, send)


def delete_link(ns: str | None, ifname: str) -> bool:
    """Delete `ifname` (a veth takes its peer with it). False if it did not exist."""
    with rtnl(ns) as ipr:
        found = ipr.link_lookup(ifname=_check_ifname(ifname))
        if not found:
            return False
        try:
            ipr.link("del", index=found[0])
        except NetlinkError as e:
            if e.code == errno.ENODEV:
                return False
            raise
    return True


def link_exists(ns: str | None, ifname: str) -> bool:
    with rtnl(ns) as ipr:
        return bool(ipr.link_lookup(ifname=_check_ifname(ifname)))


def list_links(ns: str | None) -> list[str]:
    with rtnl(ns) as ipr:
        return sorted(str(m.get("IFLA_IFNAME")) for m in ipr.link("dump"))


def link_stats(ns: str | None, ifname: str) -> dict[str, int]:
    """Counters from IFLA_STATS64: rx/tx bytes, packets, dropped, errors."""
    with rtnl(ns) as ipr:
        msg = ipr.link("get", index=link_index(ipr, ns, ifname))[0]
    stats = msg.get("IFLA_STATS64") or msg.get("IFLA_STATS") or {}
    keys = (
        "rx_bytes",
        "tx_bytes",
        "rx_packets",
        "tx_packets",
        "rx_dropped",
        "tx_dropped",
        "rx_errors",
        "tx_errors",
    )
    return {k: int(stats.get(k, 0)) for k in keys}


def _sysctl_path(key: str) -> str:
    if not _SYSCTL_RE.match(key) or ".." in key.split("/") or key.startswith("/"):
        raise ValueError(f"invalid sysctl key {key!r}")
    rel = key if "/" in key else key.replace(".", "/")
    return "/proc/sys/" + rel


def sysctl(ns: str | None, key: str, value: str | int) -> None:
    """Write a sysctl (`net.ipv4.ip_forward`) as seen from namespace `ns`.

    /proc/sys/net resolves against the namespace of the task that opens it,
    so the write happens in a helper thread switched into `ns`.
    """
    path = _sysctl_path(key)

    def write() -> None:
        with open(path, "w", encoding="ascii") as f:
            f.write(f"{value}\n")

    _netns.in_netns(ns, write)


def one_armed_router(ns: str | None = None) -> None:
    """Forward, and never tell a client to bypass us (a function that routes its
    clients' traffic back out of the interface it came in on: portal, vHG, firewall).
    The kernel sends an ICMP redirect when `all` OR the interface says so, so every
    interface present is set, and `default` for those made or moved in later; a
    client that took a redirect went straight past the function (with shared_media,
    the default, even to an off-subnet gateway). Best effort: an interface may go
    between listing and writing."""

    def write() -> None:
        conf = Path("/proc/sys/net/ipv4/conf")
        keys = [Path("/proc/sys/net/ipv4/ip_forward")]
        with contextlib.suppress(OSError):
            keys += sorted(conf.glob("*/send_redirects"))
        for key in keys:
            with contextlib.suppress(OSError):
                key.write_text("1" if key.name == "ip_forward" else "0")

    _netns.in_netns(ns, write)


def read_sysctl(ns: str | None, key: str) -> str:
    path = _sysctl_path(key)

    def read() -> str:
        with open(path, encoding="ascii") as f:
            return f.read().strip()

    return _netns.in_netns(ns, read)


# --- ethtool ioctl ---------------------------------------------------------
#
# SIOCETHTOOL takes a struct ifreq whose ifr_data points at a command struct:
#   struct ifreq         { char ifr_name[16]; void *ifr_data; ... }  (40 bytes on LP64)
#   struct ethtool_value { __u32 cmd; __u32 data; }
# ETHTOOL_STXCSUM with data=0 clears the tx checksum features; the kernel then
# also drops TSO/GSO that depend on them, as `ethtool -K IF tx off` does.
SIOCETHTOOL = 0x8946
ETHTOOL_GTXCSUM = 0x16
ETHTOOL_STXCSUM = 0x17
_IFREQ_SIZE = 40


def _ethtool_value(ns: str | None, ifname: str, cmd: int, data: int) -> int:
    name = _check_ifname(ifname).encode()

    def call() -> int:
        value = ctypes.create_string_buffer(struct.pack("=II", cmd, data), 8)
        ifreq = struct.pack("16sP", name, ctypes.addressof(value)).ljust(_IFREQ_SIZE, b"\0")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifreq)
            except OSError as e:
                if e.errno == errno.ENODEV:
                    raise LinkNotFound(ns, ifname) from e
                raise
        return int(struct.unpack("=II", value.raw)[1])

    return _netns.in_netns(ns, call)


def tx_offload_off(ns: str | None, ifname: str) -> None:
    """`ethtool -K IF tx off`: TCP stalls through the OVS netdev datapath without it."""
    _ethtool_value(ns, ifname, ETHTOOL_STXCSUM, 0)


def tx_checksum_enabled(ns: str | None, ifname: str) -> bool:
    return _ethtool_value(ns, ifname, ETHTOOL_GTXCSUM, 0) != 0
