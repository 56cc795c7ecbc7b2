"""Fixtures of the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from netfate import faults


@pytest.fixture
def fault_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This process takes part in fault injection (netfate.faults), armed from here."""
    monkeypatch.setenv(faults.ENV, "1")
    monkeypatch.setattr(faults, "_dir", None)
    monkeypatch.setattr(faults, "_holes", set())
    d = tmp_path / "faults"
    assert faults.enable(d)
    yield d
