"""What each role may see of positions and placements (the pages' data, api.py's
``GET /positions``, ``GET /positions/{user}`` and ``GET /placements``).

The operator sees node names. A provider and a user see abstract sites only: the
site's opaque name (``catalog_sites``), its tier and a label relative to the
subscription's user ("edge near you", "home (where you are)", "regional"), all
derived here, so that no node name ever leaves the server for them (hiding one in
the browser would still send it). Text that could carry a node name (a decision's
reason) is rewritten with the sites; a reason still naming a node after that is
withheld rather than sent.

Reads only: a node with no site row yet gets a placeholder, never a new row.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.contract import Role
from netfate.orchestrator.identity import Principal
from netfate.store.tables import InstanceRow, LinkRow, NodeRow

from . import conduit as cd
from . import whereabouts
from . import whereis as core
from .states import SubscriptionState
from .tables import (
    CatalogChainRow,
    CatalogDecisionRow,
    CatalogInstanceRow,
    CatalogPositionRow,
    CatalogSiteRow,
    CatalogSubscriptionRow,
)
from .whereabouts import Whereabouts

DECISIONS = 5
"""Decisions shown per subscription in the placements view (newest first)."""
WITHHELD = "(reason withheld: it names the infrastructure)"
_WORD = re.compile(r"[A-Za-z0-9]")


# ------------------------------------------------------------------ abstract sites


@dataclass(frozen=True)
class Sites:
    """Every node's abstract site and tier, and which nodes are linked (for "near")."""

    site: dict[str, str]
    tier: dict[str, str]
    links: frozenset[frozenset[str]]

    @classmethod
    def read(cls, session: Session) -> Sites:
        site = cd.all_sites(session)
        tier = {
            n: cd.TIERS.get(k, "core")
            for n, k in session.execute(select(NodeRow.name, NodeRow.kind))
        }
        tier |= {r.node: r.tier for r in session.scalars(select(CatalogSiteRow))}
        links = frozenset(
            frozenset((a, b)) for a, b in session.execute(select(LinkRow.a, LinkRow.b))
        )
        return cls(site, tier, links)

    def text(self, text: str) -> str:
        """`text` with node names replaced by sites; withheld if one still shows."""
        out = cd.abstracted(text, self.site)
        return WITHHELD if names_in(out, self.site) else out

    def label(self, node: str, user_at: str | None, you: bool) -> str:
        """Where `node` is for the subscription's user (at `user_at`), in words."""
        who = "you" if you else "the user"
        tier = self.tier.get(node, "core")
        here = user_at is not None and node == user_at
        near = user_at is not None and frozenset((node, user_at)) in self.links
        if tier == "premises":
            return (
                f"home (where {who} are)"
                if here and you
                else (f"home (where {who} is)" if here else "another home")
            )
        if tier == "edge":
            return (
                f"edge where {who} {'are' if you else 'is'}"
                if here
                else (f"edge near {who}" if near else "edge")
            )
        return tier

    def where(self, node: str, user_at: str | None, you: bool) -> dict[str, str]:
        return {"site": self.site.get(node, "another site"), "tier": self.tier.get(node, "core"),
                "label": self.label(node, user_at, you)}  # fmt: skip


def names_in(text: str, nodes: Iterable[str]) -> list[str]:
    """Node names that occur in `text` as a word (letters and digits around it end it;
    a dash does not protect: ``cpe2--pe1`` names both)."""
    found = []
    for n in nodes:
        for m in re.finditer(re.escape(n), text):
            before = text[m.start() - 1] if m.start() else ""
            after = text[m.end()] if m.end() < len(text) else ""
            if not _WORD.match(before) and not _WORD.match(after):
                found.append(n)
                break
    return found


# ------------------------------------------------------------------ positions


def visible_users(session: Session, p: Principal, w: Whereabouts) -> dict[str, list[str]]:
    """The users `p` may know the whereabouts of, each with their devices (the MACs
    their subscriptions list, in any state): the operator every user the catalog
    knows (subscribed, recently logged in, or with a history); a user themself; a
    provider the users subscribed to one of its chains."""
    subs = select(CatalogSubscriptionRow.user, CatalogSubscriptionRow.devices)
    if p.role is Role.PROVIDER:
        subs = subs.join(CatalogChainRow, CatalogChainRow.id == CatalogSubscriptionRow.chain).where(
            CatalogChainRow.provider == p.name
        )
    elif not p.operator:
        subs = subs.where(CatalogSubscriptionRow.user == p.name)
    users: dict[str, set[str]] = {}
    for user, devices in session.execute(subs):
        users.setdefault(user, set()).update(m.lower() for m in devices or [] if isinstance(m, str))
    if p.operator:
        for user in w.known(session):
            users.setdefault(user, set())
        for user in session.scalars(select(CatalogPositionRow.user).distinct()):
            users.setdefault(user, set())
    elif p.role is Role.USER:
        users.setdefault(p.name, set())  # known by a login or a history only: still theirs
    return {u: sorted(m) for u, m in sorted(users.items())}


