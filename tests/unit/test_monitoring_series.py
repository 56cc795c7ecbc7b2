"""Monitoring as time series, without processes: Prometheus's HTTP API client against
a fake server (tests/fakeprom.py), the engine's reader (orchestrator/timeseries.py)
with Prometheus and with its fallback to the agents' last samples (the catalog's
decisions naming where their loads came from: tests/services/catalog/unit)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from fakeprom import fake_prometheus
from monitoring_fixtures import TOPO, report
from netfate.metrics.promapi import Client, PromError, parse_targets, parse_vector
from netfate.model.topology import Topology
from netfate.orchestrator import timeseries
from netfate.orchestrator.nfv.topology import load_topology
from netfate.store.db import Database
from netfate.store.tables import NodeRow


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database(f"sqlite:///{tmp_path}/o.db")
    d.migrate()
    with d.session() as s:
        load_topology(s, Topology.from_dict(TOPO))
        for n in s.scalars(select(NodeRow)):
            n.status = "up"
    yield d
    d.dispose()
    timeseries.configure(timeseries.Reader())


# ------------------------------------------------------------------ the API client


def test_query_range_asks_with_the_range_and_parses_the_matrix() -> None:
    with fake_prometheus() as prom:
        prom.series("up", [({"job": "agent"}, [(20.0, "1"), (10.0, "0")])])
        got = Client(prom.url).query_range("up", 0.0, 30.0, 5.0)
        assert [(dict(s.labels), list(s.points)) for s in got] == [
            ({"job": "agent"}, [(10.0, 0.0), (20.0, 1.0)])
        ]
        path, params = prom.asked[-1]
        assert path == "/api/v1/query_range"
        assert params == {"query": "up", "start": "0.000", "end": "30.000", "step": "5"}


def test_a_refused_query_an_http_error_and_no_server_are_prom_errors() -> None:
    with fake_prometheus() as prom:
        prom.answers["/api/v1/query_range"] = (
            400, b'{"status":"error","errorType":"bad_data","error":"parse error at char 3"}'
        )  # fmt: skip
        with pytest.raises(PromError, match="bad_data: parse error"):
            Client(prom.url).query_range("up{", 0.0, 1.0, 1.0)
        prom.answers["/api/v1/query_range"] = (503, b"Service Unavailable")
        with pytest.raises(PromError, match="503"):
            Client(prom.url).query_range("up", 0.0, 1.0, 1.0)
        prom.answers["/api/v1/query_range"] = (200, b'{"status":"success","data":{"resultType'
                                                     b'":"vector","result":[]}}')  # fmt: skip
        with pytest.raises(PromError, match="expected a matrix"):
            Client(prom.url).query_range("up", 0.0, 1.0, 1.0)
        url = prom.url
    with pytest.raises(PromError, match="cannot ask Prometheus"):
        Client(url, timeout=0.5).query_range("up", 0.0, 1.0, 1.0)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'{"status":"success"}',
        b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":1},'
        b'"values":[]}]}}',
        b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},'
        b'"values":[[1,2]]}]}}',
        b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},'
        b'"values":[["1","2"]]}]}}',
        b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},'
        b'"values":[[1,"x"]]}]}}',
        b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},'
        b'"values":[[1e999,"1"]]}]}}',
        b"\xff\xfe",
        b"[" * 100_000,
    ],
)
def test_malformed_answers_are_prom_errors(body: bytes) -> None:
    with fake_prometheus() as prom:
        prom.answers["/api/v1/query_range"] = (200, body)
        with pytest.raises(PromError):
            Client(prom.url).query_range("up", 0.0, 1.0, 1.0)


def test_instant_queries_and_targets_parse() -> None:
    vec = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"node": "cpe1"}, "value": [5.5, "NaN"]}]}}  # fmt: skip
    (s,) = parse_vector(json.dumps(vec))
    assert s.labels == {"node": "cpe1"} and s.points[0][0] == 5.5
    targets = {"status": "success", "data": {"activeTargets": [
        {"labels": {"job": "agent"}, "scrapeUrl": "http://127.0.0.1:1/metrics",
         "health": "up", "lastError": ""}], "droppedTargets": []}}  # fmt: skip
    (t,) = parse_targets(json.dumps(targets))
    assert (t.labels["job"], t.health, t.url) == ("agent", "up", "http://127.0.0.1:1/metrics")


# ------------------------------------------------------------------ the engine's reader


def test_without_prometheus_the_reader_uses_the_last_samples_and_says_so(db: Database) -> None:
    report(db, "cpe1", 45.0, 120.0, 3.0)
    report(db, "pe1", 10.0, 50.0, 2.0)
    with db.session() as s:
        got = timeseries.Reader().read(s)
    assert not got.prometheus
    assert got.source == "the agents' last samples (no Prometheus configured)"
    assert [x.value for x in got.nodes["cpe1"].cpu] == [0.45]
    assert [x.value for x in got.nodes["cpe1"].memory_mb] == [120.0]
    # A link's use is what both its ends send on it.
    assert [x.value for x in got.links[("cpe1", "pe1")]] == [5.0]


def test_with_prometheus_the_reader_takes_its_series(db: Database) -> None:
    with fake_prometheus() as prom:
        prom.series("netfate_node_cpu_cores", [
            ({"node": "cpe1", "job": "agent"}, [(100.0, "0.5"), (105.0, "0.7"), (110.0, "NaN")]),
        ])  # fmt: skip
        prom.series("netfate_node_memory_mb", [({"node": "cpe1"}, [(100.0, "200")])])
        prom.series('netfate_link_mbps{direction="tx"}', [
            ({"node": "cpe1", "peer": "pe1"}, [(100.0, "1"), (105.0, "2")]),
            ({"node": "pe1", "peer": "cpe1"}, [(100.0, "10"), (105.0, "20")]),
        ])  # fmt: skip
        reader = timeseries.Reader(prom.url, window_s=60.0, step_s=5.0)
        with db.session() as s:
            got = reader.read(s, now=110.0)
        assert got.prometheus and got.source.startswith(f"Prometheus at {prom.url}: 1 nodes")
        assert [(x.t, x.value) for x in got.nodes["cpe1"].cpu] == [(100.0, 0.5), (105.0, 0.7)]
        assert [(x.t, x.value) for x in got.links[("cpe1", "pe1")]] == [
            (100.0, 11.0),
            (105.0, 22.0),
        ]
        ranges = [p for path, p in prom.asked if path == "/api/v1/query_range"]
        assert {p["start"] for p in ranges} == {"50.000"} and {p["step"] for p in ranges} == {"5"}
        # Within the cache's lifetime Prometheus is not asked again.
        n = len(prom.asked)
        with db.session() as s:
            reader.read(s, now=111.0)
        assert len(prom.asked) == n


def test_a_failing_prometheus_falls_back_to_the_last_samples_and_says_why(db: Database) -> None:
    report(db, "cpe1", 30.0, 100.0, 0.0)
    with fake_prometheus() as prom:
        prom.answers["/api/v1/query_range"] = (200, b"{not json")
        with db.session() as s:
            got = timeseries.Reader(prom.url).read(s)
    assert not got.prometheus
    assert got.source.startswith("the agents' last samples (Prometheus failed: answer is not JSON")
    assert [x.value for x in got.nodes["cpe1"].cpu] == [0.3]
