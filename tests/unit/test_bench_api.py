"""bench/api.py and bench/_common.py: the pure parts only (arguments, statistics,
generated rows, request rotation, ratios). No timed assertions, no server."""

from __future__ import annotations

import importlib.util
import ipaddress
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from netfate.model.topology import generate_tree
from netfate.orchestrator.api.schemas import AgentReport
from netfate.orchestrator.nfv.coordinator import instance_mac

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    key = f"netfate_bench_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[key] = mod
    spec.loader.exec_module(mod)
    return mod


api = _load("api")
common = api._c()


def test_percentile_and_summary() -> None:
    xs = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert common.percentile(xs, 50) == 3.0
    assert common.percentile(xs, 0) == 1.0 and common.percentile(xs, 100) == 5.0
    assert common.percentile(xs, 25) == 2.0
    assert common.percentile([1.0, 2.0], 50) == pytest.approx(1.5)
    assert common.percentile(list(range(1, 101)), 99) == pytest.approx(99.01)
    s = common.summary(xs)
    assert (s["n"], s["median"], s["min"], s["max"], s["mean"]) == (5, 3.0, 1.0, 5.0, 3.0)
    assert common.summary([])["n"] == 0 and common.summary([])["median"] is None
    with pytest.raises(ValueError):
        common.percentile([], 50)
    with pytest.raises(ValueError):
        common.percentile(xs, 101)


def test_ratio() -> None:
    assert common.ratio(1.0, 4.0) == 0.25
    assert common.ratio(None, 4.0) is None
    assert common.ratio(1.0, 0) is None


def test_arguments() -> None:
    a = api.parse_args([])
    assert (a.nodes, a.instances, a.databases) == (1000, 10000, ["sqlite", "postgresql"])
    assert a.phases[0] == "health" and set(a.phases) == set(api.PHASES)
    q = api.parse_args(["--quick"])
    assert q.nodes < a.nodes and q.instances < a.instances and q.databases == ["sqlite"]
    b = api.parse_args(["--databases", "postgresql", "--phases", "node,instance", "--workers", "3"])
    assert b.databases == ["postgresql"] and b.workers == 3
    assert b.phases == ["health", "node", "instance"]  # the baseline always runs


@pytest.mark.parametrize(
    "argv", [["--databases", "mysql"], ["--phases", "nope"], ["--nodes", "1"], ["--workers", "0"]]
)
def test_arguments_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        api.parse_args(argv)


def test_bulk_rows_are_what_the_coordinator_writes() -> None:
    topo = generate_tree(30)
    insts, trans = api.bulk_rows(topo, 300, api.BULK_DESCRIPTOR, now=1000.0)
    assert len(insts) == 300 and len(trans) == 900
    assert len({i["id"] for i in insts}) == 300
    per_node = Counter(i["node"] for i in insts)
    assert set(per_node) == set(topo.nodes) and max(per_node.values()) == 10
    taken = {str(h.ip) for h in topo.hosts.values()}
    ips: set[str] = set()
    for i in insts:
        assert i["id"].startswith("i-") and len(i["id"]) == 10
        assert i["mac"] == instance_mac(i["id"])
        assert i["state"] == "running" and i["descriptor"] == "bench-small"
        if i["ip"] is None:  # a node without a LAN (PE): the coordinator leaves it empty
            assert not topo.nodes[i["node"]].lans
            assert i["lan"] is None and i["gateway"] is None
            continue
        iface = ipaddress.ip_interface(i["ip"])
        host = topo.hosts[i["serves"]]
        assert iface.network == host.lan and host.node == i["node"]
        # allocation reads a LAN's holders by this column: the address is seen as taken
        assert i["lan"] == str(host.lan) and i["gateway"] == str(host.gateway)
        assert str(iface.ip) not in taken and iface.ip != host.gateway
        assert i["ip"] not in ips
        ips.add(i["ip"])
    states = [t["state"] for t in trans[:3]]
    assert states == ["requested", "starting", "running"]
    assert trans[0]["previous"] is None and trans[2]["previous"] == "starting"


def test_request_rotation() -> None:
    topo = generate_tree(20)
    ids = ["i-00000001", "i-00000002"]
    by_node = {"cpe1": [("i-00000001", 11)], "pe1": [("i-00000002", 12)]}
    seen = {}
    for phase in api.PHASES:
        make = api.request_maker(phase, topo, ids, by_node)
        seen[phase] = [make(i) for i in range(40)]
    assert all(r == ("GET", "/api/v1/health", None) for r in seen["health"])
    nodes = {p.split("=")[1] for _, p, _ in seen["instances_by_node"]}
    assert nodes == set(topo.nodes)
    assert {p.rsplit("/", 1)[1] for _, p, _ in seen["instance"]} == set(ids)
    pinned = [b["node"] for m, p, b in seen["create_pinned"] if m == "POST"]
    assert set(pinned) == {n for n, s in topo.nodes.items() if str(s.kind) == "cpe"}
    placed = {b["serves"] for _, _, b in seen["create_placed"]}
    assert placed == set(topo.hosts)


def test_ratios_against_health() -> None:
    def f(rps: float, p99: float) -> dict[str, object]:
        return {"rps": rps, "latency_ms": {"p99": p99}}

    phases = {
        "health_first": f(1000, 10),
        "health_last": f(800, 14),
        "node": f(450, 24),
    }
    r = api.ratios(phases)
    assert r == {"node": {"rps_vs_health": 0.5, "p99_vs_health": 2.0}}


def test_phase_figures() -> None:
    res = api.PhaseResult([0.001, 0.002, 0.003, 0.004], Counter({200: 3, 409: 1}), 2.0)
    f = res.figures()
    assert f["requests"] == 4 and f["ok"] == 3 and f["errors"] == {"409": 1}
    assert f["rps"] == 2.0
    # Throughput counts what completed inside the window, latency every request started.
    slow = api.PhaseResult([9.0, 9.5], Counter({201: 2}), 6.0, completed_in_window=3)
    g = slow.figures()
    assert g["rps"] == 0.5 and g["requests"] == 2 and g["completed_in_window"] == 3
    assert f["latency_ms"]["median"] == pytest.approx(2.5)


def test_agent_phases() -> None:
    topo = generate_tree(20)
    insts, _ = api.bulk_rows(topo, 60, api.BULK_DESCRIPTOR, now=1000.0)
    by_node = api.instances_by_node(insts)
    assert sum(len(v) for v in by_node.values()) == 60
    make = api.request_maker("agent_report", topo, [i["id"] for i in insts], by_node)
    for k in range(len(topo.nodes)):
        method, path, body = make(k)
        node = path.split("/")[4]
        assert method == "POST" and path == f"/api/v1/agents/{node}/report"
        assert {x["id"] for x in body["instances"]} == {i for i, _ in by_node[node]}
        assert all(x["status"] == "running" and x["role"] == "active" for x in body["instances"])
        AgentReport.model_validate(body)  # valid for the API (extra fields are refused)
    make = api.request_maker("agent_desired", topo, [], by_node)
    assert make(0)[0] == "GET" and make(0)[1].endswith("/desired")
