"""The conduit (seed, section III): between the catalog and the data plane.

On a subscription it asks the placement engine (`orchestrator/engine`) where the
chain should run, given everything already placed, and asks the platform's
coordinator for the instances; its reconcile loop re-places a subscription when
its user is seen elsewhere, or a node under it goes down, or an instance of it
is gone:

    subscribe(user, chain@v, at)
      -> adopt(what runs now) -> replace(plan, new subscription)   engine, pure
           Infeasible: Refused (409), nothing written
      -> one coordinator.create per block, on the engine's node      same transaction
      -> the decision (its `why`) stored; the caller commits, or rolls everything
         back if any create failed: never half-deployed

    step (the loop), for each active subscription:
      user seen at another node (Locator)   -> replace(keep_valid=False): follow the user
      a node under it down                  -> replace: move off it
      an instance gone or failed            -> a new one on its planned node
      -> each block whose node changed: coordinator.migrate (its state comes along)
      a block not settled (starting, migrating): wait, next pass (the last move wins,
      and an instance is never copied: one migration at a time per instance)
      -> the chains' SDN intents (steering.py) made equal to the placement: the
         user's hosts reach the entry block, their traffic crosses the blocks in
         chain order, the blocks that talk reach each other; a refusal is said in
         the subscription's `why`

All the engine sees comes from the core's tables: nodes (capacity, kind, up or
not), links (rate, delay), and as background load the instances the catalog does
not own, or what monitoring measures in use beyond the catalog's own reservations
where that is more (`monitored`: Prometheus's series, or the agents' last samples;
each decision's reason says which). The energy model per node kind is `KINDS`
(figures of the same order as the placement benchmark's).
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.model.lifecycle import LIVE, InstanceState, NodePower, NodeStatus
from netfate.orchestrator import engine as eng
from netfate.orchestrator import timeseries
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.orchestrator.nfv import power, predeploy
from netfate.orchestrator.nfv.errors import LifecycleError, NotFound
from netfate.store.db import serialize
from netfate.store.events import record
from netfate.store.tables import InstanceRow, LinkRow, NodeRow

from . import states, steering, whereabouts
from .events import SubscriptionEnded, SubscriptionPlaced, SubscriptionRefused
from .position import Locator, Position
from .states import SubscriptionState
from .tables import (
    CatalogBlockRow,
    CatalogChainRow,
    CatalogDecisionRow,
    CatalogInstanceRow,
    CatalogSettingRow,
    CatalogSiteRow,
    CatalogSubscriptionRow,
    CatalogTalkRow,
)

KINDS: dict[str, eng.NodeKind] = {
    "cpe": eng.NodeKind("cpe", idle_w=12.0, w_per_cpu=6.0, availability=0.99),
    "hrh": eng.NodeKind("hrh", idle_w=8.0, w_per_cpu=6.0, availability=0.99),
    "pe": eng.NodeKind("pe", idle_w=80.0, w_per_cpu=4.0, availability=0.999),
    "pop": eng.NodeKind("pop", idle_w=200.0, w_per_cpu=3.0, availability=0.9999),
    "core": eng.NodeKind("core", idle_w=100.0, w_per_cpu=0.0, hosts=False),
}
STORAGE_MB = {"cpe": 4096.0, "hrh": 1024.0, "pe": 65536.0, "pop": 1048576.0, "core": 0.0}
"""Storage per node kind when the node's resources do not say."""
PINNED = frozenset({"cpe", "hrh"})
"""Home gateways stay on whatever the objective (they carry the home's traffic)."""
TIERS = {"cpe": "premises", "hrh": "premises", "pe": "edge", "pop": "regional"}
UNRATED_MBPS = 10_000.0
"""A link without a rate (an unshaped veth) counts as this much."""
DEFAULT_OBJECTIVE: dict[str, Any] = {
    "name": "mix",
    "energy_weight": 1.0,
    "latency_weight": 1.0,
    "move_cost": 1.0,
}
ENDED = frozenset({InstanceState.GONE.value, InstanceState.FAILED.value})
CONSOLIDATION = "consolidation"
"""The catalog_settings key of the night consolidation's record (night.py)."""
SERIALIZE = "catalog"
"""The name under which the catalog's placements run one at a time (store.serialize)."""


