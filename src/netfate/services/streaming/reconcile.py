"""The streaming service's reconcile loop (netfate.contract.Loop): the delivery
tree made real.

One step, in one transaction the platform commits:

    1. the tree's pending prunes whose grace period is over (tree.tick);
    2. planning: the reservations' pre-started contents and branches (planning.py);
    3. the instances the tree needs, made equal to it through the platform's
       coordinator (the same calls as POST/PATCH/DELETE /instances):
         acquirer:NODE    streaming-acquirer at a provider's PE: a flow per live
                          content (its ingest port, its event), next hops below;
         forwarder:NODE   streaming-forwarder at a branch point that can host one;
         streamer:ID      streaming-edge on a viewers' PE: its contents, and the
                          recordings it relays to users playing them (``vod``);
         storage:NODE     streaming-storage at a PE whose provider's events users
                          record (recordings.py): fed by the acquirer there while a
                          recording of a live content is requested;
         portal:NODE      the firewall service's captive-portal at a viewers' PE
                          the operator names (portals.py): new clients sign in at
                          the front-end first;
       created pinned to the tree's node; reconfigured when their configuration
       differs; destroyed when the tree no longer needs them; created again when
       the platform lost one (failed, gone).

    3. for a content whose copies the switches make (tree.py, "Copies in the
       switches"), the SDN intents that make them:
         streaming-X        replication of what the acquirer sends to X's group
                            address (group_address) on X's tree port, to every
                            edge streamer taking X: groups ALL where the tree
                            branches, each copy rewritten to its streamer
         streaming-X-rtcp   the same on the RTCP port (tree port + 1)
       once streaming-X is admitted (the next step), the acquirer sends X once, to
       the group address, instead of a copy per streamer; the intents follow
       the streamers (targets added and removed modify the groups in place) and
       go when the content no longer needs them.

Receivers are made first (storage, streamers, forwarders, then acquirers), so each
sender's next hops name addresses that exist. The loop steps when the core
announces a change and at least every INTERVAL_S; the API's writes run it at once.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.orchestrator.nfv import coordinator as nfv
from netfate.orchestrator.nfv.errors import LifecycleError
from netfate.orchestrator.sdn.api import reconcile_owned
from netfate.orchestrator.sdn.fabric import gateway
from netfate.orchestrator.sdn.intents import Endpoint, Intent, ReplicationIntent, TunnelIntent
from netfate.orchestrator.sdn.tables import SdnFlowSnapshotRow, SdnIntentRow
from netfate.store.tables import HostRow, InstanceRow

from . import backend, ingest, planning, portals, recordings
from .functions import ACQUIRER, FORWARDER, HTTP_PORT, INGEST_PORTS, STORAGE_HTTP_PORT, STREAMER
from .recordings import address
from .tables import ContentRow, FunctionRow, ProviderRow, RecordingRow, ReservationRow, TreeRow
from .tree import Desired, Event, Target, Tree

log = logging.getLogger("netfate.streaming")

INTERVAL_S = 1.0
LOST = {"failed", "gone", "stopping"}
clock: Callable[[], float] = time.time
"""The loop's clock (prunes, planning); unit tests replace it."""
INTENT_PREFIX = "streaming-"
GW_PREFIX = INTENT_PREFIX + "gw-"
"""A function's gateway intent (a content id is ``ev<N>`` or ``r<N>``: no clash)."""


def group_address(tree_port: int) -> str:
    """Where an acquirer sends a content the switches copy: an administratively
    scoped multicast address (RFC 2365) from the content's tree port, unique among
    live contents as the port is; no target's address, so targets come and go
    without the acquirer's configuration changing."""
    return f"239.255.{tree_port >> 8}.{tree_port & 0xFF}"


def instance_of(session: Session, key: str) -> InstanceRow | None:
    f = session.get(FunctionRow, key)
    return session.get(InstanceRow, f.instance) if f is not None else None


def _hops(session: Session, targets: tuple[Target, ...], port: int) -> list[dict[str, Any]]:
    out = []
    for kind, name in targets:
        ip = address(instance_of(session, f"{kind}:{name}"))
        if ip is not None:
            out.append({"host": ip, "port": port})
    return out


