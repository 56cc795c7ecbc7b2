"""Views and a tiny OpenFlow table simulator shared by the SDN unit tests.

`simulate` is a tiny OpenFlow 1.3 table: highest priority match wins, actions
rewrite fields, outputs follow the port's peer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from netfate.orchestrator.sdn.compile import (
    OFPP_IN_PORT,
    CompileResult,
    FlowSpec,
    Output,
    SetField,
    ToController,
    ToGroup,
)
from netfate.orchestrator.sdn.intents import (
    Intent,
    NetworkView,
    parse_intent,
)

MAC = {
    "alice": "02:00:00:00:00:0a",
    "bob": "02:00:00:00:00:0b",
    "carol": "02:00:00:00:00:0c",
    "server": "02:00:00:00:00:05",
    "fw1": "02:00:00:00:01:01",
    "fw2": "02:00:00:00:01:02",
    "cam": "02:00:00:00:00:ca",
}
IP = {
    "alice": "10.0.0.10",
    "bob": "10.0.0.11",
    "carol": "10.0.0.12",
    "server": "10.0.0.5",
    "fw1": "10.0.0.101",
    "fw2": "10.0.0.102",
    "cam": "10.0.0.20",
}


def make_view(*, carol_attached: bool = False) -> NetworkView:
    """cpe1 - pe - cpe2, alice and a firewall on cpe1, bob on cpe2, a server and fw2 on pe."""
    cpe2_ports: list[dict[str, Any]] = [
        {"name": "c2h", "ofport": 1, "peer": "host:bob"},
        {"name": "c2up", "ofport": 2, "peer": "node:pe"},
        {"name": "c2l", "ofport": 3, "peer": "local:cpe2"},
        {"name": "c2h2", "ofport": 4, "peer": "host:cam"},
    ]
    if carol_attached:
        cpe2_ports.append({"name": "c2h3", "ofport": 5, "peer": "host:carol"})
    return NetworkView.model_validate(
        {
            "nodes": [
                {
                    "name": "cpe1",
                    "dpid": 1,
                    "ports": [
                        {"name": "c1h", "ofport": 1, "peer": "host:alice"},
                        {"name": "c1up", "ofport": 2, "peer": "node:pe"},
                        {"name": "c1fw", "ofport": 3, "peer": "instance:fw1"},
                        {"name": "c1l", "ofport": 4, "peer": "local:cpe1"},
                    ],
                },
                {"name": "cpe2", "dpid": 2, "ports": cpe2_ports},
                {
                    "name": "pe",
                    "dpid": 3,
                    "ports": [
                        {"name": "pe1", "ofport": 1, "peer": "node:cpe1"},
                        {"name": "pe2", "ofport": 2, "peer": "node:cpe2"},
                        {"name": "peh", "ofport": 3, "peer": "host:server"},
                        {"name": "pel", "ofport": 4, "peer": "local:pe"},
                        {"name": "pefw", "ofport": 5, "peer": "instance:fw2"},
                    ],
                },
            ],
            "hosts": [
                {"name": n, "mac": MAC[n], "ip": IP[n], "node": nd}
                for n, nd in [
                    ("alice", "cpe1"),
                    ("bob", "cpe2"),
                    ("carol", "cpe2"),
                    ("server", "pe"),
                    ("cam", "cpe2"),
                ]
            ],
            "instances": [
                {"id": "fw1", "mac": MAC["fw1"], "ip": IP["fw1"], "node": "cpe1"},
                {"id": "fw2", "mac": MAC["fw2"], "ip": IP["fw2"], "node": "pe"},
            ],
            "links": [{"a": "cpe1", "b": "pe"}, {"a": "cpe2", "b": "pe"}],
        }
    )


def _matches(flow: FlowSpec, pkt: Mapping[str, Any]) -> bool:
    for k, v in flow.match:
        have = pkt.get(k)
        if have is None:
            return False
        if isinstance(v, str) and "/" in v:
            if ipaddress.IPv4Address(have) not in ipaddress.IPv4Network(v):
                return False
        elif have != v:
            return False
    return True


def simulate(
    view: NetworkView, res: CompileResult, node: str, in_port: int, pkt: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """Where a packet entering `node` at `in_port` is delivered: [(peer, packet), ...]."""
    ports = {n.name: {p.ofport: p.peer for p in n.ports} for n in view.nodes}
    groups = {n: {g.group_id: g for g in gs} for n, gs in res.groups.items()}
    out: list[tuple[str, dict[str, Any]]] = []

    def run(node: str, in_port: int, pkt: dict[str, Any], ttl: int) -> None:
        assert ttl > 0, "forwarding loop"
        p = {**pkt, "in_port": in_port}
        cands = [f for f in res.flows[node] if _matches(f, p)]
        assert cands, f"no table-miss flow on {node}"
        top = max(f.priority for f in cands)
        best = [f for f in cands if f.priority == top]
        # Overlapping flows at one priority are fine only if they do the same thing.
        assert len({f.actions for f in best}) == 1, f"ambiguous flows on {node}: {best}"
        apply(node, in_port, p, best[0].actions, ttl)

    def apply(node: str, in_port: int, p: dict[str, Any], actions: Any, ttl: int) -> None:
        p = dict(p)
        for a in actions:
            if isinstance(a, SetField):
                p[a.field] = a.value
            elif isinstance(a, ToController):
                out.append((f"controller@{node}", {k: v for k, v in p.items() if k != "in_port"}))
            elif isinstance(a, ToGroup):
                for bucket in groups[node][a.group_id].buckets:
                    apply(node, in_port, p, bucket, ttl)
            elif isinstance(a, Output):
                port = in_port if a.port == OFPP_IN_PORT else a.port
                assert port != in_port or a.port == OFPP_IN_PORT, "output to in_port is dropped"
                peer = ports[node][port]
                assert peer is not None
                if peer.startswith("node:"):
                    nxt = peer[5:]
                    back = next(o for o, pr in ports[nxt].items() if pr == f"node:{node}")
                    run(nxt, back, {k: v for k, v in p.items() if k != "in_port"}, ttl - 1)
                else:
                    out.append((peer, {k: v for k, v in p.items() if k != "in_port"}))

    run(node, in_port, pkt, 16)
    return out


def ip_pkt(src: str, dst: str, **extra: Any) -> dict[str, Any]:
    return {
        "eth_src": MAC[src],
        "eth_dst": MAC[dst],
        "eth_type": 0x0800,
        "ipv4_src": IP[src],
        "ipv4_dst": IP[dst],
        "ip_proto": 6,
        "tcp_dst": 80,
        "tcp_src": 40000,
        **extra,
    }


def arp_req(src: str, dst_ip: str) -> dict[str, Any]:
    return {
        "eth_src": MAC[src],
        "eth_dst": "ff:ff:ff:ff:ff:ff",
        "eth_type": 0x0806,
        "arp_op": 1,
        "arp_spa": IP[src],
        "arp_tpa": dst_ip,
    }


_MASKED = {"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"}
# OpenFlow prerequisites: a field implies these (a flow on ipv4_dst matches IPv4 only).
_IMPLIES: dict[str, tuple[str, int]] = {
    "ipv4_src": ("eth_type", 0x0800),
    "ipv4_dst": ("eth_type", 0x0800),
    "ip_proto": ("eth_type", 0x0800),
    "arp_op": ("eth_type", 0x0806),
    "arp_spa": ("eth_type", 0x0806),
    "arp_tpa": ("eth_type", 0x0806),
    "tcp_src": ("ip_proto", 6),
    "tcp_dst": ("ip_proto", 6),
    "udp_src": ("ip_proto", 17),
    "udp_dst": ("ip_proto", 17),
}


def _with_prerequisites(match: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(match)
    for k in list(out):
        if k in _IMPLIES:
            field, value = _IMPLIES[k]
            out.setdefault(field, value)
            if field == "ip_proto":
                out.setdefault("eth_type", 0x0800)
    return out


def matches_overlap(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether some frame matches both: every field both name must agree (prefixes
    overlap when one holds the other); a field only one names constrains nothing."""
    a, b = _with_prerequisites(a), _with_prerequisites(b)
    for k in a.keys() & b.keys():
        if k in _MASKED:
            if not ipaddress.IPv4Network(a[k]).overlaps(ipaddress.IPv4Network(b[k])):
                return False
        elif a[k] != b[k]:
            return False
    return True


def ties(res: CompileResult) -> list[tuple[str, FlowSpec, FlowSpec]]:
    """Flows of different owners (cookies) at one table and priority whose matches
    overlap but whose actions differ: which of them a switch applies is undefined
    (OpenFlow 1.3, 5.3 "Matching"), so a frame in the overlap goes either way."""
    out: list[tuple[str, FlowSpec, FlowSpec]] = []
    for node, flows in sorted(res.flows.items()):
        level: dict[tuple[int, int], list[FlowSpec]] = {}
        for f in flows:
            level.setdefault((f.table, f.priority), []).append(f)
        for same in level.values():
            same.sort(key=lambda f: (f.cookie, f.match))
            for i, f in enumerate(same):
                for g in same[i + 1 :]:
                    if (
                        f.cookie != g.cookie
                        and f.actions != g.actions
                        and matches_overlap(dict(f.match), dict(g.match))
                    ):
                        out.append((node, f, g))
    return out


def conn(iid: str, a: str, b: str) -> Intent:
    return parse_intent({"kind": "connectivity", "id": iid, "a": a, "b": b})


# --- intents as data ------------------------------------------------------