class Refused(LifecycleError):
    """The engine found no placement: `refusals` say which constraint binds."""

    status = 409

    def __init__(
        self, message: str, refusals: Sequence[Mapping[str, Any]], event: SubscriptionRefused
    ) -> None:
        super().__init__(message)
        self.refusals = [dict(r) for r in refusals]
        self.event = event
        """To record once the transaction that tried is rolled back."""


class BadRequest(LifecycleError):
    status = 400


class Coordinator(Protocol):
    """What the conduit asks of the platform (nfv.coordinator; a fake in tests)."""

    def create(
        self, session: Session, *, descriptor: str, name: str, node: str, cpu: float,
        memory_mb: int,
    ) -> tuple[str, set[str]]:  # fmt: skip
        """A new instance on `node`: its id and the nodes to wake."""
        ...

    def destroy(self, session: Session, instance: str) -> set[str]: ...

    def migrate(self, session: Session, instance: str, node: str) -> set[str]: ...

    def state(self, session: Session, instance: str) -> tuple[str, str] | None:
        """(state, node) of an instance, or None when it is unknown."""
        ...


class Platform:
    """The platform's lifecycle coordinator."""

    def create(
        self, session: Session, *, descriptor: str, name: str, node: str, cpu: float,
        memory_mb: int,
    ) -> tuple[str, set[str]]:  # fmt: skip
        inst, touched = nfv.create_instance(
            session,
            nfv.CreateRequest(
                descriptor=descriptor, name=name, node=node, cpu=cpu, memory_mb=memory_mb
            ),
        )
        return inst.id, touched

    def destroy(self, session: Session, instance: str) -> set[str]:
        inst = session.get(InstanceRow, instance)
        if inst is None or inst.state in ENDED or inst.state == InstanceState.STOPPING.value:
            return set()
        return nfv.destroy_instance(session, instance)[1]

    def migrate(self, session: Session, instance: str, node: str) -> set[str]:
        return nfv.migrate_instance(session, instance, node)[1]

    def state(self, session: Session, instance: str) -> tuple[str, str] | None:
        inst = session.get(InstanceRow, instance)
        return (inst.state, inst.node) if inst is not None else None


# ------------------------------------------------------------------ reading the tables


def templates_of(
    session: Session, chain: int
) -> tuple[list[CatalogBlockRow], list[CatalogTalkRow]]:
    """A published version's templates: its blocks in chain order, its relationships."""
    blocks = session.scalars(
        select(CatalogBlockRow)
        .where(CatalogBlockRow.chain == chain)
        .order_by(CatalogBlockRow.position)
    ).all()
    talks = session.scalars(
        select(CatalogTalkRow)
        .where(CatalogTalkRow.chain == chain)
        .order_by(CatalogTalkRow.position)
    ).all()
    return list(blocks), list(talks)


def chain_of(session: Session, row: CatalogChainRow) -> eng.Chain:
    """The engine's view of one published version (from its templates)."""
    blocks, talks = templates_of(session, row.id)
    return eng.Chain(
        f"{row.name}@{row.version}",
        tuple(eng.Block(b.name, b.cpu, b.memory_mb, b.storage_mb) for b in blocks),
        tuple(eng.Talk(t.a, t.b, t.mbps) for t in talks),
        user_mbps=row.user_mbps,
        sla=eng.Sla(row.latency_ms, row.availability),
        # The user's traffic is steered through the chain block to block (steering.py):
        # a relation the descriptor gives no bandwidth (its default talks) carries it.
        chain_mbps=row.user_mbps,
    )


