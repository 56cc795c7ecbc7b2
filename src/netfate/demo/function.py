"""A function under the VNF runtime, started inside a testbed namespace as the agent
starts it (``python -m netfate.vnf FUNCTION``), for experiments that drive functions
directly: its control socket and log live in the experiment's work folder."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from netfate.agent.instances import control_call
from netfate.host import netns
from netfate.host.private import write_private


class FunctionProcess:
    """One function process; `stop` ends it (ours, by pid)."""

    def __init__(
        self, ns: str, function: str, name: str, work: Path, config: dict[str, Any],
        standby: bool = False,
    ) -> None:  # fmt: skip
        self.control = str(work / f"{name}.ctl")
        argv = [sys.executable, "-m", "netfate.vnf", function, "--instance", name]
        # The configuration in a 0600 file, as the agent hands it: never on the argument
        # list, which every user reads in /proc.
        conf = write_private(work / f"{name}.config", json.dumps(config))
        argv += ["--control", self.control, "--config-file", str(conf)]
        argv += ["--standby"] if standby else []
        self.log = open(work / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = netns.popen_in(ns, argv, stdout=self.log, stderr=subprocess.STDOUT)
        ready = Path(self.control + ".ready")
        deadline = time.monotonic() + 30
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{name} did not start; see {work / (name + '.log')}")
            time.sleep(0.01)

    def call(self, req: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        return asyncio.run(control_call(self.control, req, timeout=timeout))

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = self.call({"op": "status"})["stats"]
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:  # ours, by pid
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
