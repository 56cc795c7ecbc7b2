"""What Personal Networks may reach, as SDN intents: isolation, and each share's paths.

A PN's LAN is isolated: the fabric (orchestrator/sdn/fabric.py) gives it no
LAN-to-LAN intent (this module registers the PNs' LANs as isolated, and
`withdraw_lans` removes the ones the fabric made before the PN existed). Its
hosts keep their gateway intent (host <-> their own node), so on bridges in
secure mode a PN host reaches nothing beyond its node: not another PN, directly
or through routing, in either direction.

Each share then opens exactly what its data path needs (share N; VP2 serves
PN1 on node1 behind bridge port P2, VP1 serves PN2 on node2 behind P1):

    share-N-overlay       tunnel  instance:VP2 <-> instance:VP1, udp/4789 (the EIs' VXLAN)
    share-N-vp2-K         conn    host:D2 <-> subnet:ALIAS_K/32@node1/P2
                                  (the shared device and the aliases of PN2's devices)
    share-N-vp2-self      conn    host:D2 <-> subnet:VP2/32@node1/P2 (with HTTP ports:
                                  the ALG's connections are NATed to VP2's own address)
    share-N-vp1-H         conn    host:H <-> subnet:IMPORT_ALIAS/32@node2/P1
                                  (each PN2 device in the ATT that is a topology host)
    share-N-vi2-G         copy    what VP2 sends to group G -> D2, unchanged (discovery
                                  only: VP2 turns the rest into unicast to D2)
    share-N-vi1-G         copy    what VP1 sends to group G -> the PN2 hosts, unchanged
    sharing-H-G           copy    what host H sends to group G -> every VP on H's node
                                  that serves H (as D2, or as a PN2 device); one per
                                  host and group, since a flow has one replication

Groups G are the discovery groups the VPs relay (SSDP 239.255.255.250:1900,
mDNS 224.0.0.251:5353) and the broadcasts (255.255.255.255 and the LAN's own,
any UDP port). The alias connectivity compiles above the hosts' gateway flows
(a subnet behind a named port, compile.py). `sync` computes all of these from
the database and adds, replaces or removes intents until the stored ones are
exactly these: revocation (or a failed share) leaves none of its own behind.

A PN whose vHG runs (workflow.start_vhg) gets the vHG's data paths (V: the vHG
instance on the PN's node N behind port PV; H: each PN host, on access port PH):

    sharing-vhg-V-gw      conn    instance:V <-> subnet:0.0.0.0/0@N (what it
                                  masquerades goes to the node; unless the fabric's
                                  fabric-gw-V is there already)
    sharing-vhg-H         conn    host:H <-> instance:V, above_gateway: by MAC, above
                                  H's gateway flows: DHCP offers and acks to H's MAC
                                  (to an address H does not have yet), H's traffic
                                  to the vHG as its router, the replies, ARP
    sharing-vhg-H-dhcp    copy    what arrives on PH from 0.0.0.0 to
                                  255.255.255.255:67 (DISCOVER, REQUEST) -> V, unchanged
    sharing-vhg-V-bcast   copy    what V sends to 255.255.255.255:68 (replies to a
                                  client that asked for broadcast) -> the PN hosts

The vHG's NATed traffic leaves with the vHG's own address, a PN address: it
reaches the node (its gateway and its other addresses) and nothing beyond that a
PN host could not reach itself, so isolation is unchanged.

Only topology hosts can be intent endpoints: a device known from a DHCP lease
or declared by its owner gets an alias in the ATT but no path on secure bridges.
Without an SDN controller (bridges in standalone mode) the intents change
nothing and PNs are not isolated.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.orchestrator.sdn.fabric import gateway
from netfate.orchestrator.sdn.intents import (
    ConnectivityIntent,
    Endpoint,
    Intent,
    ReplicationIntent,
    TunnelIntent,
    parse_intent,
)
from netfate.store.events import record_event
from netfate.store.tables import HostRow, InstanceRow, PortRow
from netfate.vnf.virtual_presence.att import ATT

from . import states
from .tables import PersonalNetworkRow, ShareRow

log = logging.getLogger("netfate.sharing")

MANAGED = ("share-", "sharing-")
"""Prefixes of the intent ids this module owns (and removes when unwanted)."""
VXLAN_PORT = 4789
# (tag, group address or None for the LAN's broadcast, UDP port or None for any)
GROUPS: tuple[tuple[str, str | None, int | None], ...] = (
    ("ssdp", "239.255.255.250", 1900),
    ("mdns", "224.0.0.251", 5353),
    ("bcast", "255.255.255.255", None),
    ("lbcast", None, None),
)


def pn_lans(session: Any) -> list[tuple[str, str]]:
    """The isolated LANs: every PN's (node, subnet)."""
    rows = session.execute(select(PersonalNetworkRow.node, PersonalNetworkRow.subnet))
    return [(str(n), str(sub)) for n, sub in rows]


