"""Personal Networks and the share workflow of seed section III.A, over the database.

Like the platform's coordinator, nothing here talks to an agent: each operation
changes rows in one transaction (the caller commits) and returns the nodes whose
desired state changed. A share becomes `active` when both of its VP instances
are reported running; `refresh` checks that whenever a share is read.

Steps of III.A and where they happen:

1. PN1's owner picks a device and PN2's id (its owner)    request_share
2. PN2's owner is notified                                list_shares(recipient=...)
3. on accept, PN2's active device addresses are taken     accept -> inventory(PN2)
4. VP2 is launched in PN1, one alias per PN2 device       accept -> create_instance
5. VP2 gets PN2's device addresses                        ATT in VP2's config
6. VP2 builds its ATT                                     vnf.virtual_presence.kernel
7. VP1 is launched in PN2 with one alias for the device   accept -> create_instance
8. the overlay between the two EIs                        VXLAN in the VPs + SDN tunnel intent
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import networkx as nx
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from netfate.model.lifecycle import LIVE, InstanceState
from netfate.orchestrator.identity.accounts import NAME_RE as OWNER_RE
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.orchestrator.nfv.errors import Conflict, LifecycleError, NoCapacity, NotFound
from netfate.store.db import serialize
from netfate.store.events import record
from netfate.store.tables import HostRow, InstanceRow, LanRow, NodeRow
from netfate.vnf.virtual_presence.att import ATT, ATTError
from netfate.vnf.virtual_presence.translator import Role

from . import gateway, states
from .events import PersonalNetworkCreated, SharePortsLearned, ShareStateChanged
from .states import ShareState
from .tables import DeviceRow, InvitationRow, PersonalNetworkRow, ShareHistoryRow, ShareRow

A = ipaddress.IPv4Address
VP_DESCRIPTOR = "virtual-presence"
VHG_DESCRIPTOR = "vhg"
OVERLAY = ("10.0.0.1/30", "10.0.0.2/30")  # the seed's EI addresses, inside each VP's namespace
UNDERLAY_MTU = 1550  # a LAN's 1500 + VXLAN's 50: no fragmentation, no MSS clamping
# Invitation codes: 12 symbols a person reads out or types (no 0/O, 1/I/L), in groups
# of four: 31^12 (about 2^59) codes, so guessing a live one is hopeless.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_RE = re.compile(r"^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$")
INVITATION_TTL_S = 7 * 86400.0
MAX_OPEN_INVITATIONS = 20
"""Unused, unexpired codes one PN may hold at once (asking for more is a 409)."""


class BadRequest(LifecycleError):
    status = 400


class Forbidden(LifecycleError):
    status = 403


def _one_at_a_time(session: Session) -> None:
    """Sharing's changes run one at a time. Each decides on rows another could be
    changing at once (a LAN's PN, a PN's free addresses and devices, a share's
    state); they are rare (people's actions), so the service serializes them in the
    database (store.serialize) rather than lock row by row. Call it first: rows
    loaded before (the route's PN or share) are read again when next used."""
    serialize(session, "sharing")
    session.expire_all()


# ------------------------------------------------------------------ PNs


def create_pn(
    session: Session, email: str, node: str, subnet: str | None = None, name: str = ""
) -> PersonalNetworkRow:
    """A PN for the account `email` names (any account name: an email, or `alice`)."""
    _one_at_a_time(session)
    if not OWNER_RE.match(email):
        raise BadRequest(
            f"a PN id is its owner's account name (letters, digits, . _ @ + -); "
            f"{email!r} is not one"
        )
    if session.get(PersonalNetworkRow, email) is not None:
        raise Conflict(f"PN {email} exists")
    if session.get(NodeRow, node) is None:
        raise NotFound(f"unknown node {node!r}")
    q = select(LanRow).where(LanRow.node == node).order_by(LanRow.id)
    lans = [lan.subnet for lan in session.scalars(q)]
    if not lans:
        raise BadRequest(f"node {node} has no LAN to be a PN")
    if subnet is None:
        # The node's first LAN that is no PN yet: a node with several gives a second
        # user one of its own (the first user's stays theirs).
        owned = set(
            session.scalars(
                select(PersonalNetworkRow.subnet).where(PersonalNetworkRow.node == node)
            )
        )
        subnet = next((lan for lan in lans if lan not in owned), lans[0])
    elif str(ipaddress.ip_network(subnet, strict=False)) not in lans:
        raise BadRequest(f"{subnet} is not a LAN of node {node} ({', '.join(lans)})")
    taken = session.scalars(
        select(PersonalNetworkRow).where(
            PersonalNetworkRow.node == node, PersonalNetworkRow.subnet == subnet
        )
    ).first()
    if taken is not None:
        raise Conflict(f"LAN {subnet} of {node} is already PN {taken.email}")
    row = PersonalNetworkRow(
        email=email, name=name or email.split("@")[0], node=node, subnet=subnet,
        created_at=time.time(),
    )  # fmt: skip
    session.add(row)
    record(session, PersonalNetworkCreated(email, node, subnet), readers=(email,))
    return row


def get_pn(session: Session, email: str) -> PersonalNetworkRow:
    pn = session.get(PersonalNetworkRow, email)
    if pn is None:
        raise NotFound(f"unknown PN {email!r}")
    return pn


@dataclass(frozen=True)
class Device:
    name: str
    ip: str
    mac: str | None
    kind: str
    source: str
    """topology (a host of the PN's LAN), declared (virtual), lease, neighbour, or vhg."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ip": self.ip,
            "mac": self.mac,
            "kind": self.kind,
            "source": self.source,
        }


def _vp_addresses(session: Session, pn: PersonalNetworkRow) -> set[A]:
    """Addresses the sharing service put into this PN: VP aliases are not devices."""
    out: set[A] = set()
    shares = session.scalars(
        select(ShareRow).where(
            ShareRow.state.in_([s.value for s in states.BUILT]),
            or_(ShareRow.owner == pn.email, ShareRow.recipient == pn.email),
        )
    )
    for sh in shares:
        if not sh.att:
            continue
        att = ATT.from_dict(sh.att)
        if sh.owner == pn.email:
            out |= set(att.aliases)
        if sh.recipient == pn.email:
            out.add(att.import_alias)
    return out


def inventory(session: Session, pn: PersonalNetworkRow, every: bool = False) -> list[Device]:
    """The PN's devices: topology hosts of its LAN (those its owner chose to join it,
    `members`, when they chose), declared virtual devices, vHG reports. `every`: all
    the LAN's hosts, chosen or not."""
    net = ipaddress.ip_network(pn.subnet)
    found: dict[str, Device] = {}
    members = None if every or pn.members is None else set(pn.members)
    for h in session.scalars(select(HostRow).where(HostRow.node == pn.node)):
        if members is not None and h.name not in members:
            continue  # a host of the LAN its owner left out of the PN
        if h.ip and ipaddress.ip_address(h.ip) in net:
            found[h.ip] = Device(h.name, h.ip, h.mac, h.kind or "host", "topology")
    vps = {str(a) for a in _vp_addresses(session, pn)}
    for d in session.scalars(select(DeviceRow).where(DeviceRow.pn == pn.email)):
        if d.ip in vps or (d.ip in found and d.source != "declared"):
            continue
        found[d.ip] = Device(d.name, d.ip, d.mac, d.kind, d.source)
    # What the vHG itself sees (DHCP leases, neighbour table): its agent forwards the
    # function's own figures into the instance row at every report.
    for seen in _vhg_devices(session, pn):
        ip = str(seen.get("ip", ""))
        try:
            inside = ipaddress.ip_address(ip) in net
        except ValueError:
            continue
        if not inside or ip in found or ip in vps:
            continue
        name = str(seen.get("name") or f"ip-{ip.replace('.', '-')}")[:64]
        mac = seen.get("mac")
        source = str(seen.get("source", "vhg"))[:16]
        found[ip] = Device(name, ip, str(mac) if mac else None, "device", source)
    return sorted(found.values(), key=lambda d: ipaddress.ip_address(d.ip))


def _vhg_devices(session: Session, pn: PersonalNetworkRow) -> list[dict[str, Any]]:
    if not pn.vhg_instance:
        return []
    inst = session.get(InstanceRow, pn.vhg_instance)
    if inst is None or inst.state != "running":
        return []
    devices = (inst.stats or {}).get("devices", [])
    return [d for d in devices if isinstance(d, dict)] if isinstance(devices, list) else []


def find_device(session: Session, pn: PersonalNetworkRow, ref: str) -> Device:
    for d in inventory(session, pn):
        if ref in (d.name, d.ip):
            return d
    raise Forbidden(f"PN {pn.email} has no device {ref!r}: only its own devices can be shared")


def declare_device(
    session: Session, pn: PersonalNetworkRow, name: str, ip: str, kind: str, mac: str | None
) -> DeviceRow:
    """Add a virtual device (vSTB, vNAS...) to the PN, or replace a declared one."""
    _one_at_a_time(session)
    addr = ipaddress.ip_address(ip)
    if addr not in ipaddress.ip_network(pn.subnet):
        raise BadRequest(f"{ip} is not in PN {pn.email}'s subnet {pn.subnet}")
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", name):
        raise BadRequest(f"device name {name!r}: letters, digits, '_', '.', '-'")
    for d in inventory(session, pn):
        if d.ip == str(addr) and d.name != name:
            raise Conflict(f"{ip} is already device {d.name} of PN {pn.email}")
    row = session.scalars(
        select(DeviceRow).where(DeviceRow.pn == pn.email, DeviceRow.name == name)
    ).first()
    if row is None:
        row = DeviceRow(pn=pn.email, name=name, source="declared")
        session.add(row)
    row.ip, row.kind, row.mac, row.seen_at = str(addr), kind, mac, time.time()
    row.source = "declared"
    return row


def report_inventory(
    session: Session, pn: PersonalNetworkRow, devices: list[dict[str, Any]]
) -> int:
    """Replace what the vHG last reported (DHCP leases, neighbour table)."""
    _one_at_a_time(session)
    net = ipaddress.ip_network(pn.subnet)
    for old in session.scalars(
        select(DeviceRow).where(DeviceRow.pn == pn.email, DeviceRow.source != "declared")
    ):
        session.delete(old)
    session.flush()
    now, n = time.time(), 0
    names: set[str] = set()
    for d in devices:
        ip = ipaddress.ip_address(str(d["ip"]))
        if ip not in net:
            continue
        name = str(d.get("name") or f"ip-{str(ip).replace('.', '-')}")[:64]
        if name in names:
            name = f"{name}-{str(ip).split('.')[-1]}"[:64]
        names.add(name)
        session.add(
            DeviceRow(
                pn=pn.email, name=name, ip=str(ip), mac=d.get("mac"),
                kind=str(d.get("kind", "device"))[:32], source=str(d.get("source", "vhg"))[:16],
                seen_at=now,
            )
        )  # fmt: skip
        n += 1
    return n


# ------------------------------------------------------------------ invitations


def create_invitation(
    session: Session, pn: PersonalNetworkRow, ttl_s: float = INVITATION_TTL_S
) -> InvitationRow:
    """A code for someone who will share a device with `pn` (used once, until it expires)."""
    _one_at_a_time(session)
    now = time.time()
    open_ = session.scalars(
        select(InvitationRow).where(
            InvitationRow.pn == pn.email,
            InvitationRow.used_at.is_(None),
            InvitationRow.expires_at > now,
        )
    ).all()
    if len(open_) >= MAX_OPEN_INVITATIONS:
        raise Conflict(
            f"PN {pn.email} has {len(open_)} unused invitations: use or let some expire first"
        )
    while True:
        raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(12))
        code = f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"
        if session.get(InvitationRow, code) is None:
            break
    row = InvitationRow(code=code, pn=pn.email, created_at=now, expires_at=now + ttl_s)
    session.add(row)
    return row


