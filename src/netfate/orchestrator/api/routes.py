"""Core routes: topology, nodes, agents, descriptors, instances, migrations, events,
and the services this orchestrator serves.

Who may call each is declared in roles.py and enforced before a handler runs
(orchestrator/identity). What a handler adds is ownership: a provider sees and acts
on its own instances only (another's is a 404, as if it did not exist), in the
abstract view (views.instance_abstract), and reads only the events it is a reader
of; an operator sees everything.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from netfate.model.secrets import restore
from netfate.model.topology import Topology
from netfate.orchestrator.api import functions, schemas, views
from netfate.orchestrator.api.deps import NotifierDep, SessionDep
from netfate.orchestrator.api.errors import errors
from netfate.orchestrator.api.limits import EventStream, event_streams, long_polls, poll_wait
from netfate.orchestrator.identity import Principal, PrincipalDep
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.orchestrator.nfv import power, predeploy
from netfate.orchestrator.nfv.errors import NotFound
from netfate.orchestrator.nfv.topology import load_topology
from netfate.orchestrator.notify import EVENTS
from netfate.orchestrator.reports import ReportBatcher
from netfate.store.tables import (
    DescriptorRow,
    EventReaderRow,
    EventRow,
    HostRow,
    InstanceRow,
    LinkRow,
    MigrationRow,
    NodeRow,
    TopologyRow,
    TransitionRow,
)

router = APIRouter()

SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "description": "One server-sent event: `data` is the event as GET /events lists it",
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "event": {"type": "string", "description": "The event's kind"},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
    "required": ["id", "event", "data"],
}


@router.get("/health", tags=["meta"])
def health(session: SessionDep) -> dict[str, Any]:
    nodes = session.scalar(select(func.count()).select_from(NodeRow)) or 0
    return {"status": "ok", "nodes": nodes}


@router.get("/services", tags=["meta"])
def services(request: Request) -> list[dict[str, Any]]:
    """The services plugged in (their contracts), and how their reconcile loops run."""
    loops = request.app.state.loops
    return [views.service(svc, loops.of(svc.name)) for svc in request.app.state.services]


# ------------------------------------------------------------------ topology


@router.get("/topology", tags=["topology"])
def get_topology(session: SessionDep) -> dict[str, Any]:
    row = session.get(TopologyRow, 1)
    return {
        "name": row.name if row else None,
        "document": row.document if row else None,
        "nodes": [views.node(n) for n in session.scalars(select(NodeRow).order_by(NodeRow.name))],
        "links": [views.link(x) for x in session.scalars(select(LinkRow).order_by(LinkRow.id))],
        "hosts": [views.host(h) for h in session.scalars(select(HostRow).order_by(HostRow.name))],
    }


@router.put("/topology", tags=["topology"], responses=errors(409))
def put_topology(
    body: dict[str, Any], session: SessionDep, notifier: NotifierDep
) -> dict[str, Any]:
    touched = load_topology(session, Topology.from_dict(body))
    out = get_topology(session)  # before the commit: agent_register says why
    session.commit()
    notifier.notify(touched)
    return out


@router.get("/hosts", tags=["topology"])
def list_hosts(session: SessionDep) -> list[dict[str, Any]]:
    return [views.host(h) for h in session.scalars(select(HostRow).order_by(HostRow.name))]


@router.get("/links", tags=["topology"])
def list_links(session: SessionDep) -> list[dict[str, Any]]:
    return [views.link(x) for x in session.scalars(select(LinkRow).order_by(LinkRow.id))]


# ------------------------------------------------------------------ nodes


@router.get("/nodes", tags=["nodes"])
def list_nodes(session: SessionDep) -> list[dict[str, Any]]:
    return [views.node(n) for n in session.scalars(select(NodeRow).order_by(NodeRow.name))]


@router.get("/nodes/{name}", tags=["nodes"], responses=errors(404))
def get_node(name: str, session: SessionDep) -> dict[str, Any]:
    n = session.get(NodeRow, name)
    if n is None:
        raise NotFound(f"unknown node {name!r}")
    out = views.node(n)
    out["instances"] = [
        views.instance(i)
        for i in session.scalars(
            select(InstanceRow).where(InstanceRow.node == name, InstanceRow.state != "gone")
        )
    ]
    return out


@router.put("/nodes/{name}/power", tags=["nodes"], status_code=202, responses=errors(404, 409))
def put_node_power(
    name: str, body: schemas.PowerRequest, session: SessionDep, notifier: NotifierDep,
    p: PrincipalDep,
) -> dict[str, Any]:  # fmt: skip
    """Switch a node off (drained first: its instances migrate away, then it is off;
    a node that cannot be drained is refused, 409, with the reason, and nothing
    changes) or on (back for placement). 202: a drain completes as its migrations do
    (`power` goes draining -> off; GET /nodes/{name})."""
    why = f"{p.name}: {body.why}" if body.why else f"{p.name} asked"
    if body.state == "off":
        drain, touched = power.power_off(session, name, why)
        moves = drain.moves
    else:
        touched, moves = power.power_on(session, name, why), {}
    session.commit()
    notifier.notify(touched)
    n = session.get(NodeRow, name)
    if n is None:  # removed by a topology load in between
        raise NotFound(f"unknown node {name!r}")
    return {**views.node(n), "moves": moves}


@router.put("/nodes/{name}/predeploy", tags=["nodes"], responses=errors(404))
def put_node_predeploy(
    name: str, body: schemas.PredeployBudget, session: SessionDep, notifier: NotifierDep
) -> dict[str, Any]:
    """Set a node's pre-deploy budget: storage for function images and a number of
    warm standbys (0 and 0: none). The policy picks which images and standbys
    (GET /predeploy says which, and why); the node's agent keeps them ready."""
    touched = predeploy.set_budget(session, name, body.storage_mb, body.standbys)
    none: dict[str, Any] = {"node": name, "budget": body.model_dump(), "images": []}
    # before the commit (agent_register says why): the plan as this transaction left it
    view: dict[str, Any] = predeploy_view(session).get(name, none)  # 0 and 0: nothing
    session.commit()
    notifier.notify(touched)
    return view