def positions(
    session: Session,
    p: Principal,
    w: Whereabouts,
    users: Mapping[str, list[str]],
    history_rows: int,
    *,
    keep_unknown: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each user's answer (now, sources, history) as `p` may see it, and the lease
    lines refused (the operator's only). The sources are read once for all of them.
    A user nothing is known of is left out unless `keep_unknown`."""
    seen = w.read(session, users)
    sites = Sites.read(session) if p.role is Role.PROVIDER else None
    if sites is not None:  # details name devices, and functions whose names may hold a node's
        seen.sightings = [dataclasses.replace(x, detail="") for x in seen.sightings]
    fixes = core.locate(seen.sightings, time.time())
    by_user: dict[str, list[core.Sighting]] = {}
    for x in seen.sightings:
        by_user.setdefault(x.user, []).append(x)
    subscribed = set(
        session.scalars(
            select(CatalogSubscriptionRow.user)
            .where(CatalogSubscriptionRow.user.in_(sorted(users)))
            .distinct()
        )
    )

    def node(name: str) -> str:
        return name if sites is None else sites.site.get(name, "another site")

    rows = min(history_rows, w.history_rows)
    histories = whereabouts.histories(session, list(users), rows) if rows else {}
    out = []
    for user in users:
        fix, mine = fixes.get(user), by_user.get(user, [])
        hist = histories.get(user, [])
        known = fix is not None or hist or mine or user in subscribed
        if not known and not keep_unknown:
            continue
        why = "" if fix is None else fix.why if sites is None else sites.text(fix.why)
        out.append({
            "user": user,
            "now": None if fix is None else
            {"node": node(fix.node), "source": fix.source, "seen_at": fix.at, "why": why},
            "sources": [
                {"source": x.source, "node": node(x.node), "seen_at": x.at, "until": x.until,
                 **({"detail": x.detail} if sites is None else {})}
                for x in sorted(mine, key=lambda x: -x.at)
            ],
            "history": [
                {"node": node(h.node), "source": h.source, "seen_at": h.seen_at,
                 "recorded_at": h.recorded_at, **({"why": h.why} if sites is None else {})}
                for h in hist
            ],
        })  # fmt: skip
    return out, (seen.refused if p.operator else [])


# ------------------------------------------------------------------ placements


def placements(session: Session, p: Principal, w: Whereabouts) -> list[dict[str, Any]]:
    """Active subscriptions as abstract sites: the operator's all (as the others see
    them), a provider's those of its chains, a user's their own. Each block's site,
    tier and label relative to where the subscription's user is now (the where-is
    service; else where the placement was computed for them: a chain that has not
    followed its user yet shows so), and the last decisions with their reasons in
    sites."""
    q = (
        select(CatalogSubscriptionRow, CatalogChainRow)
        .join(CatalogChainRow, CatalogChainRow.id == CatalogSubscriptionRow.chain)
        .where(CatalogSubscriptionRow.state == SubscriptionState.ACTIVE.value)
        .order_by(CatalogSubscriptionRow.created_at)
    )
    if p.role is Role.PROVIDER:
        q = q.where(CatalogChainRow.provider == p.name)
    elif not p.operator:
        q = q.where(CatalogSubscriptionRow.user == p.name)
    rows = list(session.execute(q))
    sites = Sites.read(session)
    you = p.role is Role.USER
    devices: dict[str, list[str]] = {}
    for sub, _chain in rows:
        devices.setdefault(sub.user, []).extend(m for m in sub.devices or [] if isinstance(m, str))
    now = w.where(session, devices)
    out = []
    for sub, chain in rows:
        at = now[sub.user].node if sub.user in now else sub.at
        blocks = []
        for ir in session.scalars(
            select(CatalogInstanceRow)
            .where(CatalogInstanceRow.subscription == sub.id)
            .order_by(CatalogInstanceRow.block)
        ):
            inst = session.get(InstanceRow, ir.instance)
            blocks.append({"block": ir.block, **sites.where(ir.node, at, you),
                           "state": inst.state if inst is not None else "gone"})  # fmt: skip
        decisions = [
            {"at": d.at, "action": d.action, "rtt_ms": d.rtt_ms,
             "blocks": {b: sites.label(n, at, you) for b, n in sorted(d.nodes.items())},
             "why": sites.text(d.why)}
            for d in session.scalars(
                select(CatalogDecisionRow)
                .where(CatalogDecisionRow.subscription == sub.id)
                .order_by(CatalogDecisionRow.id.desc())
                .limit(DECISIONS)
            )
        ]  # fmt: skip
        out.append({
            "id": sub.id, "user": sub.user, "chain": chain.name, "version": chain.version,
            "provider": chain.provider,
            "user_at": sites.where(at, at, you),
            "placed_for": sites.where(sub.at, at, you),
            "sla": {"latency_ms": chain.latency_ms, "availability": chain.availability},
            "blocks": blocks, "decisions": decisions,
        })  # fmt: skip
    return out
