"""Turning requests into desired state, and agents' reports into recorded facts.

Nothing here talks to an agent. Each operation changes rows in one transaction and
bumps the `revision` of every node whose desired state changed; agents long-poll
on that revision and converge. A lost message is therefore harmless: the next poll
or report carries the same information again.

Concurrent requests. Every change to what a node runs or reserves (placing an
instance there or migrating one to it, an instance's state, the addresses of its
LANs) is made holding that node's row lock (`lock_nodes`), so what a decision read
cannot change under it: a full node or a taken address is seen as such. Locks are
taken first, before anything is read, and in node-name order, so two transactions
never wait for each other in a cycle. Placement reads every node unlocked, so the
chosen node is checked again under its lock; if it was filled meanwhile the whole
transaction runs again (`RetryTransaction`), and then queues behind the other
placements that lost a race (`serialize`, taken before any node lock). The database backs this
with unique indexes (one holder per address, one open migration per instance); on
SQLite a writing transaction holds the database's write lock anyway (store/db.py).

A node's room is its capacity less its kept use (`nodes.used_cpu`,
`nodes.used_memory_mb`), which every flush that changes an instance or a migration
updates in the same transaction (store/usage.py), under those same node locks: a
placement reads 1,000 nodes' room in one plain query instead of summing every
instance. `used_capacity` recomputes it from the instances; `violations` compares.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
from sqlalchemy import bindparam, func, insert, inspect, select, update
from sqlalchemy.orm import Session, make_transient_to_detached

from netfate.model import events as ev
from netfate.model.lifecycle import (
    LIVE,
    OPEN_MIGRATIONS,
    TARGET_SAYS,
    IllegalTransition,
    InstanceState,
    MigrationPhase,
    MigrationStatus,
    NodeStatus,
    check_migration_step,
    check_transition,
)
from netfate.model.secrets import restore
from netfate.orchestrator.engine import Candidate, NoPlacement, PlacementRequest, place
from netfate.orchestrator.engine.placement import POLICIES, nearest, nearest_near
from netfate.orchestrator.nfv import fnevents, predeploy
from netfate.orchestrator.nfv.errors import Conflict, LifecycleError, NoCapacity, NotFound
from netfate.store import usage
from netfate.store.conflicts import RetryTransaction, retrying
from netfate.store.db import exclusive, serialize
from netfate.store.events import current_actor, record, write
from netfate.store.tables import (
    DescriptorRow,
    HostRow,
    InstanceRow,
    LanRow,
    LinkRow,
    MigrationRow,
    NodeRow,
    PortRow,
    TopologyRow,
    TransitionRow,
)

S = InstanceState
PLACEMENT = "placement"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Descriptors every orchestrator knows; services bring more (their contract).
BUILTIN_DESCRIPTORS: tuple[dict[str, Any], ...] = (
    {
        "name": "counter",
        "function": "counter",
        "cpu": 0.1,
        "memory_mb": 64,
        "stateful": True,
        "description": "UDP request counter (port 7777): answers each datagram with the "
        "running count per client; its counts are its state and survive migration.",
    },
    {
        "name": "forwarder",
        "function": "forwarder",
        "cpu": 0.2,
        "memory_mb": 64,
        "stateful": False,
        "description": "One-armed router: forwards what a steering intent sends it back "
        "towards its destination (the simplest service chain element).",
    },
)


def ensure_descriptors(session: Session, extra: Iterable[Mapping[str, Any]] = ()) -> None:
    """Seed the platform's descriptors and `extra` (the services'); existing ones are kept."""
    for d in (*BUILTIN_DESCRIPTORS, *extra):
        if session.get(DescriptorRow, d["name"]) is None:
            session.add(DescriptorRow(**d))


def lock_nodes(session: Session, *names: str | None) -> dict[str, NodeRow]:
    """Hold these nodes' rows locked until the transaction ends (PostgreSQL: SELECT ...
    FOR NO KEY UPDATE, in name order; SQLite: the transaction holds the write lock).
    Returns them, read now (an unknown name is not there).

    Call it before reading what a change depends on: a row this session loaded
    before keeps what it held then, so read again what you decide on (queries do;
    `session.get` of a loaded row does not)."""
    wanted = sorted({n for n in names if n})
    if not wanted:
        return {}
    rows = session.scalars(
        select(NodeRow)
        .where(NodeRow.name.in_(wanted))
        .order_by(NodeRow.name)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).all()
    return {r.name: r for r in rows}


def bump(session: Session, *nodes: str | None) -> set[str]:
    """Mark nodes' desired state as changed; returns the names for the notifier.

    One atomic UPDATE ... SET revision = revision + 1 per node (in name order): two
    concurrent bumps give two increments, so an agent waiting on a revision never
    misses the second change."""
    names = {n for n in nodes if n}
    if not names:
        return names
    # Plain SQL on the session's connection (the ORM's UPDATE with a fetch of the new
    # values cost a fifth of a pinned create); pending changes go first, as the ORM's
    # autoflush did, and the session's copies of the rows read their revision again.
    session.flush()
    conn = session.connection()
    mapper = inspect(NodeRow)
    for name in sorted(names):
        conn.execute(_BUMP, {"b_name": name})
        row = session.identity_map.get(mapper.identity_key_from_primary_key((name,)))
        if row is not None:
            session.expire(row, ["revision"])
    return names


_BUMP = (
    update(NodeRow).where(NodeRow.name == bindparam("b_name")).values(revision=NodeRow.revision + 1)
)
"""Run on the connection: plain SQL, the session's copies untouched."""


