"""Control plane of a testbed run: the orchestrator and one agent per node.

Kept apart from the network build on purpose: `--no-control` skips this
module entirely. Commands and flags are the ones in docs/CONTRACTS.md:

    python -m netfate orchestrator --listen 127.0.0.1:PORT
        --database-url sqlite:///<run>/orchestrator.db --topology <run>/topology.yaml
    python -m netfate agent --node N --orchestrator URL --netns P-N
        --migration-netns P-N --listen <N's transit address>:0
        --ovs-db unix:<run>/ovs/db.sock --ovs-netns P-sw --bridge Pb<i>
        --state-dir <run>/agents/N --prefix P

The front door (`netfate frontdoor`, after the orchestrator) listens at the
topology's door address (the transit network's last) inside the run's
`<prefix>-door` namespace and relays the users' pages to the orchestrator; it and
the orchestrator share the run's `secrets/door.secret`.

With Prometheus (the default), the orchestrator also gets `--prometheus URL`, each
agent and the controller `--metrics 127.0.0.1:PORT`, and the run's Prometheus
(testbed/prometheus.py) starts last, scraping all of them.

Beyond 30 nodes the agents' `--heartbeat` and the orchestrator's
`--heartbeat-timeout` (their own options, not in the contract) are stretched
so the orchestrator keeps up on a small machine (`heartbeat_for`).

All run in the root namespace (agents reach into their node's namespace
themselves: their migration channel is a socket made inside it, on the node's transit
address, so a migration's bytes cross the emulated links and never the root
namespace's loopback), detached in their own sessions so they outlive `testbed up`,
with logs under the run directory. Each pid is journalled as soon as it exists.

Credentials (the run's `secrets/`, mode 0700, each file 0600): the orchestrator
writes its first operator's password to `operator.json` (`--operator-file`);
this module signs in as that operator (`operator.token`, which the CLI and the
demos find by the run's URL), asks the operator API for each agent's token and
the controller's, and hands each to its process as `--token-file` (a path on
the argument list; the token itself never is).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from netfate.host import netns, proc
from netfate.host.ports import free_port
from netfate.host.private import read_private, write_private
from netfate.model.topology import NodeSpec, Topology
from netfate.testbed import openflow_pki
from netfate.testbed import prometheus as prom
from netfate.testbed.run import SDN_PORT, Names, Progress, TestbedError, check_interrupted
from netfate.testbed.state import RunState

__all__ = [
    "agents_per_process_for",
    "free_port",
    "heartbeat_for",
    "start_control",
    "start_door",
    "start_prometheus",
    "wait_nodes_up",
]


DEFAULT_HEARTBEAT = 1.0
NODES_PER_HEARTBEAT_SECOND = 30
DOOR_PORT = 80
GROUP_SIZE = 50
"""Nodes per agent process beyond 30 nodes (agents_per_process_for)."""
DEFAULT_MAX_LONG_POLLS = 256
"""The orchestrator's default (orchestrator/app.py Settings.max_long_polls)."""
LONG_POLL_SPARE = 64
"""Long-poll slots beyond one per node (the controller's, the dashboards')."""


def heartbeat_for(n_nodes: int) -> float:
    """Agent report interval: 1 s up to 30 nodes, then longer so the orchestrator sees
    about 30 reports a second (on 2 cores, 30 agents at 1 s already cost half a core)."""
    return max(DEFAULT_HEARTBEAT, round(n_nodes / NODES_PER_HEARTBEAT_SECOND, 1))


STREAMING_VOLUME = "NETFATE_STREAMING_VOLUME"
"""The streaming service's volume (services/streaming/recordings.py; named, not imported:
the testbed sits below the services)."""


