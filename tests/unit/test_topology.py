"""Topology model: parsing, defaults, keyed errors, graph view, round trip, generator."""

from __future__ import annotations

import copy
import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from netfate.model.topology import (
    DEFAULT_TRANSIT,
    NodeKind,
    Topology,
    TopologyError,
    format_delay,
    format_rate,
    generate_tree,
    parse_delay,
    parse_loss,
    parse_memory,
    parse_rate,
)
from netfate.services import registered

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

DEMO_YAML = """
name: demo
transit: 10.255.0.0/24
nodes:
  cpe1: {kind: cpe, lan: 192.168.1.0/24, cpu: 2, memory: 512MiB}
  cpe2: {kind: cpe, lan: 192.168.2.0/24}
  pe1:  {kind: pe}
hosts:
  laptop1: {node: cpe1}
  tv:      {node: cpe2, ip: 192.168.2.20, kind: tv}
links:
  - {a: cpe1, b: pe1, rate: 100Mbit, delay: 5ms, loss: 0.1%}
  - {a: cpe2, b: pe1}
"""


def base() -> dict[str, Any]:
    return {
        "name": "t",
        "nodes": {
            "cpe1": {"kind": "cpe", "lan": "192.168.1.0/24"},
            "cpe2": {"kind": "cpe", "lan": "192.168.2.0/24"},
            "pe1": {"kind": "pe"},
        },
        "hosts": {"laptop1": {"node": "cpe1"}, "tv": {"node": "cpe2", "ip": "192.168.2.20"}},
        "links": [{"a": "cpe1", "b": "pe1"}, {"a": "cpe2", "b": "pe1"}],
    }


def error_of(doc: object) -> TopologyError:
    with pytest.raises(TopologyError) as info:
        Topology.from_dict(doc)
    return info.value


# ------------------------------------------------------------------ happy path


def test_demo_document_parses_with_defaults_and_auto_addresses() -> None:
    t = Topology.from_yaml(DEMO_YAML)
    assert t.name == "demo"
    assert t.transit == IPv4Network("10.255.0.0/24")
    assert list(t.nodes) == ["cpe1", "cpe2", "pe1"]
    cpe1 = t.nodes["cpe1"]
    assert cpe1.kind is NodeKind.CPE
    assert cpe1.lans == (IPv4Network("192.168.1.0/24"),)
    assert cpe1.gateways == (IPv4Address("192.168.1.1"),)
    assert cpe1.cpu == 2.0 and cpe1.memory_mb == 512
    assert cpe1.transit_ip == IPv4Address("10.255.0.1")
    assert t.nodes["pe1"].transit_ip == IPv4Address("10.255.0.3")
    assert t.nodes["pe1"].datapath_id == 3
    assert t.nodes["pe1"].lans == ()
    laptop = t.hosts["laptop1"]
    assert laptop.ip == IPv4Address("192.168.1.2")
    assert laptop.gateway == IPv4Address("192.168.1.1")
    assert laptop.mac == "02:6e:66:00:00:01"
    assert laptop.kind == "host"
    tv = t.hosts["tv"]
    assert tv.ip == IPv4Address("192.168.2.20") and tv.kind == "tv"
    lk = t.links[0]
    assert lk.rate_bps == 100_000_000 and lk.delay_us == 5000 and lk.delay_s == 0.005
    assert lk.loss == pytest.approx(0.001)
    assert lk.impaired and lk.shaped
    assert not t.links[1].impaired and not t.links[1].shaped
    assert t.links[1].rate_bps is None


def test_default_transit_and_kind_defaults() -> None:
    doc = base()
    del doc["hosts"]
    t = Topology.from_dict(doc)
    assert t.transit == DEFAULT_TRANSIT
    assert t.nodes["pe1"].cpu == 4.0 and t.nodes["pe1"].memory_mb == 4096
    assert t.nodes["cpe1"].memory_mb == 512
    assert t.hosts == {}


