"""The firewall's reconcile loop (netfate.contract.Loop, every 0.5 s).

One step, in one transaction: the policy's pending work (a firewall still
starting or migrating that must follow its user, `policy.reconcile`), its
timers (idle and session timeouts, `policy.release_idle`), then the steering
intents kept equal to the tables (`steering.sync`). A release's
Disconnect-Requests go out once the step commits (the RADIUS server's release
hook, radius.py). Logins and accounting act at once in the RADIUS server; this
loop is what happens with nobody asking.
"""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.services.firewall import policy, steering
from netfate.services.firewall.tables import FirewallUserRow
from netfate.store.tables import InstanceRow

INTERVAL_S = 0.5


def step(s: Session) -> set[str]:
    """One pass; returns the nodes whose desired state changed."""
    # An orchestrator without firewall users (other scenarios, benchmarks) pays one
    # indexed lookup per step and nothing more.
    if s.scalar(select(FirewallUserRow.name).limit(1)) is None and (
        s.scalar(select(InstanceRow.id).where(InstanceRow.descriptor == policy.PORTAL).limit(1))
        is None
    ):
        return set()
    touched = policy.reconcile(s)
    touched |= policy.release_idle(s, time.time())
    s.flush()
    steering.sync(s)
    return touched
