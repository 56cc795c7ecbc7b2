"""Intents: what the orchestrator wants from the network, not how flows do it.

An intent names endpoints (hosts, VNF instances, subnets behind a node) and the
compiler (`compile.py`) turns it into OpenFlow flows on every switch along the
paths. Intents travel as JSON (API, database, controller), so they are pydantic
models; the network view they are compiled against is defined here too.

Endpoint text form, used in JSON and on the command line::

    host:<name>                      a host attached to an access port
    instance:<id>                    a VNF instance attached to its node's bridge
    subnet:<cidr>@<node>[/<port>]    a subnet routed behind a node's port
                                     (default: the node's `local:` port)
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    WithJsonSchema,
    field_validator,
    model_validator,
)

INTENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")

# Cookies: the top 16 bits mark flows the controller owns ("NF"); the low 48
# bits come from the intent id, so a flow on a switch names its intent.
COOKIE_PREFIX = 0x4E46 << 48
COOKIE_PREFIX_MASK = 0xFFFF << 48
BASE_COOKIE = COOKIE_PREFIX  # the controller's own pipeline (discovery, drop)
DISCOVERY_COOKIE = COOKIE_PREFIX | 0xFFFF_FFFF_FFFF  # short-lived packet-in suppressors


@functools.lru_cache(maxsize=65536)
def cookie_for(intent_id: str) -> int:
    """The cookie of every flow an intent installs: deterministic from its id."""
    low = int.from_bytes(hashlib.sha256(intent_id.encode()).digest()[:6], "big")
    if low in (0, 0xFFFF_FFFF_FFFF):  # reserved for the base and discovery flows
        low = 1
    return COOKIE_PREFIX | low


def is_netfate_cookie(cookie: int) -> bool:
    return cookie & COOKIE_PREFIX_MASK == COOKIE_PREFIX


class IntentError(ValueError):
    """An intent cannot be accepted; `reason` says why, in words for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownName(IntentError):
    """An intent names a node, port, host or instance the view does not have."""

    def __init__(self, kind: str, name: str, intent_id: str | None = None) -> None:
        where = f" (intent {intent_id!r})" if intent_id else ""
        super().__init__(f"unknown {kind} {name!r}{where}")
        self.kind = kind
        self.name = name


class IntentConflict(IntentError):
    """Two intents cannot both hold."""

    def __init__(self, reason: str, other: str | None = None) -> None:
        super().__init__(reason)
        self.other = other


@dataclass(frozen=True)
class Endpoint:
    """One end of an intent: `host:NAME`, `instance:ID` or `subnet:CIDR@NODE[/PORT]`."""

    kind: Literal["host", "instance", "subnet"]
    name: str
    """Host name, instance id, or the subnet in CIDR form."""
    node: str | None = None
    """For a subnet: the node it is routed behind."""
    port: str | None = None
    """For a subnet: the port of that node (default: its `local:` port)."""

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        kind, sep, rest = text.partition(":")
        if not sep or not rest:
            raise ValueError(
                f"endpoint {text!r}: expected host:NAME, instance:ID or subnet:CIDR@NODE"
            )
        if kind in ("host", "instance"):
            return cls(kind, rest)  # type: ignore[arg-type]
        if kind == "subnet":
            cidr, at, where = rest.partition("@")
            if not at or not where:
                raise ValueError(f"endpoint {text!r}: a subnet needs @NODE")
            try:
                net = ipaddress.IPv4Network(cidr, strict=True)
            except ValueError as e:
                raise ValueError(f"endpoint {text!r}: {e}") from None
            node, _, port = where.partition("/")
            return cls("subnet", str(net), node, port or None)
        raise ValueError(f"endpoint {text!r}: unknown kind {kind!r}")

    def __str__(self) -> str:
        if self.kind != "subnet":
            return f"{self.kind}:{self.name}"
        return f"subnet:{self.name}@{self.node}" + (f"/{self.port}" if self.port else "")


def _parse_endpoint(value: Any) -> Endpoint:
    if isinstance(value, Endpoint):
        return value
    if isinstance(value, str):
        return Endpoint.parse(value)
    raise ValueError("an endpoint is a string such as host:alice")


