"""The pre-deploy policy (orchestrator/engine/predeploy.py) and the agent's pool of
warm standbys (agent/standbys.py), without processes: the pool's standbys are
stand-ins whose start and stop are recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import pytest

from netfate.agent import standbys
from netfate.agent.instances import NodeContext
from netfate.agent.supervisor import Supervisor
from netfate.orchestrator.engine.predeploy import Budget, image_mb, plan, plan_node

SIZES = {"counter": 3.0, "firewall": 5.0, "vhg": 8.0}


def test_images_are_kept_most_requested_here_first_within_the_budget() -> None:
    demand = {("cpe1", "vhg"): 1, ("cpe1", "firewall"): 4, ("cpe2", "counter"): 9}
    p = plan_node("cpe1", Budget(storage_mb=13.0, standbys=0), demand, SIZES)
    # firewall (4 here) before vhg (1 here) before counter (0 here, 9 elsewhere)
    assert [c.function for c in p.images] == ["firewall", "vhg", "counter"]
    assert p.kept == ["firewall", "vhg"]
    assert p.used_mb == pytest.approx(13.0)
    assert p.used_mb <= p.budget.storage_mb
    refused = p.images[2]
    assert not refused.kept
    assert "storage budget exceeded: needs 3.000 MB, 0.000 of 13 MB left" in refused.reason
    assert "rank 1: 4 asked here, 4 everywhere" in p.images[0].reason


def test_a_node_without_history_gets_what_is_asked_for_elsewhere() -> None:
    demand = {("cpe2", "counter"): 2, ("pe1", "firewall"): 5}
    p = plan_node("cpe9", Budget(storage_mb=100.0, standbys=1), demand, SIZES)
    assert p.kept == ["firewall", "counter"]
    assert p.standbys == {"firewall": 1}


def test_standbys_go_round_robin_over_kept_images_only() -> None:
    demand = {("n", "firewall"): 3, ("n", "counter"): 2, ("n", "vhg"): 1}
    p = plan_node("n", Budget(storage_mb=8.0, standbys=5), demand, SIZES)
    assert p.kept == ["firewall", "counter"]  # vhg (8 MB) does not fit any more
    assert p.standbys == {"firewall": 3, "counter": 2}
    assert len(p.standby_reasons) == 5
    assert "vhg" not in p.standbys


def test_no_image_no_standby_and_it_says_why() -> None:
    p = plan_node("n", Budget(storage_mb=1.0, standbys=2), {("n", "vhg"): 1}, SIZES)
    assert p.kept == [] and p.standbys == {}
    assert "unused: no image kept here" in p.standby_reasons[0]
    empty = plan_node("n", Budget(storage_mb=10.0, standbys=1), {}, SIZES)
    assert empty.images == [] and "nothing requested yet" in empty.standby_reasons[0]


def test_a_function_of_unknown_size_is_never_kept() -> None:
    p = plan_node("n", Budget(storage_mb=1e6, standbys=1), {("n", "mystery"): 7}, SIZES)
    assert not p.images[0].kept and "image size unknown" in p.images[0].reason
    assert p.standbys == {}


def test_plan_covers_the_nodes_with_a_budget() -> None:
    out = plan({"b": Budget(1.0, 0), "a": Budget(0.0, 1)}, {("a", "counter"): 1}, SIZES)
    assert list(out) == ["a", "b"]
    assert out["a"].kept == []  # 0 MB: no room for any image


def test_image_sizes_are_the_shipped_packages_on_disk() -> None:
    counter = image_mb("counter")
    firewall = image_mb("netfate.vnf.firewall:Firewall")
    assert counter is not None and firewall is not None
    src = Path(__file__).resolve().parents[2] / "src" / "netfate" / "vnf"
    assert counter == pytest.approx((src / "counter.py").stat().st_size / 1e6, abs=1e-6)
    assert firewall > counter  # a package of several modules
    assert image_mb("no_such_function") is None


# ---------------------------------------------------------------- the agent's pool


class FakeStandby:
    """A standby whose start and stop are recorded (no namespace, no process)."""

    made: ClassVar[list[FakeStandby]] = []

    def __init__(self, ctx: NodeContext, function: str, sid: str | None = None) -> None:
        self.function = function
        self.id = sid or f"sb-{len(FakeStandby.made):08x}"
        self.up = False
        self.stopped = False
        self.pid = 4242
        FakeStandby.made.append(self)

    def spawn(self) -> None:
        self.up = True

    def enter_group(self) -> None:
        self.entered = True

    async def wait_ready(self) -> None:
        pass

    def alive(self) -> bool:
        return self.up and not self.stopped

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> standbys.Pool:
    FakeStandby.made = []
    monkeypatch.setattr(standbys, "Standby", FakeStandby)
    ctx = NodeContext(node="n1", prefix="nft", state_dir=tmp_path, bridge="br",
                      vsctl=None)  # type: ignore[arg-type]  # fmt: skip
    return standbys.Pool(ctx, asyncio.Event())


def test_the_pool_is_filled_to_the_plan_and_refilled_after_a_take(pool: standbys.Pool) -> None:
    async def go() -> None:
        pool.plan({"images": ["counter", "firewall"], "standbys": {"counter": 2, "firewall": 1}})
        assert await pool.converge()
        assert pool.counts() == {"counter": 2, "firewall": 1}
        sb = pool.take("counter")
        assert sb is not None and sb.function == "counter"
        assert pool.counts() == {"counter": 1, "firewall": 1}
        assert pool.taken == 1
        assert await pool.converge()  # the refill
        assert pool.counts() == {"counter": 2, "firewall": 1}
        assert len(FakeStandby.made) == 4

    asyncio.run(go())


def test_a_standby_of_another_kind_is_not_taken(pool: standbys.Pool) -> None:
    async def go() -> None:
        pool.plan({"images": ["counter"], "standbys": {"counter": 1}})
        await pool.converge()
        assert pool.take("netfate.vnf.firewall:Firewall") is None
        assert pool.counts() == {"counter": 1}

    asyncio.run(go())


def test_a_dead_standby_is_not_taken_but_replaced(pool: standbys.Pool) -> None:
    async def go() -> None:
        pool.plan({"images": ["counter"], "standbys": {"counter": 1}})
        await pool.converge()
        dead = pool.ready["counter"][0]
        dead.up = False  # type: ignore[attr-defined]
        assert pool.take("counter") is None
        await asyncio.sleep(0)  # its clean-up runs
        assert dead.stopped  # type: ignore[attr-defined]
        await pool.converge()
        assert pool.counts() == {"counter": 1} and pool.ready["counter"][0] is not dead

    asyncio.run(go())


def test_a_smaller_plan_stops_the_extra_standbys_and_no_image_means_none(
    pool: standbys.Pool,
) -> None:
    async def go() -> None:
        pool.plan({"images": ["counter"], "standbys": {"counter": 3}})
        await pool.converge()
        pool.plan({"images": ["counter"], "standbys": {"counter": 1}})
        await pool.converge()
        assert pool.counts() == {"counter": 1}
        assert sum(s.stopped for s in FakeStandby.made) == 2
        # A standby of a function whose image is not kept here is not wanted.
        pool.plan({"images": [], "standbys": {"counter": 1}})
        await pool.converge()
        assert pool.counts() == {}
        assert all(s.stopped for s in FakeStandby.made)

    asyncio.run(go())


def _spec(iid: str, function: str) -> dict[str, Any]:
    return {"id": iid, "function": function, "config": {}, "role": "active"}


def test_a_create_takes_a_standby_of_its_function_only(
    pool: standbys.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Supervisor.start: a ready standby of the spec's function is taken
    (start_from); of another function it is left, and the start is cold."""
    sup = Supervisor(pool.ctx, asyncio.Event())
    sup.pool = pool
    taken: list[tuple[str, str]] = []
    cold: list[str] = []

    async def start_from(sb: Any, spec: dict[str, Any], role: Any) -> None:
        taken.append((sb.function, spec["id"]))

    def refuse(self: Any) -> None:  # the cold path stops at its first step
        cold.append(self.id)
        raise ValueError("cold start")

    monkeypatch.setattr(sup, "start_from", start_from)
    monkeypatch.setattr("netfate.agent.instances.Instance.vet", refuse)

    async def go() -> None:
        pool.plan({"images": ["counter"], "standbys": {"counter": 1}})
        await pool.converge()
        await sup.start(_spec("i-00000001", "forwarder"))
        assert taken == [] and cold == ["i-00000001"]
        assert pool.counts() == {"counter": 1}  # not taken by the other kind
        await sup.start(_spec("i-00000002", "counter"))
        assert taken == [("counter", "i-00000002")]
        assert pool.counts() == {}
        await sup.start(_spec("i-00000003", "counter"))  # none left: cold
        assert cold == ["i-00000001", "i-00000003"]

    asyncio.run(go())


