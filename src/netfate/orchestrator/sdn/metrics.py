"""The controller's Prometheus metrics (`netfate controller --metrics 127.0.0.1:PORT`,
loopback only: metrics/exposition.py).

    netfate_controller_packet_ins_total{node}   packet-ins received, per switch's node
    netfate_controller_flows{node}              flows the compiled intents want there
    netfate_controller_switches                 switches connected now

One controller per process, so the registry is the module's own (not the global one).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)
PACKET_INS = Counter(
    "netfate_controller_packet_ins", "Packet-ins received", ["node"], registry=REGISTRY
)


class _State(Collector):
    app: Any = None
    """The running NetfateController (attach)."""

    def collect(self) -> Iterator[Metric]:
        flows = GaugeMetricFamily(
            "netfate_controller_flows", "Flows the compiled intents want", labels=["node"]
        )
        switches = GaugeMetricFamily("netfate_controller_switches", "Switches connected now")
        app = self.app
        if app is not None:
            for node, n in sorted(app.core.brain.summary().get("flows", {}).items()):
                flows.add_metric([str(node)], float(n))
            switches.add_metric([], float(len(app.switches)))
        yield from (flows, switches)


_STATE = _State()
REGISTRY.register(_STATE)


def attach(app: Any) -> None:
    """The controller app whose flows and switches the metrics report."""
    _STATE.app = app


def packet_in(node: str | None) -> None:
    PACKET_INS.labels(node or "unknown").inc()
