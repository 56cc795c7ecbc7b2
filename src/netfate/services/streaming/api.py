"""REST API of the streaming service (the paper's front-end), /api/v1/streaming/...

Providers and their scheduled events; an event started is a live content with the
acquirer port the front-end assigns to its flow (RTP/MPEG-TS over UDP, SRT or RTMP,
ingest.py; the flow's URL, with its SRT passphrase or RTMP stream key, is its
provider's alone); viewers join a content from their
access PE and get the edge streamer the back-end chose (case of the rule and why),
or a refusal that says why (503). Users' recordings and reservations.

Bad input is a 422 with the API's one error body, each field at fault in its
``errors`` (``loc`` names it), as FastAPI gives schema errors, so a client shows each
next to its field.
Writes converge what they changed at once (the reconcile step); reads only read.
Who may call each route is the contract's (__init__.py). A signed-in user names only
itself in ``user`` (the identity layer refuses another's name) and sees and cancels
only its own recordings and reservations; a provider names only itself in
``provider`` and starts and stops only its own events. A viewer is a signed-in
user's account and a device of theirs (the client id, a label: one user may watch on
two devices): a user joins, leaves and reads only its own viewers; the operator acts
for any user and sees every viewer; a provider sees its own contents' viewers with
abstract locations only (no node names, addresses or users).
"""

from __future__ import annotations

import ipaddress
import time
from typing import Annotated, Any, Literal, NoReturn, TypeVar

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from netfate.contract import Role
from netfate.orchestrator.api.deps import NotifierDep, SessionDep
from netfate.orchestrator.api.errors import errors
from netfate.orchestrator.api.errors import invalid as invalid_input
from netfate.orchestrator.api.schemas import INT32_MAX, DbInt, Strict
from netfate.orchestrator.engine.placement import HOSTING_KINDS
from netfate.orchestrator.identity import Principal, PrincipalDep, owned
from netfate.orchestrator.identity.accounts import NAME_RE
from netfate.orchestrator.notify import Notifier
from netfate.store.tables import HostRow, NodeRow

from . import backend, ingest, planning, portals, reconcile, recordings
from .functions import HTTP_PORT
from .tables import (
    ContentRow,
    EventRow,
    FunctionRow,
    ProviderRow,
    RecordingRow,
    ReservationRow,
)
from .tree import Event, JoinRefused, Tree, Viewer, ViewerAssigned

router = APIRouter()
NAME = r"^[a-z0-9][a-z0-9-]{0,47}$"
MAX_DURATION_S = 7 * 24 * 3600
# Path and query parameters fit the columns they are looked up in (tables.py).
EventId = Annotated[int, Path(ge=1, le=INT32_MAX, description="The event's id")]
RecordingId = Annotated[int, Path(ge=1, le=INT32_MAX, description="The recording's id")]
ReservationId = Annotated[int, Path(ge=1, le=INT32_MAX, description="The reservation's id")]
ContentId = Annotated[str, Path(min_length=1, max_length=32, description="The content's id")]
ClientId = Annotated[
    str, Path(min_length=1, max_length=128, description="The viewer's device (its client id)")
]
User = Annotated[str | None, Query(min_length=1, max_length=254, description="Only this user's")]
Whose = Annotated[
    str | None,
    Query(min_length=1, max_length=254, description="The viewer's user (the operator's only)"),
]


def invalid(field: str, msg: str) -> NoReturn:
    """A 422 keyed to the body field at fault."""
    raise invalid_input({("body", field): msg})


def _caller_as(p: Principal, role: Role, given: str | None, field: str) -> str:
    """A body's ``user`` or ``provider``: as given (the identity layer refused a user or
    provider naming another), else the caller when it has that role; the operator
    names whom it acts for (else a keyed 422)."""
    if given is not None:
        return given
    if p.role is role:
        return p.name
    invalid(field, f"give the {field}: a {p.role.value} acts for a {role.value} it names")


