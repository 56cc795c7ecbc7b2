"""A tiny service that lives in the tests, to prove the contract (test_contract.py):
registering it is one line in netfate.services.SERVICES, and everything it
declares appears: its route (with its roles), its table (its own Alembic
branch), its descriptor (and its functions' events), its loop, its CLI group,
its demo, its experiment, its panel and its topology. Nothing outside this folder names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from sqlalchemy import Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from netfate.contract import Demo, Experiment, Loop, Role, Service
from netfate.orchestrator.api.deps import SessionDep
from netfate.store.base import Base


class FakeTickRow(Base):
    __tablename__ = "fake_ticks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


router = APIRouter()


@router.get("/ticks")
def ticks(session: SessionDep) -> dict[str, int]:
    return {r.name: r.count for r in session.scalars(select(FakeTickRow))}


def tick(s: Session) -> set[str]:
    """The loop's step: counts its own passes in its own table."""
    row = s.get(FakeTickRow, "loop")
    if row is None:
        s.add(FakeTickRow(name="loop", count=1))
    else:
        row.count += 1
    return set()


def on_event(s: Session, inst: Any, event: dict[str, Any]) -> set[str]:
    """Its functions' events: counted per kind; ``Broke`` writes, then fails."""
    if event["kind"] == "Broke":
        s.add(FakeTickRow(name="half-done", count=1))
        raise RuntimeError("the hook broke")
    key = f"event:{event['kind']}"
    row = s.get(FakeTickRow, key)
    if row is None:
        s.add(FakeTickRow(name=key, count=1))
    else:
        row.count += 1
    return {inst.node}


SERVICE = Service(
    name="fake",
    summary="A service that exists only in the tests.",
    folder=Path(__file__).parent,
    api=router,
    roles={"GET /ticks": (Role.OPERATOR,)},
    descriptors=(
        {
            "name": "fake-fn",
            "function": "counter",
            "cpu": 0.1,
            "memory_mb": 16,
            "stateful": False,
            "description": "the fake service's function",
        },
    ),
    loops=(Loop("tick", tick, interval_s=0.05),),
    on_instance_event=on_event,
    cli="fakesvc.cli:app",
    demos=(Demo("fake", "fakesvc.demo", aliases=("phony",)),),
    experiments=(Experiment("fake", "fakesvc.cli:experiment"),),
    panels=("panel.js",),
)
