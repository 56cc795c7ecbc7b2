"""The testbed's own Prometheus (Debian `prometheus`, testbed/prometheus.py) really
scrapes every component (orchestrator, each agent, the controller), and the
placement engine's reader (orchestrator/timeseries.py) gets a node's CPU series
from its HTTP API. Teardown stops it by its PID."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
import pytest

from netfate.host import proc
from netfate.metrics.promapi import Client, PromError
from netfate.orchestrator import timeseries
from netfate.orchestrator.engine import estimate
from netfate.testbed.builder import Testbed
from waiting import until

pytestmark = pytest.mark.testbed

TOPO = """
name: prom
nodes:
  cpe1: {kind: cpe, lan: 192.168.1.0/24}
  pe1:  {kind: pe}
hosts:
  laptop1: {node: cpe1}
links:
  - {a: cpe1, b: pe1}
"""


def test_prometheus_scrapes_every_component_and_the_engine_reads_a_cpu_series(
    tmp_path: Path,
) -> None:
    topo = tmp_path / "prom.yaml"
    topo.write_text(TOPO)
    tb = Testbed.up(topo, prefix="nfp" + secrets.token_hex(2), sdn=True)
    try:
        st = tb.state
        assert tb.prometheus_url is not None
        assert set(st.metrics) == {"orchestrator", "agent:cpe1", "agent:pe1", "controller"}
        client = Client(tb.prometheus_url)

        def healthy() -> dict[str, str]:
            try:
                got = {t.url: t.health for t in client.targets()}
            except PromError:
                return {}
            return got if got and all(h == "up" for h in got.values()) else {}

        targets = until(healthy, timeout=60.0)
        assert targets, f"targets not all up: {client.targets()}"
        assert set(targets) == {f"http://{addr}/metrics" for addr in st.metrics.values()}

        # A function on cpe1: its agent's figures (through Prometheus) see it.
        r = httpx.post(
            f"{tb.api_url}/api/v1/instances",
            json={"descriptor": "counter", "name": "c1", "node": "cpe1"},
            headers={"authorization": f"Bearer {tb.api_token}"},  # the run's operator
            timeout=30,
        )
        assert r.status_code == 201, r.text

        def instances_on_cpe1() -> float:
            try:
                got = client.query('netfate_node_instances{node="cpe1"}')
            except PromError:
                return 0.0
            return got[0].points[0][1] if got else 0.0

        assert until(lambda: instances_on_cpe1() == 1.0, timeout=60.0)
        # Every component's own figures are in the store.
        for query in (
            'netfate_instances{state="running"}',
            'netfate_http_requests_total{route="/api/v1/instances",method="POST"}',
            "netfate_controller_switches",
            'netfate_node_cpu_cores{node="pe1"}',
        ):
            assert until(lambda q=query: client.query(q), timeout=30.0), query
        assert client.query("netfate_controller_switches")[0].points[0][1] == 2.0

        # The engine's reader: a CPU series of cpe1 from query_range (several points).
        def reading() -> timeseries.Reading | None:
            try:
                got = timeseries.from_prometheus(
                    client, now=time.time(), window_s=120.0, step_s=1.0
                )
            except PromError:
                return None
            return got if len(got.nodes.get("cpe1", timeseries.NodeSeries()).cpu) >= 3 else None

        got = until(reading, timeout=60.0)
        assert got is not None and got.prometheus
        assert got.source.startswith(f"Prometheus at {tb.prometheus_url}")
        cpu = got.nodes["cpe1"].cpu
        e = estimate(cpu, how="p95")
        assert e is not None and e.samples == len(cpu) and e.how == f"p95 of {len(cpu)} samples"
        assert all(s.value >= 0 for s in cpu)
        ref = next(r for r in st.process_refs() if r.role == "prometheus")
    finally:
        problems = tb.down()
    assert problems == []
    assert not proc.alive(ref), f"prometheus (pid {ref.pid}) still runs"