@dataclass(frozen=True)
class Wiring:
    """Where one share's parts sit in the network: all the intents need."""

    share: int
    att: ATT
    vp2: str
    vp2_node: str
    vp2_port: str
    vp2_ip: str
    vp1: str
    vp1_node: str
    vp1_port: str
    d2_host: str | None
    """The topology host that is the shared device (None: not a topology host)."""
    pn2_hosts: tuple[str, ...]
    """PN2 devices of the ATT that are topology hosts on node2."""
    http: bool


def _group(addr: str | None, net: ipaddress.IPv4Network) -> str:
    """A group's address; None stands for the LAN's own broadcast address."""
    return addr if addr is not None else str(net.broadcast_address)


def share_intents(w: Wiring) -> list[Intent]:
    """The intents of one share (see the module docstring), pure."""
    n, att = w.share, w.att
    out: list[Intent] = [
        TunnelIntent(
            id=f"share-{n}-overlay", a=Endpoint("instance", w.vp2),
            b=Endpoint("instance", w.vp1), protocol="udp", port=VXLAN_PORT,
        )
    ]  # fmt: skip
    if w.d2_host is not None:
        d2 = Endpoint("host", w.d2_host)
        for k, alias in enumerate(sorted(att.aliases)):
            out.append(
                ConnectivityIntent(
                    id=f"share-{n}-vp2-{k}", a=d2,
                    b=Endpoint("subnet", f"{alias}/32", w.vp2_node, w.vp2_port),
                )
            )  # fmt: skip
        if w.http:
            out.append(
                ConnectivityIntent(
                    id=f"share-{n}-vp2-self", a=d2,
                    b=Endpoint("subnet", f"{w.vp2_ip}/32", w.vp2_node, w.vp2_port),
                )
            )  # fmt: skip
        # VP2 hands D2 everything but discovery as unicast (broadcasts included).
        for tag, addr, port in GROUPS[:2]:
            out.append(
                ReplicationIntent(
                    id=f"share-{n}-vi2-{tag}",
                    source=Endpoint("subnet", "0.0.0.0/0", w.vp2_node, w.vp2_port),
                    port=port, dst_ip=_group(addr, att.pn1), targets=[d2], rewrite=False,
                )
            )  # fmt: skip
    for h in w.pn2_hosts:
        out.append(
            ConnectivityIntent(
                id=f"share-{n}-vp1-{h}"[:63], a=Endpoint("host", h),
                b=Endpoint("subnet", f"{att.import_alias}/32", w.vp1_node, w.vp1_port),
            )
        )  # fmt: skip
    if w.pn2_hosts:
        for tag, addr, port in GROUPS:
            out.append(
                ReplicationIntent(
                    id=f"share-{n}-vi1-{tag}",
                    source=Endpoint("subnet", "0.0.0.0/0", w.vp1_node, w.vp1_port),
                    port=port, dst_ip=_group(addr, att.pn2),
                    targets=[Endpoint("host", h) for h in w.pn2_hosts], rewrite=False,
                )
            )  # fmt: skip
    return out


def host_intents(wirings: Iterable[Wiring]) -> list[Intent]:
    """Each PN host's discovery traffic to the VPs that serve it (one intent per group)."""
    serves: dict[str, set[str]] = {}
    lan: dict[str, ipaddress.IPv4Network] = {}
    for w in wirings:
        if w.d2_host is not None:
            serves.setdefault(w.d2_host, set()).add(w.vp2)
            lan[w.d2_host] = w.att.pn1
        for h in w.pn2_hosts:
            serves.setdefault(h, set()).add(w.vp1)
            lan[h] = w.att.pn2
    out: list[Intent] = []
    for h in sorted(serves):
        for tag, addr, port in GROUPS:
            out.append(
                ReplicationIntent(
                    id=f"sharing-{h}-{tag}"[:63], source=Endpoint("host", h), port=port,
                    dst_ip=_group(addr, lan[h]),
                    targets=[Endpoint("instance", i) for i in sorted(serves[h])], rewrite=False,
                )
            )  # fmt: skip
    return out


# ------------------------------------------------------------------ from the database


def _port(session: Session, iid: str | None) -> tuple[str, str] | None:
    if not iid:
        return None
    row = session.scalars(
        select(PortRow).where(PortRow.peer_kind == "instance", PortRow.peer_name == iid)
    ).first()
    return (row.node, row.name) if row is not None else None


