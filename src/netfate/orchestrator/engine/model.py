"""The placement optimiser's model: the infrastructure, service chains and subscriptions.

Everything here is a frozen dataclass of plain numbers and names; validation
collects every problem it finds and raises one `ModelError` whose `errors` map
a key (``nodes[cpe1].cpu``, ``subscriptions[s1].chain.talks[0].b``) to what is
wrong, so a caller (the catalog's API) can show each next to its field.

Units: CPU in cores, memory and storage in MiB, bandwidth in Mbit/s, delays in
milliseconds, power in watts, availability as a fraction in (0, 1].

What the model means (the constraints and objectives rely on it):

- **A node** has capacity (CPU, memory, storage) and a background `load`: what
  monitoring sees in use by things the optimiser does not place (the OS, the
  agent, OVS). The load counts against capacity while the node is on; it goes
  away with the node. A `pinned` node must stay on (it runs something that
  cannot stop, e.g. a home CPE). A node that is not `up` hosts nothing.
- **Switching a node off** powers down its compute: it then costs nothing and
  hosts nothing. Its switch keeps forwarding, so routes never depend on which
  nodes are on (the INPUT testbed's servers hang off OpenFlow switches).
- **Energy** of an on node: the kind's `idle_w` plus `w_per_cpu` for each core
  in use (background and placed). Kinds that do not host (`hosts=False`, core
  switches) are always on and their power is a constant.
- **Routes** are fixed: traffic between two nodes follows the lowest-delay
  path (fewest hops among equals), as the controller programs it. A link's
  capacity is shared by both directions.
- **A chain** is a tuple of blocks in chain order; the first is the entry,
  which the user's traffic reaches (`user_mbps`). Blocks exchange traffic along
  *relations*: each `talks` pair, and each two consecutive blocks of the chain
  order (the user's traffic is steered through the chain, block to block). A
  relation carries its talk's `mbps`; one no talk gives a bandwidth (no talk, or
  0 Mbit/s, as the catalog descriptor's default talks) carries the chain's
  `chain_mbps` (the catalog sets it to `user_mbps`). That traffic takes link
  capacity on the route between the two blocks' nodes, like the user's; two
  blocks on one node talk for free.
- **The chain's path** is user -> entry -> ... -> last block, in chain order.
  Its round trip (twice the summed one-way delays of the routes user -> entry
  and each block -> the next) is what the latency objective weighs: a block
  whose partner moved away costs the delay back to it.
- **The SLA**: `rtt_ms` bounds the round trip from the node the user is
  attached to, to the node of the entry block (twice the summed one-way link
  delays on the route, as the delay-bound policy counts it). It stays that,
  not the chain's path: the catalog descriptor defines `sla.latency_ms` as the
  round trip between the user and the entry block, and a provider who set it
  so has not promised anything about the blocks behind the entry. `availability`
  bounds the chain's availability, defined as the product of the availability
  of each distinct node hosting one of its blocks (every one of them must be up
  for the chain to work; the network is not counted). So spreading a chain over
  more nodes lowers its availability, and a single node must itself reach the
  bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


class ModelError(ValueError):
    """Impossible input. `errors` maps each bad field's key to what is wrong with it."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


@dataclass(frozen=True)
class Usage:
    """An amount of each node resource."""

    cpu: float = 0.0
    memory_mb: float = 0.0
    storage_mb: float = 0.0


@dataclass(frozen=True)
class NodeKind:
    """The energy model and defaults shared by the nodes of one kind."""

    name: str
    idle_w: float
    """Power drawn by an on node doing nothing."""
    w_per_cpu: float
    """Power added by each core in use."""
    hosts: bool = True
    """False for kinds that only forward (core switches): they never host a block."""
    availability: float = 0.999
    """Fraction of time a node of this kind is up (a node may override it)."""


@dataclass(frozen=True)
class Node:
    name: str
    kind: str
    cpu: float
    memory_mb: float
    storage_mb: float = 0.0
    load: Usage = Usage()
    """Background use, from monitoring (see the module docstring)."""
    up: bool = True
    """False: down or in maintenance; hosts nothing."""
    powered: bool = True
    """Whether the node is on now; a plan may switch it on or off."""
    pinned: bool = False
    """Must stay on whatever the objective."""
    availability: float | None = None
    """Overrides the kind's availability (e.g. measured uptime)."""


