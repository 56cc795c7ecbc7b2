"""The kernel fast path of a Virtual Presence, built from the same ATT as the reference.

Inside the VP's namespace:

- the Virtualization Interface (VI, an existing interface on the PN's LAN) gets
  the aliases as extra addresses: VP2 one per PN2 device, VP1 one for D2;
- the External Interface (EI) is a VXLAN device (VNI per share, UDP 4789) over
  the underlay interface to the peer VP, with a /30 overlay address (the seed's
  10.0.0.1 / 10.0.0.2);
- one nftables table per share does the rewriting statelessly (no conntrack);
- policy routing sends what the VI rules marked into the EI: a routing table
  with one default route via the peer's overlay address, chosen by fwmark.

Why each piece is where it is:

- The VI rules must run before the routing decision, because an alias is a
  local address: without the rewrite (VP2) or the mark (VP1) the kernel would
  deliver the packet to the VP itself. Hence prerouting at priority -300.
- With overlapping PNs (both 192.168.0.0/24), PN2 addresses are also "on
  link" on the VI. The fwmark rule therefore sits in front of the `local`
  rule (moved from priority 0 to 100), so marked packets never fall into the
  connected VI route. ARP requests carry no mark, so ARP for the aliases still
  sees them as local and is answered.
- Source rewrites to an alias (a local address) happen in the forward hook,
  after routing: done in prerouting, the kernel would drop the packet as a
  martian (local source). accept_local on the EI covers the overlapping case
  where a PN2 device has the same address as one of VP2's aliases.
- Broadcasts and discovery multicast are never routed, so they are relayed at
  link level in netdev ingress with `fwd` (TTL kept), as the reference does.
- rp_filter is off: with overlapping PNs the reverse path of any PN2 source
  is the VI, not the EI.
- VP1's ALG proxy (alg.py) keeps TCP to the alias on the proxied ports (a named
  set, `alg_ports`, that grows as the ALG learns the device's ports) and connects
  to the device transparently, from the PN2 client's own address (IP_TRANSPARENT,
  SO_MARK = the share's mark, so the fwmark rule routes it into the EI). VP2 sees
  the client's packets as on the kernel path and the device sees the client's
  VP2 alias: nothing is NATed statefully, and the device's UDP answers (RTP after
  an RTSP SETUP, GENA events) take the kernel path to the client. The device's
  TCP answers to those connections come back on the EI addressed to the client;
  `socket transparent` marks them in prerouting and a fwmark rule (priority 9)
  routes them to a table whose default route is local, as TPROXY setups do.

MTU: VXLAN adds 50 bytes. The EI MTU is the underlay MTU - 50, at most 1500.
The sharing service gives the VPs an underlay of 1550 (`link_mtu` of their
veths, the links between the testbed's bridges), so full-size LAN packets
cross the overlay whole and no path-MTU error ever has to carry a rewritten
address. Where the underlay is smaller, TCP SYNs crossing the VP get their MSS
clamped to the route MTU instead (PLATFORM-NOTES).

Underlay: the VXLAN source port is fixed to 4789 (the kernel would pick one per
flow), so both directions are udp/4789 -> udp/4789 and one SDN tunnel intent
(udp, port 4789) carries them on bridges in secure mode. With `underlay_onlink`
the peer VP's underlay address is reached directly on the underlay's link (a
/32 link-scope route): the testbed's bridges are one L2 fabric, and the tunnel
intent's flows go from one VP's port to the other's, through no router.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from netfate.host import links, netns, nft
from netfate.proto.arp import announcement, request

from .att import ATT
from .translator import DISCOVERY_GROUPS, Role

VXLAN_OVERHEAD = 50
ALG_PORTS = "alg_ports"
UDP_DATA_WORD = {"payload": {"base": "th", "offset": 64, "len": 32}}
"""The first 4 bytes after the UDP header."""
HTTP_WORD = int.from_bytes(b"HTTP", "big")
NUD_PERMANENT = 0x80
RULE_PRIORITY = 10
TPROXY_PRIORITY = 9
LOCAL_PRIORITY = 100


@dataclass(frozen=True)
class KernelConfig:
    role: Role
    att: ATT
    share: int
    """Share number: names the table, the VNI, the routing table and the mark."""
    vi: str
    """The VI (an existing interface on the PN LAN)."""
    vi_prefixlen: int
    underlay_dev: str
    local_underlay: str
    remote_underlay: str
    overlay_local: str
    """This EI's address with prefix, e.g. 10.0.0.1/30."""
    overlay_remote: str
    underlay_mtu: int = 1500
    underlay_onlink: bool = False
    """Reach the peer's underlay address on the link (no gateway); see above."""
    alg: bool = False
    """VP1 hands the device's SSDP and mDNS to the discovery ALG (alg.py)."""
    http_ports: tuple[int, ...] = ()
    """TCP ports VP1's ALG proxies from the start (an override: it also proxies every
    port the device announces, once seen). VP2 needs nothing for them: the proxy
    connects as the PN2 client, through the stateless path."""
    icmp_tap: bool = False
    """VP2 hands ICMP errors to the reference translator (icmp.py), quotes included."""

    @property
    def ei(self) -> str:
        return f"vpe{self.share}"[:15]

    @property
    def table(self) -> str:
        return f"vp{self.share}"

    @property
    def vni(self) -> int:
        return 0x560000 + self.share

    @property
    def mark(self) -> int:
        return 0x5650000 + self.share

    @property
    def route_table(self) -> int:
        return 1000 + self.share

    @property
    def proxy(self) -> bool:
        """VP1 runs the ALG's TCP proxy (alg.py): discovery ALG on, or ports given."""
        return self.role is Role.IMPORTER and (self.alg or bool(self.http_ports))

    @property
    def tproxy_mark(self) -> int:
        """Marks the device's answers to the proxy's transparent connections (VP1)."""
        return 0x5660000 + self.share

    @property
    def tproxy_table(self) -> int:
        """The routing table that delivers them locally (VP1)."""
        return 0x20000 + self.share

    def ei_mac(self, role: Role | None = None) -> str:
        """The EI's MAC, derived from the share and the role: each VP knows its peer's,
        so the peer's overlay address gets a permanent neighbour entry. Without it the
        first packet waits for ARP over the overlay, and when the peer's EI is not up
        yet that ARP is lost and retried a second later."""
        r = role or self.role
        return f"02:56:50:{(self.share >> 8) & 0xFF:02x}:{self.share & 0xFF:02x}:" + (
            "01" if r is Role.EXPORTER else "02"
        )

    @property
    def ei_mtu(self) -> int:
        return min(1500, self.underlay_mtu - VXLAN_OVERHEAD)

    @property
    def aliases(self) -> list[ipaddress.IPv4Address]:
        if self.role is Role.EXPORTER:
            return list(self.att.aliases)
        return [self.att.import_alias]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KernelConfig:
        return cls(
            role=Role(d["role"]),
            att=ATT.from_dict(d["att"]),
            share=int(d["share"]),
            vi=str(d["vi"]),
            vi_prefixlen=int(d["vi_prefixlen"]),
            underlay_dev=str(d["underlay_dev"]),
            local_underlay=str(d["local_underlay"]),
            remote_underlay=str(d["remote_underlay"]),
            overlay_local=str(d["overlay_local"]),
            overlay_remote=str(d["overlay_remote"]),
            underlay_mtu=int(d.get("underlay_mtu", 1500)),
            underlay_onlink=bool(d.get("underlay_onlink", False)),
            alg=bool(d.get("alg", False)),
            http_ports=tuple(int(p) for p in d.get("http_ports", ())),
            icmp_tap=bool(d.get("icmp_tap", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role.value,
            "att": self.att.to_dict(),
            "share": self.share,
            "vi": self.vi,
            "vi_prefixlen": self.vi_prefixlen,
            "underlay_dev": self.underlay_dev,
            "local_underlay": self.local_underlay,
            "remote_underlay": self.remote_underlay,
            "overlay_local": self.overlay_local,
            "overlay_remote": self.overlay_remote,
            "underlay_mtu": self.underlay_mtu,
            "underlay_onlink": self.underlay_onlink,
            "alg": self.alg,
            "http_ports": list(self.http_ports),
            "icmp_tap": self.icmp_tap,
        }


# ------------------------------------------------------------------ nft JSON


def _payload(proto: str, field: str) -> dict[str, Any]:
    return {"payload": {"protocol": proto, "field": field}}


def _meta(key: str) -> dict[str, Any]:
    return {"meta": {"key": key}}


def _match(left: dict[str, Any], right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _set(items: list[str]) -> dict[str, Any]:
    return {"set": sorted(items)}


def _mangle(key: dict[str, Any], value: Any) -> dict[str, Any]:
    return {"mangle": {"key": key, "value": value}}


def ruleset(cfg: KernelConfig, vi_mac: str, extra_ports: Iterable[int] = ()) -> dict[str, Any]:
    """The nftables JSON document (`nft -j -f -`) of one VP of one share;
    `extra_ports`: ports VP1's ALG learned, proxied beside the configured ones.

    Named counters carry the reference translator's drop reasons, so the two
    paths can be compared by counter too.
    """
    att, t = cfg.att, cfg.table
    groups_local = (
        att.pn1_broadcasts() if cfg.role is Role.EXPORTER else att.pn2_broadcasts()
    ) | DISCOVERY_GROUPS
    groups_any = att.pn1_broadcasts() | att.pn2_broadcasts() | DISCOVERY_GROUPS
    cmds: list[dict[str, Any]] = [
        *nft.fresh_table("netdev", t),
        *nft.fresh_table("ip", t),
    ]
    counters = ["wrong_sender", "unknown_sender", "no_route", "to_ei", "to_vi"]
    for fam in ("netdev", "ip"):
        for c in counters:
            cmds.append({"add": {"counter": {"family": fam, "table": t, "name": c}}})

    def chain(
        fam: str, name: str, hook: str, prio: int, dev: str | None = None, nat: bool = False
    ) -> None:
        spec: dict[str, Any] = {
            "family": fam,
            "table": t,
            "name": name,
            "type": "nat" if nat else "filter",
            "hook": hook,
            "prio": prio,
            "policy": "accept",
        }
        if dev is not None:
            spec["dev"] = dev
        cmds.append({"add": {"chain": spec}})

    def rule(fam: str, ch: str, *expr: dict[str, Any]) -> None:
        cmds.append({"add": {"rule": {"family": fam, "table": t, "chain": ch, "expr": list(expr)}}})

    def count(name: str) -> dict[str, Any]:
        return {"counter": name}

    chain("netdev", "vi_in", "ingress", 0, cfg.vi)
    chain("netdev", "ei_in", "ingress", 0, cfg.ei)
    chain("ip", "pre", "prerouting", -300)
    chain("ip", "forward", "forward", 0)
    daddr, saddr = _payload("ip", "daddr"), _payload("ip", "saddr")
    iif, oif = _meta("iifname"), _meta("oifname")
    d2 = str(att.shared_device)
    groups = _set([str(a) for a in groups_local])
    ports = sorted(set(cfg.http_ports) | set(extra_ports))
    tcp_dport = _payload("tcp", "dport")
    if cfg.role is Role.EXPORTER:
        aliases = [str(a) for a in att.aliases]
        pn2_devices = [str(d) for _, d in att.entries]
        if cfg.icmp_tap:
            # ICMP errors go to the tap (its packet sockets see them before these hooks),
            # which translates the quoted packet too and sends the result itself.
            errors = {"set": ["destination-unreachable", "time-exceeded", "parameter-problem"]}
            icmp_type = _payload("icmp", "type")
            rule("netdev", "ei_in", _match(icmp_type, errors), {"drop": None})
            if aliases:
                rule("ip", "pre", _match(iif, cfg.vi), _match(daddr, _set(aliases)),
                     _match(icmp_type, errors), {"drop": None})  # fmt: skip
        # VI: group traffic from D2 is relayed as a frame; from anyone else it stays.
        rule("netdev", "vi_in", _match(saddr, d2, "!="), _match(daddr, groups),
             count("wrong_sender"), {"drop": None})  # fmt: skip
        rule("netdev", "vi_in", _match(daddr, groups), count("to_ei"), {"fwd": {"dev": cfg.ei}})
        if aliases:
            # VI unicast to an alias: only D2, dst per ATT, then into the EI by mark.
            rule("ip", "pre", _match(iif, cfg.vi), _match(daddr, _set(aliases)),
                 _match(saddr, d2, "!="), count("wrong_sender"), {"drop": None})  # fmt: skip
            rule("ip", "pre", _match(iif, cfg.vi), _match(saddr, d2),
                 _mangle(daddr, {"map": {"key": daddr, "data": {"set": [
                     [a, d] for a, d in sorted(zip(aliases, pn2_devices, strict=True))]}}}),
                 _mangle(_meta("mark"), cfg.mark), count("to_ei"))  # fmt: skip
        # EI: unknown PN2 senders are dropped; every packet is for D2 (a broadcast
        # becomes unicast to D2, so it must be marked as for this host to be routed).
        known = _set(pn2_devices) if pn2_devices else _set(["0.0.0.0"])
        rule("netdev", "ei_in", _match(_meta("protocol"), "ip"), _match(saddr, known, "!="),
             count("unknown_sender"), {"drop": None})  # fmt: skip
        if pn2_devices:
            disc = _set([str(g) for g in DISCOVERY_GROUPS])
            rule("netdev", "ei_in", _match(daddr, disc),
                 _mangle(saddr, {"map": {"key": saddr, "data": {"set": [
                     [d, a] for a, d in sorted(zip(aliases, pn2_devices, strict=True))]}}}),
                 _mangle(_payload("ether", "saddr"), vi_mac), count("to_vi"),
                 {"fwd": {"dev": cfg.vi}})  # fmt: skip
        rule("netdev", "ei_in", _match(_meta("protocol"), "ip"), _mangle(daddr, d2),
             _mangle(_meta("pkttype"), "host"))  # fmt: skip
        if pn2_devices:
            rule("ip", "forward", _match(iif, cfg.ei), _match(oif, cfg.vi),
                 _mangle(saddr, {"map": {"key": saddr, "data": {"set": [
                     [d, a] for a, d in sorted(zip(aliases, pn2_devices, strict=True))]}}}),
                 count("to_vi"))  # fmt: skip
    else:
        alias = str(att.import_alias)
        if cfg.alg:
            # The device's SSDP and mDNS go to the discovery ALG (its packet tap sees
            # them before this hook) instead of being relayed unchanged: port 1900 or
            # 5353 at either end, or an HTTPU answer ("HTTP" first: a search answer
            # comes from any port, e.g. libupnp's, to the searcher's own port).
            for port in ("sport", "dport"):
                udp_port = _payload("udp", port)
                rule("netdev", "ei_in", _match(saddr, d2),
                     _match(udp_port, {"set": [1900, 5353]}), {"drop": None})  # fmt: skip
            rule("netdev", "ei_in", _match(saddr, d2), _match(_meta("l4proto"), "udp"),
                 _match(UDP_DATA_WORD, HTTP_WORD), {"drop": None})  # fmt: skip
        if cfg.proxy:
            # TCP to the alias on a proxied port (configured or learned: the set grows
            # at run time, add_alg_ports) stays here, for the ALG's proxy.
            cmds.append({"add": {"set": {
                "family": "ip", "table": t, "name": ALG_PORTS, "type": "inet_service",
                **({"elem": ports} if ports else {})}}})  # fmt: skip
            rule("ip", "pre", _match(iif, cfg.vi), _match(daddr, alias),
                 _match(tcp_dport, f"@{ALG_PORTS}"), {"accept": None})  # fmt: skip
            # The device's answers to the proxy's transparent connections (made from
            # the PN2 client's address) are for this host: marked, they are routed to
            # the local table (install) instead of forwarded to the client.
            rule("ip", "pre", _match(iif, cfg.ei),
                 _match({"socket": {"key": "transparent"}}, 1),
                 _mangle(_meta("mark"), cfg.tproxy_mark))  # fmt: skip
        rule("netdev", "vi_in", _match(daddr, groups), count("to_ei"), {"fwd": {"dev": cfg.ei}})
        rule("ip", "pre", _match(iif, cfg.vi), _match(daddr, alias),
             _mangle(_meta("mark"), cfg.mark), count("to_ei"))  # fmt: skip
        rule("netdev", "ei_in", _match(daddr, _set([str(a) for a in groups_any])),
             _mangle(saddr, alias), _mangle(_payload("ether", "saddr"), vi_mac),
             count("to_vi"), {"fwd": {"dev": cfg.vi}})  # fmt: skip
        rule("ip", "forward", _match(iif, cfg.ei), _match(oif, cfg.vi), _mangle(saddr, alias),
             count("to_vi"))  # fmt: skip
    rule("ip", "forward", _match(iif, cfg.ei), _match(oif, cfg.vi, "!="), count("no_route"),
         {"drop": None})  # fmt: skip
    if cfg.ei_mtu < 1500:
        mss = {"tcp option": {"name": "maxseg", "field": "size"}}
        rule("ip", "forward", _match(_payload("tcp", "flags"), "syn", "in"),
             _mangle(mss, {"rt": {"key": "mtu"}}))  # fmt: skip
    return nft.document(cmds)


# ------------------------------------------------------------------ install / remove


def _mac(ns: str | None, ifname: str) -> str:
    with links.rtnl(ns) as ipr:
        msg = ipr.link("get", index=links.link_index(ipr, ns, ifname))[0]
    return str(msg.get("IFLA_ADDRESS"))


def install(ns: str | None, cfg: KernelConfig, extra_ports: Iterable[int] = ()) -> None:
    """Build the fast path of `cfg` in namespace `ns` (None: the caller's). Idempotent.
    `extra_ports`: VP1's learned ports (a new ruleset would forget them)."""
    for key in ("net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter",
                "net.ipv4.conf.default.rp_filter"):  # fmt: skip
        links.sysctl(ns, key, 1 if key.endswith("forward") else 0)
    links.sysctl(ns, f"net.ipv4.conf.{cfg.vi}.rp_filter", 0)
    with links.rtnl(ns) as ipr:
        links.link_index(ipr, ns, cfg.vi)  # raises LinkNotFound early
        under = links.link_index(ipr, ns, cfg.underlay_dev)
        if not ipr.link_lookup(ifname=cfg.ei):
            ipr.link(
                "add",
                ifname=cfg.ei,
                kind="vxlan",
                vxlan_id=cfg.vni,
                vxlan_local=cfg.local_underlay,
                vxlan_group=cfg.remote_underlay,
                vxlan_port=4789,
                vxlan_port_range={"low": 4789, "high": 4790},
                vxlan_link=under,
                vxlan_learning=0,
                mtu=cfg.ei_mtu,
                address=cfg.ei_mac(),
            )
        ei = links.link_index(ipr, ns, cfg.ei)
        ipr.link("set", index=ei, state="up")
    # Checksums finished before encapsulation: a frame that leaves with its inner
    # checksum still to do (offloads on, as under OVS userspace TSO) is lost in the
    # userspace datapath, which places checksums by the outer headers it parses.
    links.tx_offload_off(ns, cfg.ei)
    with links.rtnl(ns) as ipr:
        peer = Role.IMPORTER if cfg.role is Role.EXPORTER else Role.EXPORTER
        ipr.neigh(
            "replace", dst=cfg.overlay_remote, lladdr=cfg.ei_mac(peer), ifindex=ei,
            state=NUD_PERMANENT,
        )  # fmt: skip
    links.add_address(ns, cfg.ei, cfg.overlay_local)
    for key in (f"net.ipv4.conf.{cfg.ei}.rp_filter", f"net.ipv4.conf.{cfg.ei}.accept_local"):
        links.sysctl(ns, key, 1 if key.endswith("accept_local") else 0)
    for a in cfg.aliases:
        links.add_address(ns, cfg.vi, f"{a}/{cfg.vi_prefixlen}")
    with links.rtnl(ns) as ipr:
        local_prios = {
            int(r.get_attr("FRA_PRIORITY") or 0)
            for r in ipr.get_rules(family=2)
            if r.get_attr("FRA_TABLE") == 255 or r.get("table") == 255
        }
        if LOCAL_PRIORITY not in local_prios:
            ipr.rule("add", family=2, priority=LOCAL_PRIORITY, table=255)
        if 0 in local_prios:
            ipr.rule("del", family=2, priority=0, table=255)
        _replace_rule(ipr, cfg)
        ipr.route(
            "replace",
            dst="0.0.0.0",
            dst_len=0,
            gateway=cfg.overlay_remote,
            oif=ei,
            table=cfg.route_table,
        )
        if cfg.underlay_onlink:
            ipr.route(
                "replace", dst=cfg.remote_underlay, dst_len=32, oif=under, scope=253,
                prefsrc=cfg.local_underlay,
            )  # fmt: skip
        if cfg.proxy:
            # TPROXY's routing: what the proxy's transparent sockets receive is local.
            if not any(r.get_attr("FRA_FWMARK") == cfg.tproxy_mark
                       for r in ipr.get_rules(family=2)):  # fmt: skip
                ipr.rule("add", family=2, priority=TPROXY_PRIORITY, fwmark=cfg.tproxy_mark,
                         table=cfg.tproxy_table)  # fmt: skip
            ipr.route("replace", dst="0.0.0.0", dst_len=0, type="local", scope=254,
                      oif=links.link_index(ipr, ns, "lo"), table=cfg.tproxy_table)  # fmt: skip
    mac = _mac(ns, cfg.vi)
    nft.apply(ruleset(cfg, mac, extra_ports), ns)
    announce_aliases(ns, cfg, mac)


def announce_aliases(ns: str | None, cfg: KernelConfig, mac: str | None = None) -> None:
    """`announce` this share's aliases on the VI, to every host that uses them."""
    mac = mac or _mac(ns, cfg.vi)
    announce(ns, cfg.vi, mac, [str(a) for a in cfg.aliases], directed_announcements(cfg))


def announce(
    ns: str | None,
    ifname: str,
    mac: str,
    addresses: list[str],
    directed: Sequence[tuple[str, str]] = (),
) -> None:
    """Gratuitous ARP for each alias (RFC 5227 announcement), and a request from an
    alias to each host that uses it (`directed`: (alias, host address) pairs).

    An alias freed by one share and given to the next belongs to a new VP with
    another MAC: without this, PN hosts keep sending to the old MAC until their
    ARP entry expires (tens of seconds). On bridges in secure mode a broadcast
    announcement goes nowhere (no intent carries it), but a request from the
    alias to a host is exactly what the alias's connectivity intent carries, and
    the host updates its entry for the alias from the request's sender fields.
    """
    sock = netns.socket_in(ns, socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.bind((ifname, 0))  # protocol 0: send only
        for _ in range(2):
            for a in addresses:
                sock.send(announcement(mac, a))
            for spa, tpa in directed:
                sock.send(request(mac, spa, tpa))
    finally:
        sock.close()


def directed_announcements(cfg: KernelConfig) -> list[tuple[str, str]]:
    """(alias, host) pairs: VP2 tells D2 of every alias; VP1 tells each PN2 device."""
    if cfg.role is Role.EXPORTER:
        return [(str(a), str(cfg.att.shared_device)) for a in cfg.att.aliases]
    return [(str(cfg.att.import_alias), str(d)) for _, d in cfg.att.entries]


def _replace_rule(ipr: Any, cfg: KernelConfig) -> None:
    for r in ipr.get_rules(family=2):
        if r.get_attr("FRA_FWMARK") == cfg.mark:
            return
    ipr.rule("add", family=2, priority=RULE_PRIORITY, fwmark=cfg.mark, table=cfg.route_table)


def remove(ns: str | None, cfg: KernelConfig) -> None:
    """Remove what `install` built for this share; what is already gone is fine."""
    nft.apply(nft.document([*nft.remove_table("netdev", cfg.table),
                            *nft.remove_table("ip", cfg.table)]), ns)  # fmt: skip
    with links.rtnl(ns) as ipr:
        for r in ipr.get_rules(family=2):
            if r.get_attr("FRA_FWMARK") == cfg.mark:
                ipr.rule("del", family=2, priority=RULE_PRIORITY, fwmark=cfg.mark,
                         table=cfg.route_table)  # fmt: skip
            if cfg.proxy and r.get_attr("FRA_FWMARK") == cfg.tproxy_mark:
                ipr.rule("del", family=2, priority=TPROXY_PRIORITY, fwmark=cfg.tproxy_mark,
                         table=cfg.tproxy_table)  # fmt: skip
        if cfg.proxy:
            with contextlib.suppress(NetlinkError):
                ipr.route("del", dst="0.0.0.0", dst_len=0, type="local", table=cfg.tproxy_table)
        if cfg.underlay_onlink:
            with contextlib.suppress(NetlinkError):
                ipr.route("del", dst=cfg.remote_underlay, dst_len=32, scope=253)
        idx = ipr.link_lookup(ifname=cfg.vi)
        if idx:
            for a in cfg.aliases:
                # An alias already gone is what we want.
                with contextlib.suppress(NetlinkError):
                    ipr.addr("del", index=idx[0], address=str(a), prefixlen=cfg.vi_prefixlen)
    links.delete_link(ns, cfg.ei)


def add_alg_ports(ns: str | None, cfg: KernelConfig, ports: Iterable[int]) -> None:
    """Proxy `ports` too (VP1's learned ports): TCP to the alias on them stays local."""
    elem = sorted(set(ports))
    if elem:
        element = {"family": "ip", "table": cfg.table, "name": ALG_PORTS, "elem": elem}
        nft.apply(nft.document([{"add": {"element": element}}]), ns)


def counters(ns: str | None, cfg: KernelConfig) -> dict[str, int]:
    """Packets per named counter of this share's tables (both families summed)."""
    out: dict[str, int] = {}
    proc = netns.run_in(ns, ["nft", "-j", "list", "counters"], check=False)
    if proc.returncode != 0:
        return out
    for item in json.loads(proc.stdout).get("nftables", []):
        c = item.get("counter")
        if isinstance(c, dict) and c.get("table") == cfg.table:
            out[str(c["name"])] = out.get(str(c["name"]), 0) + int(c.get("packets", 0))
    return out