EndpointField = Annotated[
    Endpoint,
    BeforeValidator(_parse_endpoint),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["host:alice", "subnet:10.9.0.0/24@pe1"]}),
]


class _IntentBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="Unique name of the intent; its flows carry a cookie from it.")

    @field_validator("id")
    @classmethod
    def _check_id(cls, v: str) -> str:
        if not INTENT_ID_RE.match(v):
            raise ValueError("id: 1-63 characters, letters, digits, '_', '.', '-'")
        return v

    @property
    def cookie(self) -> int:
        return cookie_for(self.id)


class ConnectivityIntent(_IntentBase):
    """A and B may reach each other (both directions, ARP included).

    With `above_gateway`, A and B are a host and an instance (or two of either),
    matched by their MACs alone, and the flows compile one tier above the hosts'
    gateway flows (compile.py): for a host that uses an instance as its router
    (a Personal Network's vHG), whatever IPv4 addresses it holds (a DHCP lease).
    """

    kind: Literal["connectivity"] = "connectivity"
    a: EndpointField
    b: EndpointField
    above_gateway: bool = Field(
        default=False,
        description="Compile above the hosts' gateway flows (host/instance ends only).",
    )

    @model_validator(mode="after")
    def _distinct(self) -> ConnectivityIntent:
        if self.a == self.b:
            raise ValueError("connectivity: a and b are the same endpoint")
        if self.above_gateway and "subnet" in (self.a.kind, self.b.kind):
            raise ValueError("connectivity: above_gateway joins hosts and instances, not subnets")
        return self


class SteeringIntent(_IntentBase):
    """Host H's IPv4 traffic to `to` crosses the instances of `chain` in order.

    Each instance is a one-armed router (it forwards what it receives); the
    switches rewrite the destination MAC at every stage, which is how NetFATE's
    controller sent a client's frames to the MAC of its personal firewall.
    With `symmetric`, the reply traffic crosses the chain in reverse order.
    """

    kind: Literal["steering"] = "steering"
    host: str
    chain: list[str] = Field(min_length=1, max_length=16)
    to: EndpointField
    symmetric: bool = True

    @model_validator(mode="after")
    def _check(self) -> SteeringIntent:
        if len(set(self.chain)) != len(self.chain):
            raise ValueError("steering: an instance appears twice in the chain")
        if self.to.kind == "subnet":
            raise ValueError("steering: the destination must be a host or an instance")
        if self.to == Endpoint("host", self.host):
            raise ValueError("steering: the destination is the host itself")
        if self.to.kind == "instance" and self.to.name in self.chain:
            raise ValueError("steering: the destination is also in the chain")
        return self


class TunnelIntent(_IntentBase):
    """A may reach B on one protocol (and port) only; B answers from that port."""

    kind: Literal["tunnel"] = "tunnel"
    a: EndpointField
    b: EndpointField
    protocol: Literal["tcp", "udp", "icmp"]
    port: int | None = Field(default=None, ge=1, le=65535)

    @model_validator(mode="after")
    def _check(self) -> TunnelIntent:
        if self.a == self.b:
            raise ValueError("tunnel: a and b are the same endpoint")
        if self.protocol in ("tcp", "udp") and self.port is None:
            raise ValueError(f"tunnel: protocol {self.protocol} needs a port")
        if self.protocol == "icmp" and self.port is not None:
            raise ValueError("tunnel: icmp has no port")
        return self


