"""The first subscription makes its user's Personal Network (issue 15 §2).

The catalog owns no PN: the sharing service does (its PN, with a vHG: DHCP, NAT,
firewall, and its gateway settings page). Services never import each other, so
the catalog asks the platform for the ``personal-network`` capability
(netfate.contract.Capabilities; the sharing service documents it in its
``provided.py``): with the sharing service registered, a subscription whose user
has no PN makes one at the node the user is at, in the subscribing request; without
it, the subscription is made as before and says that no PN was.

A PN the provider refuses (a user name that is no email, the only LAN already
another's PN, no room for the vHG) does not refuse the subscription: the attempt
runs under a savepoint, and nothing of it is kept. The stored `why` names only the
user and the node (the provider reads it with nodes made abstract sites); the
PN's subnet and vHG, and a refusal's reason (which may name another user's PN),
are in the subscribing answer only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from netfate.contract import Capabilities
from netfate.orchestrator.nfv.errors import LifecycleError

CAPABILITY = "personal-network"


@dataclass(frozen=True)
class Outcome:
    """What the subscribing request did about its user's Personal Network."""

    created: bool
    """Made now (the user had none)."""
    why: str
    """What the subscription's `why` says of it."""
    detail: str = ""
    """A refusal's reason (the answer's only)."""
    pn: dict[str, Any] | None = None
    """The PN as its provider shows it; None when there is none."""
    nodes: set[str] = field(default_factory=set)
    """Nodes whose desired state changed (the vHG's)."""

    def out(self) -> dict[str, Any]:
        """The subscription answer's ``personal_network``."""
        return {"created": self.created, "why": self.why, "detail": self.detail, "pn": self.pn}


def ensure(session: Session, caps: Capabilities, user: str, node: str) -> Outcome:
    """Make ``user``'s PN at ``node`` unless they have one (the caller commits)."""
    if caps.provider(CAPABILITY) is None:
        return Outcome(False, "no Personal Network made: no registered service provides one")
    ensure_pn = caps.get(CAPABILITY)
    try:
        with session.begin_nested():  # a refusal leaves nothing of the attempt
            pn, created, nodes = ensure_pn(session, user, node)
    except LifecycleError as e:
        svc = caps.provider(CAPABILITY)
        return Outcome(False, f"no Personal Network made for {user}: {svc} refused", str(e))
    if not created:
        return Outcome(False, f"{user}'s Personal Network is at {pn['node']}", pn=pn)
    return Outcome(
        True, f"created {user}'s Personal Network at {pn['node']}", pn=pn, nodes=set(nodes)
    )
