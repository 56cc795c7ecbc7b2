"""REST API of the catalog: /api/v1/catalog/... (mounted by the platform).

Service providers (the seed's stakeholders, section II):

    POST /chains                          publish a chain (a YAML descriptor): a new
                                          version; 422 with keyed errors when invalid
    GET  /chains/{name}/versions          its versions
    GET  /chains/{name}/versions/{v}      one version: descriptor and templates
    GET  /providers/{provider}/subscriptions   its subscriptions, abstract locations only

End users:

    GET  /services                        the catalog: each chain's newest version
    POST /subscriptions                   subscribe (placed, instances asked for);
                                          409 with the engine's refusals
    GET  /subscriptions?user=U            a user's subscriptions (with each decision's why)
    GET  /subscriptions/{sid}             one, with its decisions
    POST /subscriptions/{sid}/upgrade     move to another (default: the newest) version
    DELETE /subscriptions/{sid}           unsubscribe (its instances stop)
    GET  /positions/{user}                where the user is, and where they were seen

The operator:

    GET/PUT /settings                     the placement objective and move cost

Reads never write: a GET reads the tables; placing, moving and recording
positions happen in POSTs and in the conduit's loop.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from netfate.contract import Service
from netfate.orchestrator.api.deps import NotifierDep, SessionDep
from netfate.orchestrator.nfv.coordinator import BUILTIN_DESCRIPTORS
from netfate.orchestrator.nfv.errors import Conflict, NotFound
from netfate.orchestrator.notify import Notifier
from netfate.store.events import record
from netfate.store.tables import DescriptorRow, InstanceRow, NodeRow

from . import conduit as cd
from . import templates
from .descriptor import NAME_RE, DescriptorError, Function
from .states import SubscriptionState
from .tables import (
    CatalogBlockRow,
    CatalogChainRow,
    CatalogDecisionRow,
    CatalogInstanceRow,
    CatalogPositionRow,
    CatalogSettingRow,
    CatalogSiteRow,
    CatalogSubscriptionRow,
)

router = APIRouter()
CONDUIT = cd.Conduit()
"""The conduit the API and the loop share (the platform's coordinator, the
platform's records of where users are)."""
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$"


def keyed(status: int, message: str, errors: dict[str, str]) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": message, "errors": errors})


# ------------------------------------------------------------------ providers


def functions(request: Request, session: Session) -> dict[str, Function]:
    """The functions a chain may use: those the registered services declare in their
    contracts, and the platform's own; with the figures the platform holds."""
    services: tuple[Service, ...] = tuple(getattr(request.app.state, "services", ()))
    names = {str(d["name"]) for svc in services for d in svc.descriptors}
    names |= {str(d["name"]) for d in BUILTIN_DESCRIPTORS}
    out = {}
    for d in session.scalars(select(DescriptorRow).where(DescriptorRow.name.in_(sorted(names)))):
        out[d.name] = Function(d.name, float(d.cpu), float(d.memory_mb))
    return out


class PublishIn(BaseModel):
    provider: str = Field(pattern=_ID, description="Who publishes (owns the chain's name)")
    descriptor: str = Field(max_length=64 * 1024, description="The chain, in YAML")


def chain_out(session: Session, c: CatalogChainRow) -> dict[str, Any]:
    blocks, talks = cd.templates_of(session, c.id)
    subs = session.scalar(
        select(func.count())
        .select_from(CatalogSubscriptionRow)
        .where(
            CatalogSubscriptionRow.chain == c.id,
            CatalogSubscriptionRow.state == SubscriptionState.ACTIVE.value,
        )
    )
    return {
        "name": c.name,
        "version": c.version,
        "provider": c.provider,
        "summary": c.summary,
        "published_at": c.published_at,
        "sla": {"latency_ms": c.latency_ms, "availability": c.availability},
        "user_mbps": c.user_mbps,
        "templates": {
            "blocks": [
                {"position": b.position, "name": b.name, "function": b.function, "cpu": b.cpu,
                 "memory_mb": b.memory_mb, "storage_mb": b.storage_mb}
                for b in blocks
            ],
            "talks": [{"from": t.a, "to": t.b, "mbps": t.mbps} for t in talks],
        },
        "active_subscriptions": subs or 0,
        "descriptor": c.source,
    }  # fmt: skip


@router.post("/chains", status_code=201, response_model=None)
def publish(
    body: PublishIn, request: Request, session: SessionDep
) -> dict[str, Any] | JSONResponse:
    """Publish a chain version: checked, then decomposed into stored templates (one
    per block and per relationship). Nothing is allocated until a user subscribes."""
    try:
        row = templates.publish(
            session, body.provider, body.descriptor, functions(request, session)
        )
    except templates.Impossible as e:
        return keyed(422, "the platform's nodes cannot meet this chain", e.errors)
    except DescriptorError as e:
        return keyed(422, "invalid descriptor", e.errors)
    out = chain_out(session, row)
    session.commit()
    return out


def _versions(session: Session, name: str) -> list[CatalogChainRow]:
    rows = list(
        session.scalars(
            select(CatalogChainRow)
            .where(CatalogChainRow.name == name)
            .order_by(CatalogChainRow.version)
        )
    )
    if not rows:
        raise NotFound(f"unknown chain {name!r}")
    return rows


@router.get("/chains/{name}/versions")
def versions(name: str, session: SessionDep) -> list[dict[str, Any]]:
    return [chain_out(session, c) for c in _versions(session, name)]


@router.get("/chains/{name}/versions/{version}")
def version(name: str, version: int, session: SessionDep) -> dict[str, Any]:
    for c in _versions(session, name):
        if c.version == version:
            return chain_out(session, c)
    raise NotFound(f"chain {name!r} has no version {version}")


@router.get("/providers/{provider}/subscriptions")
def provider_view(provider: str, session: SessionDep) -> list[dict[str, Any]]:
    """The provider's subscriptions, where its blocks run given as abstract sites
    (a tier and an opaque name): the infrastructure stays hidden (seed, II)."""
    sites = cd.all_sites(session)
    tiers = {r.site: r.tier for r in session.scalars(select(CatalogSiteRow))}
    rows = session.execute(
        select(CatalogSubscriptionRow, CatalogChainRow)
        .join(CatalogChainRow, CatalogChainRow.id == CatalogSubscriptionRow.chain)
        .where(CatalogChainRow.provider == provider)
        .order_by(CatalogSubscriptionRow.created_at)
    ).all()
    out = []
    for sub, chain in rows:
        blocks = []
        for ir in _instances(session, sub.id):
            site = sites.get(ir.node, "another site")
            inst = session.get(InstanceRow, ir.instance)
            blocks.append(
                {"block": ir.block, "site": site, "tier": tiers.get(site, "unknown"),
                 "state": inst.state if inst is not None else "unknown"}
            )  # fmt: skip
        last = _last_decision(session, sub.id)
        out.append(
            {
                "id": sub.id, "user": sub.user, "chain": chain.name, "version": chain.version,
                "state": sub.state, "created_at": sub.created_at,
                "blocks": blocks if sub.state == SubscriptionState.ACTIVE.value else [],
                "rtt_ms": last.rtt_ms if last is not None else None,
                "sla": {"latency_ms": chain.latency_ms, "availability": chain.availability},
                "why": cd.abstracted(sub.why, sites),
            }
        )  # fmt: skip
    return out


# ------------------------------------------------------------------ end users


@router.get("/services")
def catalog(session: SessionDep) -> list[dict[str, Any]]:
    """The services users can subscribe to: each chain's newest version."""
    newest = (
        select(CatalogChainRow.name, func.max(CatalogChainRow.version).label("v"))
        .group_by(CatalogChainRow.name)
        .subquery()
    )
    rows = session.scalars(
        select(CatalogChainRow)
        .join(
            newest,
            (CatalogChainRow.name == newest.c.name) & (CatalogChainRow.version == newest.c.v),
        )
        .order_by(CatalogChainRow.name)
    ).all()
    out = []
    for c in rows:
        blocks = session.scalars(
            select(CatalogBlockRow.name)
            .where(CatalogBlockRow.chain == c.id)
            .order_by(CatalogBlockRow.position)
        ).all()
        out.append(
            {"name": c.name, "version": c.version, "provider": c.provider,
             "summary": c.summary, "blocks": list(blocks),
             "sla": {"latency_ms": c.latency_ms, "availability": c.availability}}
        )  # fmt: skip
    return out


class SubscribeIn(BaseModel):
    user: str = Field(pattern=_ID)
    chain: str = Field(pattern=NAME_RE.pattern)
    version: int | None = Field(default=None, ge=1, description="Default: the newest")
    at: str | None = Field(
        default=None, max_length=64,
        description="The node the user is attached to; default: where the platform saw "
        "them last (a RADIUS login, a device at a switch port)",
    )  # fmt: skip
    devices: list[str] = Field(
        default_factory=list, max_length=16,
        description="MAC addresses of the user's devices (a sighting places the user)",
    )  # fmt: skip


def _chain(session: Session, name: str, version: int | None) -> CatalogChainRow:
    rows = _versions(session, name)
    if version is None:
        return rows[-1]
    for c in rows:
        if c.version == version:
            return c
    raise NotFound(f"chain {name!r} has no version {version}")


def _instances(session: Session, sid: str) -> list[CatalogInstanceRow]:
    return list(
        session.scalars(
            select(CatalogInstanceRow)
            .where(CatalogInstanceRow.subscription == sid)
            .order_by(CatalogInstanceRow.block)
        )
    )


def _last_decision(session: Session, sid: str) -> CatalogDecisionRow | None:
    return session.scalars(
        select(CatalogDecisionRow)
        .where(CatalogDecisionRow.subscription == sid, CatalogDecisionRow.rtt_ms.is_not(None))
        .order_by(CatalogDecisionRow.id.desc())
        .limit(1)
    ).first()


def decision_out(d: CatalogDecisionRow) -> dict[str, Any]:
    return {
        "at": d.at, "action": d.action, "objective": d.objective, "nodes": d.nodes,
        "rtt_ms": d.rtt_ms, "why": d.why, **d.data,
    }  # fmt: skip


def subscription_out(
    session: Session, sub: CatalogSubscriptionRow, *, history: bool = False
) -> dict[str, Any]:
    chain = session.get(CatalogChainRow, sub.chain)
    out: dict[str, Any] = {
        "id": sub.id,
        "user": sub.user,
        "chain": chain.name if chain else None,
        "version": chain.version if chain else None,
        "state": sub.state,
        "at": sub.at,
        "devices": sub.devices,
        "why": sub.why,
        "detail": sub.detail,
        "instances": [
            {"block": ir.block, "instance": ir.instance, "node": ir.node,
             "state": (session.get(InstanceRow, ir.instance) or _Gone).state}
            for ir in _instances(session, sub.id)
        ],
    }  # fmt: skip
    if history:
        out["decisions"] = [
            decision_out(d)
            for d in session.scalars(
                select(CatalogDecisionRow)
                .where(CatalogDecisionRow.subscription == sub.id)
                .order_by(CatalogDecisionRow.id)
            )
        ]
    return out


class _Gone:
    state = "gone"


def _where_is(session: Session, user: str, devices: list[str]) -> str | None:
    pos = CONDUIT.locator.where(session, {user: devices}).get(user)
    return pos.node if pos is not None else None


@router.post("/subscriptions", status_code=201, response_model=None)
def subscribe(
    body: SubscribeIn, session: SessionDep, notifier: NotifierDep
) -> dict[str, Any] | JSONResponse:
    chain = _chain(session, body.chain, body.version)
    at = body.at or _where_is(session, body.user, body.devices)
    if at is None:
        return keyed(
            400, "where the user is is not known",
            {"at": "required: the platform has not seen this user (no login, no device)"},
        )  # fmt: skip
    try:
        row, _d, touched = CONDUIT.subscribe(session, body.user, chain, at, body.devices)
    except cd.Refused as e:
        return _refused(session, e)
    return _committed(session, notifier, row, touched)


def _committed(
    session: Session, notifier: Notifier, row: CatalogSubscriptionRow, touched: set[str]
) -> dict[str, Any]:
    """The subscription as the change left it; committed, and its nodes' agents woken."""
    out = subscription_out(session, row, history=True)
    session.commit()
    notifier.notify(touched)
    return out


def _refused(session: Session, e: cd.Refused) -> JSONResponse:
    """409 with the engine's refusals; nothing of the attempt is kept but its event."""
    session.rollback()
    record(session, e.event)
    session.commit()
    return JSONResponse(status_code=409, content={"detail": str(e), "refusals": e.refusals})


@router.get("/subscriptions")
def list_subscriptions(session: SessionDep, user: str | None = None) -> list[dict[str, Any]]:
    q = select(CatalogSubscriptionRow).order_by(CatalogSubscriptionRow.created_at)
    if user is not None:
        q = q.where(CatalogSubscriptionRow.user == user)
    return [subscription_out(session, s) for s in session.scalars(q)]


@router.get("/subscriptions/{sid}")
def get_subscription(sid: str, session: SessionDep) -> dict[str, Any]:
    return subscription_out(session, cd.get_subscription(session, sid), history=True)


class UpgradeIn(BaseModel):
    version: int | None = Field(default=None, ge=1, description="Default: the newest")


@router.post("/subscriptions/{sid}/upgrade", response_model=None)
def upgrade(
    sid: str, body: UpgradeIn, session: SessionDep, notifier: NotifierDep
) -> dict[str, Any] | JSONResponse:
    row = cd.get_subscription(session, sid)
    if row.state != SubscriptionState.ACTIVE.value:
        raise Conflict(f"subscription {sid} is {row.state}")
    current = session.get(CatalogChainRow, row.chain)
    if current is None:
        raise NotFound(f"subscription {sid}'s chain is gone")
    target = _chain(session, current.name, body.version)
    if target.id == current.id:
        raise Conflict(f"subscription {sid} already runs {current.name}@{current.version}")
    try:
        _d, touched = CONDUIT.upgrade(session, row, target)
    except cd.Refused as e:
        return _refused(session, e)
    return _committed(session, notifier, row, touched)


@router.delete("/subscriptions/{sid}")
def unsubscribe(sid: str, session: SessionDep, notifier: NotifierDep) -> dict[str, Any]:
    row = cd.get_subscription(session, sid)
    if row.state != SubscriptionState.ACTIVE.value:
        raise Conflict(f"subscription {sid} is {row.state}")
    return _committed(session, notifier, row, CONDUIT.unsubscribe(session, row))


@router.get("/positions/{user}")
def position(user: str, session: SessionDep) -> dict[str, Any]:
    """Where the user is now (the platform's records), and the positions the conduit
    recorded for them (newest first)."""
    devices = sorted(
        {
            m
            for d in session.scalars(
                select(CatalogSubscriptionRow.devices).where(CatalogSubscriptionRow.user == user)
            )
            for m in (d or [])
        }
    )
    pos = CONDUIT.locator.where(session, {user: devices}).get(user)
    history = session.scalars(
        select(CatalogPositionRow)
        .where(CatalogPositionRow.user == user)
        .order_by(CatalogPositionRow.id.desc())
        .limit(100)
    ).all()
    return {
        "user": user,
        "now": None if pos is None else
        {"node": pos.node, "source": pos.source, "seen_at": pos.at},
        "history": [
            {"node": h.node, "source": h.source, "seen_at": h.seen_at,
             "recorded_at": h.recorded_at}
            for h in history
        ],
    }  # fmt: skip


# ------------------------------------------------------------------ the operator


class SettingsIn(BaseModel):
    objective: Literal["consolidation", "latency", "mix"] = "mix"
    energy_weight: float = Field(default=1.0, ge=0, le=1e6)
    latency_weight: float = Field(default=1.0, ge=0, le=1e6)
    move_cost: float = Field(default=1.0, ge=0, le=1e9)


@router.get("/settings")
def get_settings(session: SessionDep) -> dict[str, Any]:
    obj, move_cost = cd.objective(session)
    return {
        "objective": obj.name,
        "energy_weight": obj.energy_weight,
        "latency_weight": obj.latency_weight,
        "move_cost": move_cost,
        "nodes": session.scalar(select(func.count()).select_from(NodeRow)) or 0,
    }


@router.put("/settings")
def put_settings(body: SettingsIn, session: SessionDep) -> dict[str, Any]:
    if body.objective == "mix" and body.energy_weight == 0 and body.latency_weight == 0:
        raise cd.BadRequest("a mix weighs energy, latency or both")
    value = {
        "name": body.objective, "energy_weight": body.energy_weight,
        "latency_weight": body.latency_weight, "move_cost": body.move_cost,
    }  # fmt: skip
    row = session.get(CatalogSettingRow, "objective")
    if row is None:
        session.add(CatalogSettingRow(key="objective", value=value))
    else:
        row.value = value
    session.commit()
    return get_settings(session)