@router.get("/predeploy", tags=["nodes"])
def get_predeploy(session: SessionDep) -> dict[str, Any]:
    """Per node with a budget: the function images kept and refused, the warm
    standbys planned, each with its reason, and the standbys its agent has ready."""
    return predeploy_view(session)


def predeploy_view(session: Session) -> dict[str, Any]:
    return {
        node: predeploy.view(session, p, session.get(NodeRow, node))
        for node, p in predeploy.plans(session).items()
    }


# ------------------------------------------------------------------ agents


@router.post("/agents/{node}/register", tags=["agents"], responses=errors(404))
def agent_register(
    node: str, body: schemas.AgentRegister, session: SessionDep, notifier: NotifierDep
) -> dict[str, Any]:
    touched = nfv.register_agent(session, node, body.endpoint, body.datapath_id)
    # The answer is read in the registration's own transaction: read after the
    # commit, it began a second writing one, which held SQLite's write gate until
    # the session closed, after FastAPI encoded the answer in a worker thread; with
    # every worker waiting for the gate, nothing moved until the 30 s timeouts
    # (issue 15: the 1,000-node testbed's stall). The session is not used after.
    state = nfv.desired_state(session, node)
    session.commit()
    notifier.notify(touched)
    return state


@router.post("/agents/{node}/report", tags=["agents"], responses=errors(404, 409))
async def agent_report(node: str, body: schemas.AgentReport, request: Request) -> dict[str, Any]:
    """Written with the other reports that arrived meanwhile, in one transaction
    (orchestrator/reports.py); functions' events go to their services there."""
    batcher: ReportBatcher = request.app.state.reports
    return {"revision": await batcher.apply(node, body.model_dump(exclude_none=True))}


@router.get("/agents/{node}/desired", tags=["agents"], responses=errors(404, 429))
async def agent_desired(
    node: str,
    request: Request,
    notifier: NotifierDep,
    revision: int = Query(-1, description="Return at once unless the node is at this revision"),
    wait: float = Query(0.0, ge=0, le=30, description="Long-poll for up to this many seconds"),
) -> Any:
    db = request.app.state.db

    def current_revision() -> int:
        with db.session(write=False) as s:
            row = s.get(NodeRow, node)
            if row is None:
                raise NotFound(f"unknown node {node!r}")
            return int(row.revision)

    def read() -> dict[str, Any]:
        with db.session(write=False) as s:
            return nfv.desired_state(s, node)

    # Most polls find nothing new: compare the revision (one indexed read) and only
    # build the desired state when it moved or the wait ran out.
    wait = poll_wait(request, wait)
    if wait > 0 and await asyncio.to_thread(current_revision) == revision:
        with long_polls(request).hold():
            await notifier.wait(node, wait)
    return await asyncio.to_thread(read)


# ------------------------------------------------------------------ descriptors


@router.get("/descriptors", tags=["descriptors"])
def list_descriptors(session: SessionDep) -> list[dict[str, Any]]:
    return [views.descriptor(d) for d in session.scalars(select(DescriptorRow))]