def test_auto_ip_skips_explicit_addresses() -> None:
    doc = base()
    doc["hosts"] = {
        "a": {"node": "cpe1", "ip": "192.168.1.2"},
        "b": {"node": "cpe1"},
        "c": {"node": "cpe1"},
    }
    t = Topology.from_dict(doc)
    assert [str(h.ip) for h in t.hosts.values()] == ["192.168.1.2", "192.168.1.3", "192.168.1.4"]


def test_auto_mac_skips_explicit_mac() -> None:
    doc = base()
    doc["hosts"] = {
        "a": {"node": "cpe1", "mac": "02:6E:66:00:00:01"},
        "b": {"node": "cpe1"},
    }
    t = Topology.from_dict(doc)
    assert t.hosts["a"].mac == "02:6e:66:00:00:01"
    assert t.hosts["b"].mac == "02:6e:66:00:00:02"


def test_multiple_lans_and_host_on_second_lan() -> None:
    doc = base()
    doc["nodes"]["cpe1"] = {"kind": "cpe", "lans": ["192.168.1.0/24", "192.168.11.0/24"]}
    doc["hosts"]["cam"] = {"node": "cpe1", "ip": "192.168.11.9"}
    t = Topology.from_dict(doc)
    assert t.nodes["cpe1"].gateways == (IPv4Address("192.168.1.1"), IPv4Address("192.168.11.1"))
    assert t.hosts["cam"].lan == IPv4Network("192.168.11.0/24")
    assert t.hosts["cam"].gateway == IPv4Address("192.168.11.1")


def test_all_node_kinds_accepted() -> None:
    assert [k.value for k in NodeKind] == ["cpe", "pe", "pop", "core", "hrh"]
    doc: dict[str, Any] = {"nodes": {k.value + "1": {"kind": k.value} for k in NodeKind}}
    names = list(doc["nodes"])
    doc["links"] = [{"a": names[0], "b": n} for n in names[1:]]
    t = Topology.from_dict(doc)
    assert {n.kind for n in t.nodes.values()} == set(NodeKind)
    assert t.name == "topology"


def test_round_trip_through_dict_and_json() -> None:
    t = Topology.from_yaml(DEMO_YAML)
    d = t.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert Topology.from_dict(d) == t
    assert Topology.from_dict(json.loads(t.to_json())) == t
    assert Topology.from_yaml(t.to_yaml()) == t


def test_round_trip_keeps_odd_units() -> None:
    doc = base()
    doc["links"][0].update(rate="1500kbit", delay="250us", loss=0.25, mtu=1400)
    doc["links"][1].update(rate=12345, delay="2s")
    t = Topology.from_dict(doc)
    d = t.to_dict()
    assert d["links"][0] == {
        "a": "cpe1",
        "b": "pe1",
        "rate": "1500kbit",
        "delay": "250us",
        "loss": 0.25,
        "mtu": 1400,
    }
    assert d["links"][1]["rate"] == "12345bit" and d["links"][1]["delay"] == "2s"
    assert Topology.from_dict(d) == t


def test_load_file_and_default_name_from_stem(tmp_path: Path) -> None:
    doc = base()
    del doc["name"]
    p = tmp_path / "My_Lab.yaml"
    p.write_text(json.dumps(doc))
    assert Topology.load(p).name == "my-lab"


def test_examples_load() -> None:
    demo = Topology.load(EXAMPLES / "demo.yaml")
    kinds = sorted(str(n.kind) for n in demo.nodes.values())
    assert kinds == ["cpe", "cpe", "pe"]
    assert len(demo.hosts) == 2
    assert {demo.hosts[h].node for h in demo.hosts} == {"cpe1", "cpe2"}
    # the platform's examples and every registered service's (its contract's topologies)
    for p in [*sorted(EXAMPLES.glob("*.yaml")), *(t for s in registered() for t in s.topologies)]:
        assert Topology.load(p).nodes


