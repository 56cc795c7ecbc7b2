"""The Python reference translator: the packet rules of seed section III.B.

Sans-I/O: `handle(side, packet)` takes one IPv4 packet that arrived on the
Virtualization Interface (VI) or, already decapsulated, on the External
Interface (EI), and returns what the VP does with it. The kernel fast path
(`kernel.py`) is built from the same ATT; the netns tests require both to turn
the same input into the same bytes.

The rules, per role (VP2 holds the ATT and runs in PN1; VP1 runs in PN2):

    role side  packet                      action
    VP2  VI    dst is a VP2 alias          sender must be D2, else drop (stays in PN1);
                                           dst := ATT[dst]; to the EI
    VP2  VI    dst is broadcast/discovery  sender must be D2, else drop; unchanged; to the EI
    VP2  EI    any                         src := ATT^-1[src] (unknown sender: drop);
                                           dst := D2; checksums updated; to the VI
                                           (discovery groups keep their group dst, below)
    VP1  VI    dst is VP1's alias, or      unchanged (VP1 has no ATT); to the EI
               broadcast/discovery
    VP1  EI    any                         src := VP1's alias; to the VI (dst as VP2 set it;
                                           a unicast dst outside PN2 has no route: drop)
    any  VI    anything else               ignored: it is PN-local traffic, not the VP's

What the seed leaves open, decided here the way an IP router does it (and so
the way the kernel path does it):

- A unicast packet is routed by the VP: TTL - 1 at each VP (RFC 1812 5.3.1),
  dropped when it would reach 0.
- A broadcast or discovery-multicast packet is relayed as a link-layer frame
  (a router never forwards a limited broadcast, RFC 1812 5.3.5.1): TTL kept.
- "Broadcast" is 255.255.255.255 or a PN's directed broadcast; "discovery"
  is the SSDP (239.255.255.250) and mDNS (224.0.0.251) groups, so that a
  shared media server can be found at all (issue 5, item 6). At VP2 a
  discovery datagram from PN2 keeps its group destination (only its source is
  translated): servers listen on the group, not on their unicast address.
- Malformed packets (anything `netfate.proto.ipv4.parse` refuses) are dropped
  and counted, on either interface.
- ICMP errors (unreachable, time exceeded, parameter problem) crossing VP2 get
  their quoted packet translated too (VP2 holds the whole ATT), so that the
  sender's stack matches them to its socket. The kernel cannot do that
  statelessly; VP2 hands them to this translator (see icmp.py).
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass

from netfate.proto import ipv4

from .att import ATT, Address

DISCOVERY_GROUPS = frozenset({Address("239.255.255.250"), Address("224.0.0.251")})


class Side(enum.Enum):
    VI = "vi"
    EI = "ei"


class Role(enum.Enum):
    EXPORTER = "vp2"
    """VP2: runs in PN1, next to the shared device, holds the ATT."""
    IMPORTER = "vp1"
    """VP1: runs in PN2, represents the shared device there."""


@dataclass(frozen=True)
class Forward:
    out: Side
    """The interface the packet leaves on (EI: it is encapsulated to the peer VP)."""
    packet: bytes
    """The IPv4 packet as it leaves (before encapsulation)."""
    link_broadcast: bool = False
    """Relayed as a link-layer broadcast/multicast frame instead of routed."""


@dataclass(frozen=True)
class Dropped:
    reason: str


@dataclass(frozen=True)
class Ignored:
    """Not the VP's business: PN-local traffic that the VP neither drops nor forwards."""


Verdict = Forward | Dropped | Ignored