def functions_of(session: Session, row: CatalogChainRow) -> dict[str, str]:
    """Block -> the function (descriptor) that runs it."""
    return {b.name: b.function for b in templates_of(session, row.id)[0]}


def infrastructure(
    session: Session, ours: Iterable[str] = (), extra_cpu: Mapping[str, float] | None = None
) -> eng.Infrastructure:
    """Nodes and links as the engine models them. Instances other than `ours` (the
    catalog's own) count as background load on their node, and `extra_cpu` (a
    simulated load curve, night.py) on top. A node the catalog switched off is off
    for the engine, which may switch it on again; one off or draining for another
    reason (the operator) hosts nothing."""
    mine = set(ours)
    asleep = switched_off(session)
    load: dict[str, list[float]] = {}
    live = [s.value for s in LIVE]
    for node, iid, cpu, mem in session.execute(
        select(InstanceRow.node, InstanceRow.id, InstanceRow.cpu, InstanceRow.memory_mb).where(
            InstanceRow.state.in_(live)
        )
    ):
        if iid in mine:
            continue
        u = load.setdefault(node, [0.0, 0.0])
        u[0] += float(cpu)
        u[1] += float(mem)
    nodes = []
    kinds_used: set[str] = set()
    # A node's warm standbys hold memory (nfv/predeploy.py): background load here. The
    # engine does not model a block taking one (the create at the node does, in
    # coordinator.room), so a node full of standbys looks full to it.
    pools = predeploy.pools(session)
    for n in session.scalars(select(NodeRow).order_by(NodeRow.name)):
        kind = n.kind if n.kind in KINDS else "core"
        kinds_used.add(kind)
        res = n.resources or {}
        storage = res.get("storage_mb")
        cpu_l, mem_l = load.get(n.name, (0.0, 0.0))
        pool = pools.get(n.name)
        if pool is not None:
            mem_l += pool.fit(n.memory_mb - n.used_memory_mb)[0]
        cpu_l += (extra_cpu or {}).get(n.name, 0.0)
        on = n.power == NodePower.ON
        nodes.append(
            eng.Node(
                n.name, kind, float(n.cpu) if KINDS[kind].hosts else 0.0,
                float(n.memory_mb) if KINDS[kind].hosts else 0.0,
                float(storage) if isinstance(storage, int | float) else STORAGE_MB[kind],
                load=eng.Usage(cpu_l, mem_l, 0.0),
                up=n.status == NodeStatus.UP and (on or n.name in asleep),
                powered=on,
                pinned=kind in PINNED,
            )
        )  # fmt: skip
    links = []
    seen: set[frozenset[str]] = set()
    for ln in session.scalars(select(LinkRow).order_by(LinkRow.id)):
        pair = frozenset((ln.a, ln.b))
        if ln.a == ln.b or pair in seen:
            continue  # the engine wants one link per pair
        seen.add(pair)
        rate = ln.rate_bps / 1e6 if ln.rate_bps else UNRATED_MBPS
        links.append(eng.Link(ln.a, ln.b, rate, ln.delay_s * 1000.0))
    kinds = tuple(KINDS[k] for k in sorted(kinds_used))
    return eng.Infrastructure(kinds, tuple(nodes), tuple(links))


def objective(session: Session) -> tuple[eng.Objective, float]:
    """The operator's objective and move cost (catalog_settings), or the default."""
    row = session.get(CatalogSettingRow, "objective")
    v = row.value if row is not None and isinstance(row.value, dict) else DEFAULT_OBJECTIVE
    obj = eng.objective_named(
        str(v.get("name", "mix")),
        float(v.get("energy_weight", 1.0)),
        float(v.get("latency_weight", 1.0)),
    )
    return obj, float(v.get("move_cost", 1.0))