def test_graph_view() -> None:
    t = Topology.from_yaml(DEMO_YAML)
    g = t.graph()
    assert set(g.nodes) == {"cpe1", "cpe2", "pe1", "laptop1", "tv"}
    assert g.nodes["tv"]["role"] == "host" and g.nodes["tv"]["node"] == "cpe2"
    assert g.nodes["pe1"]["role"] == "node" and g.nodes["pe1"]["kind"] == "pe"
    e = g.edges["cpe1", "pe1"]
    assert e["delay_s"] == 0.005 and e["rate_bps"] == 100_000_000
    assert e["loss"] == pytest.approx(0.001)
    access = g.edges["laptop1", "cpe1"]
    assert access["delay_s"] == 0.0 and access["rate_bps"] is None and access["loss"] == 0.0
    import networkx as nx

    assert nx.shortest_path(g, "laptop1", "tv") == ["laptop1", "cpe1", "pe1", "cpe2", "tv"]


def test_cycles_detected() -> None:
    doc = base()
    assert not Topology.from_dict(doc).has_cycles()
    doc["links"].append({"a": "cpe1", "b": "cpe2"})
    assert Topology.from_dict(doc).has_cycles()


def test_helpers_for_builders() -> None:
    t = Topology.from_yaml(DEMO_YAML)
    assert [h.name for h in t.hosts_of("cpe2")] == ["tv"]
    assert [lk.index for lk in t.links_of("pe1")] == [0, 1]


# ------------------------------------------------------------------ units


@pytest.mark.parametrize(
    ("text", "bps"),
    [
        ("10kbit", 10_000),
        ("100Mbit", 100_000_000),
        ("100mbit", 100_000_000),
        ("1Gbit", 1_000_000_000),
        ("1.5Gbit", 1_500_000_000),
        ("9600bps", 9600),
        ("20Mbps", 20_000_000),
        (64000, 64000),
        ("2000 bit", 2000),
    ],
)
def test_parse_rate(text: object, bps: int) -> None:
    assert parse_rate(text) == bps


@pytest.mark.parametrize(
    "bad", ["fast", "10 furlongs", "-5Mbit", "0bit", "500bit", "200Gbit", True, None, 1e300]
)
def test_parse_rate_rejects(bad: object) -> None:
    with pytest.raises(TopologyError) as info:
        parse_rate(bad, "links[0].rate")
    assert str(info.value).startswith("links[0].rate: ")


@pytest.mark.parametrize(
    ("text", "us"),
    [
        ("5ms", 5000),
        ("200us", 200),
        ("0.5s", 500_000),
        ("1.5ms", 1500),
        (0, 0),
        ("0", 0),
        ("10s", 10_000_000),
    ],
)
def test_parse_delay(text: object, us: int) -> None:
    assert parse_delay(text) == us


@pytest.mark.parametrize("bad", ["5", 5, "5min", "11s", "soon", False, [5]])
def test_parse_delay_rejects(bad: object) -> None:
    with pytest.raises(TopologyError):
        parse_delay(bad)


@pytest.mark.parametrize(
    ("text", "fraction"),
    [("0.1%", 0.001), ("5%", 0.05), (0.25, 0.25), (0, 0.0), (1, 1.0), ("100%", 1.0)],
)
def test_parse_loss(text: object, fraction: float) -> None:
    assert parse_loss(text) == pytest.approx(fraction)


@pytest.mark.parametrize("bad", [5, "5", "101%", "-1%", "5 pct", True])
def test_parse_loss_rejects(bad: object) -> None:
    with pytest.raises(TopologyError):
        parse_loss(bad)


def test_bare_loss_above_one_suggests_percent() -> None:
    with pytest.raises(TopologyError, match=r"write '5%' for percent"):
        parse_loss(5, "links[0].loss")


@pytest.mark.parametrize(
    ("text", "mib"), [("512MiB", 512), ("2GiB", 2048), ("1.5GiB", 1536), ("16mib", 16)]
)
def test_parse_memory(text: str, mib: int) -> None:
    assert parse_memory(text) == mib


