"""The first subscription makes its user's Personal Network (issue 15 §2).

The catalog owns no PN: the sharing service does (its PN, with a vHG: DHCP, NAT,
firewall, and its gateway settings page). Services never import each other, so
the catalog asks the platform for the ``personal-network`` capability
(netfate.contract.Capabilities; the sharing service documents it in its
``provided.py``): with the sharing service registered, a subscription whose user
has no PN makes one at the node the user is at, in the subscribing request; without
it, the subscription is made as before and says that no PN was.

A PN the provider refuses (the only LAN already another's PN, a node without a
LAN, no room for the vHG) does not refuse the subscription: the attempt
runs under a savepoint, and nothing of it is kept. The stored `why` names only the
user and the node (the provider reads it with nodes made abstract sites); the
PN's subnet and vHG, and a refusal's reason (which may name another user's PN),
are in the subscribing answer only.

Which of the user's devices join the PN (``pn_devices`` in the subscribing request,
``PUT /users/{user}/devices`` later) is the ``personal-network-devices`` capability:
the PN's devices and the subscriptions' ``devices`` (the MACs that place the user and
that the chain steers) are then one set, so the two services never disagree on which
devices are the user's. A device another user's PN or subscription holds is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.contract import Capabilities
from netfate.orchestrator.nfv.errors import LifecycleError

from .states import SubscriptionState
from .tables import CatalogSubscriptionRow

CAPABILITY = "personal-network"
DEVICES = "personal-network-devices"


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


class Unjoinable(Exception):
    """Devices that cannot join the user's PN: problems keyed as the request's 422
    says them (a key is an index into the list, or None for the list as a whole)."""

    def __init__(self, problems: dict[int | None, str]) -> None:
        super().__init__("; ".join(problems.values()))
        self.problems = problems


@dataclass(frozen=True)
class Joined:
    """The devices that joined the user's PN."""

    pn: dict[str, Any]
    """The PN as its provider shows it, once they joined."""
    devices: list[dict[str, Any]]
    """Each device named (name, ip, mac, kind, source), in the order given."""
    nodes: set[str]
    """Nodes whose desired state changed."""

    @property
    def macs(self) -> list[str]:
        """The subscriptions' `devices`: the joined devices' MACs (one without a MAC, a
        declared virtual device, is no subscription's)."""
        return sorted({str(d["mac"]).lower() for d in self.devices if d.get("mac")})


def _others_macs(session: Session, user: str) -> set[str]:
    """The MACs other users' active subscriptions list as theirs."""
    rows = session.scalars(
        select(CatalogSubscriptionRow).where(
            CatalogSubscriptionRow.user != user,
            CatalogSubscriptionRow.state == SubscriptionState.ACTIVE.value,
        )
    )
    return {str(m).lower() for r in rows for m in (r.devices or [])}


def join(session: Session, caps: Capabilities, user: str, refs: list[str]) -> Joined:
    """Make the devices ``refs`` names (names or MACs) the ones that join ``user``'s PN.
    Unjoinable (the caller rolls back: nothing is kept) when a device is
    unknown, named twice, not on the PN's LAN, another user's (their PN's, or listed by
    their subscriptions), or the user has no PN."""
    if caps.provider(DEVICES) is None:
        raise Unjoinable({None: "no registered service provides Personal Networks"})
    try:
        pn, devices, problems, nodes = caps.get(DEVICES)(session, user, refs)
    except LifecycleError as e:
        raise Unjoinable({None: f"no Personal Network to join: {e}"}) from None
    taken = _others_macs(session, user)
    keyed: dict[int | None, str] = dict(problems)
    for i, d in enumerate(devices):
        if d is not None and d.get("mac") and str(d["mac"]).lower() in taken:
            keyed[i] = f"{refs[i]!r} is another user's device"
    if keyed:
        raise Unjoinable(keyed)
    return Joined(pn, [d for d in devices if d is not None], set(nodes))