def transition(session: Session, inst: InstanceRow, target: InstanceState, reason: str) -> None:
    current = InstanceState(inst.state)
    if current == target:
        return
    check_transition(current, target)
    now = time.time()
    inst.state = target.value
    inst.updated_at = now
    session.add(
        TransitionRow(
            instance=inst.id,
            previous=current.value,
            state=target.value,
            node=inst.node,
            at=now,
            reason=reason,
        )
    )
    record(
        session,
        ev.InstanceStateChanged(inst.id, inst.node, current.value, target.value, reason),
    )


# ---------------------------------------------------------------- capacity, graph


def used_capacity(session: Session, node: str | None = None) -> dict[str, tuple[float, int]]:
    """CPU and memory reserved per node by live instances (incl. migration targets),
    summed from them: what each node's kept `used_cpu`/`used_memory_mb` must equal
    (store/usage.py). Placement reads the kept figures; this is for checks."""
    return usage.recompute(session, node)


def violations(session: Session, *, kept_use: bool = True) -> list[str]:
    """What must never be true, whatever requests ran at once: an address held by two
    instances, a node over its CPU or memory (reservations of migrations to it
    included), an instance with two open migrations. The database and the node locks
    prevent all three; this reads them back (tests, benchmarks, an operator's check).
    And, with `kept_use`, a node whose kept use (store/usage.py) is not the sum of
    what it runs (off: a database from before those columns, a benchmark's baseline).
    Call it in one snapshot (a read transaction)."""
    out = []
    held = (
        select(InstanceRow.ip, func.count())
        .where(InstanceRow.state != S.GONE.value, InstanceRow.ip.is_not(None))
        .group_by(InstanceRow.ip)
        .having(func.count() > 1)
    )
    for ip, n in session.execute(held).all():
        out.append(f"address {ip} held by {n} instances")
    used = used_capacity(session)
    nodes = select(NodeRow.name, NodeRow.cpu, NodeRow.memory_mb).order_by(NodeRow.name)
    for name, cap_cpu, cap_mem in session.execute(nodes).all():
        cpu, mem = used.get(name, (0.0, 0))
        if cpu > cap_cpu + 1e-9 or mem > cap_mem:
            out.append(f"{name} over capacity: {cpu:.2f}/{cap_cpu} CPU, {mem}/{cap_mem} MiB")
    twice = (
        select(MigrationRow.instance, func.count())
        .where(MigrationRow.phase.in_([p.value for p in OPEN_MIGRATIONS]))
        .group_by(MigrationRow.instance)
        .having(func.count() > 1)
    )
    for iid, n in session.execute(twice).all():
        out.append(f"instance {iid} has {n} open migrations")
    if not kept_use:
        return out
    kept = session.execute(select(NodeRow.name, NodeRow.used_cpu, NodeRow.used_memory_mb))
    for name, cpu, mem in kept.all():
        want_cpu, want_mem = used.get(name, (0.0, 0))
        if abs(cpu - want_cpu) > usage.CPU_SLACK or mem != want_mem:
            out.append(
                f"{name} keeps {cpu:.2f} CPU, {mem} MiB used; its instances use "
                f"{want_cpu:.2f} CPU, {want_mem} MiB"
            )
    return out


def room(session: Session, row: NodeRow) -> Candidate:
    """One node (a row read under its lock, so its kept use is current) with its free
    capacity: the memory its warm standbys hold counts as used (`_standbys`)."""
    free_mb = row.memory_mb - row.used_memory_mb
    held, standbys = _standbys(predeploy.pools(session, [row.name]).get(row.name), free_mb)
    return Candidate(
        row.name,
        row.kind,
        row.status == NodeStatus.UP,
        row.cpu - row.used_cpu,
        free_mb - held,
        lan=_node_lan(session, row.name) is not None,
        power=row.power,
        standbys=standbys,
    )


def _standbys(pool: predeploy.Pool | None, free_mb: int) -> tuple[int, tuple[tuple[str, int], ...]]:
    """(MiB the node's warm standbys hold, (function, MiB one holds)) given the memory
    its instances leave: only the planned standbys that fit there are kept, so a
    node's instances and standbys never exceed its memory; a create of a function it
    keeps a standby of takes one and reuses its memory (engine/placement.take_mb)."""
    if pool is None:
        return 0, ()
    return pool.fit(free_mb)


_CANDIDATE_COLUMNS = (
    NodeRow.name,
    NodeRow.kind,
    NodeRow.status,
    NodeRow.cpu - NodeRow.used_cpu,
    NodeRow.memory_mb - NodeRow.used_memory_mb,
    NodeRow.power,
)


def candidates(session: Session, node: str | None = None) -> list[Candidate]:
    """Every node (or just `node`) with its free capacity: its row's kept use.

    Read as plain columns on the session's connection (ORM rows for 1,000 nodes cost
    more than the placement; pending changes are flushed first so their use counts),
    and each distinct row becomes a Candidate once (`_candidate`)."""
    q = select(*_CANDIDATE_COLUMNS)
    if node is not None:
        q = q.where(NodeRow.name == node)
    with_lan = lan_nodes(session)
    session.flush()
    rows = session.connection().execute(q).all()
    pools = predeploy.pools(session, None if node is None else [node])
    return [_candidate(*row, row[0] in with_lan, pools.get(row[0])) for row in rows]