@pytest.mark.parametrize("bad", ["512MB", "512", 512, "1.5MiB", "8MiB", "2TiB", "lots"])
def test_parse_memory_rejects(bad: object) -> None:
    with pytest.raises(TopologyError):
        parse_memory(bad)


def test_formatters() -> None:
    assert format_rate(100_000_000) == "100Mbit"
    assert format_rate(1_000_000_000) == "1Gbit"
    assert format_rate(1234) == "1234bit"
    assert format_delay(5000) == "5ms"
    assert format_delay(1) == "1us"
    assert format_delay(0) == "0ms"


# ------------------------------------------------------------------ errors name the key


def mutate(fn: Any) -> dict[str, Any]:
    doc = copy.deepcopy(base())
    fn(doc)
    return doc


ERROR_CASES: list[tuple[str, Any, str]] = [
    (
        "bad kind",
        lambda d: d["nodes"]["cpe1"].update(kind="cpx"),
        "nodes.cpe1.kind: must be one of cpe, pe, pop, core, hrh (got 'cpx')",
    ),
    ("missing kind", lambda d: d["nodes"]["cpe1"].pop("kind"), "nodes.cpe1.kind: missing"),
    (
        "unknown link end",
        lambda d: d["links"].append({"a": "cpe1", "b": "pe9"}),
        "links[2].b: unknown node 'pe9'",
    ),
    (
        "host ip outside LANs",
        lambda d: d["hosts"]["tv"].update(ip="192.168.9.20"),
        "hosts.tv.ip: 192.168.9.20 is not in any LAN of node cpe2",
    ),
    ("unknown top key", lambda d: d.update(switches={}), "switches: unknown key"),
    (
        "unknown node key",
        lambda d: d["nodes"]["pe1"].update(colour="red"),
        "nodes.pe1.colour: unknown key",
    ),
    ("unknown host key", lambda d: d["hosts"]["tv"].update(vlan=3), "hosts.tv.vlan: unknown key"),
    (
        "unknown link key",
        lambda d: d["links"][0].update(jitter="1ms"),
        "links[0].jitter: unknown key",
    ),
    (
        "duplicate link",
        lambda d: d["links"].append({"a": "pe1", "b": "cpe1"}),
        "links[2]: duplicate of links[0]",
    ),
    (
        "self link",
        lambda d: d["links"].append({"a": "pe1", "b": "pe1"}),
        "links[2]: a link cannot connect pe1 to itself",
    ),
    ("missing link end", lambda d: d["links"][0].pop("b"), "links[0].b: missing"),
    (
        "link to host",
        lambda d: d["links"].append({"a": "pe1", "b": "tv"}),
        "links[2].b: 'tv' is a host",
    ),
    (
        "host on node without LAN",
        lambda d: d["hosts"].update(x={"node": "pe1"}),
        "hosts.x.node: node pe1 has no LAN",
    ),
    (
        "host on unknown node",
        lambda d: d["hosts"].update(x={"node": "cpe7"}),
        "hosts.x.node: unknown node 'cpe7'",
    ),
    ("host without node", lambda d: d["hosts"].update(x={}), "hosts.x.node: missing"),
    (
        "duplicate host ip",
        lambda d: d["hosts"].update(x={"node": "cpe2", "ip": "192.168.2.20"}),
        "hosts.x.ip: 192.168.2.20 is already used by host tv",
    ),
    (
        "host ip is gateway",
        lambda d: d["hosts"]["tv"].update(ip="192.168.2.1"),
        "hosts.tv.ip: 192.168.2.1 is the gateway address of node cpe2",
    ),
    (
        "host ip is broadcast",
        lambda d: d["hosts"]["tv"].update(ip="192.168.2.255"),
        "hosts.tv.ip: 192.168.2.255 is the network or broadcast address",
    ),
    (
        "host ip not an address",
        lambda d: d["hosts"]["tv"].update(ip="192.168.2"),
        "hosts.tv.ip: '192.168.2' is not an IPv4 address",
    ),
    (
        "host ip v6",
        lambda d: d["hosts"]["tv"].update(ip="fe80::1"),
        "hosts.tv.ip: fe80::1 is not IPv4",
    ),
    (
        "LAN overlap on one node",
        lambda d: (
            d["nodes"]["cpe1"].update(lan=None)
            or d["nodes"]["cpe1"].pop("lan")
            or d["nodes"]["cpe1"].update(lans=["192.168.1.0/24", "192.168.1.128/25"])
        ),
        "nodes.cpe1.lans[1]: 192.168.1.128/25 overlaps 192.168.1.0/24 of another LAN of this node",
    ),
    (
        "LAN overlap across nodes",
        lambda d: d["nodes"]["cpe2"].update(lan="192.168.0.0/16"),
        "nodes.cpe2.lan: 192.168.0.0/16 overlaps 192.168.1.0/24 of node cpe1",
    ),
    (
        "LAN overlaps transit",
        lambda d: d["nodes"]["pe1"].update(lan="10.255.0.0/25"),
        "nodes.pe1.lan: 10.255.0.0/25 overlaps the transit subnet",
    ),
    (
        "lan and lans",
        lambda d: d["nodes"]["cpe1"].update(lans=["10.1.0.0/24"]),
        "nodes.cpe1.lans: give either 'lan' or 'lans'",
    ),
    (
        "LAN host bits",
        lambda d: d["nodes"]["cpe1"].update(lan="192.168.1.1/24"),
        "nodes.cpe1.lan: 192.168.1.1/24 has host bits set; did you mean 192.168.1.0/24?",
    ),
    (
        "LAN without prefix",
        lambda d: d["nodes"]["cpe1"].update(lan="192.168.1.0"),
        "nodes.cpe1.lan: 192.168.1.0 needs a prefix length",
    ),
    (
        "LAN too small",
        lambda d: d["nodes"]["cpe1"].update(lan="192.168.1.0/31"),
        "nodes.cpe1.lan: 192.168.1.0/31 is too small",
    ),
    (
        "LAN v6",
        lambda d: d["nodes"]["cpe1"].update(lan="fd00::/64"),
        "nodes.cpe1.lan: fd00::/64 is not IPv4",
    ),
    (
        "LAN garbage",
        lambda d: d["nodes"]["cpe1"].update(lan="home"),
        "nodes.cpe1.lan: 'home' is not",
    ),
    (
        "lans not list",
        lambda d: d["nodes"]["pe1"].update(lans="10.0.0.0/24"),
        "nodes.pe1.lans: expected a list",
    ),
    ("bad rate", lambda d: d["links"][1].update(rate="fast"), "links[1].rate: expected a rate"),
    (
        "bad rate unit",
        lambda d: d["links"][1].update(rate="10Mfoo"),
        "links[1].rate: unknown rate unit",
    ),
    (
        "bad delay",
        lambda d: d["links"][1].update(delay="5"),
        "links[1].delay: a delay needs a unit",
    ),
    (
        "bad loss",
        lambda d: d["links"][1].update(loss="150%"),
        "links[1].loss: loss must be at most 100%",
    ),
    ("bad mtu", lambda d: d["links"][1].update(mtu=100), "links[1].mtu: mtu must be an integer"),
    (
        "bad memory",
        lambda d: d["nodes"]["pe1"].update(memory="4GB"),
        "nodes.pe1.memory: expected a memory",
    ),
    (
        "bad cpu",
        lambda d: d["nodes"]["pe1"].update(cpu=0),
        "nodes.pe1.cpu: cpu must be greater than 0",
    ),
    (
        "cpu as string",
        lambda d: d["nodes"]["pe1"].update(cpu="two"),
        "nodes.pe1.cpu: expected a number",
    ),
    (
        "bad node name",
        lambda d: d["nodes"].update({"PE_2": {"kind": "pe"}}),
        "nodes.PE_2: node name 'PE_2' must be lowercase",
    ),
    (
        "too long name",
        lambda d: d["nodes"].update({"p" * 33: {"kind": "pe"}}),
        "node name is longer than 32",
    ),
    (
        "name ends with dash",
        lambda d: d["hosts"].update({"tv-": {"node": "cpe2"}}),
        "hosts.tv-: host name",
    ),
    (
        "reserved name",
        lambda d: d["nodes"].update(sw={"kind": "core"}),
        "nodes.sw: 'sw' is reserved",
    ),
    (
        "yaml boolean name",
        lambda d: d["nodes"].update({False: {"kind": "pe"}}),
        "nodes.False: node name must be a string (got False; quote it)",
    ),
    (
        "host named like node",
        lambda d: d["hosts"].update(pe1={"node": "cpe1"}),
        "hosts.pe1: 'pe1' is already a node name",
    ),
    (
        "bad mac",
        lambda d: d["hosts"]["tv"].update(mac="zz:00:00:00:00:01"),
        "hosts.tv.mac: expected a MAC",
    ),
    (
        "multicast mac",
        lambda d: d["hosts"]["tv"].update(mac="01:00:5e:00:00:01"),
        "hosts.tv.mac: 01:00:5e:00:00:01 is a multicast address",
    ),
    (
        "duplicate mac",
        lambda d: (
            d["hosts"]["tv"].update(mac="02:00:00:00:00:01")
            or d["hosts"]["laptop1"].update(mac="02:00:00:00:00:01")
        ),
        "hosts.tv.mac: 02:00:00:00:00:01 is already used by host laptop1",
    ),
    (
        "bad host kind",
        lambda d: d["hosts"]["tv"].update(kind="Smart TV"),
        "hosts.tv.kind: expected a short",
    ),
    ("no nodes", lambda d: d.update(nodes={}), "nodes: a topology needs at least one node"),
    ("nodes not mapping", lambda d: d.update(nodes=["cpe1"]), "nodes: expected a mapping"),
    ("node not mapping", lambda d: d["nodes"].update(pe1="pe"), "nodes.pe1: expected a mapping"),
    ("links not list", lambda d: d.update(links={"a": "cpe1"}), "links: expected a list"),
    ("disconnected", lambda d: d["links"].pop(), "links: nodes not connected to cpe1: cpe2"),
    (
        "transit too small",
        lambda d: d.update(transit="10.255.0.0/31"),
        "transit: 10.255.0.0/31 is too small",
    ),
    (
        "transit room",
        lambda d: d.update(transit="10.255.0.0/30"),
        "transit: 10.255.0.0/30 has room for 1 nodes but the topology has 3",
    ),
    ("bad topology name", lambda d: d.update(name="My Lab"), "name: topology name 'My Lab'"),
    ("description not text", lambda d: d.update(description=5), "description: expected a string"),
]


