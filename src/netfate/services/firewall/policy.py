"""The paper's policy, over the NFVI tables and the platform's coordinator.

    (a) a user who is not connected has no firewall running;
    (b) login at CPE X (RADIUS Access-Accept with NAS-Identifier X): the user's
        firewall is created at X, and a steering intent sends the user's traffic
        through it (steering.py keeps the intents equal to these tables);
    (c) login at another CPE Y while the firewall runs at X: it is migrated to Y
        (make-before-break, state carried by the agents); the steering intent
        names the instance, so it follows by itself;
    (d) no packet of the user for `idle_timeout` seconds (the firewall's
        accounting reports the last packet time): the firewall is released.

Everything here is a function of a SQLAlchemy session, changes rows in it, and
returns the nodes whose desired state changed (for the notifier); the caller
commits. Events are past-tense kinds in the event log (the dashboard timeline).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.model.lifecycle import LIVE, InstanceState, MigrationPhase
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.orchestrator.nfv.errors import LifecycleError
from netfate.services.firewall.states import UserStatus, check_session_transition
from netfate.services.firewall.tables import (
    FirewallForwardingRow,
    FirewallFunctionRow,
    FirewallSettingRow,
    FirewallUserRow,
)
from netfate.store.events import record_event
from netfate.store.tables import HostRow, InstanceRow, MigrationRow, NodeRow
from netfate.vnf.firewall.rules import RuleSet, parse_ruleset

log = logging.getLogger("netfate.firewall.policy")

FIREWALL = "personal-firewall"
PORTAL = "captive-portal"
LIVE_STATES = {s.value for s in LIVE}
# The accounting channel carries a rule set in Vendor-Specific attributes of one
# response (RFC 2865: 4096 octets per packet): this bound keeps it inside.
MAX_RULES_JSON = 3000
DEFAULT_RULES: dict[str, Any] = {"default_in": "deny", "default_out": "allow", "rules": []}


class PolicyError(Exception):
    pass


# Called by release() for every user it releases, inside the caller's transaction
# (the user already offline). The RADIUS server registers one that ends the user's
# sessions at their NASes (RFC 5176 Disconnect-Request) once that transaction
# commits, so a released user is captive at the portal again, not left open.
ReleaseHook = Callable[[Session, FirewallUserRow, str], None]
RELEASE_HOOKS: list[ReleaseHook] = []


def setting(session: Session, key: str, default: Any = None) -> Any:
    row = session.get(FirewallSettingRow, key)
    return default if row is None else row.value


def set_setting(session: Session, key: str, value: Any) -> None:
    row = session.get(FirewallSettingRow, key)
    if row is None:
        session.add(FirewallSettingRow(key=key, value=value))
    else:
        row.value = value


def fw_name(user: str) -> str:
    return f"firewall:{user}"


def check_rules(doc: Any) -> RuleSet:
    rs = parse_ruleset(doc)
    if len(json.dumps(rs.to_json(), separators=(",", ":"))) > MAX_RULES_JSON:
        raise PolicyError(f"rule set larger than {MAX_RULES_JSON} bytes of JSON")
    return rs


def firewall_config(session: Session, user: FirewallUserRow) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "user": user.name,
        "user_ip": (user.ip or "").split("/")[0],
        "rules": user.rules or DEFAULT_RULES,
        "rules_version": user.rules_version,
    }
    acct = setting(session, "accounting")
    if isinstance(acct, dict) and acct.get("server"):
        cfg["accounting"] = acct
    return cfg


@dataclass
class Outcome:
    accept: bool
    reason: str = ""
    touched: set[str] = field(default_factory=set)


def _fn_row(session: Session, user: str) -> FirewallFunctionRow:
    row = session.get(FirewallFunctionRow, fw_name(user))
    if row is None:
        row = FirewallFunctionRow(
            name=fw_name(user),
            kind="firewall",
            user=user,
            active=False,
            users=0,
            updated_at=time.time(),
            detail="",
        )
        session.add(row)
    return row


def _fwd_row(session: Session, user: FirewallUserRow) -> FirewallForwardingRow:
    row = session.get(FirewallForwardingRow, user.name)
    if row is None:
        row = FirewallForwardingRow(user=user.name, steering="")
        session.add(row)
    row.mac, row.ip = user.mac, user.ip
    return row


def live_instance(session: Session, fn: FirewallFunctionRow) -> InstanceRow | None:
    if fn.instance is None:
        return None
    inst = session.get(InstanceRow, fn.instance)
    return inst if inst is not None and inst.state in LIVE_STATES else None


def on_login(
    session: Session, user: FirewallUserRow, node: str, mac: str | None, ip: str | None
) -> Outcome:
    """A RADIUS Access-Request with the right password from the portal of `node`."""
    now = time.time()
    needs_fw = "firewall" in (user.functions or [])
    if needs_fw and session.get(NodeRow, node) is None:
        # A firewall must run at the access node: one we do not know cannot host it.
        return Outcome(False, f"unknown access node {node!r}")
    previous = user.access_node
    # Checked before anything changes: a refused change leaves the row as it was.
    status = check_session_transition(user.status, UserStatus.ONLINE)
    if mac:
        user.mac = mac.lower().replace("-", ":")
    if ip:
        user.ip = ip
    out = Outcome(True)
    if needs_fw:
        if not user.ip:
            return Outcome(False, "no address known for the user (Framed-IP-Address)")
        try:
            out = _ensure_firewall(session, user, node)
        except LifecycleError as e:
            # (b) with no room at X: no firewall, so no access (never open access).
            record_event(
                session,
                "FirewallPlacementFailed",
                {"user": user.name, "node": node, "reason": str(e)},
            )
            return Outcome(False, f"no firewall for {user.name} at {node}: {e}")
    user.status = status.value
    user.access_node = node
    user.logged_in_at = now
    user.last_packet_at = now
    record_event(
        session,
        "UserLoggedIn",
        {"user": user.name, "node": node, "previous": previous, "mac": user.mac, "ip": user.ip},
    )
    return out


def _ensure_firewall(session: Session, user: FirewallUserRow, node: str) -> Outcome:
    fn = _fn_row(session, user.name)
    fwd = _fwd_row(session, user)
    inst = live_instance(session, fn)
    out = Outcome(True)
    if inst is None:
        serves = user.host if user.host and session.get(HostRow, user.host) else None
        inst, touched = nfv.create_instance(
            session,
            nfv.CreateRequest(
                descriptor=FIREWALL,
                name=f"fw-{user.name}",
                node=node,
                serves=serves,
                config=firewall_config(session, user),
            ),
        )
        fn.instance, fn.node, fn.active, fn.updated_at = inst.id, node, False, time.time()
        fn.detail = "requested"
        fwd.instance, fwd.function_mac, fwd.node = inst.id, inst.mac, node
        record_event(
            session, "FirewallCreated", {"user": user.name, "instance": inst.id, "node": node}
        )
        out.touched |= touched
        return out
    fwd.instance, fwd.function_mac = inst.id, inst.mac
    if inst.node == node:
        return out  # already where the user is
    if inst.state == InstanceState.RUNNING.value:
        try:
            mig, touched = nfv.migrate_instance(session, inst.id, node)
        except LifecycleError as e:
            # (c) the target cannot host it: the firewall stays where it is.
            record_event(
                session,
                "FirewallMigrationRefused",
                {
                    "user": user.name,
                    "instance": inst.id,
                    "from": inst.node,
                    "to": node,
                    "reason": str(e),
                },
            )
            fn.detail = f"stays at {inst.node}: {e}"
            return out
        fn.detail = f"migrating to {node}"
        record_event(
            session,
            "FirewallMigrationStarted",
            {
                "user": user.name,
                "instance": inst.id,
                "from": mig.source,
                "to": node,
                "migration": mig.id,
            },
        )
        out.touched |= touched
    # Starting or already migrating: reconcile() moves it once it runs.
    return out


def release(session: Session, user: FirewallUserRow, reason: str) -> set[str]:
    """(d) and logout: stop the user's firewall; the tables say so at once."""
    status = check_session_transition(user.status, UserStatus.OFFLINE)
    touched: set[str] = set()
    fn = session.get(FirewallFunctionRow, fw_name(user.name))
    node = user.access_node
    iid = None
    if fn is not None:
        inst = live_instance(session, fn)
        if inst is not None:
            iid = inst.id
            try:
                _, touched = nfv.destroy_instance(session, inst.id)
            except LifecycleError as e:
                log.warning("release of %s: %s", inst.id, e)
        fn.active = False
        fn.users = 0
        fn.node = None
        fn.detail = f"released: {reason}"
        fn.updated_at = time.time()
    fwd = session.get(FirewallForwardingRow, user.name)
    if fwd is not None:
        # The steering intent goes back to the portal at the next policy step
        # (steering.sync), so the user is captive again, never open.
        fwd.instance = fwd.function_mac = fwd.node = None
    user.status = status.value
    user.access_node = None
    record_event(
        session,
        "FirewallReleased",
        {"user": user.name, "node": node, "instance": iid, "reason": reason},
    )
    for hook in list(RELEASE_HOOKS):
        try:
            hook(session, user, reason)
        except Exception:  # a hook's fault must not undo the release
            log.exception("release hook %r failed for %s", hook, user.name)
    return touched