def _named_candidates(
    session: Session, names: Sequence[str], with_lan: frozenset[str] | None = None
) -> dict[str, Candidate]:
    """The candidates of those of `names` that are nodes (the caller flushed);
    `with_lan`: `lan_nodes`, if the caller read it."""
    q = select(*_CANDIDATE_COLUMNS).where(NodeRow.name.in_(names))
    if with_lan is None:
        with_lan = lan_nodes(session)
    rows = session.connection().execute(q).all()
    pools = predeploy.pools(session, names)
    return {row[0]: _candidate(*row, row[0] in with_lan, pools.get(row[0])) for row in rows}


# Candidates by their every field: between two creates all nodes but one keep the
# same figures, and building 1,000 frozen dataclasses each time cost ~3 ms.
_CANDIDATES: dict[tuple[Any, ...], Candidate] = {}
_CANDIDATES_MAX = 200_000


def _candidate(
    name: str,
    kind: str,
    status: str,
    cpu: float,
    mem: int,
    power: str,
    lan: bool,
    pool: predeploy.Pool | None = None,
) -> Candidate:
    key = (name, kind, status, cpu, mem, power, lan, pool)
    c = _CANDIDATES.get(key)
    if c is None:
        if len(_CANDIDATES) >= _CANDIDATES_MAX:
            _CANDIDATES.clear()
        up = status == NodeStatus.UP
        held, standbys = _standbys(pool, mem)
        c = _CANDIDATES[key] = Candidate(
            name, kind, up, cpu, mem - held, lan=lan, power=power, standbys=standbys
        )
    return c


EMPTY_GRAPH: nx.Graph[str] = nx.Graph()


# The topology graph changes only when a topology is loaded; building it for every
# placement cost ~100 ms at 1,000 nodes. Cached per database and topology load, as
# is the set of nodes with a LAN (LANs, too, come only from a topology load).
_GRAPHS: dict[tuple[str, float], nx.Graph[str]] = {}
_LAN_NODES: dict[tuple[str, float], frozenset[str]] = {}


def _topology_key(session: Session) -> tuple[tuple[str, float], bool]:
    """(database URL, when its topology was loaded), and whether one was."""
    loaded = session.scalar(select(TopologyRow.loaded_at).where(TopologyRow.id == 1))
    return (str(session.get_bind().engine.url), float(loaded or 0.0)), loaded is not None


def _remember(cache: dict[tuple[str, float], Any], key: tuple[str, float], value: Any) -> None:
    for old in [k for k in cache if k[0] == key[0]]:
        del cache[old]
    cache[key] = value


TopologyKey = tuple[tuple[str, float], bool]
"""`_topology_key`'s answer."""


def graph(session: Session, known: TopologyKey | None = None) -> nx.Graph[str]:
    """The topology's graph; `known`: the topology's key, if the caller read it."""
    key, loaded = known if known is not None else _topology_key(session)
    cached = _GRAPHS.get(key)
    if cached is not None and loaded:
        return cached
    g: nx.Graph[str] = nx.Graph()
    for n in session.scalars(select(NodeRow)).all():
        g.add_node(n.name, kind=n.kind)
    for link in session.scalars(select(LinkRow)).all():
        g.add_edge(link.a, link.b, delay_s=link.delay_s, rate_bps=link.rate_bps)
    for h in session.scalars(select(HostRow)).all():
        g.add_node(h.name, kind="host")
        g.add_edge(h.name, h.node, delay_s=0.0)
    if loaded:
        _remember(_GRAPHS, key, g)
    return g


def lan_nodes(session: Session, known: TopologyKey | None = None) -> frozenset[str]:
    """The nodes that have a LAN (a core node hosts functions only then); `known`:
    the topology's key, if the caller read it."""
    key, loaded = known if known is not None else _topology_key(session)
    cached = _LAN_NODES.get(key)
    if cached is not None and loaded:
        return cached
    nodes = frozenset(session.scalars(select(LanRow.node).distinct()))
    if loaded:
        _remember(_LAN_NODES, key, nodes)
    return nodes


# ---------------------------------------------------------------- addressing


def instance_mac(instance_id: str) -> str:
    """Locally administered unicast MAC derived from the id: stable across migration."""
    h = hashlib.sha256(instance_id.encode()).digest()
    return "02:4e:" + ":".join(f"{b:02x}" for b in h[:4])


def _allocate_ip(session: Session, lan: LanRow) -> str:
    """A free address of the LAN, from the top down, least recently used first.

    Reusing the address a destroyed instance had just freed would give clients a
    stale ARP entry (old MAC) for up to a minute; never-used addresses come first.
    Only this LAN's hosts and instances are read (indexed), so the cost does not
    grow with the history of the whole platform.
    """
    net = ipaddress.ip_network(lan.subnet)
    taken: set[IPAddress] = {ipaddress.ip_address(lan.gateway)}
    host_ips = session.scalars(
        select(HostRow.ip).where(HostRow.node == lan.node, HostRow.ip.is_not(None))
    ).all()
    for h in host_ips:
        if h is not None and ipaddress.ip_address(h) in net:
            taken.add(ipaddress.ip_address(h))
    last_used: dict[IPAddress, float] = {}
    rows = session.execute(
        select(InstanceRow.ip, InstanceRow.state, InstanceRow.updated_at).where(
            InstanceRow.lan == lan.subnet, InstanceRow.ip.is_not(None)
        )
    ).all()
    for ip, state, updated in rows:
        if ip is None:
            continue
        addr = ipaddress.ip_interface(ip).ip
        if state == S.GONE.value:
            last_used[addr] = max(last_used.get(addr, 0.0), updated)
        else:
            taken.add(addr)
    # Walk from the top: most LANs are nearly empty, so this stops early.
    best: IPAddress | None = None
    best_used = float("inf")
    for addr in _hosts_downward(net):
        if addr in taken:
            continue
        used = last_used.get(addr, 0.0)
        if used == 0.0:
            best = addr
            break
        if used < best_used:
            best, best_used = addr, used
    if best is None:
        raise NoCapacity(f"LAN {lan.subnet} of node {lan.node} has no free address")
    return f"{best}/{net.prefixlen}"


