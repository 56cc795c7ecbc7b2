"""The run's Prometheus server (Debian `prometheus`): the time-series store of a
testbed run, scraping the orchestrator, every agent and the controller.

    prometheus --config.file=<run>/prometheus/prometheus.yml
               --storage.tsdb.path=<run>/prometheus/data
               --web.listen-address=127.0.0.1:PORT   (a free port; loopback only)

The configuration is generated here (`config`, pure); the process is started by
control.py like the other control processes, journalled by PID, and stopped by
the teardown like them (SIGTERM: Prometheus flushes its head block and exits).
Its data lives in the run's directory and goes with it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from netfate.metrics.promapi import Client

BINARY = "prometheus"
"""Debian's package installs it as /usr/bin/prometheus."""


def config(
    orchestrator: str,
    agents: Mapping[str, str],
    controller: str | None = None,
    *,
    interval_s: float = 2.0,
    orchestrator_token: Path | None = None,
) -> dict[str, Any]:
    """Scrape jobs for the run: `orchestrator` (HOST:PORT of its app), `agent` (node
    name -> HOST:PORT of its /metrics, scraped once however many nodes it serves)
    and `controller`. The metrics carry their own
    `node` label, so targets add none (it would clash and become exported_node).
    The orchestrator's /metrics is the operator's: `orchestrator_token` is the file
    of the token Prometheus sends (a file, so no token is in the configuration)."""
    every = f"{max(interval_s, 0.5):g}s"
    orch: dict[str, Any] = {
        "job_name": "orchestrator",
        "static_configs": [{"targets": [orchestrator]}],
    }
    if orchestrator_token is not None:
        orch["authorization"] = {"type": "Bearer", "credentials_file": str(orchestrator_token)}
    # Nodes whose agents share a process (agent/group.py) share one target.
    targets = list(dict.fromkeys(agents[n] for n in sorted(agents)))
    jobs: list[dict[str, Any]] = [
        orch,
        {"job_name": "agent", "static_configs": [{"targets": targets}]},
    ]
    if controller is not None:
        jobs.append({"job_name": "controller", "static_configs": [{"targets": [controller]}]})
    return {
        "global": {
            "scrape_interval": every,
            "scrape_timeout": every,
            "evaluation_interval": "1m",
        },
        "scrape_configs": jobs,
    }


def argv(directory: Path, port: int) -> list[str]:
    """The command line; `directory` holds the configuration and the data."""
    return [
        BINARY,
        f"--config.file={directory / 'prometheus.yml'}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=7d",
        "--log.level=warn",
    ]


def write_config(directory: Path, cfg: Mapping[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(dict(cfg), sort_keys=False))
    return path


def available() -> bool:
    return shutil.which(BINARY) is not None


def wait_ready(url: str, alive: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll `/-/ready` until it answers 200 (True), the process ends or time runs out
    (False). `alive()` says whether the process still runs."""
    client = Client(url, timeout=1.0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        if client.ready():
            return True
        time.sleep(0.1)
    return False
