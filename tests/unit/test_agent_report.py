"""The agent's report body (agent/report.py): what it says of each copy, task,
failure and migration, built from state the test sets (no I/O)."""

from __future__ import annotations

import asyncio
import types
from typing import Any

from netfate.agent.migration import Record
from netfate.agent.migration import SourcePhase as Sp
from netfate.agent.migration import TargetPhase as Tp
from netfate.agent.report import Figures, report_body
from netfate.agent.supervisor import Supervisor
from netfate.model.lifecycle import InstanceRole


class Copy:
    def __init__(self, role: InstanceRole, alive: bool, from_standby: bool = False) -> None:
        self.role, self._alive = role, alive
        self.pid, self.limits = 42, "cpu 0.1 cores, memory 64 MiB"
        self.from_standby = from_standby

    def alive(self) -> bool:
        return self._alive

    def tail_log(self) -> str:
        return "Traceback: boom"


def test_the_body_says_what_each_copy_task_and_failure_is() -> None:
    sup = Supervisor(types.SimpleNamespace(), asyncio.Event())  # type: ignore[arg-type]
    fig = Figures(sup)
    sup.instances.update(
        {
            "i-run": Copy(InstanceRole.ACTIVE, True),
            "i-sby": Copy(InstanceRole.STANDBY, True),
            "i-dead": Copy(InstanceRole.ACTIVE, False),
            "i-warm": Copy(InstanceRole.ACTIVE, True, from_standby=True),
        }  # type: ignore[dict-item]
    )
    sup.tasks.update({"i-new": None, "i-old": None, "i-run": None})  # type: ignore[dict-item]
    sup.failed["i-bad"] = "no such function"
    fig.fn_stats = {"i-run": {"count": 3}}
    fig.stats = ([{"name": "p", "ofport": 1, "peer": "host:h"}], {"instances": 3})
    desired: dict[str, Any] = {"i-new": {"role": "standby"}, "i-run": {"role": "active"}}
    records = [
        Record(instance="i-sby", migration=4, side="target", phase=Tp.FINAL),
        Record(instance="i-x", migration=2, side="source", phase=Sp.SERVING),
    ]
    body = report_body(sup, fig, desired, records)
    by_id = {i["id"]: i for i in body["instances"]}
    assert by_id["i-run"] == {
        "id": "i-run",
        "status": "running",
        "role": "active",
        "pid": 42,
        "detail": "cpu 0.1 cores, memory 64 MiB",
        "stats": {"count": 3},
    }
    assert (by_id["i-sby"]["status"], by_id["i-sby"]["role"]) == ("standby", "standby")
    # Died: reported as starting (the next converge starts it again), with its log.
    assert by_id["i-dead"]["status"] == "starting"
    assert by_id["i-dead"]["detail"] == "restarting: Traceback: boom"
    # A task for something not here yet: starting in its desired role; else stopping.
    assert by_id["i-new"] == {"id": "i-new", "status": "starting", "role": "standby"}
    assert by_id["i-old"] == {"id": "i-old", "status": "stopping"}
    assert by_id["i-bad"] == {"id": "i-bad", "status": "failed", "detail": "no such function"}
    # One that took a warm standby says so (its record does: agent/standbys.py).
    assert by_id["i-warm"]["from_standby"] is True and "from_standby" not in by_id["i-run"]
    assert len(body["instances"]) == 7
    # A record still serving is no migration to report.
    assert body["migrations"] == [{"id": 4, "instance": "i-sby", "status": "preparing"}]
    assert body["ports"] == [{"name": "p", "ofport": 1, "peer": "host:h"}]
    assert body["resources"] == {"instances": 3}
