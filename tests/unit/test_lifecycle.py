import pytest

from netfate.model.lifecycle import (
    LIVE,
    TRANSITIONS,
    IllegalTransition,
    InstanceState,
    check_transition,
)

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