@pytest.mark.parametrize(
    ("label", "change", "message"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES]
)
def test_errors_name_the_key(label: str, change: Any, message: str) -> None:
    err = error_of(mutate(change))
    assert message in str(err), f"{label}: {err}"
    assert str(err).split(":")[0] == err.path or not err.path


def test_unknown_key_lists_allowed_keys() -> None:
    err = error_of(mutate(lambda d: d["links"][0].update(speed="1Gbit")))
    assert err.path == "links[0].speed"
    assert "allowed: a, b, rate, delay, loss, mtu" in err.problem


def test_top_level_must_be_mapping() -> None:
    assert "expected a mapping" in str(error_of([1, 2]))
    assert "empty document" in str(error_of(None))


def test_invalid_yaml_reports_line() -> None:
    with pytest.raises(TopologyError, match=r"invalid YAML at line 3"):
        Topology.from_yaml("nodes:\n  cpe1: {kind: cpe\n  pe1: {kind: pe}\n")


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="cannot read"):
        Topology.load(tmp_path / "nope.yaml")


def test_lan_exhausted_by_auto_addresses() -> None:
    doc = base()
    doc["nodes"]["cpe1"]["lan"] = "192.168.1.0/30"
    doc["hosts"] = {"a": {"node": "cpe1"}, "b": {"node": "cpe1"}}
    err = error_of(doc)
    assert err.path == "hosts.b.ip" and "no free address left in 192.168.1.0/30" in err.problem