@dataclass
class _Sub:
    """An active subscription as the conduit works on it."""

    row: CatalogSubscriptionRow
    chain_row: CatalogChainRow
    chain: eng.Chain
    instances: dict[str, CatalogInstanceRow]
    """Block -> its instance row."""

    def engine(self, at: str | None = None) -> eng.Subscription:
        return eng.Subscription(self.row.id, self.row.user, at or self.row.at, self.chain)

    @property
    def where(self) -> dict[str, str]:
        return {b: i.node for b, i in self.instances.items()}


def _active(session: Session) -> list[_Sub]:
    """The active subscriptions, read once the catalog's decisions are serialized:
    the engine decides on a whole-network view that no row lock covers (storage,
    bandwidth, the SLAs), so two placements never decide on the same view (the
    coordinator checks CPU and memory again under its node locks anyway)."""
    session.flush()  # the caller's pending changes stay (expiring would drop them)
    serialize(session, SERIALIZE)
    session.expire_all()
    rows = session.scalars(
        select(CatalogSubscriptionRow)
        .where(CatalogSubscriptionRow.state == SubscriptionState.ACTIVE.value)
        .order_by(CatalogSubscriptionRow.id)
    ).all()
    chains: dict[int, tuple[CatalogChainRow, eng.Chain]] = {}
    insts: dict[str, dict[str, CatalogInstanceRow]] = {}
    for ir in session.scalars(select(CatalogInstanceRow)):
        insts.setdefault(ir.subscription, {})[ir.block] = ir
    out = []
    for r in rows:
        if r.chain not in chains:
            crow = session.get(CatalogChainRow, r.chain)
            if crow is None:
                continue
            chains[r.chain] = (crow, chain_of(session, crow))
        crow, chain = chains[r.chain]
        mine = insts.get(r.id, {})
        if {b.name for b in chain.blocks} != set(mine):
            continue  # not fully recorded (never true after a committed subscribe)
        out.append(_Sub(r, crow, chain, mine))
    return out


def monitored(session: Session, net: eng.Network, subs: Sequence[_Sub]) -> tuple[eng.Network, str]:
    """`net` with what monitoring sees (orchestrator/timeseries.py: Prometheus's series,
    or the agents' last samples): a node's background load is the larger of what
    other instances reserve there and what is measured in use beyond the catalog's
    own reservations; a link's, what is measured on it. Returns the network and
    where the figures came from, for the decisions' reasons."""
    reading = timeseries.current().read(session)
    managed: dict[str, list[float]] = {}
    for s in subs:
        for blk in s.chain.blocks:
            node = s.where.get(blk.name)
            if node is not None:
                u = managed.setdefault(node, [0.0, 0.0, 0.0])
                u[0], u[1], u[2] = u[0] + blk.cpu, u[1] + blk.memory_mb, u[2] + blk.storage_mb
    links = {}
    for (a, b), samples in reading.links.items():
        with contextlib.suppress(KeyError):
            net.link_index(a, b)
            links[(a, b)] = samples
    mon = eng.from_series(
        net,
        {n: series for n, series in reading.nodes.items() if n in net.index},
        links,
        how="p95",
        managed={n: eng.Usage(*u) for n, u in managed.items()},
    )
    loads = {}
    for name, seen in mon.nodes.items():
        base = net.infra.nodes[net.index[name]].load
        loads[name] = eng.Usage(
            max(base.cpu, seen.cpu), max(base.memory_mb, seen.memory_mb), base.storage_mb
        )
    return net.with_loads(loads, mon.links), reading.source


def _plan(
    session: Session, subs: Sequence[_Sub], at: Mapping[str, str] | None = None,
    extra_cpu: Mapping[str, float] | None = None,
) -> tuple[eng.Plan, str]:  # fmt: skip
    """The engine's plan of what the catalog runs now (positions `at` overriding the
    recorded ones), and where its monitoring figures came from. A topology reload
    cannot remove a node that holds a live instance; a user's node it removed reads
    as the node of their entry block."""
    ours = [i.instance for s in subs for i in s.instances.values()]
    infra = infrastructure(session, ours, extra_cpu)
    net, source = monitored(session, eng.Network(infra), subs)
    obj, _ = objective(session)
    at = at or {}
    placed = []
    for s in subs:
        where = s.where
        if not all(n in net.index for n in where.values()):
            continue
        user_at = at.get(s.row.id, s.row.at)
        if user_at not in net.index:
            user_at = where[s.chain.entry.name]
        placed.append((s.engine(user_at), where))
    return eng.adopt(net, placed, obj), source


