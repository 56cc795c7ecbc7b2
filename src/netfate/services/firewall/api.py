"""REST API of the firewall service: /api/v1/firewall/... (tables, users, rules, RADIUS).

Mounted by the platform at the service's prefix (its contract, __init__.py);
/api/v1/firewall/... is the earlier prefix, kept as an alias."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Body, FastAPI, HTTPException, Request
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select

from netfate.model.secrets import redact, restore
from netfate.orchestrator.api.deps import NotifierDep, SessionDep
from netfate.orchestrator.api.errors import errors, invalid
from netfate.services.firewall import policy, userpage
from netfate.services.firewall.passwords import hash_password
from netfate.services.firewall.radius import RadiusService
from netfate.services.firewall.tables import (
    FirewallAccountingRow,
    FirewallForwardingRow,
    FirewallFunctionRow,
    FirewallRadiusClientRow,
    FirewallRadiusListenerRow,
    FirewallUserRow,
)
from netfate.store.events import record_event
from netfate.vnf.firewall.config import AccountingConfig
from netfate.vnf.firewall.rules import RuleError

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The RADIUS server lives as long as the app (the contract's lifespan)."""
    svc = RadiusService(app.state.db, getattr(app.state, "notifier", None))
    app.state.firewall_radius = svc
    await svc.start()
    try:
        yield
    finally:
        await svc.stop()


router = APIRouter()


def _radius(request: Request) -> RadiusService:
    svc = getattr(request.app.state, "firewall_radius", None)
    if not isinstance(svc, RadiusService):
        raise HTTPException(503, detail="the RADIUS server is not running")
    return svc


class UserIn(BaseModel):
    name: str = Field(pattern=NAME_RE)
    password: str = Field(min_length=1, max_length=128)
    functions: list[str] = Field(default_factory=lambda: ["firewall"], max_length=16)
    host: str | None = Field(default=None, max_length=64)
    mac: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$")
    ip: str | None = Field(default=None, max_length=64)
    idle_timeout: int = Field(default=60, ge=1, le=86400 * 7)
    session_timeout: int = Field(default=3600, ge=1, le=86400 * 7)
    rules: dict[str, Any] | None = None


class UserPatch(BaseModel):
    password: str | None = Field(default=None, min_length=1, max_length=128)
    functions: list[str] | None = Field(default=None, max_length=16)
    host: str | None = Field(default=None, max_length=64)
    ip: str | None = Field(default=None, max_length=64)
    idle_timeout: int | None = Field(default=None, ge=1, le=86400 * 7)
    session_timeout: int | None = Field(default=None, ge=1, le=86400 * 7)


class ClientIn(BaseModel):
    address: str = Field(max_length=64, description="IP address or subnet (CIDR) of the NAS")
    secret: str = Field(min_length=1, max_length=128)
    name: str = Field(default="", max_length=64)


class ListenerIn(BaseModel):
    address: str = Field(max_length=64)
    port: int = Field(ge=0, le=65535)
    netns: str | None = Field(default=None, max_length=128)
    advertise: str | None = Field(default=None, max_length=80)


def user_out(u: FirewallUserRow) -> dict[str, Any]:
    return {
        "name": u.name,
        "functions": u.functions,
        "host": u.host,
        "mac": u.mac,
        "ip": u.ip,
        "status": u.status,
        "access_node": u.access_node,
        "logged_in_at": u.logged_in_at,
        "last_packet_at": u.last_packet_at,
        "idle_timeout": u.idle_timeout,
        "session_timeout": u.session_timeout,
        "rules_version": u.rules_version,
        "counters": u.counters,
    }


def fn_out(f: FirewallFunctionRow) -> dict[str, Any]:
    return {
        "name": f.name,
        "kind": f.kind,
        "user": f.user,
        "instance": f.instance,
        "active": f.active,
        "node": f.node,
        "users": f.users,
        "updated_at": f.updated_at,
        "detail": f.detail,
    }


def fwd_out(r: FirewallForwardingRow) -> dict[str, Any]:
    return {
        "user": r.user,
        "mac": r.mac,
        "ip": r.ip,
        "function_mac": r.function_mac,
        "instance": r.instance,
        "node": r.node,
        "intent": r.intent,
        "steering": r.steering,
    }


def _user(session: SessionDep, name: str, *, lock: bool = False) -> FirewallUserRow:
    """The user; with `lock`, its row locked until the transaction ends and read now,
    so two changes of one user (rules and their version) run one after the other."""
    q = select(FirewallUserRow).where(FirewallUserRow.name == name)
    if lock:
        q = q.with_for_update().execution_options(populate_existing=True)
    u = session.scalars(q).first()
    if u is None:
        raise HTTPException(404, detail=f"unknown user {name!r}")
    return u