def _hosts_downward(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Iterator[IPAddress]:
    first = int(net.network_address) + 1
    last = int(net.broadcast_address) - 1 if net.num_addresses > 2 else first
    cls = type(net.network_address)
    for n in range(last, first - 1, -1):
        yield cls(n)


def _host_lan(session: Session, host: HostRow | None) -> LanRow | None:
    """The LAN a served host is on: an instance serving it takes its address there."""
    if host is None or not host.ip:
        return None
    for lan in session.scalars(select(LanRow).where(LanRow.node == host.node)).all():
        if ipaddress.ip_address(host.ip) in ipaddress.ip_network(lan.subnet):
            return lan
    return None


def _named_lan(session: Session, node: str | None, subnet: str) -> LanRow:
    """The LAN `subnet` of `node` (CreateRequest.lan); NotFound if it has none such."""
    if node is None:
        raise NotFound("an instance's lan needs its node")
    for lan in session.scalars(select(LanRow).where(LanRow.node == node)).all():
        if ipaddress.ip_network(lan.subnet) == ipaddress.ip_network(subnet, strict=False):
            return lan
    raise NotFound(f"node {node} has no LAN {subnet}")


def _node_lan(session: Session, node: str) -> LanRow | None:
    return session.scalars(select(LanRow).where(LanRow.node == node).order_by(LanRow.id)).first()


# ---------------------------------------------------------------- operations


@dataclass(frozen=True)
class CreateRequest:
    descriptor: str
    name: str | None = None
    node: str | None = None
    serves: str | None = None
    policy: str = "nearest"
    config: dict[str, Any] | None = None
    measured_rtt_ms: float | None = None
    """A measured round trip from `serves`, for delay-aware policies."""
    cpu: float | None = None
    memory_mb: int | None = None
    """What to reserve when more than the descriptor's own figures (a service chain's
    block that declares more); None: the descriptor's."""
    owner: str | None = None
    """The account it is made for; None: whoever's request is being served
    (store.events.ACTOR), or the platform's own when none is (a loop)."""
    lan: str | None = None
    """Which LAN (subnet) of `node` its address comes from, for a node with several
    (a Personal Network's vHG on its own LAN); None: the served host's, else the
    node's first. Needs `node`."""


Address = tuple[str | None, str | None, str | None]
"""An instance's ip, lan (subnet) and gateway."""


def _figures(desc: DescriptorRow, req: CreateRequest) -> tuple[float, int]:
    cpu = max(desc.cpu, req.cpu) if req.cpu is not None else desc.cpu
    memory_mb = max(desc.memory_mb, req.memory_mb) if req.memory_mb is not None else desc.memory_mb
    return cpu, memory_mb


def create_instance(session: Session, req: CreateRequest) -> tuple[InstanceRow, set[str]]:
    desc = session.get(DescriptorRow, req.descriptor)
    if desc is None:
        raise NotFound(f"unknown descriptor {req.descriptor!r}")
    cpu, memory_mb = _figures(desc, req)
    preq = PlacementRequest(
        cpu=cpu,
        memory_mb=memory_mb,
        serves=req.serves,
        delay_bound_ms=desc.delay_bound_ms,
        measured_rtt_ms=req.measured_rtt_ms,
        function=desc.function,
    )
    host = session.get(HostRow, req.serves) if req.serves is not None else None
    if req.serves is not None and host is None:
        raise NotFound(f"unknown host {req.serves!r} (serves)")
    # The address comes from the served host's LAN if it has one, else from the
    # placement node's; either way under the LAN's node's lock.
    host_lan = _host_lan(session, host)
    if req.lan is not None:
        host_lan = _named_lan(session, req.node, req.lan)
    lan_node = host_lan.node if host_lan is not None else None
    if req.node is not None:
        row = lock_nodes(session, req.node, lan_node).get(req.node)
        if row is None:
            raise NotFound(f"unknown node {req.node!r}")
        try:
            placement = place(preq, [room(session, row)], EMPTY_GRAPH, "least-loaded")
        except NoPlacement as e:
            raise NoCapacity(str(e)) from None
        why = "named in the request"
        policy = "pinned"
    else:
        if retrying():
            # It lost the node it chose to a concurrent request: near full, placements
            # racing for the same emptiest nodes lose again and again, so now queue.
            serialize(session, PLACEMENT)
        # The topology graph is only read when the policy measures distances. Its
        # key is read once (each read is a statement under SQLite's write lock).
        known = _topology_key(session)
        g = graph(session, known) if req.serves is not None else EMPTY_GRAPH
        near = None
        if req.policy == "nearest" and POLICIES.get("nearest") is nearest:
            # Only the nodes near the served host are read (their room), as many as
            # it takes; nothing found: every node, for the refusal's reasons.
            session.flush()  # pending changes' use counts (as in `candidates`)
            with_lan = lan_nodes(session, known)
            near = nearest_near(preq, g, lambda names: _named_candidates(session, names, with_lan))
        if near is not None:
            placement = near
        else:
            try:
                placement = place(preq, candidates(session), g, req.policy)
            except NoPlacement as e:
                raise NoCapacity(str(e)) from None
        why, policy = placement.why, placement.policy
        locked = lock_nodes(session, placement.node, lan_node)
        if not exclusive(session):
            # Placement read every node unlocked: check the chosen one again under its lock.
            chosen = locked.get(placement.node)
            try:
                place(preq, [room(session, chosen)] if chosen else [], EMPTY_GRAPH, "least-loaded")
            except NoPlacement:
                raise RetryTransaction(
                    f"node {placement.node} was filled by a concurrent request"
                ) from None
    lan = host_lan if host_lan is not None else _node_lan(session, placement.node)
    address = (_allocate_ip(session, lan), lan.subnet, lan.gateway) if lan is not None else None
    return _add_instance(session, req, desc, placement.node, policy, why, address)


def _add_instance(
    session: Session,
    req: CreateRequest,
    desc: DescriptorRow,
    node: str,
    policy: str,
    why: str,
    address: Address | None,
) -> tuple[InstanceRow, set[str]]:
    """The new instance's rows, its placement node locked and its address free.

    Written by plain INSERTs on the session's connection (the instance, its first
    transition, its InstancePlaced event) and one UPDATE of its node (the node's kept
    use, store/usage.py, and its revision: `bump`), instead of the ORM's unit of work
    in three flushes: on SQLite every statement is made holding the database's one
    write lock (issue 15). The instance is then put in the session as if loaded, so
    later changes to it go through the ORM (and its use is kept) as before."""
    ip, lan, gateway = address if address is not None else (None, None, None)
    cpu, memory_mb = _figures(desc, req)
    iid = "i-" + secrets.token_hex(4)
    now = time.time()
    values: dict[str, Any] = {
        "id": iid,
        "name": req.name or f"{desc.name}-{iid[2:]}",
        "descriptor": desc.name,
        "node": node,
        "state": S.REQUESTED.value,
        "serves": req.serves,
        "ip": ip,
        "lan": lan,
        "gateway": gateway,
        "mac": instance_mac(iid),
        "config": {**(desc.config or {}), **(req.config or {})},
        "cpu": cpu,
        "memory_mb": memory_mb,
        "created_at": now,
        "updated_at": now,
        "pid": None,
        "detail": "",
        "stats": {},
        "owner": req.owner if req.owner is not None else current_actor(),
    }
    session.flush()  # what is pending goes first (its use, its events' order)
    conn = session.connection()
    conn.execute(insert(InstanceRow), values)
    conn.execute(
        insert(TransitionRow),
        {
            "instance": iid,
            "previous": None,
            "state": S.REQUESTED.value,
            "node": node,
            "at": now,
            "reason": "created",
        },
    )
    conn.execute(_PLACED, {"p_name": node, "p_cpu": float(cpu), "p_mem": int(memory_mb)})
    row = session.identity_map.get(inspect(NodeRow).identity_key_from_primary_key((node,)))
    if row is not None:
        session.expire(row, ["revision", "used_cpu", "used_memory_mb"])
    inst = InstanceRow(**values)
    make_transient_to_detached(inst)
    session.add(inst)  # persistent, as if read: no INSERT, later changes tracked
    write(session, ev.InstancePlaced(iid, node, policy, why))
    return inst, {node}


_PLACED = (
    update(NodeRow)
    .where(NodeRow.name == bindparam("p_name"))
    .values(
        revision=NodeRow.revision + 1,
        used_cpu=NodeRow.used_cpu + bindparam("p_cpu"),
        used_memory_mb=NodeRow.used_memory_mb + bindparam("p_mem"),
    )
)
"""A new live instance on a node: its use, and its agent's revision (`bump`)."""


def get_instance(session: Session, iid: str) -> InstanceRow:
    inst = session.get(InstanceRow, iid)
    if inst is None:
        raise NotFound(f"unknown instance {iid!r}")
    return inst


def _locked_instance(
    session: Session, iid: str, *also: str
) -> tuple[InstanceRow, dict[str, NodeRow]]:
    """The instance, read again once its node, the targets of its open migrations and
    `also` are locked (and those node rows). If it moved meanwhile (a migration
    ended), run it all again."""
    inst = get_instance(session, iid)
    nodes = {inst.node, *also, *(m.target for m in _open_migrations(session, iid))}
    locked = lock_nodes(session, *nodes)
    if exclusive(session):
        return inst, locked  # read in this transaction, which holds the database
    session.refresh(inst)
    now = {inst.node, *(m.target for m in _open_migrations(session, iid))}
    if not now <= nodes:
        raise RetryTransaction(f"instance {iid} moved while it was being changed")
    return inst, locked


def destroy_instance(session: Session, iid: str) -> tuple[InstanceRow, set[str]]:
    inst, _ = _locked_instance(session, iid)
    touched = {inst.node}
    if inst.state == S.MIGRATING.value:
        for m in _open_migrations(session, iid):
            _step(m, MigrationPhase.FAILED)
            m.reason = "instance destroyed during migration"
            m.finished_at = time.time()
            touched.add(m.target)
    try:
        transition(session, inst, S.STOPPING, "destroy requested")
    except IllegalTransition as e:
        raise Conflict(str(e)) from None
    return inst, bump(session, *touched)


def _open_migrations(session: Session, iid: str) -> list[MigrationRow]:
    return list(
        session.scalars(
            select(MigrationRow)
            .where(
                MigrationRow.instance == iid,
                MigrationRow.phase.in_([p.value for p in OPEN_MIGRATIONS]),
            )
            .execution_options(populate_existing=True)
        ).all()
    )


def reconfigure_instance(
    session: Session, iid: str, config: dict[str, Any]
) -> tuple[InstanceRow, set[str]]:
    """New configuration for a live instance; its agent applies it (in place if the
    function can, else by a restart that carries its state)."""
    inst, _ = _locked_instance(session, iid)
    if inst.state not in (S.REQUESTED.value, S.STARTING.value, S.RUNNING.value):
        raise Conflict(
            f"instance {iid} is {inst.state}: only a live, settled instance can be reconfigured"
        )
    old = inst.config or {}
    config = restore(config, old)  # a secret read back as HIDDEN keeps its value
    keys = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
    inst.config = config
    inst.updated_at = time.time()
    record(session, ev.InstanceReconfigured(iid, inst.node, keys))
    return inst, bump(session, inst.node)


def migrate_instance(session: Session, iid: str, target: str) -> tuple[MigrationRow, set[str]]:
    get_instance(session, iid)  # an unknown instance is said first
    if session.get(NodeRow, target) is None:
        raise NotFound(f"unknown node {target!r}")
    inst, locked = _locked_instance(session, iid, target)
    node = locked.get(target)
    if node is None:  # removed by a topology load in between
        raise NotFound(f"unknown node {target!r}")
    if target == inst.node:
        raise Conflict(f"instance {iid} already runs on {target}")
    if inst.state != S.RUNNING.value:
        raise Conflict(str(IllegalTransition(InstanceState(inst.state), S.MIGRATING)))
    desc = session.get(DescriptorRow, inst.descriptor)
    fn = desc.function if desc is not None else None
    preq = PlacementRequest(cpu=inst.cpu, memory_mb=inst.memory_mb, function=fn)
    try:
        place(preq, [room(session, node)], EMPTY_GRAPH, "least-loaded")
    except NoPlacement as e:
        raise NoCapacity(f"cannot migrate to {target}: {e}") from None
    m = MigrationRow(
        instance=iid,
        source=inst.node,
        target=target,
        phase=MigrationPhase.PENDING.value,
        started_at=time.time(),
        reason="",
        secret=secrets.token_hex(32),  # 256 bits (agent/migration_auth.py)
    )
    session.add(m)
    transition(session, inst, S.MIGRATING, f"migration to {target} requested")
    session.flush()
    return m, bump(session, inst.node, target)


# ---------------------------------------------------------------- what an agent should run


def desired_state(session: Session, node: str) -> dict[str, Any]:
    row = session.get(NodeRow, node)
    if row is None:
        raise NotFound(f"unknown node {node!r}")
    live = [s.value for s in LIVE]
    out: list[dict[str, Any]] = []
    insts = session.scalars(
        select(InstanceRow).where(InstanceRow.node == node, InstanceRow.state.in_(live))
    ).all()
    for inst in insts:
        spec = _spec(session, inst, role="active")
        if inst.state == S.MIGRATING.value:
            for m in _open_migrations(session, inst.id):
                spec["migration"] = {
                    "id": m.id,
                    "role": "source",
                    "peer": m.target,
                    "abort": m.phase == MigrationPhase.ABORTING,
                    "secret": m.secret or "",
                }
        out.append(spec)
    incoming = session.scalars(
        select(MigrationRow).where(
            MigrationRow.target == node,
            MigrationRow.phase.in_([p.value for p in OPEN_MIGRATIONS]),
        )
    ).all()
    for m in incoming:
        moving = session.get(InstanceRow, m.instance)
        src = session.get(NodeRow, m.source)
        if moving is None or src is None:
            continue
        spec = _spec(session, moving, role="standby")
        spec["migration"] = {
            "id": m.id,
            "role": "target",
            "peer": m.source,
            "peer_endpoint": src.endpoint,
            "abort": m.phase == MigrationPhase.ABORTING,
            # The agents prove it to each other (agent/migration_auth.py); only the
            # two agents' desired states carry it.
            "secret": m.secret or "",
        }
        out.append(spec)
    doc: dict[str, Any] = {"node": node, "revision": row.revision, "instances": out}
    # The pre-deploy policy's part (nfv/predeploy.py): images, standbys.
    if predeploy.budget_of(row) is not None:
        doc["predeploy"] = predeploy.node_part(session, row)
    return doc


def _spec(session: Session, inst: InstanceRow, role: str) -> dict[str, Any]:
    desc = session.get(DescriptorRow, inst.descriptor)
    gateway = inst.gateway
    return {
        "id": inst.id,
        "name": inst.name,
        "function": desc.function if desc else inst.descriptor,
        "ip": inst.ip,
        "gateway": gateway,
        "mac": inst.mac,
        "config": inst.config,
        "cpu": inst.cpu,
        "memory_mb": inst.memory_mb,
        "role": role,
        "migration": None,
    }


# ---------------------------------------------------------------- what an agent reports


def apply_report(
    session: Session,
    node: str,
    report: dict[str, Any],
    on_event: Callable[[Session, InstanceRow, dict[str, Any]], set[str]] | None = None,
) -> set[str]:
    """Record an agent's report: heartbeat, resources, ports, instances, migrations;
    each function event its stats show for the first time goes to ``on_event``
    (nfv/fnevents.py).

    Idempotent: the same report applied twice changes nothing more.
    """
    # A migration's end moves its instance between two nodes: lock both as well.
    mids = [int(m["id"]) for m in report.get("migrations", [])]
    peers = (
        session.execute(
            select(MigrationRow.source, MigrationRow.target).where(MigrationRow.id.in_(mids))
        ).all()
        if mids
        else []
    )
    row = lock_nodes(session, node, *(n for pair in peers for n in pair)).get(node)
    if row is None:
        raise NotFound(f"unknown node {node!r}")
    now = time.time()
    touched: set[str] = set()
    row.last_seen = now
    if row.status != NodeStatus.UP:
        row.status = NodeStatus.UP.value
        record(session, ev.NodeRegistered(node, row.endpoint or ""))
    if "resources" in report:
        row.resources = report["resources"]
    if report.get("datapath_id"):
        row.datapath_id = report["datapath_id"]
    if "ports" in report:
        replace_ports(session, node, report["ports"])

    for mrep in report.get("migrations", []):
        touched |= _apply_migration_report(session, node, mrep)

    if report.get("instances") is None:
        return touched
    reported = {i["id"]: i for i in report["instances"]}
    live = [s.value for s in (*LIVE, S.STOPPING, S.FAILED)]
    mine = session.scalars(
        select(InstanceRow).where(InstanceRow.node == node, InstanceRow.state.in_(live))
    ).all()
    for inst in mine:
        rep = reported.get(inst.id)
        status = rep["status"] if rep else None
        if rep and rep.get("role") == "standby":
            continue  # a standby copy here is a migration target, not this placement
        state = InstanceState(inst.state)
        if rep and rep.get("pid"):
            inst.pid = int(rep["pid"])
        if rep and isinstance(rep.get("stats"), dict) and rep["stats"] != inst.stats:
            news = fnevents.fresh(inst.stats, rep["stats"]) if on_event is not None else []
            inst.stats = rep["stats"]
            for e in news:
                touched |= on_event(session, inst, e) if on_event is not None else set()
        if state == S.STOPPING and status is None:
            transition(session, inst, S.GONE, f"agent on {node} removed it")
            continue
        # A copy that took a warm standby says so (agent/standbys.py): its record does.
        warm = " (from a warm standby)" if rep and rep.get("from_standby") else ""
        if state in (S.REQUESTED, S.FAILED) and status in ("starting", "running"):
            transition(session, inst, S.STARTING, f"agent on {node} is starting it{warm}")
            if status == "running":
                transition(session, inst, S.RUNNING, f"agent on {node} reports it running{warm}")
        elif state == S.STARTING and status == "running":
            transition(session, inst, S.RUNNING, f"agent on {node} reports it running{warm}")
        elif state in (S.REQUESTED, S.STARTING, S.RUNNING) and status == "failed":
            inst.detail = str(rep.get("detail", ""))[:2000] if rep else ""
            transition(session, inst, S.FAILED, f"agent on {node}: {inst.detail or 'failed'}")
        elif state == S.RUNNING and status in (None, "starting"):
            # The agent lost it (process died, node restarted): it starts it again.
            why = str(rep.get("detail", "")) if rep else "no longer runs it"
            transition(session, inst, S.STARTING, f"agent on {node}: {why}"[:2000])
    return touched


def _step(m: MigrationRow, phase: MigrationPhase) -> None:
    check_migration_step(MigrationPhase(m.phase), phase)
    m.phase = phase.value


# What each side of a migration may report (model/lifecycle.py MigrationStatus):
# anything else is refused, and a word from a node that is not that side ignored.
def _apply_migration_report(session: Session, node: str, mrep: dict[str, Any]) -> set[str]:
    m = session.get(MigrationRow, int(mrep["id"]))
    try:
        status = MigrationStatus(str(mrep.get("status")))
    except ValueError:
        raise LifecycleError(f"unknown migration status {mrep.get('status')!r}") from None
    if m is None or node != (m.target if status in TARGET_SAYS else m.source):
        return set()
    # Its instance moves between source and target: apply_report locked both.
    inst = session.get(InstanceRow, m.instance)
    if inst is None:
        return set()
    phase = MigrationPhase(m.phase)
    if phase == MigrationPhase.DONE and status == MigrationStatus.DONE and m.downtime_ms is None:
        # Recorded on the source's word; the target's own figures arrived later.
        m.downtime_ms = _float(mrep.get("downtime_ms"))
        m.state_bytes = _int(mrep.get("state_bytes"))
        return set()
    if phase not in OPEN_MIGRATIONS:
        return set()
    if status == MigrationStatus.PREPARING:
        if phase == MigrationPhase.PENDING:
            _step(m, MigrationPhase.PREPARING)
        return set()
    if status == MigrationStatus.FROZEN:
        if phase != MigrationPhase.ABORTING:
            m.reason = f"{m.source} froze it and sent its final state to {m.target}"
        return set()
    if status == MigrationStatus.RELEASED:
        target = session.get(NodeRow, m.target)
        quiet = target is None or target.status != NodeStatus.UP
        if phase != MigrationPhase.ABORTING and not quiet:
            return set()  # the target reports the move itself, with its figures
        # The target asked for the release (it holds the final state) and went quiet.
        m.reason = f"recorded on {m.source}'s word: {m.target} took it over and has not reported"
        return _migration_done(session, m, inst, None, None)
    if status == MigrationStatus.DONE:
        m.reason = str(mrep.get("reason", ""))[:2000]
        return _migration_done(
            session, m, inst, _float(mrep.get("downtime_ms")), _int(mrep.get("state_bytes"))
        )
    # failed (the target holds nothing and never will) or refused (the source never froze)
    why = str(mrep.get("reason") or "unknown")
    if status == MigrationStatus.REFUSED:
        why = f"{m.source} refused to freeze: {why}"
    if phase == MigrationPhase.ABORTING:
        why = f"deadline passed, rolled back: {why}"
    _step(m, MigrationPhase.FAILED)
    m.finished_at = time.time()
    m.reason = why[:2000]
    if inst.state == S.MIGRATING.value:
        transition(session, inst, S.RUNNING, f"migration to {m.target} failed: {m.reason}")
    record(session, ev.MigrationFailed(inst.id, m.source, m.target, m.reason))
    return bump(session, m.source, m.target)


def _migration_done(
    session: Session,
    m: MigrationRow,
    inst: InstanceRow,
    downtime_ms: float | None,
    state_bytes: int | None,
) -> set[str]:
    _step(m, MigrationPhase.DONE)
    m.finished_at = time.time()
    m.downtime_ms = downtime_ms
    m.state_bytes = state_bytes
    inst.node = m.target
    if inst.state == S.MIGRATING.value:
        transition(session, inst, S.RUNNING, f"migrated from {m.source} to {m.target}")
    record(session, ev.InstanceMigrated(inst.id, m.source, m.target, downtime_ms, state_bytes))
    return bump(session, m.source, m.target)


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) else None


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) else None


