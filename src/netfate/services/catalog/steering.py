"""A placed chain as the platform's SDN intents (orchestrator/sdn), kept equal to the
placement on every pass of the conduit's loop.

For an active subscription SUB whose blocks b0..bn run as instances i0..in (chain
order: b0 is the entry), and each host whose MAC is among the subscription's
devices (H):

    id                         kind          what                              key in `why`
    catalog-SUB-e-H            connectivity  H <-> i0: the user reaches the    devices[k].entry
                                             chain's entry block
    catalog-SUB-s-H  (n >= 1)  steering      H's traffic to in crosses         devices[k].chain
                                             i0 .. i(n-1) in chain order (and
                                             back in reverse)
    catalog-SUB-tJ             connectivity  ia <-> ib for talks[J] (a -> b):  talks[J]
                                             the blocks reach each other

Intents name instances, not ports: a migration keeps an instance's id, so the
controller moves the flows with the block (the view's node changes); a block
recreated or upgraded runs as a new instance, so its intents are replaced. An
ended subscription wants none: its intents go. A block whose instance is gone or
failed is left out until the conduit recreates it.

Each block of the chain but the last must forward what it is sent (a one-armed
router, as the platform's `forwarder`): the steering intent rewrites the frames'
destination MAC at every stage, the block's kernel forwards them on.

Only intents whose id starts with `catalog-` are managed here, through the SDN
API's reconcile_owned; one the platform refuses (a conflict with another
service's steering of the same host, an unknown name) is reported, keyed, in the
subscription's `why` and in its last decision's.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from netfate.orchestrator.sdn.api import reconcile_owned
from netfate.orchestrator.sdn.intents import (
    ConnectivityIntent,
    Endpoint,
    Intent,
    SteeringIntent,
)
from netfate.orchestrator.sdn.tables import SdnIntentRow
from netfate.store.tables import HostRow, InstanceRow

from .states import SubscriptionState
from .tables import (
    CatalogBlockRow,
    CatalogDecisionRow,
    CatalogInstanceRow,
    CatalogSubscriptionRow,
    CatalogTalkRow,
)

log = logging.getLogger("netfate.catalog.steering")

PREFIX = "catalog-"
REFUSED = "; steering refused: "
"""Where a `why` says which of its intents the platform refused (after its reason)."""
_NO_PORT = frozenset({"gone", "failed"})
"""Instances in these states are not in the SDN view (sdn/api.py build_view)."""


def intent_id(sid: str, *parts: str) -> str:
    """`catalog-SUB-...`; a part that intent ids cannot hold (a host name with '@',
    or too long) keeps a readable prefix and a digest, so two never share an id."""
    raw = "-".join((PREFIX + sid, *parts))
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", raw)
    if safe == raw and len(raw) <= 63:
        return raw
    return f"{safe[:50]}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class Keyed:
    """An intent and the key that names it in the subscription (for refusals)."""

    key: str
    intent: Intent


def chain_intents(
    sid: str,
    blocks: Sequence[str],
    talks: Sequence[tuple[str, str]],
    instances: Mapping[str, str],
    hosts: Mapping[int, str],
) -> list[Keyed]:
    """The intents of one placed chain (module docstring). Pure.

    `blocks`: names in chain order; `talks`: (a, b) per relationship, in the
    descriptor's order; `instances`: block -> the instance running it now (a block
    missing is not running: what needs it waits); `hosts`: index in the
    subscription's devices -> the host with that MAC."""
    out: list[Keyed] = []
    iids = [instances.get(b) for b in blocks]
    for k, host in sorted(hosts.items()):
        if iids and iids[0] is not None:
            out.append(
                Keyed(
                    f"devices[{k}].entry",
                    ConnectivityIntent(
                        id=intent_id(sid, "e", host),
                        a=Endpoint("host", host),
                        b=Endpoint("instance", iids[0]),
                    ),
                )
            )
        if len(iids) > 1 and all(i is not None for i in iids):
            stages = [i for i in iids if i is not None]
            out.append(
                Keyed(
                    f"devices[{k}].chain",
                    SteeringIntent(
                        id=intent_id(sid, "s", host),
                        host=host,
                        chain=stages[:-1],
                        to=Endpoint("instance", stages[-1]),
                    ),
                )
            )
    for j, (a, b) in enumerate(talks):
        ia, ib = instances.get(a), instances.get(b)
        if ia is not None and ib is not None and ia != ib:
            out.append(
                Keyed(
                    f"talks[{j}]",
                    ConnectivityIntent(
                        id=intent_id(sid, f"t{j}"),
                        a=Endpoint("instance", ia),
                        b=Endpoint("instance", ib),
                    ),
                )
            )
    return out


def _templates(session: Session, chain: int) -> tuple[list[str], list[tuple[str, str]]]:
    """A version's block names in chain order and its relationships (a, b), in order."""
    blocks = session.scalars(
        select(CatalogBlockRow.name)
        .where(CatalogBlockRow.chain == chain)
        .order_by(CatalogBlockRow.position)
    )
    talks = session.execute(
        select(CatalogTalkRow.a, CatalogTalkRow.b)
        .where(CatalogTalkRow.chain == chain)
        .order_by(CatalogTalkRow.position)
    )
    return list(blocks), [(a, b) for a, b in talks]