def _spawn(
    st: RunState, argv: list[str], role: str, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as f:
        p = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    with contextlib.suppress(ProcessLookupError):  # exited at once: the wait reports it
        st.add_process(proc.ref(p.pid, role=role))
    return p


def _tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def start_control(
    st: RunState,
    topo: Topology,
    names: Names,
    *,
    api_port: int = 0,
    migration_deadline_s: float | None = None,
    prometheus: bool = True,
    agents_per_process: int | None = None,
    progress: Progress | None = None,
) -> str:
    """Start orchestrator and agents (and with `prometheus` the run's Prometheus,
    scraping them), wait until every node is up; returns the API URL."""
    report = progress or (lambda _: None)
    port = api_port or free_port()
    url = f"http://127.0.0.1:{port}"
    st.api_url = url
    st.metrics = {"orchestrator": f"127.0.0.1:{port}"}
    if prometheus:
        if not prom.available():
            raise TestbedError(
                f"{prom.BINARY} not found: install Debian's prometheus (make deps), "
                "or run without Prometheus"
            )
        st.prometheus_url = f"http://127.0.0.1:{free_port()}"
    st.save()
    logs = st.dir / "logs"
    st.images.mkdir(mode=0o700, parents=True, exist_ok=True)
    t0 = time.monotonic()
    door_secret = write_private(st.secrets / "door.secret", secrets.token_urlsafe(32))
    report("orchestrator")
    orch_log = logs / "orchestrator.log"
    orch = _spawn(
        st,
        [
            sys.executable,
            "-m",
            "netfate",
            "orchestrator",
            "--listen",
            f"127.0.0.1:{port}",
            "--database-url",
            f"sqlite:///{st.dir / 'orchestrator.db'}",
            "--topology",
            str(st.dir / "topology.yaml"),
            "--operator-file",
            str(st.secrets / "operator.json"),
            "--door-secret-file",
            str(door_secret),
            "--allowed-host",
            str(topo.door_ip),
            "--image-dir",
            str(st.images),
            *(
                ["--heartbeat-timeout", str(3 * heartbeat_for(len(topo.nodes)))]
                if heartbeat_for(len(topo.nodes)) != DEFAULT_HEARTBEAT
                else []
            ),
            # Each agent holds a long-poll (and the controller one): beyond the
            # orchestrator's default 256 the rest were answered 429 and retried.
            *(
                ["--max-long-polls", str(len(topo.nodes) + LONG_POLL_SPARE)]
                if len(topo.nodes) + LONG_POLL_SPARE > DEFAULT_MAX_LONG_POLLS
                else []
            ),
            *(
                ["--migration-deadline", str(migration_deadline_s)]
                if migration_deadline_s is not None
                else []
            ),
            *(["--prometheus", st.prometheus_url] if st.prometheus_url else []),
        ],
        "orchestrator",
        orch_log,
        # Where the streaming service records (its storage function writes there as
        # root): below the agents' --image-dir, or they refuse the function.
        {STREAMING_VOLUME: str(st.images / "streaming"), **os.environ},
    )
    _wait_http(url, orch, orch_log, timeout=60.0)
    report("credentials")
    token = sign_in_operator(st, url)
    start_door(st, topo, names, url, door_secret, report)
    nodes = list(topo.nodes.values())
    per_process = agents_per_process or agents_per_process_for(len(nodes))
    report(f"agents ({len(nodes)}, {per_process} per process)")
    agents: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    heartbeat = heartbeat_for(len(nodes))
    # Python start-up of many agents on few cores dominates: allow for it.
    deadline = time.monotonic() + 60.0 + 1.0 * len(nodes)
    # Every node's token before any agent starts: issued while agents start, the
    # requests wait behind their registrations and reports (one timed out at 30 s
    # with 100 agents under load 15).
    tokens = {n.name: issue_token(st, url, token, "agents", {"node": n.name}) for n in nodes}
    groups = [nodes[i : i + per_process] for i in range(0, len(nodes), per_process)]
    # Start agents in waves and let each wave register before the next: all at once,
    # their imports starve the orchestrator and each other on a small machine. A
    # wave is 16 nodes or 8 per core, or a whole process's nodes per core.
    cores = os.cpu_count() or 1
    wave = max(1, cores) if per_process > 1 else max(16, 8 * cores)
    started = 0
    for first in range(0, len(groups), wave):
        for group in groups[first : first + wave]:
            if per_process == 1:
                node = group[0]
                argv = _agent_argv(st, names, "agent", url)
                argv += _node_args(st, names, node, tokens[node.name], "--")
                role, log = f"agent:{node.name}", logs / f"agent-{node.name}.log"
            else:
                label = f"{group[0].name}..{group[-1].name}"
                nodes_file = st.dir / "agents" / f"group-{group[0].name}.json"
                settings = [_node_args(st, names, n, tokens[n.name], "") for n in group]
                nodes_file.parent.mkdir(parents=True, exist_ok=True)
                nodes_file.write_text(json.dumps([_as_settings(a) for a in settings], indent=1))
                argv = [*_agent_argv(st, names, "agents", url), "--nodes-file", str(nodes_file)]
                role, log = f"agents:{label}", logs / f"agents-{group[0].name}.log"
            if prometheus:
                where = f"127.0.0.1:{free_port()}"
                for n in group:
                    st.metrics[f"agent:{n.name}"] = where
                argv += ["--metrics", where]
            if heartbeat != DEFAULT_HEARTBEAT:
                argv += ["--heartbeat", str(heartbeat)]
            agents[role] = (_spawn(st, argv, role, log), log)
            started += len(group)
        wait_nodes_up(
            url,
            token,
            [n.name for n in nodes[:started]],
            timeout=max(deadline - time.monotonic(), 1.0),
            agents=agents,
            progress=report,
            total=len(nodes),
        )
    if st.sdn:
        start_sdn(st, topo, names, url, token, report)
    if st.prometheus_url:
        start_prometheus(st, report)
    st.timings["control"] = round(time.monotonic() - t0, 4)
    st.save()
    if orch.poll() is not None:
        raise TestbedError(f"orchestrator exited with {orch.returncode}: {_tail(orch_log)}")
    return url


def agents_per_process_for(n_nodes: int) -> int:
    """One agent process per node up to 30 nodes (tests stop and restart a node's
    agent by its process); beyond, groups of `GROUP_SIZE` nodes per process
    (`netfate agents`): an interpreter costs about 56 MB, a node in a group much less."""
    return 1 if n_nodes <= NODES_PER_HEARTBEAT_SECOND else GROUP_SIZE


def _agent_argv(st: RunState, names: Names, command: str, url: str) -> list[str]:
    """What every agent process of the run is given, whatever its nodes."""
    return [sys.executable, "-m", "netfate", command, "--orchestrator", url,
            "--ovs-db", str(st.ovs_db), "--ovs-netns", names.sw,
            "--prefix", st.prefix, "--image-dir", str(st.images)]  # fmt: skip


def _node_args(
    st: RunState, names: Names, node: NodeSpec, token_file: Path, dashes: str
) -> list[str]:
    """One node's own settings, as options (`dashes` "--") or as the keys of a
    group's nodes file ("": see _as_settings)."""
    return [
        f"{dashes}node", node.name,
        f"{dashes}netns", names.ns(node.name),
        # Migrations between agents leave and enter through the nodes'
        # namespaces, so they cross the emulated links (agent/channel.py).
        f"{dashes}migration-netns", names.ns(node.name),
        f"{dashes}listen", f"{node.transit_ip}:0",
        f"{dashes}bridge", names.bridge(node),
        f"{dashes}state-dir", str(st.dir / "agents" / node.name),
        f"{dashes}token-file", str(token_file),
    ]  # fmt: skip


def _as_settings(args: list[str]) -> dict[str, str]:
    """_node_args's pairs as an entry of the nodes file (agent/group.py)."""
    return {k.replace("-", "_"): v for k, v in zip(args[::2], args[1::2], strict=True)}


def start_door(
    st: RunState, topo: Topology, names: Names, url: str, secret: Path, report: Progress
) -> None:
    """The front door (`netfate frontdoor`): the users' pages at http://<door address>
    inside the emulated network (its `<prefix>-door` namespace), relayed to `url`."""
    report("front door")
    log = st.dir / "logs" / "frontdoor.log"
    door = str(topo.door_ip)
    p = _spawn(
        st,
        [sys.executable, "-m", "netfate", "frontdoor", "--listen", f"{door}:{DOOR_PORT}",
         "--netns", names.door, "--upstream", url, "--secret-file", str(secret)],
        "frontdoor",
        log,
    )  # fmt: skip
    deadline = time.monotonic() + 60.0
    while not _door_answers(names.door, door):
        if p.poll() is not None:
            raise TestbedError(f"front door exited with {p.returncode}: {_tail(log)}")
        if time.monotonic() > deadline:
            raise TestbedError(f"front door not answering at {door} after 60s: {_tail(log)}")
        check_interrupted()
        time.sleep(0.1)
    st.door_url = f"http://{door}"
    st.save()


def _door_answers(ns: str, door: str) -> bool:
    """The door relays the orchestrator's health (asked from inside its namespace)."""
    try:
        with netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(2.0)
            s.connect((door, DOOR_PORT))
            s.sendall(f"GET /api/v1/health HTTP/1.0\r\nHost: {door}\r\n\r\n".encode())
            return s.recv(64).startswith((b"HTTP/1.1 200 ", b"HTTP/1.0 200 "))
    except OSError:
        return False


def sign_in_operator(st: RunState, url: str) -> str:
    """Sign in as the operator the orchestrator made at its first start; the token is
    kept in the run's secrets (an orchestrator started again on the run's database
    makes none: the token made the first time serves)."""
    kept = st.operator_token()
    if kept:
        return kept
    text = read_private(st.secrets / "operator.json")
    if text is None:
        raise TestbedError("the orchestrator wrote no operator credentials")
    op = json.loads(text)
    try:
        r = httpx.post(f"{url}/api/v1/auth/token", json=op, timeout=30.0)
        r.raise_for_status()
        token = str(r.json()["token"])
    except (httpx.HTTPError, ValueError, KeyError) as e:
        raise TestbedError(f"cannot sign in as the operator: {e}") from e
    write_private(st.secrets / "operator.token", token)
    return token


def issue_token(st: RunState, url: str, token: str, kind: str, body: dict[str, str]) -> Path:
    """An agent's (kind "agents", body {node}) or a controller's ("controllers") token,
    from the operator API, in a file of the run's secrets; the file's path."""
    try:
        r = httpx.post(f"{url}/api/v1/accounts/{kind}", json=body, timeout=30.0,
                       headers=bearer(token))  # fmt: skip
        r.raise_for_status()
        issued = str(r.json()["token"])
    except (httpx.HTTPError, ValueError, KeyError) as e:
        raise TestbedError(f"no {kind} credential for {body}: {e}") from e
    name = "-".join([kind.rstrip("s"), *body.values()])
    return write_private(st.secrets / f"{name}.token", issued)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def start_sdn(
    st: RunState, topo: Topology, names: Names, url: str, token: str, report: Progress
) -> None:
    """The run's own OpenFlow controller, listening inside the switch namespace, and
    the fabric intents that let the routed network work in secure mode (nothing
    passes a secure bridge without them)."""
    report("SDN controller")
    if st.prometheus_url:
        st.metrics["controller"] = f"127.0.0.1:{free_port()}"
        st.save()
    token_file = issue_token(st, url, token, "controllers", {"name": "sdn"})
    log = st.dir / "logs" / "controller.log"
    tls: list[str] = []
    if st.secure:
        mine = openflow_pki.files(st.dir).controller
        tls = ["--ofp-cert", str(mine.cert), "--ofp-key", str(mine.key), "--ofp-ca", str(mine.ca)]
    ctl = _spawn(
        st,
        [
            sys.executable,
            "-m",
            "netfate",
            "controller",
            "--orchestrator",
            url,
            "--listen",
            f"127.0.0.1:{SDN_PORT}",
            "--netns",
            names.sw,
            *(["--metrics", st.metrics["controller"]] if "controller" in st.metrics else []),
            "--token-file",
            str(token_file),
            *tls,
        ],
        "controller",
        log,
    )
    report("fabric intents")
    # The fabric is compiled from the bridges' ports, which agents report shortly
    # after their node is up: ask again until every host has its gateway intent and
    # another request adds nothing.
    want = {f"fabric-gw-{h}" for h in topo.hosts}
    deadline = time.monotonic() + 60.0
    have: set[str] = set()
    while True:
        try:
            r = httpx.post(f"{url}/api/v1/sdn/fabric", timeout=60.0, headers=bearer(token))
            r.raise_for_status()
            result = r.json()
        except (httpx.HTTPError, ValueError) as e:
            raise TestbedError(f"fabric intents refused: {e}") from e
        have |= set(result.get("added", [])) | set(result.get("kept", []))
        if want <= have and not result.get("added"):
            break
        if time.monotonic() > deadline:
            raise TestbedError(f"fabric incomplete after 60 s: missing {sorted(want - have)}")
        check_interrupted()
        time.sleep(0.5)
    if ctl.poll() is not None:
        raise TestbedError(f"controller exited with {ctl.returncode}: {_tail(log)}")


def start_prometheus(st: RunState, report: Progress) -> None:
    """The run's Prometheus (testbed/prometheus.py), scraping every /metrics in
    `st.metrics`; waits until it is ready."""
    if st.prometheus_url is None:
        raise TestbedError("no Prometheus address chosen for this run")
    report("Prometheus")
    agents = {k[6:]: v for k, v in st.metrics.items() if k.startswith("agent:")}
    token = st.secrets / "operator.token"
    cfg = prom.config(st.metrics["orchestrator"], agents, st.metrics.get("controller"),
                      orchestrator_token=token if token.exists() else None)  # fmt: skip
    directory = st.dir / "prometheus"
    prom.write_config(directory, cfg)
    port = int(st.prometheus_url.rpartition(":")[2])
    log = st.dir / "logs" / "prometheus.log"
    p = _spawn(st, prom.argv(directory, port), "prometheus", log)
    if not prom.wait_ready(st.prometheus_url, lambda: p.poll() is None):
        raise TestbedError(f"Prometheus not ready at {st.prometheus_url}: {_tail(log)}")


def _wait_http(url: str, p: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if p.poll() is not None:
            raise TestbedError(f"orchestrator exited with {p.returncode}: {_tail(log)}")
        try:
            r = httpx.get(f"{url}/api/v1/health", timeout=2.0)
            if r.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TestbedError(f"orchestrator not answering at {url} after {timeout}s")
        check_interrupted()
        time.sleep(0.1)


def wait_nodes_up(
    url: str,
    token: str,
    nodes: list[str],
    *,
    timeout: float,
    agents: dict[str, tuple[subprocess.Popen[bytes], Path]] | None = None,
    progress: Progress | None = None,
    total: int | None = None,
) -> None:
    """Poll GET /api/v1/nodes until every node in `nodes` has status "up"."""
    deadline = time.monotonic() + timeout
    last_up = -1
    pending: list[str] = list(nodes)
    while True:
        for name, (p, log) in (agents or {}).items():
            if p.poll() is not None:
                raise TestbedError(f"agent of {name} exited with {p.returncode}: {_tail(log)}")
        try:
            # A loaded orchestrator with hundreds of agents took longer than 5 s to
            # list them: every look then counted as "no node listed".
            r = httpx.get(f"{url}/api/v1/nodes", timeout=30.0, headers=bearer(token))
            listed: Any = r.json() if r.status_code == 200 else []
        except (httpx.HTTPError, ValueError):
            listed = []
        status = {
            str(n.get("name")): n.get("status")
            for n in (listed if isinstance(listed, list) else [])
            if isinstance(n, dict)
        }
        pending = [n for n in nodes if status.get(n) != "up"]
        if not pending:
            return
        up = len(nodes) - len(pending)
        if progress is not None and up != last_up:
            progress(f"agents up: {up}/{total or len(nodes)}")
            last_up = up
        if time.monotonic() > deadline:
            shown = ", ".join(f"{n} ({status.get(n) or 'not listed'})" for n in pending[:10])
            more = f" and {len(pending) - 10} more" if len(pending) > 10 else ""
            raise TestbedError(
                f"{len(pending)} of {len(nodes)} nodes not up after {timeout:.0f}s: {shown}{more}"
            )
        check_interrupted()
        time.sleep(0.2)
