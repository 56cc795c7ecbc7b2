"""REST API of the catalog: /api/v1/catalog/... (mounted by the platform).

Service providers (the seed's stakeholders, section II):

    POST /chains                          publish a chain (a YAML descriptor): a new
                                          version; 422 when invalid, each fault in
                                          `errors` (loc: body, descriptor, its key)
    GET  /chains/{name}/versions          its versions
    GET  /chains/{name}/versions/{v}      one version: descriptor and templates
    GET  /providers/{provider}/subscriptions   its subscriptions, abstract locations only

End users:

    GET  /services                        the catalog: each chain's newest version
    POST /subscriptions                   subscribe (placed, instances asked for);
                                          409 saying the engine's refusals; the first
                                          makes the user's Personal Network, and
                                          `pn_devices` says which devices join it
    PUT  /users/{user}/devices            which of the user's devices join their PN (and
                                          are their subscriptions' `devices`)
    GET  /subscriptions?user=U            a user's subscriptions (with each decision's why)
    GET  /subscriptions/{sid}             one, with its decisions
    POST /subscriptions/{sid}/upgrade     move to another (default: the newest) version
    DELETE /subscriptions/{sid}           unsubscribe (its instances stop)
    GET  /positions                       where each user the asker may know of is, with
                                          history (the operator: all; a user: themself;
                                          a provider: its subscribers, abstract sites)
    GET  /positions/{user}                where the user is (each source, why it won), and
                                          their history; providers: abstract sites
    GET  /placements                      active subscriptions' blocks at abstract sites
                                          ("edge near you"): a provider's, a user's own
    GET  /where                           the page of both (templates/where.html)

The operator:

    GET/PUT /settings                     the placement objective and move cost
    POST /consolidate                     one night-consolidation pass at an hour of a
                                          simulated day, under a load curve (night.py)
    GET  /consolidation                   what it switched off, its last decisions, the day
    PUT/DELETE /night                     a compressed day (a curve, seconds per day) the
                                          catalog's `night` loop follows, or none

Reads never write: a GET reads the tables; placing, moving and recording
positions happen in POSTs and in the conduit's loop. Every error answer is the
API's one error body (orchestrator/api/errors.py).

Who may call each route is the contract's (__init__.py). A signed-in provider names
only itself in ``provider`` (the identity layer refuses another's name, in a body or
the path), a user only itself in ``user``; a user lists, reads, upgrades and ends
only its own subscriptions (another's is a 404).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path as PathLib
from typing import Annotated, Any, Literal, Self

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from pydantic import Field, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from netfate.contract import Capabilities, Role, Service
from netfate.orchestrator.api.deps import CapabilitiesDep, NotifierDep, SessionDep
from netfate.orchestrator.api.errors import errors, invalid
from netfate.orchestrator.api.schemas import INT32_MAX, Strict
from netfate.orchestrator.identity import Principal, PrincipalDep
from netfate.orchestrator.nfv.coordinator import BUILTIN_DESCRIPTORS
from netfate.orchestrator.nfv.errors import Conflict, NotFound
from netfate.orchestrator.notify import Notifier
from netfate.store.events import record
from netfate.store.tables import DescriptorRow, InstanceRow, NodeRow
from netfate.vnf import registry

from . import conduit as cd
from . import night, personal, templates, views, whereabouts
from .descriptor import NAME_RE, DescriptorError, Function
from .states import SubscriptionState
from .tables import (
    CatalogBlockRow,
    CatalogChainRow,
    CatalogDecisionRow,
    CatalogInstanceRow,
    CatalogSettingRow,
    CatalogSiteRow,
    CatalogSubscriptionRow,
)
from .whereabouts import Whereabouts

router = APIRouter()
TEMPLATES = PathLib(__file__).resolve().parent / "templates"
WHEREIS = Whereabouts()
"""The where-is service the API, the conduit and its own loop share."""
CONDUIT = cd.Conduit(locator=WHEREIS)
"""The conduit the API and the loop share (the platform's coordinator, the
where-is service)."""
NIGHT = night.NightLoop(CONDUIT)
"""The night loop: a consolidation pass at each hour of the operator's simulated day."""
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$"
MAC = r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$"
# Path and query parameters fit the columns they are looked up in (tables.py).
ChainName = Annotated[str, Path(min_length=1, max_length=48, description="The chain's name")]
Version = Annotated[int, Path(ge=1, le=INT32_MAX, description="The chain's version")]
SubscriptionId = Annotated[str, Path(min_length=1, max_length=16, description="Its id")]
UserName = Annotated[str, Path(min_length=1, max_length=64, description="The user")]
ProviderName = Annotated[str, Path(min_length=1, max_length=64, description="The provider")]


