"""The orchestrator's Prometheus metrics, served at `GET /metrics` on its app.

Who may read them: the operator (declared in api/roles.py like every route; the
run's Prometheus scrapes as the operator's monitoring).

    netfate_http_requests_total{method,route,status}   requests answered, by route template
    netfate_http_request_seconds{method,route}          how long they took
    netfate_instances{state}                            instances per lifecycle state
    netfate_nodes{status}                               nodes per status
    netfate_migrations{phase}                           migrations per phase, of those kept
                                                        in the history (it is pruned)
    netfate_migration_downtime_ms{instance}             last finished migration's downtime
    netfate_loop_steps_total{service,loop}              reconcile loop passes
    netfate_loop_last_seconds{service,loop}             how long the last pass took
    netfate_loop_failing{service,loop}                  1 when the last pass raised

Requests and their durations live in the app's own registry (an app per test
process must not add into another's); the rest is read when scraped, in the
request's read-only session (reads never write).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi.routing import iter_route_contexts
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from netfate.model.lifecycle import InstanceState, MigrationPhase, NodeStatus
from netfate.orchestrator.loops import LoopRunner
from netfate.store.tables import InstanceRow, MigrationRow, NodeRow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RequestMetrics:
    """The app's request counters, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "netfate_http_requests",
            "HTTP requests answered, by route template",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "netfate_http_request_seconds",
            "Time to answer an HTTP request, by route template",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0),
        )
        self._templates: dict[int, tuple[BaseRoute, str]] = {}

    def learn_routes(self, routes: Iterable[BaseRoute]) -> None:
        """Each route's full template: an included router's routes keep their own
        path (`/instances/{iid}`) in the request's scope; the label is the full one."""
        for rc in iter_route_contexts(list(routes)):
            if rc.path is not None:
                self._templates.setdefault(id(rc.original_route), (rc.original_route, rc.path))

    def template(self, route: object) -> str:
        if route is None:
            return "unmatched"
        known = self._templates.get(id(route))
        if known is not None and known[0] is route:
            return known[1]
        return str(getattr(route, "path", "unmatched"))


class CountRequests:
    """ASGI middleware: count every answered request under its route's template
    (`/api/v1/instances/{iid}`, never the raw path: ids would make a series each).
    A path no route matched counts as `unmatched`."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = self.metrics.template(scope.get("route"))
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.seconds.labels(method, route).observe(time.perf_counter() - t0)


class StateCollector(Collector):
    """What the database and the loops hold now, read at scrape time."""

    def __init__(self, session: Session, loops: LoopRunner) -> None:
        self.session = session
        self.loops = loops

    def _counts(self, column: Any, values: list[str]) -> dict[str, int]:
        counts = dict.fromkeys(values, 0)
        for key, n in self.session.execute(select(column, func.count()).group_by(column)):
            counts[str(key)] = int(n)
        return counts

    def collect(self) -> Iterator[Metric]:
        s = self.session
        counted: list[tuple[str, str, str, Any, list[str]]] = [
            ("netfate_instances", "Instances per lifecycle state", "state", InstanceRow.state,
             [v.value for v in InstanceState]),
            ("netfate_nodes", "Nodes per status", "status", NodeRow.status,
             [v.value for v in NodeStatus]),
            ("netfate_migrations", "Migrations per phase (of those the history keeps)",
             "phase", MigrationRow.phase, [v.value for v in MigrationPhase]),
        ]  # fmt: skip
        for name, doc, label, column, values in counted:
            g = GaugeMetricFamily(name, doc, labels=[label])
            for key, n in sorted(self._counts(column, values).items()):
                g.add_metric([key], n)
            yield g
        down = GaugeMetricFamily(
            "netfate_migration_downtime_ms",
            "Downtime of each instance's last finished migration, in ms",
            labels=["instance"],
        )
        last = (
            select(MigrationRow.instance, func.max(MigrationRow.id))
            .where(MigrationRow.phase == MigrationPhase.DONE.value)
            .group_by(MigrationRow.instance)
            .subquery()
        )
        rows = s.execute(
            select(MigrationRow.instance, MigrationRow.downtime_ms).join(
                last, MigrationRow.id == last.c[1]
            )
        )
        for inst, ms in rows:
            if ms is not None:
                down.add_metric([str(inst)], float(ms))
        yield down
        by = ["service", "loop"]
        steps = CounterMetricFamily("netfate_loop_steps", "Reconcile loop passes", labels=by)
        took = GaugeMetricFamily(
            "netfate_loop_last_seconds", "Duration of the loop's last pass", labels=by
        )
        failing = GaugeMetricFamily(
            "netfate_loop_failing", "1 when the loop's last pass raised", labels=by
        )
        for st in self.loops.status:
            labels = [st.service, st.loop.name]
            steps.add_metric(labels, st.steps)
            if st.last_ms is not None:
                took.add_metric(labels, st.last_ms / 1000.0)
            failing.add_metric(labels, 1.0 if st.last_error else 0.0)
        yield from (steps, took, failing)


def exposition(requests: RequestMetrics, session: Session, loops: LoopRunner) -> bytes:
    """The text a scrape gets: the request figures, then the state read now."""
    now = CollectorRegistry(auto_describe=False)
    now.register(StateCollector(session, loops))
    return generate_latest(requests.registry) + generate_latest(now)