def _pe(session: Session, field: str, name: str) -> None:
    node = session.get(NodeRow, name)
    if node is None:
        invalid(field, f"unknown node {name!r}")
    if node.kind not in HOSTING_KINDS:
        invalid(field, f"{name} is a {node.kind} node: it cannot run the service's functions")


# ------------------------------------------------------------------ providers


class ProviderIn(Strict):
    name: str = Field(pattern=NAME, description="Its id: lower-case letters, digits, '-'")
    title: str = Field(min_length=1, max_length=128)
    pe: str = Field(max_length=64, description="Its access PE: the acquirer runs there")
    source: str | None = Field(
        default=None, max_length=64, description="The address it streams from (others refused)"
    )


def _provider(p: ProviderRow) -> dict[str, Any]:
    return {"name": p.name, "title": p.title, "pe": p.pe, "source": p.source}


@router.post("/providers", status_code=201, responses=errors(409))
def create_provider(body: ProviderIn, session: SessionDep) -> dict[str, Any]:
    _pe(session, "pe", body.pe)
    if body.source is not None:
        try:
            ipaddress.ip_address(body.source)
        except ValueError:
            invalid("source", f"{body.source!r} is not an IP address")
    if session.get(ProviderRow, body.name) is not None:
        raise HTTPException(409, detail=f"provider {body.name!r} exists")
    p = ProviderRow(
        name=body.name, title=body.title, pe=body.pe, source=body.source, created_at=time.time()
    )
    session.add(p)
    session.commit()
    return _provider(p)


@router.get("/providers")
def list_providers(session: SessionDep) -> list[dict[str, Any]]:
    """The providers, each with its schedule (what the Discover page shows)."""
    out = []
    for p in session.scalars(select(ProviderRow).order_by(ProviderRow.name)):
        evs = session.scalars(
            select(EventRow).where(EventRow.provider == p.name).order_by(EventRow.start)
        )
        out.append({**_provider(p), "events": [_event(session, e) for e in evs]})
    return out


# ------------------------------------------------------------------ events


class EventIn(Strict):
    provider: str | None = Field(
        default=None, max_length=48, description="Whose event (default: the calling provider)"
    )
    title: str = Field(min_length=1, max_length=128)
    description: str = Field(default="", max_length=4000)
    start: float = Field(ge=0, description="Unix seconds")
    duration_s: float = Field(gt=0, le=MAX_DURATION_S, description="Expected duration")
    bitrate_kbps: int = Field(
        default=3000,
        ge=64,
        le=50_000,
        description="What the provider will send (reserved on the tree)",
    )
    protocol: ingest.Protocol = Field(
        default="rtp-udp", description="How the provider sends: rtp-udp, srt or rtmp"
    )


def _event(session: Session, e: EventRow) -> dict[str, Any]:
    c = session.scalars(select(ContentRow).where(ContentRow.event == e.id)).first()
    return {
        "id": e.id,
        "provider": e.provider,
        "title": e.title,
        "description": e.description,
        "start": e.start,
        "duration_s": e.duration_s,
        "bitrate_kbps": e.bitrate_kbps,
        "protocol": e.protocol,
        "state": e.state,
        "content": _content(session, c) if c is not None else None,
    }


def _get_event(session: Session, eid: int) -> EventRow:
    e = session.get(EventRow, eid)
    if e is None:
        raise HTTPException(404, detail=f"unknown event {eid}")
    return e


def _own_event(session: Session, eid: int, p: Principal, state: str) -> EventRow:
    """The caller's event (a provider's own), in ``state`` (else 409)."""
    e = _get_event(session, eid)
    owned(p, e.provider, f"event {eid}")
    if e.state != state:
        raise HTTPException(409, detail=f"event {eid} is {e.state}")
    return e