def descriptor_errors(e: DescriptorError) -> RequestValidationError:
    """A 422 naming each fault of a descriptor by its key in the YAML document."""
    return invalid({("body", "descriptor", key): msg for key, msg in e.errors.items()})


# ------------------------------------------------------------------ providers


def functions(request: Request, session: Session) -> dict[str, Function]:
    """The functions a chain may use: those the registered services declare in their
    contracts, and the platform's own; with the figures the platform holds."""
    services: tuple[Service, ...] = tuple(getattr(request.app.state, "services", ()))
    names = {str(d["name"]) for svc in services for d in svc.descriptors}
    names |= {str(d["name"]) for d in BUILTIN_DESCRIPTORS}
    allowed: frozenset[str] = getattr(request.app.state, "functions", frozenset())
    out = {}
    for d in session.scalars(select(DescriptorRow).where(DescriptorRow.name.in_(sorted(names)))):
        # A row whose function is not a registered one (the database says so) is no
        # function a chain may use: its block is refused as unknown.
        with contextlib.suppress(registry.UnknownFunction):
            registry.resolve(d.function, allowed)
            out[d.name] = Function(d.name, float(d.cpu), float(d.memory_mb))
    return out


class PublishIn(Strict):
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


@router.post("/chains", status_code=201, responses=errors(409))
def publish(body: PublishIn, request: Request, session: SessionDep) -> dict[str, Any]:
    """Publish a chain version: checked, then decomposed into stored templates (one
    per block and per relationship). Nothing is allocated until a user subscribes."""
    try:
        row = templates.publish(
            session, body.provider, body.descriptor, functions(request, session)
        )
    except DescriptorError as e:  # Impossible too: keyed the same way, said "impossible: ..."
        raise descriptor_errors(e) from None
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


@router.get("/chains/{name}/versions", responses=errors(404))
def versions(name: ChainName, session: SessionDep) -> list[dict[str, Any]]:
    return [chain_out(session, c) for c in _versions(session, name)]


@router.get("/chains/{name}/versions/{version}", responses=errors(404))
def version(name: ChainName, version: Version, session: SessionDep) -> dict[str, Any]:
    for c in _versions(session, name):
        if c.version == version:
            return chain_out(session, c)
    raise NotFound(f"chain {name!r} has no version {version}")


@router.get("/providers/{provider}/subscriptions", responses=errors(404))
def provider_view(provider: ProviderName, session: SessionDep) -> list[dict[str, Any]]:
    """The provider's subscriptions, where its blocks run given as abstract sites
    (a tier and an opaque name): the infrastructure stays hidden (seed, II). A
    provider is known once it has published a chain."""
    published = select(CatalogChainRow.id).where(CatalogChainRow.provider == provider)
    if session.scalar(published.limit(1)) is None:
        raise NotFound(f"provider {provider!r} has published no chain")
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


class SubscribeIn(Strict):
    user: str = Field(pattern=_ID)
    chain: str = Field(pattern=NAME_RE.pattern)
    version: int | None = Field(default=None, ge=1, le=INT32_MAX, description="Default: the newest")
    at: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="The node the user is attached to; default: where the platform saw "
        "them last (a RADIUS login, a device at a switch port)",
    )  # fmt: skip
    devices: list[Annotated[str, Field(pattern=MAC)]] = Field(
        default_factory=list, max_length=16,
        description="MAC addresses of the user's devices (a sighting places the user); "
        "with `pn_devices`, leave it out: it is then their MACs",
    )  # fmt: skip
    pn_devices: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=16,
        description="The user's devices (host names or MACs) that join their Personal "
        "Network, the ones on its LAN; they are then the subscription's `devices` too. "
        "Left out: the PN keeps every host of its LAN",
    )  # fmt: skip


class DevicesIn(Strict):
    devices: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        max_length=16,
        description="The user's devices (host names or MACs) that join their Personal "
        "Network; they become every active subscription's `devices`",
    )


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


