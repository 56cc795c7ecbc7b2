"""netfate.faults: named points, off unless the process was started to take part."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from netfate import faults
from netfate.faults import Action


def test_off_without_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(faults.ENV, raising=False)
    monkeypatch.setattr(faults, "_dir", None)
    assert not faults.enable(tmp_path)
    faults.arm(tmp_path, "migrate.source.frozen", Action.KILL)
    assert asyncio.run(faults.hit("migrate.source.frozen")) is None
    assert not faults.was_hit(tmp_path, "migrate.source.frozen")


def test_unarmed_point_passes(fault_dir: Path) -> None:
    assert asyncio.run(faults.hit("migrate.source.frozen")) is None


def test_drop_fires_once(fault_dir: Path) -> None:
    faults.arm(fault_dir, "p.drop", Action.DROP)
    assert asyncio.run(faults.hit("p.drop")) is Action.DROP
    assert faults.was_hit(fault_dir, "p.drop")
    assert asyncio.run(faults.hit("p.drop")) is None


def test_blackhole_holds_until_disarmed(fault_dir: Path) -> None:
    assert not faults.blackholed()
    faults.arm(fault_dir, "p.hole", Action.BLACKHOLE)
    assert not faults.blackholed()  # armed, not yet reached
    assert asyncio.run(faults.hit("p.hole")) is Action.BLACKHOLE
    assert faults.blackholed() and faults.was_hit(fault_dir, "p.hole")
    faults.disarm(fault_dir, "p.hole")
    assert not faults.blackholed()


def test_hang_waits_for_the_test(fault_dir: Path) -> None:
    faults.arm(fault_dir, "p.hang", Action.HANG)

    async def scenario() -> None:
        task = asyncio.create_task(faults.hit("p.hang"))
        for _ in range(500):
            if faults.was_hit(fault_dir, "p.hang"):
                break
            await asyncio.sleep(0.01)
        assert faults.was_hit(fault_dir, "p.hang")
        await asyncio.sleep(0.1)
        assert not task.done()
        faults.disarm(fault_dir, "p.hang")
        assert await asyncio.wait_for(task, 5.0) is None

    asyncio.run(scenario())


def test_unknown_action_is_ignored(fault_dir: Path) -> None:
    (fault_dir / "p.odd").write_text("explode")
    assert asyncio.run(faults.hit("p.odd")) is None


def test_point_names_are_checked(fault_dir: Path) -> None:
    with pytest.raises(ValueError):
        asyncio.run(faults.hit("../etc/passwd"))
    with pytest.raises(ValueError):
        faults.arm(fault_dir, "a/b", Action.KILL)


def test_kill_is_kill_9_of_the_process_itself(tmp_path: Path) -> None:
    d = tmp_path / "faults"
    faults.arm(d, "p.kill", Action.KILL)
    code = (
        "import asyncio, pathlib, sys\n"
        "from netfate import faults\n"
        f"assert faults.enable(pathlib.Path({str(d)!r}))\n"
        "asyncio.run(faults.hit('p.kill'))\n"
        "sys.exit(3)\n"
    )
    env = {"NETFATE_FAULTS": "1", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
    assert r.returncode == -signal.SIGKILL, r.stderr.decode()
    assert faults.was_hit(d, "p.kill")
    assert not (d / "p.kill").exists()  # fired once: a restarted process passes
