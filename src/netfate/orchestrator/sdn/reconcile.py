"""Reconciliation: what to send a switch so its table becomes the desired one. Pure.

The switch's table is read back (flow stats, group descriptions) and compared
with what the compiler wants. Only flows carrying a netfate cookie are ours to
change; short-lived discovery flows are left to expire. Order of the batch:

    groups added/modified  ->  flows added  ->  flows deleted  ->  groups deleted  ->  barrier

so a flow never points at a missing group, and a flow whose actions changed is
replaced in place (an add with the same table/priority/match overwrites it)
instead of being deleted first, which would drop packets in between.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from typing import Any

from netfate.orchestrator.sdn.compile import FlowSpec, GroupSpec, Match
from netfate.orchestrator.sdn.intents import DISCOVERY_COOKIE, is_netfate_cookie

GROUP_ID_MASK = 0xFF000000
GROUP_ID_PREFIX = 0x4E000000


def is_netfate_group(group_id: int) -> bool:
    return group_id & GROUP_ID_MASK == GROUP_ID_PREFIX


@dataclass(frozen=True)
class FlowEntry:
    """A flow as read back from a switch, with its counters."""

    spec: FlowSpec | None
    """None when its actions are not something the compiler emits."""
    cookie: int
    table: int
    priority: int
    match: Match
    packets: int
    bytes: int
    duration_s: float
    idle_timeout: int
    text_actions: str

    def to_json(self) -> dict[str, Any]:
        return {
            "cookie": f"{self.cookie:#018x}",
            "table": self.table,
            "priority": self.priority,
            "match": {k: v for k, v in self.match},
            "actions": self.text_actions,
            "packets": self.packets,
            "bytes": self.bytes,
            "duration_s": round(self.duration_s, 3),
            "idle_timeout": self.idle_timeout,
        }


@dataclass(frozen=True)
class FlowDelete:
    table: int
    priority: int
    match: Match
    cookie: int


@dataclass
class Plan:
    group_adds: list[GroupSpec] = field(default_factory=list)
    group_mods: list[GroupSpec] = field(default_factory=list)
    flow_adds: list[FlowSpec] = field(default_factory=list)
    flow_dels: list[FlowDelete] = field(default_factory=list)
    group_dels: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.group_adds
            or self.group_mods
            or self.flow_adds
            or self.flow_dels
            or self.group_dels
        )

    def summary(self) -> dict[str, int]:
        return {
            "flows_added": len(self.flow_adds),
            "flows_deleted": len(self.flow_dels),
            "groups_added": len(self.group_adds),
            "groups_modified": len(self.group_mods),
            "groups_deleted": len(self.group_dels),
        }


def owned(entries: Iterable[FlowEntry]) -> list[FlowEntry]:
    """The entries reconciliation may touch: netfate cookies, discovery flows excluded."""
    return [e for e in entries if is_netfate_cookie(e.cookie) and e.cookie != DISCOVERY_COOKIE]


def plan(
    desired_flows: Set[FlowSpec],
    actual_flows: Iterable[FlowEntry],
    desired_groups: Iterable[GroupSpec],
    actual_groups: Mapping[int, GroupSpec],
) -> Plan:
    p = Plan()
    mine = owned(actual_flows)
    have = {e.spec for e in mine if e.spec is not None}
    want_keys = {f.key for f in desired_flows}
    p.flow_adds = sorted(
        (f for f in desired_flows if f not in have), key=lambda f: (f.priority, f.match, f.cookie)
    )
    seen: set[tuple[int, int, Match]] = set()
    for e in mine:
        key = (e.table, e.priority, e.match)
        if key not in want_keys and key not in seen:
            seen.add(key)
            p.flow_dels.append(FlowDelete(e.table, e.priority, e.match, e.cookie))
    want_groups = {g.group_id: g for g in desired_groups}
    for gid, g in sorted(want_groups.items()):
        cur = actual_groups.get(gid)
        if cur is None:
            p.group_adds.append(g)
        elif cur.buckets != g.buckets:
            p.group_mods.append(g)
    p.group_dels = sorted(
        gid for gid in actual_groups if is_netfate_group(gid) and gid not in want_groups
    )
    return p


def plan_from_cache(
    desired_flows: Set[FlowSpec],
    installed: Set[FlowSpec],
    desired_groups: Iterable[GroupSpec],
    actual_groups: Mapping[int, GroupSpec],
) -> Plan:
    """`plan` against what we know a switch holds (only our flows): set arithmetic, no entries."""
    p = plan(set(), [], desired_groups, actual_groups)
    p.flow_adds = sorted(desired_flows - installed, key=lambda f: (f.priority, f.match, f.cookie))
    want_keys = {f.key for f in desired_flows}
    seen: set[tuple[int, int, Match]] = set()
    for f in installed - desired_flows:
        if f.key not in want_keys and f.key not in seen:
            seen.add(f.key)
            p.flow_dels.append(FlowDelete(f.table, f.priority, f.match, f.cookie))
    return p


def apply_plan(installed: Set[FlowSpec], p: Plan) -> set[FlowSpec]:
    """What the switch holds (of ours) once `p` has been confirmed by a barrier."""
    dels = {(d.table, d.priority, d.match) for d in p.flow_dels}
    add_keys = {f.key for f in p.flow_adds}
    kept = {f for f in installed if f.key not in dels and f.key not in add_keys}
    return kept | set(p.flow_adds)


def as_entries(flows: Iterable[FlowSpec]) -> list[FlowEntry]:
    """Flow specs as if read back from a switch (for planning against a cached table)."""
    return [FlowEntry(f, f.cookie, f.table, f.priority, f.match, 0, 0, 0.0, 0, "") for f in flows]
