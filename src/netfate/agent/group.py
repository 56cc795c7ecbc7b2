"""Many nodes' agents in one process: `netfate agents --nodes-file FILE`.

A testbed of 1,000 nodes cannot afford 1,000 interpreters (about 56 MB each, most
of it the same imports). Here one asyncio loop runs one `Agent` per node, the same
class `netfate agent` runs, with the same registration, long poll and reports. Each
node keeps its own token (the orchestrator checks that a token acts for its own
node only), its own state directory, bridge, migration listener in its own
namespace, and its own HTTP client. What is shared is what holds no identity:

    the imports, the event loop and its thread pool
    the OVSDB client (Vsctl) and the switch's TSO setting, read once
    the fork server (instances of every node here fork from one zygote: a request
        names its namespace, argv and log, nothing of the node that asked)
    one `ovsdb-client monitor` for all the nodes' bridges (report.watch_bridges)
    one /metrics for the group: each node's series carry their own `node` label
    one TLS context for the clients

The nodes file is a JSON list, one object per node:

    [{"node": "cpe1", "token_file": "...", "state_dir": "...", "bridge": "...",
      "listen": "10.255.0.2:0", "migration_netns": "P-cpe1", "advertise": null,
      "netns": "P-cpe1"}, ...]

A node's agent that crashes (an exception out of `Agent.run`) is logged with its
traceback and started again after a back-off (1 s, doubling to 30 s; back to 1 s
after it ran a minute): a new `Agent` adopts what the old one left running, as a
restarted `netfate agent` process does. The other nodes go on untouched. Log lines
name their node (`agent[NODE]`, from a context variable each node's task sets).

Fault injection (faults.py) is process-wide: in a group, the last node's
directory arms it for all. Tests that inject faults run one node per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from netfate.agent.agent import Agent, AgentConfig
from netfate.agent.cli import (
    OVS_DB,
    ImageDirOpt,
    LogLevelOpt,
    NoZygoteOpt,
    OrchestratorOpt,
    OvsDbOpt,
    OvsNetnsOpt,
)
from netfate.agent.metrics import AgentCollector
from netfate.agent.report import watch_bridges
from netfate.clihelp import CaOption

log = logging.getLogger("netfate.agent")

NODE: contextvars.ContextVar[str] = contextvars.ContextVar("netfate_agent_node", default="-")
"""The node whose agent runs in this task (and the tasks and threads it starts)."""

RESTART_FIRST_S = 1.0
RESTART_MAX_S = 30.0
RAN_LONG_ENOUGH_S = 60.0
REGISTER_AT_ONCE = 4
"""Registration requests of a group's nodes under way at the same time."""


class NodeFilter(logging.Filter):
    """Puts the current node's name on each record, as `%(node)s`."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = NODE.get()
        return True


class NodeSettings(BaseModel):
    """One node of the nodes file: what differs between nodes of a group."""

    model_config = ConfigDict(extra="forbid")
    node: str
    token_file: Path
    state_dir: Path | None = None
    bridge: str | None = None
    listen: str = "127.0.0.1:0"
    advertise: str | None = None
    migration_netns: str | None = None
    netns: str | None = None


def load_nodes(path: Path) -> list[NodeSettings]:
    """The nodes file; ValueError with the failing keys when it is not a list of
    nodes, or names a node twice."""
    try:
        nodes = TypeAdapter(list[NodeSettings]).validate_json(path.read_bytes())
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e}") from None
    except ValidationError as e:
        keyed = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise ValueError(f"{path}: {keyed}") from None
    names = [n.node for n in nodes]
    if not names:
        raise ValueError(f"{path}: no nodes")
    if dup := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"{path}: node named more than once: {', '.join(dup)}")
    return nodes


@dataclass
class Slot:
    """One node's place in the group: its configuration and its current agent."""

    cfg: AgentConfig
    agent: Agent | None = None
    crashes: int = 0
    last_error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def node(self) -> str:
        return self.cfg.ctx.node


class GroupCollector(Collector):
    """Every node's series in one exposition: a metric family appears once, with
    each node's samples (two families of one name would be refused by Prometheus)."""

    def __init__(self, slots: Callable[[], list[Slot]]) -> None:
        self.slots = slots

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for slot in self.slots():
            agent = slot.agent
            if agent is None:
                continue
            for m in AgentCollector(slot.node, agent.figures).collect():
                if m.name in merged:
                    merged[m.name].samples.extend(m.samples)
                else:
                    merged[m.name] = m
        yield from merged.values()


