"""The agent's fork server: a forked instance lives in its namespace, under its
own name and session, and errors come back as errors, not as pids."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netfate.agent.instances import InstanceError, Zygote
from netfate.host import netns
from netfate.vnf.zygote import process_name


@pytest.fixture
def zygote(tmp_path: Path) -> Iterator[Zygote]:
    z = Zygote(tmp_path)
    assert z.start()
    yield z
    z.stop()
    assert not z.usable()


@pytest.fixture
def ns(run_prefix: str) -> Iterator[str]:
    name = f"{run_prefix}-z"
    netns.ensure(name)
    yield name
    netns.remove(name)


def test_fork_runs_the_function_in_its_namespace(zygote: Zygote, ns: str, tmp_path: Path) -> None:
    control = str(tmp_path / "i-0000abcd.sock")
    argv = [
        "counter",
        "--instance",
        "i-0000abcd",
        "--control",
        control,
        "--config",
        json.dumps({"port": 7799}),
    ]
    pid = zygote.fork(ns, argv, tmp_path / "i.log", "i-0000abcd")
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(control + ".ready"):
            assert time.monotonic() < deadline, (tmp_path / "i.log").read_text()
            time.sleep(0.01)
        assert Path(f"/proc/{pid}/comm").read_text().strip() == process_name("i-0000abcd")
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{ns}").st_ino
        assert os.getsid(pid) == pid, "a session of its own: it outlives the agent"
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(control)
            s.sendall(b'{"op": "status"}\n')
            assert json.loads(s.makefile().readline())["ok"] is True
    finally:
        os.kill(pid, signal.SIGTERM)


def test_unknown_namespace_is_an_error(zygote: Zygote, tmp_path: Path) -> None:
    with pytest.raises(InstanceError, match="nft-nowhere"):
        zygote.fork(
            "nft-nowhere",
            ["counter", "--instance", "i-1", "--control", str(tmp_path / "c")],
            tmp_path / "l",
            "i-1",
        )


def test_unknown_function_is_an_error(zygote: Zygote, ns: str, tmp_path: Path) -> None:
    with pytest.raises(InstanceError, match="unknown function"):
        zygote.fork(
            ns,
            ["no_such_fn", "--instance", "i-2", "--control", str(tmp_path / "c")],
            tmp_path / "l",
            "i-2",
        )
    assert zygote.usable(), "a bad request does not kill the zygote"


def test_it_dies_with_an_agent_that_dies_while_it_starts(tmp_path: Path) -> None:
    """An agent killed within a second of starting its zygote (still importing: a
    second or more on a loaded machine) left it running before; it goes with it."""
    import subprocess
    import sys

    from waiting import until

    starter = (
        "import sys; from pathlib import Path; from netfate.agent.instances import Zygote; "
        "z = Zygote(Path(sys.argv[1])); z._popen(); print(z.proc.pid, flush=True)"
    )  # starts it and exits at once, as an agent killed right after
    out = subprocess.run(
        [sys.executable, "-c", starter, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    pid = int(out.stdout)

    def running() -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return b"netfate.vnf.zygote" in cmdline and state != "Z"

    try:
        assert until(lambda: not running(), timeout=60)
    finally:
        if running():
            os.kill(pid, signal.SIGKILL)