class ReplicationIntent(_IntentBase):
    """A flow from `source` is copied to every target along a multicast tree.

    The flow goes unreplicated to node `at` (default: the node the source
    attaches to), then along the shortest paths from there to the targets'
    nodes, which form a tree: every switch where the tree branches holds an
    OpenFlow group of type ALL with one bucket per output, so a copy crosses
    each link once, over as many levels as the tree has. Each copy gets its
    target's MAC and IPv4 address, where it becomes that target's alone, so the
    target's stack accepts it. Targets added or removed modify the groups in
    place (same intent id, same group id): the other targets' copies go on.

    With `rewrite` false the copies keep their addresses (multicast and
    broadcast stay what they are, for every target's stack to take as such);
    every target must then attach at `at`, `port` may be left out (any port of
    the protocol), and the source may be a subnet behind a named port
    (`subnet:CIDR@NODE/PORT`: what arrives on that port from those addresses).
    """

    kind: Literal["replication"] = "replication"
    source: EndpointField
    protocol: Literal["tcp", "udp"] = "udp"
    port: int | None = Field(default=None, ge=1, le=65535)
    dst_ip: str | None = Field(default=None, description="Match only this destination address.")
    at: str | None = None
    targets: list[EndpointField] = Field(min_length=1, max_length=64)
    rewrite: bool = True

    @model_validator(mode="after")
    def _check(self) -> ReplicationIntent:
        if any(t.kind == "subnet" for t in self.targets):
            raise ValueError("replication: targets must be hosts or instances")
        if self.source.kind == "subnet" and (self.rewrite or self.source.port is None):
            raise ValueError(
                "replication: a subnet source needs rewrite false and a named port "
                "(subnet:CIDR@NODE/PORT)"
            )
        if self.port is None and self.rewrite:
            raise ValueError("replication: a port is needed unless rewrite is false")
        if len(set(self.targets)) != len(self.targets):
            raise ValueError("replication: a target appears twice")
        if self.source in self.targets:
            raise ValueError("replication: the source is also a target")
        if self.dst_ip is not None:
            try:
                ipaddress.IPv4Address(self.dst_ip)
            except ValueError:
                raise ValueError(f"replication: dst_ip {self.dst_ip!r} is not IPv4") from None
        return self


Intent = Annotated[
    ConnectivityIntent | SteeringIntent | TunnelIntent | ReplicationIntent,
    Field(discriminator="kind"),
]
IntentAdapter: TypeAdapter[Intent] = TypeAdapter(Intent)
IntentListAdapter: TypeAdapter[list[Intent]] = TypeAdapter(list[Intent])


def parse_intent(data: Any) -> Intent:
    """Validate JSON-like data into an intent (raises pydantic.ValidationError)."""
    return IntentAdapter.validate_python(data)


# --- the network view the controller compiles against --------------------------


class _ViewModel(BaseModel):
    model_config = ConfigDict(frozen=True)


class PortView(_ViewModel):
    name: str
    ofport: int
    peer: str | None = None
    """`host:<name>`, `node:<name>`, `local:<node>` or `instance:<id>` (docs/CONTRACTS.md)."""

    @property
    def peer_kind(self) -> str | None:
        return self.peer.partition(":")[0] if self.peer else None

    @property
    def peer_name(self) -> str | None:
        return self.peer.partition(":")[2] if self.peer else None


class NodeView(_ViewModel):
    name: str
    dpid: int | None = None
    ports: list[PortView] = Field(default_factory=list)


def _norm_mac(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


class HostView(_ViewModel):
    name: str
    mac: Annotated[str | None, BeforeValidator(_norm_mac)] = None
    ip: str | None = None
    node: str | None = None
    ofport: int | None = None
    """Where the controller last saw it (with `node`); wins over the port peers."""


class InstanceView(_ViewModel):
    id: str
    mac: Annotated[str | None, BeforeValidator(_norm_mac)] = None
    ip: str | None = None
    node: str | None = None


class LinkView(_ViewModel):
    a: str
    b: str
    delay_s: float | None = None


class NetworkView(_ViewModel):
    """Everything the compiler needs: switches, their ports, hosts, instances, links."""

    nodes: list[NodeView] = Field(default_factory=list)
    hosts: list[HostView] = Field(default_factory=list)
    instances: list[InstanceView] = Field(default_factory=list)
    links: list[LinkView] = Field(default_factory=list)


class ViewAndIntents(BaseModel):
    """What the orchestrator serves the controller at GET /api/v1/sdn/view."""

    view: NetworkView
    intents: list[Intent] = Field(default_factory=list)
    version: str = ""
    """Changes whenever view or intents change, so the controller can skip work."""