def test_the_cli_sets_a_budget_and_shows_each_decision_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from netfate.orchestrator import node_cli

    calls: list[tuple[str, str, Any]] = []
    plan_view = {
        "cpe1": {
            "node": "cpe1", "budget": {"storage_mb": 1.0, "standbys": 1}, "used_mb": 0.0026,
            "images": [{"function": "counter", "size_mb": 0.0026, "kept": True, "why": "rank 1"},
                       {"function": "vhg", "size_mb": 2.0, "kept": False,
                        "why": "storage budget exceeded: needs 2.000 MB"}],
            "standbys": {"counter": 1}, "standbys_why": ["slot 1 of 1: counter"],
            "standbys_ready": {"counter": 1}, "set_by": "topology",
        }
    }  # fmt: skip

    def call(api: Any, method: str, path: str, body: Any = None) -> Any:
        calls.append((method, path, body))
        return plan_view if method == "GET" else plan_view["cpe1"]

    monkeypatch.setattr(node_cli, "call", call)
    r = CliRunner().invoke(
        node_cli.app, ["predeploy", "cpe1", "--storage-mb", "1", "--standbys", "1"]
    )
    assert r.exit_code == 0, r.output
    assert calls[0] == ("PUT", "/nodes/cpe1/predeploy", {"storage_mb": 1.0, "standbys": 1})
    assert "refused vhg: storage budget exceeded" in r.output
    assert "kept    counter: rank 1" in r.output and "ready {'counter': 1}" in r.output
    assert "ready {'counter': 1}; set by the topology" in r.output
    half = CliRunner().invoke(node_cli.app, ["predeploy", "cpe1", "--standbys", "1"])
    assert half.exit_code != 0 and len(calls) == 2  # refused before any request


