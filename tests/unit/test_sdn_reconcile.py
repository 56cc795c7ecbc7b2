"""Reconciliation plans: what a switch is sent so that its table becomes the desired one."""

from __future__ import annotations

from netfate.orchestrator.sdn.compile import FlowSpec, GroupSpec, Output, SetField
from netfate.orchestrator.sdn.intents import BASE_COOKIE, DISCOVERY_COOKIE, cookie_for
from netfate.orchestrator.sdn.reconcile import (
    FlowEntry,
    apply_plan,
    as_entries,
    is_netfate_group,
    plan,
)

A = cookie_for("a")
B = cookie_for("b")


def flow(prio: int, port: int, out: int, cookie: int = A) -> FlowSpec:
    return FlowSpec(prio, (("in_port", port),), (Output(out),), cookie)


def entry(f: FlowSpec | None, cookie: int, prio: int = 100, port: int = 1) -> FlowEntry:
    return FlowEntry(f, cookie, 0, prio, (("in_port", port),), 0, 0, 0.0, 0, "")


def test_empty_switch_gets_everything_and_nothing_else() -> None:
    want = {flow(100, 1, 2), flow(100, 2, 1), flow(0, 9, 9, BASE_COOKIE)}
    p = plan(want, [], [], {})
    assert set(p.flow_adds) == want and not p.flow_dels
    assert apply_plan(set(), p) == want


def test_in_sync_switch_gets_nothing() -> None:
    want = {flow(100, 1, 2), flow(100, 2, 1)}
    assert not plan(want, as_entries(want), [], {})


def test_stale_cookie_is_deleted_missing_is_added() -> None:
    keep, missing = flow(100, 1, 2), flow(100, 2, 1)
    stale = flow(100, 3, 1, B)
    p = plan({keep, missing}, as_entries({keep, stale}), [], {})
    assert p.flow_adds == [missing]
    assert [(d.priority, d.match, d.cookie) for d in p.flow_dels] == [(100, stale.match, B)]
    assert apply_plan({keep, stale}, p) == {keep, missing}


def test_changed_actions_are_replaced_in_place_not_deleted() -> None:
    old = flow(100, 1, 2)
    new = FlowSpec(100, old.match, (SetField("eth_dst", "02:00:00:00:00:01"), Output(3)), A)
    p = plan({new}, as_entries({old}), [], {})
    assert p.flow_adds == [new] and not p.flow_dels  # an add with the same key overwrites
    assert apply_plan({old}, p) == {new}


def test_owner_change_of_a_shared_flow_is_an_overwrite() -> None:
    by_a = flow(100, 1, 2, A)
    by_b = flow(100, 1, 2, B)
    p = plan({by_b}, as_entries({by_a}), [], {})
    assert p.flow_adds == [by_b] and not p.flow_dels


def test_foreign_and_discovery_flows_are_left_alone() -> None:
    foreign = entry(None, 0x1234, port=7)
    discovery = entry(None, DISCOVERY_COOKIE, prio=2, port=8)
    unreadable_ours = entry(None, A, port=9)  # our cookie, actions we never emit: stale
    p = plan(set(), [foreign, discovery, unreadable_ours], [], {})
    assert [d.match for d in p.flow_dels] == [(("in_port", 9),)]


def test_groups_added_modified_deleted_in_safe_order() -> None:
    g1 = GroupSpec(0x4E000001, ((Output(1),), (Output(2),)), A)
    g1b = GroupSpec(0x4E000001, ((Output(1),),), A)
    g2 = GroupSpec(0x4E000002, ((Output(3),),), B)
    foreign = GroupSpec(7, ((Output(3),),), 0)
    p = plan(set(), [], [g1b, g2], {g1.group_id: g1, foreign.group_id: foreign})
    assert p.group_adds == [g2] and p.group_mods == [g1b] and not p.group_dels
    p = plan(set(), [], [], {g1.group_id: g1, foreign.group_id: foreign})
    assert p.group_dels == [g1.group_id]  # ours only
    assert is_netfate_group(g1.group_id) and not is_netfate_group(7)


def test_summary_counts() -> None:
    p = plan({flow(100, 1, 2)}, as_entries({flow(100, 3, 1, B)}), [], {})
    assert p.summary()["flows_added"] == 1 and p.summary()["flows_deleted"] == 1


def test_plan_from_cache_equals_plan_from_entries() -> None:
    from netfate.orchestrator.sdn.reconcile import plan_from_cache

    keep, missing = flow(100, 1, 2), flow(100, 2, 1)
    stale = flow(100, 3, 1, B)
    changed_old = flow(100, 4, 1)
    changed_new = FlowSpec(100, changed_old.match, (Output(2),), A)
    want = {keep, missing, changed_new}
    have = {keep, stale, changed_old}
    a = plan(want, as_entries(have), [], {})
    b = plan_from_cache(want, have, [], {})
    assert a.flow_adds == b.flow_adds and a.flow_dels == b.flow_dels
    assert apply_plan(have, b) == want