@router.post("/events", status_code=201)
def create_event(body: EventIn, session: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    provider = _caller_as(p, Role.PROVIDER, body.provider, "provider")
    if session.get(ProviderRow, provider) is None:
        invalid("provider", f"unknown provider {provider!r}")
    if body.start + body.duration_s < time.time():
        invalid("start", "the event would be over already")
    e = EventRow(
        provider=provider,
        title=body.title,
        description=body.description,
        start=body.start,
        duration_s=body.duration_s,
        bitrate_kbps=body.bitrate_kbps,
        protocol=body.protocol,
        state="scheduled",
        created_at=time.time(),
    )
    session.add(e)
    session.commit()
    return _event(session, e)


@router.get("/events")
def list_events(
    session: SessionDep, provider: str | None = Query(None, min_length=1, max_length=48)
) -> list[dict[str, Any]]:
    q = select(EventRow).order_by(EventRow.start, EventRow.id)
    if provider is not None:
        q = q.where(EventRow.provider == provider)
    return [_event(session, e) for e in session.scalars(q)]


@router.get("/events/{eid}", responses=errors(404))
def get_event(eid: EventId, session: SessionDep) -> dict[str, Any]:
    return _event(session, _get_event(session, eid))


class StartIn(Strict):
    protocol: ingest.Protocol | None = Field(
        default=None, description="This flow's ingest protocol (default: the event's)"
    )


@router.post("/events/{eid}/start", responses=errors(404, 409, 503))
def start_event(
    eid: EventId,
    session: SessionDep,
    notifier: NotifierDep,
    p: PrincipalDep,
    body: StartIn | None = None,
) -> dict[str, Any]:
    """The provider starts its event: a live content, its acquirer at the provider's PE
    and the port its flow goes to (those of its pre-started content, if planning made
    one for its reservations), by the event's protocol or the one given (SRT and RTMP
    flows get a passphrase or stream key: ``GET /events/{eid}/ingest``)."""
    e = _own_event(session, eid, p, "scheduled")
    protocol = body.protocol if body is not None and body.protocol else e.protocol
    prov = session.get(ProviderRow, e.provider)
    assert prov is not None
    now = time.time()
    e.protocol = protocol
    c = session.scalars(select(ContentRow).where(ContentRow.event == e.id)).first()
    if c is None:
        c = planning.new_content(session, e, prov, "live", now)
        if c is None:
            raise HTTPException(503, detail="no port free for another live content")
    elif c.protocol != protocol:  # planned with the event's protocol; the start chose another
        c.protocol, c.ingest_secret = protocol, ingest.new_secret(protocol)
    t = backend.load(session)
    try:
        t.publish(c.id, prov.pe, e.bitrate_kbps * 1000.0)
    except ValueError as err:
        raise HTTPException(503, detail=str(err)) from None
    e.state, e.started_at = "started", now
    c.state, c.started_at = "live", now
    backend.save(session, t)
    session.flush()
    touched = reconcile.step(session)
    session.commit()
    notifier.notify(touched)
    return _event(session, e)


@router.post("/events/{eid}/cancel", responses=errors(404, 409))
def cancel_event(
    eid: EventId, session: SessionDep, notifier: NotifierDep, p: PrincipalDep
) -> dict[str, Any]:
    """The provider cancels a scheduled event: what planning pre-started for it goes."""
    e = _own_event(session, eid, p, "scheduled")
    e.state, e.ended_at = "cancelled", time.time()
    session.flush()
    touched = reconcile.step(session)
    session.commit()
    notifier.notify(touched)
    return _event(session, e)


@router.post("/events/{eid}/stop", responses=errors(404, 409))
def stop_event(
    eid: EventId, session: SessionDep, notifier: NotifierDep, p: PrincipalDep
) -> dict[str, Any]:
    e = _own_event(session, eid, p, "started")
    c = session.scalars(select(ContentRow).where(ContentRow.event == e.id)).one()
    t = backend.load(session)
    now = time.time()
    backend.record(session, t.unpublish(c.id, now))
    backend.save(session, t)
    e.state, e.ended_at = "ended", now
    c.state, c.ended_at = "ended", now
    c.ingest_secret = None  # a flow's passphrase or key lives while the flow does
    for r in session.scalars(
        select(RecordingRow).where(RecordingRow.event == e.id, RecordingRow.state == "requested")
    ):
        r.state, r.stopped_at = "stopped", now
    session.flush()
    touched = reconcile.step(session)
    session.commit()
    notifier.notify(touched)
    return _event(session, e)


@router.get("/events/{eid}/ingest", responses=errors(404))
def get_ingest(eid: EventId, session: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    """Where and how the provider sends its started event's stream: the acquirer's
    address and port, the exact URL for OBS or ffmpeg (with the flow's passphrase or
    stream key) and an ffmpeg command line. Its own provider's only: anyone else's
    event is as if it did not exist (the operator's role does not reach it)."""
    e = _get_event(session, eid)
    owned(p, e.provider, f"event {eid}")
    c = session.scalars(select(ContentRow).where(ContentRow.event == e.id)).first()
    if c is None or c.state != "live":
        raise HTTPException(404, detail=f"event {eid} is {e.state}: it has no flow to send to")
    acq = recordings.address(reconcile.instance_of(session, f"acquirer:{c.pe}"))
    out = ingest.instructions(c.protocol, acq, c.ingest_port, c.id, c.ingest_secret)
    return {"event": e.id, "content": c.id, "node": c.pe, **out}


# ------------------------------------------------------------------ contents, viewers


def _content(session: Session, c: ContentRow) -> dict[str, Any]:
    acq = recordings.address(reconcile.instance_of(session, f"acquirer:{c.pe}"))
    return {
        "id": c.id,
        "event": c.event,
        "provider": c.provider,
        "state": c.state,
        "bitrate_bps": c.bitrate_bps,
        "acquirer": {"node": c.pe, "address": acq, "port": c.ingest_port, "protocol": c.protocol},
        "stream": {k: v for k, v in (c.stream or {"state": "waiting"}).items() if k != "seq"},
    }


@router.get("/contents")
def list_contents(session: SessionDep) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(ContentRow).where(ContentRow.state == "live").order_by(ContentRow.id)
    )
    return [_content(session, c) for c in rows]


class WhereIn(Strict):
    """Where a client is: its access PE, or its host."""

    pe: str | None = Field(default=None, min_length=1, max_length=64, description="Its access PE")
    host: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Or its host in the topology (its PE is the host's node)",
    )

    def access_pe(self, session: Session) -> str | None:
        """The access PE it names (``pe``, or its ``host``'s node), checked; None if neither."""
        if self.pe is None and self.host is None:
            return None
        pe = self.pe
        if pe is None:
            h = session.get(HostRow, self.host)
            if h is None:
                invalid("host", f"unknown host {self.host!r}")
            pe = h.node
        _pe(session, "pe" if self.pe is not None else "host", pe)
        return pe


class JoinIn(WhereIn):
    client: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[^/]+$",  # it is a path segment when the device leaves
        description="A label of the user's device (default: its host, else its PE): one "
        "user may watch on two devices",
    )
    user: str | None = Field(
        default=None,
        pattern=NAME_RE.pattern,
        description="Whose viewer: a user's own only; the operator's, any user's "
        "(default: the caller)",
    )
    rtp_port: int | None = Field(
        default=None,
        ge=1024,
        le=65534,
        description="A native client's RTP port (RTCP on the next one), as it joins at the "
        "streamer (rtp_join?port=): served from a neighbour PE, its portal lets exactly "
        "that stream through to its host",
    )