def test_will_take_counts_the_ready_standbys_of_each_function(pool: standbys.Pool) -> None:
    async def go() -> None:
        pool.plan({"images": ["counter", "firewall"], "standbys": {"counter": 1, "firewall": 1}})
        await pool.converge()
        assert all(getattr(s, "entered", False) for s in FakeStandby.made)  # once ready
        assert pool.will_take(["counter"]) and pool.will_take(["counter", "firewall"])
        assert not pool.will_take(["counter", "counter"])  # one standby of it only
        assert not pool.will_take(["forwarder"])
        assert pool.take("counter") is not None
        assert not pool.will_take(["counter"]) and pool.will_take(["firewall"])

    asyncio.run(go())


def _agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[str]]:
    from netfate.agent.agent import Agent, AgentConfig
    from netfate.host.ovs import Vsctl

    ctx = NodeContext("cpe1", "nft0", tmp_path, "br0", Vsctl("unix:/nonexistent"))
    agent = Agent(AgentConfig(ctx=ctx, orchestrator="http://127.0.0.1:9"))
    spawned: list[str] = []

    def spawn(iid: str, coro: Any) -> None:
        coro.close()  # not run: only which instance got a task
        spawned.append(iid)

    monkeypatch.setattr(agent.sup, "spawn", spawn)
    return agent, spawned


def test_a_start_that_a_warm_standby_takes_is_reported_by_its_take_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Agent.converge: a desired state whose only acts are starts that ready standbys
    take asks for no report now (the take reports running as it ends); any other
    act, or none, still reports at once."""
    agent, spawned = _agent(tmp_path, monkeypatch)
    agent.sup.pool.ready["counter"] = [FakeStandby(agent.ctx, "counter")]
    one = {"revision": 2, "instances": [_spec("i-00000001", "counter")]}
    assert agent.converge(one) is False
    assert spawned == ["i-00000001"]
    two = {"revision": 3, "instances": [_spec("i-00000001", "counter"),
                                        _spec("i-00000002", "counter")]}  # fmt: skip
    assert agent.converge(two) is True  # one standby for two starts: one is cold
    assert agent.converge({"revision": 4, "instances": []}) is True  # nothing to do


def test_cgroups_entered_in_advance_are_renamed_and_the_process_not_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from netfate.host import cgroups

    monkeypatch.setattr(cgroups, "ROOT", tmp_path)
    (tmp_path / "cgroup.controllers").write_text("cpu memory")  # a v2 hierarchy
    assert cgroups.enter("nft-cpe1-sb-1", 4242)
    sb = tmp_path / "netfate" / "nft-cpe1-sb-1"
    assert (sb / "cgroup.procs").read_text() == "4242"
    writes: list[str] = []
    real = Path.write_text

    def record(self: Path, data: str, *a: Any, **k: Any) -> int:
        writes.append(self.name)
        return real(self, data, *a, **k)

    monkeypatch.setattr(Path, "write_text", record)
    assert cgroups.rename("nft-cpe1-sb-1", "nft-cpe1-i-1")
    lim = cgroups.apply("nft-cpe1-i-1", 4242, 0.1, 64, entered=True)
    inst = tmp_path / "netfate" / "nft-cpe1-i-1"
    assert lim.applied and not sb.exists()
    assert (inst / "cpu.max").read_text() == "1000 10000"
    assert (inst / "memory.max").read_text() == str(64 << 20)
    assert "cgroup.procs" not in writes  # no move: it is in the group already
    assert not cgroups.rename("nft-cpe1-sb-gone", "nft-cpe1-i-2")  # then apply moves it


def test_a_runs_cgroups_are_removed_by_prefix_and_no_other_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """testbed/cleanup.py's sweep: an agent leaves its instances running when it
    stops, so their groups (and a standby's stopped too late) outlive the run."""
    from netfate.host import cgroups

    monkeypatch.setattr(cgroups, "ROOT", tmp_path)  # a v1 layout: cpu and memory
    names = ["nf1a2b-cpe1-i-00000001", "nf1a2b-cpe1-sb-0000000a", "nf1a2b0-cpe1-i-2",
             "nf9999-cpe1-i-00000003"]  # fmt: skip
    for h in ("cpu", "memory"):
        for n in names:
            (tmp_path / h / "netfate" / n).mkdir(parents=True)
    assert cgroups.remove_prefixed("nf1a2b") == []
    for h in ("cpu", "memory"):
        left = sorted(d.name for d in (tmp_path / h / "netfate").iterdir())
        assert left == ["nf1a2b0-cpe1-i-2", "nf9999-cpe1-i-00000003"]
