"""Monitoring as time series: what each process exports, and reading it back.

    exposition.py  a loopback-only /metrics server for a process's registry
                   (agents, the controller; the orchestrator serves /metrics on
                   its own app)
    promapi.py     Prometheus's HTTP API (query, query_range, targets): a client
                   and the parsers of its answers, which are untrusted bytes

Every process keeps its own `prometheus_client.CollectorRegistry` (never the
module-global one), so two apps or agents in one test process never mix figures.
"""
