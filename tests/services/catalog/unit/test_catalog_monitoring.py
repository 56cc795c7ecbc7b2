"""The catalog's placements weigh the load measured beyond its reservations, and
each decision names where its loads came from (orchestrator/timeseries.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog_db import catalog_db
from monitoring_fixtures import TOPO, report
from netfate.orchestrator import timeseries
from netfate.orchestrator.engine import Network
from netfate.services.catalog.conduit import Conduit, infrastructure, monitored
from netfate.services.catalog.descriptor import Function
from netfate.services.catalog.templates import publish
from netfate.store.db import Database

CHAIN = """
name: probe
blocks:
  - {name: one, function: counter, cpu: 0.2}
user_mbps: 1
sla: {latency_ms: 50}
"""


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = catalog_db(tmp_path, TOPO)
    yield d
    d.dispose()
    timeseries.configure(timeseries.Reader())


def test_measured_load_beyond_reservations_weighs_and_decisions_name_the_source(
    db: Database,
) -> None:
    report(db, "cpe1", 90.0, 100.0, 0.0)
    with db.session() as s:
        net, source = monitored(s, Network(infrastructure(s)), [])
        cpe1 = net.infra.nodes[net.index["cpe1"]]
        assert cpe1.load.cpu == pytest.approx(0.9) and cpe1.load.memory_mb == 100.0
        assert source == "the agents' last samples (no Prometheus configured)"
        fns = {"counter": Function("counter", 0.1, 64)}
        row, d, _ = Conduit().subscribe(s, "alice", publish(s, "acme", CHAIN, fns), "cpe1")
        # cpe1 has 1 core and 0.9 of it is in use: the block goes to pe1.
        assert d.nodes == {"one": "pe1"}
        assert d.why.endswith("(loads: the agents' last samples (no Prometheus configured))")
        assert d.why == row.why and d.data["monitoring"] == source
