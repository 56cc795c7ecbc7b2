"""Topology model: an emulated (or real) edge network described as data.

Pure: no root, no I/O besides reading a file in `Topology.load`. The testbed
builds from it, the orchestrator receives it over its API (`to_dict` /
`from_dict`), and the SDN controller computes paths over `graph()`.

File format (YAML or the same structure as JSON)::

    name: demo
    transit: 10.255.0.0/24        # operator-side addresses of node namespaces
    nodes:
      cpe1: {kind: cpe, lan: 192.168.1.0/24, cpu: 2, memory: 512MiB}
      pe1:  {kind: pe, predeploy: {storage_mb: 50, standbys: 2}}
    hosts:
      laptop1: {node: cpe1}       # ip: next free address of the node's first LAN
      tv:      {node: cpe1, ip: 192.168.1.20, kind: tv, mac: "02:00:00:00:00:20"}
    links:
      - {a: cpe1, b: pe1, rate: 100Mbit, delay: 5ms, loss: 0.1%, mtu: 1500}

A node's `predeploy` is its pre-deploy budget, the fields `PUT
/nodes/NODE/predeploy` takes: `storage_mb` (room for function images) and
`standbys` (warm standbys kept ready); the orchestrator's policy picks the images
(orchestrator/engine/predeploy.py). It is the file's default: a budget the
operator sets through the API later wins over it, reloads included.

Every check runs before anything is returned, so a `Topology` value is always
complete and consistent: a builder never starts on a half-valid file. Errors
name the key path (`links[2].b: unknown node 'pe9'`).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import networkx as nx
import yaml

__all__ = [
    "DEFAULT_TRANSIT",
    "MAX_HOSTS",
    "MAX_LINKS",
    "MAX_NODES",
    "HostSpec",
    "LinkSpec",
    "NodeKind",
    "NodeSpec",
    "PredeploySpec",
    "Topology",
    "TopologyError",
    "format_delay",
    "format_memory",
    "format_rate",
    "generate_tree",
    "parse_delay",
    "parse_loss",
    "parse_memory",
    "parse_rate",
]


class TopologyError(Exception):
    """A topology document is invalid; `path` is the offending key, e.g. `links[2].b`."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


class NodeKind(StrEnum):
    CPE = "cpe"  # customer premises equipment (home gateway)
    PE = "pe"  # provider edge
    POP = "pop"  # NFVI point of presence
    CORE = "core"  # core router/switch: forwards; with a LAN it also runs functions
    HRH = "hrh"  # home radio head


DEFAULT_TRANSIT = IPv4Network("10.255.0.0/24")
MAX_NODES = 1000
MAX_HOSTS = 10000
# Interface names are `<prefix>l<index>a`: four digits keep them within IFNAMSIZ.
MAX_LINKS = 9999
MAX_NAME = 32
RESERVED_NAMES = frozenset({"sw", "door"})  # the testbed's `<prefix>-sw` and `<prefix>-door`

# Resources a node gets when the file does not say (the orchestrator's capacity view).
DEFAULT_RESOURCES: dict[NodeKind, tuple[float, int]] = {
    NodeKind.CPE: (1.0, 512),
    NodeKind.HRH: (1.0, 256),
    NodeKind.PE: (4.0, 4096),
    NodeKind.POP: (8.0, 16384),
    NodeKind.CORE: (2.0, 2048),
}

_NAME_RE = re.compile(r"^[a-z](?:[a-z0-9-]*[a-z0-9])?$")
_LABEL_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$")
_NUM_UNIT_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z%]*)\s*$")

_TOP_KEYS = ("name", "description", "transit", "nodes", "hosts", "links")
_NODE_KEYS = ("kind", "lan", "lans", "cpu", "memory", "description", "predeploy")
_PREDEPLOY_KEYS = ("storage_mb", "standbys")
# The API's bounds (orchestrator/api/schemas.py PredeployBudget): a file may not
# set what an operator could not.
MAX_PREDEPLOY_MB = 1_000_000
MAX_STANDBYS = 64
_HOST_KEYS = ("node", "ip", "mac", "kind", "description")
_LINK_KEYS = ("a", "b", "rate", "delay", "loss", "mtu")

# Units are case-insensitive. Rates are bits per second whatever the spelling:
# "Mbps" means megabits here, unlike tc where "mbps" means megabytes.
_RATE_UNITS = {
    "": 1,
    "bit": 1,
    "bps": 1,
    "kbit": 10**3,
    "kbps": 10**3,
    "mbit": 10**6,
    "mbps": 10**6,
    "gbit": 10**9,
    "gbps": 10**9,
}
_DELAY_UNITS_US = {"us": 1, "ms": 1000, "s": 1_000_000}
_MEMORY_UNITS_MIB = {"mib": 1, "gib": 1024}
MIN_RATE_BPS = 1000
MAX_RATE_BPS = 100 * 10**9
MAX_DELAY_US = 10_000_000


