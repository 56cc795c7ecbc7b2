"""The viewers' captive portals: a new client signs in at the front-end first.

As in the paper, a new client's web traffic is first re-routed to the front-end for
authentication. The service starts, through the platform's coordinator (as it
starts its own functions, reconcile.py), the firewall service's captive portal
(``captive-portal``) at each viewers' PE the operator names: its walled garden the
run's front door, its ``signin`` the front-end's sign-in through the door with the
user's app as where to go next.

Where: the operator's stored setting (``PUT /api/v1/streaming/portals``, kept on
the tree's row: ``{"all": bool, "pes": [...]}``; ``all``: every PE a host is
attached to, looked at each step). Until the operator first puts one, the
orchestrator's environment ``NETFATE_STREAMING_PORTALS`` is the default (``pe2,pe3``
or ``all``; unset or empty: none), read at each step; once stored, the environment
is no longer read.

The portal is its clients' gateway: its dnsmasq hands out the PE LAN's addresses
with itself as the default router (DHCP option 3), so a device that just runs a
DHCP client sends its traffic through the portal. The hosts the platform knows at
the PE get their topology address (the rest of the platform names them by it); the
portal answers only them (``known_only``): the testbed's bridges are one L2 network,
so a DHCP request reaches every PE's portal, and only the host's own PE may answer
it. A device the platform does not know at the PE gets no lease (README, "Not done
yet"). The DHCP part is added once the portal's instance has its address (the same
step: the loop builds the configurations again, nfv.reconfigure_instance on a
requested instance), as the router it names is that address.

A viewer signed in at the front-end but assigned an edge streamer on a neighbour PE
(the paper's case 3) is routed through its own PE's portal, whose gate forwards only
logged-in (RADIUS) clients: its portal gets a pinhole (``pinholes``: that client's
address to that streamer's address, its HTTP port: HLS, VoD and the RTP join; and for
a native client that gave its RTP port at the join, that streamer's UDP to that port
and the next, RTP and RTCP), kept from the tree at each step and gone when the
viewer leaves. A playback (MyShare) gets the same as a live viewer. Nothing else of
the client passes, and no other client gets it. The client's address is its host's
(the ``host`` the join or play named, else a device label that is a host at its PE:
the app sends its ``host``); a viewer whose device is no host there gets none
(README, "Not done yet"). The portal applies a change of its pinholes in place (the
agent's reconfigure: no restart).

Each portal is the loop's function ``portal:NODE`` (a FunctionRow, like the tree's):
created when named, configured again when the door or the PE's hosts change,
destroyed when no longer named, created again when the platform lost it. A name
that is no PE is skipped (logged once per step; the API refuses one with a 422). Its
CPU (the descriptor's) counts in the tree's loads at its PE (``reserved_cpu``).
"""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.model.topology import Topology, TopologyError
from netfate.orchestrator.engine.placement import HOSTING_KINDS
from netfate.store.tables import DescriptorRow, HostRow, InstanceRow, NodeRow, TopologyRow

from .functions import HTTP_PORT
from .tables import FunctionRow, TreeRow
from .tree import Tree

log = logging.getLogger("netfate.streaming")

PORTALS_ENV = "NETFATE_STREAMING_PORTALS"
PORTAL = "captive-portal"
"""The firewall service's function, requested by name through the platform."""
PORTAL_CPU = 0.2
"""Its CPU when the platform has no such descriptor (the firewall service's figure)."""
PORT = 80
APP = "/api/v1/streaming/app"
"""Where a client goes once signed in: the user's app (its Discover)."""
LEASE = "1h"
POOL = (100 / 256, 150 / 256)
"""The dynamic pool, as fractions of the LAN (.100-.149 of a /24): below the
instances' addresses (the platform gives them top-down) and above the hosts' (the
topology gives them bottom-up). dnsmasq pings an address before it offers it."""


def env() -> str:
    """The environment's default, as given ("" when none)."""
    return os.environ.get(PORTALS_ENV, "").strip()


def _env_setting() -> dict[str, Any]:
    raw = env()
    if raw == "all":
        return {"all": True, "pes": []}
    return {"all": False, "pes": sorted({p.strip() for p in raw.split(",") if p.strip()})}


def setting(session: Session) -> tuple[dict[str, Any], str]:
    """(the setting, where it comes from: "stored" or "environment"). Reads only."""
    row = session.get(TreeRow, 1)
    if row is None or row.portals is None:
        return _env_setting(), "environment"
    stored = {"all": bool(row.portals.get("all")), "pes": list(row.portals.get("pes", []))}
    return stored, "stored"


def hosting(session: Session) -> set[str]:
    """The nodes that can keep a portal (the PEs: nodes of a hosting kind)."""
    return set(session.scalars(select(NodeRow.name).where(NodeRow.kind.in_(HOSTING_KINDS))))


def pes(session: Session) -> list[str]:
    """The PEs that get a portal: those named that can host it (``all``: every
    hosting node a host is attached to)."""
    want, source = setting(session)
    if not want["all"] and not want["pes"]:
        return []
    can = hosting(session)
    if want["all"]:
        attached = set(session.scalars(select(HostRow.node)))
        return sorted(can & attached)
    if unknown := [p for p in want["pes"] if p not in can]:
        where = PORTALS_ENV if source == "environment" else "the stored setting"
        log.warning("%s: %s not a PE that can host a portal: skipped", where, unknown)
    return sorted({p for p in want["pes"] if p in can})


def cpu(session: Session) -> float:
    """What one portal reserves at its PE: its descriptor's CPU."""
    d = session.get(DescriptorRow, PORTAL)
    return float(d.cpu) if d is not None else PORTAL_CPU