def configs(session: Session, want: Desired) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """key -> (descriptor, node, config), receivers before senders."""
    contents = {
        c.id: c
        for c in session.scalars(select(ContentRow).where(ContentRow.state.in_(planning.HELD)))
    }
    out = recordings.configs(session)
    recorded = recordings.recorded(session)
    now = time.time()
    for sid, (node, xs) in sorted(want.streamers.items()):
        cfg: dict[str, Any] = {
            "contents": [{"id": x, "port": contents[x].tree_port} for x in xs if x in contents],
            "http_port": HTTP_PORT,
        }
        vod = recordings.vod_config(session, xs, now)
        if vod is not None:
            cfg["vod"] = vod
        out[f"streamer:{sid}"] = (STREAMER, node, cfg)
    for node, per in sorted(want.forwarders.items()):
        routes = [
            {
                "id": x,
                "port": contents[x].tree_port,
                "next_hops": _hops(session, t, contents[x].tree_port),
            }
            for x, t in sorted(per.items())
            if x in contents
        ]
        out[f"forwarder:{node}"] = (FORWARDER, node, {"routes": routes})
    for node, per in sorted(want.acquirers.items()):
        flows = []
        for x, t in sorted(per.items()):
            c = contents.get(x)
            if c is None:
                continue
            prov = session.get(ProviderRow, c.provider)
            flow: dict[str, Any] = {
                "id": x,
                "event": f"ev{c.event}",
                # a planned content's flow is armed, not started (the event is not yet)
                "state": "started" if c.state == "live" else "scheduled",
                "protocol": ingest.ACQUIRER_PROTOCOL.get(c.protocol, "rtp"),
                "port": c.ingest_port,
                "next_hops": _hops(session, t, c.tree_port),
            }
            if (
                x in want.switched
                and flow["next_hops"]
                and session.get(SdnIntentRow, f"{INTENT_PREFIX}{x}") is not None
            ):
                # One copy: the switches make the others (intents()). Only once the
                # intent is admitted: until then (a step later; or for good, if it is
                # refused) the acquirer sends a copy to each streamer itself.
                flow["next_hops"] = [{"host": group_address(c.tree_port), "port": c.tree_port}]
            if x in recorded:  # the storage joins while a recording is requested
                flow["next_hops"] += _hops(session, (("storage", node),), c.tree_port)
            if prov is not None and prov.source:
                flow["sources"] = [prov.source]
            flow.update(ingest.flow_secrets(c.protocol, c.ingest_secret))
            flows.append(flow)
        first, last = INGEST_PORTS
        out[f"acquirer:{node}"] = (
            ACQUIRER,
            node,
            {"ports": {"first": first, "last": last}, "flows": flows},
        )
    return out


def converge(session: Session, want: Desired, tree: Tree | None = None) -> set[str]:
    """Instances made equal to ``want``; returns the nodes whose desired state changed.
    ``tree``: the portals' pinholes for its viewers served from another PE."""
    touched: set[str] = set()
    wanted_keys = set()
    # Receivers first, so the senders' configurations see their addresses: build the
    # configurations again after each kind is in place.
    for _ in range(2):  # not the tree's; a new portal's DHCP names its address (portals.py)
        for key, (desc, node, cfg) in portals.configs(session, tree).items():
            wanted_keys.add(key)
            touched |= _ensure(session, key, desc, node, cfg)
    for kind in ("storage", "streamer", "forwarder", "acquirer"):
        for key, (desc, node, cfg) in configs(session, want).items():
            if not key.startswith(kind + ":"):
                continue
            wanted_keys.add(key)
            touched |= _ensure(session, key, desc, node, cfg)
    # Once more: a pinhole names a streamer's address, which a new one has only now.
    for key, (desc, node, cfg) in portals.configs(session, tree).items():
        touched |= _ensure(session, key, desc, node, cfg)
    for f in list(session.scalars(select(FunctionRow))):
        if f.key in wanted_keys:
            continue
        inst = session.get(InstanceRow, f.instance)
        if inst is not None and inst.state not in LOST:
            _, nodes = nfv.destroy_instance(session, inst.id)
            touched |= nodes
        session.delete(f)
    return touched


def _ensure(session: Session, key: str, desc: str, node: str, cfg: dict[str, Any]) -> set[str]:
    f = session.get(FunctionRow, key)
    inst = session.get(InstanceRow, f.instance) if f is not None else None
    touched: set[str] = set()
    try:
        if inst is None or inst.state in LOST or inst.node != node:
            if inst is not None and inst.state not in LOST:
                touched |= nfv.destroy_instance(session, inst.id)[1]
            name = key.replace(":", "-")[:64]
            inst, nodes = nfv.create_instance(
                session, nfv.CreateRequest(descriptor=desc, name=name, node=node, config=cfg)
            )
            if f is None:
                f = FunctionRow(
                    key=key, instance=inst.id, node=node, created_at=time.time(), detail=""
                )
                session.add(f)
            f.instance, f.node, f.detail = inst.id, node, ""
            session.flush()
            return touched | nodes
        if (inst.config or {}) != cfg:
            _, nodes = nfv.reconfigure_instance(session, inst.id, cfg)
            return nodes
    except LifecycleError as e:  # no room, a node gone: said in the function's row
        log.warning("streaming %s: %s", key, e)
        if f is not None:
            f.detail = str(e)[:2000]
    return touched