class Translator:
    def __init__(self, role: Role, att: ATT) -> None:
        self.role = role
        self.att = att
        self.counters: Counter[str] = Counter()
        self._install(att)

    def _install(self, att: ATT) -> None:
        self._to_pn2 = att.to_pn2
        self._to_pn1 = att.to_pn1
        self._groups_pn1 = att.pn1_broadcasts() | DISCOVERY_GROUPS
        self._groups_pn2 = att.pn2_broadcasts() | DISCOVERY_GROUPS
        self._groups_any = self._groups_pn1 | self._groups_pn2

    def update(self, att: ATT) -> None:
        """Replace the ATT (PN2 devices appeared or left); counters are kept."""
        self.att = att
        self._install(att)

    def _drop(self, reason: str) -> Dropped:
        self.counters["dropped_" + reason] += 1
        return Dropped(reason)

    def _fwd(self, out: Side, data: bytes, bcast: bool = False) -> Forward:
        self.counters["to_" + out.value] += 1
        return Forward(out, data, bcast)

    def handle(self, side: Side, packet: bytes) -> Verdict:
        try:
            pkt = ipv4.parse(packet)
        except ipv4.IPv4Error as e:
            return self._drop("malformed_" + e.reason)
        if self.role is Role.EXPORTER:
            return self._vp2_vi(pkt) if side is Side.VI else self._vp2_ei(pkt)
        return self._vp1_vi(pkt) if side is Side.VI else self._vp1_ei(pkt)

    def _routed(
        self,
        out: Side,
        pkt: ipv4.IPv4Packet,
        src: Address | None = None,
        dst: Address | None = None,
    ) -> Verdict:
        if pkt.ttl <= 1:
            return self._drop("ttl_expired")
        return self._fwd(out, ipv4.rewrite(pkt, src=src, dst=dst, decrement_ttl=True))

    # ---------------------------------------------------------------- VP2 (PN1)

    def _vp2_vi(self, pkt: ipv4.IPv4Packet) -> Verdict:
        target = self._to_pn2.get(pkt.dst)
        if target is None and pkt.dst not in self._groups_pn1:
            return Ignored()
        if pkt.src != self.att.shared_device:
            # Only D2 is shared: everything else stays in PN1.
            return self._drop("wrong_sender")
        if target is None:
            return self._fwd(Side.EI, pkt.data, bcast=True)
        if ipv4.is_icmp_error(pkt):
            # D2 quotes a packet it got from an alias: make the quote what the PN2
            # device sent (its own address -> VP1's alias for D2).
            return self._icmp_error(
                Side.EI, pkt, dst=target, inner_src=target, inner_dst=self.att.import_alias
            )
        return self._routed(Side.EI, pkt, dst=target)

    def _icmp_error(
        self,
        out: Side,
        pkt: ipv4.IPv4Packet,
        *,
        src: Address | None = None,
        dst: Address | None = None,
        inner_src: Address | None = None,
        inner_dst: Address | None = None,
    ) -> Verdict:
        if pkt.ttl <= 1:
            return self._drop("ttl_expired")
        try:
            data = ipv4.rewrite_icmp_error(
                pkt, src=src, dst=dst, inner_src=inner_src, inner_dst=inner_dst,
                decrement_ttl=True,
            )  # fmt: skip
        except ipv4.IPv4Error as e:
            return self._drop("malformed_" + e.reason)
        self.counters["icmp_errors"] += 1
        return self._fwd(out, data)

    def _vp2_ei(self, pkt: ipv4.IPv4Packet) -> Verdict:
        alias = self._to_pn1.get(pkt.src)
        if alias is None:
            return self._drop("unknown_sender")
        if pkt.dst in DISCOVERY_GROUPS:
            # Discovery servers listen on the group address (minidlna binds
            # 239.255.255.250:1900 on Linux): a search keeps its group destination.
            return self._fwd(Side.VI, ipv4.rewrite(pkt, src=alias), bcast=True)
        if ipv4.is_icmp_error(pkt):
            # A PN2 device quotes a packet D2 sent it (from VP1's alias, to itself):
            # make the quote what D2 sent (from D2, to the device's alias in PN1).
            return self._icmp_error(
                Side.VI, pkt, src=alias, dst=self.att.shared_device,
                inner_src=self.att.shared_device, inner_dst=alias,
            )  # fmt: skip
        return self._routed(Side.VI, pkt, src=alias, dst=self.att.shared_device)

    # ---------------------------------------------------------------- VP1 (PN2)

    def _vp1_vi(self, pkt: ipv4.IPv4Packet) -> Verdict:
        if pkt.dst == self.att.import_alias:
            return self._routed(Side.EI, pkt)
        if pkt.dst in self._groups_pn2:
            return self._fwd(Side.EI, pkt.data, bcast=True)
        return Ignored()

    def _vp1_ei(self, pkt: ipv4.IPv4Packet) -> Verdict:
        alias = self.att.import_alias
        if pkt.dst in self._groups_any:
            return self._fwd(Side.VI, ipv4.rewrite(pkt, src=alias), bcast=True)
        if pkt.dst not in self.att.pn2 or pkt.dst == alias:
            return self._drop("no_route")
        return self._routed(Side.VI, pkt, src=alias)