def viewer_key(user: str, device: str) -> str:
    """The tree's viewer (the paper's client id): a user's device. Account names have
    no '/', so the first one splits it back (`viewer_of`)."""
    return f"{user}/{device}"


def viewer_of(key: str) -> tuple[str, str] | None:
    """(user, device) of a tree's viewer key; None for a playback's (recordings.py)."""
    user, sep, device = key.partition("/")
    return (user, device) if sep else None


def _whose(p: Principal, named: str | None) -> str:
    """Whose viewer a request acts on: a user's own (the identity layer refused a
    user's naming another); the operator's, the user it names, else its own."""
    return named if named is not None and p.operator else p.name


def _viewer(session: Session, content: str, key: str, streamer: str, node: str) -> dict[str, Any]:
    ip = recordings.address(reconcile.instance_of(session, f"streamer:{streamer}"))
    base = f"http://{ip}:{HTTP_PORT}" if ip else None
    user, device = viewer_of(key) or ("", key)
    return {
        "user": user,
        "client": device,
        "content": content,
        "streamer": streamer,
        "node": node,
        "address": ip,
        "hls": f"{base}/hls/{content}/index.m3u8" if base else None,
        "rtp_join": f"{base}/rtp/{content}/source/join" if base else None,
    }


def _client_pe(session: Session, body: WhereIn) -> str:
    """The client's access PE: given, or its host's node."""
    pe = body.access_pe(session)
    if pe is None:
        invalid("pe", "give the client's access PE (pe) or its host")
    return pe


