"""REST API of the sharing service, mounted under /api/v1/sharing.

There is no user authentication in the platform yet: `by` names the PN owner
acting, and the workflow checks that this owner may do it (only the recipient
accepts or declines; either owner revokes).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.orchestrator.api.deps import NotifierDep, SessionDep

from . import workflow as wf
from .tables import PersonalNetworkRow, ShareRow

log = logging.getLogger("netfate.sharing")
router = APIRouter(prefix="/sharing", tags=["sharing"])


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PNCreate(_In):
    email: str = Field(max_length=254, description="The owner's email: the PN's id")
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
    recipient: str = Field(max_length=254, description="PN2's id (its owner's email)")
    http_ports: list[int] = Field(
        default_factory=list,
        max_length=8,
        description="The device's HTTP ports (e.g. a DLNA server's 8200): the VP's ALG "
        "rewrites the device's address in what it serves",
    )


class Actor(_In):
    by: str = Field(max_length=254, description="The PN owner doing it")


@router.post("/pns", status_code=201)
def create_pn(body: PNCreate, session: SessionDep, notifier: NotifierDep) -> dict[str, Any]:
    try:
        pn = wf.create_pn(session, body.email, body.node, body.subnet, body.name)
    except ValueError as e:
        raise HTTPException(400, detail=str(e)) from None
    touched: set[str] = set()
    if body.vhg:
        session.flush()
        _, touched = wf.start_vhg(session, pn)
    session.commit()
    notifier.notify(touched)
    return wf.pn_view(session, pn)


@router.get("/pns")
def list_pns(session: SessionDep) -> list[dict[str, Any]]:
    rows = session.scalars(select(PersonalNetworkRow).order_by(PersonalNetworkRow.email))
    return [wf.pn_view(session, pn) for pn in rows]


@router.get("/pns/{email}")
def get_pn(email: str, session: SessionDep) -> dict[str, Any]:
    return wf.pn_view(session, wf.get_pn(session, email))


@router.get("/pns/{email}/devices")
def devices(email: str, session: SessionDep) -> list[dict[str, Any]]:
    return [d.to_dict() for d in wf.inventory(session, wf.get_pn(session, email))]


def _resync(session: Session, pn: PersonalNetworkRow, notifier: Any) -> None:
    """Shares into this PN follow its devices (new aliases, freed aliases), then commit."""
    session.flush()
    rebuilt, touched = wf.resync(session, pn)
    session.commit()
    notifier.notify(touched)
    for sid, old_intent in rebuilt:
        if old_intent:
            _close_tunnel(session, ShareRow(id=sid, tunnel_intent=old_intent))


@router.post("/pns/{email}/devices", status_code=201)
def declare_device(
    email: str, body: DeviceIn, session: SessionDep, notifier: NotifierDep
) -> dict[str, Any]:
    pn = wf.get_pn(session, email)
    try:
        wf.declare_device(session, pn, body.name, body.ip, body.kind, body.mac)
    except ValueError as e:
        raise HTTPException(400, detail=str(e)) from None
    _resync(session, pn, notifier)
    return wf.pn_view(session, pn)


@router.put("/pns/{email}/inventory")
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


@router.post("/pns/{email}/vhg", status_code=201)
def start_vhg(email: str, session: SessionDep, notifier: NotifierDep) -> dict[str, Any]:
    pn = wf.get_pn(session, email)
    inst, touched = wf.start_vhg(session, pn)
    session.commit()
    notifier.notify(touched)
    return {"pn": pn.email, "vhg_instance": inst.id, "node": inst.node, "ip": inst.ip}


# ------------------------------------------------------------------ shares


def _refreshed(session: Session, sh: ShareRow, notifier: Any) -> ShareRow:
    touched = wf.refresh(session, sh)
    session.commit()
    if touched:
        notifier.notify(touched)
    if sh.state == "active" and sh.tunnel_intent is None:
        _open_tunnel(session, sh)
    return sh


def _open_tunnel(session: Session, sh: ShareRow) -> None:
    """Step 8 in the network: ask the SDN controller for a tunnel between the two EIs.

    The VXLAN itself runs inside the VPs; the intent lets its UDP flow cross
    switches that run in secure mode. When the controller refuses (or the SDN
    part is unavailable), the reason is kept in the share's detail.
    """
    intent_id = f"share-{sh.id}-overlay"
    body = {
        "kind": "tunnel",
        "id": intent_id,
        "a": f"instance:{sh.vp2_instance}",
        "b": f"instance:{sh.vp1_instance}",
        "protocol": "udp",
        "port": 4789,
    }
    try:
        from netfate.orchestrator.sdn.api import add_intent

        add_intent(session, body)
        sh.tunnel_intent = intent_id
        sh.detail = ""
    except HTTPException as e:
        session.rollback()
        sh.tunnel_intent = ""
        sh.detail = f"SDN tunnel intent not installed ({e.status_code}): {e.detail}"[:2000]
    except Exception as e:  # the SDN part is another engineer's, in progress
        session.rollback()
        log.exception("tunnel intent for share %s", sh.id)
        sh.tunnel_intent = ""
        sh.detail = f"SDN tunnel intent not installed: {type(e).__name__}: {e}"[:2000]
    session.commit()


def _close_tunnel(session: Session, sh: ShareRow) -> None:
    if not sh.tunnel_intent:
        return
    try:
        from netfate.orchestrator.sdn.api import delete_intent

        delete_intent(sh.tunnel_intent, session)
    except HTTPException:
        session.rollback()  # already gone
    except Exception:
        session.rollback()
        log.exception("removing tunnel intent of share %s", sh.id)


@router.post("/shares", status_code=201)
def request_share(body: ShareIn, session: SessionDep) -> dict[str, Any]:
    if any(not 0 < p < 65536 for p in body.http_ports):
        raise HTTPException(422, detail="http_ports: ports are 1-65535")
    sh = wf.request_share(session, body.owner, body.device, body.recipient, body.http_ports)
    session.commit()
    return wf.share_view(session, sh, with_history=True)


@router.get("/shares")
def list_shares(
    session: SessionDep,
    notifier: NotifierDep,
    pn: str | None = Query(None, description="Only shares this PN gives or receives"),
) -> list[dict[str, Any]]:
    return [
        wf.share_view(session, _refreshed(session, sh, notifier))
        for sh in wf.list_shares(session, pn)
    ]


@router.get("/shares/{sid}")
def get_share(sid: int, session: SessionDep, notifier: NotifierDep) -> dict[str, Any]:
    sh = _refreshed(session, wf.get_share(session, sid), notifier)
    return wf.share_view(session, sh, with_history=True)


@router.post("/shares/{sid}/accept")
def accept(sid: int, body: Actor, session: SessionDep, notifier: NotifierDep) -> dict[str, Any]:
    sh, touched = wf.accept(session, sid, body.by)
    session.commit()
    notifier.notify(touched)
    return wf.share_view(session, sh, with_history=True)


@router.post("/shares/{sid}/decline")
def decline(sid: int, body: Actor, session: SessionDep) -> dict[str, Any]:
    sh = wf.decline(session, sid, body.by)
    session.commit()
    return wf.share_view(session, sh, with_history=True)


@router.post("/shares/{sid}/revoke")
def revoke(sid: int, body: Actor, session: SessionDep, notifier: NotifierDep) -> dict[str, Any]:
    sh, touched = wf.revoke(session, sid, body.by)
    session.commit()
    notifier.notify(touched)
    _close_tunnel(session, sh)
    return wf.share_view(session, sh, with_history=True)


@router.get("/page", response_class=HTMLResponse, include_in_schema=False)
def page() -> HTMLResponse:
    """The owner's vHG page (devices, details, Share; pending requests to accept)."""
    from netfate.web import CSP

    from .web import render_page

    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}  # fmt: skip
    return HTMLResponse(render_page(), headers=headers)
