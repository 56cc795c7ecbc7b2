"""Files that hold secrets are their owner's only (issue 12, section 5).

An agent keeps its functions' secrets to itself: a configuration reaches the
function's process in a 0600 file, never on its argument list (/proc/PID/cmdline,
readable by every user), whether the zygote forks it or a new interpreter starts;
the instance's spec file is 0600 and the state directory 0700. The testbed test
(tests/services/firewall/testbed/test_secrets_testbed.py) proves the whole platform
so; this one the path without zygote, which it does not take. The orchestrator's
SQLite database (secrets are write-only in reads, but stored) is 0600, and a testbed
run's directory 0700.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from netfate.agent import instances
from netfate.agent.instances import Instance, NodeContext
from netfate.host.ovs import Vsctl
from netfate.host.private import private_dir
from netfate.store.db import Database
from netfate.testbed.state import RunState
from netfate.vnf import runtime

SECRET = "s3cret-4d1c9e0b"
CONFIG = {"radius": {"server": "10.10.0.1:1812", "secret": SECRET}, "port": 80}
PORTAL = "netfate.vnf.portal:Portal"


class _Started:
    pid = 4242


def test_a_new_interpreter_gets_its_configuration_in_a_private_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = private_dir(tmp_path / "agent")
    started: list[list[str]] = []

    def popen_in(_ns: str, argv: list[str], **_kw: Any) -> _Started:
        started.append(argv)
        return _Started()

    monkeypatch.setattr(instances.netns, "popen_in", popen_in)
    ctx = NodeContext("cpe1", "nft0", state, "br0", Vsctl("unix:/nonexistent"), zygote=None)
    inst = Instance(spec={"id": "i-1", "function": PORTAL, "config": CONFIG}, ctx=ctx)
    inst.spawn()
    (argv,) = started
    assert not any(SECRET in a for a in argv), argv
    given = Path(argv[argv.index("--config-file") + 1])
    assert json.loads(given.read_text()) == CONFIG
    for f in (given, inst.path(".json")):
        assert f.stat().st_mode & 0o777 == 0o600, f
    assert SECRET in inst.path(".json").read_text()  # what the agent adopts after a restart
    assert state.stat().st_mode & 0o777 == 0o700
    # The function reads it so (and a file it cannot read is a clear error).
    assert runtime.read_config(str(given), None) == CONFIG
    with pytest.raises(SystemExit, match="cannot read the configuration"):
        runtime.read_config(str(tmp_path / "missing"), None)


def test_a_state_directory_that_was_open_is_closed(tmp_path: Path) -> None:
    d = tmp_path / "agent"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    assert private_dir(d).stat().st_mode & 0o777 == 0o700


def test_the_database_file_is_the_owners(tmp_path: Path) -> None:
    new = Database(f"sqlite:///{tmp_path}/new.db")
    new.migrate()
    old = tmp_path / "old.db"
    old.write_bytes(b"")
    os.chmod(old, 0o644)  # made before: closed at the next start
    Database(f"sqlite:///{old}").migrate()
    files = sorted(tmp_path.glob("*.db*"))
    assert {f.name for f in files} >= {"new.db", "old.db"}
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {
        f.name: "0o600" for f in files
    }
    Database("sqlite://").migrate()  # in memory: no file


def test_a_run_directory_is_the_owners(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETFATE_RUN_DIR", str(tmp_path))
    st = RunState.create("nfx0")
    assert st.dir.stat().st_mode & 0o777 == 0o700