def wanted(session: Session) -> dict[str, list[Keyed]]:
    """Subscription id -> its intents, for every active subscription, from the tables."""
    subs = session.scalars(
        select(CatalogSubscriptionRow)
        .where(CatalogSubscriptionRow.state == SubscriptionState.ACTIVE.value)
        # The older first: of two that both want a host steered, it gets it.
        .order_by(CatalogSubscriptionRow.created_at, CatalogSubscriptionRow.id)
    ).all()
    if not subs:
        return {}
    placed: dict[str, dict[str, str]] = {}
    for sid, block, iid, state in session.execute(
        select(
            CatalogInstanceRow.subscription, CatalogInstanceRow.block,
            CatalogInstanceRow.instance, InstanceRow.state,
        )
        .join(InstanceRow, InstanceRow.id == CatalogInstanceRow.instance)
        .join(CatalogSubscriptionRow, CatalogSubscriptionRow.id == CatalogInstanceRow.subscription)
        .where(CatalogSubscriptionRow.state == SubscriptionState.ACTIVE.value)
    ):  # fmt: skip
        if state not in _NO_PORT:
            placed.setdefault(sid, {})[block] = iid
    host_of = {
        mac.lower(): name
        for name, mac in session.execute(
            select(HostRow.name, HostRow.mac).where(HostRow.mac.is_not(None))
        )
        if mac is not None
    }
    out: dict[str, list[Keyed]] = {}
    chains: dict[int, tuple[list[str], list[tuple[str, str]]]] = {}
    for s in subs:
        if s.chain not in chains:
            chains[s.chain] = _templates(session, s.chain)
        names, talks_ab = chains[s.chain]
        running = placed.get(s.id, {})
        hosts = {
            k: host_of[m.lower()]
            for k, m in enumerate(s.devices or [])
            if isinstance(m, str) and m.lower() in host_of
        }
        out[s.id] = chain_intents(s.id, names, talks_ab, running, hosts)
    return out


def sync(session: Session) -> dict[str, dict[str, str]]:
    """Make the stored catalog-* intents equal to wanted(); report what the platform
    refused in each subscription's `why`. Returns subscription -> {key: reason} of
    the refused ones (empty when all hold)."""
    session.flush()  # the loop's changes stay (admission expires what is loaded)
    want = wanted(session)
    specs = {k.intent.id: k.intent.model_dump(mode="json") for ks in want.values() for k in ks}
    stored = {
        iid: spec
        for iid, spec in session.execute(
            select(SdnIntentRow.id, SdnIntentRow.spec).where(SdnIntentRow.id.like(f"{PREFIX}%"))
        )
        if iid.startswith(PREFIX)
    }
    if not want and not stored:
        return {}  # no active subscription, no catalog intent: nothing to say
    if stored == specs:
        # All in place (none refused: a refused one is not stored): no admission, which
        # reads every intent and the whole view. Only a `why` that said a refusal changes.
        refused: dict[str, str] = {}
    else:
        added, removed, refused = reconcile_owned(
            session, [k.intent for ks in want.values() for k in ks], lambda i: i.startswith(PREFIX)
        )
        if added or removed or refused:
            log.info("catalog intents: added %s, removed %s, refused %s", added, removed, refused)
    out: dict[str, dict[str, str]] = {}
    for sid, keyed in want.items():
        mine = {
            k.key: f"{refused[k.intent.id]} ({k.intent.id})"
            for k in keyed
            if k.intent.id in refused
        }
        if mine:
            out[sid] = mine
    # Only those refused now, or said refused before, are written to.
    for row in session.scalars(
        select(CatalogSubscriptionRow).where(
            CatalogSubscriptionRow.state == SubscriptionState.ACTIVE.value,
            or_(
                CatalogSubscriptionRow.id.in_(sorted(out)),
                CatalogSubscriptionRow.why.contains(REFUSED),
            ),
        )
    ):
        report(session, row, out.get(row.id, {}))
    return out


def with_refusals(why: str, refused: Mapping[str, str]) -> str:
    """`why` with the refused intents said after its reason (replacing what an earlier
    pass said)."""
    base = why.split(REFUSED, 1)[0]
    if not refused:
        return base
    return base + REFUSED + "; ".join(f"{k}: {r}" for k, r in sorted(refused.items()))


def report(session: Session, row: CatalogSubscriptionRow, refused: Mapping[str, str]) -> None:
    """The refusals in the subscription's `why` and its last decision's (written only
    when they change)."""
    sid = row.id
    why = with_refusals(row.why, refused)
    if why != row.why:
        row.why = why
    last = session.scalars(
        select(CatalogDecisionRow)
        .where(CatalogDecisionRow.subscription == sid)
        .order_by(CatalogDecisionRow.id.desc())
        .limit(1)
    ).first()
    if last is not None:
        why = with_refusals(last.why, refused)
        if why != last.why:
            last.why = why
            last.data = {**(last.data or {}), "steering_refused": dict(refused)}


__all__ = ["PREFIX", "Keyed", "chain_intents", "intent_id", "sync", "wanted"]