def _assigned(session: Session, notifier: Notifier, t: Tree, ev: Event) -> ViewerAssigned:
    """A join's outcome recorded; refused, a 503 with why; assigned, the tree saved
    and converged at once."""
    backend.record(session, [ev])
    if isinstance(ev, JoinRefused):
        session.commit()  # the refusal stays in the event log
        raise HTTPException(503, detail=ev.why)
    if not isinstance(ev, ViewerAssigned):
        raise TypeError(f"a join's outcome, not {ev!r}")
    backend.save(session, t)
    session.flush()
    touched = reconcile.step(session)
    session.commit()
    notifier.notify(touched)
    return ev


@router.post("/contents/{cid}/viewers", responses=errors(404, 503))
def join(
    cid: ContentId, body: JoinIn, session: SessionDep, notifier: NotifierDep, p: PrincipalDep
) -> dict[str, Any]:
    """A signed-in user asks for content X from its PE on one of its devices: the
    back-end assigns an edge streamer by the paper's rule (the case and why are in
    the answer); 503 when it cannot. The viewer is the caller (the operator may join
    for a user it names)."""
    c = session.get(ContentRow, cid)
    if c is None or c.state != "live":
        raise HTTPException(404, detail=f"content {cid!r} is not live")
    pe = _client_pe(session, body)
    key = viewer_key(_whose(p, body.user), body.client or body.host or pe)
    t = backend.load(session)
    joined = t.join(key, cid, pe, reconcile.clock(), body.host, body.rtp_port)
    ev = _assigned(session, notifier, t, joined)
    return {
        **_viewer(session, cid, ev.client, ev.streamer, ev.node),
        "pe": pe,
        "case": ev.case,
        "why": ev.why,
    }


def _abstract(t: Tree, session: Session, v: Viewer) -> dict[str, Any]:
    """A viewer as its content's provider sees it (issue 12): where it watches only as
    a location class, never its user, node names or addresses."""
    node = session.get(NodeRow, v.pe)
    served = "its access PE" if t.streamers[v.streamer].node == v.pe else "another PE"
    return {
        "content": v.content,
        "case": v.case,
        "since": v.since,
        "location": {"tier": node.kind if node else None, "served_from": served},
    }