def expire_migrations(session: Session, deadline_s: float) -> set[str]:
    """Migrations older than `deadline_s` that neither side settled: `aborting`. The
    agents roll them back unless the target already holds the final state (see
    model/lifecycle.py MigrationPhase); returns the nodes to wake."""
    now = time.time()
    touched: set[str] = set()
    unsettled = (
        MigrationRow.phase.in_([MigrationPhase.PENDING.value, MigrationPhase.PREPARING.value]),
        MigrationRow.started_at < now - deadline_s,
    )
    ends = session.execute(select(MigrationRow.source, MigrationRow.target).where(*unsettled))
    # Their nodes locked, then read again: a report may have settled one meanwhile.
    lock_nodes(session, *(n for pair in ends.all() for n in pair))
    late = session.scalars(
        select(MigrationRow).where(*unsettled).execution_options(populate_existing=True)
    ).all()
    for m in late:
        _step(m, MigrationPhase.ABORTING)
        m.reason = (
            f"deadline of {deadline_s:g} s passed: rolling back (the source serves again "
            f"unless {m.target} already holds the final state)"
        )
        record(session, ev.MigrationDeadlinePassed(m.instance, m.source, m.target, deadline_s))
        touched |= bump(session, m.source, m.target)
    return touched


def register_agent(session: Session, node: str, endpoint: str, datapath_id: str | None) -> set[str]:
    row = lock_nodes(session, node).get(node)
    if row is None:
        raise NotFound(
            f"unknown node {node!r}: load a topology that declares it (PUT /api/v1/topology)"
        )
    now = time.time()
    row.endpoint = endpoint
    row.registered_at = now
    row.last_seen = now
    row.status = NodeStatus.UP.value
    if datapath_id:
        row.datapath_id = datapath_id
    record(session, ev.NodeRegistered(node, endpoint))
    return bump(session, node)