@dataclass(frozen=True)
class Link:
    a: str
    b: str
    capacity_mbps: float
    delay_ms: float
    """One-way delay."""
    used_mbps: float = 0.0
    """Background use, from monitoring: traffic the optimiser does not place."""

    @property
    def key(self) -> str:
        return f"{self.a}--{self.b}"


@dataclass(frozen=True)
class Infrastructure:
    kinds: tuple[NodeKind, ...]
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]

    def validate(self) -> None:
        """Raise ModelError naming every impossible field."""
        errors: dict[str, str] = {}
        kinds: dict[str, NodeKind] = {}
        for i, k in enumerate(self.kinds):
            key = f"kinds[{k.name or i}]"
            if not k.name:
                errors[f"{key}.name"] = "must not be empty"
            elif k.name in kinds:
                errors[f"{key}.name"] = "defined twice"
            kinds[k.name] = k
            _nonneg(errors, f"{key}.idle_w", k.idle_w)
            _nonneg(errors, f"{key}.w_per_cpu", k.w_per_cpu)
            _fraction(errors, f"{key}.availability", k.availability)
        names: set[str] = set()
        for i, n in enumerate(self.nodes):
            key = f"nodes[{n.name or i}]"
            if not n.name:
                errors[f"{key}.name"] = "must not be empty"
            elif n.name in names:
                errors[f"{key}.name"] = "defined twice"
            names.add(n.name)
            if n.kind not in kinds:
                errors[f"{key}.kind"] = f"unknown kind {n.kind!r}"
            for attr in ("cpu", "memory_mb", "storage_mb"):
                _nonneg(errors, f"{key}.{attr}", getattr(n, attr))
                _nonneg(errors, f"{key}.load.{attr}", getattr(n.load, attr))
            if n.availability is not None:
                _fraction(errors, f"{key}.availability", n.availability)
        pairs: set[frozenset[str]] = set()
        for i, ln in enumerate(self.links):
            key = f"links[{i}]"
            for end in ("a", "b"):
                if getattr(ln, end) not in names:
                    errors[f"{key}.{end}"] = f"unknown node {getattr(ln, end)!r}"
            if ln.a == ln.b:
                errors[f"{key}.b"] = "a link joins two different nodes"
            pair = frozenset((ln.a, ln.b))
            if pair in pairs:
                errors[key] = f"a second link between {ln.a} and {ln.b}"
            pairs.add(pair)
            _positive(errors, f"{key}.capacity_mbps", ln.capacity_mbps)
            _nonneg(errors, f"{key}.delay_ms", ln.delay_ms)
            _nonneg(errors, f"{key}.used_mbps", ln.used_mbps)
        if errors:
            raise ModelError(errors)

    def kind_of(self, node: Node) -> NodeKind:
        for k in self.kinds:
            if k.name == node.kind:
                return k
        raise KeyError(node.kind)


@dataclass(frozen=True)
class Block:
    """One building block (function) of a chain and what it needs."""

    name: str
    cpu: float
    memory_mb: float
    storage_mb: float = 0.0


@dataclass(frozen=True)
class Talk:
    """Blocks `a` and `b` exchange `mbps` of traffic (both directions together)."""

    a: str
    b: str
    mbps: float


@dataclass(frozen=True)
class Sla:
    rtt_ms: float | None = None
    """Bound on the round trip from the user's node to the entry block's node."""
    availability: float | None = None
    """Lower bound on the chain's availability (see the module docstring)."""


