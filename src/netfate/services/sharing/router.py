"""REST API of the sharing service, mounted by the platform under /api/v1/sharing.

`by` names the PN owner acting, and the workflow checks that this owner may do it
(only the recipient accepts or declines; either owner revokes). An end user's
request may name only that user (`by`, `owner`, `{email}`, `?pn=`: the platform's
identity layer refuses any other); a user lists and reads only the shares it gives
or receives.

Reads only read: what converges without anyone asking (intents once a VP has
its port, accepted -> active, failed shares) is the service's reconcile loop
(reconcile.py). Writes converge what they changed at once (the intents).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.contract import Role
from netfate.orchestrator.api.deps import NotifierDep, SessionDep
from netfate.orchestrator.api.errors import errors, invalid
from netfate.orchestrator.api.schemas import INT32_MAX
from netfate.orchestrator.identity import PrincipalDep
from netfate.vnf.configs import IPv4
from netfate.vnf.vhg.config import (
    MAX_ALLOW,
    MAX_FORWARDS,
    MAX_STATIC,
    AllowConfig,
    ForwardConfig,
    StaticLeaseConfig,
)

from . import gateway, network, provided
from . import workflow as wf
from .reconcile import sync_intents
from .tables import PersonalNetworkRow

router = APIRouter()
ShareId = Annotated[int, Path(ge=1, le=INT32_MAX, description="The share's id")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PNCreate(_In):
    email: str = Field(
        max_length=254,
        description="The owner's account name (an email, or any other account): the PN's id",
    )
    node: str = Field(max_length=64, description="The edge node whose LAN is the PN")
    subnet: str | None = Field(default=None, description="Which LAN of the node (default: first)")
    name: str = Field(default="", max_length=64)
    vhg: bool = Field(default=False, description="Also launch the PN's vHG (DHCP, NAT, firewall)")


class DeviceIn(_In):
    name: str = Field(max_length=64)
    ip: str = Field(max_length=64)
    kind: str = Field(default="virtual", max_length=32)
    mac: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


class InventoryIn(_In):
    devices: list[dict[str, Any]] = Field(max_length=4096)


class ShareIn(_In):
    owner: str = Field(max_length=254, description="PN1: the owner sharing the device")
    device: str = Field(max_length=64, description="Device name or address in PN1")
    recipient: str = Field(
        max_length=254,
        description="PN2: its id (its owner's account name) or an invitation code its owner gave "
        "(e.g. ABCD-EFGH-JKMN; used up by this share)",
    )
    http_ports: list[int] = Field(
        default_factory=list,
        max_length=8,
        description="An override: ports the VP's ALG proxies from the start. Without it, "
        "the ports the device announces (LOCATION, SRV, URLs in its descriptions) are "
        "learned; the share's `ports` shows both",
    )


class InvitationIn(_In):
    by: str = Field(max_length=254, description="The PN owner inviting (the future recipient)")
    ttl_s: float = Field(
        default=wf.INVITATION_TTL_S, ge=60, le=30 * 86400,
        description="How long the code can be used (seconds; default a week)",
    )  # fmt: skip


class DhcpIn(_In):
    first: IPv4 = Field(description="The pool's first address")
    last: IPv4 = Field(description="The pool's last address")
    lease_seconds: int = Field(default=gateway.LEASE_SECONDS, ge=120, le=365 * 86400)


class GatewayIn(_In):
    """A PN's gateway settings; a part left out keeps what it was."""

    dhcp: DhcpIn | None = None
    forwards: list[ForwardConfig] | None = Field(
        default=None, max_length=MAX_FORWARDS,
        description="Port forwards: outside the PN, the vHG's address on `port` reaches "
        "`to`:`to_port` (the same port when left out)",
    )  # fmt: skip
    allow: list[AllowConfig] | None = Field(
        default=None, max_length=MAX_ALLOW,
        description="Firewall: new connections into the PN that are let in (to one device, "
        "or to any)",
    )  # fmt: skip
    static: list[StaticLeaseConfig] | None = Field(
        default=None, max_length=MAX_STATIC,
        description="Static DHCP leases: the device with `mac` always gets `ip` (in the "
        "pool or not)",
    )  # fmt: skip


class Actor(_In):
    by: str = Field(max_length=254, description="The PN owner doing it")