@router.get("/tables")
def tables(session: SessionDep) -> dict[str, Any]:
    """The three NFVI tables of the paper (I users, II functions, III forwarding)."""
    return {
        "users": [
            user_out(u)
            for u in session.scalars(select(FirewallUserRow).order_by(FirewallUserRow.name))
        ],
        "functions": [fn_out(f) for f in session.scalars(select(FirewallFunctionRow))],
        "forwarding": [fwd_out(r) for r in session.scalars(select(FirewallForwardingRow))],
    }


@router.get("/users")
def list_users(session: SessionDep) -> list[dict[str, Any]]:
    return [
        user_out(u) for u in session.scalars(select(FirewallUserRow).order_by(FirewallUserRow.name))
    ]


@router.post("/users", status_code=201, responses=errors(409))
def add_user(body: UserIn, session: SessionDep) -> dict[str, Any]:
    if session.get(FirewallUserRow, body.name) is not None:
        raise HTTPException(409, detail=f"user {body.name!r} exists")
    try:
        rules = policy.check_rules(body.rules or policy.DEFAULT_RULES).to_json()
    except (RuleError, policy.PolicyError) as e:
        raise HTTPException(422, detail=str(e)) from None
    u = FirewallUserRow(
        name=body.name,
        password_hash=hash_password(body.password),
        functions=body.functions,
        host=body.host,
        mac=body.mac.lower().replace("-", ":") if body.mac else None,
        ip=body.ip,
        status="offline",
        idle_timeout=body.idle_timeout,
        session_timeout=body.session_timeout,
        rules=rules,
        rules_version=1,
        counters={},
    )
    session.add(u)
    record_event(session, "UserRegistered", {"user": u.name})
    session.commit()
    return user_out(u)


@router.get("/users/{name}", responses=errors(404))
def get_user(name: str, session: SessionDep) -> dict[str, Any]:
    u = _user(session, name)
    return {**user_out(u), "rules": u.rules}


@router.patch("/users/{name}", responses=errors(404))
def patch_user(name: str, body: UserPatch, session: SessionDep) -> dict[str, Any]:
    u = _user(session, name, lock=True)
    if body.password is not None:
        u.password_hash = hash_password(body.password)
    for key in ("functions", "host", "ip", "idle_timeout", "session_timeout"):
        v = getattr(body, key)
        if v is not None:
            setattr(u, key, v)
    session.commit()
    return user_out(u)


@router.delete("/users/{name}", responses=errors(404))
def delete_user(name: str, session: SessionDep, notifier: NotifierDep) -> dict[str, Any]:
    u = _user(session, name, lock=True)
    touched = policy.release(session, u, "user deleted") if u.status == "online" else set()
    session.delete(u)
    session.commit()
    notifier.notify(touched)
    return {"deleted": name}


@router.get("/users/{name}/rules", responses=errors(404))
def get_rules(name: str, session: SessionDep) -> dict[str, Any]:
    u = _user(session, name)
    return {"version": u.rules_version, "rules": u.rules}


