"""Rows to JSON, in one place so the API, the CLI and the dashboard agree."""

from __future__ import annotations

from typing import Any

from netfate.contract import Service
from netfate.model.secrets import redact
from netfate.store.tables import (
    DescriptorRow,
    EventRow,
    HostRow,
    InstanceRow,
    LinkRow,
    MigrationRow,
    NodeRow,
    TransitionRow,
)


def node(n: NodeRow) -> dict[str, Any]:
    return {
        "name": n.name,
        "kind": n.kind,
        "status": n.status,
        "cpu": n.cpu,
        "memory_mb": n.memory_mb,
        "datapath_id": n.datapath_id,
        "endpoint": n.endpoint,
        "last_seen": n.last_seen,
        "resources": n.resources or {},
        "revision": n.revision,
        "power": n.power,
        "power_why": n.power_why,
    }


def instance(i: InstanceRow) -> dict[str, Any]:
    return {
        "id": i.id,
        "name": i.name,
        "descriptor": i.descriptor,
        "node": i.node,
        "state": i.state,
        "serves": i.serves,
        "ip": i.ip,
        "mac": i.mac,
        "config": redact(i.config),
        "cpu": i.cpu,
        "memory_mb": i.memory_mb,
        "created_at": i.created_at,
        "updated_at": i.updated_at,
        "pid": i.pid,
        "detail": i.detail,
        "stats": i.stats or {},
        "owner": i.owner,
    }


def instance_abstract(i: InstanceRow, node_kind: str | None) -> dict[str, Any]:
    """An instance as its provider sees it: where it runs only as a location class
    (the tier of edge node, near the host it serves), never the node's name, its
    addresses, its process or the agent's words (`detail` and `stats` name nodes)."""
    return {
        "id": i.id,
        "name": i.name,
        "descriptor": i.descriptor,
        "state": i.state,
        "serves": i.serves,
        "location": {"tier": node_kind, "near": i.serves},
        "config": redact(i.config),
        "cpu": i.cpu,
        "memory_mb": i.memory_mb,
        "created_at": i.created_at,
        "updated_at": i.updated_at,
        "owner": i.owner,
    }


def transition(t: TransitionRow, abstract: bool = False) -> dict[str, Any]:
    if abstract:  # a provider's view: the reasons name nodes
        return {"previous": t.previous, "state": t.state, "at": t.at}
    return {
        "previous": t.previous,
        "state": t.state,
        "node": t.node,
        "at": t.at,
        "reason": t.reason,
    }


def migration(m: MigrationRow, abstract: bool = False) -> dict[str, Any]:
    if abstract:  # a provider's view: no source, target or reason (they name nodes)
        return {"id": m.id, "instance": m.instance, "phase": m.phase,
                "started_at": m.started_at, "finished_at": m.finished_at,
                "downtime_ms": m.downtime_ms, "state_bytes": m.state_bytes}  # fmt: skip
    return {
        "id": m.id,
        "instance": m.instance,
        "source": m.source,
        "target": m.target,
        "phase": m.phase,
        "started_at": m.started_at,
        "finished_at": m.finished_at,
        "downtime_ms": m.downtime_ms,
        "state_bytes": m.state_bytes,
        "reason": m.reason,
    }


INFRASTRUCTURE_KEYS = frozenset({
    "node", "source", "target", "endpoint", "ip", "mac", "address", "gateway", "lan",
    "subnet", "datapath_id", "dpid", "port", "ofport", "nas", "reason", "why", "detail",
})  # fmt: skip
"""Event data a provider or a user does not see: the infrastructure, and free text
that names it."""


def event(e: EventRow, abstract: bool = False) -> dict[str, Any]:
    data = e.data
    if abstract and isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in INFRASTRUCTURE_KEYS}
    return {"id": e.id, "at": e.at, "kind": e.kind, "actor": e.actor, "data": redact(data)}


def descriptor(d: DescriptorRow) -> dict[str, Any]:
    return {
        "name": d.name,
        "function": d.function,
        "cpu": d.cpu,
        "memory_mb": d.memory_mb,
        "stateful": d.stateful,
        "delay_bound_ms": d.delay_bound_ms,
        "description": d.description,
        "config": redact(d.config),
        "owner": d.owner,
    }


def host(h: HostRow) -> dict[str, Any]:
    return {"name": h.name, "node": h.node, "ip": h.ip, "mac": h.mac, "kind": h.kind}


def link(link_: LinkRow) -> dict[str, Any]:
    return {
        "a": link_.a,
        "b": link_.b,
        "rate_bps": link_.rate_bps,
        "delay_s": link_.delay_s,
        "loss": link_.loss,
    }


def service(svc: Service, loops: list[dict[str, Any]]) -> dict[str, Any]:
    api = f"/api/v1{svc.prefix}"
    return {
        "name": svc.name,
        "summary": svc.summary,
        "api": api if svc.api is not None else None,
        "api_aliases": [f"/api/v1/{a.strip('/')}" for a in svc.api_aliases],
        "descriptors": [str(d["name"]) for d in svc.descriptors],
        "loops": loops,
        "panels": [f"/static/{svc.name}/{p}" for p in svc.panels],
        "pages": {title: api + path for title, path in svc.pages.items()},
        "cli": f"netfate {svc.name}" if svc.cli else None,
        "demos": [{"name": d.name, "aliases": list(d.aliases)} for d in svc.demos],
        "experiments": [{"name": e.name, "aliases": list(e.aliases)} for e in svc.experiments],
        "benches": list(svc.benches),
        "topologies": [p.name for p in svc.topologies],
    }