def gateways(session: Session) -> list[Intent]:
    """Each running function of the tree (storage, streamers, forwarders, acquirers)
    reaches its node, which routes (``streaming-gw-INSTANCE``), where the SDN
    controller programs that node's switch: in secure mode nothing passes until an
    intent says so, and the fabric's gateways are only the hosts' and the instances'
    of the testbed's start."""
    programmed = set(session.scalars(select(SdnFlowSnapshotRow.node)))
    if not programmed:
        return []
    out: list[Intent] = []
    for f in session.scalars(select(FunctionRow).order_by(FunctionRow.key)):
        if f.key.startswith("portal:"):
            continue  # the firewall service keeps its portals' gateways
        inst = session.get(InstanceRow, f.instance)
        if inst is None or inst.state in LOST or address(inst) is None:
            continue
        if inst.node in programmed:
            out.append(gateway(Endpoint("instance", inst.id), inst.node, f"{GW_PREFIX}{inst.id}"))
    return out


def _lan_id(*parts: str) -> str:
    raw = INTENT_PREFIX + "lan-" + "-".join(parts)
    if len(raw) <= 63:
        return raw
    return f"{raw[:50]}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


def _tunnel(a: str, b: str, protocol: str, port: int) -> TunnelIntent:
    """``a`` may reach ``b`` on one protocol and port (``kind:name`` endpoints)."""
    ea, eb = Endpoint.parse(a), Endpoint.parse(b)
    return TunnelIntent(
        id=_lan_id(ea.name, eb.name, protocol, str(port)), a=ea, b=eb,
        protocol=protocol, port=port,  # type: ignore[arg-type]
    )  # fmt: skip


def lan_paths(session: Session, want: Desired, tree: Tree | None) -> list[Intent]:
    """What passes on one LAN, where the node does not route it (``streaming-lan-*``,
    one protocol and port each), where the SDN controller programs the node:

    - each host at a live content's PE -> its acquirer, the flow's ingest port (TCP
      for RTMP, else UDP): the provider's camera beside its acquirer;
    - a sender (acquirer, forwarder) -> a receiver (streamer, storage) on the same
      node, the content's tree port (UDP);
    - a streamer -> the storage on its own node of a recording it relays (HTTP);
    - a viewer's host -> its streamer on the same PE (HTTP: HLS, VoD, the RTP join),
      and the streamer -> that host's RTP port and the next, for a native client.

    Across nodes the gateways carry it (the nodes route, the fabric joins LANs)."""
    programmed = set(session.scalars(select(SdnFlowSnapshotRow.node)))
    if not programmed:
        return []
    out: dict[str, Intent] = {}

    def add(it: TunnelIntent) -> None:
        out[it.id] = it

    def iid(key: str) -> InstanceRow | None:
        inst = instance_of(session, key)
        return inst if inst is not None and inst.state not in LOST and inst.ip else None

    recorded = recordings.recorded(session) if want.acquirers else {}
    for node, per in sorted(want.acquirers.items()):
        acq = iid(f"acquirer:{node}")
        if acq is None or node not in programmed:
            continue
        for x, targets in sorted(per.items()):
            c = session.get(ContentRow, x)
            if c is None:
                continue
            proto = "tcp" if c.protocol == "rtmp" else "udp"
            for h in session.scalars(select(HostRow).where(HostRow.node == node)):
                add(_tunnel(f"host:{h.name}", f"instance:{acq.id}", proto, c.ingest_port))
            below = list(targets) + ([("storage", node)] if x in recorded else [])
            for kind, name in below:
                dst = iid(f"{kind}:{name}")
                if dst is not None and dst.node == node:
                    add(_tunnel(f"instance:{acq.id}", f"instance:{dst.id}", "udp", c.tree_port))
    for node, per in sorted(want.forwarders.items()):
        fwd = iid(f"forwarder:{node}")
        if fwd is None or node not in programmed:
            continue
        for x, targets in sorted(per.items()):
            c = session.get(ContentRow, x)
            for kind, name in targets:
                dst = iid(f"{kind}:{name}")
                if c is not None and dst is not None and dst.node == node:
                    add(_tunnel(f"instance:{fwd.id}", f"instance:{dst.id}", "udp", c.tree_port))
    for sid, (node, xs) in sorted(want.streamers.items()):
        st = iid(f"streamer:{sid}")
        for x in xs:
            pulled = tree.contents.get(x) if tree is not None else None
            if st is None or pulled is None or not pulled.pull or pulled.root != node:
                continue
            sto = iid(f"storage:{node}")  # a recording it relays, stored on its own node
            if sto is not None and node in programmed:
                add(_tunnel(f"instance:{st.id}", f"instance:{sto.id}", "tcp", STORAGE_HTTP_PORT))
    for v in sorted(tree.viewers.values() if tree else (), key=lambda v: v.client):
        s = iid(f"streamer:{v.streamer}")
        _, sep, device = v.client.partition("/")
        device_host = v.host or (device if sep else None)
        host = session.get(HostRow, device_host) if device_host else None
        if s is None or host is None or host.node != s.node or s.node not in programmed:
            continue
        add(_tunnel(f"host:{host.name}", f"instance:{s.id}", "tcp", HTTP_PORT))
        if v.rtp_port is not None:
            for port in (v.rtp_port, v.rtp_port + 1):
                add(_tunnel(f"instance:{s.id}", f"host:{host.name}", "udp", port))
    return [out[k] for k in sorted(out)]