@router.post("/subscriptions", status_code=201, responses=errors(404, 409))
def subscribe(
    body: SubscribeIn, session: SessionDep, notifier: NotifierDep, caps: CapabilitiesDep
) -> dict[str, Any]:
    """Place and create a subscription. A user without a Personal Network gets one at
    the node they are at (when a registered service provides PNs: personal.py), made
    first so that placement counts its vHG; `personal_network` and `why` say what was
    done. A refused placement keeps neither."""
    chain = _chain(session, body.chain, body.version)
    at = body.at if body.at is not None else _where_is(session, body.user, body.devices)
    if at is None:
        why = "required: the platform has not seen this user (no login, no device)"
        raise invalid({("body", "at"): why})
    if session.get(NodeRow, at) is None:
        raise invalid({("body", "at"): f"unknown node {at!r}"})
    pn = personal.ensure(session, caps, body.user, at)
    devices, nodes = body.devices, set(pn.nodes)
    if body.pn_devices is not None:
        joined = _join(session, caps, body.user, body.pn_devices, "pn_devices")
        if body.devices and sorted({m.lower() for m in body.devices}) != joined.macs:
            session.rollback()
            why = (
                f"with pn_devices, the devices are theirs ({', '.join(joined.macs)}): leave it out"
            )
            raise invalid({("body", "devices"): why})
        devices, nodes = joined.macs, nodes | joined.nodes
        pn = dataclasses.replace(pn, pn=joined.pn)
    try:
        row, _d, touched = CONDUIT.subscribe(session, body.user, chain, at, devices)
    except cd.Refused as e:
        raise _refused(session, e) from None
    row.why = f"{row.why}; {pn.why}"
    out = _committed(session, notifier, row, touched | nodes)
    out["personal_network"] = pn.out()
    return out


def _join(
    session: Session, caps: Capabilities, user: str, refs: list[str], key: str
) -> personal.Joined:
    """personal.join, its refusal a keyed 422 (at ``body.KEY.I``) that keeps nothing."""
    try:
        return personal.join(session, caps, user, refs)
    except personal.Unjoinable as e:
        session.rollback()
        where = {("body", key, *(() if i is None else (i,))): v for i, v in e.problems.items()}
        raise invalid(where) from None


@router.put("/users/{user}/devices", responses=errors(404))
def set_devices(
    user: Annotated[str, Path(pattern=_ID)],
    body: DevicesIn,
    session: SessionDep,
    notifier: NotifierDep,
    caps: CapabilitiesDep,
) -> dict[str, Any]:
    """Which of the user's devices join their Personal Network (names or MACs); each
    of their active subscriptions then lists those devices' MACs (where the user is,
    and what the chain steers, follow on the conduit's next pass). A keyed 422 (an
    unknown device, another user's, no PN) changes nothing."""
    joined = _join(session, caps, user, body.devices, "devices")
    subs = session.scalars(
        select(CatalogSubscriptionRow)
        .where(
            CatalogSubscriptionRow.user == user,
            CatalogSubscriptionRow.state == SubscriptionState.ACTIVE.value,
        )
        .order_by(CatalogSubscriptionRow.created_at)
    ).all()
    for sub in subs:
        sub.devices = joined.macs
    session.commit()
    notifier.notify(joined.nodes)
    return {"user": user, "devices": joined.devices, "macs": joined.macs,
            "subscriptions": [s.id for s in subs], "pn": joined.pn}  # fmt: skip


def _committed(
    session: Session, notifier: Notifier, row: CatalogSubscriptionRow, touched: set[str]
) -> dict[str, Any]:
    """The subscription as the change left it; committed, and its nodes' agents woken."""
    out = subscription_out(session, row, history=True)
    session.commit()
    notifier.notify(touched)
    return out


def _refused(session: Session, e: cd.Refused) -> HTTPException:
    """409 saying the engine's refusals (each one's binding constraint, and whether it
    is proven); nothing of the attempt is kept but its event."""
    session.rollback()
    record(session, e.event)
    session.commit()
    proven = all(r["proven"] for r in e.refusals)
    return HTTPException(409, detail=f"{e} ({'proven' if proven else 'not proven'})")


