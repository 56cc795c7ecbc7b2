"""An agent's Prometheus metrics: its node's figures, its links', its functions'.

Served by `netfate agent --metrics 127.0.0.1:PORT` on the loopback interface only
(metrics/exposition.py: anyone on this machine may read them, nobody beyond it).
Everything comes from the figures the agent already gathers for its report
(report.py), as last gathered: a scrape reads no process, socket or bridge.

    netfate_node_cpu_cores{node}                          CPU the node's functions use, in cores
    netfate_node_memory_mb{node}                          their resident memory
    netfate_node_instances{node}                          instances here
    netfate_host_load1{node}                              the machine's 1-minute load average
    netfate_link_bytes_total{node,peer,direction}         bytes on the port to a neighbour
    netfate_link_mbps{node,peer,direction}                its rate since the previous read
    netfate_function_stat{node,instance,function,stat}    each number a function's `status`
                                                          reports (nested keys joined by ".")
    netfate_figures_age_seconds{node}                     how old those figures are

`direction` is the port's: rx is what the neighbour sent here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from netfate.agent.report import Figures

MAX_STATS = 64
"""Per function: a function that reports more numbers has the rest left out (each
is a series in Prometheus)."""


def numbers(
    stats: Mapping[str, Any], prefix: str = "", depth: int = 2
) -> Iterator[tuple[str, float]]:
    """The finite numbers of a function's stats, nested keys joined by "." (two levels;
    lists and text are left out: they are not figures)."""
    for key, value in stats.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            yield name, float(value)
        elif isinstance(value, int | float):
            if math.isfinite(value):
                yield name, float(value)
        elif isinstance(value, Mapping) and depth > 1:
            yield from numbers(value, f"{name}.", depth - 1)


class AgentCollector(Collector):
    def __init__(self, node: str, figures: Figures) -> None:
        self.node = node
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        node = self.node
        _ports, res = self.figures.stats  # replaced whole by the gatherer: one read
        fn_stats = self.figures.fn_stats
        specs = {iid: inst.spec for iid, inst in list(self.figures.sup.instances.items())}

        def gauge(name: str, doc: str, value: Any) -> Metric:
            g = GaugeMetricFamily(name, doc, labels=["node"])
            if isinstance(value, int | float) and not isinstance(value, bool):
                g.add_metric([node], float(value))
            return g

        yield gauge(
            "netfate_node_cpu_cores",
            "CPU the node's functions use, in cores",
            res["instance_cpu_pct"] / 100.0 if "instance_cpu_pct" in res else None,
        )
        yield gauge("netfate_node_memory_mb", "Resident memory of the node's functions, MiB",
                    res.get("instance_rss_mb"))  # fmt: skip
        yield gauge("netfate_node_instances", "Instances on the node", res.get("instances"))
        yield gauge("netfate_host_load1", "The machine's 1-minute load average",
                    res.get("loadavg_1m"))  # fmt: skip
        at = res.get("at")
        yield gauge("netfate_figures_age_seconds", "Age of the figures last gathered",
                    time.time() - at if isinstance(at, int | float) else None)  # fmt: skip
        labels = ["node", "peer", "direction"]
        total = CounterMetricFamily(
            "netfate_link_bytes", "Bytes on the port to a neighbour node", labels=labels
        )
        rate = GaugeMetricFamily(
            "netfate_link_mbps", "Rate on the port to a neighbour since the previous read",
            labels=labels,
        )  # fmt: skip
        for peer, use in sorted((res.get("links") or {}).items()):
            for d in ("rx", "tx"):
                if f"{d}_bytes" in use:
                    total.add_metric([node, peer, d], use[f"{d}_bytes"])
                if f"{d}_mbps" in use:
                    rate.add_metric([node, peer, d], use[f"{d}_mbps"])
        yield from (total, rate)
        fn = GaugeMetricFamily(
            "netfate_function_stat",
            "A number a function reports of itself (its status op)",
            labels=["node", "instance", "function", "stat"],
        )
        for iid, stats in sorted(fn_stats.items()):
            function = str(specs.get(iid, {}).get("function", ""))
            for i, (stat, value) in enumerate(numbers(stats)):
                if i >= MAX_STATS:
                    break
                fn.add_metric([node, iid, function, stat], value)
        yield fn


def registry(node: str, figures: Figures) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(AgentCollector(node, figures))
    return reg