@router.get("/contents/{cid}/viewers", responses=errors(404))
def list_viewers(cid: ContentId, session: SessionDep, p: PrincipalDep) -> list[dict[str, Any]]:
    """The content's viewers (none once it ended): the operator's, all of them; a
    user's, its own devices; its provider's, each in the abstract (another provider's
    content is as if it did not exist)."""
    c = session.get(ContentRow, cid)
    if c is None or (p.role is Role.PROVIDER and c.provider != p.name):
        raise HTTPException(404, detail=f"unknown content {cid!r}")
    t = backend.load(session, lock=False)
    mine = sorted((v for v in t.viewers.values() if v.content == cid), key=lambda v: v.client)
    if p.role is Role.PROVIDER:
        return [_abstract(t, session, v) for v in mine]
    if not p.operator:
        mine = [v for v in mine if (viewer_of(v.client) or ("",))[0] == p.name]
    return [
        {
            **_viewer(session, cid, v.client, v.streamer, t.streamers[v.streamer].node),
            "pe": v.pe,
            "case": v.case,
        }
        for v in mine
    ]


@router.delete("/contents/{cid}/viewers/{client}", responses=errors(404))
def leave(
    cid: ContentId,
    client: ClientId,
    session: SessionDep,
    p: PrincipalDep,
    user: Whose = None,
) -> dict[str, Any]:
    """The user's device leaves; its branch goes after the grace period if nobody else
    watches. A user's own viewer only (``?user=`` another: refused by the identity
    layer; another's device: 404); the operator's, the user's it names."""
    t = backend.load(session)
    whose = _whose(p, user)
    key = viewer_key(whose, client)
    v = t.viewers.get(key)
    if v is None or v.content != cid:
        raise HTTPException(404, detail=f"{client!r} is not watching {cid!r}")
    evs = t.leave(key, reconcile.clock())
    backend.record(session, evs)
    backend.save(session, t)
    session.commit()
    return {"left": client, "user": whose, "prune_at": getattr(evs[0], "prune_at", None)}


# ------------------------------------------------------------------ the tree


@router.get("/tree")
def get_tree(session: SessionDep) -> dict[str, Any]:
    """The delivery tree: contents with their branches, streamers, viewers, loads,
    the instances the loop keeps for it, and anything over capacity."""
    t = backend.load(session, lock=False)
    L = t.loads()
    want = t.desired()
    return {
        "criterion": t.criterion,
        "grace_s": t.limits.grace_s,
        "state": t.dump(),
        "loads": {
            "node_cpu": L.node_cpu,
            "node_bps": L.node_bps,
            "link_bps": {"-".join(sorted(k)): v for k, v in L.link_bps.items()},
            "streamer_bps": L.streamer_bps,
        },
        "desired": {
            "acquirers": want.acquirers,
            "forwarders": want.forwarders,
            "switched": want.switched,
            "streamers": {
                k: {"node": n, "contents": list(x)} for k, (n, x) in want.streamers.items()
            },
        },
        "functions": [
            {"key": f.key, "instance": f.instance, "node": f.node, "detail": f.detail}
            for f in session.scalars(select(FunctionRow).order_by(FunctionRow.key))
        ],
        "violations": t.violations(),
    }


class SettingsIn(Strict):
    criterion: Literal["consolidation", "qos"] | None = None
    grace_s: float | None = Field(default=None, ge=0, le=3600)


@router.put("/settings")
def put_settings(body: SettingsIn, session: SessionDep) -> dict[str, Any]:
    """The orchestration criterion (for decisions from now on) and the grace period."""
    t = backend.settings(session, body.criterion, body.grace_s)
    session.commit()
    return {"criterion": t.criterion, "grace_s": t.limits.grace_s}


class PortalsIn(Strict):
    """Where the viewers' captive portals are kept: the PEs named, or every PE a host
    is attached to (``all``); ``{"pes": []}`` keeps none."""

    pes: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=256, description="The PEs that keep a portal"
    )
    all: bool = Field(default=False, description="Every PE a host is attached to (then no pes)")


@router.get("/portals")
def get_portals(session: SessionDep) -> dict[str, Any]:
    """Where the viewers' captive portals are kept (``source``: the stored setting,
    or the environment's default until the operator puts one), the PEs that keep one
    now, and each portal the loop keeps (its instance, address and DHCP service)."""
    return portals.status(session)