@router.post("/pns", status_code=201, responses=errors(400, 404, 409))
def create_pn(body: PNCreate, session: SessionDep, notifier: NotifierDep) -> dict[str, Any]:
    try:
        pn = wf.create_pn(session, body.email, body.node, body.subnet, body.name)
    except ValueError as e:
        raise HTTPException(400, detail=str(e)) from None
    touched: set[str] = set()
    session.flush()
    network.withdraw_lans(session)  # the PN's LAN is isolated from now on
    if body.vhg:
        _, touched = wf.start_vhg(session, pn)
    session.commit()
    notifier.notify(touched)
    return provided.pn_view(session, pn)


@router.get("/pns")
def list_pns(session: SessionDep) -> list[dict[str, Any]]:
    rows = session.scalars(select(PersonalNetworkRow).order_by(PersonalNetworkRow.email))
    return [provided.pn_view(session, pn) for pn in list(rows)]


@router.get("/pns/{email}", responses=errors(404))
def get_pn(email: str, session: SessionDep) -> dict[str, Any]:
    return provided.pn_view(session, wf.get_pn(session, email))


@router.get("/pns/{email}/devices", responses=errors(404))
def devices(email: str, session: SessionDep) -> list[dict[str, Any]]:
    pn = wf.get_pn(session, email)
    return [d.to_dict() for d in wf.inventory(session, pn)]


def _resync(session: Session, pn: PersonalNetworkRow, notifier: Any) -> None:
    """Shares into this PN follow its devices (new aliases, freed aliases), then commit."""
    session.flush()
    touched = wf.resync(session, pn)
    session.commit()
    notifier.notify(touched)
    sync_intents(session)


@router.post("/pns/{email}/devices", status_code=201, responses=errors(400, 404, 409))
def declare_device(
    email: str, body: DeviceIn, session: SessionDep, notifier: NotifierDep
) -> dict[str, Any]:
    pn = wf.get_pn(session, email)
    try:
        wf.declare_device(session, pn, body.name, body.ip, body.kind, body.mac)
    except ValueError as e:
        raise HTTPException(400, detail=str(e)) from None
    _resync(session, pn, notifier)
    return provided.pn_view(session, pn)


@router.put("/pns/{email}/inventory", responses=errors(400, 404))
def report_inventory(
    email: str, body: InventoryIn, session: SessionDep, notifier: NotifierDep
) -> dict[str, Any]:
    """What the PN's vHG sees: DHCP leases and neighbours (replaces its previous report)."""
    pn = wf.get_pn(session, email)
    try:
        n = wf.report_inventory(session, pn, body.devices)
    except (KeyError, ValueError) as e:
        raise HTTPException(400, detail=f"bad device entry: {e}") from None
    _resync(session, pn, notifier)
    return {"accepted": n, "devices": [d.to_dict() for d in wf.inventory(session, pn)]}


@router.post("/pns/{email}/vhg", status_code=201, responses=errors(404, 409))
def start_vhg(email: str, session: SessionDep, notifier: NotifierDep) -> dict[str, Any]:
    pn = wf.get_pn(session, email)
    inst, touched = wf.start_vhg(session, pn)
    session.commit()
    notifier.notify(touched)
    sync_intents(session)  # its paths follow once it runs on its port (the loop)
    return {"pn": pn.email, "vhg_instance": inst.id, "node": inst.node, "ip": inst.ip}


@router.get("/pns/{email}/gateway", responses=errors(404))
def get_gateway(email: str, session: SessionDep) -> dict[str, Any]:
    """The PN's gateway settings: its LAN, its vHG, DHCP, port forwards, firewall."""
    return gateway.view(session, wf.get_pn(session, email))


@router.put("/pns/{email}/gateway", responses=errors(404, 409))
def set_gateway(
    email: str, body: GatewayIn, session: SessionDep, notifier: NotifierDep, who: PrincipalDep
) -> dict[str, Any]:
    """New gateway settings; a live vHG takes them in place. 422 names each refused
    field (an address outside the PN, a port forwarded twice, a pool over an address
    in use) and then nothing changes."""
    pn = wf.get_pn(session, email)
    changes: dict[str, Any] = {}
    if body.dhcp is not None:
        changes |= {"dhcp_first": body.dhcp.first, "dhcp_last": body.dhcp.last,
                    "lease_seconds": body.dhcp.lease_seconds}  # fmt: skip
    for key in gateway.RULES:
        rules = getattr(body, key)
        if rules is not None:
            changes[key] = [r.model_dump(exclude_none=True) for r in rules]
    try:
        touched = wf.set_gateway(session, pn, changes, who.name)
    except gateway.Invalid as e:
        session.rollback()
        raise invalid({("body", *k): v for k, v in e.problems.items()}) from None
    session.commit()
    notifier.notify(touched)
    return gateway.view(session, pn)