def mark_unreachable(session: Session, timeout_s: float) -> list[str]:
    now = time.time()
    cutoff = now - timeout_s
    silent = [NodeRow.status == NodeStatus.UP, NodeRow.last_seen < cutoff]
    lost = []
    for name in sorted(session.scalars(select(NodeRow.name).where(*silent)).all()):
        # Conditional, so a report that arrived since the read above keeps it up.
        last_seen = session.scalar(
            update(NodeRow)
            .where(NodeRow.name == name, *silent)
            .values(status=NodeStatus.UNREACHABLE.value)
            .returning(NodeRow.last_seen)
            .execution_options(synchronize_session="fetch")
        )
        if last_seen is not None:
            record(session, ev.NodeUnreachable(name, round(now - last_seen, 3)))
            lost.append(name)
    return lost


def replace_ports(session: Session, node: str, ports: Iterable[dict[str, Any]]) -> None:
    existing = {p.name: p for p in session.scalars(select(PortRow).where(PortRow.node == node))}
    seen = set()
    for p in ports:
        name = str(p["name"])
        seen.add(name)
        kind, _, peer = str(p.get("peer") or ":").partition(":")
        row = existing.get(name)
        if row is None:
            session.add(
                PortRow(
                    node=node, name=name, ofport=int(p["ofport"]), peer_kind=kind, peer_name=peer
                )
            )
        else:
            row.ofport, row.peer_kind, row.peer_name = int(p["ofport"]), kind, peer
    for name, row in existing.items():
        if name not in seen:
            session.delete(row)


__all__ = [
    "Conflict",
    "CreateRequest",
    "LifecycleError",
    "NoCapacity",
    "NotFound",
]