def intents(session: Session, want: Desired, tree: Tree | None = None) -> list[Intent]:
    """The replication intents of the contents the switches copy (the module's 3),
    the tree's functions' gateways (gateways()) and what passes on one LAN
    (lan_paths())."""
    out: list[Intent] = [*gateways(session), *lan_paths(session, want, tree)]
    for x in sorted(want.switched):
        c = session.get(ContentRow, x)
        acq = instance_of(session, f"acquirer:{c.pe}") if c is not None else None
        if c is None or acq is None or address(acq) is None:
            continue
        targets = []
        for kind, name in want.acquirers.get(c.pe, {}).get(x, ()):
            inst = instance_of(session, f"{kind}:{name}")
            if inst is not None and address(inst) is not None:
                targets.append(Endpoint("instance", inst.id))
        if not targets:
            continue
        for suffix, port in (("", c.tree_port), ("-rtcp", c.tree_port + 1)):
            out.append(
                ReplicationIntent(
                    id=f"{INTENT_PREFIX}{x}{suffix}", source=Endpoint("instance", acq.id),
                    port=port, dst_ip=group_address(c.tree_port), targets=targets,
                )
            )  # fmt: skip
    return out


def sync_intents(session: Session, want: Desired, tree: Tree | None = None) -> None:
    """The stored streaming-* intents made equal to intents(want, tree)."""
    wanted = intents(session, want, tree)
    if not wanted and (
        session.scalar(
            select(SdnIntentRow.id).where(SdnIntentRow.id.like(f"{INTENT_PREFIX}%")).limit(1)
        )
        is None
    ):
        return  # no switch copies: one indexed lookup
    added, removed, refused = reconcile_owned(
        session, wanted, lambda iid: iid.startswith(INTENT_PREFIX)
    )
    if added or removed or refused:
        log.info("streaming intents: added %s, removed %s, refused %s", added, removed, refused)


def step(session: Session) -> set[str]:
    """One pass: prunes due, planning, then the instances made equal to the tree."""
    if (
        session.scalar(select(TreeRow.id).limit(1)) is None
        and session.scalar(select(FunctionRow.key).limit(1)) is None
        and session.scalar(select(ReservationRow.id).limit(1)) is None
        and not portals.env()
    ):
        return set()  # an orchestrator without streaming pays three indexed lookups
    now = clock()
    t = backend.load(session)
    before = t.dump()
    events = ended(session, t, now) + t.tick(now)
    events += planning.plan(session, t, now)
    backend.record(session, events)
    if events or t.dump() != before:
        backend.save(session, t)
        session.flush()
    want = t.desired()
    touched = converge(session, want, t)
    sync_intents(session, want, t)
    return touched


def ended(session: Session, t: Tree, now: float) -> list[Event]:
    """Playbacks that ended: their recording is gone, or their streamer reports that it
    served nothing of it for recordings.IDLE_S (a player closed without a word). Their
    viewers leave; the branches go after the grace period, as a live viewer's."""
    out: list[Event] = []
    for v in [v for v in t.viewers.values() if t.contents[v.content].pull]:
        rid = recordings.rid_of(v.content)
        r = session.get(RecordingRow, rid) if rid is not None else None
        inst = instance_of(session, f"streamer:{v.streamer}")
        figs = (((inst.stats or {}) if inst is not None else {}).get("vod") or {}).get(
            "recordings", {}
        ).get(v.content) or {}
        idle = figs.get("idle_s")
        idle_long = isinstance(idle, int | float) and idle > recordings.IDLE_S
        if (
            r is None
            or r.state not in recordings.KEPT
            or (idle_long and now - v.since > recordings.IDLE_S)
        ):
            out += t.leave(v.client, now)
    return out
