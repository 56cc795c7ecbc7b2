"""The firewall service's SDN intents, kept equal to the tables (one pass per step of
the service's reconcile loop).

What the paper's controller did with OpenFlow, as intents the platform's
controller compiles (orchestrator/sdn):

    fabric-gw-<portal>          a running portal reaches its node, which routes
                                RADIUS to the orchestrator (connectivity)
    firewall-p-<user>-<portal>  the user's host reaches every portal's web server
                                (tunnel, TCP), ARP included: login and RFC 8908
    firewall-<user>             the user's traffic to `steer_to` (steering):
                                - through the firewall once it runs (policy b, c);
                                - before login, or after release, through the portal
                                  at the host's current node, whose nftables send
                                  web requests to the login page (captive).

The steering intent names instances, not ports: when the firewall migrates, the
controller moves the flows with it. Only intents whose id starts with `firewall-`
(or `netfate-`, the prefix before the service had one name: such intents of an
earlier orchestrator are replaced) and the portals' gateways are managed here,
through the SDN API's
reconcile_owned: a differing one is replaced in the same transaction, a stale one
deleted, and a new one admitted as any intent is (one refused is reported in the
forwarding table).
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.model.lifecycle import InstanceState
from netfate.orchestrator.sdn.api import build_view, reconcile_owned
from netfate.orchestrator.sdn.fabric import gateway
from netfate.orchestrator.sdn.intents import Endpoint, Intent, NetworkView, parse_intent
from netfate.orchestrator.sdn.tables import SdnIntentRow
from netfate.services.firewall.policy import PORTAL, fw_name, live_instance, setting
from netfate.services.firewall.states import UserStatus
from netfate.services.firewall.tables import (
    FirewallForwardingRow,
    FirewallFunctionRow,
    FirewallUserRow,
)
from netfate.store.tables import HostRow, InstanceRow

log = logging.getLogger("netfate.firewall.steering")

PREFIX = "firewall-"
EARLIER_PREFIX = "netfate-"
# The firewall carries the user's traffic in these states (migrating: the source
# runs until the cut-over, and the intent follows the instance's node).
CARRIES = {InstanceState.RUNNING.value, InstanceState.MIGRATING.value}


def intent_id(*parts: str) -> str:
    """An intent id from names: user names may hold characters intent ids may not
    ('@') or be long; such an id keeps a readable prefix and a digest, so two users
    never share one."""
    raw = PREFIX + "-".join(parts)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", raw)
    if safe == raw and len(raw) <= 63:
        return raw
    return f"{safe[:50]}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


def _portal_port(inst: InstanceRow) -> int:
    port = (inst.config or {}).get("port", 80)
    return port if isinstance(port, int) and 0 < port < 65536 else 80


def _host_node(view: NetworkView, host: HostRow) -> str:
    """Where the host is attached now: as the network view says (the controller's
    sighting, else the bridge port named after it), else its topology node."""
    hv = next((h for h in view.hosts if h.name == host.name), None)
    if hv is not None and hv.ofport is not None and hv.node:
        return hv.node
    for n in view.nodes:
        if any(p.peer == f"host:{host.name}" for p in n.ports):
            return n.name
    return host.node


def plan(session: Session) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The intents the tables call for (id -> body), and per user what steers them."""
    portals = [
        i
        for i in session.scalars(select(InstanceRow).where(InstanceRow.descriptor == PORTAL))
        if i.state == InstanceState.RUNNING.value and i.ip and i.mac
    ]
    want: dict[str, dict[str, Any]] = {}
    via: dict[str, str] = {}
    for p in portals:
        gw = gateway(Endpoint("instance", p.id), p.node)
        want[gw.id] = gw.model_dump(mode="json")
    steer_to = setting(session, "steer_to")
    view: NetworkView | None = None  # built once, only if someone is captive
    for user in session.scalars(select(FirewallUserRow).order_by(FirewallUserRow.name)):
        host = session.get(HostRow, user.host) if user.host else None
        if host is None:
            continue
        for p in portals:
            iid = intent_id("p", user.name, p.id)
            want[iid] = {
                "kind": "tunnel",
                "id": iid,
                "a": f"host:{host.name}",
                "b": f"instance:{p.id}",
                "protocol": "tcp",
                "port": _portal_port(p),
            }
        if not steer_to:
            continue
        fn = session.get(FirewallFunctionRow, fw_name(user.name))
        fw = live_instance(session, fn) if fn is not None else None
        chain: str | None = None
        if user.status == UserStatus.ONLINE and fw is not None and fw.state in CARRIES:
            chain, via[user.name] = fw.id, f"firewall {fw.id}"
        else:
            if view is None:
                view = build_view(session)
            here = _host_node(view, host)
            portal = next((p for p in portals if p.node == here), None)
            if portal is not None:
                chain, via[user.name] = portal.id, f"portal {portal.id} (not logged in)"
        if chain is None:
            continue
        want[intent_id(user.name)] = {
            "kind": "steering",
            "id": intent_id(user.name),
            "host": host.name,
            "chain": [chain],
            "to": steer_to,
            "symmetric": True,
        }
    return want, via


def sync(session: Session) -> list[str]:
    """Make the stored intents match plan(); returns what changed, for the log."""
    want: dict[str, Intent] = {}
    planned, via = plan(session)
    for iid, body in planned.items():
        try:
            want[iid] = parse_intent(body)
        except ValueError as e:  # never expected: one bad intent must not stop the policy
            log.error("netfate intent %s not valid, left out: %s", iid, e)
    portal_ids = {
        i.id for i in session.scalars(select(InstanceRow).where(InstanceRow.descriptor == PORTAL))
    }

    def owned(iid: str) -> bool:
        return iid.startswith((PREFIX, EARLIER_PREFIX)) or (
            iid.removeprefix("fabric-gw-") in portal_ids
        )

    # Checked as the SDN API checks any intent; one refused stays out, reported below.
    added, removed, refused = reconcile_owned(session, want.values(), owned)
    changed = [f"-{i}" for i in removed] + [f"+{i}" for i in added]
    stored = {r for (r,) in session.execute(select(SdnIntentRow.id))}
    for fwd in session.scalars(select(FirewallForwardingRow)):
        iid = intent_id(fwd.user)
        how = via.get(fwd.user)
        fwd.intent = iid if iid in stored else None
        if iid in refused:
            fwd.steering = f"intent {iid} refused: {refused[iid]}"[:500]
        else:
            fwd.steering = f"intent {iid}: through {how}" if how else "no steering intent"
    if changed:
        log.info("netfate intents: %s", " ".join(changed))
    if refused:
        log.debug("netfate intents refused: %s", refused)
    return changed