# ------------------------------------------------------------------ writing


def switched_off(session: Session) -> dict[str, str]:
    """The nodes the catalog's consolidation switched off (night.py) and that are not
    on again (the operator may switch one on, or its drain be given up): node -> why."""
    row = session.get(CatalogSettingRow, CONSOLIDATION)
    got = row.value.get("switched_off") if row is not None else None
    if not isinstance(got, dict) or not got:
        return {}
    names = list(got)
    on = set(
        session.scalars(
            select(NodeRow.name).where(NodeRow.power == NodePower.ON.value, NodeRow.name.in_(names))
        )
    )
    return {str(k): str(v) for k, v in got.items() if k not in on}


def set_switched_off(session: Session, nodes: Mapping[str, str]) -> None:
    row = session.get(CatalogSettingRow, CONSOLIDATION)
    if row is None:
        row = CatalogSettingRow(key=CONSOLIDATION, value={})
        session.add(row)
    row.value = {**row.value, "switched_off": dict(nodes)}


def wake(session: Session, node: str) -> set[str]:
    """A node the catalog switched off is switched on before anything goes there
    (the engine chose it, its idle power counted)."""
    asleep = switched_off(session)
    if node not in asleep:
        return set()
    touched = power.power_on(session, node, "catalog: the engine places a chain there")
    set_switched_off(session, {n: w for n, w in asleep.items() if n != node})
    return touched


def site_of(session: Session, node: str) -> CatalogSiteRow:
    """The node's abstract site (made the first time a block goes there)."""
    row = session.get(CatalogSiteRow, node)
    if row is None:
        n = session.get(NodeRow, node)
        kind = n.kind if n is not None else "core"
        row = CatalogSiteRow(
            node=node, site="site-" + secrets.token_hex(3), tier=TIERS.get(kind, "core")
        )
        session.add(row)
        session.flush()
    return row


def with_loads(why: str, source: str) -> str:
    """A decision's reason, with where the loads it weighed came from."""
    return f"{why} (loads: {source})"


def _decision_row(
    session: Session, sid: str, d: eng.Decision, source: str, action: str | None = None
) -> CatalogDecisionRow:
    row = CatalogDecisionRow(
        subscription=sid,
        at=time.time(),
        action=action or d.action,
        objective=d.objective,
        nodes=dict(d.nodes),
        rtt_ms=d.rtt_ms,
        why=with_loads(d.why, source),
        data={
            "monitoring": source,
            "cost": d.cost,
            "energy_w": d.energy_w,
            "binding": d.binding,
            "binding_detail": d.binding_detail,
            "runner_up": d.runner_up,
            "runner_up_lost": d.runner_up_lost,
        },
    )
    session.add(row)
    return row


def _refusal(r: eng.Refusal) -> dict[str, Any]:
    return {
        "subscription": r.subscription,
        "constraint": r.constraint,
        "detail": r.detail,
        "proven": r.proven,
    }