@router.get("/subscriptions")
def list_subscriptions(
    session: SessionDep,
    p: PrincipalDep,
    user: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> list[dict[str, Any]]:
    """Subscriptions, of one user or everyone's; a user's own only."""
    if p.role is Role.USER:
        user = p.name
    q = select(CatalogSubscriptionRow).order_by(CatalogSubscriptionRow.created_at)
    if user is not None:
        q = q.where(CatalogSubscriptionRow.user == user)
    return [subscription_out(session, s) for s in session.scalars(q)]


def _own_subscription(session: Session, p: Principal, sid: str) -> CatalogSubscriptionRow:
    """The subscription; another user's is as if it did not exist (404)."""
    row = cd.get_subscription(session, sid)
    if not p.owns(row.user):
        raise NotFound(f"unknown subscription {sid!r}")
    return row


@router.get("/subscriptions/{sid}", responses=errors(404))
def get_subscription(sid: SubscriptionId, session: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    return subscription_out(session, _own_subscription(session, p, sid), history=True)


class UpgradeIn(Strict):
    version: int | None = Field(default=None, ge=1, le=INT32_MAX, description="Default: the newest")


@router.post("/subscriptions/{sid}/upgrade", responses=errors(404, 409))
def upgrade(
    sid: SubscriptionId,
    body: UpgradeIn,
    session: SessionDep,
    notifier: NotifierDep,
    p: PrincipalDep,
) -> dict[str, Any]:
    row = _own_subscription(session, p, sid)
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
        raise _refused(session, e) from None
    return _committed(session, notifier, row, touched)


@router.delete("/subscriptions/{sid}", responses=errors(404, 409))
def unsubscribe(
    sid: SubscriptionId, session: SessionDep, notifier: NotifierDep, p: PrincipalDep
) -> dict[str, Any]:
    row = _own_subscription(session, p, sid)
    if row.state != SubscriptionState.ACTIVE.value:
        raise Conflict(f"subscription {sid} is {row.state}")
    return _committed(session, notifier, row, CONDUIT.unsubscribe(session, row))


HistoryRows = Annotated[
    int, Query(ge=0, le=whereabouts.HISTORY_ROWS, description="History entries per user")
]


PAGE_USERS = 1000
"""The most users one answer of GET /positions holds (`limit`)."""


@router.get("/positions")
def positions(
    session: SessionDep,
    p: PrincipalDep,
    history: HistoryRows = 20,
    limit: Annotated[int, Query(ge=1, le=PAGE_USERS, description="Users per answer")] = 200,
    after: Annotated[
        str | None,
        Query(min_length=1, max_length=64, description="The page after this user (`next`)"),
    ] = None,
) -> dict[str, Any]:
    """Where each user the asker may know of is now (and from which source: login,
    host-seen or lease), and their history (newest first, `history` entries): the
    operator every user the catalog knows, with the lease lines refused; a user
    themself only; a provider its subscribers only, with abstract sites for nodes
    and no details (views.py). In pages of `limit` users by name: `next` is the
    `after` of the next page (null on the last). The page /where shows it."""
    users = views.visible_users(session, p, WHEREIS)
    names = [u for u in users if after is None or u > after]  # visible_users is sorted
    page = {u: users[u] for u in names[:limit]}
    out, refused = views.positions(session, p, WHEREIS, page, history)
    more = len(names) > limit
    return {
        "at": time.time(),
        "users": out,
        "next": names[limit - 1] if more else None,
        "total": len(users),
        **({"refused": refused} if p.operator else {}),
    }


@router.get("/positions/{user}", responses=errors(404))
def position(user: UserName, session: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    """Where the user is now, what each source says of them, and their history
    (newest first): the where-is service (whereabouts.py). The operator asks of
    anyone, and sees the lease lines refused; a user of themself only; a provider
    of a user subscribed to one of its chains, with abstract sites for nodes and
    no details (device MACs, function names) nor history reasons. 404 when nothing
    is known of the user (or they are not the asker's to know)."""
    if p.role is Role.PROVIDER:
        theirs = session.scalar(
            select(CatalogSubscriptionRow.id)
            .join(CatalogChainRow, CatalogChainRow.id == CatalogSubscriptionRow.chain)
            .where(CatalogSubscriptionRow.user == user, CatalogChainRow.provider == p.name)
            .limit(1)
        )
        if theirs is None:
            raise NotFound(f"nothing is known of user {user!r}")
    found, refused = views.positions(
        session, p, WHEREIS, {user: WHEREIS.devices(session, user)}, WHEREIS.history_rows
    )
    if not found:
        raise NotFound(f"nothing is known of user {user!r}")
    out = found[0]
    if p.operator:
        out["refused"] = refused
    return out


@router.get("/placements")
def placements(session: SessionDep, p: PrincipalDep) -> list[dict[str, Any]]:
    """Active subscriptions with abstract sites only (a site's opaque name, its tier,
    and a label relative to the subscription's user, e.g. "edge near you"): a
    provider's of its chains, a user's own, the operator's all (as the others see
    them; node names are in /subscriptions). Decisions' reasons in sites (views.py)."""
    return views.placements(session, p, WHEREIS)


@router.get("/where", response_class=HTMLResponse, include_in_schema=False)
def where_page() -> HTMLResponse:
    """The page of where each user is and where their services run (templates/where.html,
    static/where.js); its data is /positions and /placements, as the signed-in role
    may see them."""
    from netfate.web import CSP  # the web layer's policy (imported late, as sharing does)

    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}  # fmt: skip
    return HTMLResponse((TEMPLATES / "where.html").read_text(encoding="utf-8"), headers=headers)


# ------------------------------------------------------------------ the operator


class SettingsIn(Strict):
    objective: Literal["consolidation", "latency", "mix"] = "mix"
    energy_weight: float = Field(default=1.0, ge=0, le=1e6)
    latency_weight: float = Field(default=1.0, ge=0, le=1e6)
    move_cost: float = Field(default=1.0, ge=0, le=1e9)

    @model_validator(mode="after")
    def _weighs_something(self) -> Self:
        if self.objective == "mix" and self.energy_weight == 0 and self.latency_weight == 0:
            raise ValueError("a mix weighs energy, latency or both")
        return self


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


Cores = Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)]


