"""Views and a tiny OpenFlow table simulator shared by the SDN unit tests.

`simulate` is a tiny OpenFlow 1.3 table: highest priority match wins, actions
rewrite fields, outputs follow the port's peer. `ties` finds flows a switch may
apply either of; `FakeSwitch` is a switch for the controller's core.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from netfate.orchestrator.sdn.compile import (
    OFPP_IN_PORT,
    CompileResult,
    FlowSpec,
    GroupSpec,
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
from netfate.orchestrator.sdn.reconcile import Plan, as_entries
from netfate.orchestrator.sdn.switch import BatchResult, Reinject, Table

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
    view: NetworkView,
    res: CompileResult,
    node: str,
    in_port: int,
    pkt: dict[str, Any],
    crossed: list[tuple[str, str]] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """Where a packet entering `node` at `in_port` is delivered: [(peer, packet), ...].
    Each link a copy crosses is appended to `crossed` as (from node, to node)."""
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
                    if crossed is not None:
                        crossed.append((node, nxt))
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


def _frame(src: str, dst: str, eth_type: int, payload: bytes) -> bytes:
    return (
        bytes.fromhex(dst.replace(":", "") + src.replace(":", "")) + eth_type.to_bytes(2) + payload
    )


def udp_frame(src_mac: str, src_ip: str, dst_ip: str) -> bytes:
    """An Ethernet frame with an IPv4/UDP header (no checksums), to the server's MAC."""
    ip = bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0])
    ip += socket.inet_aton(src_ip) + socket.inet_aton(dst_ip)
    return _frame(src_mac, MAC["server"], 0x0800, ip + bytes(8))


def arp_request_frame(src_mac: str, spa: str, tpa: str) -> bytes:
    """A broadcast ARP request (RFC 826); with spa == tpa, an announcement."""
    arp = bytes.fromhex("0001080006040001" + src_mac.replace(":", ""))
    arp += socket.inet_aton(spa) + bytes(6) + socket.inet_aton(tpa)
    return _frame(src_mac, "ff:ff:ff:ff:ff:ff", 0x0806, arp)


def conn(iid: str, a: str, b: str) -> Intent:
    return parse_intent({"kind": "connectivity", "id": iid, "a": a, "b": b})


# --- intents as data ------------------------------------------------------


# --- an in-memory switch ----------------------------------------------------


class FakeSwitch:
    """`SwitchIO` (orchestrator/sdn/switch.py) over an in-memory table, for driving
    the controller's core with explicit times. Messages apply as OVS applies them:
    an add replaces the entry with its table/priority/match, a strict delete removes
    that entry if the cookie matches, one refused message leaves the others in.

    The test sets `now` (the time the core is given); a read takes `read_s`, a batch
    `batch_s` until its barrier reply. Flows added with a hard timeout vanish once
    `now` passes it. With `answering` false the switch never replies.
    """

    def __init__(self, read_s: float = 0.001, batch_s: float = 0.002) -> None:
        self.now = 0.0
        self.read_s = read_s
        self.batch_s = batch_s
        self.answering = True
        self.refuse: set[int] = set()
        """Cookies of flow adds the switch answers with an error."""
        self.flows: dict[tuple[int, int, Any], tuple[FlowSpec, float | None]] = {}
        self.groups: dict[int, GroupSpec] = {}
        self.reads = 0
        self.batches: list[Plan] = []
        self.reinjected: list[Reinject] = []
        self.sent: list[tuple[int, bytes]] = []

    def table(self) -> set[FlowSpec]:
        """Every flow the switch holds now."""
        self._expire()
        return {f for f, _ in self.flows.values()}

    def _expire(self) -> None:
        for key, (_f, until) in list(self.flows.items()):
            if until is not None and until <= self.now:
                del self.flows[key]

    def read_table(self) -> Table | None:
        if not self.answering:
            return None
        self.reads += 1
        return Table(as_entries(self.table()), dict(self.groups), [], self.read_s)

    def send_batch(self, plan: Plan, trailer: Sequence[Reinject]) -> BatchResult:
        self.batches.append(plan)
        if not self.answering:
            return BatchResult(False, self.now, self.now + 5.0)
        for g in [*plan.group_adds, *plan.group_mods]:
            self.groups[g.group_id] = g
        refused: dict[int, str] = {}
        for f in plan.flow_adds:
            if f.cookie in self.refuse:
                refused[f.cookie] = "OFPT_ERROR type=5 code=0"
            else:
                self.flows[f.key] = (f, None)
        for d in plan.flow_dels:
            key = (d.table, d.priority, d.match)
            if key in self.flows and self.flows[key][0].cookie == d.cookie:
                del self.flows[key]
        for gid in plan.group_dels:
            self.groups.pop(gid, None)
        self.reinjected.extend(trailer)
        return BatchResult(not refused, self.now, self.now + self.batch_s, refused)

    def reinject(self, packets: Sequence[Reinject]) -> None:
        self.reinjected.extend(packets)

    def flow_add(self, flow: FlowSpec, hard_timeout: int) -> None:
        self.flows[flow.key] = (flow, self.now + hard_timeout)

    def packet_out(self, port: int, frame: bytes) -> None:
        self.sent.append((port, frame))