# --------------------------------------------------------------------- units


def _describe(value: object) -> str:
    return repr(value)


def _number_unit(value: object, path: str, what: str) -> tuple[float, str]:
    if isinstance(value, bool):
        raise TopologyError(path, f"expected {what}, got {_describe(value)}")
    if isinstance(value, int | float):
        number = _finite(value)
        if number is None or number < 0:
            raise TopologyError(path, f"expected {what}, got {_describe(value)}")
        return number, ""
    if isinstance(value, str):
        m = _NUM_UNIT_RE.match(value)
        if m and (number := _finite(m.group(1))) is not None:
            return number, m.group(2).lower()
    raise TopologyError(path, f"expected {what}, got {_describe(value)}")


def _finite(value: int | float | str) -> float | None:
    """`value` as a finite float; None when it is not one (NaN, or beyond a float's
    range: a 400-digit number would overflow every conversion after it)."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def parse_rate(value: object, path: str = "rate") -> int:
    """`100Mbit`, `10kbit`, `1Gbit`, `9600bps` or a bare number of bits per second."""
    what = "a rate like 10kbit, 100Mbit, 1Gbit or 9600bps"
    number, unit = _number_unit(value, path, what)
    if unit not in _RATE_UNITS:
        raise TopologyError(path, f"unknown rate unit {unit!r} in {_describe(value)}; {what}")
    bps = round(number * _RATE_UNITS[unit])
    if not MIN_RATE_BPS <= bps <= MAX_RATE_BPS:
        raise TopologyError(path, f"rate must be between 1kbit and 100Gbit (got {value!r})")
    return bps


def format_rate(bps: int) -> str:
    for unit, factor in (("Gbit", 10**9), ("Mbit", 10**6), ("kbit", 10**3)):
        if bps % factor == 0:
            return f"{bps // factor}{unit}"
    return f"{bps}bit"


def parse_delay(value: object, path: str = "delay") -> int:
    """`5ms`, `200us`, `0.5s` (or 0) -> whole microseconds."""
    what = "a delay like 200us, 5ms or 0.1s"
    number, unit = _number_unit(value, path, what)
    if unit == "" and number != 0:
        raise TopologyError(path, f"a delay needs a unit (us, ms, s): got {_describe(value)}")
    if unit and unit not in _DELAY_UNITS_US:
        raise TopologyError(path, f"unknown delay unit {unit!r} in {_describe(value)}; {what}")
    us = round(number * _DELAY_UNITS_US[unit]) if unit else 0
    if us > MAX_DELAY_US:
        raise TopologyError(path, f"delay must be at most 10s (got {value!r})")
    return us


def format_delay(us: int) -> str:
    if us == 0:
        return "0ms"
    if us % 1_000_000 == 0:
        return f"{us // 1_000_000}s"
    if us % 1000 == 0:
        return f"{us // 1000}ms"
    return f"{us}us"


def parse_loss(value: object, path: str = "loss") -> float:
    """`0.1%` or a fraction 0..1 -> fraction."""
    what = "a loss like 0.5% or a fraction between 0 and 1"
    number, unit = _number_unit(value, path, what)
    if unit == "%":
        fraction = number / 100.0
    elif unit == "":
        fraction = number
        if fraction > 1:
            raise TopologyError(
                path, f"a bare loss is a fraction between 0 and 1 (write '{value}%' for percent)"
            )
    else:
        raise TopologyError(path, f"unknown loss unit {unit!r}; {what}")
    if fraction > 1:
        raise TopologyError(path, f"loss must be at most 100% (got {value!r})")
    return fraction


def parse_memory(value: object, path: str = "memory") -> int:
    """`512MiB`, `2GiB` -> MiB. Decimal units are refused: `512MB` is ambiguous here."""
    what = "a memory size like 512MiB or 2GiB"
    number, unit = _number_unit(value, path, what)
    if unit not in _MEMORY_UNITS_MIB:
        raise TopologyError(path, f"expected {what} (got {value!r})")
    mib = number * _MEMORY_UNITS_MIB[unit]
    if mib != int(mib) or not 16 <= mib <= 1024 * 1024:
        raise TopologyError(path, f"memory must be whole MiB between 16MiB and 1024GiB ({value!r})")
    return int(mib)


def format_memory(mib: int) -> str:
    return f"{mib // 1024}GiB" if mib % 1024 == 0 else f"{mib}MiB"


# --------------------------------------------------------------------- specs


@dataclass(frozen=True)
class PredeploySpec:
    """A node's pre-deploy budget as the file gives it (the API's fields)."""

    storage_mb: float
    """Room for pre-deployed function images (MB)."""
    standbys: int
    """Warm standbys kept ready."""


@dataclass(frozen=True)
class NodeSpec:
    """An edge node: one namespace and one OVS bridge in the testbed."""

    name: str
    kind: NodeKind
    index: int
    """Position in the file: gives the bridge datapath id (index + 1) and transit address."""
    lans: tuple[IPv4Network, ...]
    cpu: float
    memory_mb: int
    transit_ip: IPv4Address
    """The node's operator-side address (in `Topology.transit`)."""
    description: str = ""
    predeploy: PredeploySpec | None = None
    """The file's pre-deploy budget; None: the file sets none."""

    @property
    def gateways(self) -> tuple[IPv4Address, ...]:
        """The node's address in each LAN (the .1), the default gateway of its hosts."""
        return tuple(lan.network_address + 1 for lan in self.lans)

    @property
    def datapath_id(self) -> int:
        return self.index + 1