class NodeCurve(Strict):
    low: Cores = Field(description="Background CPU (cores) at night")
    high: Cores = Field(description="Background CPU (cores) at the peak hour")


Hour = Annotated[float, Field(ge=0, lt=24, allow_inf_nan=False)]


class CurveIn(Strict):
    curve: dict[Annotated[str, Field(min_length=1, max_length=64)], NodeCurve] = Field(
        max_length=10000, description="Node -> its load curve"
    )
    peak_hour: Hour = 15.0

    def checked(self, session: Session) -> night.LoadCurve:
        known = set(session.scalars(select(NodeRow.name)))
        bad: dict[tuple[str | int, ...], str] = {
            ("body", "curve", n): "unknown node" for n in self.curve if n not in known
        }
        bad |= {
            ("body", "curve", n): "low above high" for n, c in self.curve.items() if c.low > c.high
        }
        if bad:
            raise invalid(bad)
        return night.LoadCurve({n: (c.low, c.high) for n, c in self.curve.items()}, self.peak_hour)


class NightIn(CurveIn):
    hour: Hour = Field(description="Hour of the (simulated) day")


class DayIn(CurveIn):
    day_s: float = Field(
        default=240.0, gt=0, le=7 * 86400, allow_inf_nan=False,
        description="Wall seconds a simulated day lasts",
    )  # fmt: skip
    start_hour: Hour = 12.0


@router.post("/consolidate")
def consolidate(body: NightIn, session: SessionDep, notifier: NotifierDep) -> dict[str, Any]:
    """One pass of the night consolidation (night.py) at `hour` under the load curve:
    nodes switched off where what they host fits elsewhere within the SLAs, or on
    again; each decision with its why."""
    decisions, touched = night.consolidate(session, CONDUIT, body.checked(session), body.hour)
    out = {"hour": body.hour, "decisions": [d.to_dict() for d in decisions]}
    session.commit()
    notifier.notify(touched)
    return {**out, **night.state(session)}


@router.get("/consolidation")
def consolidation(session: SessionDep) -> dict[str, Any]:
    """The nodes the consolidation switched off (node -> why) and its last decisions
    (`recent`)."""
    return night.state(session)


@router.put("/night")
def put_night(body: DayIn, session: SessionDep) -> dict[str, Any]:
    """A compressed day from now: the catalog's `night` loop runs a consolidation pass
    at each of its hours under the curve."""
    night.set_day(session, body.checked(session), body.day_s, body.start_hour)
    session.commit()
    return night.state(session)


@router.delete("/night")
def delete_night(session: SessionDep) -> dict[str, Any]:
    """No simulated day: the loop stops deciding (what is off stays off until a
    placement needs it, or the operator switches it on)."""
    night.set_day(session, None)
    session.commit()
    return night.state(session)