def invitation_view(inv: InvitationRow, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    state = "used" if inv.used_at is not None else "expired" if inv.expires_at <= now else "open"
    return {"code": inv.code, "pn": inv.pn, "created_at": inv.created_at,
            "expires_at": inv.expires_at, "state": state, "share": inv.share}  # fmt: skip


def list_invitations(session: Session, pn: PersonalNetworkRow) -> list[InvitationRow]:
    q = select(InvitationRow).where(InvitationRow.pn == pn.email)
    return list(session.scalars(q.order_by(InvitationRow.created_at)))


def _redeem(session: Session, code: str) -> InvitationRow:
    """The open invitation `code` names; unknown, used or expired: refused."""
    inv = session.get(InvitationRow, code)
    if inv is None:
        raise NotFound(f"unknown invitation code {code}")
    if inv.used_at is not None:
        raise Conflict(f"invitation {code} was already used (share {inv.share})")
    if inv.expires_at <= time.time():
        raise Conflict(f"invitation {code} has expired: ask its owner for a new one")
    return inv


def normalize_code(text: str) -> str | None:
    """`text` as an invitation code (upper case, dashes where they go), or None."""
    raw = re.sub(r"[\s-]", "", text).upper()
    if len(raw) != 12:
        return None
    code = f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"
    return code if CODE_RE.match(code) else None


# ------------------------------------------------------------------ shares


def _history(
    session: Session, sh: ShareRow, prev: ShareState | None, new: ShareState, actor: str, why: str
) -> None:
    now = time.time()
    session.add(
        ShareHistoryRow(
            share=sh.id, previous=prev.value if prev else None, state=new.value, at=now,
            actor=actor, reason=why,
        )
    )  # fmt: skip
    record(
        session,
        ShareStateChanged(
            sh.id, sh.owner, sh.recipient, sh.device, prev.value if prev else None, new.value, why
        ),
        readers=(sh.owner, sh.recipient),  # both owners' pages follow it live
    )


def _move(session: Session, sh: ShareRow, target: ShareState, actor: str, why: str) -> None:
    current = ShareState(sh.state)
    states.check(current, target)
    sh.state = target.value
    sh.updated_at = time.time()
    _history(session, sh, current, target, actor, why)


def request_share(
    session: Session, owner: str, device: str, recipient: str, http_ports: list[int] | None = None
) -> ShareRow:
    """PN1's owner shares `device` with `recipient`: a PN's id (its owner's account name) or an
    invitation code that PN's owner gave them (used up by the share)."""
    _one_at_a_time(session)
    pn1 = get_pn(session, owner)
    inv: InvitationRow | None = None
    # A PN's id is any account name, and a code looks like one: a PN of that name wins
    # (codes are random: no account is likely to be named like a live one).
    code = None if session.get(PersonalNetworkRow, recipient) else normalize_code(recipient)
    if code is not None:
        inv = _redeem(session, code)
        recipient = inv.pn
    elif not OWNER_RE.match(recipient):
        raise BadRequest(
            f"the recipient is a PN id (its owner's account name) or an invitation code; "
            f"{recipient!r} is neither"
        )
    pn2 = session.get(PersonalNetworkRow, recipient)
    if pn2 is None:
        how = "" if inv is not None else " (nor is it an invitation code)"
        raise NotFound(f"unknown PN {recipient!r}: nobody to share with{how}")
    if pn2.email == pn1.email:
        raise BadRequest("a PN cannot share a device with itself")
    dev = find_device(session, pn1, device)
    dup = session.scalars(
        select(ShareRow).where(
            ShareRow.owner == owner,
            ShareRow.recipient == recipient,
            ShareRow.device_ip == dev.ip,
            ShareRow.state.in_([s.value for s in states.OPEN]),
        )
    ).first()
    if dup is not None:
        raise Conflict(f"device {dev.name} is already shared with {recipient} (share {dup.id})")
    now = time.time()
    sh = ShareRow(
        owner=owner, recipient=recipient, device=dev.name, device_ip=dev.ip,
        state=ShareState.REQUESTED.value, created_at=now, updated_at=now, detail="",
        options={"http_ports": sorted(set(http_ports or []))},
    )  # fmt: skip
    session.add(sh)
    session.flush()
    how = f" (invitation {inv.code})" if inv is not None else ""
    _history(session, sh, None, ShareState.REQUESTED, owner, f"{owner} shares {dev.name}{how}")
    if inv is not None:
        inv.used_at, inv.share = now, sh.id
    return sh


def get_share(session: Session, sid: int) -> ShareRow:
    sh = session.get(ShareRow, sid)
    if sh is None:
        raise NotFound(f"unknown share {sid}")
    return sh


def _taken(session: Session, pn: PersonalNetworkRow) -> set[A]:
    """Addresses of the PN's subnet that an alias must not use."""
    net = ipaddress.ip_network(pn.subnet)
    taken: set[A] = set()

    def add(ip: str | None) -> None:
        if ip:
            a = ipaddress.ip_interface(ip).ip
            if isinstance(a, A) and a in net:
                taken.add(a)

    for lan in session.scalars(select(LanRow).where(LanRow.node == pn.node)):
        add(lan.gateway)
    for d in inventory(session, pn):
        add(d.ip)
    live = [s.value for s in LIVE]
    for ip in session.scalars(select(InstanceRow.ip).where(InstanceRow.state.in_(live))):
        add(ip)
    taken |= _vp_addresses(session, pn)
    # the vHG's DHCP pool (the PN's gateway settings)
    pool = gateway.settings(session, pn)
    first, last = int(A(pool["dhcp_first"])), int(A(pool["dhcp_last"]))
    taken |= {A(i) for i in range(first, last + 1) if A(i) in net}
    return taken


def _bottom_up(net: ipaddress.IPv4Network, taken: set[A], count: int) -> list[A]:
    # Instances get addresses from the top down (coordinator); aliases from the bottom up,
    # so that the two pools meet only when the subnet is full.
    free = [a for a in net.hosts() if a not in taken]
    if len(free) < count:
        raise NoCapacity(f"PN subnet {net} has {len(free)} free addresses, {count} needed")
    return free[:count]


def underlay_mtu(session: Session, a: str, b: str) -> int:
    """The MTU the VPs' underlay has between nodes a and b: the smallest of the links
    on the path (a link without `mtu` in the topology is 1500), at most UNDERLAY_MTU.
    Below 1550 the EI gets less than 1500 and the VPs clamp TCP's MSS instead."""
    from netfate.model.topology import Topology, TopologyError
    from netfate.store.tables import TopologyRow

    trow = session.get(TopologyRow, 1)
    if trow is None:
        return 1500
    try:
        topo = Topology.from_dict(trow.document)
    except TopologyError:
        return 1500
    g = topo.graph()
    try:
        path = nx.shortest_path(g.subgraph(topo.nodes), a, b, weight="delay_s")
    except (nx.NetworkXNoPath, nx.NodeNotFound):
        return 1500
    by_index = {lk.index: lk for lk in topo.links}
    mtu = UNDERLAY_MTU
    for x, y in itertools.pairwise(path):
        mtu = min(mtu, by_index[g.edges[x, y]["link"]].mtu or 1500)
    return mtu


def _launch(
    session: Session,
    sh: ShareRow,
    att: ATT,
    pn1: PersonalNetworkRow,
    pn2: PersonalNetworkRow,
) -> tuple[InstanceRow, InstanceRow, set[str]]:
    """Steps 4-8: VP2 on PN1's node, VP1 on PN2's node, each configured from `att`."""
    sid = sh.id
    net1, net2 = att.pn1, att.pn2
    vp2, t2 = nfv.create_instance(
        session,
        nfv.CreateRequest(descriptor=VP_DESCRIPTOR, name=f"vp2-share{sid}", node=pn1.node),
    )
    vp1, t1 = nfv.create_instance(
        session,
        nfv.CreateRequest(descriptor=VP_DESCRIPTOR, name=f"vp1-share{sid}", node=pn2.node),
    )
    if not vp2.ip or not vp1.ip:
        raise NoCapacity("the VP instances got no address on their nodes' LANs")
    ip2, ip1 = ipaddress.ip_interface(vp2.ip), ipaddress.ip_interface(vp1.ip)
    common = {
        "share": sid, "vi": "eth0", "underlay_dev": "eth0", "att": att.to_dict(),
        # The discovery ALG (SSDP, mDNS; HTTP on the device's ports) runs in VP1.
        "alg": True, "http_ports": list((sh.options or {}).get("http_ports", [])),
        "icmp_tap": True,
        # Full-size LAN packets plus VXLAN's 50 bytes fit the underlay (link_mtu is
        # the veth's, for the agent); the peer is reached on the link, as the SDN
        # tunnel intent carries it port to port (network.py).
        "link_mtu": UNDERLAY_MTU, "underlay_onlink": True,
        "underlay_mtu": underlay_mtu(session, pn1.node, pn2.node),
    }  # fmt: skip
    vp2.config = {
        **common, "role": Role.EXPORTER.value, "vi_prefixlen": net1.prefixlen,
        "local_underlay": str(ip2.ip), "remote_underlay": str(ip1.ip),
        "overlay_local": OVERLAY[0], "overlay_remote": OVERLAY[1].split("/")[0],
    }  # fmt: skip
    vp1.config = {
        **common, "role": Role.IMPORTER.value, "vi_prefixlen": net2.prefixlen,
        "local_underlay": str(ip1.ip), "remote_underlay": str(ip2.ip),
        "overlay_local": OVERLAY[1], "overlay_remote": OVERLAY[0].split("/")[0],
    }  # fmt: skip
    sh.att = att.to_dict()
    sh.vp2_instance, sh.vp1_instance = vp2.id, vp1.id
    return vp2, vp1, t1 | t2


def accept(session: Session, sid: int, by: str) -> tuple[ShareRow, set[str]]:
    """PN2's owner accepts: steps 3 to 8. Refuses (changing nothing) if anything is missing."""
    _one_at_a_time(session)
    sh = get_share(session, sid)
    if by != sh.recipient:
        raise Forbidden(f"only {sh.recipient} (the recipient) can accept share {sid}")
    states.check(ShareState(sh.state), ShareState.ACCEPTED)
    pn1, pn2 = get_pn(session, sh.owner), get_pn(session, sh.recipient)
    devices = [d for d in inventory(session, pn2)]
    net1 = ipaddress.IPv4Network(pn1.subnet)
    net2 = ipaddress.IPv4Network(pn2.subnet)
    aliases = _bottom_up(net1, _taken(session, pn1), len(devices))
    import_alias = _bottom_up(net2, _taken(session, pn2), 1)[0]
    try:
        att = ATT(
            pn1=net1, pn2=net2, shared_device=A(sh.device_ip), import_alias=import_alias,
            entries=tuple((a, A(d.ip)) for a, d in zip(aliases, devices, strict=True)),
        )  # fmt: skip
    except ATTError as e:
        raise BadRequest(str(e)) from None
    vp2, vp1, touched = _launch(session, sh, att, pn1, pn2)
    sh.accepted_at = time.time()
    _move(
        session, sh, ShareState.ACCEPTED, by,
        f"{by} accepted; VP2 {vp2.id} on {pn1.node} with {len(aliases)} aliases, "
        f"VP1 {vp1.id} on {pn2.node} with alias {import_alias}",
    )  # fmt: skip
    return sh, touched


def resync(session: Session, pn2: PersonalNetworkRow) -> set[str]:
    """PN2 devices came or left: give each built share into PN2 its new ATT.

    Devices that stay keep their alias; new ones get free PN1 addresses; aliases
    of gone devices are freed. When both VPs run, each gets the new ATT in its
    configuration and its agent applies it in place (the VP takes a new ATT
    without a restart: aliases added or removed, rules replaced; the overlay and
    the share's other paths stay up). Otherwise both VPs are replaced
    (make-before-break: the new ones are created before the old ones are
    destroyed); their intents follow at the next `network.sync`. Returns the
    nodes touched.
    """
    _one_at_a_time(session)
    touched: set[str] = set()
    now = [A(d.ip) for d in inventory(session, pn2)]
    shares = session.scalars(
        select(ShareRow).where(
            ShareRow.recipient == pn2.email, ShareRow.state.in_([s.value for s in states.BUILT])
        )
    )
    for sh in list(shares):
        if not sh.att:
            continue
        att = ATT.from_dict(sh.att)
        old = att.to_pn1
        if set(old) == set(now):
            continue
        pn1 = get_pn(session, sh.owner)
        keep = [(old[d], d) for d in now if d in old]
        new = [d for d in now if d not in old]
        # This share's current aliases count as taken until its old VP2 is gone.
        fresh = _bottom_up(att.pn1, _taken(session, pn1), len(new))
        new_att = att.with_entries(keep + list(zip(fresh, new, strict=True)))
        gone = [str(d) for d in old if d not in now]
        change = f"+{', '.join(map(str, new)) or 'none'}; -{', '.join(gone) or 'none'}"
        vps = [
            session.get(InstanceRow, i) if i else None for i in (sh.vp2_instance, sh.vp1_instance)
        ]
        running = [v for v in vps if v is not None and v.state == InstanceState.RUNNING.value]
        if len(running) == 2:
            for v in running:
                _, t = nfv.reconfigure_instance(
                    session, v.id, {**v.config, "att": new_att.to_dict()}
                )
                touched |= t
            sh.att = new_att.to_dict()
            _history(
                session, sh, ShareState(sh.state), ShareState(sh.state), "orchestrator",
                f"PN2 devices changed ({change}): new ATT applied to both VPs in place",
            )  # fmt: skip
            continue
        touched |= _destroy_vps(session, sh)
        _, _, t = _launch(session, sh, new_att, pn1, pn2)
        touched |= t
        sh.tunnel_intent = None
        _history(
            session, sh, ShareState(sh.state), ShareState(sh.state), "orchestrator",
            f"PN2 devices changed ({change}): VPs replaced",
        )  # fmt: skip
    return touched


def decline(session: Session, sid: int, by: str) -> ShareRow:
    _one_at_a_time(session)
    sh = get_share(session, sid)
    if by != sh.recipient:
        raise Forbidden(f"only {sh.recipient} (the recipient) can decline share {sid}")
    _move(session, sh, ShareState.DECLINED, by, f"{by} declined")
    return sh


def _destroy_vps(session: Session, sh: ShareRow) -> set[str]:
    touched: set[str] = set()
    for iid in (sh.vp2_instance, sh.vp1_instance):
        inst = session.get(InstanceRow, iid) if iid else None
        if inst is not None and inst.state not in (InstanceState.GONE, InstanceState.STOPPING):
            _, t = nfv.destroy_instance(session, inst.id)
            touched |= t
    return touched


def revoke(session: Session, sid: int, by: str) -> tuple[ShareRow, set[str]]:
    _one_at_a_time(session)
    sh = get_share(session, sid)
    if by not in (sh.owner, sh.recipient):
        raise Forbidden(f"only {sh.owner} or {sh.recipient} can revoke share {sid}")
    _move(session, sh, ShareState.REVOKED, by, f"{by} revoked")
    return sh, _destroy_vps(session, sh)


def refresh(session: Session, sh: ShareRow, network_ready: bool = True) -> set[str]:
    """accepted -> active when both VPs run (and, with `network_ready` false, not yet:
    the share's SDN intents are not all in); -> failed (VPs removed) when one failed."""
    if _verdict(session, sh, network_ready) is None:
        return set()  # the common case, read only
    _one_at_a_time(session)
    verdict = _verdict(session, sh, network_ready)  # again: another request may have moved it
    if verdict is None:
        return set()
    target, why = verdict
    if target == ShareState.FAILED:
        _move(session, sh, ShareState.FAILED, "orchestrator", why)
        sh.detail = why
        return _destroy_vps(session, sh)
    sh.active_at = time.time()
    _move(session, sh, ShareState.ACTIVE, "orchestrator", why)
    return set()


def _verdict(session: Session, sh: ShareRow, network_ready: bool) -> tuple[ShareState, str] | None:
    """Where refresh moves the share, and why; None: it stays."""
    if ShareState(sh.state) not in states.BUILT:
        return None
    insts = [session.get(InstanceRow, i) if i else None for i in (sh.vp2_instance, sh.vp1_instance)]
    bad = [i for i in insts if i is None or i.state in ("failed", "gone", "stopping")]
    if bad:
        why = "; ".join(
            f"VP {i.id} {i.state}: {i.detail}" if i is not None else "a VP is missing" for i in bad
        )
        return ShareState.FAILED, why[:2000]
    if (
        sh.state == ShareState.ACCEPTED
        and network_ready
        and all(i is not None and i.state == "running" for i in insts)
    ):
        return ShareState.ACTIVE, "both VPs run; overlay and paths in the network up"
    return None


def history(session: Session, sid: int) -> list[ShareHistoryRow]:
    return list(
        session.scalars(
            select(ShareHistoryRow).where(ShareHistoryRow.share == sid).order_by(ShareHistoryRow.id)
        )
    )


def _port_list(value: Any) -> list[int]:
    """Ports as the VP reported them: only what is a port (the stats are the function's)."""
    if not isinstance(value, list):
        return []
    ok = {p for p in value if isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536}
    return sorted(ok)


def share_ports(session: Session, sh: ShareRow) -> dict[str, list[int]]:
    """The TCP ports of the device that VP1's ALG proxies: `configured` (the share's
    http_ports, the override), `learned` (the device announced them: LOCATION, SRV,
    the URLs in its descriptions) and `proxied` (VP1 listens on them now). Learned and
    proxied come from VP1's own figures, which its agent's reports keep on the
    instance row; they are empty until VP1 runs and the device has announced."""
    configured = _port_list((sh.options or {}).get("http_ports", []))
    inst = session.get(InstanceRow, sh.vp1_instance) if sh.vp1_instance else None
    reported = (inst.stats or {}).get("ports") if inst is not None else None
    if inst is None or inst.state != InstanceState.RUNNING.value or not isinstance(reported, dict):
        reported = {}
    return {
        "configured": configured,
        "learned": _port_list(reported.get("learned")),
        "proxied": _port_list(reported.get("proxied")),
    }


def on_instance_event(session: Session, inst: InstanceRow, event: dict[str, Any]) -> set[str]:
    """A Virtual Presence's event (``Service.on_instance_event``). VP1 learned ports
    of the device: both owners' pages show the share's ports, and this event is the
    only news of it they get (the figures come on the instance row, which raises no
    event). Delivered at least once: a repeat tells the same, harmlessly."""
    if event.get("kind") != "PortsLearned":
        return set()
    for sh in session.scalars(select(ShareRow).where(ShareRow.vp1_instance == inst.id)):
        record(
            session,
            SharePortsLearned(
                sh.id,
                sh.owner,
                sh.recipient,
                sh.device,
                _port_list(event.get("learned")),
                _port_list(event.get("proxied")),
            ),
            readers=(sh.owner, sh.recipient),
        )
    return set()


def share_view(session: Session, sh: ShareRow, with_history: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": sh.id,
        "owner": sh.owner,
        "recipient": sh.recipient,
        "device": sh.device,
        "device_ip": sh.device_ip,
        "state": sh.state,
        "att": sh.att,
        "vp2_instance": sh.vp2_instance,
        "vp1_instance": sh.vp1_instance,
        "tunnel_intent": sh.tunnel_intent,
        "options": sh.options,
        "created_at": sh.created_at,
        "accepted_at": sh.accepted_at,
        "active_at": sh.active_at,
        "detail": sh.detail,
    }
    if sh.att:
        att = ATT.from_dict(sh.att)
        out["address_in_recipient_pn"] = str(att.import_alias)
    out["ports"] = share_ports(session, sh)
    if with_history:
        out["history"] = [
            {"previous": h.previous, "state": h.state, "at": h.at, "actor": h.actor,
             "reason": h.reason}
            for h in history(session, sh.id)
        ]  # fmt: skip
    return out


def pn_view(session: Session, pn: PersonalNetworkRow) -> dict[str, Any]:
    return {
        "email": pn.email,  # the PN's id under its first name: its owner's account
        "owner": pn.email,
        "name": pn.name,
        "node": pn.node,
        "subnet": pn.subnet,
        "vhg_instance": pn.vhg_instance,
        "devices": [d.to_dict() for d in inventory(session, pn)],
        "members": pn.members,
    }


def list_shares(session: Session, pn: str | None = None) -> list[ShareRow]:
    q = select(ShareRow).order_by(ShareRow.id)
    if pn is not None:
        q = q.where(or_(ShareRow.owner == pn, ShareRow.recipient == pn))
    return list(session.scalars(q))


def start_vhg(session: Session, pn: PersonalNetworkRow) -> tuple[InstanceRow, set[str]]:
    """Launch the PN's virtual home gateway (DHCP, NAT, firewall) on its node."""
    _one_at_a_time(session)
    if pn.vhg_instance:
        cur = session.get(InstanceRow, pn.vhg_instance)
        if cur is not None and cur.state in [s.value for s in LIVE]:
            raise Conflict(f"PN {pn.email} already has vHG {cur.id}")
    inst, touched = nfv.create_instance(
        session,
        nfv.CreateRequest(
            descriptor=VHG_DESCRIPTOR,
            name=f"vhg-{pn.name}"[:64],
            node=pn.node,
            lan=pn.subnet,  # its address on the PN's own LAN (a node may have several)
            config=gateway.vhg_config(session, pn),  # its owner's settings, or the defaults
        ),
    )
    pn.vhg_instance = inst.id
    return inst, touched


def set_gateway(
    session: Session, pn: PersonalNetworkRow, changes: dict[str, Any], by: str
) -> set[str]:
    """New gateway settings for the PN (gateway.update), one change at a time; a DHCP
    pool over an address the PN's shares or the platform's instances use is refused."""
    _one_at_a_time(session)
    net = ipaddress.IPv4Network(pn.subnet)
    live = [s.value for s in LIVE]
    used = {A(a.split("/")[0]) for a in session.scalars(
        select(InstanceRow.ip).where(InstanceRow.state.in_(live), InstanceRow.ip.is_not(None))
    ) if a}  # fmt: skip
    used = {a for a in used if a in net} | _vp_addresses(session, pn)
    return gateway.update(session, pn, changes, by, used)


# ------------------------------------------------------------------ devices that join


def _owner_of_lan(session: Session, node: str, ip: str | None) -> PersonalNetworkRow | None:
    """The PN whose LAN holds address `ip` of `node`, if any."""
    if not ip:
        return None
    addr = ipaddress.ip_interface(ip).ip
    for other in session.scalars(select(PersonalNetworkRow).where(PersonalNetworkRow.node == node)):
        if addr in ipaddress.ip_network(other.subnet):
            return other
    return None


def resolve_members(
    session: Session, pn: PersonalNetworkRow, refs: list[str]
) -> tuple[list[Device | None], dict[int, str]]:
    """The device each of `refs` (a name or a MAC) names among those that may join
    `pn`: a host of its LAN, or a device declared or reported in it. Otherwise a
    problem at its index: unknown, named twice, another user's (a host on another
    PN's LAN, or a device of another PN: whose is not said), or a host of a LAN that
    is no PN's but not this PN's either."""
    mine = inventory(session, pn, every=True)
    out: list[Device | None] = []
    problems: dict[int, str] = {}
    seen: dict[str, int] = {}
    for i, ref in enumerate(refs):
        key = ref.lower()
        dev = next((d for d in mine if key in (d.name.lower(), (d.mac or "").lower())), None)
        if dev is None:
            out.append(None)
            problems[i] = _not_joinable(session, pn, ref, key)
            continue
        if dev.name in seen:
            out.append(None)
            problems[i] = f"{ref!r} names {dev.name}, already given at [{seen[dev.name]}]"
            continue
        seen[dev.name] = i
        out.append(dev)
    return out, problems


def _not_joinable(session: Session, pn: PersonalNetworkRow, ref: str, key: str) -> str:
    """Why `ref`, which is no device of `pn`'s LAN, cannot join it."""
    for h in session.scalars(select(HostRow).order_by(HostRow.name)):
        if key not in (h.name.lower(), (h.mac or "").lower()):
            continue
        other = _owner_of_lan(session, h.node, h.ip)
        if other is not None and other.email != pn.email:
            return f"{ref!r} is another user's device"
        return (
            f"{ref!r} is on {h.node}'s LAN, not on this Personal Network's ({pn.node} {pn.subnet})"
        )
    others = session.scalars(select(DeviceRow).where(DeviceRow.pn != pn.email)).all()
    if any(key in (d.name.lower(), (d.mac or "").lower()) for d in others):
        return f"{ref!r} is another user's device"
    return f"unknown device {ref!r}"


def set_members(
    session: Session, pn: PersonalNetworkRow, refs: list[str]
) -> tuple[list[Device | None], dict[int, str], set[str]]:
    """Which hosts of its LAN join `pn` (its owner's choice): the devices `refs` name,
    the problems (index -> why; then nothing changes) and the nodes touched. Shares
    into the PN follow its devices (resync); its vHG's paths follow on the service's
    next pass (network.vhg_wirings). Declared and reported devices stay in the PN
    whether named or not (they came to it by its owner or its vHG)."""
    _one_at_a_time(session)
    devices, problems = resolve_members(session, pn, refs)
    if problems:
        return devices, problems, set()
    topology = {h.name for h in session.scalars(select(HostRow).where(HostRow.node == pn.node))}
    pn.members = sorted(d.name for d in devices if d is not None and d.source == "topology"
                        and d.name in topology)  # fmt: skip
    session.flush()
    return devices, {}, resync(session, pn)
