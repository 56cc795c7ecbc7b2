"""REST API of the USB/IP service: /api/v1/usbip/... (mounted by the platform)

``POST /usbip/tunnels`` asks for a USB/IP tunnel (tcp/3240 from one side to an
HRH function, nothing else on secure bridges); the service's loop keeps its SDN
intent (``usbip-NAME``) and closes it when a function it joins is gone
(reconcile.py). ``DELETE /usbip/tunnels/NAME`` closes it.

``POST /usbip/functions`` creates an HRH function (a descriptor of this
service) for a served host, placed by the ``delay-bound`` policy with the
descriptor's declared bound: at the ISP when the round trip allows, on the HRH
otherwise.  The decision is recorded as an InstancePlaced event, with its why.
``GET /usbip/placement`` answers the same question without creating anything.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from netfate.orchestrator.api import functions, views
from netfate.orchestrator.api.deps import NotifierDep, SessionDep
from netfate.orchestrator.api.errors import errors
from netfate.orchestrator.engine.placement import NoPlacement, PlacementRequest, place
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.orchestrator.nfv.errors import NotFound
from netfate.orchestrator.sdn.tables import SdnIntentRow
from netfate.store.tables import DescriptorRow, HostRow

from . import reconcile
from .placement import POLICY
from .tables import UsbipTunnelRow

router = APIRouter()


class FunctionCreate(BaseModel):
    descriptor: str = Field(max_length=64)
    serves: str = Field(max_length=64, description="The host (at home) the function serves")
    name: str | None = Field(default=None, max_length=64)
    config: dict[str, Any] | None = None
    measured_rtt_ms: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="A measured RTT to the ISP; else the link delays",
    )


def _descriptor(session: SessionDep, name: str) -> DescriptorRow:
    desc = session.get(DescriptorRow, name)
    if desc is None:
        raise NotFound(f"unknown descriptor {name!r}")
    return desc


@router.post("/functions", status_code=201, responses=errors(404, 409, 422))
def create_function(
    body: FunctionCreate, request: Request, session: SessionDep, notifier: NotifierDep
) -> dict[str, Any]:
    desc = _descriptor(session, body.descriptor)
    functions.instance(request, desc, body.config)  # 422: its function's schema refuses it
    inst, touched = nfv.create_instance(
        session,
        nfv.CreateRequest(
            descriptor=desc.name,
            name=body.name,
            serves=body.serves,
            policy=POLICY,
            config=body.config,
            measured_rtt_ms=body.measured_rtt_ms,
        ),
    )
    session.commit()
    notifier.notify(touched)
    return views.instance(inst)


@router.get("/placement", responses=errors(404, 409))
def explain_placement(
    descriptor: str, serves: str, session: SessionDep, measured_rtt_ms: float | None = None
) -> dict[str, Any]:
    """Where ``descriptor`` would run for ``serves``, and why (nothing is created)."""
    desc = _descriptor(session, descriptor)
    if session.get(HostRow, serves) is None:
        raise NotFound(f"unknown host {serves!r}")
    req = PlacementRequest(
        cpu=desc.cpu,
        memory_mb=desc.memory_mb,
        serves=serves,
        delay_bound_ms=desc.delay_bound_ms,
        measured_rtt_ms=measured_rtt_ms,
    )
    try:
        p = place(req, nfv.candidates(session), nfv.graph(session), POLICY)
    except NoPlacement as e:
        raise HTTPException(409, detail=str(e)) from None
    return {
        "descriptor": desc.name,
        "serves": serves,
        "delay_bound_ms": desc.delay_bound_ms,
        "node": p.node,
        "policy": p.policy,
        "why": p.why,
    }


class TunnelIn(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")
    a: str = Field(max_length=128, description="instance:ID or subnet:CIDR@NODE: the importer")
    b: str = Field(max_length=128, description="instance:ID or subnet:IP/32@NODE: the HRH function")
    port: int = Field(default=3240, ge=1, le=65535)


def _tunnel_out(session: SessionDep, t: UsbipTunnelRow) -> dict[str, Any]:
    iid = reconcile.intent_id(t.name)
    return {
        "name": t.name, "a": t.a, "b": t.b, "port": t.port, "intent": iid,
        "open": session.get(SdnIntentRow, iid) is not None, "detail": t.detail,
    }  # fmt: skip


@router.post("/tunnels", status_code=201, responses=errors(409))
def open_tunnel(body: TunnelIn, session: SessionDep) -> dict[str, Any]:
    """Keep a tunnel open from `a` to the HRH function `b` (tcp/`port` only)."""
    if session.get(UsbipTunnelRow, body.name) is not None:
        raise HTTPException(409, detail=f"tunnel {body.name!r} exists")
    t = UsbipTunnelRow(name=body.name, a=body.a, b=body.b, port=body.port,
                       created_at=time.time(), detail="")  # fmt: skip
    try:
        reconcile.intent(t)
    except ValueError as e:
        raise HTTPException(422, detail=str(e)) from None
    session.add(t)
    session.flush()
    reconcile.step(session)  # a write converges what it changed at once
    session.commit()
    return _tunnel_out(session, t)


@router.get("/tunnels")
def list_tunnels(session: SessionDep) -> list[dict[str, Any]]:
    rows = session.scalars(select(UsbipTunnelRow).order_by(UsbipTunnelRow.name))
    return [_tunnel_out(session, t) for t in rows]


@router.delete("/tunnels/{name}", responses=errors(404))
def close_tunnel(name: str, session: SessionDep) -> dict[str, str]:
    t = session.get(UsbipTunnelRow, name)
    if t is None:
        raise HTTPException(404, detail=f"unknown tunnel {name!r}")
    session.delete(t)
    session.flush()
    reconcile.step(session)
    session.commit()
    return {"closed": name}