@dataclass(frozen=True)
class Chain:
    """A service chain: blocks in chain order (the first is the entry)."""

    name: str
    blocks: tuple[Block, ...]
    talks: tuple[Talk, ...] = ()
    user_mbps: float = 0.0
    """Traffic between the user and the entry block."""
    sla: Sla = Sla()
    chain_mbps: float = 0.0
    """Traffic on each relation no talk gives a bandwidth (module docstring)."""

    def relations(self) -> dict[tuple[int, int], float]:
        """Block index pairs (lower first) that exchange traffic -> Mbit/s (0 allowed):
        every talk pair and every two consecutive blocks (module docstring)."""
        pos = {b.name: i for i, b in enumerate(self.blocks)}
        out: dict[tuple[int, int], float] = {}
        for t in self.talks:
            if t.a in pos and t.b in pos and t.a != t.b:
                i, j = sorted((pos[t.a], pos[t.b]))
                out[(i, j)] = out.get((i, j), 0.0) + t.mbps
        for i in range(len(self.blocks) - 1):
            out.setdefault((i, i + 1), 0.0)
        return {k: (v if v > 0 else self.chain_mbps) for k, v in out.items()}

    @property
    def entry(self) -> Block:
        return self.blocks[0]

    @property
    def total(self) -> Usage:
        return Usage(
            sum(b.cpu for b in self.blocks),
            sum(b.memory_mb for b in self.blocks),
            sum(b.storage_mb for b in self.blocks),
        )

    def problems(self, prefix: str = "chain") -> dict[str, str]:
        """Keyed problems with this chain (empty when it is sound)."""
        errors: dict[str, str] = {}
        if not self.blocks:
            errors[f"{prefix}.blocks"] = "a chain has at least one block"
        seen: set[str] = set()
        for i, b in enumerate(self.blocks):
            key = f"{prefix}.blocks[{b.name or i}]"
            if not b.name:
                errors[f"{key}.name"] = "must not be empty"
            elif b.name in seen:
                errors[f"{key}.name"] = "defined twice"
            seen.add(b.name)
            for attr in ("cpu", "memory_mb", "storage_mb"):
                _nonneg(errors, f"{key}.{attr}", getattr(b, attr))
        for i, t in enumerate(self.talks):
            key = f"{prefix}.talks[{i}]"
            for end in ("a", "b"):
                if getattr(t, end) not in seen:
                    errors[f"{key}.{end}"] = f"unknown block {getattr(t, end)!r}"
            if t.a == t.b:
                errors[f"{key}.b"] = "a block does not talk to itself"
            _nonneg(errors, f"{key}.mbps", t.mbps)
        _nonneg(errors, f"{prefix}.user_mbps", self.user_mbps)
        _nonneg(errors, f"{prefix}.chain_mbps", self.chain_mbps)
        if self.sla.rtt_ms is not None:
            _positive(errors, f"{prefix}.sla.rtt_ms", self.sla.rtt_ms)
        if self.sla.availability is not None:
            _fraction(errors, f"{prefix}.sla.availability", self.sla.availability)
        return errors


@dataclass(frozen=True)
class Subscription:
    """One user's instance of a chain, attached (`at`) to a node of the network."""

    id: str
    user: str
    at: str
    """The node the user is attached to now (their CPE, the PE of their login)."""
    chain: Chain
    tags: tuple[str, ...] = field(default=())
    """Free labels for the caller (e.g. the descriptor version); ignored here."""


def validate_subscriptions(infra: Infrastructure, subs: Iterable[Subscription]) -> None:
    """Raise ModelError naming every impossible subscription field (with infra's nodes)."""
    names = {n.name for n in infra.nodes}
    errors: dict[str, str] = {}
    ids: set[str] = set()
    sound: set[int] = set()  # chains already found sound (subscriptions share them)
    for i, s in enumerate(subs):
        key = f"subscriptions[{s.id or i}]"
        if not s.id:
            errors[f"{key}.id"] = "must not be empty"
        elif s.id in ids:
            errors[f"{key}.id"] = "defined twice"
        ids.add(s.id)
        if s.at not in names:
            errors[f"{key}.at"] = f"unknown node {s.at!r}"
        if id(s.chain) not in sound:
            found = s.chain.problems(f"{key}.chain")
            if found:
                errors.update(found)
            else:
                sound.add(id(s.chain))
    if errors:
        raise ModelError(errors)


def _nonneg(errors: dict[str, str], key: str, v: float) -> None:
    if not math.isfinite(v) or v < 0:
        errors[key] = f"must be a finite number >= 0, not {v!r}"


def _positive(errors: dict[str, str], key: str, v: float) -> None:
    if not math.isfinite(v) or v <= 0:
        errors[key] = f"must be a finite number > 0, not {v!r}"


def _fraction(errors: dict[str, str], key: str, v: float) -> None:
    if not (0 < v <= 1):
        errors[key] = f"must be in (0, 1], not {v!r}"