def test_yaml_unit_strings_from_file() -> None:
    t = Topology.from_yaml(
        "nodes:\n  a: {kind: cpe, lan: 10.1.0.0/24, memory: 1GiB}\n  b: {kind: pe}\n"
        "links:\n  - {a: a, b: b, rate: 10kbit, delay: 200us, loss: 0.5}\n"
    )
    assert t.nodes["a"].memory_mb == 1024
    assert t.links[0].rate_bps == 10_000 and t.links[0].delay_us == 200 and t.links[0].loss == 0.5


# ------------------------------------------------------------------ scale and generator


@pytest.mark.parametrize("n", [1, 2, 10, 100, 300])
def test_generator_is_valid_connected_and_deterministic(n: int) -> None:
    t = generate_tree(n)
    assert len(t.nodes) == n
    assert len(t.links) == n - 1
    assert not t.has_cycles()
    assert generate_tree(n) == t
    assert Topology.from_dict(t.to_dict()) == t
    n_pe = sum(1 for x in t.nodes.values() if x.kind is NodeKind.PE)
    assert len(t.hosts) == n - n_pe
    if n > 253:
        assert t.transit.prefixlen == 16


def test_generator_options() -> None:
    t = generate_tree(12, cpes_per_pe=3, hosts_per_cpe=2, access_rate=None, access_delay="2ms")
    assert sum(1 for x in t.nodes.values() if x.kind is NodeKind.PE) == 3
    assert len(t.hosts) == 18
    access = [lk for lk in t.links if lk.a.startswith("cpe")]
    assert all(lk.rate_bps is None and lk.delay_us == 2000 for lk in access)


