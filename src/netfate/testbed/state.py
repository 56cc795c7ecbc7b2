"""Run state journal: `/run/netfate/<prefix>/state.json`.

Everything a run creates is written here *before* it is created (namespaces,
the OVS run directory) or right after (process ids, which exist only then),
so that `down`, a rollback after Ctrl-C, and `clean` after a crash can remove
exactly what the run made. Removal of something that was recorded but never
created is a no-op. Writes are atomic (temp file + rename).

`NETFATE_RUN_DIR` overrides the base directory (default /run/netfate).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from netfate.host.private import read_private
from netfate.host.proc import ProcRef

__all__ = [
    "PREFIX_RE",
    "RunState",
    "StateError",
    "check_prefix",
    "list_runs",
    "new_prefix",
    "run_root",
]

# Interface names are `<prefix>` + up to 6 characters (`l9998x`): 8 + 6 < 16.
PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{1,7}$")
STATE_VERSION = 1


class StateError(Exception):
    pass


def run_root() -> Path:
    return Path(os.environ.get("NETFATE_RUN_DIR", "/run/netfate"))


def new_prefix() -> str:
    return "nf" + secrets.token_hex(2)


def check_prefix(prefix: str) -> str:
    if not PREFIX_RE.match(prefix):
        raise StateError(
            f"invalid prefix {prefix!r}: 2 to 8 lowercase letters and digits, "
            "starting with a letter"
        )
    return prefix


def list_runs() -> list[str]:
    """Prefixes that have a state file."""
    root = run_root()
    try:
        return sorted(
            d.name
            for d in root.iterdir()
            if (d / "state.json").exists() and PREFIX_RE.match(d.name)
        )
    except FileNotFoundError:
        return []


@dataclass
class RunState:
    prefix: str
    phase: str = "building"
    """building -> up -> stopping; `failed` when a rollback could not finish."""
    owner: dict[str, Any] | None = None
    """ProcRef of the process currently building or tearing down the run."""
    created_at: float = field(default_factory=time.time)
    topology_name: str = ""
    topology_file: str = ""
    emulator: str = "none"
    """Delay/loss emulation used: none (no impaired link), netem or userspace."""
    netem_available: bool | None = None
    controller: str | None = None
    sdn: bool = False
    """The testbed runs its own SDN controller (`netfate controller`) and fabric intents."""
    secure: bool = False
    """OpenFlow between the switches and that controller is TLS, mutually authenticated
    with the run's own CA (testbed/openflow_pki.py)."""
    rstp: bool = False
    """Bridges run RSTP (the node graph has loops)."""
    tso: bool = False
    """OVS userspace TSO on, and the namespaces' veths keep their offloads on (host/ovs.py).
    Off (the default, and in journals from before the option): tx checksum offload off."""
    control: bool = False
    api_url: str | None = None
    prometheus_url: str | None = None
    """The run's Prometheus server (testbed/prometheus.py), when it runs one."""
    metrics: dict[str, str] = field(default_factory=dict)
    """What exports metrics, and where: "orchestrator", "agent:NODE", "controller" ->
    HOST:PORT of its /metrics."""
    door_url: str | None = None
    """The front door (`netfate frontdoor`): http://ADDRESS inside the emulated network,
    in the run's `<prefix>-door` namespace; None without control."""
    namespaces: list[str] = field(default_factory=list)
    ovs_rundir: str | None = None
    ovs_db: str | None = None
    processes: list[dict[str, Any]] = field(default_factory=list)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    version: int = STATE_VERSION

    @property
    def dir(self) -> Path:
        return run_root() / self.prefix

    @property
    def path(self) -> Path:
        return self.dir / "state.json"

    @property
    def secrets(self) -> Path:
        """The run's credentials (mode 0700, each file 0600): the operator's password
        and token, each agent's token, the controller's."""
        return self.dir / "secrets"

    @property
    def images(self) -> Path:
        """Storage images (USB/IP) the run's functions may open: the orchestrator's and
        every agent's --image-dir."""
        return self.dir / "images"

    def operator_token(self) -> str | None:
        return read_private(self.secrets / "operator.token")

    @classmethod
    def create(cls, prefix: str) -> RunState:
        check_prefix(prefix)
        d = run_root() / prefix
        d.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Only its owner enters: it holds the orchestrator's database (secrets,
            # write-only in reads), the agents' state and the run's credentials.
            d.mkdir(mode=0o700)
        except FileExistsError as e:
            raise StateError(f"a run with prefix {prefix} exists already ({d})") from e
        st = cls(prefix=prefix)
        st.save()
        return st

    @classmethod
    def load(cls, prefix: str) -> RunState:
        check_prefix(prefix)
        path = run_root() / prefix / "state.json"
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError as e:
            raise StateError(f"no run with prefix {prefix} ({path} not found)") from e
        except ValueError as e:
            raise StateError(f"{path} is not valid JSON: {e}") from e
        if not isinstance(doc, dict) or doc.get("prefix") != prefix:
            raise StateError(f"{path} does not describe run {prefix}")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in doc.items() if k in known})

    def save(self) -> None:
        tmp = self.path.with_name(f"state.json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1, sort_keys=True))
        tmp.replace(self.path)

    # ------------------------------------------------------------ helpers

    def add_process(self, ref: ProcRef) -> None:
        self.processes.append(ref.to_dict())
        self.save()

    def process_refs(self) -> list[ProcRef]:
        return [ProcRef.from_dict(p) for p in self.processes]

    def namespace_of(self, name: str) -> str:
        """The namespace of a node or host name (or `sw`)."""
        if name == "sw":
            return f"{self.prefix}-sw"
        if name in self.nodes:
            return str(self.nodes[name]["netns"])
        if name in self.hosts:
            return str(self.hosts[name]["netns"])
        known = sorted(self.nodes) + sorted(self.hosts)
        raise StateError(
            f"no node or host {name!r} in run {self.prefix} (known: {', '.join(known)})"
        )