@router.put("/users/{name}/rules", responses=errors(404))
def put_rules(name: str, session: SessionDep, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """Replace the rule set whole. Validated first: on any fault nothing changes (422)."""
    u = _user(session, name, lock=True)
    try:
        policy.set_rules(session, u, body)
    except (RuleError, policy.PolicyError) as e:
        raise HTTPException(422, detail=str(e)) from None
    session.commit()
    return {"version": u.rules_version, "rules": u.rules}


@router.post("/users/{name}/logout", responses=errors(404))
def logout(name: str, session: SessionDep, notifier: NotifierDep) -> dict[str, Any]:
    u = _user(session, name, lock=True)
    touched = policy.release(session, u, "logged out") if u.status == "online" else set()
    session.commit()
    notifier.notify(touched)
    return user_out(u)


@router.get("/functions")
def functions(session: SessionDep) -> list[dict[str, Any]]:
    return [fn_out(f) for f in session.scalars(select(FirewallFunctionRow))]


@router.get("/forwarding")
def forwarding(session: SessionDep) -> list[dict[str, Any]]:
    return [fwd_out(r) for r in session.scalars(select(FirewallForwardingRow))]


@router.get("/accounting")
def accounting(session: SessionDep, user: str | None = None, limit: int = 100) -> list[Any]:
    q = (
        select(FirewallAccountingRow)
        .order_by(FirewallAccountingRow.id.desc())
        .limit(min(max(limit, 1), 1000))
    )
    if user:
        q = q.where(FirewallAccountingRow.user == user)
    return [
        {
            "at": r.at,
            "user": r.user,
            "session_id": r.session_id,
            "status": r.status,
            "nas": r.nas,
            "input_octets": r.input_octets,
            "output_octets": r.output_octets,
            "session_time": r.session_time,
        }
        for r in session.scalars(q)
    ]


@router.get("/settings")
def get_settings(session: SessionDep) -> dict[str, Any]:
    # The accounting server's secret is write-only (netfate.model.secrets).
    return {k: redact(policy.setting(session, k)) for k in ("steer_to", "accounting")}


@router.put("/settings")
def put_settings(session: SessionDep, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """steer_to: "host:NAME" or "instance:ID" (steering target), or null;
    accounting: {"server": "IP:PORT", "secret": "...", "interval": s} for firewalls
    (their configuration's ``accounting``: 422 naming the field it refuses)."""
    unknown = set(body) - {"steer_to", "accounting"}
    if unknown:
        raise HTTPException(422, detail=f"unknown settings {sorted(unknown)}")
    steer = body.get("steer_to")
    if steer is not None and (
        not isinstance(steer, str) or not re.match(r"^(host|instance):[A-Za-z0-9_.-]{1,64}$", steer)
    ):
        raise HTTPException(422, detail="steer_to: host:NAME or instance:ID")
    acct = body.get("accounting")
    if acct is not None:
        if not isinstance(acct, dict):
            raise HTTPException(422, detail="accounting: {server: 'IP:PORT', secret: '...'}")
        # A read shows the secret as HIDDEN: written back so, it keeps the stored one.
        acct = body["accounting"] = restore(acct, policy.setting(session, "accounting"))
        wrong: dict[tuple[str | int, ...], str] = {}
        if not isinstance(acct.get("secret"), str):
            wrong["body", "accounting", "secret"] = "a string is required"
        try:  # what each firewall's configuration takes (the agent refuses the rest)
            AccountingConfig.model_validate(acct)
        except ValidationError as e:
            for x in e.errors(include_url=False):
                wrong["body", "accounting", *x["loc"]] = x["msg"]
        if wrong:
            raise invalid(wrong)
    for k, v in body.items():
        policy.set_setting(session, k, v)
    session.commit()
    return get_settings(session)


@router.get("/radius/clients")
def list_clients(session: SessionDep) -> list[dict[str, str]]:
    return [
        {"address": c.address, "name": c.name}  # secrets are write-only
        for c in session.scalars(select(FirewallRadiusClientRow))
    ]


@router.post("/radius/clients", status_code=201)
def add_client(body: ClientIn, session: SessionDep, request: Request) -> dict[str, str]:
    try:
        ipaddress.ip_network(body.address, strict=False)
    except ValueError as e:
        raise HTTPException(422, detail=f"address: {e}") from None
    row = session.get(FirewallRadiusClientRow, body.address)
    if row is None:
        session.add(
            FirewallRadiusClientRow(address=body.address, secret=body.secret, name=body.name)
        )
    else:
        row.secret, row.name = body.secret, body.name
    session.commit()
    svc = getattr(request.app.state, "firewall_radius", None)
    if isinstance(svc, RadiusService):
        svc.reload_clients()
    return {"address": body.address, "name": body.name}


@router.delete("/radius/clients/{address:path}", responses=errors(404))
def delete_client(address: str, session: SessionDep, request: Request) -> dict[str, str]:
    row = session.get(FirewallRadiusClientRow, address)
    if row is None:
        raise HTTPException(404, detail=f"unknown client {address!r}")
    session.delete(row)
    session.commit()
    svc = getattr(request.app.state, "firewall_radius", None)
    if isinstance(svc, RadiusService):
        svc.reload_clients()
    return {"deleted": address}


@router.post("/radius/listeners", status_code=201, responses=errors(409, 503))
async def add_listener(body: ListenerIn, request: Request) -> dict[str, Any]:
    """Open a listener now (inside `netns` when given) and keep it across restarts."""
    svc = _radius(request)
    try:
        ipaddress.IPv4Address(body.address)  # the socket is AF_INET: no names, no v6
    except ValueError as e:
        raise HTTPException(422, detail=f"address: {e}") from None
    try:
        host, port = await svc.listen(body.address, body.port, body.netns)
    except (OSError, ValueError) as e:
        raise HTTPException(409, detail=f"cannot listen on {body.address}:{body.port}: {e}") from e

    def save() -> None:
        with svc.db.session() as s:
            s.add(
                FirewallRadiusListenerRow(
                    address=host, port=port, netns=body.netns, advertise=body.advertise
                )
            )

    import asyncio

    await asyncio.to_thread(save)
    return {"address": host, "port": port, "netns": body.netns}


@router.get("/radius/status", responses=errors(503))
def radius_status(request: Request) -> dict[str, Any]:
    svc = _radius(request)
    disconnect, nas_sessions = svc.dm_status()
    return {
        "listeners": [{"address": a, "port": p, "netns": ns} for (a, p, ns) in svc.transports],
        "counters": dict(svc.core.counters),
        "recent_drops": list(svc.dropped),
        # RFC 5176: the Disconnect-Requests sent and their outcomes, and the NAS
        # sessions remembered from accounting (the ones a release would end).
        "disconnect": disconnect,
        "nas_sessions": nas_sessions,
    }


# The user's own page (/firewall/me): sign in, see and edit one's rules.
router.include_router(userpage.router)