@router.put("/portals")
def put_portals(body: PortalsIn, session: SessionDep, notifier: NotifierDep) -> dict[str, Any]:
    """The PEs where the service keeps the viewers' captive portals, stored (the
    environment's default no longer read); the loop starts and releases them at once.
    A name that is no PE able to host a portal: 422 keyed to it, nothing changes."""
    problems: dict[tuple[str | int, ...], str] = {}
    if body.all and body.pes:
        problems[("body", "all")] = "either all or pes, not both"
    can = portals.hosting(session)
    for i, name in enumerate(body.pes):
        if name not in can:
            node = session.get(NodeRow, name)
            problems[("body", "pes", i)] = (
                f"unknown node {name!r}"
                if node is None
                else f"{name} is a {node.kind} node: it cannot keep a portal"
            )
    if problems:
        raise invalid_input(problems)
    backend.set_portals(session, body.all, body.pes)
    touched = reconcile.step(session)
    session.commit()
    notifier.notify(touched)
    return portals.status(session)


# ------------------------------------------------------------------ recordings, reservations


class UserEventIn(Strict):
    user: str | None = Field(
        default=None, min_length=1, max_length=254, description="Whose (default: the caller)"
    )
    event: DbInt


def _check_event(session: Session, eid: int, states: tuple[str, ...], what: str) -> None:
    e = session.get(EventRow, eid)
    if e is None:
        invalid("event", f"unknown event {eid}")
    if e.state not in states:
        invalid("event", f"event {eid} is {e.state}: {what}")


UserRow = TypeVar("UserRow", RecordingRow, ReservationRow)


def _of_user(
    session: Session, table: type[UserRow], p: Principal, user: str | None
) -> list[UserRow]:
    """A table's rows, of one user or everyone's, oldest first; a user's own only."""
    if p.role is Role.USER:
        user = p.name
    q = select(table).order_by(table.id)
    if user is not None:
        q = q.where(table.user == user)
    return list(session.scalars(q))


def _recording(r: RecordingRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "user": r.user,
        "event": r.event,
        "state": r.state,
        "created_at": r.created_at,
        "stopped_at": r.stopped_at,
    }


