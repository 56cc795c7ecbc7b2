"""The orchestrator side of the SDN controller: intents, the view, events, flow tables.

Mounted under /api/v1:

    POST   /intents              add an intent (422 unknown name / bad input, 409 conflict)
    GET    /intents              list, each with its state (active, pending, refused)
    GET    /intents/{id}         one intent
    DELETE /intents/{id}         remove it (the controller then removes exactly its flows)
    GET    /sdn/view             what the controller compiles: view + intents + version
                                 (?since=VERSION&wait=S: long poll until it changes)
    POST   /sdn/events           from the controller: host_seen, flows (table snapshots),
                                 install_error (a switch refused an intent's flows),
                                 installed (every switch holds a view version's flows),
                                 instance_moved (steering follows a migrated instance)
    GET    /nodes/{node}/flows   a node's flow table with packet and byte counters
    POST   /sdn/fabric           add the base connectivity intents of the topology (fabric.py)
    GET    /sdn/status           current view version, and the one the switches hold

Intents live in the database, so they survive orchestrator restarts; the
controller polls /sdn/view and converges the switches to it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

import pydantic
from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from netfate.orchestrator.api.deps import NotifierDep, SessionDep
from netfate.orchestrator.api.errors import errors
from netfate.orchestrator.api.limits import long_polls, poll_wait
from netfate.orchestrator.api.schemas import DbInt
from netfate.orchestrator.notify import EVENTS
from netfate.orchestrator.sdn.compile import (
    ConflictIndex,
    check_names,
    compile_intents,
    semantic_conflict,
)
from netfate.orchestrator.sdn.intents import (
    HostView,
    InstanceView,
    Intent,
    IntentConflict,
    IntentError,
    LinkView,
    NetworkView,
    NodeView,
    PortView,
    UnknownName,
    ViewAndIntents,
    parse_intent,
)
from netfate.orchestrator.sdn.tables import SdnFlowSnapshotRow, SdnHostSightingRow, SdnIntentRow
from netfate.store.db import serialize
from netfate.store.events import record_event
from netfate.store.tables import HostRow, InstanceRow, LinkRow, NodeRow, PortRow

router = APIRouter(tags=["sdn"])

# Instances in these states have no port to steer to (and never will again).
_GONE = {"gone", "failed"}


def _dpid(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


def build_view(session: Session) -> NetworkView:
    ports: dict[str, list[PortView]] = {}
    peer_at: dict[tuple[str, int], str | None] = {}
    for p in session.scalars(select(PortRow).order_by(PortRow.node, PortRow.ofport)):
        peer = f"{p.peer_kind}:{p.peer_name}" if p.peer_kind else None
        ports.setdefault(p.node, []).append(PortView(name=p.name, ofport=p.ofport, peer=peer))
        peer_at[(p.node, p.ofport)] = peer
    nodes = [
        NodeView(name=n.name, dpid=_dpid(n.datapath_id), ports=ports.get(n.name, []))
        for n in session.scalars(select(NodeRow).order_by(NodeRow.name))
    ]
    sightings = {s.mac: s for s in session.scalars(select(SdnHostSightingRow))}
    hosts = []
    for h in session.scalars(select(HostRow).order_by(HostRow.name)):
        mac = h.mac.lower() if h.mac else None
        seen = sightings.get(mac) if mac else None
        if seen is not None and (seen.node, seen.ofport) in peer_at:
            # A sighting is where the host is, unless its port is gone or is now
            # another endpoint's port: then the host moved on, and its own access
            # port (as the agents report it) is where to find it.
            if peer_at[(seen.node, seen.ofport)] not in (None, f"host:{h.name}"):
                seen = None
        elif seen is not None and seen.node in ports:
            seen = None
        hosts.append(
            HostView(
                name=h.name,
                mac=mac,
                ip=h.ip.split("/")[0] if h.ip else None,
                node=seen.node if seen else h.node,
                ofport=seen.ofport if seen else None,
            )
        )
    instances = [
        InstanceView(id=i.id, mac=i.mac, ip=i.ip.split("/")[0] if i.ip else None, node=i.node)
        for i in session.scalars(select(InstanceRow).order_by(InstanceRow.id))
        if i.state not in _GONE
    ]
    links = [
        LinkView(a=x.a, b=x.b, delay_s=x.delay_s)
        for x in session.scalars(select(LinkRow).order_by(LinkRow.id))
    ]
    return NetworkView(nodes=nodes, hosts=hosts, instances=instances, links=links)


# Whether an intent may go in depends on every stored one (conflicts, compiled
# flows): admissions run one at a time (store.serialize), each seeing the others'.
ADMISSION = "sdn-intent-admission"


def _admission(session: Session) -> None:
    serialize(session, ADMISSION)
    session.expire_all()  # intents loaded before are read again


def load_intents(session: Session) -> list[Intent]:
    rows = session.scalars(select(SdnIntentRow).order_by(SdnIntentRow.created_at, SdnIntentRow.id))
    return [parse_intent(r.spec) for r in rows]


def admit(
    session: Session, intents: Iterable[Intent], *, view: NetworkView | None = None
) -> tuple[list[str], dict[str, str]]:
    """Store the given intents that hold, as POST /intents would one by one: names the
    view knows, no conflict with the stored ones or each other, flows that compile.
    One that fails is left out and reported (id -> reason); the others go in.
    Returns (added ids, refused). Does not commit."""
    _admission(session)
    existing = load_intents(session)
    view = view if view is not None else build_view(session)
    index = ConflictIndex()
    for it in existing:
        index.add(it)
    have = {it.id for it in existing}
    refused: dict[str, str] = {}
    candidates: list[Intent] = []
    for it in intents:
        if it.id in have:
            refused[it.id] = f"an intent {it.id!r} exists already"
            continue
        try:
            check_names(view, it)
        except IntentError as e:
            refused[it.id] = e.reason
            continue
        clash = index.conflict(it)
        if clash:
            refused[it.id] = clash
            continue
        index.add(it)
        have.add(it.id)
        candidates.append(it)
    if candidates:
        res = compile_intents(view, [*existing, *candidates])
        refused.update({it.id: res.errors[it.id] for it in candidates if it.id in res.errors})
    now = time.time()
    added = []
    for it in candidates:
        if it.id in refused:
            continue
        session.add(
            SdnIntentRow(id=it.id, kind=it.kind, spec=it.model_dump(mode="json"), created_at=now)
        )
        record_event(session, "intent_added", {"id": it.id, "kind": it.kind})
        added.append(it.id)
    return added, refused


def reconcile_owned(
    session: Session, want: Iterable[Intent], owned: Callable[[str], bool]
) -> tuple[list[str], list[str], dict[str, str]]:
    """Make the stored intents whose ids `owned` accepts exactly `want` (a service's
    own intents, recomputed from its tables): stale or changed ones are deleted, new
    or changed ones admitted (see admit). Returns (added, removed, refused). Does not
    commit."""
    _admission(session)
    want_by_id = {it.id: it for it in want}
    removed = []
    for row in session.scalars(select(SdnIntentRow)):
        if not owned(row.id):
            continue
        it = want_by_id.get(row.id)
        if it is not None and it.model_dump(mode="json") == row.spec:
            del want_by_id[row.id]  # in place already
            continue
        session.delete(row)
        record_event(session, "intent_deleted", {"id": row.id, "kind": row.kind})
        removed.append(row.id)
    session.flush()
    added, refused = admit(session, want_by_id.values())
    return added, removed, refused


def _status(intents: list[Intent], view: NetworkView) -> dict[str, dict[str, Any]]:
    res = compile_intents(view, intents)
    out: dict[str, dict[str, Any]] = {}
    for it in intents:
        if it.id in res.errors:
            out[it.id] = {"state": "refused", "reason": res.errors[it.id], "flows": 0}
        elif it.id in res.pending:
            out[it.id] = {
                "state": "pending",
                "reason": res.pending[it.id],
                "flows": res.flow_count.get(it.id, 0),
            }
        else:
            out[it.id] = {"state": "active", "reason": None, "flows": res.flow_count.get(it.id, 0)}
    return out


def _invalid(e: pydantic.ValidationError) -> RequestValidationError:
    """A body that does not validate, as FastAPI reports its own (the API's 422)."""
    return RequestValidationError(
        [
            {"loc": ("body", *err["loc"]), "msg": err["msg"], "type": err["type"]}
            for err in e.errors()
        ]
    )


def _out(it: Intent, status: dict[str, Any]) -> dict[str, Any]:
    return {
        "intent": it.model_dump(mode="json"),
        "cookie": f"{it.cookie:#018x}",
        **status,
    }


@router.post("/intents", status_code=201, responses=errors(409))
def add_intent(
    session: SessionDep,
    notifier: NotifierDep,
    body: dict[str, Any] = Body(
        ...,
        examples=[
            {"kind": "connectivity", "id": "alice-bob", "a": "host:alice", "b": "host:bob"},
            {"kind": "steering", "host": "alice", "chain": ["fw-alice"], "to": "host:server"},
            {
                "kind": "tunnel",
                "a": "host:cam",
                "b": "instance:usb1",
                "protocol": "tcp",
                "port": 3240,
            },
            {
                "kind": "replication",
                "source": "instance:acq",
                "protocol": "udp",
                "port": 5004,
                "targets": ["instance:edge1", "instance:edge2"],
            },
        ],
    ),
) -> dict[str, Any]:
    """Add an intent. Nothing is stored (so nothing installed) unless it is accepted."""
    if "id" not in body and isinstance(body.get("kind"), str):
        body = {**body, "id": f"{body['kind']}-{secrets.token_hex(4)}"}
    try:
        intent = parse_intent(body)
    except pydantic.ValidationError as e:
        raise _invalid(e) from None
    _admission(session)
    view = build_view(session)
    existing = load_intents(session)
    try:
        check_names(view, intent)
        for old in existing:
            reason = semantic_conflict(intent, old)
            if reason:
                raise IntentConflict(reason, old.id)
        res = compile_intents(view, [*existing, intent])
        if intent.id in res.errors:
            raise IntentConflict(res.errors[intent.id])
    except UnknownName as e:
        raise HTTPException(422, detail=e.reason) from None
    except IntentConflict as e:
        raise HTTPException(409, detail=e.reason) from None
    session.add(
        SdnIntentRow(
            id=intent.id,
            kind=intent.kind,
            spec=intent.model_dump(mode="json"),
            created_at=time.time(),
        )
    )
    record_event(session, "intent_added", {"id": intent.id, "kind": intent.kind})
    session.commit()
    notifier.notify([])
    return _out(intent, _status([*existing, intent], view)[intent.id])


@router.post("/sdn/fabric", status_code=201, responses=errors(409))
def add_fabric(
    session: SessionDep, request: Request, notifier: NotifierDep, instances: bool = True
) -> dict[str, Any]:
    """Add the intents that let the testbed's routed network work in secure mode.

    Idempotent: intents that exist already (same id) are kept; with `instances`,
    running instances get their gateway too. LANs a service isolates get none.
    """
    from netfate.model.topology import Topology, TopologyError
    from netfate.orchestrator.sdn.fabric import fabric_intents, isolated_lans
    from netfate.store.tables import TopologyRow

    _admission(session)
    trow = session.get(TopologyRow, 1)
    if trow is None:
        raise HTTPException(409, detail="no topology loaded")
    try:
        topo = Topology.from_dict(trow.document)
    except TopologyError as e:
        raise HTTPException(409, detail=f"stored topology unreadable: {e}") from None
    insts = []
    if instances:
        insts = [
            (i.id, i.node)
            for i in session.scalars(select(InstanceRow))
            if i.state not in _GONE and i.ip
        ]
    existing = load_intents(session)
    have = {it.id for it in existing}
    view = build_view(session)
    added, refused = [], {}
    now = time.time()
    services = getattr(request.app.state, "services", ())
    isolated = isolated_lans(session, [s.isolates for s in services if s.isolates])
    for it in fabric_intents(topo, insts, isolated=isolated):
        if it.id in have:
            continue
        try:
            check_names(view, it)
            clash = next((r for old in existing if (r := semantic_conflict(it, old))), None)
            if clash:
                raise IntentConflict(clash)
        except (UnknownName, IntentConflict) as e:
            refused[it.id] = e.reason
            continue
        existing.append(it)
        session.add(
            SdnIntentRow(id=it.id, kind=it.kind, spec=it.model_dump(mode="json"), created_at=now)
        )
        added.append(it.id)
    if added:
        record_event(session, "fabric_added", {"intents": len(added)})
    session.commit()
    notifier.notify([])
    return {"added": added, "kept": sorted(have), "refused": refused}


@router.get("/intents")
def list_intents(session: SessionDep) -> list[dict[str, Any]]:
    intents = load_intents(session)
    status = _status(intents, build_view(session))
    return [_out(it, status[it.id]) for it in intents]


@router.get("/intents/{intent_id}", responses=errors(404))
def get_intent(intent_id: str, session: SessionDep) -> dict[str, Any]:
    intents = load_intents(session)
    found = next((it for it in intents if it.id == intent_id), None)
    if found is None:
        raise HTTPException(404, detail=f"unknown intent {intent_id!r}")
    return _out(found, _status(intents, build_view(session))[intent_id])


@router.delete("/intents/{intent_id}", responses=errors(404))
def delete_intent(intent_id: str, session: SessionDep, notifier: NotifierDep) -> dict[str, Any]:
    row = session.get(SdnIntentRow, intent_id)
    if row is None:
        raise HTTPException(404, detail=f"unknown intent {intent_id!r}")
    session.delete(row)
    record_event(session, "intent_deleted", {"id": intent_id, "kind": row.kind})
    session.commit()
    notifier.notify([])
    return {"deleted": intent_id}


def view_body(session: Session) -> dict[str, Any]:
    data = ViewAndIntents(view=build_view(session), intents=load_intents(session))
    body = data.model_dump(mode="json")
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    body["version"] = digest
    return body


def _installed(request: Request) -> dict[str, Any]:
    """The controller's last "installed" report: every switch holds the flows of this
    view version. In the app's memory on purpose: it is a heartbeat of a live
    controller, and after an orchestrator restart its next install reports again."""
    st = request.app.state
    if not hasattr(st, "sdn_installed"):
        st.sdn_installed = {"version": None, "at": None}
    got: dict[str, Any] = st.sdn_installed
    return got


MAX_WAIT_S = 10.0


@router.get("/sdn/view", response_model=None, responses=errors(429))
async def get_view(
    request: Request,
    notifier: NotifierDep,
    since: str | None = None,
    wait: float = Query(
        0.0, description=f"Long-poll for up to this many seconds (at most {MAX_WAIT_S:g})"
    ),
) -> dict[str, Any]:
    """View + intents + version. With `since` and `wait`, a long poll: answer as soon
    as the version differs from `since`, or after `wait` seconds (at most 10)."""
    db = request.app.state.db

    def look() -> dict[str, Any]:
        with db.session(write=False) as s:
            return view_body(s)

    body = await asyncio.to_thread(look)
    wait = poll_wait(request, min(wait, MAX_WAIT_S))
    if since is None or not wait > 0 or body["version"] != since:
        return body
    with long_polls(request).hold():
        deadline = time.monotonic() + wait
        took = 0.0
        while body["version"] == since and (left := deadline - time.monotonic()) > 0:
            # The API's own writes wake the poll at once; other writers' (services'
            # loops) are seen by looking again, at most about half the time, as
            # building the view is the cost of looking.
            await notifier.wait(EVENTS, min(max(0.02, took), left))
            t0 = time.monotonic()
            body = await asyncio.to_thread(look)
            took = time.monotonic() - t0
    return body


@router.get("/sdn/status")
def sdn_status(session: SessionDep, request: Request) -> dict[str, Any]:
    """Whether the switches hold what the intents ask for now: `in_sync` is true once
    the controller reported installing the current view version on every switch."""
    version = view_body(session)["version"]
    installed = _installed(request)
    return {
        "version": version,
        "installed_version": installed["version"],
        "installed_at": installed["at"],
        "in_sync": installed["version"] == version,
    }


class _Event(pydantic.BaseModel):
    # Finite numbers: a stored NaN or Infinity could not be answered back as JSON.
    model_config = pydantic.ConfigDict(allow_inf_nan=False)


class HostSeen(_Event):
    """A switch saw a frame from this MAC on an access port (a packet-in)."""

    kind: str = "host_seen"
    node: str
    """Node whose bridge raised the packet-in."""
    port: str
    """Port name on that bridge."""
    ofport: DbInt
    """OpenFlow port number."""
    mac: str
    """Source MAC address of the frame."""
    ip: str | None = None
    """Source IPv4 address (or ARP sender address), if the frame had one."""
    time: float
    """When the controller saw it (UNIX seconds)."""
    known_as: str | None = None
    """The host name the controller's view had for this MAC, if any."""


class InstallError(_Event):
    """A switch refused flows of these intents; they are kept off it (all or nothing)."""

    kind: str = "install_error"
    node: str
    """The node whose switch refused them."""
    intents: list[str]
    """Ids of the intents concerned."""
    errors: list[str]
    """The switch's OpenFlow error messages (at most ten)."""
    time: float
    """When the controller saw the errors (UNIX seconds)."""


class Installed(_Event):
    """Every switch of the view holds the flows of this view version."""

    kind: str = "installed"
    version: str = pydantic.Field(max_length=64)
    time: float
    """When the last switch confirmed them (UNIX seconds)."""


class InstanceMoved(_Event):
    """An instance announced itself on another of its ports (a migration's cut-over)
    and every switch now steers to it there."""

    kind: str = "instance_moved"
    instance: str = pydantic.Field(max_length=64)
    node: str = pydantic.Field(max_length=64)
    ofport: int
    time: float
    """When the last switch confirmed the flows (UNIX seconds)."""
    install_ms: float
    """From the announcement's packet-in to that confirmation."""


class FlowSnapshot(_Event):
    kind: str = "flows"
    node: str
    dpid: str
    time: float
    flows: list[dict[str, Any]]
    ports: list[dict[str, Any]] = pydantic.Field(default_factory=list)
    groups: int = 0


@router.post("/sdn/events", status_code=202)
def post_event(
    session: SessionDep, request: Request, notifier: NotifierDep, body: dict[str, Any] = Body(...)
) -> dict[str, Any]:
    kind = body.get("kind")
    try:
        if kind == "host_seen":
            seen = HostSeen.model_validate(body)
            mac = seen.mac.lower()
            # The view reads the sightings of hosts' MACs only: a row for any other
            # MAC (each instance's, or any source address a device makes up) would
            # only ever add up. The event below records every sighting.
            host = select(HostRow.name).where(func.lower(HostRow.mac) == mac).limit(1)
            if session.scalar(host) is not None:
                row = session.get(SdnHostSightingRow, mac)
                if row is None:
                    row = SdnHostSightingRow(mac=mac)
                    session.add(row)
                row.node, row.port, row.ofport, row.ip, row.at = (
                    seen.node,
                    seen.port,
                    seen.ofport,
                    seen.ip,
                    seen.time,
                )
            record_event(session, "host_seen", seen.model_dump(exclude={"kind"}))
        elif kind == "flows":
            snap = FlowSnapshot.model_validate(body)
            srow = session.get(SdnFlowSnapshotRow, snap.node)
            if srow is None:
                srow = SdnFlowSnapshotRow(node=snap.node)
                session.add(srow)
            srow.dpid, srow.at, srow.flows, srow.ports = (
                snap.dpid,
                snap.time,
                snap.flows,
                snap.ports,
            )
        elif kind == "installed":
            done = Installed.model_validate(body)
            _installed(request).update(version=done.version, at=done.time)
        elif kind == "instance_moved":
            moved = InstanceMoved.model_validate(body)
            record_event(session, "steering_moved", moved.model_dump(exclude={"kind"}))
        elif kind == "install_error":
            err = InstallError.model_validate(body)
            record_event(session, "sdn_install_error", err.model_dump(exclude={"kind"}))
        else:
            raise HTTPException(422, detail=f"unknown event kind {kind!r}")
    except pydantic.ValidationError as e:
        raise _invalid(e) from None
    session.commit()
    if kind not in ("flows", "installed"):  # these change neither the view nor the events
        notifier.notify([])
    return {"accepted": kind}


@router.get("/nodes/{node}/flows", responses=errors(404))
def node_flows(node: str, session: SessionDep) -> dict[str, Any]:
    if session.get(NodeRow, node) is None:
        raise HTTPException(404, detail=f"unknown node {node!r}")
    snap = session.get(SdnFlowSnapshotRow, node)
    if snap is None:
        return {"node": node, "dpid": None, "at": None, "flows": [], "ports": []}
    return {
        "node": node,
        "dpid": snap.dpid,
        "at": snap.at,
        "age_s": round(max(0.0, time.time() - snap.at), 3),
        "flows": snap.flows,
        "ports": snap.ports,
    }