@router.post("/descriptors", tags=["descriptors"], status_code=201, responses=errors(422))
def put_descriptor(
    body: schemas.DescriptorIn, request: Request, session: SessionDep, p: PrincipalDep
) -> dict[str, Any]:
    """Publish a descriptor, or replace one of one's own (an operator: any). Its
    function must be one a registered service provides (422 otherwise), and its
    configuration must pass that function's schema."""
    functions.config(request, body.function, body.config, ("body", "config"))
    row = session.get(DescriptorRow, body.name)
    if row is None:
        row = DescriptorRow(name=body.name, owner=p.name or None)
        session.add(row)
    elif not p.owns(row.owner):
        raise HTTPException(403, detail=f"descriptor {body.name!r} is not yours")
    for k, v in body.model_dump().items():
        setattr(row, k, v)
    session.commit()
    return views.descriptor(row)


# ------------------------------------------------------------------ instances


def _instance_view(session: Session, p: Principal, inst: InstanceRow) -> dict[str, Any]:
    if p.operator:
        return views.instance(inst)
    node = session.get(NodeRow, inst.node)
    return views.instance_abstract(inst, node.kind if node else None)


def _own_instance(session: Session, p: Principal, iid: str) -> InstanceRow:
    """The instance if `p` may see it; another provider's is not found, as if absent."""
    inst = nfv.get_instance(session, iid)
    if not p.owns(inst.owner):
        raise NotFound(f"unknown instance {iid!r}")
    return inst


@router.get("/instances", tags=["instances"])
def list_instances(
    session: SessionDep,
    p: PrincipalDep,
    node: str | None = None,
    state: str | None = None,
    include_gone: bool = False,
    limit: int = Query(1000, ge=1, le=100000),
    offset: int = Query(0, ge=0, le=schemas.INT32_MAX),
) -> list[dict[str, Any]]:
    """Instances; a provider's or a user's list holds its own, each in the abstract view."""
    q = select(InstanceRow).order_by(InstanceRow.created_at)
    if not p.operator:
        if node is not None:
            raise HTTPException(403, detail="node names are the operator's: no node filter")
        q = q.where(InstanceRow.owner == p.name)
    if node is not None:
        q = q.where(InstanceRow.node == node)
    if state is not None:
        q = q.where(InstanceRow.state == state)
    elif not include_gone:
        q = q.where(InstanceRow.state != "gone")
    rows = list(session.scalars(q.limit(limit).offset(offset)))
    if p.operator:
        return [views.instance(i) for i in rows]
    kinds = {n: k for n, k in session.execute(select(NodeRow.name, NodeRow.kind))}
    return [views.instance_abstract(i, kinds.get(i.node)) for i in rows]


@router.post("/instances", tags=["instances"], status_code=201, responses=errors(404, 409))
def create_instance(
    body: schemas.InstanceCreate,
    request: Request,
    session: SessionDep,
    notifier: NotifierDep,
    p: PrincipalDep,
) -> dict[str, Any]:
    """Create an instance (placement picks its node; an operator may name one). It is
    the caller's: a provider sees and acts on its own instances only."""
    if body.node is not None and not p.operator:
        raise HTTPException(403, detail="node names are the operator's: say `serves` instead")
    desc = session.get(DescriptorRow, body.descriptor)
    if desc is not None:  # (else nfv answers 404)
        functions.instance(request, desc, body.config)
    inst, touched = nfv.create_instance(
        session,
        nfv.CreateRequest(
            descriptor=body.descriptor,
            name=body.name,
            node=body.node,
            serves=body.serves,
            policy=body.policy,
            config=body.config,
            owner=p.name or None,
        ),
    )
    session.commit()
    notifier.notify(touched)
    return _instance_view(session, p, inst)