def test_generator_bounds() -> None:
    with pytest.raises(TopologyError):
        generate_tree(0)


def test_many_nodes_parse() -> None:
    t = generate_tree(1000, hosts_per_cpe=2)
    assert len(t.nodes) == 1000 and len(t.hosts) > 1700
    g = t.graph()
    assert g.number_of_nodes() == len(t.nodes) + len(t.hosts)


def test_too_many_nodes() -> None:
    doc = {"transit": "10.0.0.0/8", "nodes": {f"n{i}": {"kind": "pe"} for i in range(1001)}}
    assert error_of(doc).path == "nodes"


def test_numbers_beyond_a_float_are_refused_by_key() -> None:
    # Found by tests/fuzz/test_topology_fuzz.py: these raised OverflowError.
    huge = "9" * 400
    for change, path in [
        (lambda d: d["nodes"]["cpe1"].update(cpu=10**400), "nodes.cpe1.cpu"),
        (lambda d: d["nodes"]["cpe1"].update(memory=huge + "MiB"), "nodes.cpe1.memory"),
        (lambda d: d["links"][0].update(rate=huge + "Mbit"), "links[0].rate"),
        (lambda d: d["links"][0].update(delay=huge + "ms"), "links[0].delay"),
        (lambda d: d["links"][0].update(loss=10**400), "links[0].loss"),
    ]:
        assert error_of(mutate(change)).path == path


def test_an_empty_key_is_named() -> None:
    doc = base()
    doc[""] = 1
    assert error_of(doc).path == "''"
    doc = base()
    doc["links"][0][""] = 1
    assert error_of(doc).path == "links[0].''"


def test_yaml_the_constructors_refuse_is_invalid_yaml() -> None:
    with pytest.raises(TopologyError, match=r"invalid YAML: month must be in 1\.\.12"):
        Topology.from_yaml(DEMO_YAML.replace("name: demo", "name: 2024-13-45"))