def release_idle(session: Session, now: float) -> set[str]:
    touched: set[str] = set()
    users = session.scalars(
        select(FirewallUserRow).where(FirewallUserRow.status == UserStatus.ONLINE.value)
    ).all()
    for u in users:
        last = max(u.last_packet_at or 0.0, u.logged_in_at or 0.0)
        if now - last > u.idle_timeout:
            record_event(session, "UserWentIdle", {"user": u.name, "idle_s": round(now - last, 1)})
            touched |= release(session, u, f"no packet for {u.idle_timeout} s")
        elif u.logged_in_at and now - u.logged_in_at > u.session_timeout:
            touched |= release(session, u, "session timeout")
    return touched


def _portal_rows(session: Session, now: float) -> None:
    """Table II lists the portals too: one row per portal instance, its users are the
    users online at its node."""
    online: dict[str, int] = {}
    for u in session.scalars(
        select(FirewallUserRow).where(FirewallUserRow.status == UserStatus.ONLINE.value)
    ):
        if u.access_node:
            online[u.access_node] = online.get(u.access_node, 0) + 1
    portals = session.scalars(select(InstanceRow).where(InstanceRow.descriptor == PORTAL))
    for inst in portals:
        name = f"portal:{inst.id}"
        row = session.get(FirewallFunctionRow, name)
        gone = inst.state not in LIVE_STATES
        if row is None:
            if gone:
                continue
            row = FirewallFunctionRow(name=name, kind="portal", instance=inst.id, detail="")
            session.add(row)
        active = inst.state == InstanceState.RUNNING.value
        users = online.get(inst.node, 0) if active else 0
        if (row.active, row.node, row.users) != (active, inst.node, users):
            row.active, row.node, row.users, row.updated_at = active, inst.node, users, now
            row.detail = inst.state