@router.get("/instances/{iid}", tags=["instances"], responses=errors(404))
def get_instance(iid: str, session: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    inst = _own_instance(session, p, iid)
    out = _instance_view(session, p, inst)
    abstract = not p.operator
    out["transitions"] = [
        views.transition(t, abstract)
        for t in session.scalars(
            select(TransitionRow).where(TransitionRow.instance == iid).order_by(TransitionRow.id)
        )
    ]
    out["migrations"] = [
        views.migration(m, abstract)
        for m in session.scalars(
            select(MigrationRow).where(MigrationRow.instance == iid).order_by(MigrationRow.id)
        )
    ]
    return out


@router.delete("/instances/{iid}", tags=["instances"], status_code=202, responses=errors(404, 409))
def destroy_instance(
    iid: str, session: SessionDep, notifier: NotifierDep, p: PrincipalDep
) -> dict[str, Any]:
    _own_instance(session, p, iid)
    inst, touched = nfv.destroy_instance(session, iid)
    session.commit()
    notifier.notify(touched)
    return _instance_view(session, p, inst)


@router.patch("/instances/{iid}", tags=["instances"], status_code=202, responses=errors(404, 409))
def reconfigure_instance(
    iid: str,
    body: schemas.InstancePatch,
    request: Request,
    session: SessionDep,
    notifier: NotifierDep,
    p: PrincipalDep,
) -> dict[str, Any]:
    """Give a live instance a new configuration; its agent applies it."""
    inst = _own_instance(session, p, iid)
    desc = session.get(DescriptorRow, inst.descriptor)
    function = desc.function if desc is not None else inst.descriptor  # as the agent gets it
    cfg = restore(body.config, inst.config or {})
    functions.config(request, function, cfg, ("body", "config"), ("path", "iid"))
    inst, touched = nfv.reconfigure_instance(session, iid, body.config)
    session.commit()
    notifier.notify(touched)
    return _instance_view(session, p, inst)


@router.post(
    "/instances/{iid}/migrate", tags=["instances"], status_code=202, responses=errors(404, 409)
)
def migrate_instance(
    iid: str, body: schemas.MigrateRequest, session: SessionDep, notifier: NotifierDep
) -> dict[str, Any]:
    m, touched = nfv.migrate_instance(session, iid, body.node)
    session.commit()
    notifier.notify(touched)
    return views.migration(m)


@router.get("/migrations", tags=["instances"])
def list_migrations(
    session: SessionDep, limit: int = Query(200, ge=1, le=10000)
) -> list[dict[str, Any]]:
    q = select(MigrationRow).order_by(MigrationRow.id.desc()).limit(limit)
    return [views.migration(m) for m in session.scalars(q)]


# ------------------------------------------------------------------ events


def _events(p: Principal, actor: str | None) -> Select[EventRow]:
    """The events `p` may read (an operator: all; anyone else: those it is a reader
    of), of one actor if asked."""
    q = select(EventRow)
    if not p.operator:
        mine = select(EventReaderRow.event_id).where(EventReaderRow.reader == p.name)
        q = q.where(EventRow.id.in_(mine))
    if actor is not None:
        q = q.where(EventRow.actor == actor)
    return q


ActorQuery = Query(None, max_length=254, description="Only what this account did")


@router.get("/events", tags=["events"])
def list_events(
    session: SessionDep,
    p: PrincipalDep,
    after: int = Query(0, ge=0, le=schemas.INT32_MAX, description="Only events with a larger id"),
    limit: int = Query(200, ge=1, le=5000),
    tail: int | None = Query(None, ge=1, le=5000, description="The newest N events instead"),
    actor: str | None = ActorQuery,
) -> list[dict[str, Any]]:
    """Events in id order: those after `after`, or with `tail`, the newest N. An
    operator reads every event; a provider or a user its own (about its instances,
    its sessions and shares, or what it did), without infrastructure details."""
    abstract = not p.operator
    if tail is not None:
        newest = _events(p, actor).order_by(EventRow.id.desc()).limit(tail)
        return [views.event(e, abstract) for e in reversed(list(session.scalars(newest)))]
    q = _events(p, actor).where(EventRow.id > after).order_by(EventRow.id).limit(limit)
    return [views.event(e, abstract) for e in session.scalars(q)]


@router.get(
    "/events/stream",
    tags=["events"],
    status_code=200,
    response_class=EventStream,
    responses={200: {"content": {"text/event-stream": {"schema": SSE_EVENT}}}, **errors(429)},
)
async def stream_events(
    request: Request,
    notifier: NotifierDep,
    p: PrincipalDep,
    after: int = Query(0, ge=0, le=schemas.INT32_MAX, description="Only events with a larger id"),
    actor: str | None = ActorQuery,
) -> Response:
    """Server-sent events: every event after `after` (or after the Last-Event-ID a
    reconnecting EventSource sends), then each new one as it happens; the same
    events as GET /events shows this principal."""
    db = request.app.state.db
    last_id = request.headers.get("last-event-id", "")
    if re.fullmatch(r"[0-9]{1,10}", last_id):
        after = min(max(after, int(last_id)), schemas.INT32_MAX)
    abstract = not p.operator

    def read(last: int) -> list[dict[str, Any]]:
        with db.session(write=False) as s:
            q = _events(p, actor).where(EventRow.id > last).order_by(EventRow.id).limit(500)
            return [views.event(e, abstract) for e in s.scalars(q)]

    async def gen() -> AsyncIterator[str]:
        last = after
        idle = 0.0
        while not await request.is_disconnected():
            batch = await asyncio.to_thread(read, last)
            for e in batch:
                last = e["id"]
                yield f"id: {e['id']}\nevent: {e['kind']}\ndata: {json.dumps(e)}\n\n"
            if batch:
                idle = 0.0
                continue
            # Woken by the API's own writes at once; events other writers record
            # (services, the controller) are picked up by the 1 s re-read.
            if not await notifier.wait(EVENTS, 1.0):
                idle += 1.0
                if idle >= 15.0:
                    idle = 0.0
                    yield ": keep-alive\n\n"

    return EventStream(gen(), event_streams(request))
