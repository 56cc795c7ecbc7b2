"""The USB/IP service's reconcile loop: the tunnels (netfate.contract.Loop).

Nothing reaches an HRH function's USB/IP port on bridges in secure mode unless a
tunnel intent lets it (tcp/PORT from one side to the function, nothing else).
A tunnel is asked for once (POST /api/v1/usbip/tunnels) and kept here:

    usbip_tunnels row NAME (a, b, port)
      -> intent usbip-NAME: tunnel a -> b, tcp/port, admitted as any intent is;
         refused while an instance it names has no port yet (its detail says
         why), admitted at a later step, soon after the agent reports the port
      -> an instance it names is gone or failed: the row and its intent go
         (the tunnel ends with the functions it joined)

The loop steps when the core announces a change and at least every INTERVAL_S.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.orchestrator.sdn.api import reconcile_owned
from netfate.orchestrator.sdn.intents import Endpoint, TunnelIntent
from netfate.orchestrator.sdn.tables import SdnIntentRow
from netfate.store.events import record_event
from netfate.store.tables import InstanceRow

from .tables import UsbipTunnelRow

log = logging.getLogger("netfate.usbip")

INTERVAL_S = 1.0
PREFIX = "usbip-"
ENDED = {"gone", "failed", "stopping"}


def intent_id(name: str) -> str:
    return PREFIX + name


def intent(t: UsbipTunnelRow) -> TunnelIntent:
    """The tunnel as an SDN intent (ValueError if its ends do not parse)."""
    return TunnelIntent(
        id=intent_id(t.name), a=Endpoint.parse(t.a), b=Endpoint.parse(t.b),
        protocol="tcp", port=t.port,
    )  # fmt: skip


def _ended(session: Session, t: UsbipTunnelRow) -> str | None:
    for end in (t.a, t.b):
        ep = Endpoint.parse(end)
        if ep.kind == "instance":
            inst = session.get(InstanceRow, ep.name)
            if inst is None or inst.state in ENDED:
                return f"instance {ep.name} {inst.state if inst else 'unknown'}"
    return None


def step(session: Session) -> set[str]:
    """One pass: the stored usbip-* intents made equal to the open tunnels."""
    tunnels = list(session.scalars(select(UsbipTunnelRow)))
    if (
        not tunnels
        and session.scalar(
            select(SdnIntentRow.id).where(SdnIntentRow.id.like(f"{PREFIX}%")).limit(1)
        )
        is None
    ):
        return set()  # an orchestrator without tunnels pays two indexed lookups
    want = []
    for t in tunnels:
        why = _ended(session, t)
        if why is not None:
            session.delete(t)
            record_event(session, "UsbipTunnelClosed", {"tunnel": t.name, "why": why})
            continue
        want.append(intent(t))
    added, removed, refused = reconcile_owned(session, want, lambda iid: iid.startswith(PREFIX))
    for t in tunnels:
        if t in session.deleted:
            continue
        detail = refused.get(intent_id(t.name), "")
        if t.detail != detail:
            t.detail = detail
    if added or removed:
        log.info("usbip tunnels: added %s, removed %s", added, removed)
    return set()
