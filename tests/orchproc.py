"""`netfate orchestrator` as a child process on 127.0.0.1 (browser and concurrency tests).

The orchestrator writes its first operator's credentials to a file of the test's
(`--operator-file`); `token` is that operator's (signed in once), `agent_token(n)`
node n's agent's, `sign_in_browser(context)` gives a browser context its session. `FakeAgents` plays
the node agents over the agents' HTTP API (register, heartbeats).
"""

from __future__ import annotations

import contextlib
import json
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netfate.host.ports import free_port as _free_port

REPO = Path(__file__).resolve().parents[1]
TOPOLOGY = REPO / "examples" / "demo.yaml"


class Orchestrator:
    """`netfate orchestrator` as a child process on 127.0.0.1, restartable in place."""

    def __init__(
        self,
        tmp_path: Path,
        topology: Path | None = TOPOLOGY,
        database_url: str | None = None,
        args: tuple[str, ...] = (),
        ca: Path | None = None,
    ) -> None:
        """`ca`: the orchestrator serves HTTPS (`args` give --tls-cert/--tls-key) with a
        certificate from this CA, which the readiness check trusts."""
        self.port = _free_port()
        self.ca = ca
        self.base = f"{'https' if ca else 'http'}://127.0.0.1:{self.port}"
        self.db = tmp_path / "o.db"
        self.database_url = database_url or f"sqlite:///{self.db}"
        self.log_path = tmp_path / "orchestrator.log"
        self.topology = topology
        self.args = args
        self.operator_file = tmp_path / "operator.json"
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""
        self._agents: dict[str, str] = {}

    def start(self) -> None:
        argv = [sys.executable, "-m", "netfate", "orchestrator"]
        argv += ["--listen", f"127.0.0.1:{self.port}", "--database-url", self.database_url]
        argv += ["--operator-file", str(self.operator_file)]
        if self.topology is not None:
            argv += ["--topology", str(self.topology)]
        argv += self.args
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"orchestrator exited with {self.proc.returncode}: "
                    + self.log_path.read_text()[-2000:]
                )
            with contextlib.suppress(httpx.HTTPError):
                verify = self.verify
                r = httpx.get(f"{self.base}/api/v1/health", timeout=1, verify=verify)
                if r.status_code == 200:
                    if not self.token:
                        r = httpx.post(f"{self.base}/api/v1/auth/token", json=self.operator,
                                       verify=verify)  # fmt: skip
                        r.raise_for_status()
                        self.token = r.json()["token"]
                    return
            if time.monotonic() > deadline:
                self.stop()  # the fixture never gets to stop it: do not leave it running
                pytest.fail("orchestrator did not answer within 30 s")
            time.sleep(0.1)

    @property
    def operator(self) -> dict[str, str]:
        """The first operator's name and password (JSON the orchestrator wrote)."""
        got: dict[str, str] = json.loads(self.operator_file.read_text())
        return got

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """How a client here checks the orchestrator's certificate (its CA, if any)."""
        return ssl.create_default_context(cafile=self.ca) if self.ca else True

    def agent_token(self, node: str) -> str:
        """Node `node`'s agent token (asked of the operator API once)."""
        if node not in self._agents:
            r = httpx.post(f"{self.base}/api/v1/accounts/agents", json={"node": node},
                           headers=self.headers, verify=self.verify)  # fmt: skip
            r.raise_for_status()
            self._agents[node] = r.json()["token"]
        return self._agents[node]

    def sign_in_browser(self, context: Any) -> None:
        """Give a Playwright browser context the operator's web session (its cookies)."""
        r = context.request.post(f"{self.base}/api/v1/auth/session", data=self.operator)
        assert r.ok, r.text()

    def kill(self) -> None:
        """SIGKILL, as in the fault cases of the issue (only this process, by its pid)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def orch(tmp_path: Path) -> Iterator[Orchestrator]:
    """A started orchestrator process (import this fixture into a test module)."""
    o = Orchestrator(tmp_path)
    try:
        o.start()
        yield o
    finally:
        o.stop()


class FakeAgents:
    """Plays the agents of some nodes: heartbeats with the instances the test set.

    Agents report about once a second and the orchestrator marks a node unreachable
    after 3 s of silence, so this reports every 0.5 s from a thread until stopped.
    """

    def __init__(self, orch: Orchestrator) -> None:
        self.orch = orch
        self.api = f"{orch.base}/api/v1"
        self.http = httpx.Client(timeout=5)
        self.lock = threading.Lock()
        self.reports: dict[str, dict[str, Any]] = {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.errors: list[str] = []

    def register(self, *nodes: str) -> None:
        for n in nodes:
            r = self.http.post(f"{self.api}/agents/{n}/register", json={"endpoint": "127.0.0.1:1"},
                               headers=self._auth(n))  # fmt: skip
            r.raise_for_status()
            with self.lock:
                self.reports.setdefault(n, {"instances": [], "migrations": []})
        if not self.thread.is_alive():
            self.thread.start()

    def set(self, node: str, **report: Any) -> None:
        """Replace what `node` reports from now on, and report it at once."""
        with self.lock:
            self.reports[node] = {"instances": [], "migrations": [], **report}
        self._report(node)

    def _auth(self, node: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.orch.agent_token(node)}"}

    def silence(self, node: str) -> None:
        with self.lock:
            self.reports.pop(node, None)

    def _report(self, node: str) -> None:
        with self.lock:
            body = self.reports.get(node)
        if body is None:
            return
        r = self.http.post(f"{self.api}/agents/{node}/report", json=body, headers=self._auth(node))
        if r.status_code != 200:
            self.errors.append(f"{node}: {r.status_code} {r.text}")

    def _run(self) -> None:
        while not self.stopped.wait(0.5):
            with self.lock:
                nodes = list(self.reports)
            for n in nodes:
                with contextlib.suppress(httpx.HTTPError):
                    self._report(n)

    def close(self) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        self.http.close()
