"""The agent's converge decision (agent/converge.py), without I/O: desired state, the
copies here, tasks, failures and migration records in; actions out."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netfate.agent.converge import (
    Activate,
    ClearFailure,
    Forget,
    Local,
    MigrateIn,
    Reconfigure,
    Refuse,
    Restart,
    Resume,
    Start,
    Stop,
    Thaw,
    decide,
    situation,
)
from netfate.agent.migration import Record
from netfate.agent.migration import SourcePhase as Sp
from netfate.agent.migration import TargetPhase as Tp
from netfate.model.lifecycle import InstanceRole

ACTIVE, STANDBY = InstanceRole.ACTIVE, InstanceRole.STANDBY


def spec(
    iid: str, role: str = "active", config: dict[str, Any] | None = None, **mig: Any
) -> dict[str, Any]:
    """An instance's desired state; keywords are its migration's (id, role: the side)."""
    s: dict[str, Any] = {"id": iid, "role": role, "function": "counter"}
    if config is not None:
        s["config"] = config
    if mig:
        s["migration"] = {"role": mig.pop("side"), **mig}
    return s


def desired(*specs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in specs}


def running(role: InstanceRole = ACTIVE, alive: bool = True, **config: Any) -> Local:
    return Local(role=role, alive=alive, config=config)


def rec(iid: str, side: str, phase: str, mid: int = 1) -> Record:
    return Record(instance=iid, migration=mid, side=side, phase=phase)


def test_nothing_to_do_when_the_node_is_as_desired() -> None:
    d = desired(spec("i-1"), spec("i-2", config={"x": 1}))
    assert decide(d, {"i-1": running(), "i-2": running(x=1)}, (), (), {}) == []


def test_starts_what_is_missing_and_stops_what_is_not_desired() -> None:
    d = desired(spec("i-1"), spec("i-2"))
    acts = decide(d, {"i-1": running(), "i-9": running()}, (), (), {})
    assert acts == [Start("i-2", d["i-2"]), Stop("i-9")]


def test_a_failed_start_is_not_retried_and_is_forgotten_once_not_desired() -> None:
    d = desired(spec("i-1"))
    assert decide(d, {}, (), {"i-1"}, {}) == []
    assert decide({}, {}, (), {"i-1"}, {}) == [ClearFailure("i-1")]


def test_busy_instances_are_left_to_their_task() -> None:
    d = desired(spec("i-1"), spec("i-2"))
    # i-1 is starting, i-9 is being stopped: neither gets a second action.
    assert decide(d, {"i-9": running()}, {"i-1", "i-9"}, (), {}) == [Start("i-2", d["i-2"])]


def test_the_copy_here_activated_reconfigured_or_restarted() -> None:
    d = desired(spec("i-1"), spec("i-2", config={"rate": 2}), spec("i-3"), spec("i-4"))
    local = {
        "i-1": running(STANDBY),  # the orchestrator recorded a move to here
        "i-2": running(rate=1),
        "i-3": running(alive=False),  # died
        "i-4": running(STANDBY, alive=False),  # a standby that died: started afresh
    }
    assert decide(d, local, (), (), {}) == [
        Activate("i-1", d["i-1"]),
        Reconfigure("i-2", d["i-2"]),
        Restart("i-3", d["i-3"]),
        Restart("i-4", d["i-4"]),
    ]


def test_a_standby_spec_starts_a_move_in_once() -> None:
    d = desired(spec("i-1", "standby", id=4, side="target", peer="cpe1"))
    assert decide(d, {}, (), (), {}) == [MigrateIn("i-1", d["i-1"])]
    # A record of this move: the tables decide (a target in `final` completes).
    final = rec("i-1", "target", Tp.FINAL, mid=4)
    assert decide(d, {}, (), (), {"i-1": final}) == [Resume(final)]
    # A record of an earlier move (forgotten first): this one starts.
    old = rec("i-1", "target", Tp.DONE, mid=3)
    assert decide(d, {}, (), (), {"i-1": old}) == [Forget(old), MigrateIn("i-1", d["i-1"])]
    # A standby spec without a target migration: nothing.
    assert decide(desired(spec("i-1", "standby")), {}, (), (), {}) == []


def test_a_target_restarted_in_preparing_starts_the_move_afresh() -> None:
    d = desired(spec("i-1", "standby", id=4, side="target"))
    prep = rec("i-1", "target", Tp.PREPARING, mid=4)
    assert decide(d, {}, (), (), {"i-1": prep}) == [Forget(prep), MigrateIn("i-1", d["i-1"])]


def test_a_frozen_or_released_copy_is_never_started_again() -> None:
    d = desired(spec("i-1", id=2, side="source", peer="pe1"))
    for phase in (Sp.FROZEN, Sp.RELEASED):
        r = rec("i-1", "source", phase, mid=2)
        assert decide(d, {}, (), (), {"i-1": r}) == [], phase  # `open`: wait
        assert decide(d, {"i-1": running(alive=False)}, (), (), {"i-1": r}) == []


def test_the_source_thaws_when_the_move_failed_and_forgets_when_it_moved() -> None:
    frozen = rec("i-1", "source", Sp.FROZEN, mid=2)
    stays = desired(spec("i-1"))  # the migration left the desired state: it failed
    assert decide(stays, {"i-1": running()}, (), (), {"i-1": frozen}) == [Thaw(frozen)]
    # Moved: the record goes, then the copy here (no longer desired) is stopped.
    assert decide({}, {"i-1": running()}, (), (), {"i-1": frozen}) == [
        Forget(frozen),
        Stop("i-1"),
    ]


def test_a_target_resumes_a_move_even_when_the_instance_left() -> None:
    final = rec("i-1", "target", Tp.FINAL)
    # `gone`: it completes all the same, and its copy is not stopped meanwhile.
    assert decide({}, {"i-1": running(STANDBY)}, (), (), {"i-1": final}) == [Resume(final)]
    freezing = rec("i-1", "target", Tp.FREEZING)
    assert decide({}, {}, (), (), {"i-1": freezing}) == [Resume(freezing)]


def test_a_busy_record_waits_for_its_task() -> None:
    frozen = rec("i-1", "source", Sp.FROZEN)
    assert decide({}, {"i-1": running()}, {"i-1"}, (), {"i-1": frozen}) == []


def test_past_the_deadline_the_source_refuses_unless_it_froze() -> None:
    d = desired(spec("i-1", id=5, side="source", abort=True))
    assert decide(d, {"i-1": running()}, (), (), {}) == [Refuse("i-1", 5)]
    frozen = rec("i-1", "source", Sp.FROZEN, mid=5)
    assert decide(d, {"i-1": running()}, (), (), {"i-1": frozen}) == []
    # Not past it: nothing.
    d = desired(spec("i-1", id=5, side="source"))
    assert decide(d, {"i-1": running()}, (), (), {}) == []


@pytest.mark.parametrize(
    ("record", "specs", "expected"),
    [
        (rec("i-1", "source", Sp.FROZEN, 2), [spec("i-1", id=2, side="source")], "open"),
        (rec("i-1", "source", Sp.FROZEN, 2), [spec("i-1", id=3, side="source")], "over"),
        (rec("i-1", "source", Sp.FROZEN, 2), [spec("i-1", id=2, side="target")], "over"),
        (rec("i-1", "source", Sp.FROZEN, 2), [spec("i-1")], "over"),
        (rec("i-1", "source", Sp.FROZEN, 2), [spec("i-2")], "gone"),
    ],
)
def test_situations(record: Record, specs: list[dict[str, Any]], expected: str) -> None:
    assert situation(record, desired(*specs)) == expected


# ---------------------------------------------------------------- properties

IDS = [f"i-{n}" for n in range(4)]
SOURCE_PHASES = [Sp.FROZEN, Sp.RELEASED, Sp.REFUSED]


@st.composite
def node_states(draw: st.DrawFn) -> tuple[Any, ...]:
    d: dict[str, dict[str, Any]] = {}
    for iid in draw(st.lists(st.sampled_from(IDS), unique=True)):
        role = draw(st.sampled_from(["active", "standby"]))
        mig: dict[str, Any] = {}
        if draw(st.booleans()):
            mig = {
                "id": draw(st.integers(1, 3)),
                "side": draw(st.sampled_from(["source", "target"])),
                "abort": draw(st.booleans()),
            }
        d[iid] = spec(iid, role, config={"v": draw(st.integers(0, 1))}, **mig)
    local = {
        iid: Local(
            role=draw(st.sampled_from(list(InstanceRole))),
            alive=draw(st.booleans()),
            config={"v": draw(st.integers(0, 1))},
        )
        for iid in draw(st.lists(st.sampled_from(IDS), unique=True))
    }
    busy = set(draw(st.lists(st.sampled_from(IDS), unique=True)))
    failed = set(draw(st.lists(st.sampled_from(IDS), unique=True)))
    records = {}
    for iid in draw(st.lists(st.sampled_from(IDS), unique=True)):
        side = draw(st.sampled_from(["source", "target"]))
        phase = draw(st.sampled_from(SOURCE_PHASES if side == "source" else list(Tp)))
        records[iid] = rec(iid, side, phase, draw(st.integers(1, 3)))
    return d, local, busy, failed, records


TASKS = (Thaw, Resume, MigrateIn, Start, Activate, Reconfigure, Restart, Stop)


def _instance(act: Any) -> str:
    return str(act.record.instance if hasattr(act, "record") else act.instance)


@settings(max_examples=500, deadline=None)
@given(node_states())
def test_one_task_per_instance_never_for_a_busy_one(state: tuple[Any, ...]) -> None:
    d, local, busy, failed, records = state
    acts = decide(d, local, busy, failed, records)
    tasks = [_instance(a) for a in acts if isinstance(a, TASKS)]
    assert len(tasks) == len(set(tasks))
    assert not set(tasks) & busy
    forgotten = {a.record.instance for a in acts if isinstance(a, Forget)}
    for a in acts:
        iid = _instance(a)
        if isinstance(a, (Start, Activate, Reconfigure, Restart)):
            assert d[iid]["role"] == "active"  # a standby spec only ever moves in
            held = records.get(iid) if iid not in forgotten else None
            assert held is None or held.phase not in (Sp.FROZEN, Sp.RELEASED)
        if isinstance(a, MigrateIn):
            assert d[iid]["role"] == "standby" and d[iid]["migration"]["role"] == "target"
        if isinstance(a, Start):
            assert iid not in local and iid not in failed
        if isinstance(a, (Activate, Reconfigure, Restart)):
            assert iid in local
        if isinstance(a, Stop):
            assert iid not in d and iid in local
        if isinstance(a, ClearFailure):
            assert iid not in d and iid in failed
        if isinstance(a, Refuse):
            assert d[iid]["migration"]["abort"] and (iid not in records or iid in forgotten)
    # Decided from the inputs alone: the same inputs, the same actions.
    assert decide(d, local, busy, failed, records) == acts