@dataclass(frozen=True)
class HostSpec:
    """An end host (a user's laptop, a TV) on one LAN of a node."""

    name: str
    node: str
    index: int
    ip: IPv4Address
    lan: IPv4Network
    mac: str
    kind: str = "host"
    description: str = ""

    @property
    def gateway(self) -> IPv4Address:
        return self.lan.network_address + 1


@dataclass(frozen=True)
class LinkSpec:
    """A link between two nodes; `rate_bps` None means unshaped."""

    a: str
    b: str
    index: int
    rate_bps: int | None = None
    delay_us: int = 0
    loss: float = 0.0
    mtu: int | None = None

    @property
    def delay_s(self) -> float:
        return self.delay_us / 1e6

    @property
    def shaped(self) -> bool:
        return self.rate_bps is not None

    @property
    def impaired(self) -> bool:
        """True when delay or loss must be emulated (netem or the userspace emulator)."""
        return self.delay_us > 0 or self.loss > 0


@dataclass(frozen=True)
class Topology:
    name: str
    transit: IPv4Network
    nodes: dict[str, NodeSpec]
    hosts: dict[str, HostSpec]
    links: tuple[LinkSpec, ...]
    description: str = ""

    @property
    def door_ip(self) -> IPv4Address:
        """The front door's service address: the last of the transit network (the
        operator's part), which no node gets; it lives behind `door_node`."""
        return self.transit.broadcast_address - 1

    @property
    def door_node(self) -> NodeSpec:
        """The node whose namespace routes to the front door: the first one."""
        return min(self.nodes.values(), key=lambda n: n.index)

    # ----------------------------------------------------------- loading

    @classmethod
    def load(cls, path: str | Path) -> Topology:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise TopologyError("", f"cannot read {p}: {e.strerror or e}") from e
        except UnicodeDecodeError as e:
            raise TopologyError("", f"{p} is not UTF-8 text") from e
        return cls.from_yaml(text, default_name=_default_name(p.stem))

    @classmethod
    def from_yaml(cls, text: str, *, default_name: str = "topology") -> Topology:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            where = ""
            mark = getattr(e, "problem_mark", None)
            if mark is not None:
                where = f" at line {mark.line + 1}, column {mark.column + 1}"
            problem = getattr(e, "problem", None) or str(e)
            raise TopologyError("", f"invalid YAML{where}: {problem}") from e
        except (ValueError, RecursionError) as e:
            # What the YAML constructors let through: a date-like scalar that is no
            # date (`2024-13-45`), nesting deeper than the interpreter's stack.
            raise TopologyError("", f"invalid YAML: {e}") from e
        return cls.from_dict(doc, default_name=default_name)

    @classmethod
    def from_dict(cls, doc: object, *, default_name: str = "topology") -> Topology:
        return _parse(doc, default_name)

    # ----------------------------------------------------------- output

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON-able form; `from_dict(t.to_dict()) == t`."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["transit"] = str(self.transit)
        nodes: dict[str, Any] = {}
        for n in self.nodes.values():
            nd: dict[str, Any] = {
                "kind": str(n.kind),
                "lans": [str(lan) for lan in n.lans],
                "cpu": n.cpu,
                "memory": format_memory(n.memory_mb),
            }
            if n.description:
                nd["description"] = n.description
            if n.predeploy is not None:
                nd["predeploy"] = {
                    "storage_mb": n.predeploy.storage_mb,
                    "standbys": n.predeploy.standbys,
                }
            nodes[n.name] = nd
        out["nodes"] = nodes
        hosts: dict[str, Any] = {}
        for h in self.hosts.values():
            hd: dict[str, Any] = {"node": h.node, "ip": str(h.ip), "mac": h.mac, "kind": h.kind}
            if h.description:
                hd["description"] = h.description
            hosts[h.name] = hd
        out["hosts"] = hosts
        links: list[dict[str, Any]] = []
        for lk in self.links:
            ld: dict[str, Any] = {"a": lk.a, "b": lk.b}
            if lk.rate_bps is not None:
                ld["rate"] = format_rate(lk.rate_bps)
            if lk.delay_us:
                ld["delay"] = format_delay(lk.delay_us)
            if lk.loss:
                ld["loss"] = lk.loss
            if lk.mtu is not None:
                ld["mtu"] = lk.mtu
            links.append(ld)
        out["links"] = links
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    # ----------------------------------------------------------- views

    def graph(self) -> nx.Graph:
        """Nodes and hosts as graph vertices; edges carry `delay_s`, `rate_bps`, `loss`.

        Vertex attributes: `role` ("node" or "host"), `kind`; hosts also `node`,
        `ip`, `mac`. Access edges (host to node) have no delay, loss or rate
        limit (`rate_bps` None means unshaped) and `link` None; node links carry
        their index in `links` as `link`.
        """
        g = nx.Graph(name=self.name)
        for n in self.nodes.values():
            g.add_node(n.name, role="node", kind=str(n.kind))
        for h in self.hosts.values():
            g.add_node(h.name, role="host", kind=h.kind, node=h.node, ip=str(h.ip), mac=h.mac)
            g.add_edge(h.name, h.node, delay_s=0.0, rate_bps=None, loss=0.0, link=None)
        for lk in self.links:
            g.add_edge(
                lk.a, lk.b, delay_s=lk.delay_s, rate_bps=lk.rate_bps, loss=lk.loss, link=lk.index
            )
        return g

    def hosts_of(self, node: str) -> list[HostSpec]:
        return [h for h in self.hosts.values() if h.node == node]

    def links_of(self, node: str) -> list[LinkSpec]:
        return [lk for lk in self.links if node in (lk.a, lk.b)]

    def has_cycles(self) -> bool:
        """True if the node graph has a loop (the testbed then enables RSTP)."""
        # The node graph is connected (checked on parsing): a tree has exactly n - 1 links.
        return len(self.links) >= len(self.nodes)