# ------------------------------------------------------------------ invitations


@router.post("/invitations", status_code=201, responses=errors(404, 409))
def invite(body: InvitationIn, session: SessionDep) -> dict[str, Any]:
    """A code to give someone: a share they make with it comes to `by`'s PN. 404: no
    such PN; 409: too many unused codes."""
    inv = wf.create_invitation(session, wf.get_pn(session, body.by), body.ttl_s)
    session.commit()
    return wf.invitation_view(inv)


@router.get("/invitations", responses=errors(404))
def invitations(
    session: SessionDep,
    pn: str = Query(max_length=254, description="The PN whose invitations these are"),
) -> list[dict[str, Any]]:
    return [wf.invitation_view(i) for i in wf.list_invitations(session, wf.get_pn(session, pn))]


# ------------------------------------------------------------------ shares


@router.post("/shares", status_code=201, responses=errors(400, 403, 404, 409))
def request_share(body: ShareIn, session: SessionDep) -> dict[str, Any]:
    """400: a recipient that is neither a PN id nor a code; 403: not the owner's
    device; 404: unknown PN or invitation code; 409: already shared, or the code was
    used or has expired (nothing changes: the code stays as it was)."""
    if any(not 0 < p < 65536 for p in body.http_ports):
        raise HTTPException(422, detail="http_ports: ports are 1-65535")
    sh = wf.request_share(session, body.owner, body.device, body.recipient, body.http_ports)
    session.commit()
    return wf.share_view(session, sh, with_history=True)


@router.get("/shares")
def list_shares(
    session: SessionDep,
    who: PrincipalDep,
    pn: str | None = Query(None, description="Only shares this PN gives or receives"),
) -> list[dict[str, Any]]:
    if who.role is Role.USER:
        pn = who.name  # a user's own only
    return [wf.share_view(session, sh) for sh in wf.list_shares(session, pn)]


@router.get("/shares/{sid}", responses=errors(404))
def get_share(sid: ShareId, session: SessionDep, who: PrincipalDep) -> dict[str, Any]:
    sh = wf.get_share(session, sid)
    if who.role is Role.USER and who.name not in (sh.owner, sh.recipient):
        raise HTTPException(404, detail=f"unknown share {sid}")  # as if it did not exist
    return wf.share_view(session, sh, with_history=True)


@router.post("/shares/{sid}/accept", responses=errors(400, 403, 404, 409))
def accept(sid: ShareId, body: Actor, session: SessionDep, notifier: NotifierDep) -> dict[str, Any]:
    sh, touched = wf.accept(session, sid, body.by)
    session.commit()
    notifier.notify(touched)
    sync_intents(session)
    return wf.share_view(session, sh, with_history=True)


@router.post("/shares/{sid}/decline", responses=errors(403, 404, 409))
def decline(sid: ShareId, body: Actor, session: SessionDep) -> dict[str, Any]:
    sh = wf.decline(session, sid, body.by)
    session.commit()
    return wf.share_view(session, sh, with_history=True)


@router.post("/shares/{sid}/revoke", responses=errors(403, 404, 409))
def revoke(sid: ShareId, body: Actor, session: SessionDep, notifier: NotifierDep) -> dict[str, Any]:
    sh, touched = wf.revoke(session, sid, body.by)
    session.commit()
    notifier.notify(touched)
    sync_intents(session)
    return wf.share_view(session, sh, with_history=True)


def _html(name: str) -> HTMLResponse:
    from netfate.web import CSP

    from .web import render_page

    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}  # fmt: skip
    return HTMLResponse(render_page(name), headers=headers)


@router.get("/page", response_class=HTMLResponse, include_in_schema=False)
def page() -> HTMLResponse:
    """The owner's vHG page (devices, details, Share; pending requests to accept)."""
    return _html("page.html")


@router.get("/gateway-page", response_class=HTMLResponse, include_in_schema=False)
def gateway_page() -> HTMLResponse:
    """The gateway settings page (LAN, DHCP, port forwards, firewall)."""
    return _html("gateway.html")