def _host_named(session: Session, node: str, ip: str) -> str | None:
    for h in session.scalars(select(HostRow).where(HostRow.node == node)):
        if h.ip and h.ip.split("/")[0] == ip:
            return h.name
    return None


def wirings(session: Session) -> tuple[list[Wiring], list[int]]:
    """Wirings of the built shares whose VPs sit on their bridges; and the ids of
    built shares that are not there yet (their ports not reported)."""
    out: list[Wiring] = []
    waiting: list[int] = []
    for sh in session.scalars(
        select(ShareRow)
        .where(ShareRow.state.in_([s.value for s in states.BUILT]))
        .order_by(ShareRow.id)
    ):
        vp2 = session.get(InstanceRow, sh.vp2_instance) if sh.vp2_instance else None
        vp1 = session.get(InstanceRow, sh.vp1_instance) if sh.vp1_instance else None
        p2, p1 = _port(session, sh.vp2_instance), _port(session, sh.vp1_instance)
        if not sh.att or vp2 is None or vp1 is None or p2 is None or p1 is None or not vp2.ip:
            waiting.append(sh.id)
            continue
        att = ATT.from_dict(sh.att)
        pn2_hosts = sorted(
            {h for _, d in att.entries if (h := _host_named(session, p1[0], str(d))) is not None}
        )
        out.append(
            Wiring(
                share=sh.id, att=att, vp2=vp2.id, vp2_node=p2[0], vp2_port=p2[1],
                vp2_ip=vp2.ip.split("/")[0], vp1=vp1.id, vp1_node=p1[0], vp1_port=p1[1],
                d2_host=_host_named(session, p2[0], str(att.shared_device)),
                pn2_hosts=tuple(pn2_hosts),
                http=bool((sh.options or {}).get("http_ports")),
            )
        )  # fmt: skip
    return out, waiting


@dataclass(frozen=True)
class VhgWiring:
    """Where a PN's vHG and the PN's hosts sit: all its intents need."""

    instance: str
    node: str
    port: str
    ip: str
    hosts: tuple[tuple[str, str], ...]
    """The PN's topology hosts on the vHG's node: (host, its access port's name)."""
    gateway: bool
    """Add the vHG's own gateway intent (the fabric has not given it one)."""


def vhg_intents(v: VhgWiring) -> list[Intent]:
    """The intents of one PN's vHG (see the module docstring), pure."""
    vhg = Endpoint("instance", v.instance)
    out: list[Intent] = []
    if v.gateway:
        out.append(gateway(vhg, v.node, f"sharing-vhg-{v.instance}-gw"))
    for h, port in v.hosts:
        out.append(
            ConnectivityIntent(
                id=f"sharing-vhg-{h}"[:63], a=Endpoint("host", h), b=vhg, above_gateway=True
            )
        )
        out.append(
            ReplicationIntent(
                id=f"sharing-vhg-{h}-dhcp"[:63],
                source=Endpoint("subnet", "0.0.0.0/32", v.node, port), port=67,
                dst_ip="255.255.255.255", targets=[vhg], rewrite=False,
            )
        )  # fmt: skip
    if v.hosts:
        out.append(
            ReplicationIntent(
                id=f"sharing-vhg-{v.instance}-bcast"[:63],
                source=Endpoint("subnet", f"{v.ip}/32", v.node, v.port), port=68,
                dst_ip="255.255.255.255", targets=[Endpoint("host", h) for h, _ in v.hosts],
                rewrite=False,
            )
        )  # fmt: skip
    return out


def vhg_wirings(session: Session) -> list[VhgWiring]:
    """The PNs' vHGs that run and sit on their bridges."""
    from netfate.orchestrator.sdn.tables import SdnIntentRow

    out: list[VhgWiring] = []
    for pn in session.scalars(
        select(PersonalNetworkRow)
        .where(PersonalNetworkRow.vhg_instance.is_not(None))
        .order_by(PersonalNetworkRow.email)
    ):
        inst = session.get(InstanceRow, pn.vhg_instance) if pn.vhg_instance else None
        where = _port(session, pn.vhg_instance)
        if inst is None or inst.state != "running" or not inst.ip or where is None:
            continue
        net = ipaddress.IPv4Network(pn.subnet)
        hosts: list[tuple[str, str]] = []
        for h in session.scalars(
            select(HostRow).where(HostRow.node == where[0]).order_by(HostRow.name)
        ):
            if not h.ip or ipaddress.IPv4Address(h.ip.split("/")[0]) not in net:
                continue
            if pn.members is not None and h.name not in pn.members:
                continue  # a host its owner left out of the PN: no path to its vHG
            port = session.scalars(
                select(PortRow.name).where(
                    PortRow.node == where[0], PortRow.peer_kind == "host",
                    PortRow.peer_name == h.name,
                )
            ).first()  # fmt: skip
            if port is not None:
                hosts.append((h.name, port))
        fabric = session.get(SdnIntentRow, f"fabric-gw-{inst.id}"[:63]) is not None
        out.append(
            VhgWiring(
                instance=inst.id, node=where[0], port=where[1], ip=inst.ip.split("/")[0],
                hosts=tuple(hosts), gateway=not fabric,
            )
        )  # fmt: skip
    return out