@router.post("/recordings", status_code=201)
def record(body: UserEventIn, session: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    """A user records an event, even after it has started."""
    user = _caller_as(p, Role.USER, body.user, "user")
    _check_event(session, body.event, ("scheduled", "started"), "only a coming or live one")
    r = RecordingRow(user=user, event=body.event, state="requested", created_at=time.time())
    session.add(r)
    session.commit()
    return _recording(r)


@router.get("/recordings")
def list_recordings(
    session: SessionDep, p: PrincipalDep, user: User = None
) -> list[dict[str, Any]]:
    """MyShare: a user's recordings (the paper's Table of Recordings)."""
    return [_recording(r) for r in _of_user(session, RecordingRow, p, user)]


@router.delete("/recordings/{rid}", responses=errors(404))
def stop_recording(rid: RecordingId, session: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    r = session.get(RecordingRow, rid)
    if r is None or not p.owns(r.user):  # another's: as if it did not exist
        raise HTTPException(404, detail=f"unknown recording {rid}")
    if r.state == "requested":
        r.state, r.stopped_at = "stopped", time.time()
    session.commit()
    return _recording(r)


def _own_recording(session: Session, rid: int, p: Principal) -> RecordingRow:
    r = session.get(RecordingRow, rid)
    if r is None or not p.owns(r.user) or r.state not in recordings.KEPT:
        raise HTTPException(404, detail=f"unknown recording {rid}")  # another's: unknown
    return r


@router.post("/recordings/{rid}/play", responses=errors(404, 409, 503))
def play(
    rid: RecordingId, body: WhereIn, session: SessionDep, p: PrincipalDep, notifier: NotifierDep
) -> dict[str, Any]:
    """MyShare plays a recording on demand through the most suitable edge streamer for
    the user's PE (the live rule: the case and why are in the answer), as HLS VoD that
    the streamer relays from the storage function; ``vod`` carries the user's token.
    The bandwidth is reserved on the way until the playback ends (DELETE, or idle)."""
    r = _own_recording(session, rid, p)
    pe = _client_pe(session, body)
    node = recordings.node_of(session, r.event)
    e = session.get(EventRow, r.event)
    if node is None or e is None or recordings.address(recordings.instance(session, node)) is None:
        raise HTTPException(409, detail=f"recording {rid} has no running storage function yet")
    secret = backend.key(session)
    t = backend.load(session)
    now = time.time()
    cid, client = recordings.content_id(rid), recordings.client_id(rid)
    played = t.play(client, cid, node, e.bitrate_kbps * 1e3, pe, now, body.host)
    ev = _assigned(session, notifier, t, played)
    ip = recordings.address(reconcile.instance_of(session, f"streamer:{ev.streamer}"))
    token = recordings.user_token(secret, r, now)
    return {
        "recording": rid,
        "content": cid,
        "client": client,
        "streamer": ev.streamer,
        "node": ev.node,
        "address": ip,
        "vod": f"http://{ip}:{HTTP_PORT}/vod/{cid}/index.m3u8?token={token}" if ip else None,
        "stored_at": node,
        "pe": pe,
        "case": ev.case,
        "why": ev.why,
    }


@router.delete("/recordings/{rid}/play", responses=errors(404))
def stop_playing(rid: RecordingId, session: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    """The playback ends: its branch goes after the grace period."""
    _own_recording(session, rid, p)
    t = backend.load(session)
    client = recordings.client_id(rid)
    if client not in t.viewers:
        raise HTTPException(404, detail=f"recording {rid} is not being played")
    evs = t.leave(client, time.time())
    backend.record(session, evs)
    backend.save(session, t)
    session.commit()
    return {"stopped": rid, "prune_at": getattr(evs[0], "prune_at", None)}


def _reservation(r: ReservationRow) -> dict[str, Any]:
    return {"id": r.id, "user": r.user, "event": r.event, "pe": r.pe, "created_at": r.created_at}


class ReserveIn(UserEventIn, WhereIn):
    """A reservation; where the user will watch from (``pe`` or ``host``) lets the
    back-end pre-start a branch there shortly before the start (planning.py)."""


@router.post("/reservations", status_code=201, responses=errors(409))
def reserve(
    body: ReserveIn, session: SessionDep, notifier: NotifierDep, p: PrincipalDep
) -> dict[str, Any]:
    """A user reserves a future event (the Calendar, and the back-end's planning)."""
    user = _caller_as(p, Role.USER, body.user, "user")
    _check_event(session, body.event, ("scheduled",), "only a coming one can be reserved")
    pe = body.access_pe(session)
    r = ReservationRow(user=user, event=body.event, pe=pe, created_at=time.time())
    session.add(r)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise HTTPException(409, detail=f"{user} has reserved event {body.event}") from None
    touched = reconcile.step(session)  # inside the lead time: pre-started now
    session.commit()
    notifier.notify(touched)
    return _reservation(r)


@router.get("/reservations")
def list_reservations(
    session: SessionDep, p: PrincipalDep, user: User = None
) -> list[dict[str, Any]]:
    return [_reservation(r) for r in _of_user(session, ReservationRow, p, user)]


@router.delete("/reservations/{rid}", responses=errors(404))
def cancel_reservation(
    rid: ReservationId, session: SessionDep, notifier: NotifierDep, p: PrincipalDep
) -> dict[str, Any]:
    """The reservation goes, and what planning pre-started only for it."""
    r = session.get(ReservationRow, rid)
    if r is None or not p.owns(r.user):  # another's: as if it did not exist
        raise HTTPException(404, detail=f"unknown reservation {rid}")
    session.delete(r)
    session.flush()
    touched = reconcile.step(session)
    session.commit()
    notifier.notify(touched)
    return {"cancelled": rid}