def reconcile(session: Session) -> set[str]:
    """Keep Table II/III true to the instances, and finish moves that had to wait."""
    touched: set[str] = set()
    now = time.time()
    _portal_rows(session, now)
    for fn in session.scalars(
        select(FirewallFunctionRow).where(FirewallFunctionRow.kind == "firewall")
    ):
        if fn.instance is None:
            continue
        inst = session.get(InstanceRow, fn.instance)
        user = session.get(FirewallUserRow, fn.user) if fn.user else None
        if inst is None or inst.state in ("gone", "stopping"):
            if fn.active:
                fn.active, fn.users, fn.updated_at = False, 0, now
            continue
        running = inst.state == InstanceState.RUNNING.value
        if running and not fn.active:
            fn.active, fn.users, fn.updated_at = True, 1, now
            if fn.detail == "requested":
                fn.detail = f"running at {inst.node}"
            record_event(
                session,
                "FirewallStarted",
                {"user": fn.user, "instance": inst.id, "node": inst.node},
            )
        if inst.state == InstanceState.FAILED.value and fn.active:
            fn.active, fn.users, fn.detail = False, 0, inst.detail[:500]
        if running and fn.node != inst.node:
            mig = session.scalars(
                select(MigrationRow)
                .where(
                    MigrationRow.instance == inst.id,
                    MigrationRow.phase == MigrationPhase.DONE.value,
                )
                .order_by(MigrationRow.id.desc())
            ).first()
            record_event(
                session,
                "FirewallMigrated",
                {
                    "user": fn.user,
                    "instance": inst.id,
                    "from": fn.node,
                    "to": inst.node,
                    "downtime_ms": mig.downtime_ms if mig else None,
                    "state_bytes": mig.state_bytes if mig else None,
                },
            )
            fn.node, fn.updated_at, fn.detail = inst.node, now, f"running at {inst.node}"
            fwd = session.get(FirewallForwardingRow, fn.user) if fn.user else None
            if fwd is not None:
                fwd.node = inst.node
        if (
            running
            and user is not None
            and user.status == UserStatus.ONLINE
            and user.access_node
            and user.access_node != inst.node
            # Refused once (no room at the access node): keep it where it is until
            # the next login instead of asking again every step.
            and not fn.detail.startswith("stays at")
        ):
            out = _ensure_firewall(session, user, user.access_node)
            touched |= out.touched
    return touched


def on_firewall_accounting(
    session: Session,
    user: FirewallUserRow,
    version: int,
    last_packet: int,
    counters: dict[str, int],
) -> tuple[int, bytes] | None:
    """Interim-Update from a user's firewall. Returns (version, rules JSON) when the
    firewall enforces an older rule set than the table holds."""
    if last_packet and last_packet > (user.last_packet_at or 0.0):
        user.last_packet_at = float(last_packet)
    user.counters = counters
    if version != user.rules_version:
        doc = json.dumps(user.rules or DEFAULT_RULES, separators=(",", ":")).encode()
        return user.rules_version, doc
    return None


def set_rules(session: Session, user: FirewallUserRow, doc: Any) -> RuleSet:
    """Replace a user's rule set (validated whole first; on error nothing changes)."""
    rs = check_rules(doc)
    user.rules = rs.to_json()
    user.rules_version = (user.rules_version or 0) + 1
    fn = session.get(FirewallFunctionRow, fw_name(user.name))
    if fn is not None and fn.instance:
        inst = session.get(InstanceRow, fn.instance)
        if inst is not None:
            # A restart of the instance starts from these; a running one gets them
            # over its accounting channel within its interval.
            inst.config = {
                **(inst.config or {}),
                "rules": user.rules,
                "rules_version": user.rules_version,
            }
    record_event(
        session,
        "FirewallRulesChanged",
        {"user": user.name, "version": user.rules_version, "rules": len(rs.rules)},
    )
    return rs