def reserved_cpu(session: Session) -> dict[str, float]:
    """PE -> the CPU its portal takes (the tree's ``reserved_cpu``)."""
    nodes = pes(session)
    if not nodes:
        return {}
    each = cpu(session)
    return dict.fromkeys(nodes, each)


def door(session: Session) -> str | None:
    """The front door's address, from the loaded topology (None without one)."""
    row = session.get(TopologyRow, 1)
    if row is None:
        return None
    try:
        return str(Topology.from_dict(row.document).door_ip)
    except TopologyError as e:
        log.warning("streaming portals: the stored topology is unreadable: %s", e)
        return None


def dhcp(session: Session, node: str, inst: InstanceRow | None) -> dict[str, Any] | None:
    """The portal's DHCP service at ``node``: the pool of its LAN, itself as the
    router, the PE's hosts known by MAC (at their topology address when it is in the
    LAN) and no one else answered. None until the instance has its address."""
    if inst is None or not inst.ip or not inst.lan:
        return None
    own = ipaddress.ip_interface(inst.ip)
    lan = ipaddress.ip_network(inst.lan, strict=False)
    if not isinstance(lan, ipaddress.IPv4Network) or own.ip not in lan:
        return None
    size = lan.num_addresses
    first = max(2, int(size * POOL[0]))
    last = max(first, min(size - 2, int(size * POOL[1]) - 1))
    base = lan.network_address
    hosts = []
    for h in session.scalars(select(HostRow).where(HostRow.node == node).order_by(HostRow.name)):
        if not h.mac:
            continue
        ip = ipaddress.ip_interface(h.ip).ip if h.ip else None
        hosts.append(f"{h.mac},{ip}" if ip is not None and ip in lan else h.mac)
    return {
        "range": f"{base + first},{base + last},{lan.netmask},{LEASE}",
        "router": str(own.ip),
        "hosts": hosts,
        "known_only": True,
    }


def _address(inst: InstanceRow | None) -> str | None:
    if inst is None or not inst.ip:
        return None
    return str(ipaddress.ip_interface(inst.ip).ip)


def pinholes(session: Session, tree: Tree | None, node: str) -> list[dict[str, Any]]:
    """The pinholes of ``node``'s portal: each of its viewers (a live one or a playback)
    served by a streamer on another PE, from its host's address to that streamer's
    HTTP port; a native client that gave its RTP port, besides, that streamer's UDP to
    that port and the next (RTP, RTCP). One entry per client, streamer and kind; none
    until the streamer has its address."""
    if tree is None:
        return []
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for v in sorted(tree.viewers.values(), key=lambda v: v.client):
        s = tree.streamers.get(v.streamer)
        if v.pe != node or s is None or s.node == node:
            continue
        _, sep, device = v.client.partition("/")  # api.viewer_key: user/device
        name = v.host or (device if sep else None)  # a playback's: the host it named
        client = _address_of_host(session.get(HostRow, name) if name else None, node)
        f = session.get(FunctionRow, f"streamer:{v.streamer}")
        to = _address(session.get(InstanceRow, f.instance) if f is not None else None)
        if client is None or to is None:
            continue
        out[(client, to, "http")] = {"client": client, "to": to, "ports": [HTTP_PORT]}
        if v.rtp_port is not None:
            rtp = out.setdefault(
                (client, to, "rtp"),
                {"client": client, "to": to, "ports": [], "proto": "udp", "direction": "in"},
            )
            rtp["ports"] = sorted({*rtp["ports"], v.rtp_port, v.rtp_port + 1})
    return [out[k] for k in sorted(out)]


def _address_of_host(host: HostRow | None, node: str) -> str | None:
    if host is None or host.node != node or not host.ip:
        return None
    return str(ipaddress.ip_interface(host.ip).ip)


def configs(
    session: Session, tree: Tree | None = None
) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """key -> (descriptor, node, config) of the portals wanted now (``tree``: its
    case-3 viewers' pinholes)."""
    nodes = pes(session)
    ip = door(session) if nodes else None
    if ip is None:
        return {}
    cfg = {"port": PORT, "garden": [ip], "signin": f"http://{ip}/signin?next={APP}"}
    out: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for n in nodes:
        key = f"portal:{n}"
        c: dict[str, Any] = {"node": n, **cfg}
        f = session.get(FunctionRow, key)
        inst = session.get(InstanceRow, f.instance) if f is not None else None
        if inst is not None and inst.node != n:
            inst = None
        d = dhcp(session, n, inst)
        if d is not None:
            c["address"] = d["router"]  # the portal's own address (dhcp() names it)
            c["dhcp"] = d
        if holes := pinholes(session, tree, n):
            c["pinholes"] = holes
        out[key] = (PORTAL, n, c)
    return out


def status(session: Session) -> dict[str, Any]:
    """The setting, where it comes from, and each portal the loop keeps. Reads only."""
    want, source = setting(session)
    running = []
    for f in session.scalars(
        select(FunctionRow).where(FunctionRow.key.like("portal:%")).order_by(FunctionRow.key)
    ):
        inst = session.get(InstanceRow, f.instance)
        ip = inst.ip if inst is not None else None
        running.append(
            {
                "pe": f.node,
                "instance": f.instance,
                "state": inst.state if inst is not None else None,
                "address": str(ipaddress.ip_interface(ip).ip) if ip else None,
                "dhcp": (inst.config or {}).get("dhcp") if inst is not None else None,
                "detail": f.detail,
            }
        )
    return {**want, "source": source, "pes_now": pes(session), "portals": running}