# ------------------------------------------------------------------ predeploy


def with_predeploy(node: str, value: object) -> dict[str, Any]:
    return mutate(lambda d: d["nodes"][node].update(predeploy=value))


def test_a_node_predeploy_budget_is_parsed_and_round_trips() -> None:
    doc = with_predeploy("pe1", {"storage_mb": 2.5, "standbys": 2})
    t = Topology.from_dict(doc)
    pe1 = t.nodes["pe1"].predeploy
    assert pe1 is not None and (pe1.storage_mb, pe1.standbys) == (2.5, 2)
    assert t.nodes["cpe1"].predeploy is None  # no section: the file sets no budget
    assert t.to_dict()["nodes"]["pe1"]["predeploy"] == {"storage_mb": 2.5, "standbys": 2}
    assert "predeploy" not in t.to_dict()["nodes"]["cpe1"]
    assert Topology.from_dict(json.loads(t.to_json())) == t
    assert Topology.from_yaml(t.to_yaml()) == t
    zero = Topology.from_dict(with_predeploy("pe1", {"storage_mb": 0, "standbys": 0}))
    assert zero.nodes["pe1"].predeploy is not None  # allowed: the API's "none"


PREDEPLOY_ERRORS: list[tuple[str, object, str, str]] = [
    ("not a mapping", 5, "nodes.pe1.predeploy", "expected a mapping"),
    ("empty", None, "nodes.pe1.predeploy", "expected a mapping"),
    ("unknown key", {"storage_mb": 1, "standbys": 0, "disk": 1}, "nodes.pe1.predeploy.disk",
     "unknown key (allowed: storage_mb, standbys)"),
    ("images named", {"storage_mb": 1, "standbys": 0, "images": ["firewall"]},
     "nodes.pe1.predeploy.images", "the policy picks them by demand"),
    ("missing standbys", {"storage_mb": 1}, "nodes.pe1.predeploy.standbys", "missing"),
    ("missing storage", {"standbys": 1}, "nodes.pe1.predeploy.storage_mb", "missing"),
    ("negative budget", {"storage_mb": -1, "standbys": 0}, "nodes.pe1.predeploy.storage_mb",
     "expected a number of MB between 0 and 1000000 (got -1)"),
    ("text budget", {"storage_mb": "50MB", "standbys": 0}, "nodes.pe1.predeploy.storage_mb",
     "(got '50MB')"),
    ("boolean budget", {"storage_mb": True, "standbys": 0}, "nodes.pe1.predeploy.storage_mb",
     "(got True)"),
    ("nan budget", {"storage_mb": float("nan"), "standbys": 0},
     "nodes.pe1.predeploy.storage_mb", "expected a number of MB"),
    ("huge budget", {"storage_mb": 1e7, "standbys": 0}, "nodes.pe1.predeploy.storage_mb",
     "between 0 and 1000000"),
    ("negative pool", {"storage_mb": 1, "standbys": -1}, "nodes.pe1.predeploy.standbys",
     "between 0 and 64 (got -1)"),
    ("fractional pool", {"storage_mb": 1, "standbys": 1.5}, "nodes.pe1.predeploy.standbys",
     "a whole number"),
    ("pool past the API's bound", {"storage_mb": 1, "standbys": 65},
     "nodes.pe1.predeploy.standbys", "between 0 and 64 (got 65)"),
    ("pool with no storage", {"storage_mb": 0, "standbys": 2}, "nodes.pe1.predeploy.standbys",
     "2 standby(s) but storage_mb is 0"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "value", "path", "message"), PREDEPLOY_ERRORS, ids=[c[0] for c in PREDEPLOY_ERRORS]
)
def test_predeploy_errors_name_the_key(label: str, value: object, path: str, message: str) -> None:
    err = error_of(with_predeploy("pe1", value))
    assert err.path == path, f"{label}: {err}"
    assert message in err.problem, f"{label}: {err}"