def _default_name(stem: str) -> str:
    s = re.sub(r"[^a-z0-9-]+", "-", stem.lower()).strip("-")[:MAX_NAME].strip("-")
    return s if s and _NAME_RE.match(s) else "topology"


# --------------------------------------------------------------------- parsing


def _mapping(value: object, path: str, what: str) -> Mapping[object, object]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TopologyError(path, f"expected {what}, got {type(value).__name__}")
    return value


def _check_keys(m: Mapping[object, object], allowed: tuple[str, ...], path: str) -> None:
    for key in m:
        if key not in allowed:
            name = key if isinstance(key, str) and key else repr(key)  # '' named too
            raise TopologyError(
                f"{path}.{name}" if path else name,
                f"unknown key (allowed: {', '.join(allowed)})",
            )


def _check_name(name: object, path: str, what: str) -> str:
    if not isinstance(name, str):
        raise TopologyError(path, f"{what} name must be a string (got {name!r}; quote it)")
    if len(name) > MAX_NAME:
        raise TopologyError(path, f"{what} name is longer than {MAX_NAME} characters")
    if not _NAME_RE.match(name):
        raise TopologyError(
            path,
            f"{what} name {name!r} must be lowercase letters, digits and '-', "
            "starting with a letter and not ending with '-'",
        )
    return name


def _text(value: object, path: str) -> str:
    if not isinstance(value, str) or len(value) > 1000:
        raise TopologyError(path, "expected a string of at most 1000 characters")
    return value


def _network(value: object, path: str) -> IPv4Network:
    if not isinstance(value, str):
        raise TopologyError(path, f"expected an IPv4 subnet like 192.168.1.0/24, got {value!r}")
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError as e:
        raise TopologyError(path, f"{value!r} is not an IPv4 subnet ({e})") from e
    if not isinstance(net, IPv4Network):
        raise TopologyError(path, f"{value} is not IPv4 (only IPv4 subnets are supported)")
    if "/" not in value:
        raise TopologyError(path, f"{value} needs a prefix length, e.g. {value}/24")
    if net.network_address != ipaddress.ip_interface(value).ip:
        raise TopologyError(path, f"{value} has host bits set; did you mean {net}?")
    if net.prefixlen > 30:
        raise TopologyError(path, f"{net} is too small (at most /30)")
    if net.is_loopback or net.is_multicast or net.is_link_local or net.is_unspecified:
        raise TopologyError(path, f"{net} is not a usable unicast subnet")
    return net


def _address(value: object, path: str) -> IPv4Address:
    if not isinstance(value, str):
        raise TopologyError(path, f"expected an IPv4 address like 192.168.1.20, got {value!r}")
    try:
        addr = ipaddress.ip_address(value)
    except ValueError as e:
        raise TopologyError(path, f"{value!r} is not an IPv4 address") from e
    if not isinstance(addr, IPv4Address):
        raise TopologyError(path, f"{value} is not IPv4")
    return addr


