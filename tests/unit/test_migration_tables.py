"""The migration protocol's tables (agent/migration.py, model/lifecycle.py): complete,
safe where it matters, and persisted the way a restarted agent reads them."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest

from netfate.agent.migration import (
    REPORTED,
    SETTLE_SOURCE,
    SETTLE_TARGET,
    SOURCE_TRANSITIONS,
    TARGET_TRANSITIONS,
    IllegalStep,
    Record,
    Records,
    Settle,
)
from netfate.agent.migration import SourcePhase as Sp
from netfate.agent.migration import TargetPhase as Tp
from netfate.model.lifecycle import (
    MIGRATION_TRANSITIONS,
    OPEN_MIGRATIONS,
    SOURCE_SAYS,
    TARGET_SAYS,
    IllegalMigrationStep,
    MigrationPhase,
    MigrationStatus,
    check_migration_step,
)
from netfate.orchestrator.api.schemas import MigrationReport

SITUATIONS = ("open", "over", "gone")
M = MigrationPhase


def test_every_phase_has_a_row_and_every_situation_an_action() -> None:
    assert set(SOURCE_TRANSITIONS) == set(Sp)
    assert set(TARGET_TRANSITIONS) == set(Tp)
    assert set(MIGRATION_TRANSITIONS) == set(MigrationPhase)
    recorded = set(Sp) - {Sp.SERVING}  # serving is the phase of an instance without a record
    assert set(SETTLE_SOURCE) == {(p, s) for p in recorded for s in SITUATIONS}
    assert set(SETTLE_TARGET) == {(p, s) for p in Tp for s in SITUATIONS}
    assert set(REPORTED) == recorded | set(Tp)


def test_the_source_thaws_only_when_the_migration_failed_and_the_instance_stays() -> None:
    thaws = {k for k, v in SETTLE_SOURCE.items() if v is Settle.THAW}
    assert thaws == {(Sp.FROZEN, "over")}
    # A released copy never comes back here, whatever the desired state says.
    assert Sp.SERVING not in SOURCE_TRANSITIONS[Sp.RELEASED]
    assert all(SETTLE_SOURCE[(Sp.RELEASED, s)] in (Settle.WAIT, Settle.FORGET) for s in SITUATIONS)


def test_the_target_completes_only_with_the_final_state_and_then_always() -> None:
    holds_final = {Tp.FINAL, Tp.ACTIVE}
    for (phase, situation), action in SETTLE_TARGET.items():
        if phase in holds_final:
            assert action is Settle.COMPLETE, (phase, situation)
        else:
            assert action is not Settle.COMPLETE, (phase, situation)
    # Without the final state in hand after a restart, it gives up (the source thaws).
    assert {SETTLE_TARGET[(Tp.FREEZING, s)] for s in SITUATIONS} == {Settle.ABORT}
    # Once active it cannot abort: only done follows.
    assert TARGET_TRANSITIONS[Tp.ACTIVE] == {Tp.DONE}


def test_each_side_reports_only_its_own_words_and_the_schema_takes_them() -> None:
    assert {REPORTED[p] for p in Tp} == TARGET_SAYS
    assert {REPORTED[p] for p in set(Sp) - {Sp.SERVING}} == SOURCE_SAYS
    assert set(MigrationStatus) == TARGET_SAYS | SOURCE_SAYS
    assert not TARGET_SAYS & SOURCE_SAYS  # a word tells which side said it
    status = MigrationReport.model_fields["status"].annotation
    assert set(typing.get_args(status)) == set(MigrationStatus)


@pytest.mark.parametrize(
    ("side", "start", "to"),
    [
        ("target", Tp.PREPARING, Tp.ACTIVE),  # activate without the final state
        ("target", Tp.ACTIVE, Tp.ABORTED),
        ("target", Tp.DONE, Tp.PREPARING),
        ("source", Sp.RELEASED, Sp.SERVING),  # thaw a copy that was handed over
        ("source", Sp.REFUSED, Sp.FROZEN),  # freeze after refusing
        ("source", Sp.SERVING, Sp.RELEASED),  # release what never froze
    ],
)
def test_illegal_steps_raise(side: str, start: str, to: str) -> None:
    rec = Record(instance="i-1", migration=1, side=side, phase=start)
    with pytest.raises(IllegalStep):
        rec.advance(to)
    assert rec.phase == start


def test_a_whole_move_walks_the_tables() -> None:
    src = Record(instance="i-1", migration=7, side="source", phase=Sp.SERVING)
    for p in (Sp.FROZEN, Sp.RELEASED):
        src.advance(p)
    dst = Record(instance="i-1", migration=7, side="target", phase=Tp.PREPARING)
    for p in (Tp.FREEZING, Tp.FINAL, Tp.ACTIVE, Tp.DONE):
        dst.advance(p)


def test_orchestrator_phases() -> None:
    for end in (M.DONE, M.FAILED):
        assert MIGRATION_TRANSITIONS[end] == frozenset()
        assert end not in OPEN_MIGRATIONS
    check_migration_step(M.ABORTING, M.DONE)  # a target holding the final state completes
    check_migration_step(M.PREPARING, M.ABORTING)
    with pytest.raises(IllegalMigrationStep):
        check_migration_step(M.ABORTING, M.PREPARING)
    with pytest.raises(IllegalMigrationStep):
        check_migration_step(M.FAILED, M.DONE)


def test_records_persist_each_step_before_it_is_taken(tmp_path: Path) -> None:
    d = tmp_path / "migrations"
    recs = Records(d)
    rec = Record(instance="i-1", migration=3, side="target", phase=Tp.PREPARING, peer="h:1")
    recs.save(rec)
    recs.step(rec, Tp.FREEZING)
    recs.step(rec, Tp.FINAL, frozen_at=10.0, state_bytes=42)
    on_disk = json.loads((d / "i-1.json").read_text())
    assert on_disk["phase"] == "final" and on_disk["frozen_at"] == 10.0
    again = Records(d).load()  # what a restarted agent reads
    assert again["i-1"].phase == Tp.FINAL and again["i-1"].peer == "h:1"
    recs.step(rec, Tp.ACTIVE, active_at=10.0025)
    recs.step(rec, Tp.DONE)
    assert rec.report() == {
        "id": 3,
        "instance": "i-1",
        "status": "done",
        "downtime_ms": 2.5,
        "state_bytes": 42,
    }
    recs.forget("i-1")
    assert Records(d).load() == {}


def test_unreadable_records_are_ignored(tmp_path: Path) -> None:
    d = tmp_path / "migrations"
    d.mkdir()
    (d / "i-1.json").write_text("{not json")
    (d / "i-2.json").write_text(json.dumps({"instance": "i-2", "migration": 1}))
    bad_phase = {"instance": "i-3", "migration": 1, "side": "source", "phase": "melted"}
    (d / "i-3.json").write_text(json.dumps(bad_phase))
    good = {"instance": "i-4", "migration": 1, "side": "source", "phase": "frozen"}
    (d / "i-4.json").write_text(json.dumps(good))
    assert list(Records(d).load()) == ["i-4"]


def test_reports() -> None:
    aborted = Record(instance="i-1", migration=2, side="target", phase=Tp.ABORTED, reason="x")
    assert aborted.report() == {"id": 2, "instance": "i-1", "status": "failed", "reason": "x"}
    frozen = Record(instance="i-1", migration=2, side="source", phase=Sp.FROZEN)
    assert frozen.report()["status"] == "frozen"


def test_a_record_is_one_page_rewritten_in_place(tmp_path: Path) -> None:
    d = tmp_path / "migrations"
    recs = Records(d)
    rec = Record(instance="i-1", migration=3, side="target", phase=Tp.PREPARING)
    recs.save(rec)
    recs.step(rec, Tp.ABORTED, reason="\u00e9" * 5000)  # far more than a page escaped
    raw = (d / "i-1.json").read_bytes()
    assert len(raw) == 4096
    again = Records(d).load()["i-1"]
    assert again.phase == Tp.ABORTED and again.reason and set(again.reason) == {"\u00e9"}


def test_records_carry_secrets_so_only_the_agent_reads_them(tmp_path: Path) -> None:
    d = tmp_path / "migrations"
    Records(d).save(Record(instance="i-1", migration=3, side="source", phase=Sp.SERVING))
    assert d.stat().st_mode & 0o777 == 0o700
    assert (d / "i-1.json").stat().st_mode & 0o777 == 0o600
    d.chmod(0o755)  # as an older agent left it
    Records(d).load()
    assert d.stat().st_mode & 0o777 == 0o700
