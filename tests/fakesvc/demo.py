"""`netfate demo fake`: a scenario module as the contract asks for one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TOPOLOGY = Path(__file__).parent / "topologies" / "fake.yaml"


def check(tb: Any, say: Any) -> None:
    say("nothing to check")


def show(tb: Any, say: Any) -> None:
    say("nothing to show")