def _cpu(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TopologyError(path, f"expected a number of cores like 2 or 0.5, got {value!r}")
    cores = _finite(value)
    if cores is None or not 0 < cores <= 1024:
        raise TopologyError(path, f"cpu must be greater than 0 and at most 1024 (got {value})")
    return cores


def _mtu(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 576 <= value <= 9000:
        raise TopologyError(path, f"mtu must be an integer between 576 and 9000 (got {value!r})")
    return value


def _parse(doc: object, default_name: str) -> Topology:
    """The whole document, section by section; each section is checked against the
    ones before it (hosts against nodes, links against both)."""
    top = _mapping(doc, "", "a mapping with keys name, transit, nodes, hosts, links")
    if doc is None:
        raise TopologyError("", "empty document: a topology needs at least 'nodes'")
    _check_keys(top, _TOP_KEYS, "")
    name = _check_name(top.get("name", default_name), "name", "topology")
    description = _text(top["description"], "description") if "description" in top else ""
    transit = _network(top.get("transit", str(DEFAULT_TRANSIT)), "transit")
    nodes = _parse_nodes(top.get("nodes"), transit)
    hosts = _parse_hosts(top.get("hosts"), nodes)
    links = _parse_links(top.get("links"), nodes, hosts)
    _check_connected(nodes, links)
    return Topology(
        name=name,
        transit=transit,
        nodes=nodes,
        hosts=hosts,
        links=links,
        description=description,
    )


# ---- nodes


def _parse_nodes(raw: object, transit: IPv4Network) -> dict[str, NodeSpec]:
    """`nodes`: name -> node, in file order (which gives datapath ids and addresses)."""
    raw_nodes = _mapping(raw, "nodes", "a mapping of node name to node")
    if not raw_nodes:
        raise TopologyError("nodes", "a topology needs at least one node")
    if len(raw_nodes) > MAX_NODES:
        raise TopologyError("nodes", f"at most {MAX_NODES} nodes (got {len(raw_nodes)})")
    capacity = transit.num_addresses - 3  # less network, broadcast and the front door
    if len(raw_nodes) > capacity:
        raise TopologyError(
            "transit",
            f"{transit} has room for {capacity} nodes but the topology has {len(raw_nodes)}",
        )
    nodes: dict[str, NodeSpec] = {}
    lan_owner: list[tuple[IPv4Network, str]] = []  # every LAN so far, and its node
    for index, (key, value) in enumerate(raw_nodes.items()):
        node = _parse_node(key, value, index, transit, lan_owner)
        nodes[node.name] = node
    return nodes


def _parse_node(
    key: object,
    raw: object,
    index: int,
    transit: IPv4Network,
    lan_owner: list[tuple[IPv4Network, str]],
) -> NodeSpec:
    nname = _check_name(key, f"nodes.{key}", "node")
    path = f"nodes.{nname}"
    if nname in RESERVED_NAMES:
        raise TopologyError(path, f"{nname!r} is reserved (a namespace of the testbed's own)")
    nd = _mapping(raw, path, "a mapping with kind, lan, cpu, memory")
    _check_keys(nd, _NODE_KEYS, path)
    kind = _node_kind(nd, path)
    lans = _node_lans(nd, path, nname, transit, lan_owner)
    dcpu, dmem = DEFAULT_RESOURCES[kind]
    cpu = _cpu(nd["cpu"], f"{path}.cpu") if "cpu" in nd else dcpu
    mem = parse_memory(nd["memory"], f"{path}.memory") if "memory" in nd else dmem
    ndesc = _text(nd["description"], f"{path}.description") if "description" in nd else ""
    pre = _predeploy(nd["predeploy"], f"{path}.predeploy") if "predeploy" in nd else None
    return NodeSpec(
        name=nname,
        kind=kind,
        index=index,
        lans=lans,
        cpu=cpu,
        memory_mb=mem,
        transit_ip=transit.network_address + index + 1,
        description=ndesc,
        predeploy=pre,
    )


def _predeploy(raw: object, path: str) -> PredeploySpec:
    """A node's `predeploy`: both fields, in the API's bounds, and a pool the budget
    can hold (a standby is only ever of a kept image: no storage, no standby)."""
    if raw is None or not isinstance(raw, Mapping):
        raise TopologyError(path, "expected a mapping with storage_mb and standbys")
    if "images" in raw:
        raise TopologyError(
            f"{path}.images",
            "images are not named here: the policy picks them by demand within storage_mb "
            "(GET /predeploy says which and why)",
        )
    _check_keys(raw, _PREDEPLOY_KEYS, path)
    for key in _PREDEPLOY_KEYS:
        if key not in raw:
            raise TopologyError(f"{path}.{key}", "missing")
    mb_raw, sb_raw = raw["storage_mb"], raw["standbys"]
    mb = None
    if isinstance(mb_raw, int | float) and not isinstance(mb_raw, bool):
        mb = _finite(mb_raw)
    if mb is None or not 0 <= mb <= MAX_PREDEPLOY_MB:
        raise TopologyError(
            f"{path}.storage_mb",
            f"expected a number of MB between 0 and {MAX_PREDEPLOY_MB} (got {mb_raw!r})",
        )
    if isinstance(sb_raw, bool) or not isinstance(sb_raw, int) or not 0 <= sb_raw <= MAX_STANDBYS:
        raise TopologyError(
            f"{path}.standbys",
            f"expected a whole number of standbys between 0 and {MAX_STANDBYS} (got {sb_raw!r})",
        )
    if sb_raw > 0 and mb == 0:
        raise TopologyError(
            f"{path}.standbys",
            f"{sb_raw} standby(s) but storage_mb is 0: a standby is only ever of a kept "
            "image, and no image fits",
        )
    return PredeploySpec(storage_mb=float(mb), standbys=sb_raw)


def _node_kind(nd: Mapping[object, object], path: str) -> NodeKind:
    if "kind" not in nd:
        raise TopologyError(f"{path}.kind", "missing (one of cpe, pe, pop, core, hrh)")
    try:
        kind = NodeKind(nd["kind"]) if isinstance(nd["kind"], str) else None
    except ValueError:
        kind = None
    if kind is None:
        raise TopologyError(
            f"{path}.kind",
            f"must be one of {', '.join(k.value for k in NodeKind)} (got {nd['kind']!r})",
        )
    return kind


def _node_lans(
    nd: Mapping[object, object],
    path: str,
    nname: str,
    transit: IPv4Network,
    lan_owner: list[tuple[IPv4Network, str]],
) -> tuple[IPv4Network, ...]:
    """`lan` (one) or `lans` (a list): none overlaps the transit subnet or any LAN
    before it. Each is added to `lan_owner`."""
    if "lan" in nd and "lans" in nd:
        raise TopologyError(f"{path}.lans", "give either 'lan' or 'lans', not both")
    lans: list[IPv4Network] = []
    if "lan" in nd:
        lans.append(_network(nd["lan"], f"{path}.lan"))
    elif "lans" in nd:
        raw_lans = nd["lans"]
        if not isinstance(raw_lans, list):
            raise TopologyError(f"{path}.lans", "expected a list of subnets")
        for i, item in enumerate(raw_lans):
            lans.append(_network(item, f"{path}.lans[{i}]"))
    for i, lan in enumerate(lans):
        lpath = f"{path}.lan" if "lan" in nd else f"{path}.lans[{i}]"
        if lan.overlaps(transit):
            raise TopologyError(lpath, f"{lan} overlaps the transit subnet {transit}")
        for other, owner in lan_owner:
            if lan.overlaps(other):
                where = "another LAN of this node" if owner == nname else f"node {owner}"
                raise TopologyError(lpath, f"{lan} overlaps {other} of {where}")
        lan_owner.append((lan, nname))
    return tuple(lans)


# ---- hosts


@dataclass(frozen=True)
class _HostDraft:
    """A host as written: `ip` and `mac` None until given automatically."""

    name: str
    node: str
    ip: IPv4Address | None
    mac: str | None
    kind: str
    description: str


def _parse_hosts(raw: object, nodes: dict[str, NodeSpec]) -> dict[str, HostSpec]:
    """`hosts`: name -> host. Every explicit address is checked first, then hosts
    without one get the next free address of their node's first LAN, in file order."""
    raw_hosts = _mapping(raw, "hosts", "a mapping of host name to host")
    if len(raw_hosts) > MAX_HOSTS:
        raise TopologyError("hosts", f"at most {MAX_HOSTS} hosts (got {len(raw_hosts)})")
    used_ips: dict[IPv4Address, str] = {}
    used_macs: dict[str, str] = {}
    drafts = [
        _parse_host(key, value, nodes, used_ips, used_macs) for key, value in raw_hosts.items()
    ]
    return _complete_hosts(drafts, nodes, used_ips, used_macs)


def _parse_host(
    key: object,
    raw: object,
    nodes: dict[str, NodeSpec],
    used_ips: dict[IPv4Address, str],
    used_macs: dict[str, str],
) -> _HostDraft:
    hname = _check_name(key, f"hosts.{key}", "host")
    path = f"hosts.{hname}"
    if hname in nodes:
        raise TopologyError(path, f"{hname!r} is already a node name")
    if hname in RESERVED_NAMES:
        raise TopologyError(path, f"{hname!r} is reserved (a namespace of the testbed's own)")
    hd = _mapping(raw, path, "a mapping with node, ip, mac, kind")
    _check_keys(hd, _HOST_KEYS, path)
    if "node" not in hd:
        raise TopologyError(f"{path}.node", "missing: the node this host is attached to")
    node = hd["node"]
    if not isinstance(node, str) or node not in nodes:
        raise TopologyError(f"{path}.node", f"unknown node {node!r}")
    if not nodes[node].lans:
        raise TopologyError(f"{path}.node", f"node {node} has no LAN to attach a host to")
    ip = _host_ip(hd["ip"], f"{path}.ip", nodes[node], used_ips) if "ip" in hd else None
    if ip is not None:
        used_ips[ip] = hname
    mac = _host_mac(hd["mac"], f"{path}.mac", used_macs) if "mac" in hd else None
    if mac is not None:
        used_macs[mac] = hname
    hkind = "host"
    if "kind" in hd:
        if not isinstance(hd["kind"], str) or not _LABEL_RE.match(hd["kind"]):
            raise TopologyError(
                f"{path}.kind",
                f"expected a short lowercase label like laptop or tv, got {hd['kind']!r}",
            )
        hkind = hd["kind"]
    hdesc = _text(hd["description"], f"{path}.description") if "description" in hd else ""
    return _HostDraft(hname, node, ip, mac, hkind, hdesc)


def _host_ip(
    value: object, path: str, node: NodeSpec, used_ips: dict[IPv4Address, str]
) -> IPv4Address:
    ip = _address(value, path)
    in_lan = next((n for n in node.lans if ip in n), None)
    if in_lan is None:
        raise TopologyError(path, f"{ip} is not in any LAN of node {node.name}")
    if ip in (in_lan.network_address, in_lan.broadcast_address):
        raise TopologyError(path, f"{ip} is the network or broadcast address")
    if ip == in_lan.network_address + 1:
        raise TopologyError(path, f"{ip} is the gateway address of node {node.name}")
    if ip in used_ips:
        raise TopologyError(path, f"{ip} is already used by host {used_ips[ip]}")
    return ip


def _host_mac(value: object, path: str, used_macs: dict[str, str]) -> str:
    if not isinstance(value, str) or not _MAC_RE.match(value.lower()):
        raise TopologyError(path, f"expected a MAC like 02:00:00:00:00:01, got {value!r}")
    mac = value.lower()
    if int(mac[:2], 16) & 1:
        raise TopologyError(path, f"{mac} is a multicast address")
    if mac == "00:00:00:00:00:00":
        raise TopologyError(path, "the all-zero address is not usable")
    if mac in used_macs:
        raise TopologyError(path, f"{mac} is already used by host {used_macs[mac]}")
    return mac


def _complete_hosts(
    drafts: list[_HostDraft],
    nodes: dict[str, NodeSpec],
    used_ips: dict[IPv4Address, str],
    used_macs: dict[str, str],
) -> dict[str, HostSpec]:
    """Automatic addresses: the next free address of the node's first LAN, in file
    order, and locally administered MACs no host uses."""
    next_free: dict[str, int] = {}
    mac_counter = 0
    hosts: dict[str, HostSpec] = {}
    for index, h in enumerate(drafts):
        ip = h.ip
        if ip is None:
            lan0 = nodes[h.node].lans[0]
            offset = next_free.get(h.node, 2)
            while True:
                if offset >= lan0.num_addresses - 1:
                    raise TopologyError(
                        f"hosts.{h.name}.ip", f"no free address left in {lan0} of node {h.node}"
                    )
                candidate = lan0.network_address + offset
                offset += 1
                if candidate not in used_ips:
                    break
            next_free[h.node] = offset
            ip = candidate
            used_ips[ip] = h.name
        mac = h.mac
        if mac is None:
            while True:
                mac_counter += 1
                # Locally administered unicast, "nf" in the 2nd/3rd octets.
                candidate_mac = "02:6e:66:" + ":".join(
                    f"{(mac_counter >> s) & 0xFF:02x}" for s in (16, 8, 0)
                )
                if candidate_mac not in used_macs:
                    break
            mac = candidate_mac
            used_macs[mac] = h.name
        lan = next(lan for lan in nodes[h.node].lans if ip in lan)
        hosts[h.name] = HostSpec(
            name=h.name,
            node=h.node,
            index=index,
            ip=ip,
            lan=lan,
            mac=mac,
            kind=h.kind,
            description=h.description,
        )
    return hosts


# ---- links


def _parse_links(
    raw: object, nodes: dict[str, NodeSpec], hosts: dict[str, HostSpec]
) -> tuple[LinkSpec, ...]:
    """`links`: a list of node pairs, at most one link per pair."""
    raw_links = [] if raw is None else raw
    if not isinstance(raw_links, list):
        raise TopologyError("links", "expected a list of links")
    if len(raw_links) > MAX_LINKS:
        raise TopologyError("links", f"at most {MAX_LINKS} links (got {len(raw_links)})")
    links: list[LinkSpec] = []
    seen: dict[frozenset[str], int] = {}  # node pair -> its link's index
    for i, value in enumerate(raw_links):
        links.append(_parse_link(i, value, nodes, hosts, seen))
    return tuple(links)


def _parse_link(
    i: int,
    raw: object,
    nodes: dict[str, NodeSpec],
    hosts: dict[str, HostSpec],
    seen: dict[frozenset[str], int],
) -> LinkSpec:
    path = f"links[{i}]"
    ld = _mapping(raw, path, "a mapping with a, b, rate, delay, loss")
    _check_keys(ld, _LINK_KEYS, path)
    a, b = (_link_end(ld, end, path, nodes, hosts) for end in ("a", "b"))
    if a == b:
        raise TopologyError(path, f"a link cannot connect {a} to itself")
    pair = frozenset((a, b))
    if pair in seen:
        raise TopologyError(path, f"duplicate of links[{seen[pair]}] ({a} - {b})")
    seen[pair] = i
    return LinkSpec(
        a=a,
        b=b,
        index=i,
        rate_bps=parse_rate(ld["rate"], f"{path}.rate") if "rate" in ld else None,
        delay_us=parse_delay(ld["delay"], f"{path}.delay") if "delay" in ld else 0,
        loss=parse_loss(ld["loss"], f"{path}.loss") if "loss" in ld else 0.0,
        mtu=_mtu(ld["mtu"], f"{path}.mtu") if "mtu" in ld else None,
    )


def _link_end(
    ld: Mapping[object, object],
    end: str,
    path: str,
    nodes: dict[str, NodeSpec],
    hosts: dict[str, HostSpec],
) -> str:
    if end not in ld:
        raise TopologyError(f"{path}.{end}", "missing: links connect two nodes a and b")
    value = ld[end]
    if isinstance(value, str) and value in hosts:
        raise TopologyError(
            f"{path}.{end}", f"{value!r} is a host; attach hosts with hosts.{value}.node"
        )
    if not isinstance(value, str) or value not in nodes:
        raise TopologyError(f"{path}.{end}", f"unknown node {value!r}")
    return value


def _check_connected(nodes: dict[str, NodeSpec], links: tuple[LinkSpec, ...]) -> None:
    """Hosts on different LANs reach each other through the node graph: it must be
    connected."""
    g = nx.Graph()
    g.add_nodes_from(nodes)
    g.add_edges_from((lk.a, lk.b) for lk in links)
    components = list(nx.connected_components(g))
    if len(components) > 1:
        first = next(iter(nodes))
        main = next(c for c in components if first in c)
        cut_off = sorted(n for c in components if c is not main for n in c)
        shown = ", ".join(cut_off[:5]) + (", ..." if len(cut_off) > 5 else "")
        raise TopologyError("links", f"nodes not connected to {first}: {shown}")


# --------------------------------------------------------------------- generator


def generate_tree(
    n_nodes: int,
    *,
    cpes_per_pe: int = 9,
    hosts_per_cpe: int = 1,
    access_rate: str | None = "100Mbit",
    access_delay: str | None = None,
    name: str | None = None,
) -> Topology:
    """A deterministic N-node edge network: a binary tree of PEs, CPEs spread over them.

    Of `n_nodes`, one in `cpes_per_pe + 1` is a PE (at least one). CPE number k
    gets LAN 10.<k // 256>.<k % 256>.0/24 and `hosts_per_cpe` hosts; the transit
    subnet is 10.255.0.0/24, or /16 beyond 253 nodes.
    """
    if not 1 <= n_nodes <= MAX_NODES:
        raise TopologyError("nodes", f"n_nodes must be between 1 and {MAX_NODES}")
    n_pe = max(1, math.ceil(n_nodes / (cpes_per_pe + 1)))
    n_cpe = n_nodes - n_pe
    nodes: dict[str, Any] = {}
    links: list[dict[str, Any]] = []
    hosts: dict[str, Any] = {}
    for p in range(1, n_pe + 1):
        nodes[f"pe{p}"] = {"kind": "pe"}
        if p > 1:
            links.append({"a": f"pe{p // 2}", "b": f"pe{p}", "rate": "1Gbit"})
    for k in range(1, n_cpe + 1):
        cpe = f"cpe{k}"
        nodes[cpe] = {"kind": "cpe", "lan": f"10.{k // 256}.{k % 256}.0/24"}
        link: dict[str, Any] = {"a": cpe, "b": f"pe{(k - 1) % n_pe + 1}"}
        if access_rate:
            link["rate"] = access_rate
        if access_delay:
            link["delay"] = access_delay
        links.append(link)
        for j in range(1, hosts_per_cpe + 1):
            hosts[f"h{k}-{j}"] = {"node": cpe}
    doc = {
        "name": name or f"tree-{n_nodes}",
        "transit": "10.255.0.0/24" if n_nodes <= 253 else "10.255.0.0/16",
        "nodes": nodes,
        "hosts": hosts,
        "links": links,
    }
    return Topology.from_dict(doc)