@dataclass
class Conduit:
    coordinator: Coordinator = field(default_factory=Platform)
    locator: Locator = field(default_factory=whereabouts.Whereabouts)

    # -------------------------------------------------------------- subscribe

    def subscribe(
        self, session: Session, user: str, chain_row: CatalogChainRow, at: str,
        devices: Sequence[str] = (),
    ) -> tuple[CatalogSubscriptionRow, CatalogDecisionRow, set[str]]:  # fmt: skip
        """Place and create a new subscription (the caller commits; on any error it
        rolls back, and nothing of the subscription is left)."""
        if session.get(NodeRow, at) is None:
            raise BadRequest(f"unknown node {at!r} (at)")
        sid = "c-" + secrets.token_hex(4)
        subs = _active(session)
        plan, source = _plan(session, subs)
        chain = chain_of(session, chain_row)
        label = f"{chain_row.name}@{chain_row.version}"
        try:
            plan = eng.replace(plan, eng.Subscription(sid, user, at, chain))
        except eng.Infeasible as e:
            raise Refused(
                f"{label} cannot be placed for {user} at {at}: {e}",
                [_refusal(r) for r in e.refusals],
                SubscriptionRefused(user, label, str(e)[:2000]),
            ) from None
        d = plan.decisions[sid]
        now = time.time()
        row = CatalogSubscriptionRow(
            id=sid, user=user, chain=chain_row.id, state=SubscriptionState.ACTIVE.value,
            at=at, devices=[m.lower() for m in devices], created_at=now, updated_at=now,
            why=with_loads(d.why, source), detail="",
        )  # fmt: skip
        session.add(row)
        session.flush()
        touched = self._create(session, row, chain_row, chain, d.nodes)
        drow = _decision_row(session, sid, d, source)
        record(session, SubscriptionPlaced(sid, user, label, d.action, dict(d.nodes), row.why))
        return row, drow, touched

    def _create(
        self, session: Session, row: CatalogSubscriptionRow, chain_row: CatalogChainRow,
        chain: eng.Chain, nodes: Mapping[str, str], only: Iterable[str] | None = None,
    ) -> set[str]:  # fmt: skip
        fns = functions_of(session, chain_row)
        touched: set[str] = set()
        wanted = set(only) if only is not None else None
        for b in chain.blocks:
            if wanted is not None and b.name not in wanted:
                continue
            node = nodes[b.name]
            touched |= wake(session, node)
            iid, t = self.coordinator.create(
                session, descriptor=fns[b.name], name=f"{row.id}-{b.name}", node=node,
                cpu=b.cpu, memory_mb=round(b.memory_mb),
            )  # fmt: skip
            touched |= t
            old = session.get(CatalogInstanceRow, (row.id, b.name))
            if old is not None:
                old.instance, old.node = iid, node
            else:
                session.add(
                    CatalogInstanceRow(subscription=row.id, block=b.name, instance=iid, node=node)
                )
            site_of(session, node)
        return touched

    # -------------------------------------------------------------- end, upgrade

    def unsubscribe(self, session: Session, row: CatalogSubscriptionRow) -> set[str]:
        states.check(SubscriptionState(row.state), SubscriptionState.ENDED)
        touched: set[str] = set()
        for ir in session.scalars(
            select(CatalogInstanceRow).where(CatalogInstanceRow.subscription == row.id)
        ):
            touched |= self.coordinator.destroy(session, ir.instance)
        row.state = SubscriptionState.ENDED.value
        row.updated_at = time.time()
        row.detail = ""
        session.add(
            CatalogDecisionRow(
                subscription=row.id, at=row.updated_at, action="ended", objective="",
                nodes={}, rtt_ms=None, why="unsubscribed: its instances stop", data={},
            )
        )  # fmt: skip
        record(session, SubscriptionEnded(row.id, row.user))
        return touched

    def upgrade(
        self, session: Session, row: CatalogSubscriptionRow, target: CatalogChainRow
    ) -> tuple[CatalogDecisionRow, set[str]]:
        """Move a subscription to another version of its chain: placed by the engine
        as a re-placement (its old blocks' room counts as free), the old instances
        stop and the new ones are asked for in one transaction; refused (and nothing
        changes) when the new version does not fit."""
        states.check(SubscriptionState(row.state), SubscriptionState.ACTIVE)
        subs = _active(session)
        plan, source = _plan(session, subs)
        chain = chain_of(session, target)
        label = f"{target.name}@{target.version}"
        try:
            plan = eng.replace(
                plan, eng.Subscription(row.id, row.user, row.at, chain), keep_valid=False
            )
        except eng.Infeasible as e:
            raise Refused(
                f"{row.id} cannot move to {label}: {e}",
                [_refusal(r) for r in e.refusals],
                SubscriptionRefused(row.user, label, str(e)[:2000]),
            ) from None
        d = plan.decisions[row.id]
        touched: set[str] = set()
        for ir in list(
            session.scalars(
                select(CatalogInstanceRow).where(CatalogInstanceRow.subscription == row.id)
            )
        ):
            touched |= self.coordinator.destroy(session, ir.instance)
            session.delete(ir)
        session.flush()
        row.chain = target.id
        touched |= self._create(session, row, target, chain, d.nodes)
        row.why, row.updated_at, row.detail = with_loads(d.why, source), time.time(), ""
        drow = _decision_row(session, row.id, d, source, "upgraded")
        record(
            session, SubscriptionPlaced(row.id, row.user, label, "upgraded", dict(d.nodes), row.why)
        )
        return drow, touched

    # -------------------------------------------------------------- the loop

    def step(self, session: Session) -> set[str]:
        """One pass of the reconcile loop (module docstring), then the chains' SDN
        intents made equal to what is placed (steering.py)."""
        touched = self._place(session)
        steering.sync(session)
        return touched

    def _place(self, session: Session) -> set[str]:
        subs = _active(session)
        if not subs:
            return set()
        devices: dict[str, list[str]] = {}  # a user's devices: all their subscriptions'
        for s in subs:
            devices.setdefault(s.row.user, []).extend(s.row.devices or [])
        seen = self.locator.where(session, devices)
        self._record_positions(session, seen)
        nodes = {n.name: n for n in session.scalars(select(NodeRow))}
        touched: set[str] = set()
        todo: dict[str, str] = {}  # subscription -> why it is re-placed
        at: dict[str, str] = {}
        for s in subs:
            pos = seen.get(s.row.user)
            if pos is not None and pos.node in nodes and pos.node != s.row.at:
                at[s.row.id] = pos.node
                todo[s.row.id] = f"user seen at {pos.node} ({pos.source})"
            down = sorted(
                n for n in set(s.where.values())
                if n not in nodes or nodes[n].status != NodeStatus.UP
            )  # fmt: skip
            if down:
                todo.setdefault(s.row.id, f"node {', '.join(down)} not up")
            if self._undone(session, s):
                at.setdefault(s.row.id, s.row.at)
                todo.setdefault(s.row.id, "a move did not complete")
            touched |= self._recreate(session, s, nodes)
            if s.row.id not in todo and s.row.detail:
                s.row.detail = ""  # what it waited for, or could not do, is past
        if not todo:
            return touched
        plan, source = _plan(session, subs, at)
        by_id = {s.row.id: s for s in subs}
        _, move_cost = objective(session)
        for sid, reason in todo.items():
            s = by_id[sid]
            busy = self._unsettled(session, s)
            if busy:
                s.row.detail = f"{reason}; waiting for {busy} to settle"
                continue
            try:
                plan = eng.replace(
                    plan, s.engine(at.get(sid)), keep_valid=sid not in at, move_cost=move_cost
                )
            except (eng.Infeasible, eng.ModelError) as e:
                detail = f"{reason}; cannot re-place: {e}"[:2000]
                if s.row.detail != detail:
                    s.row.detail = detail
                    record(session, SubscriptionRefused(s.row.user, s.chain.name, str(e)))
                continue
            touched |= self._apply(session, s, plan.decisions[sid], at.get(sid), reason, source)
        return touched

    def _recreate(self, session: Session, s: _Sub, nodes: Mapping[str, NodeRow]) -> set[str]:
        """Blocks whose instance is gone or failed get a new one where it was placed
        (if that node is up; else the re-placement moves them)."""
        lost = []
        for b, ir in s.instances.items():
            st = self.coordinator.state(session, ir.instance)
            node = nodes.get(ir.node)
            if (st is None or st[0] in ENDED) and node is not None and node.status == NodeStatus.UP:
                lost.append(b)
        if not lost:
            return set()
        touched = self._create(session, s.row, s.chain_row, s.chain, s.where, only=lost)
        why = f"recreated {', '.join(sorted(lost))}: the instance was gone or failed"
        session.add(
            CatalogDecisionRow(
                subscription=s.row.id, at=time.time(), action="recreated", objective="",
                nodes={b: s.instances[b].node for b in lost}, rtt_ms=None, why=why, data={},
            )
        )  # fmt: skip
        return touched

    def _undone(self, session: Session, s: _Sub) -> bool:
        """A block runs elsewhere than planned (its migration failed and was rolled
        back): the record follows the fact, and the subscription is re-placed."""
        undone = False
        for ir in s.instances.values():
            st = self.coordinator.state(session, ir.instance)
            if st is not None and st[0] == InstanceState.RUNNING.value and st[1] != ir.node:
                ir.node = st[1]
                undone = True
        return undone

    def _unsettled(self, session: Session, s: _Sub) -> str:
        for b, ir in sorted(s.instances.items()):
            st = self.coordinator.state(session, ir.instance)
            if st is not None and st[0] not in (InstanceState.RUNNING.value, *ENDED):
                return f"{b} ({st[0]})"
        return ""

    def _apply(
        self, session: Session, s: _Sub, d: eng.Decision, new_at: str | None, reason: str,
        source: str,
    ) -> set[str]:  # fmt: skip
        touched: set[str] = set()
        for b, node in d.nodes.items():
            ir = s.instances[b]
            if ir.node == node:
                continue
            st = self.coordinator.state(session, ir.instance)
            if st is None or st[0] in ENDED:
                touched |= self._create(session, s.row, s.chain_row, s.chain, d.nodes, only=[b])
            else:
                touched |= wake(session, node)
                touched |= self.coordinator.migrate(session, ir.instance, node)
                ir.node = node
            site_of(session, node)
        if new_at is not None:
            s.row.at = new_at
        why = f"{reason}: {with_loads(d.why, source)}"
        s.row.why, s.row.detail, s.row.updated_at = why, "", time.time()
        drow = _decision_row(session, s.row.id, d, source)
        drow.why = why
        record(
            session,
            SubscriptionPlaced(s.row.id, s.row.user, s.chain.name, d.action, dict(d.nodes), why),
        )
        return touched

    def _record_positions(self, session: Session, seen: Mapping[str, Position]) -> None:
        whereabouts.record(session, seen)  # the where-is service's history


# ------------------------------------------------------------------ abstract locations

_NODE_CHARS = "A-Za-z0-9_-"


def abstracted(text: str, sites: Mapping[str, str]) -> str:
    """`text` with every node name replaced by its abstract site."""
    if not sites:
        return text
    names = sorted(sites, key=len, reverse=True)
    # A dash may be part of a node's name, but a link is named "a--b": both ends count.
    pat = re.compile(
        rf"(?:(?<![{_NODE_CHARS}])|(?<=--))("
        + "|".join(re.escape(n) for n in names)
        + rf")(?:(?![{_NODE_CHARS}])|(?=--))"
    )
    return pat.sub(lambda m: sites[m.group(1)], text)


def all_sites(session: Session) -> dict[str, str]:
    """node -> abstract site, for every node (a node with no site yet gets a
    placeholder here, never its name: reads do not write)."""
    known = {r.node: r.site for r in session.scalars(select(CatalogSiteRow))}
    for name in session.scalars(select(NodeRow.name)):
        known.setdefault(name, "another site")
    return known


def get_subscription(session: Session, sid: str) -> CatalogSubscriptionRow:
    row = session.get(CatalogSubscriptionRow, sid)
    if row is None:
        raise NotFound(f"unknown subscription {sid!r}")
    return row
