"""The sharing service's reconcile loop (netfate.contract.Loop): what converges
with nobody asking.

One step, in one transaction the platform commits:

    1. the network: the shares' and vHGs' SDN intents made equal to the tables
       (network.sync; a share whose intents cannot all go in keeps the reason in
       its detail);
    2. each built share: accepted -> active once both VPs run and its intents are
       in; -> failed (VPs removed) when a VP failed or went away
       (workflow.refresh);
    3. the network again if a share moved (a failed share's paths go).

The loop steps when the core announces a change (an agent's report: a VP now
runs, or has its port) and at least every INTERVAL_S. The API's writes (accept,
revoke, a new device) run step 1 themselves, at once; its reads only read.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import network, states
from . import workflow as wf
from .tables import PersonalNetworkRow, ShareRow

log = logging.getLogger("netfate.sharing")

INTERVAL_S = 1.0


def step(session: Session) -> set[str]:
    """One pass; returns the nodes whose desired state changed (a failed share's VPs)."""
    # An orchestrator without PNs or shares pays two indexed lookups per step.
    if session.scalar(select(PersonalNetworkRow.email).limit(1)) is None and (
        session.scalar(select(ShareRow.id).limit(1)) is None
    ):
        return set()
    sync_intents(session, only_if_needed=True)
    touched: set[str] = set()
    built = [st.value for st in states.BUILT]
    for sh in session.scalars(select(ShareRow).where(ShareRow.state.in_(built))):
        # Active means usable: the VPs run and the network carries their paths.
        ready = sh.state != "accepted" or network.share_ready(session, sh.id)
        touched |= wf.refresh(session, sh, network_ready=ready)
    session.commit()
    if touched:
        sync_intents(session)
    return touched


def sync_intents(session: Session, only_if_needed: bool = False) -> None:
    """Step 8 and isolation in the network: the shares' SDN intents (network.py).

    The VXLAN itself runs inside the VPs; the intents let it, and the PN hosts'
    traffic to the VPs, cross bridges that run in secure mode. A share whose
    intents cannot all be installed keeps the reason in its detail.
    """
    try:
        if only_if_needed and not network.needs_sync(session):
            return
        res = network.sync(session)
    except Exception:  # the network part must not break the sharing API
        session.rollback()
        log.exception("sharing intents")
        return
    if res.refused:
        why = "; ".join(f"{k}: {v}" for k, v in sorted(res.refused.items()))
        for sh in wf.list_shares(session):
            if any(k.startswith(f"share-{sh.id}-") for k in res.refused):
                sh.detail = f"SDN intents not installed: {why}"[:2000]
        session.commit()