class Group:
    """Runs each node's agent as a task of this loop, restarting one that crashes."""

    def __init__(
        self,
        cfgs: list[AgentConfig],
        *,
        metrics: tuple[str, int] | None = None,
        watch_db: str | None = None,
        make_agent: Callable[[AgentConfig], Agent] = Agent,
        restart_first_s: float = RESTART_FIRST_S,
    ) -> None:
        """`metrics`: serve the group's /metrics there; `watch_db`: watch the nodes'
        bridges on this OVSDB (None: each agent as configured)."""
        self.slots = [Slot(cfg) for cfg in cfgs]
        self.metrics_at = metrics
        self.watch_db = watch_db
        self.make_agent = make_agent
        self.restart_first_s = restart_first_s
        self.metrics_port: int | None = None
        self._registering = asyncio.Semaphore(REGISTER_AT_ONCE)

    async def run(self) -> None:
        from netfate.metrics import exposition

        server = None
        if self.metrics_at is not None:
            reg = CollectorRegistry(auto_describe=False)
            reg.register(GroupCollector(lambda: list(self.slots)))
            server = exposition.serve(reg, *self.metrics_at)
            self.metrics_port = server.port
            log.info("metrics of %d nodes on http://%s:%d/metrics", len(self.slots),
                     self.metrics_at[0], server.port)  # fmt: skip
        watch = None
        if self.watch_db is not None:
            by_bridge = {s.cfg.ctx.bridge: s for s in self.slots}

            def changed(bridge: str) -> None:
                slot = by_bridge.get(bridge)
                if slot is not None and slot.agent is not None:
                    slot.agent.figures.port_event()

            watch = asyncio.create_task(watch_bridges(self.watch_db, changed))
        try:
            for slot in self.slots:
                slot.task = asyncio.create_task(self._keep(slot))
            await asyncio.gather(*(s.task for s in self.slots if s.task is not None))
        finally:
            for slot in self.slots:
                if slot.task is not None:
                    slot.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(
                    *(s.task for s in self.slots if s.task is not None), return_exceptions=True
                )
            if watch is not None:
                watch.cancel()
            if server is not None:
                server.close()

    async def _keep(self, slot: Slot) -> None:
        """Run the node's agent; when it crashes, log why and run a new one."""
        NODE.set(slot.node)  # this task's context: its agent's tasks inherit it
        delay = self.restart_first_s
        while True:
            slot.agent = agent = self.make_agent(slot.cfg)
            # 50 registrations at once kept a loaded orchestrator's database pool
            # busy past the agents' 10 s timeout, and their retries kept it so.
            agent.register_gate = self._registering
            started = time.monotonic()
            try:
                await agent.run()
                why = "its loop ended"
            except asyncio.CancelledError:
                raise
            except Exception as e:  # one node's failure must not end the others'
                why = f"{type(e).__name__}: {e}"
                log.exception("agent of node %s crashed", slot.node)
            slot.crashes += 1
            slot.last_error = why
            if time.monotonic() - started > RAN_LONG_ENOUGH_S:
                delay = self.restart_first_s
            log.error("agent of node %s stopped (%s); starting it again in %.1f s "
                      "(crash %d)", slot.node, why, delay, slot.crashes)  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX_S)


def shared_verify(verify: ssl.SSLContext | bool) -> ssl.SSLContext:
    """One TLS context for every node's client (True: the one httpx would make for
    each, made once: loading the trust store per client costs memory and time)."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    import httpx

    return httpx.create_ssl_context()


def agents(
    nodes_file: Annotated[
        Path, typer.Option(help="JSON list of the nodes this process serves (see group.py)")
    ],
    orchestrator: OrchestratorOpt,
    ovs_db: OvsDbOpt = OVS_DB,
    ovs_netns: OvsNetnsOpt = None,
    prefix: Annotated[str, typer.Option(help="Prefix of every name the agents create")] = "nf",
    ca: CaOption = None,
    heartbeat: Annotated[float, typer.Option(help="Seconds between each node's reports")] = 1.0,
    metrics: Annotated[
        str | None,
        typer.Option(help="Serve all the nodes' metrics on this loopback HOST:PORT (PORT 0: any)"),
    ] = None,
    log_level: LogLevelOpt = "info",
    no_zygote: NoZygoteOpt = False,
    image_dir: ImageDirOpt = None,
) -> None:
    """Run the agents of several nodes in one process, each as `netfate agent` would
    (its own token, state, bridge and migration listener)."""
    from netfate.agent.cli import check_prefix, metrics_address, node_config, switch_tso
    from netfate.agent.instances import Zygote
    from netfate.clihelp import client_tls, read_token
    from netfate.host.ovs import Vsctl

    check_prefix(prefix)
    try:
        nodes = load_nodes(nodes_file)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--nodes-file") from None
    verify = shared_verify(client_tls(ca))
    metrics_at = metrics_address(metrics) if metrics is not None else None
    handler = logging.StreamHandler()
    handler.addFilter(NodeFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s agent[%(node)s] %(levelname)s %(message)s"))
    logging.basicConfig(level=log_level.upper(), handlers=[handler])
    logging.getLogger("httpx").setLevel(logging.WARNING)
    vsctl = Vsctl(ovs_db, wait_for_db=True)
    offloads = switch_tso(vsctl)
    first_dir = nodes[0].state_dir or Path("/run/netfate") / f"agent-{nodes[0].node}"
    # The fork server's socket and log sit in the first node's state directory.
    zygote = None if no_zygote else Zygote(first_dir)
    cfgs = []
    for n in nodes:
        cfgs.append(
            node_config(
                node=n.node,
                orchestrator=orchestrator,
                listen=n.listen,
                advertise=n.advertise,
                migration_netns=n.migration_netns,
                state_dir=n.state_dir or Path("/run/netfate") / f"agent-{n.node}",
                bridge=n.bridge or f"{prefix}-{n.node}",
                prefix=prefix,
                vsctl=vsctl,
                ovs_netns=ovs_netns,
                zygote=zygote,
                offloads=offloads,
                image_dir=image_dir,
                heartbeat=heartbeat,
                metrics_at=None,
                verify=verify,
                token=read_token(n.token_file),
                own_zygote=False,
                watch_ports=False,
            )
        )
    group = Group(cfgs, metrics=metrics_at, watch_db=ovs_db)

    async def main() -> None:
        if zygote is not None:
            # In the background, as one agent does: instances start as new
            # interpreters until it is ready.
            async def start() -> None:
                if not await zygote.start_async():
                    log.warning("fork server did not start; instances start as new interpreters")

            starting = asyncio.create_task(start())
        try:
            await group.run()
        finally:
            if zygote is not None:
                starting.cancel()
                zygote.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
