"""REST API of the USB/IP service: /api/v1/usbip/... (mounted by the platform)

``POST /usbip/functions`` creates an HRH function (a descriptor of this
service) for a served host, placed by the ``delay-bound`` policy with the
descriptor's declared bound: at the ISP when the round trip allows, on the HRH
otherwise.  The decision is recorded as an InstancePlaced event, with its why.
``GET /usbip/placement`` answers the same question without creating anything.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from netfate.orchestrator.api import views
from netfate.orchestrator.api.deps import NotifierDep, SessionDep
from netfate.orchestrator.engine.placement import NoPlacement, PlacementRequest, place
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.orchestrator.nfv.errors import NotFound
from netfate.store.tables import DescriptorRow, HostRow

from .placement import POLICY

router = APIRouter()


class FunctionCreate(BaseModel):
    descriptor: str = Field(max_length=64)
    serves: str = Field(max_length=64, description="The host (at home) the function serves")
    name: str | None = Field(default=None, max_length=64)
    config: dict[str, Any] | None = None
    measured_rtt_ms: float | None = Field(
        default=None, gt=0, description="A measured RTT to the ISP; else the link delays"
    )


def _descriptor(session: SessionDep, name: str) -> DescriptorRow:
    desc = session.get(DescriptorRow, name)
    if desc is None:
        raise NotFound(f"unknown descriptor {name!r}")
    return desc


@router.post("/functions", status_code=201)
def create_function(
    body: FunctionCreate, session: SessionDep, notifier: NotifierDep
) -> dict[str, Any]:
    desc = _descriptor(session, body.descriptor)
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


@router.get("/placement")
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
