"""Several nodes' agents in one process (agent/group.py, `netfate agents`): each node
registers, polls and reports as itself, with its own token, and one node's agent
that crashes is logged and started again while the other goes on untouched."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Header, HTTPException, Request
from prometheus_client import CollectorRegistry, generate_latest

from apiserver import serve
from netfate.agent.agent import Agent, AgentConfig
from netfate.agent.group import (
    REGISTER_AT_ONCE,
    Group,
    GroupCollector,
    NodeFilter,
    load_nodes,
)
from netfate.agent.instances import NodeContext
from netfate.agent.poll import READ_TIMEOUT_S
from netfate.host.ovs import Vsctl
from netfate.testbed import prometheus as prom

TOKENS = {f"tok-cpe{i}": f"cpe{i}" for i in range(1, 11)}


class FakeOrchestrator:
    """The agents' API as the orchestrator serves it, with its one rule that matters
    here: a token acts for its own node only (403 otherwise)."""

    def __init__(self) -> None:
        self.registered: dict[str, int] = defaultdict(int)
        self.reports: dict[str, int] = defaultdict(int)
        self.polls: dict[str, int] = defaultdict(int)
        self.refused: list[tuple[str, str]] = []
        self.registering = 0
        self.too_long: list[float] = []
        self.most_registering = 0
        self.register_s = 0.0
        self.long_poll_s = 0.3
        self.app = FastAPI()
        app = self.app

        def check(node: str, authorization: str | None) -> None:
            token = (authorization or "").removeprefix("Bearer ")
            if TOKENS.get(token) != node:
                self.refused.append((token, node))
                raise HTTPException(403, "not this node's token")

        @app.post("/api/v1/agents/{node}/register")
        async def register(node: str, request: Request,
                           authorization: str | None = Header(None)) -> dict[str, Any]:  # fmt: skip
            check(node, authorization)
            body = await request.json()
            assert body["endpoint"].startswith("127.0.0.1:")
            self.registering += 1
            self.most_registering = max(self.most_registering, self.registering)
            await asyncio.sleep(self.register_s)
            self.registering -= 1
            self.registered[node] += 1
            return {"revision": 1, "instances": []}

        @app.get("/api/v1/agents/{node}/desired")
        async def desired(node: str, revision: int | None = None, wait: float = 0.0,
                          authorization: str | None = Header(None)) -> dict[str, Any]:  # fmt: skip
            check(node, authorization)
            if wait > 30:  # as the orchestrator's route: Query(le=30)
                self.too_long.append(wait)
                raise HTTPException(422, "wait: at most 30")
            self.polls[node] += 1
            if revision == 1:
                await asyncio.sleep(min(wait, self.long_poll_s))  # nothing changed
            return {"revision": 1, "instances": []}

        @app.post("/api/v1/agents/{node}/report")
        async def report(node: str, request: Request,
                         authorization: str | None = Header(None)) -> dict[str, Any]:  # fmt: skip
            check(node, authorization)
            body = await request.json()
            assert body["instances"] == []
            self.reports[node] += 1
            return {}


@pytest.fixture
def orch() -> Iterator[tuple[FakeOrchestrator, str]]:
    fake = FakeOrchestrator()
    with serve(fake.app) as url:
        yield fake, url


def _cfg(tmp_path: Path, node: str, url: str, token: str) -> AgentConfig:
    ctx = NodeContext(node, "nft0", tmp_path / node, f"br-{node}", Vsctl("unix:/nonexistent"))
    (tmp_path / node).mkdir(mode=0o700)
    return AgentConfig(ctx=ctx, orchestrator=url, heartbeat_s=0.2, token=token,
                       own_zygote=False, watch_ports=False)  # fmt: skip


class CrashesOnce(Agent):
    """An agent whose first run fails after registering (a bug in one node's agent)."""

    runs = 0

    async def _poll_loop(self) -> None:
        CrashesOnce.runs += 1
        if CrashesOnce.runs == 1:
            raise RuntimeError("boom in cpe2")
        await super()._poll_loop()


async def _run_for(group: Group, until: Any, timeout: float = 20.0) -> None:
    task = asyncio.create_task(group.run())
    try:
        for _ in range(int(timeout / 0.05)):
            if until() or task.done():
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_each_node_reports_as_itself_and_a_crash_stays_its_own(
    tmp_path: Path, orch: tuple[FakeOrchestrator, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = orch
    cfgs = [_cfg(tmp_path, "cpe1", url, "tok-cpe1"), _cfg(tmp_path, "cpe2", url, "tok-cpe2")]
    CrashesOnce.runs = 0

    def make(cfg: AgentConfig) -> Agent:
        return CrashesOnce(cfg) if cfg.ctx.node == "cpe2" else Agent(cfg)

    group = Group(cfgs, make_agent=make, restart_first_s=0.1)
    caplog.set_level(logging.INFO, logger="netfate.agent")
    handler_filter = NodeFilter()
    caplog.handler.addFilter(handler_filter)
    try:
        asyncio.run(
            _run_for(
                group,
                lambda: (
                    fake.registered["cpe2"] >= 2
                    and fake.reports["cpe2"] >= 3
                    and fake.reports["cpe1"] >= 3
                ),
            )
        )
    finally:
        caplog.handler.removeFilter(handler_filter)
    # Each node spoke with its own token, for itself only: nothing was refused.
    assert fake.refused == []
    assert fake.reports["cpe1"] >= 3 and fake.reports["cpe2"] >= 3
    # cpe2's agent crashed once and was started again (registered twice); cpe1's ran
    # on as the one agent it was, never registering again.
    assert fake.registered == {"cpe1": 1, "cpe2": 2}
    cpe1, cpe2 = group.slots
    assert (cpe1.crashes, cpe1.last_error) == (0, None)
    assert cpe2.crashes == 1 and cpe2.last_error == "RuntimeError: boom in cpe2"
    crashed = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert crashed and all(getattr(r, "node", None) == "cpe2" for r in crashed)
    assert crashed[0].exc_info is not None  # with its traceback
    # Log lines name the node whose agent wrote them.
    registered = {r.node for r in caplog.records if "registered node" in r.getMessage()}  # type: ignore[attr-defined]
    assert registered == {"cpe1", "cpe2"}


def test_a_token_for_another_node_is_refused(
    tmp_path: Path, orch: tuple[FakeOrchestrator, str]
) -> None:
    """The group hands each node its own token: a node given another's is refused,
    and the other node is not disturbed."""
    fake, url = orch
    cfgs = [_cfg(tmp_path, "cpe1", url, "tok-cpe1"), _cfg(tmp_path, "cpe2", url, "tok-cpe1")]
    group = Group(cfgs)
    asyncio.run(_run_for(group, lambda: len(fake.refused) >= 2 and fake.reports["cpe1"] >= 2))
    assert fake.reports["cpe1"] >= 2 and fake.reports["cpe2"] == 0
    assert set(fake.refused) == {("tok-cpe1", "cpe2")}


def test_one_metrics_exposition_for_the_group(tmp_path: Path) -> None:
    cfgs = [_cfg(tmp_path, n, "http://127.0.0.1:9", "t") for n in ("cpe1", "cpe2")]
    group = Group(cfgs)
    for slot in group.slots:
        slot.agent = Agent(slot.cfg)
        slot.agent.figures.stats = ([], {"instances": 3, "links": {"pe1": {"rx_bytes": 7}}})
    reg = CollectorRegistry(auto_describe=False)
    reg.register(GroupCollector(lambda: group.slots))
    text = generate_latest(reg).decode()
    # One family of each name (Prometheus refuses a name described twice), with
    # both nodes' samples.
    assert text.count("# HELP netfate_node_instances ") == 1
    assert 'netfate_node_instances{node="cpe1"} 3.0' in text
    assert 'netfate_node_instances{node="cpe2"} 3.0' in text
    assert 'netfate_link_bytes_total{direction="rx",node="cpe2",peer="pe1"} 7.0' in text


def test_prometheus_scrapes_a_shared_target_once() -> None:
    cfg = prom.config("127.0.0.1:1", {"a": "127.0.0.1:5", "b": "127.0.0.1:5", "c": "127.0.0.1:6"})
    agent_job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "agent")
    assert agent_job["static_configs"] == [{"targets": ["127.0.0.1:5", "127.0.0.1:6"]}]


def test_the_nodes_file_is_checked(tmp_path: Path) -> None:
    f = tmp_path / "nodes.json"
    f.write_text(json.dumps([{"node": "cpe1", "token_file": "/t1", "listen": "10.0.0.1:0"},
                             {"node": "cpe2", "token_file": "/t2"}]))  # fmt: skip
    nodes = load_nodes(f)
    assert [(n.node, n.listen) for n in nodes] == [("cpe1", "10.0.0.1:0"), ("cpe2", "127.0.0.1:0")]
    f.write_text(
        json.dumps([{"node": "cpe1", "token_file": "/t"}, {"node": "cpe1", "token_file": "/t"}])
    )
    with pytest.raises(ValueError, match="more than once: cpe1"):
        load_nodes(f)
    f.write_text(json.dumps([{"node": "cpe1"}, {"node": "cpe2", "token_file": "/t", "x": 1}]))
    with pytest.raises(ValueError, match=r"0\.token_file: Field required.*1\.x: Extra"):
        load_nodes(f)
    f.write_text("[]")
    with pytest.raises(ValueError, match="no nodes"):
        load_nodes(f)


def test_few_nodes_of_a_group_register_at_once(
    tmp_path: Path, orch: tuple[FakeOrchestrator, str]
) -> None:
    """Ten nodes, a slow registration: at most REGISTER_AT_ONCE requests under way."""
    fake, url = orch
    fake.register_s = 0.2
    cfgs = [_cfg(tmp_path, f"cpe{i}", url, f"tok-cpe{i}") for i in range(1, 11)]
    group = Group(cfgs)
    asyncio.run(_run_for(group, lambda: len(fake.registered) == 10))
    assert len(fake.registered) == 10 and fake.refused == []
    assert 1 < fake.most_registering <= REGISTER_AT_ONCE


def test_a_long_heartbeat_polls_within_what_the_orchestrator_accepts(
    tmp_path: Path, orch: tuple[FakeOrchestrator, str]
) -> None:
    """1,000 nodes stretch the heartbeat to 33 s; the long poll still waits 30 s at most."""
    fake, url = orch
    cfg = _cfg(tmp_path, "cpe1", url, "tok-cpe1")
    cfg = AgentConfig(**{**cfg.__dict__, "heartbeat_s": 33.3})
    asyncio.run(_run_for(Group([cfg]), lambda: fake.polls["cpe1"] >= 2 or fake.too_long, 10))
    assert fake.too_long == [] and fake.polls["cpe1"] >= 2


def test_a_long_poll_longer_than_the_read_timeout_is_waited_for(
    tmp_path: Path, orch: tuple[FakeOrchestrator, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A heartbeat past the client's 10 s read timeout (300 nodes and more): the poll
    waits the whole long poll instead of timing out and retrying."""
    fake, url = orch
    fake.long_poll_s = 30.0
    cfg = _cfg(tmp_path, "cpe1", url, "tok-cpe1")
    cfg = AgentConfig(**{**cfg.__dict__, "heartbeat_s": READ_TIMEOUT_S + 1.5})
    caplog.set_level(logging.WARNING, logger="netfate.agent")
    # Past the read timeout and the first long poll's end (the second one under way).
    asyncio.run(_run_for(Group([cfg]), lambda: False, READ_TIMEOUT_S + 3))
    assert fake.polls["cpe1"] == 2
    assert not [r for r in caplog.records if "unreachable" in r.getMessage()]