def desired(session: Session) -> tuple[list[Intent], list[int]]:
    ws, waiting = wirings(session)
    out: list[Intent] = []
    for w in ws:
        out += share_intents(w)
    for v in vhg_wirings(session):
        out += vhg_intents(v)
    return out + host_intents(ws), waiting


def vhg_ready(session: Session, pn: PersonalNetworkRow) -> bool:
    """Are the intents of this PN's vHG all stored (it runs, its port is known)?"""
    mine = [v for v in vhg_wirings(session) if v.instance == pn.vhg_instance]
    if not mine:
        return False
    return {it.id for it in vhg_intents(mine[0])} <= set(_stored(session))


@dataclass
class SyncResult:
    added: list[str]
    removed: list[str]
    refused: dict[str, str]
    waiting: list[int]
    """Built shares whose VPs' ports are not known yet: sync again later."""

    @property
    def complete(self) -> bool:
        return not self.refused and not self.waiting


def _stored(session: Session) -> dict[str, Any]:
    from netfate.orchestrator.sdn.tables import SdnIntentRow

    rows = session.scalars(select(SdnIntentRow))
    return {r.id: r for r in rows if r.id.startswith(MANAGED)}


def sync(session: Session) -> SyncResult:
    """Make the stored sharing intents exactly the desired ones, then commit.

    New or changed intents are checked as the SDN API checks one (names known,
    no conflict with the others, flows that compile); one that fails is left out
    and reported, the others still go in.
    """
    from netfate.orchestrator.sdn.api import reconcile_owned
    from netfate.orchestrator.sdn.tables import SdnIntentRow

    want, waiting = desired(session)
    added, removed, refused = reconcile_owned(session, want, lambda iid: iid.startswith(MANAGED))
    if added or removed:
        record_event(session, "sharing_intents", {"added": added, "removed": removed,
                                                  "refused": refused})  # fmt: skip
    if refused:
        log.warning("sharing intents refused: %s", refused)
    in_now = {r for (r,) in session.execute(select(SdnIntentRow.id))}
    # Each built share names its overlay intent once that is in.
    for sh in session.scalars(
        select(ShareRow).where(ShareRow.state.in_([st.value for st in states.BUILT]))
    ):
        name = f"share-{sh.id}-overlay"
        sh.tunnel_intent = name if name in in_now else None
    session.commit()
    return SyncResult(added, removed, refused, waiting)


def needs_sync(session: Session) -> bool:
    """Cheap enough for every read of a share: is a desired intent missing or stale?"""
    want, _ = desired(session)
    stored = _stored(session)
    if set(stored) != {it.id for it in want}:
        return True
    return any(parse_intent(stored[it.id].spec) != it for it in want)


def share_ready(session: Session, share: int) -> bool:
    """Are all of this share's intents stored (its VPs' ports known, none refused)?"""
    ws, _ = wirings(session)
    mine = [w for w in ws if w.share == share]
    if not mine:
        return False
    want = {it.id for it in share_intents(mine[0])}
    return want <= set(_stored(session))


def withdraw_lans(session: Session) -> list[str]:
    """Remove the fabric's LAN-to-LAN intents that involve an isolated LAN (commit is
    the caller's). The fabric made them before the PN existed; it makes no new ones."""
    from netfate.orchestrator.sdn.tables import SdnIntentRow

    isolated = {(n, str(ipaddress.IPv4Network(c, strict=False))) for n, c in pn_lans(session)}
    gone: list[str] = []
    for row in session.scalars(select(SdnIntentRow).where(SdnIntentRow.id.like("fabric-lan-%"))):
        ends = [row.spec.get("a"), row.spec.get("b")]
        for end in ends:
            if not isinstance(end, str) or not end.startswith("subnet:"):
                continue
            ep = Endpoint.parse(end)
            if ep.port is None and (ep.node, ep.name) in isolated:
                session.delete(row)
                gone.append(row.id)
                break
    if gone:
        record_event(session, "pn_isolated", {"withdrawn": gone})
    return gone
