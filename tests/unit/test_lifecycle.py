import typing
from pathlib import Path

import pytest

from netfate.agent.instances import Instance, NodeContext
from netfate.host.ovs import Vsctl
from netfate.model.lifecycle import (
    LIVE,
    ROLE_TRANSITIONS,
    TRANSITIONS,
    CopyStatus,
    IllegalRoleChange,
    IllegalTransition,
    InstanceRole,
    InstanceState,
    check_role_change,
    check_transition,
)
from netfate.orchestrator.api.schemas import InstanceReport

S = InstanceState


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(InstanceState)


def test_gone_is_terminal() -> None:
    for target in InstanceState:
        with pytest.raises(IllegalTransition):
            check_transition(S.GONE, target)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (S.REQUESTED, S.STARTING),
        (S.STARTING, S.RUNNING),
        (S.RUNNING, S.MIGRATING),
        (S.MIGRATING, S.RUNNING),
        (S.RUNNING, S.STOPPING),
        (S.STOPPING, S.GONE),
        (S.FAILED, S.STOPPING),
    ],
)
def test_legal(a: InstanceState, b: InstanceState) -> None:
    check_transition(a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (S.REQUESTED, S.RUNNING),
        (S.REQUESTED, S.MIGRATING),
        (S.STOPPING, S.RUNNING),
        (S.MIGRATING, S.MIGRATING),
        (S.GONE, S.REQUESTED),
    ],
)
def test_illegal_names_the_states(a: InstanceState, b: InstanceState) -> None:
    with pytest.raises(IllegalTransition) as e:
        check_transition(a, b)
    assert f"'{a}'" in str(e.value) and f"'{b}'" in str(e.value)


def test_live_states_can_all_be_stopped() -> None:
    for s in LIVE:
        check_transition(s, S.STOPPING)


def test_a_copy_becomes_active_once_and_never_goes_back() -> None:
    r = InstanceRole
    assert set(ROLE_TRANSITIONS) == set(r)
    check_role_change(r.STANDBY, r.ACTIVE)
    for a, b in ((r.ACTIVE, r.STANDBY), (r.ACTIVE, r.ACTIVE), (r.STANDBY, r.STANDBY)):
        with pytest.raises(IllegalRoleChange, match=f"from '{a}' to '{b}'"):
            check_role_change(a, b)


def test_the_agents_words_are_the_report_schemas() -> None:
    fields = InstanceReport.model_fields
    assert set(typing.get_args(fields["status"].annotation)) == set(CopyStatus)
    assert set(typing.get_args(fields["role"].annotation)) == set(InstanceRole)


def test_an_instance_copy_promoted_by_the_table(tmp_path: Path) -> None:
    ctx = NodeContext(node="cpe1", prefix="nf", state_dir=tmp_path, bridge="nf-cpe1",
                      vsctl=Vsctl("unix:/nonexistent"))  # fmt: skip
    inst = Instance(spec={"id": "i-1"}, ctx=ctx, role=InstanceRole.STANDBY)
    inst.promote()
    assert inst.role == InstanceRole.ACTIVE
    with pytest.raises(IllegalRoleChange):
        inst.promote()
